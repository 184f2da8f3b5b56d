// bench/backup: the runbook's backup (backupDatabase: pg_dump by Docker exec → zstd → storage, with
// the manifest's row counts and content checksums) against the seeds' `pg_dump | gzip -1 > file`
// and a plain `pg_dump | zstd -T0 > file`, all in the same run, on a throwaway PostgreSQL 15
// container filled with poorly compressible data, at ~100 MB and then ~1 GB.
// Prints wall times, sizes, ratios and the worker's peak RSS, and writes the figures as JSON and
// markdown under .state/bench/. Never a timed test: the figures are read, not asserted.
//   bash bench/backup.sh [--runs N] [--sizes 100,1024]      (sizes in MiB of pg_database_size)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { DOCKER_SOCK, REGISTRY } from '../test/helpers/paths';
import { waitContainerHealthy } from '../test/helpers/postgres-container';
import type { WorkerArgs, WorkerResult } from './backup-worker';

const CONTAINER = 'bench-backup-pg';
const IMAGE = `${REGISTRY}/postgres:15`;
const DB = 'bench';
const USER = 'bench';
const MiB = 2 ** 20;
const REPO = path.resolve(__dirname, '..', '..');
const DOCKER_CLI = process.env.DOCKER_CLI ?? 'docker';
const DOCKER_HOST = `unix://${DOCKER_SOCK}`;

// ---- options ----

interface Options {
  runs: number;
  sizesMiB: number[];
}

function parseOptions(argv: string[]): Options {
  const o: Options = { runs: 3, sizesMiB: [100, 1024] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    if (flag === '--runs') o.runs = Number(value());
    else if (flag === '--sizes') o.sizesMiB = value().split(',').map(Number);
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: bash bench/backup.sh [--runs N (default 3, at least 2)] [--sizes MiB,MiB (default 100,1024; ascending)]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${argv[i]}`);
  }
  if (!Number.isInteger(o.runs) || o.runs < 2) throw new Error('--runs must be an integer ≥ 2');
  if (o.sizesMiB.length === 0 || o.sizesMiB.some((s, i) => !(s > 0) || (i > 0 && s <= o.sizesMiB[i - 1]))) throw new Error('--sizes must be ascending positive MiB figures');
  return o;
}

// ---- child processes (tracked, so Ctrl-C stops them all) ----

const children = new Set<ChildProcess>();

interface Ran {
  ms: number;
  stdout: string;
  stderr: string;
}

/** Runs a program in its own process group; rejects with the tail of stderr on a non-zero exit. */
function run(cmd: string, args: string[], o: { input?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env }, detached: true });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
    if (o.input !== undefined) child.stdin!.end(o.input);
    child.once('error', (err) => {
      children.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, stdout, stderr });
      else reject(new Error(`${path.basename(cmd)} ${args.join(' ').slice(0, 160)} exited ${code ?? signal}: ${stderr.trim().split('\n').slice(-5).join('\n')}`));
    });
  });
}

const dockerCli = (args: string[], o: { input?: string } = {}) => run(DOCKER_CLI, ['-H', DOCKER_HOST, ...args], o);
const psql = (sql: string) => dockerCli(['exec', '-i', CONTAINER, 'psql', '-U', USER, '-d', DB, '-v', 'ON_ERROR_STOP=1', '-qAt'], { input: sql });

/**
 * A shell pipeline, as an operator would type it (bash, pipefail), followed by bash's `times`: the
 * CPU time of everything it waited for (docker CLI, gzip/zstd; for the runbook: node and its zstd).
 */
async function shell(script: string, env: Record<string, string>): Promise<{ ms: number; output: string; clientCpuMs: number }> {
  const r = await run('bash', ['-o', 'pipefail', '-c', `{ ${script}; } || exit\ntimes`], { env: { DOCKER_HOST, DOCKER_CLI, CONTAINER, DB, USER, ...env } });
  const lines = r.stdout.trimEnd().split('\n');
  const children = lines.pop() ?? '';
  lines.pop(); // bash's own
  const cpu = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((ms, m) => ms + (Number(m[1]) * 60 + Number(m[2])) * 1000, 0);
  return { ms: r.ms, output: lines.join('\n'), clientCpuMs: cpu };
}

// ---- the throwaway database ----

const docker = new Docker({ socketPath: DOCKER_SOCK });

async function removeContainer(): Promise<void> {
  await docker.getContainer(CONTAINER).remove({ force: true, v: true }).catch(() => undefined);
}

let cpuUsageFile: string | undefined;

/** CPU time used so far by everything in the database container (its cgroup): postgres backends and pg_dump. */
function containerCpuMs(): number | undefined {
  if (!cpuUsageFile) return undefined;
  const text = readFileSync(cpuUsageFile, 'utf8');
  const usec = /^usage_usec (\d+)/m.exec(text);
  return usec ? Number(usec[1]) / 1000 : Number(text.trim()) / 1e6;
}

async function startDatabase(password: string): Promise<void> {
  await removeContainer(); // a leftover of an interrupted run
  const c = await docker.createContainer({
    name: CONTAINER,
    Image: IMAGE,
    Env: [`POSTGRES_USER=${USER}`, `POSTGRES_PASSWORD=${password}`, `POSTGRES_DB=${DB}`],
    // Loading speed only (a throwaway server): no fsync, big WAL. Reads (the dumps) are unaffected.
    Cmd: ['postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_wal_size=4GB', '-c', 'checkpoint_timeout=30min'],
    Labels: { 'runbook.bench': 'backup' },
  });
  await c.start();
  await waitContainerHealthy(docker, CONTAINER, 120_000);
  const id = (await c.inspect()).Id;
  cpuUsageFile = [
    `/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, // cgroup v1
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, // cgroup v2, systemd driver
    `/sys/fs/cgroup/docker/${id}/cpu.stat`, // cgroup v2, cgroupfs driver
  ].find((f) => existsSync(f));
}

