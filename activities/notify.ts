// Notifications: a webhook (POST JSON) behind a small interface, so other channels can be added.
// The URL is read from its file at use: it is a credential and never appears in messages.
import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { redactedUrl, webhookBody, type Notification } from '../common/commands/notify';

export type { Notification };

export interface NotifyRequest {
  webhookUrlFile: string;
  notification: Notification;
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

export async function sendWebhook(req: NotifyRequest, options: { timeoutMs?: number } = {}): Promise<{ status: number }> {
  const url = await readUrl(req.webhookUrlFile);
  const where = redactedUrl(url);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'temporal-runbooks' },
      body: webhookBody(req.notification),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (err) {
    throw new Error(`webhook ${where} unreachable: ${(err as Error).name === 'TimeoutError' ? 'timed out' : ((err as { cause?: Error }).cause?.message ?? (err as Error).message).split(url).join(where)}`);
  }
  await res.body?.cancel().catch(() => undefined);
  if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
    throw ApplicationFailure.nonRetryable(`webhook ${where} refused the notification: HTTP ${res.status}`, 'NotifyRejected');
  }
  if (!res.ok) throw new Error(`webhook ${where} answered HTTP ${res.status}`);
  return { status: res.status };
}

export function createNotifyActivities(options: { timeoutMs?: number } = {}) {
  return {
    /** POSTs the notification as JSON to the webhook whose URL is in `webhookUrlFile`. */
    notify: (req: NotifyRequest) => sendWebhook(req, options),
  };
}
