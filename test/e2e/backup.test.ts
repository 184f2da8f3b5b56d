// The backup runbooks end to end: the dev server, a real worker process, the `runbook` CLI and the
// real engine. `bkapp` is deployed with firstDeploy (postgres + 2 demo-app replicas + nginx), then:
// a backup through the CLI (dump + manifest, drill passed, no secret in history), a restore round
// trip gated by an approval, a failing night that alerts a local webhook and prunes nothing, and
// the Temporal Schedule driven by the CLI (create/update, overlap SKIP, pause/resume, a real
// scheduled backup). Ports 18200-18209 and the names bkapp-* belong to this file.
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Client, Connection, ScheduleNotFoundError, type ScheduleDescription } from '@temporalio/client';
import Docker from 'dockerode';
import { httpGet } from '../../activities/health';
import { parseManifest, type BackupManifest } from '../../common/commands/backup';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import type { NightlyBackupResult } from '../../workflows/nightlyBackup';
import type { RestoreBackupResult } from '../../workflows/restoreBackup';
import { e2eSetup, historyText, runCli, WorkerProcess, type CliResult, type E2eSetup } from '../helpers/e2e';
import { psqlIn, waitFor } from '../helpers/e2e-app';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const APP = 'bkapp';
const ENV = 'production';
const PROXY = 'http://127.0.0.1:18200';
const PG_CONTAINER = `${APP}-${ENV}-postgres`;
const BACKUP_ID = `nightlyBackup/${APP}/${ENV}`;
const RESTORE_ID = `restoreBackup/${APP}/${ENV}`;
const SCHEDULE_ID = `nightlyBackup/${APP}/${ENV}`;
const DUMP = /^bkapp-production-main-\d{8}T\d{6}Z\.sql\.zst$/;

const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-backup-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
let storageDir: string;
let inventoryText: string;
/** The webhook URL's path is its secret (as with Slack-style URLs). */
const webhookSecret = `wh-${randomBytes(12).toString('hex')}`;
let webhookUrl: string;
let receiver: http.Server;
const received: { method: string; path: string; contentType: string; body: Record<string, unknown> }[] = [];
const runs: { workflowId: string; runId: string }[] = [];
const timings: Record<string, string> = {};

/** SQL in the postgres container as the app's user over the local socket (trust); returns psql's unaligned rows. */
const psql = (sql: string, database = 'demo') => psqlIn(docker, PG_CONTAINER, sql, database);

/** Content fingerprint of the app's tables (order-independent of storage: ordered by id). */
async function appData(): Promise<{ customers: number; orders: number; digest: string }> {
  const [customers, orders, digest] = (
    await psql(
      `SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),
              md5((SELECT string_agg(c::text, '|' ORDER BY id) FROM customers c) || (SELECT string_agg(o::text, '|' ORDER BY id) FROM orders o))`,
    )
  ).split('|');
  return { customers: Number(customers), orders: Number(orders), digest };
}

function storageFiles(): string[] {
  return readdirSync(storageDir).sort();
}

function manifestOf(dump: string): BackupManifest {
  return parseManifest(readFileSync(path.join(storageDir, dump.replace(/\.sql\.zst$/, '.manifest.json')), 'utf8'));
}

async function lastRunOf(workflowId: string): Promise<string> {
  const d = await client.workflow.getHandle(workflowId).describe();
  runs.push({ workflowId, runId: d.runId });
  return d.runId;
}

/** No value of any secret (DB password, app secrets, SSH key, the webhook URL and its path) in a run's history. */
async function expectNoSecretIn(workflowId: string, runId: string): Promise<void> {
  const text = await historyText(client, workflowId, runId);
  expect(text).toContain(APP); // the scan reads the payloads
  for (const secret of [...setup.secrets, webhookSecret, webhookUrl]) expect(text.includes(secret)).toBe(false);
}