// Poorly compressible, realistic rows, generated inside the server: ids, timestamps, numerics,
// a few low-cardinality columns (status, country, kind), and random hex/base64 text of varied length.
const md5s = (n: number) => Array.from({ length: n }, () => 'md5(random()::text)').join(' || ');
/** Base64 of 16·n random bytes, without the line breaks encode() inserts. */
const base64 = (n: number) => `replace(encode(decode(${md5s(n)}, 'hex'), 'base64'), E'\\n', '')`;
const pick = (values: string[]) => `(ARRAY[${values.map((v) => `'${v}'`).join(',')}])[1 + floor(random() * ${values.length})::int]`;
const someTime = `timestamptz '2019-01-01 00:00:00+00' + random() * interval '2000 days'`;

const SCHEMA_SQL = `
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  created_at timestamptz NOT NULL,
  email text NOT NULL,
  full_name text NOT NULL,
  country char(2) NOT NULL,
  balance numeric(14,2) NOT NULL,
  api_key text NOT NULL,
  notes text
);
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  created_at timestamptz NOT NULL,
  status text NOT NULL,
  amount numeric(12,2) NOT NULL,
  quantity int NOT NULL,
  shipping_ref text NOT NULL,
  payload text NOT NULL
);
CREATE TABLE events (
  id bigint PRIMARY KEY,
  occurred_at timestamptz NOT NULL,
  kind text NOT NULL,
  session_id uuid NOT NULL,
  score double precision NOT NULL,
  body text NOT NULL
);`;

/** Rows per load unit: 1 customer, 3 orders, 6 events. */
const PER_UNIT = { customers: 1, orders: 3, events: 6 } as const;
type Table = keyof typeof PER_UNIT;

