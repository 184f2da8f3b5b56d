// A person is told when they are needed, once: a real deploy on the local engine stops at its go-live
// gate, the worker posts one webhook with the run's link to a receiver on loopback, and is SIGKILLed
// as its post arrives, before it hears the answer. A new worker retries the notification activity: it finds the
// delivery recorded and posts nothing again. Approved from the CLI, the deploy goes live; then
// `runbook stop` takes it down and keeps its volume.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import Docker from 'dockerode';
import { renderTemplate } from '../../common/template';
import { runCli, WorkerProcess } from '../helpers/e2e';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(240_000);

const APP = 'notifyapp';
const ENV = 'production';
const WORKFLOW_ID = `firstDeploy/${APP}/${ENV}`;
const UI_URL = 'http://127.0.0.1:8233';

const INVENTORY_TEMPLATE = `
hosts:
  local:
    docker: { socketPath: "\${DOCKER_SOCK}" }
    minFreeDiskMb: 256
apps:
  ${APP}:
    image: 127.0.0.1:5000/demo-app
    port: 8080
    healthCheck: { path: /health, timeoutSeconds: 60 }
    envFile: { path: "\${SECRETS_DIR}/app.env", required: [SECRET_KEY] }
    proxyImage: 127.0.0.1:5000/nginx:1
    smokeTest: { path: /version, expectBody: "{{version}}" }
    stopTimeoutSeconds: 5
    notify:
      webhooks: [{ urlFile: "\${SECRETS_DIR}/webhook-url" }]
      uiUrl: ${UI_URL}
    environments:
      ${ENV}:
        hosts: [local]
        replicas: 1
        version: v1
        proxy: { hostPort: 18196 }
        approvers: [alice]
        goLiveApproval: true
`;

interface Received {
  at: number;
  idempotencyKey?: string;
  body: { eventId: string; link?: string; title: string; event: { kind: string; gate?: string } };
  raw: string;
}

const docker = new Docker({ socketPath: DOCKER_SOCK });
const secretKey = `sk-${randomBytes(12).toString('hex')}`;
const hookToken = `hook-${randomBytes(12).toString('hex')}`;
const received: Received[] = [];
let killOnFirst: WorkerProcess | undefined;
let dir: string;
let env: NodeJS.ProcessEnv;
let workers: WorkerProcess[] = [];
let connection: Connection;
let client: Client;

const receiver = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (c: Buffer) => (raw += c.toString()));
  req.on('end', () => {
    received.push({ at: Date.now(), idempotencyKey: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(raw), raw });
    // the post has arrived, the worker dies before it hears the answer: it cannot have reported the
    // activity complete (killed right after answering, a fast worker sometimes had)
    const victim = killOnFirst;
    killOnFirst = undefined;
    void (victim ? victim.kill('SIGKILL') : Promise.resolve()).finally(() => res.end('ok'));
  });
});

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

