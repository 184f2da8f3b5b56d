// The seeds' own stacks, end to end: each example inventory under examples/ (one per seed system,
// stand-in images of the same shape) is deployed, updated to v2 with its migration under load
// through the proxy (the schema visibly changes; the old version serves until the switch; 0 failed
// requests), backed up and restored. 004 (frontend, API with a WebSocket, worker, PostgreSQL, Redis)
// runs across two engines, with a WebSocket client that must be closed only by its old replica's
// graceful shutdown and reconnect to v2. Ports 18280-18285 and the examples' app names are this file's.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { execInContainer } from '../../activities/docker';
import { e2eSetup, historyText, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { psqlIn, servedVersion, sleep, VersionSampler, waitFor, WriteStream } from '../helpers/e2e-app';
import { DOCKER_SOCK, RUNBOOK_HOME, SSH_KEY, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(600_000);

const HOST2_ADDRESS = '10.201.0.2';
const HOST2_SOCK = '/run/temporal-runbooks/docker2.sock';
const engines: Record<string, Docker> = { local: new Docker({ socketPath: DOCKER_SOCK }), host2: new Docker({ socketPath: HOST2_SOCK }) };
const ENV = 'production';
const figures: string[] = [];
let connection: Connection;
let client: Client;

interface Example {
  file: string;
  app: string;
  port: number;
  /** Where the API answers through the proxy ('' : the app itself). */
  api: string;
  /** What `GET /` answers through the proxy at v1 (the frontend's banner). */
  root: string;
  /** `<host> <service> <name>` of every replica after the first deploy. */
  replicas: string[];
  /** Where the app keeps its data: PostgreSQL (a dependency), or SQLite in a file on its volume. */
  db?: 'sqlite';
}

const EXAMPLES: Example[] = [
  { file: '000-lustores.yaml', app: 'lustores', port: 18281, api: '', root: 'demo-app v1', replicas: ['local web lustores-production-web-1', 'local web lustores-production-web-2'] },
  { file: '001-incident-tracker.yaml', app: 'tracker', port: 18282, api: '/api', root: 'frontend v1', replicas: ['local backend tracker-production-backend-1', 'local web tracker-production-web-1'] },
  { file: '002-phase7.yaml', app: 'phase7', port: 18283, api: '', root: 'demo-app v1', replicas: ['local web phase7-production-web-1', 'local web phase7-production-web-2'] },
  { file: '003-payload-vps.yaml', app: 'payload', port: 18285, api: '', root: 'demo-app v1', replicas: ['local web payload-production-web-1'], db: 'sqlite' },
  {
    file: '004-nixflow.yaml',
    app: 'nixflow',
    port: 18280,
    api: '/api',
    root: 'frontend v1',
    replicas: ['host2 api nixflow-production-api-2', 'host2 web nixflow-production-web-2', 'local api nixflow-production-api-1', 'local web nixflow-production-web-1', 'local worker nixflow-production-worker-1'],
  },
];

const text = async (url: string) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return `${r.status} ${await r.text()}`;
};

/** The app's replicas on both engines: `<host> <service> <name>`, and their versions and states. */
async function replicas(app: string): Promise<{ names: string[]; versions: string[] }> {
  const found: [string, string][] = [];
  for (const [host, d] of Object.entries(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: [`runbook.app=${app}`, `runbook.env=${ENV}`, 'runbook.role=web'] } })) {
      found.push([`${host} ${c.Labels['runbook.service'] ?? 'web'} ${c.Names[0].slice(1)}`, `${c.Labels['runbook.version']} ${c.State}`]);
    }
  }
  found.sort((a, b) => a[0].localeCompare(b[0]));
  return { names: found.map((f) => f[0]), versions: [...new Set(found.map((f) => f[1]))] };
}

async function removeEverything(app: string): Promise<void> {
  for (const d of Object.values(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: [`runbook.app=${app}`] } })) await d.getContainer(c.Id).remove({ force: true });
    for (const n of await d.listNetworks({ filters: { name: [`${app}-`] } })) await d.getNetwork(n.Id).remove().catch(() => undefined);
    const { Volumes } = await d.listVolumes();
    for (const v of (Volumes ?? []).filter((v) => v.Name.startsWith(`${app}-`))) await d.getVolume(v.Name).remove().catch(() => undefined);
  }
}