function insertSql(table: Table, from: number, to: number, customers: number): string {
  const range = `generate_series(${from}, ${to}) AS g`;
  switch (table) {
    case 'customers':
      return `INSERT INTO customers SELECT g, ${someTime},
  'user' || g || '.' || substr(md5(random()::text), 1, 6) || '@' || ${pick(['gmail.com', 'example.org', 'mail.de', 'outlook.com', 'proton.me'])},
  ${pick(['Ana', 'Ben', 'Chloé', 'Dmitri', 'Emeka', 'Fatima', 'Giulia', 'Hiro', 'Ines', 'Jonas', 'Kofi', 'Lena', 'Mateo', 'Noor', 'Olga', 'Priya'])} || ' ' || ${pick(['Silva', 'Müller', 'Okafor', 'Tanaka', 'Kowalski', 'Haddad', 'Rossi', 'Nguyen', 'Smith', 'García', 'Ivanova', 'Cohen'])},
  ${pick(['DE', 'FR', 'US', 'GB', 'NL', 'PL', 'ES', 'IT', 'JP', 'BR', 'IN', 'NG'])},
  round((random() * 20000 - 2000)::numeric, 2),
  ${base64(2)},
  CASE WHEN random() < 0.4 THEN substr(${base64(6)}, 1, 10 + floor(random() * 118)::int) END
FROM ${range};`;
    case 'orders':
      return `INSERT INTO orders SELECT g, 1 + floor(random() * ${customers})::bigint, ${someTime},
  ${pick(['pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'])},
  round((random() * 500 + 1)::numeric, 2),
  1 + floor(random() * 10)::int,
  upper(substr(md5(random()::text), 1, 20)),
  substr(${base64(6)}, 1, 16 + floor(random() * 113)::int)
FROM ${range};`;
    case 'events':
      return `INSERT INTO events SELECT g, ${someTime},
  ${pick(['page_view', 'click', 'login', 'logout', 'search', 'add_to_cart', 'checkout', 'error'])},
  gen_random_uuid(),
  random() * 100,
  substr(${md5s(4)}, 1, 8 + floor(random() * 121)::int)
FROM ${range};`;
  }
}

async function databaseSize(): Promise<number> {
  return Number((await psql(`SELECT pg_database_size(current_database());`)).stdout.trim());
}

interface Loaded {
  targetBytes: number;
  dbBytes: number;
  rows: Record<Table, number>;
  loadMs: number;
}

const rowsLoaded: Record<Table, number> = { customers: 0, orders: 0, events: 0 };
let bytesPerUnit = 0;

/** Adds rows (the three tables in parallel) until pg_database_size reaches ~target; then VACUUM ANALYZE and CHECKPOINT. */
async function growTo(targetBytes: number): Promise<Loaded> {
  const t0 = performance.now();
  let size = await databaseSize();
  while (size < targetBytes * 0.98) {
    const units = bytesPerUnit ? Math.max(1000, Math.min(Math.ceil((targetBytes - size) / bytesPerUnit), Math.ceil((256 * MiB) / bytesPerUnit))) : 10_000;
    const customers = rowsLoaded.customers + units;
    await Promise.all(
      (Object.keys(PER_UNIT) as Table[]).map((t) => psql(insertSql(t, rowsLoaded[t] + 1, rowsLoaded[t] + units * PER_UNIT[t], customers))),
    );
    for (const t of Object.keys(PER_UNIT) as Table[]) rowsLoaded[t] += units * PER_UNIT[t];
    const grown = await databaseSize();
    bytesPerUnit = (grown - size) / units;
    size = grown;
    process.stdout.write(`  loading: ${mb(size)} of ${mb(targetBytes)} (${secs(performance.now() - t0)} s)\n`);
  }
  await psql('VACUUM (ANALYZE);\nCHECKPOINT;');
  return { targetBytes, dbBytes: await databaseSize(), rows: { ...rowsLoaded }, loadMs: performance.now() - t0 };
}

// ---- the variants ----

type VariantId = 'raw' | 'gzip' | 'zstd' | 'runbook' | 'runbook-checksums';

const VARIANTS: { id: VariantId; label: string }[] = [
  { id: 'raw', label: 'pg_dump | wc -c (no compression, reference)' },
  { id: 'gzip', label: 'pg_dump | gzip -1 > file (seeds)' },
  { id: 'zstd', label: 'pg_dump | zstd -T0 > file' },
  { id: 'runbook', label: 'runbook backupDatabase (default: row counts)' },
  { id: 'runbook-checksums', label: 'runbook backupDatabase (checksums: true)' },
];

