// dnsCutover end to end on the dev server, with every service real: the zone on two authoritative
// bind9 servers (primary and NOTIFY-fed secondary), two PostgreSQL 15 servers (logical replication
// both ways), the demo app (v1 on blue, v2 on green) behind an nginx proxy per side on the Docker
// engine, a worker process and the CLI. Durations are shortened. A load of 120 requests/s, half of
// them writes (POST /items; the demo app on this machine takes about 90 a second), half reads, half
// sent to the old address (a client with stale DNS) and half where DNS says now: through a cutover and a rollback asked for from the CLI, no request fails, every
// acknowledged write is in the old database, DNS is as before and the post-T0 rows are exported.
// Names cut-* are this file's. CUT_KEEP=1 leaves the containers, databases and run for a look.
import { randomUUID } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import type { CutoverStatus, DnsCutoverResult, DnsZoneSpec } from '../../common/cutover';
import { renderProxyConfig } from '../../common/commands/nginx';
import { labelsFor, LABEL, proxyContainerName } from '../../common/naming';
import type { ContainerSpec } from '../../common/types';
import type { RunbookStatus } from '../../common/types';
import { cutoverStatusQuery, statusQuery } from '../../workflows/lib/definitions';
import { runCli, WorkerProcess } from '../helpers/e2e';
import { servedVersion, sleep, waitFor, WriteStream } from '../helpers/e2e-app';
import { localHost as host } from '../helpers/hosts';
import { BIND9_ADDRESS, BIND9_TSIG_KEY_FILE, BIND9_ZONE, DOCKER_SOCK, REGISTRY, TEMPORAL_ADDRESS } from '../helpers/paths';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

jest.setTimeout(600_000);