async function appContainers(role?: string) {
  const label = [`runbook.app=${APP}`, `runbook.env=${ENV}`, ...(role ? [`runbook.role=${role}`] : [])];
  return docker.listContainers({ all: true, filters: { label } });
}

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  const { Volumes } = await docker.listVolumes();
  for (const v of Volumes.filter((v) => v.Name.startsWith(`${APP}-`))) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

async function deleteSchedule(): Promise<void> {
  await client.schedule
    .getHandle(SCHEDULE_ID)
    .delete()
    .catch((err) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    });
}

/** Every running run of this app (also scheduled ones on task queues nobody polls), and its lock. */
async function terminateLeftoverRuns(): Promise<void> {
  const ids = new Set([BACKUP_ID, RESTORE_ID, `firstDeploy/${APP}/${ENV}`, `lock/${APP}/${ENV}`]);
  for await (const wf of client.workflow.list({ query: `RunbookApp = '${APP}' AND ExecutionStatus = 'Running'` })) ids.add(wf.workflowId);
  for (const id of ids) await client.workflow.getHandle(id).terminate('left over by a backup e2e run').catch(() => undefined);
}

async function scheduleState(): Promise<ScheduleDescription> {
  return client.schedule.getHandle(SCHEDULE_ID).describe();
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await deleteSchedule();
  await terminateLeftoverRuns();
  await removeEverything();

  receiver = http.createServer((req, res) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (data += c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(data) as Record<string, unknown>;
      } catch {
        body = { unparsable: data };
      }
      received.push({ method: req.method ?? '', path: req.url ?? '', contentType: String(req.headers['content-type'] ?? ''), body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/${webhookSecret}`;

  setup = e2eSetup(path.join(__dirname, 'backup-inventory.yaml'), taskQueue);
  storageDir = path.join(setup.dir, 'backups');
  inventoryText = readFileSync(setup.inventoryPath, 'utf8');
  // The backup connects as the app's user with the password the postgres container was created with.
  const password = /^POSTGRES_PASSWORD=(.*)$/m.exec(readFileSync(path.join(setup.dir, 'postgres.env'), 'utf8'))![1];
  writeFileSync(path.join(setup.dir, 'pg-password'), `${password}\n`, { mode: 0o600 });
  writeFileSync(path.join(setup.dir, 'webhook-url'), `${webhookUrl}\n`, { mode: 0o600 });

  worker = new WorkerProcess(setup.env);
  await worker.start();

  const t0 = Date.now();
  const deployed = await runCli(['deploy', APP, '--env', ENV], setup.env);
  if (deployed.code !== 0) throw new Error(`deploy of ${APP} failed:\n${deployed.stdout}\n${deployed.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  timings.deploy = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  await lastRunOf(`firstDeploy/${APP}/${ENV}`);

  // demo-app's `migrate` makes its own items table (empty here); the tables below are made here.
  await psql(`
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), item text NOT NULL, amount numeric(10,2) NOT NULL);
    INSERT INTO customers (name, email) SELECT 'customer ' || i, 'c' || i || '@example.test' FROM generate_series(1, 200) i;
    INSERT INTO orders (customer_id, item, amount) SELECT 1 + i % 200, 'item ' || i, i * 1.25 FROM generate_series(1, 1000) i;`);
}, 420_000);

afterAll(async () => {
  console.log(`backup e2e timings:\n${Object.entries(timings).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
  if (client) {
    await deleteSchedule().catch(() => undefined);
    await terminateLeftoverRuns().catch(() => undefined);
  }
  await worker?.kill('SIGTERM');
  await connection?.close();
  await removeEverything();
  await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
  if (setup) rmSync(setup.dir, { recursive: true, force: true });
}, 120_000);

let firstBackup: string;
let backedUp: { customers: number; orders: number; digest: string };

it('runbook backup: one dump + manifest in storage, drill passed, the app tables listed, no secret in history', async () => {
  backedUp = await appData();
  expect(backedUp).toMatchObject({ customers: 200, orders: 1000 });
  const t0 = Date.now();
  const r = await runCli(['backup', APP, '--env', ENV], setup.env);
  const wall = Date.now() - t0;
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/nightlyBackup\/bkapp\/production: succeeded/);
  expect(r.stdout).toMatch(/\[ok {2}\] backup:main/);
  expect(r.stdout).toMatch(/\[ok {2}\] drill:main/);
  expect(r.stdout).toMatch(/\[ok {2}\] retention:main/);
  expect(r.code).toBe(0);

  const files = storageFiles();
  expect(files).toHaveLength(2);
  const [dump] = files.filter((f) => f.endsWith('.sql.zst'));
  expect(dump).toMatch(DUMP);
  expect(files).toEqual([dump.replace(/\.sql\.zst$/, '.manifest.json'), dump].sort());
  firstBackup = dump;
  const manifest = manifestOf(dump);
  expect(manifest).toMatchObject({ app: APP, env: ENV, database: 'main', file: dump, compression: 'zstd' });
  expect(manifest.verifiedAt).toEqual(expect.any(String));
  expect(manifest.sizeBytes).toBe(readFileSync(path.join(storageDir, dump)).length);
  expect(manifest.tables.map((t) => [t.table, t.rows])).toEqual([
    ['public.customers', 200],
    ['public.items', 0],
    ['public.orders', 1000],
  ]);
  expect(manifest.tables.every((t) => typeof t.checksum === 'string')).toBe(true);

  const runId = await lastRunOf(BACKUP_ID);
  const result = (await client.workflow.getHandle(BACKUP_ID, runId).result()) as NightlyBackupResult;
  expect(result.backups).toEqual([expect.objectContaining({ database: 'main', file: dump, tables: 3, rows: 1200 })]);
  expect(result.pruned).toEqual([]);
  await expectNoSecretIn(BACKUP_ID, runId);
  expect(received).toEqual([]); // a good night sends no alert
  timings.backup = `${(wall / 1000).toFixed(1)} s through the CLI (dump ${manifest.durationMs} ms, drill ${manifest.drillDurationMs} ms, ${manifest.sizeBytes} bytes)`;
});

it('runbook backups and runbook history: the backup with its size and drill, the deploy and the backup runs with their results', async () => {
  expect(firstBackup).toBeDefined();
  const listed = await runCli(['backups', APP, '--env', ENV], setup.env);
  expect(listed).toMatchObject({ code: 0, stderr: '' });
  const lines = listed.stdout.trimEnd().split('\n');
  expect(lines.slice(0, 2)).toEqual([`${APP}/${ENV}: backups in ${storageDir} on the worker`, expect.stringMatching(/^ {2}database main: 1 backup, [\d.]+ (B|KB|MB) in all$/)]);
  expect(lines[2].trim().split(/ +/)).toEqual([expect.stringMatching(/^2\d{3}-/), expect.stringMatching(/^[\d.]+$/), expect.stringMatching(/^(B|KB|MB)$/), 'verified', firstBackup]);
  const json = JSON.parse((await runCli(['backups', APP, '--env', ENV, '--json'], setup.env)).stdout) as { databases: { database: string; backups: { file: string; sizeBytes: number; verified: boolean }[] }[] };
  expect(json.databases).toEqual([{ database: 'main', backups: [expect.objectContaining({ file: firstBackup, sizeBytes: manifestOf(firstBackup).sizeBytes, verified: true })], orphans: [] }]);

  // the newest two: this machine's Temporal keeps the runs of earlier test runs on the same app
  const history = await runCli(['history', APP, '--env', ENV, '--json', '--limit', '2'], setup.env);
  expect(history).toMatchObject({ code: 0, stderr: '' });
  const runs = JSON.parse(history.stdout) as { runbook: string; status: string; workflowId: string; runId: string; startTime: string; closeTime?: string }[];
  expect(runs.map((r) => [r.runbook, r.status])).toEqual([
    ['nightlyBackup', 'COMPLETED'],
    ['firstDeploy', 'COMPLETED'],
  ]);
  expect(runs.every((r) => r.closeTime !== undefined && r.closeTime >= r.startTime)).toBe(true);
  const text = (await runCli(['history', APP, '--env', ENV, '--limit', '2'], setup.env)).stdout.trimEnd().split('\n');
  expect(text[0]).toBe(`${APP}/${ENV}: 2 runs, newest first`);
  expect(text[1]).toMatch(/^\S+ {2}nightlyBackup +COMPLETED +\d/);
  expect(text[2]).toBe(`    ${runs[0].workflowId} (run ${runs[0].runId})`);
  expect(text[3]).toMatch(/^\S+ {2}firstDeploy +COMPLETED +\d/);
});

it('runbook restore: waits for approval, takes a safety backup, puts the backed-up data back, the app comes back healthy', async () => {
  expect(firstBackup).toBeDefined();
  // Changes after the backup: a marker row, and deleted orders.
  await psql(`INSERT INTO customers (name) VALUES ('after-backup marker'); DELETE FROM orders WHERE id <= 100;`);
  const changed = await appData();
  expect(changed).toMatchObject({ customers: 201, orders: 900 });

  const started = await runCli(['restore', APP, '--env', ENV, '--detach'], setup.env);
  expect(started.stderr).toBe('');
  expect(started.code).toBe(0);
  expect(started.stdout).toMatch(/approve: runbook approve restoreBackup\/bkapp\/production --gate restore --by <name>/);

  const handle = client.workflow.getHandle(RESTORE_ID);
  const waiting = await waitFor('the restore gate', async () => {
    const st: RunbookStatus = await handle.query(statusQuery);
    return st.pendingGates.some((g) => g.gate === 'restore') ? st : undefined;
  });
  expect(waiting.phase).toBe('awaiting-approval');
  const status = await runCli(['status', RESTORE_ID], setup.env);
  expect(status.stdout).toMatch(new RegExp(`WAITING for approval "restore": Restore main \\(demo\\) of bkapp/production from ${firstBackup.replace(/\./g, '\\.')}`));
  expect(status.stdout).toMatch(/approvers: alice, bob/);
  // nothing is touched before the approval
  expect(await appData()).toEqual(changed);
  expect(storageFiles()).toHaveLength(2);

  const refused = await runCli(['approve', RESTORE_ID, '--gate', 'restore', '--by', 'mallory'], setup.env);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/approve not allowed: "mallory" is not an approver of gate "restore"/);
  const t0 = Date.now();
  const approved = await runCli(['approve', RESTORE_ID, '--gate', 'restore', '--by', 'alice', '--comment', 'e2e restore'], setup.env);
  expect(approved.stdout).toMatch(/approve by alice on gate "restore": accepted/);
  expect(approved.code).toBe(0);
  const watched = await runCli(['watch', RESTORE_ID], setup.env);
  const wall = Date.now() - t0;
  if (watched.code !== 0) console.log(`restore watch output:\n${watched.stdout}\n${watched.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  expect(watched.stdout).toMatch(/restoreBackup\/bkapp\/production: succeeded/);
  expect(watched.code).toBe(0);

  // the live database holds the backup's content again
  expect(await appData()).toEqual(backedUp);
  expect(await psql(`SELECT count(*) FROM customers WHERE name = 'after-backup marker'`)).toBe('0');
  // no side or scratch database left behind; the pre-restore database (every write up to the stop) is kept
  const databases = async () => (await psql(`SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database`, 'postgres')).split(',');
  const kept = (await databases()).filter((d) => d.startsWith('scratch_previous_main_'));
  expect(kept).toHaveLength(1);
  expect(await databases()).toEqual(['demo', 'postgres', kept[0], 'template0', 'template1']);
  expect(await psql(`SELECT count(*) FROM customers WHERE name = 'after-backup marker'`, kept[0])).toBe('1');

  // the app is running, healthy, and served through the proxy
  const web = await appContainers('web');
  expect(web.map((c) => c.Names[0]).sort()).toEqual(['/bkapp-production-web-1', '/bkapp-production-web-2']);
  for (const c of web) {
    const info = await docker.getContainer(c.Id).inspect();
    expect([info.Name, info.State.Running, info.State.Health?.Status]).toEqual([info.Name, true, 'healthy']);
  }
  expect(await httpGet(`${PROXY}/health`, { hostHeader: 'localhost' })).toEqual({ status: 200, body: 'ok' });
  expect(await httpGet(`${PROXY}/version`, { hostHeader: 'localhost' })).toEqual({ status: 200, body: 'v1' });

  // a verified safety backup of the pre-restore data was added to storage
  const runId = await lastRunOf(RESTORE_ID);
  const result = (await client.workflow.getHandle(RESTORE_ID, runId).result()) as RestoreBackupResult;
  expect(result).toMatchObject({ app: APP, env: ENV, database: 'main', restored: firstBackup, previousKept: true, previousDatabase: kept[0], previousReleasedBy: { keepFor: '7d' }, rows: 1200 });

  // released from the CLI: dropped at once by its releasePreviousDatabase run
  const released = await runCli(['restore', APP, '--env', ENV, '--release', '--by', 'alice'], setup.env);
  expect(released.stdout).toContain(`released ${result.previousReleasedBy!.workflowId}`);
  expect(released.code).toBe(0);
  expect(await client.workflow.getHandle(result.previousReleasedBy!.workflowId).result()).toEqual({ dropped: kept[0], releasedBy: 'alice' });
  expect(await databases()).toEqual(['demo', 'postgres', 'template0', 'template1']);
  const none = await runCli(['restore', APP, '--env', ENV, '--release'], setup.env);
  expect([none.code, none.stderr.trim()]).toEqual([1, `no kept pre-restore database of ${APP}/${ENV} is waiting for release`]);
  expect(result.safetyBackup).toMatch(DUMP);
  expect(result.safetyBackup > firstBackup).toBe(true);
  const dumps = storageFiles().filter((f) => f.endsWith('.sql.zst'));
  expect(dumps).toEqual([firstBackup, result.safetyBackup]);
  expect(storageFiles()).toHaveLength(4);
  const safety = manifestOf(result.safetyBackup);
  expect(safety.verifiedAt).toEqual(expect.any(String));
  expect(safety.tables.map((t) => [t.table, t.rows])).toEqual([
    ['public.customers', 201],
    ['public.items', 0],
    ['public.orders', 900],
  ]);

  const st = await runCli(['status', RESTORE_ID], setup.env);
  expect(st.stdout).toMatch(/alice approve "restore" via update: accepted — e2e restore/);
  await expectNoSecretIn(RESTORE_ID, runId);
  timings.restore = `${(wall / 1000).toFixed(1)} s from approval to success (app down ${result.appDownSeconds} s)`;
});

it('a failing night exits non-zero, alerts the webhook once with severity "failure", and prunes nothing', async () => {
  const before = storageFiles();
  expect(before.filter((f) => f.endsWith('.sql.zst'))).toHaveLength(2); // a good night would prune the older of today's two (daily: 7; the other is the pinned safety backup)
  // The inventory now names a database that does not exist (read at the plan step of the next run).
  const broken = inventoryText.replace(/^(\s+)database: demo$/m, '$1database: nosuchdb');
  expect(broken).not.toBe(inventoryText);
  writeFileSync(setup.inventoryPath, broken);
  let r: CliResult;
  try {
    r = await runCli(['backup', APP, '--env', ENV], setup.env);
  } finally {
    writeFileSync(setup.inventoryPath, inventoryText);
  }
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/nightlyBackup\/bkapp\/production: FAILED/);
  expect(r.stdout).toMatch(/backup night failed \(1 problem\(s\)\); nothing was pruned/);
  expect(r.stdout).toMatch(/database "nosuchdb" does not exist/);
  expect(r.stdout).toMatch(/\[ok {2}\] alert/);

  // the alert activity completed before the run failed: the receiver has it already
  expect(received).toHaveLength(1);
  const [alert] = received;
  expect(alert).toMatchObject({ method: 'POST', path: `/hooks/${webhookSecret}`, contentType: 'application/json' });
  expect(alert.body).toMatchObject({ severity: 'failure', runbook: 'nightlyBackup', app: APP, env: ENV, workflowId: BACKUP_ID, title: 'backup failed; no backup was pruned' });
  expect(String(alert.body.details)).toMatch(/nosuchdb/);
  expect(String(alert.body.text)).toMatch(/nightlyBackup bkapp\/production/);

  expect(storageFiles()).toEqual(before);
  const runId = await lastRunOf(BACKUP_ID);
  expect(alert.body.runId).toBe(runId);
  await expectNoSecretIn(BACKUP_ID, runId);
});

describe('the nightly Schedule on the dev server, driven by the CLI', () => {
  // Cron hours 12 h away from now: no scheduled time falls inside the test, whatever the clock says.
  const hour = (new Date().getUTCHours() + 12) % 24;
  const cron1 = `0 ${hour} * * *`;
  const cron2 = `30 ${(hour + 1) % 24} * * *`;
  const at = (h: number, m: number) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')} UTC \\(in \\d`;
  const runAt = (h: number, m: number) => `\\w{3} \\d{1,2} \\w{3} \\d{4} ${at(h, m)}`;
  /** A task queue no worker polls: a run started there stays Running. */
  const unpolled = `e2e-backup-unpolled-${randomUUID()}`;
  const unpolledEnv = () => ({ ...setup.env, RUNBOOK_TASK_QUEUE: unpolled });

  /** Ends every run the schedule started that still runs, and waits until the schedule knows. */
  async function endScheduledRuns(): Promise<void> {
    const d = await scheduleState();
    for (const a of d.info.recentActions) {
      const h = client.workflow.getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId);
      if ((await h.describe()).status.name === 'RUNNING') await h.terminate('e2e: run on a task queue nobody polls');
    }
    await waitFor('the schedule to see its runs end', async () => ((await scheduleState()).info.runningActions.length === 0 ? true : undefined));
  }

  async function runningScheduledBackups(): Promise<string[]> {
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: `WorkflowType = 'nightlyBackup' AND RunbookApp = '${APP}' AND ExecutionStatus = 'Running'` })) ids.push(wf.workflowId);
    return ids.sort();
  }

  it('`schedule backup` creates it: overlap SKIP, the catch-up window, the next run times', async () => {
    const created = await runCli(['schedule', 'backup', APP, '--env', ENV, '--cron', cron1, '--catchup-window', '1h'], unpolledEnv());
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^created nightlyBackup\/bkapp\/production$/m);
    expect(created.stdout).toMatch(/overlap: +SKIP .*; catch-up window 1h/);
    expect(created.stdout).toContain(`when:      cron ${cron1} (at ${String(hour).padStart(2, '0')}:00, every day), time zone UTC`);
    const shown = await runCli(['schedule', 'show', APP, '--env', ENV], setup.env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/schedule nightlyBackup\/bkapp\/production: active \(created by runbook schedule backup\)/);
    expect(shown.stdout).toMatch(/overlap: +SKIP .*; catch-up window 1h/);
    expect(shown.stdout).toMatch(new RegExp(`next runs: ${runAt(hour, 0)}.*\\n +${runAt(hour, 0)}.*\\n +${runAt(hour, 0)}`));
    expect(shown.stdout).toMatch(/actions taken: 0, skipped \(overlap\): 0/);
    const d = await scheduleState();
    expect(d.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 3_600_000 });
    expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'nightlyBackup', workflowId: SCHEDULE_ID, taskQueue: unpolled, args: [{ app: APP, env: ENV }] });
    expect(d.info.nextActionTimes.length).toBeGreaterThanOrEqual(3);
    expect(d.info.nextActionTimes[0].getTime() - Date.now()).toBeGreaterThan(10 * 3_600_000);
  });

  it('`schedule trigger` while a run is still going is skipped (overlap SKIP): one run only', async () => {
    try {
      const trig1 = await runCli(['schedule', 'trigger', APP, '--env', ENV], setup.env);
      expect(trig1.code).toBe(0);
      const first = await waitFor('the first triggered run', async () => (await scheduleState()).info.recentActions[0]?.action.workflow);
      expect(first.workflowId.startsWith(`${BACKUP_ID}-`)).toBe(true);
      const described = await client.workflow.getHandle(first.workflowId, first.firstExecutionRunId).describe();
      expect(described).toMatchObject({ type: 'nightlyBackup', taskQueue: unpolled });
      expect(described.status.name).toBe('RUNNING');

      expect(trig1.stdout).toContain(`started ${first.workflowId}`);
      const trig2 = await runCli(['schedule', 'trigger', APP, '--env', ENV], setup.env);
      expect(trig2.code).toBe(1);
      expect(trig2.stdout).toContain(`skipped: a backup is already running (${first.workflowId}); overlap policy SKIP`);
      // a manual `runbook backup` goes through the schedule, so it cannot double the running one either
      const manual = await runCli(['backup', APP, '--env', ENV, '--detach'], setup.env);
      expect(manual.code).toBe(1);
      expect(manual.stderr).toContain(`a backup of ${APP}/${ENV} is already running (${first.workflowId}); not started`);
      // the scheduler either skips the second trigger or starts a second run: wait for one of the two
      const d = await waitFor('the second trigger to be handled', async () => {
        const s = await scheduleState();
        return s.info.numActionsSkippedOverlap + s.info.numActionsTaken >= 2 ? s : undefined;
      });
      const runningNow = await waitFor('the run in visibility', async () => {
        const ids = await runningScheduledBackups();
        return ids.length ? ids : undefined;
      });
      const shown = await runCli(['schedule', 'show', APP, '--env', ENV], setup.env);
      expect({ taken: d.info.numActionsTaken, skippedOverlap: d.info.numActionsSkippedOverlap, running: runningNow }).toEqual({ taken: 1, skippedOverlap: 2, running: [first.workflowId] });
      expect(shown.stdout).toMatch(/actions taken: 1, skipped \(overlap\): 2/);
    } finally {
      await endScheduledRuns();
    }
  });

  it('the schedule\'s SKIP policy holds at the server for a trigger that does not override it', async () => {
    // What `runbook schedule trigger` should send (see the report): trigger('SKIP').
    const handle = client.schedule.getHandle(SCHEDULE_ID);
    const before = await scheduleState();
    try {
      await handle.trigger('SKIP');
      const d1 = await waitFor('the triggered run', async () => {
        const s = await scheduleState();
        return s.info.runningActions.length === 1 ? s : undefined;
      });
      const only = d1.info.runningActions[0].workflow;
      expect(only.workflowId.startsWith(`${BACKUP_ID}-`)).toBe(true);
      await handle.trigger('SKIP');
      const d2 = await waitFor('an overlap skip', async () => {
        const s = await scheduleState();
        return s.info.numActionsSkippedOverlap > before.info.numActionsSkippedOverlap ? s : undefined;
      });
      expect(d2.info.numActionsTaken).toBe(d1.info.numActionsTaken);
      expect(d2.info.runningActions.map((a) => a.workflow.workflowId)).toEqual([only.workflowId]);
      // visibility is eventually consistent: wait until it lists exactly one running backup
      const listed = await waitFor('one running backup in visibility', async () => {
        const ids = await runningScheduledBackups();
        return ids.length === 1 ? ids : undefined;
      });
      expect(listed).toEqual([only.workflowId]);
      const shown = await runCli(['schedule', 'show', APP, '--env', ENV], setup.env);
      expect(shown.stdout).toMatch(/skipped \(overlap\): [1-9]/);
      expect(shown.stdout).toContain(`running: ${only.workflowId}`);
    } finally {
      await endScheduledRuns();
    }
  });

  it('`schedule pause` keeps the note; `schedule resume` makes it active again', async () => {
    const paused = await runCli(['schedule', 'pause', APP, '--env', ENV, '--note', 'e2e: storage maintenance'], setup.env);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(/schedule nightlyBackup\/bkapp\/production: PAUSED \(e2e: storage maintenance\)/);
    expect((await scheduleState()).state).toMatchObject({ paused: true, note: 'e2e: storage maintenance' });
    const resumed = await runCli(['schedule', 'resume', APP, '--env', ENV], setup.env);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/schedule nightlyBackup\/bkapp\/production: active/);
    expect((await scheduleState()).state.paused).toBe(false);
  });

  it('`schedule backup` again updates it (another cron, the real worker\'s queue); a triggered run is a real verified backup', async () => {
    const updated = await runCli(['schedule', 'backup', APP, '--env', ENV, '--cron', cron2, '--catchup-window', '1h'], setup.env);
    expect(updated.stderr).toBe('');
    expect(updated.code).toBe(0);
    expect(updated.stdout).toMatch(/^updated nightlyBackup\/bkapp\/production$/m);
    expect(updated.stdout).toMatch(new RegExp(`next runs: ${runAt((hour + 1) % 24, 30)}`));
    let d = await scheduleState();
    expect(d.state.paused).toBe(false);
    expect(d.action).toMatchObject({ taskQueue });
    expect(d.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 3_600_000 });

    const before = storageFiles().filter((f) => f.endsWith('.sql.zst'));
    expect(before).toHaveLength(2); // the first backup and the restore's safety backup
    const known = new Set(d.info.recentActions.map((a) => a.action.workflow.workflowId));
    const t0 = Date.now();
    const trig = await runCli(['schedule', 'trigger', APP, '--env', ENV], setup.env);
    expect(trig.code).toBe(0);
    expect(trig.stdout).toMatch(/^started nightlyBackup\/bkapp\/production-/);
    const run = await waitFor('the scheduled run', async () => (await scheduleState()).info.recentActions.map((a) => a.action.workflow).find((w) => !known.has(w.workflowId)));
    expect(run.workflowId.startsWith(`${BACKUP_ID}-`)).toBe(true);
    const result = (await client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result()) as NightlyBackupResult;
    timings.scheduledRun = `${((Date.now() - t0) / 1000).toFixed(1)} s from trigger to success`;
    runs.push({ workflowId: run.workflowId, runId: run.firstExecutionRunId });
    expect((await client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).describe()).status.name).toBe('COMPLETED');
    expect(result.backups).toHaveLength(1);
    const newest = result.backups[0].file;
    expect(newest).toMatch(DUMP);
    expect(before).not.toContain(newest);
    expect(manifestOf(newest).verifiedAt).toEqual(expect.any(String));
    // a verified night applies retention (daily: 7 keeps the newest backup of today): the first one
    // goes; the restore's safety backup is pinned (30 days), so it stays and takes no slot
    const [firstOne, safetyOne] = before;
    expect(result.pruned).toEqual([firstOne]);
    expect(manifestOf(safetyOne).pinned).toMatchObject({ reason: 'safety', by: RESTORE_ID });
    expect(result.kept.main.find((k) => k.startsWith(safetyOne))).toMatch(/\(pinned: safety by restoreBackup\/bkapp\/production until /);
    expect(storageFiles()).toEqual([newest.replace(/\.sql\.zst$/, '.manifest.json'), newest, safetyOne.replace(/\.sql\.zst$/, '.manifest.json'), safetyOne].sort());
    await expectNoSecretIn(run.workflowId, run.firstExecutionRunId);
    expect(received).toHaveLength(1); // still only the failing night's alert
    d = await scheduleState();
    expect(d.info.runningActions).toEqual([]);
  });

  it('`schedule delete` removes it', async () => {
    const deleted = await runCli(['schedule', 'delete', APP, '--env', ENV], setup.env);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toMatch(/deleted nightlyBackup\/bkapp\/production/);
    await expect(scheduleState()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    await waitFor('no running backup in visibility', async () => ((await runningScheduledBackups()).length === 0 ? true : undefined));
  });
});

it('no secret value appears in any workflow history of this file', async () => {
  expect(runs.length).toBeGreaterThanOrEqual(5);
  for (const run of runs) await expectNoSecretIn(run.workflowId, run.runId);
});
