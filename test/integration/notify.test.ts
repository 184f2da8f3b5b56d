// The webhook notifier against a real HTTP receiver on loopback: the JSON it posts, what counts as
// refused (4xx: non-retryable) or transient (5xx, unreachable), and the URL never in an error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { sendWebhook, type Notification } from '../../activities/notify';
import { rejectionOf } from '../helpers/rejection';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-notify-'));
const received: { path: string; contentType?: string; body: unknown }[] = [];
let status = 200;
let port = 0;
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(body) });
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
