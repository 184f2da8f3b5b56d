// The webhook notifier against a real HTTP receiver on loopback: the JSON it posts, what counts as
// refused (4xx: non-retryable) or transient (5xx, unreachable), and the URL never in an error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createNotifyActivities, sendWebhook, type Notification } from '../../activities/notify';
import type { RunbookEvent } from '../../common/commands/notify';
import { rejectionOf } from '../helpers/rejection';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-notify-'));
const received: { path: string; contentType?: string; idempotencyKey?: string; body: unknown }[] = [];
let status = 200;
let port = 0;
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    received.push({ path: req.url ?? '', contentType: req.headers['content-type'], idempotencyKey: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(body) });
    res.writeHead(status).end('ok');
  });
});

const secretPath = '/hooks/T000/B000/s3cr3t-token';
const urlFile = path.join(tmp, 'webhook-url');
const notification: Notification = {
  severity: 'failure',
  runbook: 'nightlyBackup',
  app: 'shop',
  env: 'production',
  title: 'backup failed; no backup was pruned',
  details: 'main: pg_dump failed (exit code 1)',
  workflowId: 'nightlyBackup/shop/production-2027-01-01T02:00:00Z',
  runId: 'run-1',
  at: '2027-01-01T02:03:00.000Z',
};

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  writeFileSync(urlFile, `http://127.0.0.1:${port}${secretPath}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  received.length = 0;
  status = 200;
});

it('posts the notification as JSON with a Slack-style text line', async () => {
  expect(await sendWebhook({ webhookUrlFile: urlFile, notification })).toEqual({ status: 200 });
  expect(received).toHaveLength(1);
  expect(received[0].path).toBe(secretPath);
  expect(received[0].contentType).toBe('application/json');
  expect(received[0].body).toMatchObject({ ...notification, text: expect.stringMatching(/^:red_circle: nightlyBackup shop\/production: backup failed; no backup was pruned\nmain: pg_dump failed/) });
});

it('a 4xx answer is a non-retryable refusal that does not show the URL path', async () => {
  status = 403;
  const f = (await rejectionOf(sendWebhook({ webhookUrlFile: urlFile, notification }))) as ApplicationFailure;
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toBe(`webhook http://127.0.0.1:${port}/… refused the notification: HTTP 403`);
});

it('a 5xx answer and an unreachable receiver are transient (retried), without the URL path', async () => {
  status = 503;
  const f = await rejectionOf(sendWebhook({ webhookUrlFile: urlFile, notification }));
  expect((f as ApplicationFailure).nonRetryable).toBeFalsy();
  expect(f.message).toMatch(/answered HTTP 503/);
  const closed = path.join(tmp, 'closed-url');
  writeFileSync(closed, `http://127.0.0.1:1${secretPath}`);
  const g = await rejectionOf(sendWebhook({ webhookUrlFile: closed, notification }, { timeoutMs: 2000 }));
  expect((g as ApplicationFailure).nonRetryable).toBeFalsy();
  expect(g.message).toMatch(/^webhook http:\/\/127\.0\.0\.1:1\/… unreachable/);
  for (const e of [f, g]) expect(`${e.message} ${e.stack}`).not.toContain('s3cr3t');
});

it('a missing or malformed URL file is a clear non-retryable configuration error', async () => {
  const missing = (await rejectionOf(sendWebhook({ webhookUrlFile: path.join(tmp, 'nope'), notification }))) as ApplicationFailure;
  expect(missing.nonRetryable).toBe(true);
  expect(missing.message).toMatch(/cannot read the webhook URL file .*nope: ENOENT/);
  const bad = path.join(tmp, 'bad');
  writeFileSync(bad, 'not a url s3cr3t');
  const f = (await rejectionOf(sendWebhook({ webhookUrlFile: bad, notification }))) as ApplicationFailure;
  expect(f.message).toBe(`the webhook URL file ${bad} does not hold a URL`);
});

