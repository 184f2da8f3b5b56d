// The worker's metrics and logs end to end (issue 13): a real worker process with its Prometheus
// endpoint on a free port, the dev server, the CLI and the real engine. mxapp is deployed, then
// updated v1 → v2 with its backup first and a canary approval gate: scraped while the gate waits,
// the endpoint shows the SDK's metrics and the waiting gate; scraped after, the update's counter and
// duration and the last verified backup of the app. The worker's log lines are JSON with the run's
// workflow ID, and no secret is in them. Port 18260 and the names mxapp-* belong to this file.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS, GATES_WAITING, LAST_BACKUP_TIMESTAMP_SECONDS, RUN_DURATION_SECONDS, RUNS_TOTAL } from '../../common/run-metrics';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { e2eSetup, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const APP = 'mxapp';
const ENV = 'production';
const UPDATE_ID = `rollingUpdate/${APP}/${ENV}`;
const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-metrics-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
let metricsUrl: string;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One sample of the exposition text: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus' text format (the samples; comments skipped). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(): Promise<Sample[]> {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

function find(samples: Sample[], name: string, labels: Record<string, string>): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** Scrapes until the predicate holds (the worker reads its sources every second here). */
async function scrapeUntil(pred: (s: Sample[]) => boolean, what: string): Promise<Sample[]> {
  let last: Sample[] = [];
  for (let i = 0; i < 600; i++) {
    last = await scrape();
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the metrics never showed ${what}; last scrape:\n${last.filter((s) => s.name.startsWith('runbook_')).map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`).join('\n')}`);
}

async function waitForGate(gate: string): Promise<RunbookStatus> {
  const handle = client.workflow.getHandle(UPDATE_ID);
  for (let i = 0; i < 2400; i++) {
    const st = await handle.query(statusQuery).catch(() => undefined);
    if (st?.pendingGates.some((g) => g.gate === gate)) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the ${gate} gate never opened`);
}

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters: { name: [`${APP}-`] } })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  for (const id of [UPDATE_ID, `firstDeploy/${APP}/${ENV}`, `nightlyBackup/${APP}/${ENV}`, `lock/${APP}/${ENV}`]) await client.workflow.getHandle(id).terminate('left over').catch(() => undefined);
  await removeEverything();
  setup = e2eSetup(path.join(__dirname, 'metrics-inventory.yaml'), taskQueue);
  mkdirSync(path.join(setup.dir, 'backups'), { recursive: true });
  // the backup connects as the app's user with the password the postgres container is created with
  const password = /^POSTGRES_PASSWORD=(.*)$/m.exec(readFileSync(path.join(setup.dir, 'postgres.env'), 'utf8'))![1];
  writeFileSync(path.join(setup.dir, 'pg-password'), `${password}\n`, { mode: 0o600 });
  const address = `127.0.0.1:${await freePort()}`;
  metricsUrl = `http://${address}/metrics`;
  worker = new WorkerProcess({ ...setup.env, RUNBOOK_METRICS_ADDRESS: address, RUNBOOK_METRICS_REFRESH: '1s', RUNBOOK_LOG_LEVEL: 'DEBUG', RUNBOOK_LOG_FORMAT: 'json' });
  await worker.start();
  const r = await runCli(['deploy', APP, '--env', ENV], setup.env);
  if (r.code !== 0) throw new Error(`deploy failed: ${r.stdout}\n${r.stderr}`);
});

afterAll(async () => {
  await worker?.kill('SIGTERM');
  for (const id of [UPDATE_ID, `lock/${APP}/${ENV}`]) await client?.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await connection?.close();
  await removeEverything();
});

it('scraped during an update: the SDK metrics and the waiting gate; after it: the update counted with its duration, and the backup it took as the last one', async () => {
  const before = await scrape();
  // the SDK's own metrics are on the same endpoint
  expect(before.some((s) => s.name.startsWith('temporal_'))).toBe(true);
  expect(find(before, RUNS_TOTAL, { runbook: 'rollingUpdate', app: APP })).toEqual([]);
  // no HTTPS configured for mxapp: no certificate series
  expect(find(before, CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS, { app: APP })).toEqual([]);

  const startedAt = Date.now();
  const started = await runCli(['update', APP, '--env', ENV, '--version', 'v2', '--canary', 'approve', '--detach'], setup.env);
  expect(started.code).toBe(0);
  await waitForGate('canary');
  const during = await scrapeUntil(
    (s) => find(s, GATES_WAITING, { runbook: 'rollingUpdate', app: APP, env: ENV }).some((g) => g.value === 1) && find(s, LAST_BACKUP_TIMESTAMP_SECONDS, { app: APP, env: ENV }).length > 0,
    'the canary gate waiting and the backup taken before the first batch',
  );
  expect(find(during, RUNS_TOTAL, { runbook: 'rollingUpdate', app: APP })).toEqual([]);
  // the update's backup (its child nightlyBackup) ended before the first batch: it is the app's last backup now
  const backupDuring = find(during, LAST_BACKUP_TIMESTAMP_SECONDS, { app: APP, env: ENV, database: 'main' });
  expect(backupDuring).toHaveLength(1);

  expect((await runCli(['approve', UPDATE_ID, '--gate', 'canary', '--by', 'alice'], setup.env)).code).toBe(0);
  const watched = await runCli(['watch', UPDATE_ID], setup.env);
  expect(watched.stdout).toMatch(/succeeded/);
  const endedAt = Date.now();

  const after = await scrapeUntil(
    (s) => find(s, RUNS_TOTAL, { runbook: 'rollingUpdate', app: APP, env: ENV, outcome: 'succeeded' }).length > 0 && find(s, GATES_WAITING, { runbook: 'rollingUpdate', app: APP, env: ENV }).every((g) => g.value === 0),
    "the update's counter and the gate no longer waiting",
  );
  const labels = { runbook: 'rollingUpdate', app: APP, env: ENV, outcome: 'succeeded', taskQueue };
  expect(find(after, RUNS_TOTAL, labels).map((s) => s.value)).toEqual([1]);
  const [count] = find(after, `${RUN_DURATION_SECONDS}_count`, labels);
  const [sum] = find(after, `${RUN_DURATION_SECONDS}_sum`, labels);
  expect(count.value).toBe(1);
  // the run's duration, from its start to its end, is within the time this test waited for it
  expect(sum.value).toBeGreaterThan(0);
  expect(sum.value).toBeLessThanOrEqual((endedAt - startedAt) / 1000 + 1);
  expect(find(after, `${RUN_DURATION_SECONDS}_bucket`, { ...labels, le: '+Inf' }).map((s) => s.value)).toEqual([1]);
  // the child backup is a runbook run too
  expect(find(after, RUNS_TOTAL, { runbook: 'nightlyBackup', app: APP, env: ENV, outcome: 'succeeded' }).map((s) => s.value)).toEqual([1]);

  const [lastBackup] = find(after, LAST_BACKUP_TIMESTAMP_SECONDS, { app: APP, env: ENV, database: 'main' });
  // manifests keep the time to the second (the file name's)
  expect(lastBackup.value).toBeGreaterThanOrEqual(Math.floor(startedAt / 1000));
  expect(lastBackup.value).toBeLessThanOrEqual(endedAt / 1000);
  expect(find(after, 'runbook_metrics_source_up', { source: 'backups', app: APP, env: ENV }).map((s) => s.value)).toEqual([1]);
});

it('the worker logs one JSON object per line, with the workflow ID of each run, and no secret', () => {
  const lines = worker.output.split('\n').filter((l) => l.trim());
  const parsed = lines.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON line: ${l}`);
    }
  });
  for (const p of parsed) expect(p).toEqual(expect.objectContaining({ time: expect.any(String), level: expect.any(String), message: expect.any(String) }));
  expect(parsed.some((p) => p.workflowId === UPDATE_ID && typeof p.runId === 'string')).toBe(true);
  expect(parsed.some((p) => p.workflowId === UPDATE_ID && typeof p.activityType === 'string')).toBe(true);
  for (const secret of setup.secrets) expect(worker.output).not.toContain(secret);
});
