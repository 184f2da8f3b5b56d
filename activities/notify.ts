// Notifications: webhooks (a generic JSON receiver or Slack's incoming webhooks) behind one small
// interface. URLs are read from their files at use: they are credentials and never appear in messages.
//
// Exactly once per event, also when the worker dies and the activity is retried: before a POST its
// delivery is recorded as "sending", after a 2xx as "sent". A retry skips "sent", and also skips
// "sending" (the worker died during the call, so the receiver may have it: reported as unconfirmed,
// never posted twice). A POST that fails for a known reason (refused connection, 5xx, timeout)
// clears the record, so the retry posts again. Every POST carries the event's Idempotency-Key.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { parseDuration } from '../common/duration';
import { findTarget, PlanError } from '../common/plan';
import {
  eventId,
  notificationBody,
  redactedUrl,
  webhookBody,
  workflowLink,
  type Notification,
  type NotifyFormat,
  type RunbookEvent,
  type RunbookNotification,
} from '../common/commands/notify';
import { activityInfoOrUndefined } from './context';
import type { ActivityDeps } from './deps';
import { loadInventory } from './inventory';

export type { Notification };

export interface NotifyRequest {
  webhookUrlFile: string;
  notification: Notification;
}

export interface RunbookEventRequest {
  runbook: string;
  app: string;
  env: string;
  event: RunbookEvent;
}

export interface RunbookEventResult {
  /** Webhooks configured for the app/env (0: nobody is told; nothing was sent). */
  webhooks: number;
  /** Posted by this attempt. */
  sent: number;
  /** Posted by an earlier attempt. */
  alreadySent: number;
  /** An earlier attempt died during the POST: the receiver may have it; not posted again. */
  unconfirmed: number;
  /** From the config: how long before a deadline the reminder goes out. */
  remindBeforeMs?: number;
}

async function readUrl(file: string): Promise<string> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot read the webhook URL file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, 'NotifyConfig');
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw ApplicationFailure.nonRetryable(`the webhook URL file ${file} does not hold a URL`, 'NotifyConfig');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw ApplicationFailure.nonRetryable(`the webhook URL in ${file} is not http(s)`, 'NotifyConfig');
  return text;
}

/** POSTs `body`; resolves with the status, or throws a message that names the host only. */
function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  const where = redactedUrl(url);
  const lib = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'temporal-runbooks', ...headers }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`webhook ${where} unreachable: ${(err.code ?? err.message).split(url).join(where)}`)));
    req.end(body);
  });
}

function checkStatus(url: string, status: number): void {
  const where = redactedUrl(url);
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    throw ApplicationFailure.nonRetryable(`webhook ${where} refused the notification: HTTP ${status}`, 'NotifyRejected');
  }
  if (status < 200 || status >= 300) throw new Error(`webhook ${where} answered HTTP ${status}`);
}

/** The older alerts (backup.notify, proxy.tls.notify): one POST per call. */
export async function sendWebhook(req: NotifyRequest, options: { timeoutMs?: number } = {}): Promise<{ status: number }> {
  const url = await readUrl(req.webhookUrlFile);
  const status = await post(url, webhookBody(req.notification), {}, options.timeoutMs ?? 10_000);
  checkStatus(url, status);
  return { status };
}

type DeliveryState = 'sending' | 'sent';

/** Records deliveries in files named by a hash of event and webhook (names carry nothing secret). */
export class DeliveryLog {
  constructor(private readonly dir: string) {}

  private file(key: string): string {
    return path.join(this.dir, `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  async get(key: string): Promise<DeliveryState | undefined> {
    try {
      return (JSON.parse(await readFile(this.file(key), 'utf8')) as { state: DeliveryState }).state;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async set(key: string, state: DeliveryState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(key);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ state, at: new Date().toISOString() }), { mode: 0o600, flush: true });
    await rename(tmp, file);
  }

  async clear(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }
}

export function createNotifyActivities(deps: Pick<ActivityDeps, 'inventoryPath' | 'notifyStateDir' | 'uiUrl'>, options: { timeoutMs?: number } = {}) {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deliveries = new DeliveryLog(deps.notifyStateDir);
  return {
    /** POSTs the notification as JSON to the webhook whose URL is in `webhookUrlFile`. */
    notify: (req: NotifyRequest) => sendWebhook(req, options),

    /** Tells the app/env's notify webhooks about an event of this run, once per event. */
    async notifyRunbookEvent(req: RunbookEventRequest): Promise<RunbookEventResult> {
      const inventory = await loadInventory(deps.inventoryPath);
      let target: ReturnType<typeof findTarget>;
      try {
        target = findTarget(inventory, { app: req.app, env: req.env });
      } catch (err) {
        if (err instanceof PlanError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInventory');
        throw err;
      }
      const { app, env } = target;
      const config = env.notify ?? app.notify;
      if (!config) return { webhooks: 0, sent: 0, alreadySent: 0, unconfirmed: 0 };
      const info = activityInfoOrUndefined();
      const workflowId = info?.workflowExecution?.workflowId ?? 'direct';
      const runId = info?.workflowExecution?.runId ?? 'direct';
      const uiUrl = config.uiUrl ?? deps.uiUrl;
      const notification: RunbookNotification = {
        eventId: eventId(workflowId, runId, req.event),
        runbook: req.runbook,
        app: req.app,
        env: req.env,
        workflowId,
        runId,
        ...(uiUrl ? { link: workflowLink(uiUrl, info?.workflowNamespace ?? 'default', workflowId, runId) } : {}),
        event: req.event,
      };
      const result: RunbookEventResult = { webhooks: config.webhooks.length, sent: 0, alreadySent: 0, unconfirmed: 0, remindBeforeMs: parseDuration(config.remindBefore, 'remindBefore') };
      // in parallel: one slow receiver does not hold the others past the activity's timeout
      const outcomes = await Promise.allSettled(
        config.webhooks.map(async (hook): Promise<'sent' | 'alreadySent' | 'unconfirmed'> => {
          const key = `${notification.eventId}#${hook.urlFile}#${hook.format}`;
          const state = await deliveries.get(key);
          if (state === 'sent') return 'alreadySent';
          if (state === 'sending') return 'unconfirmed';
          const url = await readUrl(hook.urlFile);
          await deliveries.set(key, 'sending');
          let status: number;
          try {
            status = await post(url, notificationBody(hook.format as NotifyFormat, notification), { 'idempotency-key': notification.eventId }, timeoutMs);
          } catch (err) {
            await deliveries.clear(key);
            throw err;
          }
          if (status < 200 || status >= 300) await deliveries.clear(key);
          checkStatus(url, status);
          await deliveries.set(key, 'sent');
          return 'sent';
        }),
      );
      const failures: Error[] = [];
      for (const o of outcomes) {
        if (o.status === 'fulfilled') result[o.value]++;
        else failures.push(o.reason as Error);
      }
      if (failures.length) {
        // the delivered ones are recorded: a retry posts only to the others
        const refused = failures.every((f) => f instanceof ApplicationFailure && f.nonRetryable);
        const message = failures.map((f) => f.message).join('; ');
        throw refused ? ApplicationFailure.nonRetryable(message, 'NotifyRejected') : new Error(message);
      }
      return result;
    },
  };
}