interface Measurement {
  variant: VariantId;
  size: string;
  run: number;
  warmup: boolean;
  /** Pipelines: the whole command. Runbook: backupDatabase from call to return (a running worker pays no start-up). */
  wallMs: number;
  outBytes: number;
  /** Runbook: the worker process from spawn to exit (node start-up and module loading included). */
  processMs?: number;
  /** CPU time of the database container's processes (server backends, pg_dump) during the run. */
  dbCpuMs?: number;
  /** CPU time on the worker side: docker CLI + gzip/zstd, or the worker process (start-up included) + its zstd. */
  clientCpuMs: number;
  rssKiB?: number;
  childRssKiB?: Record<string, number>;
  workerCpuMs?: number;
}

const PIPELINES: Record<'raw' | 'gzip' | 'zstd', string> = {
  raw: '"$DOCKER_CLI" -H "$DOCKER_HOST" exec "$CONTAINER" pg_dump -U "$USER" "$DB" | wc -c',
  gzip: '"$DOCKER_CLI" -H "$DOCKER_HOST" exec "$CONTAINER" pg_dump -U "$USER" "$DB" | gzip -1 > "$OUT"',
  zstd: '"$DOCKER_CLI" -H "$DOCKER_HOST" exec "$CONTAINER" pg_dump -U "$USER" "$DB" | zstd -q -T0 > "$OUT"',
};
const WORKER = '"$NODE" "$WORKER" "$ARGS"';

let backupClock = Date.UTC(2025, 0, 1);