type Side = 'blue' | 'green';
const tag = randomUUID().slice(0, 8);
const APP = 'cut';
const RECORD = `cut-e2e-${tag}.${BIND9_ZONE}`;
const NETWORK = `cut-e2e-${tag}`;
const PORTS: Record<Side, number> = { blue: 18240, green: 18241 };
const ADDRESSES: Record<Side, string> = { blue: '192.0.2.41', green: '192.0.2.42' };
const VERSIONS: Record<Side, string> = { blue: 'v1', green: 'v2' };
const url = (side: Side) => `http://127.0.0.1:${PORTS[side]}`;
const runId = `cut-e2e-${tag}`;
const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-cutover-${randomUUID()}`;
const zone: DnsZoneSpec = { type: 'rfc2136', zone: BIND9_ZONE, server: BIND9_ADDRESS, keyFile: BIND9_TSIG_KEY_FILE };
const APP_PW = `app-${randomUUID()}`;
const CUTOVER_ID = `dnsCutover/${APP}/green`;

let dir: string;
const db = {} as Record<Side, PgCluster>;
let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
let env: NodeJS.ProcessEnv;

const webName = (side: Side) => `${APP}-${side}-web`;

function container(side: Side, role: 'web' | 'proxy', spec: Partial<ContainerSpec> & { image: string }): ContainerSpec {
  return {
    name: role === 'proxy' ? proxyContainerName(APP, side) : webName(side),
    role,
    labels: labelsFor(APP, side, role, { [LABEL.runId]: runId }),
    env: {},
    envFiles: [],
    network: NETWORK,
    aliases: [],
    volumes: [],
    binds: [],
    ports: [],
    stopTimeoutSeconds: 5,
    restart: false,
    ...spec,
  };
}

/** A client that follows DNS: asks the primary every 500 ms and sends each request where it says. */
class DnsFollower {
  address = ADDRESSES.blue;
  seen = new Set<string>();
  private timer?: NodeJS.Timeout;
  private readonly resolver = new Resolver();

  start(): void {
    this.resolver.setServers([BIND9_ADDRESS]);
    this.timer = setInterval(() => {
      this.resolver.resolve4(RECORD).then(
        (a) => {
          this.address = a[0];
          this.seen.add(a[0]);
        },
        () => undefined, // keeps the last answer, as a client's cache would
      );
    }, 500);
  }

  url(): string {
    return url(this.address === ADDRESSES.green ? 'green' : 'blue');
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

async function items(side: Side): Promise<string[]> {
  return (await db[side].query<{ body: string }>('shop', 'SELECT body FROM items ORDER BY id')).map((r) => r.body);
}

async function removeLeftovers(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL.app}=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const wf of [CUTOVER_ID, `lock/${APP}/blue`, `lock/${APP}/green`]) await client.workflow.getHandle(wf).terminate('e2e: left over').catch(() => undefined);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-cutover-'));
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await removeLeftovers();
  deps = createDeps({ inventoryPath: '/nonexistent', socketParent: dir });
  acts = createActivities(deps);
  // the app containers reach the databases at the network's gateway (the host)
  await acts.ensureNetwork({ host, name: NETWORK, labels: labelsFor(APP, 'e2e', 'proxy', { [LABEL.runId]: runId }) });
  const ipam = (await docker.getNetwork(NETWORK).inspect()).IPAM?.Config?.[0] as { Subnet: string; Gateway: string };
  const cluster = (name: string) => startPgCluster({ name, password: `${name}-${randomUUID()}`, hostsAllowed: [ipam.Subnet], settings: { listen_addresses: `'127.0.0.1,${ipam.Gateway}'` } });
  [db.blue, db.green] = await Promise.all([cluster('cut-blue'), cluster('cut-green')]);
  for (const side of ['blue', 'green'] as const) {
    await db[side].query('postgres', `CREATE ROLE app LOGIN PASSWORD '${APP_PW}'`);
    await db[side].query('postgres', 'CREATE DATABASE shop OWNER app');
  }
  // the demo app's schema (its migration), with rows from before the cutover
  await db.blue.query('shop', 'CREATE TABLE items (id bigserial PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())', [], { user: 'app', password: APP_PW });
  await db.blue.query('shop', "INSERT INTO items (body) SELECT 'seed-' || g FROM generate_series(1, 500) g", [], { user: 'app', password: APP_PW });

  for (const side of ['blue', 'green'] as const) {
    const envFile = path.join(dir, `${side}.env`);
    writeFileSync(envFile, `DATABASE_URL=postgres://app:${APP_PW}@${ipam.Gateway}:${db[side].port}/shop\n`, { mode: 0o600 });
    await acts.ensureContainer({ host, spec: container(side, 'web', { image: `${REGISTRY}/demo-app:${VERSIONS[side]}`, envFiles: [{ path: envFile, required: ['DATABASE_URL'] }] }) });
    await acts.ensureContainer({ host, spec: container(side, 'proxy', { image: `${REGISTRY}/nginx:1`, ports: [{ hostIp: '127.0.0.1', hostPort: PORTS[side], containerPort: 80 }] }) });
    const switched = await acts.configureProxy({ host, container: proxyContainerName(APP, side), config: renderProxyConfig({ app: APP, env: side, upstreams: [`${webName(side)}:8080`] }) });
    if (switched.previousWorkers?.length) await acts.waitProxyDrained({ host, container: proxyContainerName(APP, side), workers: switched.previousWorkers, timeoutSeconds: 10 });
    await waitFor(`${side} serving`, async () => (await servedVersion(url(side))).body === VERSIONS[side], 30_000);
  }
  // the record at the old side, with a short TTL so that the lead time is seconds
  const record = [{ name: RECORD, type: 'A' as const, values: [ADDRESSES.blue], ttl: 5 }];
  await acts.applyDnsRecords({ zone, records: record });
  await acts.awaitDnsRecords({ zone, records: record, timeoutMs: 30_000 });

  const side = (s: Side) => `
        hosts: [local]
        proxy: { hostPort: ${PORTS[s]} }
        approvers: [alice, bob]
        cutover:
          addresses: [${ADDRESSES[s]}]
          url: ${url(s)}
          forwardUrl: http://${proxyContainerName(APP, s)}:80
          database: { address: 127.0.0.1, port: ${db[s].port}, database: shop, user: ${db[s].superuser}, passwordFile: "${db[s].passwordFile}", appRole: app }`;
  const inventoryPath = path.join(dir, 'inventory.yaml');
  writeFileSync(
    inventoryPath,
    `hosts:
  local: { docker: { socketPath: "${DOCKER_SOCK}" } }
apps:
  ${APP}:
    image: ${REGISTRY}/demo-app
    port: 8080
    proxyImage: "${REGISTRY}/nginx:1"
    healthCheck: { path: /health }
    backup:
      storage: { type: directory, path: "${dir}/backups" }
      databases: [{ name: main, server: { address: 127.0.0.1, port: ${db.blue.port} }, database: shop, user: ${db.blue.superuser}, passwordFile: "${db.blue.passwordFile}" }]
    cutover:
      zone: { type: rfc2136, zone: ${BIND9_ZONE}, server: "${BIND9_ADDRESS}", keyFile: "${BIND9_TSIG_KEY_FILE}" }
      records: [${RECORD}]
    environments:
      blue:${side('blue')}
      green:${side('green')}
`,
  );
  env = { ...process.env, TEMPORAL_ADDRESS, RUNBOOK_TASK_QUEUE: taskQueue, RUNBOOK_INVENTORY: inventoryPath };
  worker = new WorkerProcess(env);
  await worker.start();
});

