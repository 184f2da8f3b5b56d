// An app that is a set of services (seed 004's shape), on two engines: a frontend, an API behind
// /api with a WebSocket and the migration, a worker with no port beside PostgreSQL on the first host. Deployed; updated to
// v2 under load through the proxy (0 failed requests; the migration visibly changes the schema; a
// WebSocket client is closed only by its old replica's graceful shutdown and reconnects to v2);
// backed up; restored (every service stopped and started). Port 18280 and stapp-* are this file's.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { e2eSetup, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { psqlIn, servedVersion, sleep, VersionSampler, waitFor, WriteStream } from '../helpers/e2e-app';
import { DOCKER_SOCK, RUNBOOK_HOME, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(600_000);

const APP = 'stapp';
const ENV = 'production';
const HOST2_ADDRESS = '10.201.0.2';
const HOST2_SOCK = '/run/temporal-runbooks/docker2.sock';
const engines = { local: new Docker({ socketPath: DOCKER_SOCK }), host2: new Docker({ socketPath: HOST2_SOCK }) };
const PROXY = 'http://127.0.0.1:18280';
const HOST2_PROXY = `http://${HOST2_ADDRESS}:18280`;
const PG = `${APP}-${ENV}-postgres`;
const taskQueue = `e2e-stack-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
const figures: string[] = [];

const psql = (sql: string) => psqlIn(engines.local, PG, sql);
const text = async (url: string) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return `${r.status} ${await r.text()}`;
};

/** The app's replicas on both engines: `<host> <service> <name> <version> <running>`. */
async function replicas(): Promise<string[]> {
  const all: string[] = [];
  for (const [host, d] of Object.entries(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } })) {
      all.push(`${host} ${c.Labels['runbook.service'] ?? 'web'} ${c.Names[0].slice(1)} ${c.Labels['runbook.version']} ${c.State}`);
    }
  }
  return all.sort();
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

/**
 * A WebSocket client through the proxy that reconnects 100 ms after every close, as a browser app
 * would: what each connection was greeted with and how each ended.
 */
class ReconnectingSocket {
  readonly greetings: string[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  readonly errors: string[] = [];
  private socket?: WebSocket;
  private running = true;
  constructor(private readonly url: string) {
    this.connect();
  }
  private connect(): void {
    const ws = new WebSocket(this.url);
    this.socket = ws;
    ws.onmessage = (e) => {
      if (String(e.data).startsWith('hello ')) this.greetings.push(String(e.data));
    };
    ws.onerror = () => this.errors.push(`error on connection ${this.greetings.length + 1}`);
    ws.onclose = (e) => {
      this.closes.push({ code: e.code, reason: e.reason });
      if (this.running) setTimeout(() => this.connect(), 100);
    };
  }
  send(message: string): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(message);
  }
  async stop(): Promise<void> {
    this.running = false;
    this.socket?.close(1000, 'test done');
    await sleep(200);
  }
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await terminateLeftovers();
  await removeEverything();
  const template = path.join(os.tmpdir(), `stack-inventory-${process.pid}.yaml`);
  writeFileSync(
    template,
    readFileSync(path.join(__dirname, 'stack-inventory.yaml'), 'utf8')
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
  console.log(`stack e2e:\n  ${figures.join('\n  ')}`);
  if (client) await terminateLeftovers().catch(() => undefined);
  await worker?.kill('SIGTERM');
  await connection?.close();
  await removeEverything();
});

it('deploy v1: every service on both engines, each answering through its route; the worker works; limits set', async () => {
  const t0 = Date.now();
  await cli(['deploy', APP, '--env', ENV], 'deploy');
  figures.push(`deploy: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  expect(await replicas()).toEqual([
    'host2 api stapp-production-api-2 v1 running',
    'host2 web stapp-production-web-2 v1 running',
    'local api stapp-production-api-1 v1 running',
    'local web stapp-production-web-1 v1 running',
    'local worker stapp-production-worker-1 v1 running',
  ]);
  for (const proxy of [PROXY, HOST2_PROXY]) {
    expect(await text(`${proxy}/`)).toBe('200 frontend v1');
    expect(await text(`${proxy}/api/version`)).toBe('200 v1');
    expect(await text(`${proxy}/api`)).toBe('200 api v1');
    expect(await text(`${proxy}/apix`)).toBe('404 not found\n'); // a prefix is a whole path segment: the frontend's
  }
  // the worker (no port) beats into the database; its limit is the one declared
  await waitFor('worker beats', async () => Number(await psql('SELECT count(*) FROM worker_beats')) > 0);
  const api = await engines.local.getContainer('stapp-production-api-1').inspect();
  expect(api.HostConfig.Memory).toBe(256 * 1024 ** 2);
  expect(api.Config.Healthcheck?.Test).toEqual(['CMD', 'demo-app', 'healthcheck']);
  expect((await engines.local.getContainer('stapp-production-worker-1').inspect()).HostConfig.Memory).toBe(128 * 1024 ** 2);
});