describe('notifyRunbookEvent: the app/env notify webhooks, exactly once per event', () => {
  const stateDir = path.join(tmp, 'state');
  const slackUrlFile = path.join(tmp, 'slack-url');
  const inventoryPath = path.join(tmp, 'inventory.yaml');
  const workflowExecution = { workflowId: 'firstDeploy/shop/production', runId: 'run-7' };
  const gateOpened: RunbookEvent = { kind: 'gate-opened', gate: 'go-live', description: 'Expose shop v2 (production) through the proxy', approvers: ['alice', 'bob'], minApprovals: 1, deadline: '2027-01-03T10:00:00.000Z' };
  const activities = () => createNotifyActivities({ inventoryPath, notifyStateDir: stateDir }, { timeoutMs: 2000 });
  const inActivity = <T>(fn: () => Promise<T>) => new MockActivityEnvironment({ workflowExecution, workflowNamespace: 'default' }).run(fn);
  const request = (event: RunbookEvent) => ({ runbook: 'firstDeploy', app: 'shop', env: 'production', event });

  beforeAll(() => {
    writeFileSync(slackUrlFile, `http://127.0.0.1:${port}/slack/T000/s3cr3t-slack\n`, { mode: 0o600 });
    writeFileSync(
      inventoryPath,
      `hosts:\n  one: { docker: { socketPath: /run/x.sock } }\napps:\n  shop:\n    image: reg/shop\n    port: 8080\n    proxyImage: "reg/nginx:1"\n` +
        `    notify:\n      webhooks: [{ urlFile: ${urlFile} }, { urlFile: ${slackUrlFile}, format: slack }]\n      uiUrl: http://ui.test:8233/\n      remindBefore: 2h\n` +
        `    environments:\n      production: { hosts: [one], proxy: { hostPort: 8080 } }\n      staging: { hosts: [one], proxy: { hostPort: 8081 } }\n`,
    );
  });
  beforeEach(() => rmSync(stateDir, { recursive: true, force: true }));

  it('posts a gate opening to each webhook in its format, with the link, who may approve and the Idempotency-Key', async () => {
    const r = await inActivity(() => activities().notifyRunbookEvent(request(gateOpened)));
    expect(r).toEqual({ webhooks: 2, sent: 2, alreadySent: 0, unconfirmed: 0, remindBeforeMs: 7_200_000 });
    received.sort((a, b) => (a.path === secretPath ? -1 : b.path === secretPath ? 1 : 0)); // posted in parallel
    expect(received.map((x) => x.path)).toEqual([secretPath, '/slack/T000/s3cr3t-slack']);
    const link = 'http://ui.test:8233/namespaces/default/workflows/firstDeploy%2Fshop%2Fproduction/run-7/history';
    expect(received[0].idempotencyKey).toBe('firstDeploy/shop/production/run-7/gate-opened/go-live');
    expect(received[0].body).toMatchObject({
      eventId: 'firstDeploy/shop/production/run-7/gate-opened/go-live',
      severity: 'info',
      link,
      title: 'firstDeploy shop/production waits for approval of gate "go-live" (may approve: alice, bob; until 2027-01-03T10:00:00.000Z)',
      approve: expect.stringContaining('runbook approve firstDeploy/shop/production --gate go-live --by <you>'),
      event: gateOpened,
    });
    const slack = received[1].body as { text: string; blocks: { text: { text: string } }[] };
    expect(slack.text).toMatch(/^firstDeploy shop\/production waits for approval of gate "go-live"/);
    expect(slack.blocks[0].text.text).toContain(`<${link}|firstDeploy/shop/production>`);
  });

  it('a retried activity posts nothing again; an event of another gate is posted', async () => {
    await inActivity(() => activities().notifyRunbookEvent(request(gateOpened)));
    expect(await inActivity(() => activities().notifyRunbookEvent(request(gateOpened)))).toMatchObject({ sent: 0, alreadySent: 2 });
    expect(received).toHaveLength(2);
    await inActivity(() => activities().notifyRunbookEvent(request({ ...gateOpened, gate: 'canary' })));
    expect(received).toHaveLength(4);
  });

  it('a POST cut off by a dying worker is not repeated (reported unconfirmed); one that failed for a known reason is', async () => {
    // what a worker killed during the call leaves: the delivery recorded as "sending"
    const first = createNotifyActivities({ inventoryPath, notifyStateDir: stateDir });
    status = 503;
    const failed = await rejectionOf(inActivity(() => first.notifyRunbookEvent(request(gateOpened))));
    expect(failed.message).toMatch(/answered HTTP 503; .*answered HTTP 503/);
    expect(`${failed.message}`).not.toContain('s3cr3t');
    status = 200;
    expect(await inActivity(() => first.notifyRunbookEvent(request(gateOpened)))).toMatchObject({ sent: 2 });
    expect(received).toHaveLength(4); // two refused with 503, then two delivered

    const { DeliveryLog } = await import('../../activities/notify');
    const log = new DeliveryLog(stateDir);
    const failedEvent: RunbookEvent = { kind: 'failed', error: 'boom' };
    const id = 'firstDeploy/shop/production/run-7/failed';
    await log.set(`${id}#${urlFile}#json`, 'sending');
    received.length = 0;
    expect(await inActivity(() => first.notifyRunbookEvent(request(failedEvent)))).toMatchObject({ sent: 1, unconfirmed: 1 });
    expect(received.map((x) => x.path)).toEqual(['/slack/T000/s3cr3t-slack']);
  });

  it('no notify for the app: nothing is sent; an environment notify replaces the app one', async () => {
    writeFileSync(
      path.join(tmp, 'inv2.yaml'),
      `hosts:\n  one: { docker: { socketPath: /run/x.sock } }\napps:\n  shop:\n    image: reg/shop\n    port: 8080\n    proxyImage: "reg/nginx:1"\n` +
        `    environments:\n      production: { hosts: [one], proxy: { hostPort: 8080 } }\n      staging:\n        hosts: [one]\n        proxy: { hostPort: 8081 }\n        notify: { webhooks: [{ urlFile: ${slackUrlFile}, format: slack }] }\n`,
    );
    const a = createNotifyActivities({ inventoryPath: path.join(tmp, 'inv2.yaml'), notifyStateDir: stateDir });
    expect(await inActivity(() => a.notifyRunbookEvent(request(gateOpened)))).toEqual({ webhooks: 0, sent: 0, alreadySent: 0, unconfirmed: 0 });
    expect(await inActivity(() => a.notifyRunbookEvent({ ...request(gateOpened), env: 'staging' }))).toMatchObject({ webhooks: 1, sent: 1 });
    expect(received.map((x) => x.path)).toEqual(['/slack/T000/s3cr3t-slack']);
  });
});
