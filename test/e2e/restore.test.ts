// The operator's week, end to end: deploy → rolling update → restore, on two engines (this
// machine's, and host 2 over SSH), with a steady stream of writes (POST /items through the proxy).
// The restore must stop and start the versioned replicas on both hosts, lose no acknowledged write
// (each is in the restored database or in the kept previous one), and a restore cancelled during
// its swap must end with the app up on its original data. Port 18230 and rsapp-* are this file's.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import Docker from 'dockerode';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import type { RestoreBackupResult } from '../../workflows/restoreBackup';
import type { HousekeepingResult } from '../../workflows/housekeeping';
import { e2eSetup, historyText, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { psqlIn, servedVersion, sleep, VersionSampler, waitFor, WriteStream } from '../helpers/e2e-app';
import { DOCKER_SOCK, RUNBOOK_HOME, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(600_000);

const APP = 'rsapp';
const ENV = 'production';
const HOST2_ADDRESS = '10.201.0.2';
const HOST2_SOCK = '/run/temporal-runbooks/docker2.sock';
const engines = { local: new Docker({ socketPath: DOCKER_SOCK }), host2: new Docker({ socketPath: HOST2_SOCK }) };
const PROXY = 'http://127.0.0.1:18230';
const HOST2_PROXY = `http://${HOST2_ADDRESS}:18230`;
const PG = `${APP}-${ENV}-postgres`;
const RESTORE_ID = `restoreBackup/${APP}/${ENV}`;
const taskQueue = `e2e-restore-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
const timings: Record<string, string> = {};

const psql = (sql: string, database = 'demo') => psqlIn(engines.local, PG, sql, database);
const databases = async () => (await psql(`SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database`, 'postgres')).split(',');
const bodiesIn = async (database: string) => new Set((await psql('SELECT body FROM items', database)).split('\n').filter(Boolean));

/** Every web container of the app on both engines, with when it last started. */
async function web(): Promise<{ host: string; name: string; version: string; running: boolean; startedAt: number }[]> {
  const all = [];
  for (const [host, d] of Object.entries(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } })) {
      const info = await d.getContainer(c.Id).inspect();
      all.push({ host, name: c.Names[0].slice(1), version: c.Labels['runbook.version'], running: info.State.Running, startedAt: Date.parse(info.State.StartedAt) });
    }
  }
  return all.sort((a, b) => a.name.localeCompare(b.name));
}

async function removeEverything(): Promise<void> {
  for (const d of Object.values(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await d.getContainer(c.Id).remove({ force: true });
    for (const n of await d.listNetworks({ filters: { name: [`${APP}-`] } })) await d.getNetwork(n.Id).remove().catch(() => undefined);
    const { Volumes } = await d.listVolumes();
    for (const v of (Volumes ?? []).filter((v) => v.Name.startsWith(`${APP}-`))) await d.getVolume(v.Name).remove().catch(() => undefined);
  }
}

async function terminateLeftovers(): Promise<void> {
  for await (const wf of client.workflow.list({ query: `RunbookApp = '${APP}' AND ExecutionStatus = 'Running'` })) {
    await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('e2e: left over').catch(() => undefined);
  }
  await client.workflow.getHandle(`lock/${APP}/${ENV}`).terminate('e2e: left over').catch(() => undefined);
}

async function cli(args: string[], what: string) {
  const r = await runCli(args, setup.env);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  return r;
}

/** Starts a restore of the newest verified backup and approves it; returns its run id. */
async function startApprovedRestore(): Promise<string> {
  await cli(['restore', APP, '--env', ENV, '--detach'], 'restore');
  const handle = client.workflow.getHandle(RESTORE_ID);
  await waitFor('the restore gate', async () => ((await handle.query(statusQuery)) as RunbookStatus).pendingGates.some((g) => g.gate === 'restore'));
  await cli(['approve', RESTORE_ID, '--gate', 'restore', '--by', 'alice'], 'approve');
  return (await handle.describe()).runId;
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await terminateLeftovers();
  await removeEverything();
  const template = path.join(os.tmpdir(), `restore-inventory-${process.pid}.yaml`);
  writeFileSync(
    template,
    readFileSync(path.join(__dirname, 'restore-inventory.yaml'), 'utf8')
      .replaceAll('${HOST2_ADDRESS}', HOST2_ADDRESS)
      .replaceAll('${HOST2_DOCKER_SOCK}', HOST2_SOCK)
      .replaceAll('${HOST2_FINGERPRINT}', readFileSync(`${RUNBOOK_HOME}/host2/ssh/host_fingerprint`, 'utf8').trim()),
  );
  setup = e2eSetup(template, taskQueue);
  const password = /^POSTGRES_PASSWORD=(.*)$/m.exec(readFileSync(path.join(setup.dir, 'postgres.env'), 'utf8'))![1];
  writeFileSync(path.join(setup.dir, 'pg-password'), `${password}\n`, { mode: 0o600 });
  worker = new WorkerProcess(setup.env);
  await worker.start();
});

afterAll(async () => {
  // eslint-disable-next-line no-console
  console.log(`restore e2e timings:\n${Object.entries(timings).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
  if (client) await terminateLeftovers().catch(() => undefined);
  await worker?.kill('SIGTERM');
  await connection?.close();
  await removeEverything();
});

let restoredFrom: string;

const itemIndexes = async () => (await psql(`SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'items'`)).split(',');

/** The steps of the app's newest run of `workflowType`. */
async function lastRun(workflowType: string): Promise<{ workflowId: string; steps: string[] }> {
  for await (const wf of client.workflow.list({ query: `RunbookApp = '${APP}' AND WorkflowType = '${workflowType}'` })) {
    const st = (await client.workflow.getHandle(wf.workflowId, wf.runId).query(statusQuery)) as RunbookStatus;
    return { workflowId: wf.workflowId, steps: st.steps.map((x) => x.step) };
  }
  throw new Error(`no ${workflowType} run of ${APP}`);
}

it('deploy v1, then a rolling update to v2 (its backup first): versioned replicas on both engines, writes acknowledged', async () => {
  let t0 = Date.now();
  await cli(['deploy', APP, '--env', ENV], 'deploy');
  timings.deploy = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const before = await fetch(`${PROXY}/items`, { method: 'POST', body: 'before-update' });
  expect(before.status).toBe(201);
  expect(await itemIndexes()).toEqual(['items_pkey']);
  // through the update: writes at 30/s, and the version served, sampled every 50 ms
  const writes = new WriteStream(PROXY, 30, 300, `update-${randomUUID().slice(0, 8)}`);
  const served = new VersionSampler(PROXY);
  t0 = Date.now();
  await cli(['update', APP, '--env', ENV, '--version', 'v2'], 'update');
  timings.update = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  await writes.stop();
  const versions = await served.stop();
  timings['update load'] = `${writes.acked.length} writes acknowledged, ${writes.refused.length} refused; slowest ${writes.slowestMs} ms; served ${versions.join(' → ')}`;
  expect(writes.refused).toEqual([]);
  // v2's migration ran before any v2 replica (v1 served on the migrated schema until the switch)
  expect(versions).toEqual(['v1', 'v2']);
  expect(await itemIndexes()).toEqual(['items_created_at', 'items_pkey']);
  const update = await lastRun('rollingUpdate');
  expect(update.steps.indexOf('migrate')).toBeGreaterThan(update.steps.indexOf('backup'));
  expect(update.steps.indexOf('migrate')).toBeLessThan(update.steps.findIndex((s) => s.startsWith('batch 1/2: start')));
  const fleet = await web();
  expect(fleet.map((c) => [c.host, c.name, c.version, c.running])).toEqual([
    ['local', 'rsapp-production-web-1-v2', 'v2', true],
    ['host2', 'rsapp-production-web-2-v2', 'v2', true],
  ]);
  expect(await servedVersion(PROXY)).toEqual({ status: 200, body: 'v2' });
  // a second deploy of what runs converges on it: nothing to change, whatever the names
  const again = await cli(['deploy', APP, '--env', ENV], 'deploy again');
  expect(again.stdout).toMatch(/nothing to change: already deployed as planned/);
  expect((await web()).map((c) => c.name)).toEqual(fleet.map((c) => c.name));
});

it('an update whose migration fails changes nothing: every replica still runs v2 and serves, the failed migration kept for its logs', async () => {
  const fleet = await web();
  const r = await runCli(['update', APP, '--env', ENV, '--version', 'bad-migration', '--no-backup'], setup.env);
  expect(r.code).not.toBe(0);
  expect(r.stdout + r.stderr).toMatch(/the migrations of bad-migration failed: rsapp-production-migrate-bad-migration exited with code 1/);
  expect(r.stdout + r.stderr).toMatch(/migration 'a broken one' failed: .*no_such_table.*nothing applied/);
  expect(r.stdout + r.stderr).toMatch(/no replica was changed: every replica still runs v2/);
  expect(await web()).toEqual(fleet);
  expect(await servedVersion(PROXY)).toEqual({ status: 200, body: 'v2' });
  expect(await servedVersion(HOST2_PROXY)).toEqual({ status: 200, body: 'v2' });
  expect(await itemIndexes()).toEqual(['items_created_at', 'items_pkey']);
  const kept = await engines.local.getContainer('rsapp-production-migrate-bad-migration').inspect();
  expect([kept.State.Running, kept.State.ExitCode]).toEqual([false, 1]);
  // v2's own migration container was removed after it succeeded
  expect(await engines.local.listContainers({ all: true, filters: { name: ['rsapp-production-migrate-v2'] } })).toEqual([]);
});

it('restore under 100 writes/s: the versioned replicas on both hosts stop and start, no acknowledged write is lost', async () => {
  const writes = new WriteStream(PROXY, 100, 240, `restore-${randomUUID().slice(0, 8)}`);
  await sleep(1500);
  const t0 = Date.now();
  const runId = await startApprovedRestore();
  const watched = await runCli(['watch', RESTORE_ID], setup.env);
  timings.restore = `${((Date.now() - t0) / 1000).toFixed(1)} s under load`;
  await sleep(1500); // writes reach the restored database too
  await writes.stop();
  if (watched.code !== 0) throw new Error(`restore failed:\n${watched.stdout}\n${watched.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  const result = (await client.workflow.getHandle(RESTORE_ID, runId).result()) as RestoreBackupResult;
  restoredFrom = result.restored;

  // both versioned replicas were stopped and started by this restore
  for (const c of await web()) {
    expect([c.name, c.running]).toEqual([c.name, true]);
    expect(c.startedAt).toBeGreaterThan(t0);
  }
  const steps = ((await client.workflow.getHandle(RESTORE_ID, runId).query(statusQuery)) as RunbookStatus).steps.map((s) => s.step);
  expect(steps).toEqual(expect.arrayContaining(['read fleet', 'stop app', 'swap in restored database', 'migrate restored database', 'start app', 'health check', 'keep previous database']));
  // the backup was taken before v2's migration: v2's migration ran again on the restored database
  expect(await itemIndexes()).toEqual(['items_created_at', 'items_pkey']);

  // every acknowledged write is in the live (restored) database or in the kept previous one
  expect(result.previousDatabase).toMatch(/^scratch_previous_main_/);
  expect(await databases()).toContain(result.previousDatabase);
  const live = await bodiesIn('demo');
  const previous = await bodiesIn(result.previousDatabase);
  const lost = writes.acked.filter((w) => !live.has(w.body) && !previous.has(w.body));
  timings.writes = `${writes.acked.length} acknowledged, ${writes.refused.length} refused (${[...new Set(writes.refused.map((r) => r.status))].map((code) => `${code === 0 ? 'no answer in 5 s' : `HTTP ${code}`}: ${writes.refused.filter((r) => r.status === code).length}`).join(', ')}), ${lost.length} lost; ${previous.size} rows kept in ${result.previousDatabase}`;
  expect(writes.acked.length).toBeGreaterThan(200);
  expect(lost).toEqual([]);
  // while the app was stopped the proxies answered with the maintenance page: 503 and Retry-After, never a 502
  expect(steps).toEqual(expect.arrayContaining(['maintenance on', 'maintenance off']));
  // (status 0: no answer within the client's 5 s, when this 2-core machine is busy; not an answer of the proxy)
  const answered = writes.refused.filter((r) => r.status !== 0);
  expect(answered.filter((r) => r.status !== 503 || r.retryAfter !== '30' || !r.body.includes('rsapp is down for maintenance'))).toEqual([]);
  expect(answered.length).toBeGreaterThan(0);
  // the restored database serves: it has the pre-update row, and takes writes
  expect(live.has('before-update')).toBe(true);
  const after = await fetch(`${PROXY}/items`, { method: 'POST', body: 'after-restore' });
  expect(after.status).toBe(201);
  expect(await servedVersion(PROXY)).toEqual({ status: 200, body: 'v2' });
  const history = await historyText(client, RESTORE_ID, runId);
  for (const secret of setup.secrets) expect(history.includes(secret)).toBe(false);
});

it('a restore cancelled during its swap ends with the app up on the original data', async () => {
  expect(restoredFrom).toBeDefined();
  await psql(`INSERT INTO items (body) VALUES ('marker-before-cancelled-restore')`);
  const original = await psql('SELECT count(*) FROM items');
  const runId = await startApprovedRestore();
  const handle = client.workflow.getHandle(RESTORE_ID, runId);
  // cancel as the swap starts (or, on a fast machine, right after it)
  const at = await waitFor(
    'the swap',
    async () => {
      const st = (await handle.query(statusQuery)) as RunbookStatus;
      return ['swap in restored database', 'start app', 'health check'].includes(st.step) ? st.step : undefined;
    },
    120_000,
    10,
  );
  await handle.cancel();
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  timings.cancelled = `cancelled at step "${at}"`;
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/the previous database is live again|the live database was not changed/);
  expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/the app was started again and is healthy/);
  // the app is up, on the original data (the marker row, the same count)
  expect(await servedVersion(PROXY)).toEqual({ status: 200, body: 'v2' });
  expect(await psql(`SELECT count(*) FROM items WHERE body = 'marker-before-cancelled-restore'`)).toBe('1');
  expect(await psql('SELECT count(*) FROM items')).toBe(original);
  for (const c of await web()) expect([c.name, c.running]).toEqual([c.name, true]);
  const posted = await fetch(`${PROXY}/items`, { method: 'POST', body: 'after-cancelled-restore' });
  expect(posted.status).toBe(201);
  // the lock is free again
  const lock = await runCli(['lock', 'status', APP, '--env', ENV], setup.env);
  expect(lock.stdout.trim()).toBe(`${APP}/${ENV} is not locked`);
});

it('the worker SIGKILLed at each step of a restore: the run ends with the app up on one live database, the previous one kept with the last write', async () => {
  await psql(`INSERT INTO items (body) VALUES ('last-write-before-killed-restore')`);
  const t0 = Date.now();
  const runId = await startApprovedRestore();
  const handle = client.workflow.getHandle(RESTORE_ID, runId);
  const points = ['safety backup', 'safety backup drill', 'restore into a side database', 'read fleet', 'stop app', 'swap in restored database', 'start app', 'health check'];
  const killedAt: string[] = [];
  for (const point of points) {
    // the step (or a later one, when it went by while the worker restarted) has started; the steps
    // after "stop app" can take milliseconds, so the run may also have ended by now
    const step = await waitFor(
      `step "${point}"`,
      async () => {
        const st = (await handle.query(statusQuery)) as RunbookStatus;
        if (st.phase === 'succeeded' || st.phase === 'failed') return 'ended';
        return points.indexOf(st.step) >= points.indexOf(point) && st.steps.at(-1)?.state === 'running' ? st.step : undefined;
      },
      180_000,
      10,
    );
    if (step === 'ended') break;
    if (killedAt.includes(step)) continue;
    await worker.kill('SIGKILL');
    killedAt.push(step);
    worker = new WorkerProcess(setup.env);
    await worker.start();
  }
  const result = (await handle.result()) as RestoreBackupResult;
  timings.killed = `${killedAt.length} SIGKILLs (${killedAt.join(', ')}); restore took ${((Date.now() - t0) / 1000).toFixed(1)} s`;
  // every step that takes seconds was killed, and at least one from reading the fleet to the health
  // check (each of those can take milliseconds: which one is seen varies); a retried swap is
  // covered by the backup integration test (swapInRestoredDatabase twice)
  expect(killedAt.slice(0, 3)).toEqual(points.slice(0, 3));
  expect(killedAt.length).toBeGreaterThanOrEqual(4);
  // the app is up on the live database; the previous one is kept and holds the last write
  expect(await servedVersion(PROXY)).toEqual({ status: 200, body: 'v2' });
  for (const c of await web()) expect([c.name, c.running]).toEqual([c.name, true]);
  expect(await databases()).toEqual(expect.arrayContaining(['demo', result.previousDatabase]));
  expect(await psql(`SELECT count(*) FROM items WHERE body = 'last-write-before-killed-restore'`, result.previousDatabase)).toBe('1');
  expect(await psql(`SELECT count(*) FROM items WHERE body = 'last-write-before-killed-restore'`)).toBe('0');
  const posted = await fetch(`${PROXY}/items`, { method: 'POST', body: 'after-killed-restore' });
  expect(posted.status).toBe(201);
});

it('runbook maintenance on: both hosts answer 503 with Retry-After and the page; off: the app again', async () => {
  const on = await runCli(['maintenance', 'on', APP, '--env', ENV, '--reason', 'e2e: planned work'], setup.env);
  if (on.code !== 0) throw new Error(`maintenance on failed:\n${on.stdout}\n${on.stderr}`);
  expect(on.stdout).toContain('maintenanceMode/rsapp/production: succeeded');
  // the proxy of the second host too, at its own address
  for (const proxy of [PROXY, HOST2_PROXY]) {
    const r = await fetch(`${proxy}/version`);
    expect([r.status, r.headers.get('retry-after'), await r.text()]).toEqual([503, '30', expect.stringContaining('rsapp is down for maintenance')]);
  }
  const write = await fetch(`${PROXY}/items`, { method: 'POST', body: 'during-maintenance' });
  expect(write.status).toBe(503);
  const off = await runCli(['maintenance', 'off', APP, '--env', ENV], setup.env);
  expect(off.code).toBe(0);
  for (const proxy of [PROXY, HOST2_PROXY]) expect(await servedVersion(proxy)).toEqual({ status: 200, body: 'v2' });
});

it('the housekeeping schedule, triggered: old images go on both hosts, the running and previous versions stay, the app serves', async () => {
  const created = await cli(['schedule', 'housekeeping', APP, '--env', ENV, '--cron', '0 3 1 1 *'], 'schedule housekeeping');
  expect(created.stdout).toMatch(new RegExp(`(created|updated) housekeeping/${APP}/${ENV}`));
  try {
    const triggered = await cli(['schedule', 'housekeeping', APP, '--env', ENV, '--trigger'], 'trigger housekeeping');
    const started = /started (\S+)/.exec(triggered.stdout)![1];
    expect(started).toMatch(new RegExp(`^housekeeping/${APP}/${ENV}-`));
    const result = (await client.workflow.getHandle(started).result()) as HousekeepingResult;
    expect(result.hosts.map((h) => h.host).sort()).toEqual(['host2', 'local']);
    for (const h of result.hosts) {
      const keptTags = h.kept.flatMap((k) => k.tags);
      expect(keptTags).toEqual(expect.arrayContaining(['v2', 'v1']));
      expect(h.removed.flatMap((r) => r.tags)).not.toEqual(expect.arrayContaining(['v2']));
    }
    for (const proxy of [PROXY, HOST2_PROXY]) expect(await servedVersion(proxy)).toEqual({ status: 200, body: 'v2' });
  } finally {
    await runCli(['schedule', 'housekeeping', APP, '--env', ENV, '--delete'], setup.env);
  }
});