it('update to v2 under load: 0 failed requests, the migration changes the schema, the WebSocket is closed by its old replica and reconnects to v2', async () => {
  const indexes = async () => (await psql(`SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'items'`)).split(',');
  expect(await indexes()).toEqual(['items_pkey']);
  const socket = new ReconnectingSocket('ws://127.0.0.1:18280/api/ws');
  await waitFor('the WebSocket greeting', async () => socket.greetings.length > 0);
  expect(socket.greetings).toEqual(['hello v1']);
  // writes to the API at 30/s (every other request a read), and the version each service serves, sampled
  const writes = new WriteStream(`${PROXY}/api`, 30, 300, `stack-${randomUUID().slice(0, 8)}`, { readPath: '/items/count' });
  const frontend = new VersionSampler(PROXY);
  const apiServed = new VersionSampler(`${PROXY}/api`);
  const t0 = Date.now();
  // the WebSocket holds the proxy's old worker: after 3 s the old replica gets SIGTERM and closes it
  await cli(['update', APP, '--env', ENV, '--version', 'v2', '--drain-timeout', '3s'], 'update');
  const seconds = (Date.now() - t0) / 1000;
  await sleep(1000);
  await writes.stop();
  const [frontendVersions, apiVersions] = [await frontend.stop(), await apiServed.stop()];
  await waitFor('the WebSocket greeting of v2', async () => socket.greetings.at(-1) === 'hello v2', 10_000);
  await socket.stop();
  figures.push(`update v1 → v2: ${seconds.toFixed(1)} s, ${writes.acked.length} writes acknowledged, ${writes.readsOk} reads, ${writes.refused.length} refused, slowest ${writes.slowestMs} ms`);
  figures.push(`WebSocket: greetings ${socket.greetings.join(' → ')}; closes ${socket.closes.map((c) => c.code).join(', ')}`);
  expect(writes.refused).toEqual([]);
  expect(writes.acked.length).toBeGreaterThan(30);
  expect(frontendVersions).toEqual(['v1', 'v2']);
  expect(apiVersions).toEqual(['v1', 'v2']);
  // only the old replica's graceful shutdown closed it (1001 "going away"), then a new connection met v2
  expect(socket.closes.slice(0, -1).map((c) => c.code)).toEqual([1001]);
  expect(socket.greetings).toEqual(['hello v1', 'hello v2']);
  expect(await indexes()).toEqual(['items_created_at', 'items_pkey']);
  expect(Number(await psql(`SELECT count(*) FROM worker_beats WHERE version = 'v2'`))).toBeGreaterThan(0);
  expect(await replicas()).toEqual([
    'host2 api stapp-production-api-2-v2 v2 running',
    'host2 web stapp-production-web-2-v2 v2 running',
    'local api stapp-production-api-1-v2 v2 running',
    'local web stapp-production-web-1-v2 v2 running',
    'local worker stapp-production-worker-1-v2 v2 running',
  ]);
  for (const proxy of [PROXY, HOST2_PROXY]) expect(await text(`${proxy}/`)).toBe('200 frontend v2');
});

it('back up, then restore: every service stops and starts on both engines, the backup\'s data is served', async () => {
  const marker = `stack-backup-${randomUUID().slice(0, 8)}`;
  expect((await fetch(`${PROXY}/api/items`, { method: 'POST', body: marker })).status).toBe(201);
  await cli(['backup', APP, '--env', ENV], 'backup');
  const counted = Number((await text(`${PROXY}/api/items/count`)).split(' ')[1]);
  expect((await fetch(`${PROXY}/api/items`, { method: 'POST', body: 'after-the-backup' })).status).toBe(201);
  const before = new Map((await replicas()).map((r) => [r.split(' ')[2], r]));
  const started = async () => {
    const at: Record<string, number> = {};
    for (const [host, d] of Object.entries(engines)) {
      for (const c of await d.listContainers({ filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } })) at[`${host}/${c.Names[0].slice(1)}`] = Date.parse((await d.getContainer(c.Id).inspect()).State.StartedAt);
    }
    return at;
  };
  const startedBefore = await started();
  const restoreId = `restoreBackup/${APP}/${ENV}`;
  await cli(['restore', APP, '--env', ENV, '--detach'], 'restore');
  const handle = client.workflow.getHandle(restoreId);
  await waitFor('the restore gate', async () => ((await handle.query(statusQuery)) as RunbookStatus).pendingGates.some((g) => g.gate === 'restore'));
  await cli(['approve', restoreId, '--gate', 'restore', '--by', 'alice'], 'approve');
  const watched = await runCli(['watch', restoreId], setup.env);
  if (watched.code !== 0) throw new Error(`restore failed:\n${watched.stdout}\n${watched.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  // the same five containers, each started again by the restore
  expect(new Map((await replicas()).map((r) => [r.split(' ')[2], r]))).toEqual(before);
  const startedAfter = await started();
  for (const [name, at] of Object.entries(startedBefore)) expect(startedAfter[name]).toBeGreaterThan(at);
  expect(await text(`${PROXY}/api/items/count`)).toBe(`200 ${counted}`);
  expect(await psql(`SELECT count(*) FROM items WHERE body = '${marker}'`)).toBe('1');
  expect(await psql(`SELECT count(*) FROM items WHERE body = 'after-the-backup'`)).toBe('0');
  expect(await servedVersion(`${PROXY}/api`)).toEqual({ status: 200, body: 'v2' });
  expect(await text(`${PROXY}/`)).toBe('200 frontend v2');
  // the worker works on the restored database
  const beats = Number(await psql('SELECT count(*) FROM worker_beats'));
  await waitFor('worker beats after the restore', async () => Number(await psql('SELECT count(*) FROM worker_beats')) > beats);
});