async function runVariant(id: VariantId, size: string, runNo: number, work: string, passwordFile: string, warmup = false): Promise<Measurement> {
  const out = path.join(work, `out-${id}-${runNo}`);
  const db0 = containerCpuMs();
  const dbCpu = () => {
    const db1 = containerCpuMs();
    return db0 === undefined || db1 === undefined ? {} : { dbCpuMs: db1 - db0 };
  };
  try {
    if (id === 'raw' || id === 'gzip' || id === 'zstd') {
      const r = await shell(PIPELINES[id], { OUT: out });
      const cpu = dbCpu();
      const outBytes = id === 'raw' ? Number(r.output.trim()) : statSync(out).size;
      return { variant: id, size, run: runNo, warmup, wallMs: r.ms, outBytes, clientCpuMs: r.clientCpuMs, ...cpu };
    }
    mkdirSync(out, { recursive: true });
    backupClock += 60_000; // a new backup name each time (an existing manifest would short-cut the backup)
    const args: WorkerArgs = { container: CONTAINER, database: DB, user: USER, passwordFile, storageDir: out, checksums: id === 'runbook-checksums', at: new Date(backupClock).toISOString() };
    const r = await shell(WORKER, { NODE: process.execPath, WORKER: path.join(__dirname, 'backup-worker.js'), ARGS: JSON.stringify(args) });
    const cpu = dbCpu();
    const w = JSON.parse(r.output.trim().split('\n').pop()!) as WorkerResult;
    return {
      variant: id,
      size,
      run: runNo,
      warmup,
      wallMs: w.backupMs,
      outBytes: w.sizeBytes ?? 0,
      processMs: r.ms,
      clientCpuMs: r.clientCpuMs,
      ...cpu,
      rssKiB: w.maxRssKiB,
      childRssKiB: w.childPeakRssKiB,
      workerCpuMs: w.cpuMs,
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function idleWorkerRssKiB(): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 3; i++) {
    const args: Partial<WorkerArgs> = { idle: true };
    const r = await run(process.execPath, [path.join(__dirname, 'backup-worker.js'), JSON.stringify(args)]);
    out.push((JSON.parse(r.stdout.trim()) as WorkerResult).maxRssKiB);
  }
  return out;
}

// ---- figures ----

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const secs = (ms: number) => (ms / 1000).toFixed(2);
const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MB`;
const mbKiB = (kib: number) => (kib / 1024).toFixed(0);
const ratio = (x: number) => `${x.toFixed(2)}×`;

interface Row {
  variant: VariantId;
  label: string;
  size: string;
  dbBytes: number;
  runsS: string;
  wallMs: number;
  outBytes: number;
  vsZstd: number;
  vsGzip: number;
  sizeVsGzip: number;
  dbCpuMs?: number;
  clientCpuMs: number;
  rssKiB?: number;
  childRssKiB?: number;
  processMs?: number;
}

function summarize(ms: Measurement[], loaded: Map<string, Loaded>): Row[] {
  const rows: Row[] = [];
  for (const [size, l] of loaded) {
    const of = (v: VariantId) => ms.filter((m) => m.size === size && m.variant === v && !m.warmup);
    const med = (v: VariantId) => median(of(v).map((m) => m.wallMs));
    const outOf = (v: VariantId) => median(of(v).map((m) => m.outBytes));
    for (const v of VARIANTS) {
      const mm = of(v.id);
      if (mm.length === 0) continue;
      const rss = mm.flatMap((m) => (m.rssKiB === undefined ? [] : [m.rssKiB]));
      const child = mm.flatMap((m) => (m.childRssKiB ? [Math.max(0, ...Object.values(m.childRssKiB))] : []));
      const proc = mm.flatMap((m) => (m.processMs === undefined ? [] : [m.processMs]));
      const dbCpu = mm.flatMap((m) => (m.dbCpuMs === undefined ? [] : [m.dbCpuMs]));
      rows.push({
        variant: v.id,
        label: v.label,
        size,
        dbBytes: l.dbBytes,
        runsS: mm.map((m) => secs(m.wallMs)).join(' / '),
        wallMs: med(v.id),
        outBytes: outOf(v.id),
        vsZstd: med(v.id) / med('zstd'),
        vsGzip: med(v.id) / med('gzip'),
        sizeVsGzip: outOf(v.id) / outOf('gzip'),
        ...(dbCpu.length ? { dbCpuMs: median(dbCpu) } : {}),
        clientCpuMs: median(mm.map((m) => m.clientCpuMs)),
        ...(rss.length ? { rssKiB: Math.max(...rss) } : {}),
        ...(child.length ? { childRssKiB: Math.max(...child) } : {}),
        ...(proc.length ? { processMs: median(proc) } : {}),
      });
    }
  }
  return rows;
}

const HEADER = ['variant', 'DB size', 'wall s (median)', 'runs s', 'output bytes', 'vs zstd', 'vs gzip', 'size vs gzip', 'peak RSS MB', 'zstd RSS MB', 'DB CPU s', 'client CPU s'];
const cells = (r: Row) => [
  r.label,
  mb(r.dbBytes),
  secs(r.wallMs),
  r.runsS,
  String(r.outBytes),
  ratio(r.vsZstd),
  ratio(r.vsGzip),
  ratio(r.sizeVsGzip),
  r.rssKiB === undefined ? '' : mbKiB(r.rssKiB),
  r.childRssKiB === undefined ? '' : mbKiB(r.childRssKiB),
  r.dbCpuMs === undefined ? '' : secs(r.dbCpuMs),
  secs(r.clientCpuMs),
];

function textTable(rows: Row[]): string {
  const all = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out: string[] = [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  ')];
  let size = rows[0]?.size;
  for (const r of rows) {
    if (r.size !== size) out.push('');
    size = r.size;
    out.push(line(cells(r)));
  }
  return out.join('\n');
}

const markdownTable = (rows: Row[]) =>
  [`| ${HEADER.join(' | ')} |`, `|${HEADER.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`, ...rows.map((r) => `| ${cells(r).join(' | ')} |`)].join('\n');

interface Verdict {
  bar: string;
  pass: boolean;
  detail: string;
}

function verdicts(rows: Row[], sizes: string[]): Verdict[] {
  const rb = (size: string, v: VariantId = 'runbook') => rows.find((r) => r.size === size && r.variant === v)!;
  const v: Verdict[] = [];
  for (const s of sizes) {
    const r = rb(s);
    v.push({ bar: `wall time ≤ 1.1 × the zstd pipeline at ${s}`, pass: r.vsZstd <= 1.1, detail: `${secs(r.wallMs)} s = ${ratio(r.vsZstd)} zstd, ${ratio(r.vsGzip)} gzip (with checksums: true: ${ratio(rb(s, 'runbook-checksums').vsZstd)} zstd)` });
  }
  const rss = sizes.map((s) => rb(s).rssKiB ?? 0);
  v.push({ bar: 'peak RSS ≤ 150 MB', pass: Math.max(...rss) <= 150 * 1024, detail: sizes.map((s, i) => `${s}: ${mbKiB(rss[i])} MB`).join(', ') });
  if (sizes.length > 1) {
    const first = rss[0];
    const last = rss[rss.length - 1];
    const change = (last - first) / first;
    v.push({ bar: `peak RSS at ${sizes[sizes.length - 1]} within 10 % of ${sizes[0]}`, pass: Math.abs(change) <= 0.1, detail: `${mbKiB(first)} → ${mbKiB(last)} MB (${change >= 0 ? '+' : ''}${(change * 100).toFixed(1)} %)` });
  }
  return v;
}

const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

async function versions(loadAtStart: string): Promise<Record<string, string>> {
  const first = async (p: Promise<Ran>) => (await p.catch((e: Error) => ({ stdout: e.message, stderr: '', ms: 0 }))).stdout.trim().split('\n')[0];
  return {
    cpu: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    loadavg: `start ${loadAtStart}, end ${loadavg()} (1/5/15 min; other work on the machine shows here)`,
    node: process.version,
    postgres: await first(dockerCli(['exec', CONTAINER, 'postgres', '--version'])),
    pg_dump: await first(dockerCli(['exec', CONTAINER, 'pg_dump', '--version'])),
    docker: await first(dockerCli(['version', '--format', 'client {{.Client.Version}}, engine {{.Server.Version}}'])),
    zstd: await first(run('zstd', ['--version'])),
    gzip: await first(run('gzip', ['--version'])),
  };
}

// ---- main ----

let workDir: string | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Stops the children, removes the container (and its volume) and the work files; once, however often called. */
function cleanup(): Promise<void> {
  cleaning ??= removeEverything();
  return cleaning;
}

async function removeEverything(): Promise<void> {
  for (const c of children) {
    try {
      process.kill(-c.pid!, 'SIGTERM');
    } catch {
      // gone already
    }
  }
  await removeContainer();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const started = new Date();
  const t0 = performance.now();
  const loadAtStart = loadavg();
  workDir = mkdtempSync(path.join(os.tmpdir(), 'bench-backup-'));
  const passwordFile = path.join(workDir, 'pg-password');
  const password = randomBytes(18).toString('hex');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });

  process.stdout.write(`bench/backup: starting ${CONTAINER} (${IMAGE}); work files in ${workDir}\n`);
  await startDatabase(password);
  await psql(SCHEMA_SQL);

  const idle = await idleWorkerRssKiB();
  process.stdout.write(`idle worker process (same modules loaded, no backup): peak RSS ${idle.map(mbKiB).join(' / ')} MB\n`);

  const measurements: Measurement[] = [];
  const loaded = new Map<string, Loaded>();
  for (const sizeMiB of opts.sizesMiB) {
    const size = sizeMiB >= 1024 ? `~${+(sizeMiB / 1024).toFixed(1)} GB` : `~${sizeMiB} MB`;
    process.stdout.write(`\n${size}: loading data\n`);
    const l = await growTo(sizeMiB * MiB);
    loaded.set(size, l);
    process.stdout.write(`  pg_database_size ${mb(l.dbBytes)} (${l.dbBytes} bytes), rows ${JSON.stringify(l.rows)}, loaded in ${secs(l.loadMs)} s\n`);
    const warm = await runVariant('raw', size, 0, workDir, passwordFile, true);
    measurements.push(warm);
    process.stdout.write(`  warm-up read (pg_dump | wc -c): ${secs(warm.wallMs)} s, ${warm.outBytes} bytes of SQL\n`);
    for (let r = 1; r <= opts.runs; r++) {
      // interleaved, and rotated each round, so drift and position in the round hit every variant alike
      const order = VARIANTS.map((_, i) => VARIANTS[(i + r - 1) % VARIANTS.length]);
      for (const v of order) {
        const m = await runVariant(v.id, size, r, workDir, passwordFile);
        measurements.push(m);
        const extra = m.rssKiB !== undefined ? `, worker peak RSS ${mbKiB(m.rssKiB)} MB, process ${secs(m.processMs!)} s` : '';
        process.stdout.write(`  run ${r}/${opts.runs} ${v.id.padEnd(20)} ${secs(m.wallMs).padStart(7)} s ${String(m.outBytes).padStart(12)} bytes${extra}\n`);
      }
    }
  }

  const rows = summarize(measurements, loaded);
  const sizes = [...loaded.keys()];
  const verdictList = verdicts(rows, sizes);
  const env = await versions(loadAtStart);
  const totalMs = performance.now() - t0;

  const verdictText = verdictList.map((v) => `${v.pass ? 'PASS' : 'FAIL'}  ${v.bar}: ${v.detail}`).join('\n');
  const notes = [
    `Median of ${opts.runs} runs per variant and size (runs interleaved; one warm-up read per size, not counted).`,
    'wall s: pipelines timed as a whole command (docker CLI start-up included); runbook: backupDatabase from call to return in the worker process (a running worker pays no node start-up; the whole process is in the JSON as processMs).',
    `peak RSS MB: the worker (node) process's maxRSS; an idle node process loading the same modules peaks at ${mbKiB(median(idle))} MB. zstd RSS MB: the worker's zstd child (VmHWM), a separate process.`,
    'vs zstd / vs gzip: wall time ÷ the median wall time of that pipeline at the same size; size vs gzip: output bytes ÷ the gzip file’s.',
    'DB CPU s: CPU time of the database container (server backends + pg_dump; the checksum session included) during the run. client CPU s: docker CLI + gzip/zstd, or the worker process (node start-up included) + its zstd. Medians. The Docker engine’s own CPU (it relays the exec stream) is in neither.',
  ];
  const stamp = started.toISOString().replace(/[:]/g, '').replace(/\..*/, 'Z');
  const resultsDir = path.join(REPO, '.state', 'bench');
  mkdirSync(resultsDir, { recursive: true });
  const base = path.join(resultsDir, `backup-${stamp}`);
  const loadedJson = Object.fromEntries([...loaded].map(([k, l]) => [k, l]));
  writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ bench: 'backup', startedAt: started.toISOString(), totalMs, options: opts, environment: env, idleWorkerRssKiB: idle, loaded: loadedJson, rows, verdicts: verdictList, measurements }, null, 2)}\n`,
  );
  const md = [
    `# bench/backup — ${started.toISOString()}`,
    '',
    Object.entries(env).map(([k, v]) => `- ${k}: ${v}`).join('\n'),
    `- data: ${[...loaded].map(([k, l]) => `${k} = pg_database_size ${l.dbBytes} bytes, rows ${JSON.stringify(l.rows)}`).join('; ')}`,
    `- total run time: ${secs(totalMs)} s`,
    '',
    markdownTable(rows),
    '',
    verdictList.map((v) => `- **${v.pass ? 'PASS' : 'FAIL'}** ${v.bar}: ${v.detail}`).join('\n'),
    '',
    notes.map((n) => `- ${n}`).join('\n'),
    '',
  ].join('\n');
  writeFileSync(`${base}.md`, md);

  process.stdout.write(`\n${textTable(rows)}\n\n${verdictText}\n\n${notes.join('\n')}\n\ntotal ${secs(totalMs)} s; results: ${base}.json, ${base}.md\n`);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`\nbench/backup: ${sig}, removing ${CONTAINER} and the work files\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(cleanup, async (err: unknown) => {
    if (!interrupted) process.stderr.write(`bench/backup failed: ${(err as Error)?.message ?? String(err)}\n`);
    await cleanup();
    process.exitCode = interrupted ? 130 : 1;
  })
  .then(() => process.exit());