async function terminateLeftoverRuns(): Promise<void> {
  for (const id of [WORKFLOW_ID, `lock/${APP}/${ENV}`]) await client.workflow.getHandle(id).terminate('left over by an earlier test run').catch(() => undefined);
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await terminateLeftoverRuns();
  await removeEverything();
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-notify-'));
  writeFileSync(path.join(dir, 'app.env'), `SECRET_KEY=${secretKey}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'webhook-url'), `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/${hookToken}\n`, { mode: 0o600 });
  const inventoryPath = path.join(dir, 'inventory.yaml');
  writeFileSync(inventoryPath, renderTemplate(INVENTORY_TEMPLATE, { DOCKER_SOCK, SECRETS_DIR: dir }));
  env = { ...process.env, TEMPORAL_ADDRESS, RUNBOOK_TASK_QUEUE: `e2e-notify-${randomUUID()}`, RUNBOOK_INVENTORY: inventoryPath, RUNBOOK_STATE_DIR: path.join(dir, 'state') };
});

afterAll(async () => {
  for (const w of workers) await w.kill('SIGTERM');
  if (client) await terminateLeftoverRuns();
  await connection?.close();
  await new Promise((r) => receiver.close(r));
  await removeEverything();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await docker.getVolume(`${APP}-${ENV}-proxy-tls`).remove().catch(() => undefined);
});

/** The gate notification's activity once completed: its attempt and result, from the history. */
async function notificationOutcome(): Promise<{ scheduled: number; attempt: number; result: { sent: number; alreadySent: number; unconfirmed: number } } | undefined> {
  const E = temporal.api.enums.v1.EventType;
  const events = (await client.workflow.getHandle(WORKFLOW_ID).fetchHistory()).events ?? [];
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'notifyRunbookEvent').map((e) => String(e.eventId));
  const completed = events.find((e) => e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED && String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === scheduled[0]);
  if (!completed) return undefined;
  const started = events.find((e) => e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_STARTED && String(e.activityTaskStartedEventAttributes?.scheduledEventId) === scheduled[0]);
  const result = JSON.parse(Buffer.from(completed.activityTaskCompletedEventAttributes!.result!.payloads![0].data!).toString('utf8'));
  return { scheduled: scheduled.length, attempt: started?.activityTaskStartedEventAttributes?.attempt ?? 0, result };
}

it('the go-live gate is posted once, with the link; the worker killed right after and its retry post nothing more', async () => {
  const first = new WorkerProcess(env);
  workers.push(first);
  await first.start();
  killOnFirst = first;
  const started = await runCli(['deploy', APP, '--env', ENV, '--detach'], env);
  expect(started.stderr).toBe('');
  expect(started.code).toBe(0);
  const runId = (await client.workflow.getHandle(WORKFLOW_ID).describe()).runId;

  const gateCall = await waitFor('the go-live webhook call', 180_000, () => received.find((r) => r.body.event.gate === 'go-live'));
  expect(gateCall.idempotencyKey).toBe(`${WORKFLOW_ID}/${runId}/gate-opened/go-live`);
  expect(gateCall.body.link).toBe(`${UI_URL}/namespaces/default/workflows/${encodeURIComponent(WORKFLOW_ID)}/${runId}/history`);
  expect(gateCall.body.title).toMatch(/^firstDeploy notifyapp\/production waits for approval of gate "go-live" \(may approve: alice; until /);
  for (const secret of [secretKey, hookToken]) expect(gateCall.raw).not.toContain(secret);
  await waitFor('the first worker to be dead', 10_000, () => (killOnFirst === undefined ? true : undefined));

  // a new worker: the notification activity is retried once its 30 s timeout has passed (a decision
  // would cancel it: the gate is approved only once the retry has ended)
  const second = new WorkerProcess(env);
  workers.push(second);
  await second.start();
  await waitFor('the retried notification to end', 120_000, notificationOutcome);
  const approved = await runCli(['approve', WORKFLOW_ID, '--gate', 'go-live', '--by', 'alice'], env);
  expect(approved.stdout).toContain('accepted');
  await client.workflow.getHandle(WORKFLOW_ID).result();

  const { scheduled, attempt, result } = (await notificationOutcome())!;
  expect(scheduled).toBe(1); // the gate's notification; the run succeeded
  console.log(`notifyRunbookEvent: completed on attempt ${attempt}: ${JSON.stringify(result)}`);
  // the retry found the delivery recorded as "sending" (the worker died before the answer) and posted nothing
  expect(attempt).toBeGreaterThanOrEqual(2);
  expect([result.sent, result.alreadySent, result.unconfirmed]).toEqual([0, 0, 1]);
  expect(received.filter((r) => r.body.event.kind === 'gate-opened')).toHaveLength(1);
  expect(received).toHaveLength(1);
});

it('then runbook stop takes the deployed app down: no container or network of it is left, its volume stays', async () => {
  const stopped = await runCli(['stop', APP, '--env', ENV], env);
  if (stopped.code !== 0) throw new Error(`runbook stop failed:\n${stopped.stdout}\n${stopped.stderr}`);
  expect(stopped.stdout).toContain(`stopApp/${APP}/${ENV}: succeeded`);
  expect(await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })).toEqual([]);
  expect(await docker.listNetworks({ filters: { label: [`runbook.app=${APP}`] } })).toEqual([]);
  expect((await docker.getVolume(`${APP}-${ENV}-proxy-tls`).inspect()).Name).toBe(`${APP}-${ENV}-proxy-tls`);
  // nothing acknowledged any more at the proxy's port
  await expect(fetch('http://127.0.0.1:18196/version')).rejects.toThrow();
});