async function terminateLeftovers(app: string): Promise<void> {
  for await (const wf of client.workflow.list({ query: `RunbookApp = '${app}' AND ExecutionStatus = 'Running'` })) {
    await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('e2e: left over').catch(() => undefined);
  }
  for (const env of ['production', 'staging']) await client.workflow.getHandle(`lock/${app}/${env}`).terminate('e2e: left over').catch(() => undefined);
}

/**
 * A WebSocket client through the proxy that reconnects 100 ms after every close, as a browser app
 * would: what each connection was greeted with and how each ended.
 */
class ReconnectingSocket {
  readonly greetings: string[] = [];
  readonly closes: number[] = [];
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
    ws.onclose = (e) => {
      this.closes.push(e.code);
      if (this.running) setTimeout(() => this.connect(), 100);
    };
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
});

afterAll(async () => {
  // eslint-disable-next-line no-console
  console.log(`examples e2e:\n  ${figures.join('\n  ')}`);
  await connection?.close();
});

describe.each(EXAMPLES)('examples/$file', (example) => {
  const { app, api } = example;
  const proxy = `http://127.0.0.1:${example.port}`;
  const twoHosts = example.replicas.some((r) => r.startsWith('host2 '));
  /** A query on the app's database: psql in its PostgreSQL container, or sqlite3 in a running replica. */
  const psql = async (sql: string): Promise<string> => {
    if (example.db !== 'sqlite') return psqlIn(engines.local, `${app}-${ENV}-postgres`, sql);
    const [replica] = await engines.local.listContainers({ filters: { label: [`runbook.app=${app}`, 'runbook.role=web'], status: ['running'] } });
    const r = await execInContainer(engines.local, replica.Id, ['sqlite3', '-bail', '-noheader', '/data/app.db', sql]);
    if (r.exitCode !== 0) throw new Error(`sqlite3 ${sql}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const indexesSql =
    example.db === 'sqlite'
      ? "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'items' ORDER BY name)"
      : "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'items'";
  let setup: E2eSetup;
  let worker: WorkerProcess;

  const cli = async (args: string[], what: string) => {
    const r = await runCli(args, setup.env);
    if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}\nworker:\n${worker.output.slice(-3000)}`);
    return r;
  };

  beforeAll(async () => {
    await terminateLeftovers(app);
    await removeEverything(app);
    const template = path.join(os.tmpdir(), `example-${app}-${process.pid}.yaml`);
    writeFileSync(
      template,
      readFileSync(path.join(__dirname, '../../examples', example.file), 'utf8')
        .replaceAll('${HOST_PORT}', String(example.port))
        .replaceAll('${STAGING_PORT}', String(example.port + 1))
        .replaceAll('${HOST2_ADDRESS}', HOST2_ADDRESS)
        .replaceAll('${HOST2_DOCKER_SOCK}', HOST2_SOCK)
        .replaceAll('${SSH_KEY}', SSH_KEY)
        .replaceAll('${HOST2_FINGERPRINT}', twoHosts ? readFileSync(`${RUNBOOK_HOME}/host2/ssh/host_fingerprint`, 'utf8').trim() : ''),
    );
    setup = e2eSetup(template, `e2e-example-${app}-${randomUUID()}`);
    const password = /^POSTGRES_PASSWORD=(.*)$/m.exec(readFileSync(path.join(setup.dir, 'postgres.env'), 'utf8'))![1];
    // 002 mounts it into PostgreSQL, which reads it as its own user (as Docker secrets, 0444)
    writeFileSync(path.join(setup.dir, 'pg-password'), `${password}\n`, { mode: app === 'phase7' ? 0o444 : 0o600 });
    writeFileSync(path.join(setup.dir, 'redis-password'), `rp-${randomUUID()}\n`, { mode: 0o600 });
    writeFileSync(path.join(setup.dir, 'staging.env'), `${readFileSync(path.join(setup.dir, 'app.env'), 'utf8')}EMAIL_ENABLED=false\n`, { mode: 0o600 });
    worker = new WorkerProcess(setup.env);
    await worker.start();
  });

  afterAll(async () => {
    if (client) await terminateLeftovers(app).catch(() => undefined);
    await worker?.kill('SIGTERM');
    await removeEverything(app);
  });

  it('deploys: every service answers through its route, each with its declared check and limits', async () => {
    const t0 = Date.now();
    await cli(['deploy', app, '--env', ENV], 'deploy');
    figures.push(`${app}: deploy ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(await replicas(app)).toEqual({ names: example.replicas, versions: ['v1 running'] });
    for (const host of twoHosts ? [proxy, `http://${HOST2_ADDRESS}:${example.port}`] : [proxy]) {
      expect(await text(`${host}/`)).toBe(`200 ${example.root}`);
      expect(await servedVersion(`${host}${api}`)).toEqual({ status: 200, body: 'v1' });
    }
    if (api) expect(await text(`${proxy}${api}x`)).toBe('404 not found\n'); // a prefix is a whole path segment
    for (const name of example.replicas.map((r) => r.split(' ')[2])) {
      const host = example.replicas.find((r) => r.endsWith(` ${name}`))!.split(' ')[0];
      const info = await engines[host].getContainer(name).inspect();
      expect(info.HostConfig.Memory).toBeGreaterThan(0); // every seed limits memory
    }
    if (app === 'nixflow') await waitFor('worker beats', async () => Number(await psql('SELECT count(*) FROM worker_beats')) > 0);
  });

  if (app === 'phase7') {
    it("staging runs beside production with its own env file (EMAIL_ENABLED=false) and limits", async () => {
      await cli(['deploy', app, '--env', 'staging'], 'deploy staging');
      expect(await servedVersion(`http://127.0.0.1:${example.port + 1}`)).toEqual({ status: 200, body: 'v1' });
      const staging = await engines.local.getContainer(`${app}-staging-web-1`).inspect();
      const production = await engines.local.getContainer(`${app}-production-web-1`).inspect();
      expect(staging.Config.Env).toContain('EMAIL_ENABLED=false');
      expect(production.Config.Env.some((e) => e.startsWith('EMAIL_ENABLED='))).toBe(false);
      expect(staging.HostConfig.Memory).toBe(512 * 1024 ** 2);
      expect(production.HostConfig.Memory).toBe(1024 ** 3);
      // the database password reached PostgreSQL as a file, never as a variable
      const pg = await engines.local.getContainer(`${app}-${ENV}-postgres`).inspect();
      expect(pg.Config.Env.filter((e) => e.startsWith('POSTGRES_PASSWORD'))).toEqual(['POSTGRES_PASSWORD_FILE=/run/secrets/postgres-password']);
    });
  }

  it('updates to v2 under load: 0 failed requests, the migration changes the schema, the old version serves until the switch', async () => {
    const indexes = async () => (await psql(indexesSql)).split(',').filter(Boolean);
    expect(await indexes()).not.toContain('items_created_at');
    // an upload (003: the media volume) must outlive the release
    const upload = `logo-${randomUUID().slice(0, 8)}.png`;
    if (app === 'payload') expect((await fetch(`${proxy}/uploads/${upload}`, { method: 'PUT', body: 'png bytes' })).status).toBe(201);
    const socket = app === 'nixflow' ? new ReconnectingSocket(`ws://127.0.0.1:${example.port}/api/ws`) : undefined;
    if (socket) await waitFor('the WebSocket greeting', async () => socket.greetings.length > 0);
    // writes at 30/s (every other request a read), and the version served, sampled every 50 ms
    const writes = new WriteStream(`${proxy}${api}`, 30, 300, `${app}-${randomUUID().slice(0, 8)}`, { readPath: '/items/count' });
    const served = new VersionSampler(`${proxy}${api}`);
    const frontend = api ? new VersionSampler(proxy) : undefined;
    const t0 = Date.now();
    // an open WebSocket holds the proxy's old worker: after 3 s the old replica gets SIGTERM and closes it
    await cli(['update', app, '--env', ENV, '--version', 'v2', '--drain-timeout', '3s'], 'update');
    const seconds = (Date.now() - t0) / 1000;
    await sleep(1000);
    await writes.stop();
    const versions = await served.stop();
    figures.push(`${app}: update v1 → v2 ${seconds.toFixed(1)} s, ${writes.acked.length} writes acknowledged, ${writes.readsOk} reads, ${writes.refused.length} refused, slowest ${writes.slowestMs} ms`);
    expect(writes.refused).toEqual([]);
    expect(writes.acked.length).toBeGreaterThan(30);
    // v1 until the first switch, v2 after the last; between them a host with two replicas serves both
    const oneThenOther = (seen: string[]) => expect([seen[0], seen.at(-1), seen.every((v) => v === 'v1' || v === 'v2')]).toEqual(['v1', 'v2', true]);
    oneThenOther(versions);
    if (frontend) oneThenOther(await frontend.stop());
    expect(await indexes()).toContain('items_created_at');
    if (app === 'payload') expect(await text(`${proxy}/uploads/${upload}`)).toBe('200 png bytes');
    expect(await replicas(app)).toEqual({ names: example.replicas.map((r) => `${r}-v2`), versions: ['v2 running'] });
    if (socket) {
      await waitFor('the WebSocket greeting of v2', async () => socket.greetings.at(-1) === 'hello v2', 10_000);
      await socket.stop();
      figures.push(`${app}: WebSocket greetings ${socket.greetings.join(' → ')}; closes ${socket.closes.join(', ')}`);
      // only the old replica's graceful shutdown closed it (1001 "going away"), then a new connection met v2
      expect(socket.closes.slice(0, -1)).toEqual([1001]);
      expect(socket.greetings).toEqual(['hello v1', 'hello v2']);
      expect(Number(await psql(`SELECT count(*) FROM worker_beats WHERE version = 'v2'`))).toBeGreaterThan(0);
    }
  });

  it("backs up, then restores: every service stops and starts, the backup's data is served", async () => {
    const marker = `${app}-backup-${randomUUID().slice(0, 8)}`;
    expect((await fetch(`${proxy}${api}/items`, { method: 'POST', body: marker })).status).toBe(201);
    const mediaArchives = () => readdirSync(path.join(setup.dir, 'backups')).filter((f) => /^payload-production-volume-media-\d{8}T\d{6}Z\.tar\.zst$/.test(f));
    const archivedBefore = app === 'payload' ? mediaArchives().length : 0;
    const backup = await cli(['backup', app, '--env', ENV], 'backup');
    if (app === 'payload') {
      // the media volume's archive of the night, beside the database's dump
      expect(backup.stdout).toMatch(/\[ok {2}\] archive:volume:media/);
      expect(mediaArchives()).toHaveLength(archivedBefore + 1);
    }
    const counted = await text(`${proxy}${api}/items/count`);
    expect((await fetch(`${proxy}${api}/items`, { method: 'POST', body: 'after-the-backup' })).status).toBe(201);
    const startedAt = async () => {
      const at: Record<string, number> = {};
      for (const [host, d] of Object.entries(engines)) {
        for (const c of await d.listContainers({ filters: { label: [`runbook.app=${app}`, `runbook.env=${ENV}`, 'runbook.role=web'] } })) at[`${host}/${c.Names[0].slice(1)}`] = Date.parse((await d.getContainer(c.Id).inspect()).State.StartedAt);
      }
      return at;
    };
    const before = await startedAt();
    const restoreId = `restoreBackup/${app}/${ENV}`;
    const t0 = Date.now();
    await cli(['restore', app, '--env', ENV, '--detach'], 'restore');
    const handle = client.workflow.getHandle(restoreId);
    await waitFor('the restore gate', async () => ((await handle.query(statusQuery)) as RunbookStatus).pendingGates.some((g) => g.gate === 'restore'));
    await cli(['approve', restoreId, '--gate', 'restore', '--by', 'alice'], 'approve');
    const watched = await runCli(['watch', restoreId], setup.env);
    if (watched.code !== 0) throw new Error(`restore failed:\n${watched.stdout}\n${watched.stderr}\nworker:\n${worker.output.slice(-3000)}`);
    figures.push(`${app}: restore ${((Date.now() - t0) / 1000).toFixed(1)} s (with its approval)`);
    const after = await startedAt();
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    for (const [name, at] of Object.entries(before)) expect(after[name]).toBeGreaterThan(at);
    expect(await text(`${proxy}${api}/items/count`)).toBe(counted);
    expect(await psql(`SELECT count(*) FROM items WHERE body = '${marker}'`)).toBe('1');
    expect(await psql(`SELECT count(*) FROM items WHERE body = 'after-the-backup'`)).toBe('0');
    expect(await servedVersion(`${proxy}${api}`)).toEqual({ status: 200, body: 'v2' });
    // no secret in the histories of this app's runs
    for await (const wf of client.workflow.list({ query: `RunbookApp = '${app}'` })) {
      const history = await historyText(client, wf.workflowId, wf.runId);
      for (const secret of setup.secrets) expect(history).not.toContain(secret);
    }
  });

  if (app === 'payload') {
    it("restores the media volume from the night's archive under maintenance mode, and back again: no upload is lost", async () => {
      const archived = `archived-${randomUUID().slice(0, 8)}.png`;
      const later = `later-${randomUUID().slice(0, 8)}.png`;
      // the night's archive has the update's upload; take one more night with a second upload in it
      expect((await fetch(`${proxy}/uploads/${archived}`, { method: 'PUT', body: 'in the archive' })).status).toBe(201);
      await cli(['backup', app, '--env', ENV], 'backup');
      expect((await fetch(`${proxy}/uploads/${later}`, { method: 'PUT', body: 'after the archive' })).status).toBe(201);
      const restoreId = `restoreArchive/${app}/${ENV}`;
      const restoreMedia = async (archive: string) => {
        await cli(['restore', app, '--env', ENV, '--volume', 'media', '--archive', archive, '--detach'], 'restore media');
        const handle = client.workflow.getHandle(restoreId);
        await waitFor('the restore gate', async () => ((await handle.query(statusQuery)) as RunbookStatus).pendingGates.some((g) => g.gate === 'restore'));
        const served = new VersionSampler(proxy);
        const t0 = Date.now();
        await cli(['approve', restoreId, '--gate', 'restore', '--by', 'alice'], 'approve');
        const watched = await runCli(['watch', restoreId], setup.env);
        if (watched.code !== 0) throw new Error(`restore of media failed:\n${watched.stdout}\n${watched.stderr}\nworker:\n${worker.output.slice(-3000)}`);
        const seconds = (Date.now() - t0) / 1000;
        await sleep(300);
        return { stdout: watched.stdout, seen: await served.stop(), seconds };
      };
      const first = await restoreMedia('latest');
      figures.push(`${app}: media restore ${first.seconds.toFixed(1)} s (with its approval); served meanwhile: ${first.seen.join(' → ')}`);
      // the app stopped (it mounts the volume) behind the maintenance page, never a 502
      expect(first.seen).toContain('HTTP 503');
      expect(first.seen.filter((v) => v !== 'v2' && v !== 'HTTP 503')).toEqual([]);
      expect(first.seen.at(-1)).toBe('v2');
      expect(await text(`${proxy}/uploads/${archived}`)).toBe('200 in the archive');
      expect((await fetch(`${proxy}/uploads/${later}`)).status).toBe(404);
      // the content before the restore (with the later upload) was archived first: restoring it goes back
      const previous = /its content before the restore is archived as (\S+):/.exec(first.stdout)?.[1];
      expect(previous).toMatch(/^payload-production-volume-media-\d{8}T\d{6}Z\.tar\.zst$/);
      const back = await restoreMedia(previous!);
      expect(back.seen.filter((v) => v !== 'v2' && v !== 'HTTP 503')).toEqual([]);
      expect(await text(`${proxy}/uploads/${later}`)).toBe('200 after the archive');
      expect(await text(`${proxy}/uploads/${archived}`)).toBe('200 in the archive');
      expect(await servedVersion(proxy)).toEqual({ status: 200, body: 'v2' });
    });
  }
});