afterAll(async () => {
  if (process.env.CUT_KEEP) return; // debugging: leave everything as it is
  await client?.workflow.getHandle(CUTOVER_ID).terminate('e2e test ended').catch(() => undefined);
  await worker?.kill('SIGTERM');
  await acts?.applyDnsRecords({ zone, records: [{ name: RECORD, type: 'A', values: [], ttl: 5 }] }).catch(() => undefined);
  if (deps) await closeDeps(deps);
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.runId}=${runId}`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await docker.getNetwork(NETWORK).remove().catch(() => undefined);
  await Promise.all([db.blue?.remove(), db.green?.remove()]);
  await connection?.close();
});

async function stageOf(what: string, done: (s: CutoverStatus) => boolean, timeoutMs: number): Promise<CutoverStatus> {
  const handle = client.workflow.getHandle(CUTOVER_ID);
  return waitFor(
    what,
    async () => {
      const s = await handle.query(cutoverStatusQuery);
      return done(s) ? s : undefined;
    },
    timeoutMs,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\nstatus: ${JSON.stringify(await handle.query(cutoverStatusQuery).catch(() => 'unknown'))}\nworker:\n${worker.output.slice(-3000)}`);
  });
}

it('cuts over under 120 requests/s (half with stale DNS), then rolls back from the CLI: no failed request, no lost write, DNS as before, the post-T0 rows exported', async () => {
  const dnsClient = new DnsFollower();
  dnsClient.start();
  // requests 0, 1 (a write, a read) go to the old address; 2, 3 where DNS says
  const load = new WriteStream(url('blue'), 120, 300, `w-${tag}`, { readPath: '/version', timeoutMs: 30_000, target: (i) => (i % 4 < 2 ? url('blue') : dnsClient.url()) });
  const loadStarted = Date.now();
  const handle = client.workflow.getHandle(CUTOVER_ID);
  try {
    const start = await runCli(
      ['cutover', APP, '--from', 'blue', '--to', 'green', '--ttl-lead-time', '2s', '--validation-delay', '5s', '--validation-window', '13s', '--validation-round', '4s', '--probe-interval', '250ms', '--latency-margin', '200ms', '--ttl-restore-after', '20s', '--reconcile-every', '10s', '--window', '10m', '--no-backup', '--detach'],
      env,
    );
    expect(start).toMatchObject({ code: 0 });

    // go/no-go: the TTL is low at both servers, the new database holds the initial copy
    await stageOf('the go/no-go gate', (s) => s.stage.startsWith('go-no-go'), 120_000);
    const before = await acts.readAuthoritative({ zone, records: [{ name: RECORD, type: 'A' }] });
    expect(before.servers.map((s) => s.server).sort()).toEqual(['127.0.0.1:5353', '127.0.0.2:5353']);
    expect(before.servers.map((s) => s.records[0].values)).toEqual([[ADDRESSES.blue], [ADDRESSES.blue]]);
    expect(Number((await db.green.query<{ n: string }>('shop', 'SELECT count(*) AS n FROM items'))[0].n)).toBeGreaterThanOrEqual(500);
    expect(await runCli(['approve', CUTOVER_ID, '--gate', 'go-no-go', '--by', 'alice'], env)).toMatchObject({ code: 0 });

    // the switch: records at the new side at both servers, the old proxy forwards to the new side
    const switched = await stageOf('the switch', (s) => s.stage === 'validating' || s.stage === 'window', 120_000);
    const after = await acts.readAuthoritative({ zone, records: [{ name: RECORD, type: 'A' }] });
    expect(after.servers.map((s) => s.records[0].values)).toEqual([[ADDRESSES.green], [ADDRESSES.green]]);
    // (a single probe may wait behind the writes let through at the switch: it is asked again)
    await waitFor('the old side forwarding to the new', async () => (await servedVersion(url('blue'))).body === 'v2', 30_000);
    // writes from both kinds of client land on the new database
    const ackedAtT0 = load.acked.length;
    await waitFor('writes on the new side', async () => load.acked.length >= ackedAtT0 + 200, 60_000);
    const recent = load.acked.slice(-100); // acknowledged before the read below
    const onGreen = new Set(await items('green'));
    expect(recent.filter((w) => !onGreen.has(w.body))).toEqual([]);

    // validation passes, then a person rolls back from the CLI. A latency gate, when this shared
    // two-core machine is slow enough to open one, is approved as a person would after a look.
    const latencyGates: string[] = [];
    await waitFor(
      'the window',
      async () => {
        if ((await handle.query(cutoverStatusQuery)).stage === 'window') return true;
        for (const g of ((await handle.query(statusQuery)) as RunbookStatus).pendingGates.filter((p) => p.gate.startsWith('latency-') && !latencyGates.includes(p.gate))) {
          const approved = await runCli(['approve', CUTOVER_ID, '--gate', g.gate, '--by', 'alice'], env);
          if (approved.code !== 0) throw new Error(`approving ${g.gate} failed: ${approved.stderr}`);
          latencyGates.push(g.gate);
        }
        return false;
      },
      120_000,
    );
    const rollback = await runCli(['cutover', 'rollback', APP, '--to', 'green', '--by', 'bob', '--reason', 'e2e rollback', '--approve'], env);
    expect(rollback).toMatchObject({ code: 0, stderr: '' });
    const result = (await handle.result()) as DnsCutoverResult;
    await waitFor('the stale client back on blue', async () => (await servedVersion(url('blue'))).body === 'v1', 30_000);
    await sleep(3000); // the load goes on against the rolled-back system
    await load.stop();
    dnsClient.stop();
    const seconds = (Date.now() - loadStarted) / 1000;

    expect(result.outcome).toBe('rolled-back');
    expect(result.rollback?.by).toBe('bob (approved by bob)');
    // no request failed, at over 100 requests/s, and the DNS-following half did follow
    expect(load.refused).toEqual([]);
    expect((load.acked.length + load.readsOk) / seconds).toBeGreaterThanOrEqual(100);
    expect([...dnsClient.seen].sort()).toEqual([ADDRESSES.blue, ADDRESSES.green]);
    // DNS as before, at both servers
    const back = await acts.readAuthoritative({ zone, records: [{ name: RECORD, type: 'A' }] });
    expect(back.servers.map((s) => s.records[0])).toEqual(before.servers.map((s) => s.records[0]));
    // every acknowledged write is in the old database, once; it takes writes and serves again
    const onBlue = await items('blue');
    const blueSet = new Set(onBlue);
    expect(load.acked.filter((w) => !blueSet.has(w.body)).map((w) => w.body)).toEqual([]);
    expect(blueSet.size).toBe(onBlue.length);
    await waitFor('the new side forwarding back', async () => (await servedVersion(url('green'))).body === 'v1', 30_000);
    // the export holds the rows written on the new side after T0: acknowledged writes only
    const exported = result.rollback!.export!;
    const csv = exported.files.find((f) => f.table === 'public.items')!;
    const lines = readFileSync(path.join(dir, 'backups', csv.file), 'utf8').trim().split('\n').slice(1);
    expect(lines.length).toBe(csv.rows);
    expect(csv.rows).toBeGreaterThanOrEqual(200);
    const ackedBodies = new Set(load.acked.map((w) => w.body));
    expect(lines.map((l) => l.split(',')[1]).filter((b) => !ackedBodies.has(b))).toEqual([]);
    console.log(
      `dnsCutover e2e: ${load.acked.length} writes and ${load.readsOk} reads in ${seconds.toFixed(0)} s (${((load.acked.length + load.readsOk) / seconds).toFixed(0)}/s, slowest ${load.slowestMs} ms), ` +
        `0 failed; write freeze at the switch ${switched.writeFreezeMs ?? '?'} ms; latency gates approved: ${latencyGates.join(', ') || 'none'}; ${exported.rows} rows exported; stages ${result.stageDurations.map((s) => `${s.stage} ${s.ms} ms`).join(', ')}`,
    );
  } finally {
    await load.stop();
    dnsClient.stop();
  }
});
