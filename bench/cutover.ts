// bench/cutover: the write freeze of runbook 4's database switch (dnsCutover's switchOver: logical
// replication old → new, then old read-only, caught up, replication removed, sequences carried,
// marks, reverse replication, new writable) against the classic stop → pg_dump | psql → start move
// of the same database, both measured in the same run, under the same steady write load.
// Two throwaway PostgreSQL 15 servers (test/helpers/pg-cluster.ts), a database loaded once into a
// template and copied afresh for every variant run; a writer doing --rate INSERTs/s as the app role.
// Prints the freeze, the checks (every acknowledged write on the new database exactly once, the
// sequences continued) and the ratio, and writes JSON + markdown under .state/bench/. Never a timed
// test: the figures are read, not asserted.
//   bash bench/cutover.sh [--runs N] [--size MiB] [--rate writes/s]     (see --help)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool, type PoolClient } from 'pg';
import { createReplicationActivities } from '../activities/replication';
import type { PgEndpoint, TableMark } from '../common/cutover';
import { PG_BIN, startPgCluster, type PgCluster } from '../test/helpers/pg-cluster';
import { ackGaps, backlogMs, checkWrites, median, type Side, type Table, type Write, type WriteChecks } from './cutover-figures';

const MiB = 2 ** 20;
const REPO = path.resolve(__dirname, '..', '..');
const TEMPLATE = 'app_template';
const DB = 'app';
const APP_ROLE = 'app';
const FORWARD = 'bench_cutover_fwd';
const REVERSE = 'bench_cutover_rev';

// ---- options ----

interface Options {
  runs: number;
  sizeMiB: number;
  rate: number;
  poolSize: number;
  /** First pause before a failed write is retried; doubles per attempt up to retryMaxMs (±20 % jitter). */
  retryMs: number;
  retryMaxMs: number;
  /** Seconds of steady writes before the switch and after the flip. */
  settleS: number;
  /** awaitReplicationCaughtUp's poll interval; undefined: the worker's default (activities/index.ts passes none: 500 ms). */
  pollMs?: number;
}

const USAGE = `usage: bash bench/cutover.sh [options]
  --runs N          runs of each variant, interleaved (default 3)
  --size MiB        pg_database_size of the loaded database (default 100)
  --rate N          INSERTs per second of the writer (default 200)
  --pool N          the writer's connections per database (default 10)
  --retry-ms MS     pause before a failed write is retried, doubling per attempt (default 100)
  --retry-max-ms MS the longest such pause (default 1000)
  --settle S        seconds of steady writes before the switch and after the flip (default 3)
  --poll-ms MS      awaitReplicationCaughtUp's poll interval (default: the worker's, 500)
`;

function parseOptions(argv: string[]): Options {
  const o: Options = { runs: 3, sizeMiB: 100, rate: 200, poolSize: 10, retryMs: 100, retryMaxMs: 1000, settleS: 3 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => Number(inline ?? argv[++i]);
    if (flag === '--runs') o.runs = value();
    else if (flag === '--size') o.sizeMiB = value();
    else if (flag === '--rate') o.rate = value();
    else if (flag === '--pool') o.poolSize = value();
    else if (flag === '--retry-ms') o.retryMs = value();
    else if (flag === '--retry-max-ms') o.retryMaxMs = value();
    else if (flag === '--settle') o.settleS = value();
    else if (flag === '--poll-ms') o.pollMs = value();
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${argv[i]}\n${USAGE}`);
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs must be an integer ≥ 1');
  for (const [k, v] of Object.entries(o)) if (v !== undefined && !(Number(v) > 0)) throw new Error(`--${k} must be a positive number`);
  if (o.retryMaxMs < o.retryMs) throw new Error('--retry-max-ms must be ≥ --retry-ms');
  return o;
}

// ---- time, child processes ----

const T0 = performance.now();
/** Milliseconds since the bench started, 0.1 ms resolution. */
const now = () => Math.round((performance.now() - T0) * 10) / 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();

/** A bash pipeline (pipefail) in its own process group; rejects with the tail of stderr. */
function shell(script: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...env }, detached: true });
    children.add(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
    child.once('error', (err) => {
      children.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      if (code === 0) resolve();
      else reject(new Error(`${script.slice(0, 120)}… exited ${code ?? signal}: ${stderr.trim().split('\n').slice(-5).join('\n')}`));
    });
  });
}

// ---- the servers and the data ----

interface Servers {
  old: PgCluster;
  new: PgCluster;
  appPassword: string;
}

const SERVER_SETTINGS = {
  // the helper's defaults (fsync off, synchronous_commit off: the same for both variants) and room to load
  shared_buffers: "'128MB'",
  max_wal_size: "'2GB'",
  checkpoint_timeout: "'30min'",
  log_min_messages: 'warning',
};

const SCHEMA_SQL = `
CREATE TABLE items (
  id serial PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  description text,
  price numeric(10,2) NOT NULL,
  created_at timestamptz NOT NULL,
  request_id text
);
CREATE TABLE events (
  id bigserial PRIMARY KEY,
  item_id int NOT NULL REFERENCES items (id),
  kind text NOT NULL,
  occurred_at timestamptz NOT NULL,
  payload text NOT NULL,
  request_id text
);
CREATE INDEX events_occurred_at ON events (occurred_at);
CREATE INDEX events_item_id ON events (item_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${APP_ROLE};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${APP_ROLE};`;

const md5s = (n: number) => Array.from({ length: n }, () => 'md5(random()::text)').join(' || ');
const pick = (values: string[]) => `(ARRAY[${values.map((v) => `'${v}'`).join(',')}])[1 + floor(random() * ${values.length})::int]`;

/** `units` more rows: 1 item and 5 events each (events of random existing items, over the last 90 days). */
function loadSql(firstItem: number, units: number): string {
  const items = firstItem - 1 + units;
  return `
INSERT INTO items (sku, name, description, price, created_at, request_id)
SELECT 'SKU-' || lpad(g::text, 9, '0'),
  ${pick(['Widget', 'Gadget', 'Bolt', 'Cable', 'Lamp', 'Chair', 'Kettle', 'Sensor'])} || ' ' || substr(md5(random()::text), 1, 8),
  CASE WHEN random() < 0.8 THEN substr(${md5s(5)}, 1, 40 + floor(random() * 120)::int) END,
  round((random() * 500 + 1)::numeric, 2),
  now() - random() * interval '900 days',
  gen_random_uuid()::text
FROM generate_series(${firstItem}, ${items}) AS g;
INSERT INTO events (item_id, kind, occurred_at, payload, request_id)
SELECT 1 + floor(random() * ${items})::int,
  ${pick(['view', 'add_to_cart', 'purchase', 'refund', 'stock', 'price_change'])},
  now() - random() * interval '90 days',
  substr(${md5s(3)}, 1, 20 + floor(random() * 76)::int),
  gen_random_uuid()::text
FROM generate_series(1, ${units * 5}) AS g;`;
}

async function dbSize(c: PgCluster, db: string): Promise<number> {
  return Number((await c.query<{ n: string }>(db, 'SELECT pg_database_size(current_database())::text AS n'))[0].n);
}

interface Loaded {
  dbBytes: number;
  items: number;
  events: number;
  loadMs: number;
}

/** The template database on the old server, grown to ~targetBytes, vacuumed and checkpointed. */
async function loadTemplate(old: PgCluster, targetBytes: number): Promise<Loaded> {
  const t = now();
  await old.query('postgres', `CREATE DATABASE ${TEMPLATE}`);
  await old.query(TEMPLATE, SCHEMA_SQL);
  let items = 0;
  let size = await dbSize(old, TEMPLATE);
  let perUnit = 0;
  while (size < targetBytes * 0.98) {
    const units = perUnit ? Math.max(1000, Math.min(Math.ceil((targetBytes - size) / perUnit), Math.ceil((128 * MiB) / perUnit))) : 5000;
    await old.query(TEMPLATE, loadSql(items + 1, units));
    items += units;
    const grown = await dbSize(old, TEMPLATE);
    perUnit = (grown - size) / units;
    size = grown;
    process.stdout.write(`  loading: ${(size / MiB).toFixed(0)} of ${(targetBytes / MiB).toFixed(0)} MB (${secs(now() - t)} s)\n`);
  }
  await old.query(TEMPLATE, 'VACUUM (ANALYZE)');
  await old.query(TEMPLATE, 'CHECKPOINT');
  return { dbBytes: await dbSize(old, TEMPLATE), items, events: items * 5, loadMs: now() - t };
}

// ---- the writer ----

const SESSION_GONE = /^(57P|08)/;
const listening = new WeakSet<PoolClient>();

/**
 * An open-loop writer: `rate` writes per second on schedule, whatever the earlier ones are doing.
 * Each write is its own transaction (BEGIN, one INSERT … RETURNING id, COMMIT) as the app role, on
 * a connection from the pool of the side that is live when the attempt starts; acknowledged when
 * COMMIT returns. A failed attempt is retried after a pause (doubling, jittered, capped), against
 * whichever side is live then — like an app whose proxy has been pointed at the new side.
 */
class Writer {
  live: Side = 'old';
  readonly writes: Write[] = [];
  private readonly pools: Record<Side, Pool>;
  private readonly running = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  private startedAt = 0;
  private abandoned = false;
  private stopped?: Promise<void>;

  constructor(
    ports: Record<Side, number>,
    password: string,
    private readonly o: Options,
    private readonly prefix: string,
    private readonly items: number,
  ) {
    const pool = (port: number) => {
      const p = new Pool({ host: '127.0.0.1', port, database: DB, user: APP_ROLE, password, max: o.poolSize, connectionTimeoutMillis: 5000, application_name: 'bench-cutover-writer' });
      p.on('error', () => undefined); // an idle connection ended by the server: the pool drops it
      return p;
    };
    this.pools = { old: pool(ports.old), new: pool(ports.new) };
  }

  start(): void {
    this.startedAt = now();
    this.timer = setInterval(() => {
      const due = Math.floor(((now() - this.startedAt) * this.o.rate) / 1000) + 1;
      while (this.writes.length < due) this.issue(this.startedAt + (this.writes.length * 1000) / this.o.rate);
    }, 2);
  }

  private issue(scheduledAt: number): void {
    const n = this.writes.length;
    const w: Write = { ref: `${this.prefix}${n}`, table: n % 2 ? 'events' : 'items', scheduledAt, attempts: [] };
    this.writes.push(w);
    const p = this.write(w).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  private statement(w: Write): [string, unknown[]] {
    if (w.table === 'items') {
      return ['INSERT INTO items (sku, name, description, price, created_at, request_id) VALUES ($1, $2, $3, $4, now(), $5) RETURNING id::text AS id', [`W-${w.ref}`, 'Written by the bench', randomBytes(24).toString('hex'), (Math.random() * 100 + 1).toFixed(2), w.ref]];
    }
    return ['INSERT INTO events (item_id, kind, occurred_at, payload, request_id) VALUES ($1, $2, now(), $3, $4) RETURNING id::text AS id', [1 + Math.floor(Math.random() * this.items), 'view', randomBytes(20).toString('hex'), w.ref]];
  }

  private async write(w: Write): Promise<void> {
    const [sql, params] = this.statement(w);
    let pause = this.o.retryMs;
    while (!this.abandoned) {
      const side = this.live;
      const at = now();
      let phase = 'connect';
      let client: PoolClient | undefined;
      try {
        client = await this.pools[side].connect();
        if (!listening.has(client)) {
          // ended by the server while checked out between queries: the next query fails, and is retried
          client.on('error', () => undefined);
          listening.add(client);
        }
        phase = 'begin';
        await client.query('BEGIN');
        phase = 'insert';
        const r = await client.query<{ id: string }>(sql, params);
        phase = 'commit';
        await client.query('COMMIT');
        const ackAt = now();
        client.release();
        w.attempts.push({ at, side, ms: Math.round((ackAt - at) * 10) / 10, outcome: 'ok' });
        w.ackAt = ackAt;
        w.ackSide = side;
        w.id = r.rows[0].id;
        return;
      } catch (err) {
        const e = err as { code?: string; message?: string };
        w.attempts.push({ at, side, ms: Math.round((now() - at) * 10) / 10, outcome: e.code ?? (e.message ?? String(err)).slice(0, 80), phase });
        if (client) {
          const c = client;
          // an error inside the session (read-only): roll back and keep the connection; else drop it
          if (e.code && !SESSION_GONE.test(e.code)) await c.query('ROLLBACK').then(() => c.release(), (x: Error) => c.release(x));
          else c.release(err as Error);
        }
        await sleep(pause * (0.8 + Math.random() * 0.4));
        pause = Math.min(pause * 2, this.o.retryMaxMs);
      }
    }
  }

  /** Stops issuing, waits up to drainMs for the writes in flight, then gives up on the rest and closes the pools. */
  stop(drainMs = 30_000): Promise<void> {
    this.stopped ??= this.drain(drainMs);
    return this.stopped;
  }

  private async drain(drainMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const deadline = Date.now() + drainMs;
    while (this.running.size && Date.now() < deadline) await sleep(50);
    this.abandoned = true;
    await Promise.race([Promise.allSettled([...this.running]), sleep(6000)]);
    await Promise.all([this.pools.old.end().catch(() => undefined), this.pools.new.end().catch(() => undefined)]);
  }
}

// ---- the variants ----

type VariantId = 'runbook' | 'dump';
const VARIANT_LABEL: Record<VariantId, string> = {
  runbook: 'A runbook switch (logical replication)',
  dump: 'B stop → pg_dump | psql → start',
};

interface Step {
  step: string;
  startAt: number;
  endAt: number;
  result?: unknown;
}

interface RunResult extends WriteChecks {
  variant: VariantId;
  run: number;
  prefix: string;
  dbBytes: number;
  /** A: the initial copy (startReplication → every table ready), before the switch, writes flowing. */
  initialCopyMs?: number;
  steps: Step[];
  /** First switch step's start → last step's end (A: setAppWrites(old) → setAppWrites(new); B: reject → open). */
  switchMs: number;
  /** A: awaitReplicationCaughtUp; B: pg_dump | psql. */
  catchUpMs: number;
  flipAt: number;
  /** The longest gap between two consecutive acknowledgements overlapping the switch. */
  freezeMs: number;
  freezeFrom: number;
  freezeTo: number;
  /** The longest gap between acknowledgements away from the switch (what the machine does by itself). */
  otherMaxGapMs: number;
  /** Flip → the last write that was pending at the flip acknowledged. */
  backlogMs: number;
  issued: number;
  /** Per table: the sequence's last_value on the new database ≥ its max(id). */
  sequencesAhead: boolean;
  writes: Write[];
}

function endpoints(s: Servers): { old: PgEndpoint; new: PgEndpoint } {
  const ep = (c: PgCluster, label: string): PgEndpoint => ({ label, address: '127.0.0.1', port: c.port, database: DB, user: c.superuser, passwordFile: c.passwordFile, appRole: APP_ROLE });
  return { old: ep(s.old, 'old'), new: ep(s.new, 'new') };
}

/** A fresh copy of the template on the old server, an empty database on the new one (read-only for the app, as the workflow leaves it). */
async function prepare(s: Servers, act: ReturnType<typeof createReplicationActivities>): Promise<void> {
  await s.old.query('postgres', `CREATE DATABASE ${DB} TEMPLATE ${TEMPLATE}`);
  await s.new.query('postgres', `CREATE DATABASE ${DB}`);
  await act.setAppWrites({ endpoint: endpoints(s).new, writable: false });
}

async function teardown(s: Servers, act: ReturnType<typeof createReplicationActivities>): Promise<void> {
  const ep = endpoints(s);
  await act.removeReplication({ from: ep.new, to: ep.old, name: REVERSE }).catch(() => undefined);
  await act.removeReplication({ from: ep.old, to: ep.new, name: FORWARD }).catch(() => undefined);
  await s.old.query('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await s.new.query('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
}

async function step<T>(steps: Step[], name: string, fn: () => Promise<T>): Promise<T> {
  const startAt = now();
  const result = await fn();
  steps.push({ step: name, startAt, endAt: now(), ...(result !== undefined ? { result } : {}) });
  return result;
}

async function runVariant(variant: VariantId, runNo: number, s: Servers, o: Options, act: ReturnType<typeof createReplicationActivities>, loaded: Loaded): Promise<RunResult> {
  const ep = endpoints(s);
  const prefix = `w:${variant === 'runbook' ? 'A' : 'B'}${runNo}:`;
  await teardown(s, act); // a leftover of a failed run
  await prepare(s, act);
  const steps: Step[] = [];
  const writer = new Writer({ old: s.old.port, new: s.new.port }, s.appPassword, o, prefix, loaded.items);
  try {
    writer.start();
    let initialCopyMs: number | undefined;
    if (variant === 'runbook') {
      // before T0, as the workflow does: replicate old → new with the initial copy, writes flowing
      const t = now();
      await act.startReplication({ from: ep.old, to: ep.new, name: FORWARD, copyData: true, copySchema: true });
      while (!(await act.replicationStatus({ from: ep.old, to: ep.new, name: FORWARD })).ready) await sleep(250);
      initialCopyMs = now() - t;
    }
    await sleep(o.settleS * 1000);
    let marks: TableMark[] | undefined;
    if (variant === 'runbook') {
      // switchOver in workflows/dnsCutover.ts, step for step
      await step(steps, 'setAppWrites(old, false)', () => act.setAppWrites({ endpoint: ep.old, writable: false }));
      await step(steps, 'awaitReplicationCaughtUp(old→new)', () => act.awaitReplicationCaughtUp({ from: ep.old, to: ep.new, name: FORWARD, timeoutMs: 120_000 }));
      await step(steps, 'removeReplication(old→new)', () => act.removeReplication({ from: ep.old, to: ep.new, name: FORWARD }));
      await step(steps, 'copySequences(old→new)', () => act.copySequences({ from: ep.old, to: ep.new }));
      marks = await step(steps, 'markTables(old)', () => act.markTables({ endpoint: ep.old }));
      await step(steps, 'startReplication(new→old, copyData false)', () => act.startReplication({ from: ep.new, to: ep.old, name: REVERSE, copyData: false, copySchema: false }));
      await step(steps, 'setAppWrites(new, true)', () => act.setAppWrites({ endpoint: ep.new, writable: true }));
      writer.live = 'new';
    } else {
      const env = { OLD_PW: s.old.password, NEW_PW: s.new.password, PG_BIN, OLD_PORT: String(s.old.port), NEW_PORT: String(s.new.port), ADMIN: s.old.superuser, DB };
      await step(steps, 'setAppWrites(old, false)', () => act.setAppWrites({ endpoint: ep.old, writable: false }));
      await step(steps, 'pg_dump old | psql new', () =>
        shell(
          'PGPASSWORD="$OLD_PW" "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$OLD_PORT" -U "$ADMIN" --no-password "$DB" | PGPASSWORD="$NEW_PW" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$NEW_PORT" -U "$ADMIN" --no-password -d "$DB"',
          env,
        ),
      );
      writer.live = 'new';
      await step(steps, 'setAppWrites(new, true)', () => act.setAppWrites({ endpoint: ep.new, writable: true }));
    }
    const flipAt = variant === 'runbook' ? now() : steps[1].endAt;
    await sleep(o.settleS * 1000);
    await writer.stop();
    return { ...(await check(variant, runNo, prefix, s, writer, steps, flipAt, marks, initialCopyMs)) };
  } finally {
    await writer.stop(0);
    await teardown(s, act);
  }
}

// ---- the checks and the figures ----

async function check(variant: VariantId, runNo: number, prefix: string, s: Servers, writer: Writer, steps: Step[], flipAt: number, marks: TableMark[] | undefined, initialCopyMs: number | undefined): Promise<RunResult> {
  const writes = writer.writes;
  const rowsOnNew = new Map<string, number>();
  for (const table of ['items', 'events'] as Table[]) {
    const rows = await s.new.query<{ ref: string; n: string }>(DB, `SELECT request_id AS ref, count(*)::text AS n FROM ${table} WHERE request_id LIKE $1 GROUP BY request_id`, [`${prefix}%`]);
    for (const r of rows) rowsOnNew.set(r.ref, Number(r.n));
  }
  // the highest id of each table when the switch began: A from markTables(old) at T0, B from the old database (frozen since)
  const maxAtSwitch: Record<Table, bigint> = { items: 0n, events: 0n };
  for (const table of ['items', 'events'] as Table[]) {
    const mark = marks?.find((m) => m.table === `public.${table}`);
    const max = mark ? mark.maxKey : (await s.old.query<{ m: string | null }>(DB, `SELECT max(id)::text AS m FROM ${table}`))[0].m;
    maxAtSwitch[table] = BigInt(max ?? '0');
  }
  let sequencesAhead = true;
  for (const table of ['items', 'events'] as Table[]) {
    const r = (await s.new.query<{ last: string | null; max: string | null }>(DB, `SELECT (SELECT last_value::text FROM pg_sequences WHERE sequencename = '${table}_id_seq') AS last, (SELECT max(id)::text FROM ${table}) AS max`))[0];
    if (BigInt(r.last ?? '0') < BigInt(r.max ?? '0')) sequencesAhead = false;
  }

  const first = steps[0].startAt;
  const last = steps[steps.length - 1].endAt;
  const gaps = ackGaps(writes.flatMap((w) => (w.ackAt === undefined ? [] : [w.ackAt])), first, last, now());
  const catchUp = steps.find((x) => x.step.startsWith('awaitReplicationCaughtUp') || x.step.startsWith('pg_dump'))!;

  return {
    variant,
    run: runNo,
    prefix,
    dbBytes: 0,
    ...(initialCopyMs !== undefined ? { initialCopyMs } : {}),
    steps,
    switchMs: last - first,
    catchUpMs: catchUp.endAt - catchUp.startAt,
    flipAt,
    freezeMs: gaps.freeze.ms,
    freezeFrom: gaps.freeze.from,
    freezeTo: gaps.freeze.to,
    otherMaxGapMs: gaps.otherMaxGapMs,
    backlogMs: backlogMs(writes, flipAt),
    issued: writes.length,
    ...checkWrites(writes, rowsOnNew, maxAtSwitch),
    sequencesAhead,
    writes,
  };
}

const secs = (ms: number) => (ms / 1000).toFixed(2);
const ms0 = (ms: number) => ms.toFixed(0);
const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MB`;

interface Row {
  variant: VariantId;
  size: string;
  runs: number;
  freezeP50Ms: number;
  freezeMaxMs: number;
  freezeRunsS: string;
  switchP50Ms: number;
  catchUpP50Ms: number;
  backlogP50Ms: number;
  otherMaxGapMs: number;
  acked: number;
  lost: number;
  duplicated: number;
  phantoms: number;
  unacked: number;
  sequenceConflicts: number;
  freezeVsA: number;
}

function summarize(results: RunResult[], size: string): Row[] {
  const of = (v: VariantId) => results.filter((r) => r.variant === v);
  const p50A = median(of('runbook').map((r) => r.freezeMs));
  return (['runbook', 'dump'] as VariantId[]).filter((v) => of(v).length).map((v) => {
    const rs = of(v);
    const sum = (f: (r: RunResult) => number) => rs.reduce((n, r) => n + f(r), 0);
    const p50 = median(rs.map((r) => r.freezeMs));
    return {
      variant: v,
      size,
      runs: rs.length,
      freezeP50Ms: p50,
      freezeMaxMs: Math.max(...rs.map((r) => r.freezeMs)),
      freezeRunsS: rs.map((r) => secs(r.freezeMs)).join(' / '),
      switchP50Ms: median(rs.map((r) => r.switchMs)),
      catchUpP50Ms: median(rs.map((r) => r.catchUpMs)),
      backlogP50Ms: median(rs.map((r) => r.backlogMs)),
      otherMaxGapMs: Math.max(...rs.map((r) => r.otherMaxGapMs)),
      acked: sum((r) => r.acked),
      lost: sum((r) => r.lost),
      duplicated: sum((r) => r.duplicated),
      phantoms: sum((r) => r.phantoms),
      unacked: sum((r) => r.unacked),
      sequenceConflicts: sum((r) => r.sequenceConflicts + r.uniqueViolations + (r.sequencesAhead ? 0 : 1)),
      freezeVsA: p50 / p50A,
    };
  });
}

const HEADER = ['size', 'variant', 'freeze p50 s', 'freeze max s', 'freeze runs s', 'switch p50 s', 'catch-up p50 s', 'backlog p50 s', 'other gap max s', 'acked', 'lost', 'dup', 'phantom', 'unacked', 'seq conflicts', 'freeze ÷ A'];
const cells = (r: Row) => [
  r.size,
  VARIANT_LABEL[r.variant],
  secs(r.freezeP50Ms),
  secs(r.freezeMaxMs),
  r.freezeRunsS,
  secs(r.switchP50Ms),
  secs(r.catchUpP50Ms),
  secs(r.backlogP50Ms),
  secs(r.otherMaxGapMs),
  String(r.acked),
  String(r.lost),
  String(r.duplicated),
  String(r.phantoms),
  String(r.unacked),
  String(r.sequenceConflicts),
  `${r.freezeVsA.toFixed(1)}×`,
];

function textTable(rows: Row[]): string {
  const all = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => line(cells(r)))].join('\n');
}

const markdownTable = (rows: Row[]) =>
  [`| ${HEADER.join(' | ')} |`, `|${HEADER.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`, ...rows.map((r) => `| ${cells(r).map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`)].join('\n');

/** Median duration of every step of a variant, in order: where the switch's time goes. */
function stepBreakdown(results: RunResult[], v: VariantId): string {
  const rs = results.filter((r) => r.variant === v);
  if (!rs.length) return '';
  const copies = rs.flatMap((r) => (r.initialCopyMs === undefined ? [] : [r.initialCopyMs]));
  const before = copies.length ? `(before the switch, writes flowing: initial copy ${secs(median(copies))} s) ` : '';
  return before + rs[0].steps.map((s, i) => `${s.step} ${secs(median(rs.map((r) => r.steps[i].endAt - r.steps[i].startAt)))} s`).join(' → ');
}

const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

// ---- main ----

let servers: Partial<Servers> = {};
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Stops the pipelines and removes both servers and their directories; once, however often called. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, 'SIGTERM');
      } catch {
        // gone already
      }
    }
    await Promise.all([servers.old?.remove(), servers.new?.remove()].map((p) => p?.catch(() => undefined)));
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const started = new Date();
  const loadAtStart = loadavg();
  const tag = process.env.BENCH_CUTOVER_TAG ?? String(process.pid);
  const [oldPw, newPw, appPw] = [randomBytes(18).toString('hex'), randomBytes(18).toString('hex'), randomBytes(18).toString('hex')];
  process.stdout.write(`bench/cutover: starting two PostgreSQL 15 servers (${PG_BIN})\n`);
  const [oldC, newC] = await Promise.allSettled([
    startPgCluster({ name: `bench-cutover-${tag}-old`, password: oldPw, settings: SERVER_SETTINGS }),
    startPgCluster({ name: `bench-cutover-${tag}-new`, password: newPw, settings: SERVER_SETTINGS }),
  ]);
  if (oldC.status === 'fulfilled') servers.old = oldC.value;
  if (newC.status === 'fulfilled') servers.new = newC.value;
  if (oldC.status === 'rejected') throw oldC.reason;
  if (newC.status === 'rejected') throw newC.reason;
  const s: Servers = { old: servers.old!, new: servers.new!, appPassword: appPw };
  servers = s;
  process.stdout.write(`  old 127.0.0.1:${s.old.port} (${s.old.dir}), new 127.0.0.1:${s.new.port} (${s.new.dir})\n`);
  for (const c of [s.old, s.new]) await c.query('postgres', `CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '${appPw}'`);

  process.stdout.write(`loading ~${o.sizeMiB} MB into ${TEMPLATE} on old\n`);
  const loaded = await loadTemplate(s.old, o.sizeMiB * MiB);
  process.stdout.write(`  pg_database_size ${mb(loaded.dbBytes)} (${loaded.dbBytes} bytes), ${loaded.items} items, ${loaded.events} events, loaded in ${secs(loaded.loadMs)} s\n`);

  const act = createReplicationActivities(o.pollMs !== undefined ? { pollMs: o.pollMs } : {});
  const results: RunResult[] = [];
  for (let r = 1; r <= o.runs; r++) {
    const order: VariantId[] = r % 2 ? ['runbook', 'dump'] : ['dump', 'runbook'];
    for (const v of order) {
      process.stdout.write(`run ${r}/${o.runs} ${VARIANT_LABEL[v]}\n`);
      const res = await runVariant(v, r, s, o, act, loaded);
      res.dbBytes = loaded.dbBytes;
      results.push(res);
      const stepsText = res.steps.map((x) => `${x.step} ${secs(x.endAt - x.startAt)}`).join(', ');
      process.stdout.write(
        `  freeze ${secs(res.freezeMs)} s (switch ${secs(res.switchMs)} s${res.initialCopyMs !== undefined ? `, initial copy before it ${secs(res.initialCopyMs)} s` : ''}): ${stepsText}\n` +
          `  last acknowledgement before the freeze +${ms0(res.freezeFrom - res.steps[0].startAt)} ms after the first step's start, first after it +${ms0(res.freezeTo - res.flipAt)} ms after the flip (+${ms0(res.flipAt - res.steps[0].startAt)} ms); terminated app sessions ${res.steps.filter((x) => x.step.startsWith('setAppWrites')).map((x) => (x.result as { terminatedSessions: number }).terminatedSessions).join(' / ')}\n` +
          `  writes ${res.issued} issued, ${res.acked} acked, ${res.unacked} unacked; lost ${res.lost}, duplicated ${res.duplicated}, phantom ${res.phantoms}, ambiguous commits ${res.ambiguousCommits}, sequence conflicts ${res.sequenceConflicts}, unique violations ${res.uniqueViolations}, sequences ahead ${res.sequencesAhead}\n` +
          `  failed attempts ${JSON.stringify(res.failedAttempts)}\n`,
      );
    }
  }

  const size = `~${o.sizeMiB} MB`;
  const rows = summarize(results, size);
  const breakdown = (['runbook', 'dump'] as VariantId[]).map((v) => `${VARIANT_LABEL[v]}: ${stepBreakdown(results, v)}`);
  const environment = {
    cpu: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    loadavg: `start ${loadAtStart}, end ${loadavg()} (1/5/15 min; other work on the machine shows here)`,
    node: process.version,
    postgres: PG_BIN,
    settings: 'fsync off, synchronous_commit off, full_page_writes off (test/helpers/pg-cluster.ts), wal_level logical, shared_buffers 128MB; both servers on this machine, over 127.0.0.1',
  };
  const notes = [
    `${o.runs} run(s) of each variant, interleaved; writer: ${o.rate} INSERTs/s open loop, each its own transaction (BEGIN, INSERT … RETURNING id, COMMIT) as the app role, pool of ${o.poolSize} per database; a failed write retried after ${o.retryMs} ms doubling to ${o.retryMaxMs} ms (±20 %), against the side live then.`,
    'freeze: the longest gap between two consecutive acknowledged writes (COMMIT returned) overlapping the switch. switch: first step start → last step end (A: setAppWrites(old, false) → setAppWrites(new, true), the activities called directly, no Temporal round trips; B: the same read-only switch → pg_dump | psql → open).',
    'catch-up: A awaitReplicationCaughtUp (old read-only → lag 0); B pg_dump | psql. backlog: flip → the last write pending at the flip acknowledged. other gap max: the longest gap between acknowledgements ≥ 1 s away from the switch (the noise floor).',
    'lost: acknowledged, not on the new database; dup: on the new database more than once; phantom: on the new database but never acknowledged (its COMMIT was cut off after committing); unacked: given up after the drain (30 s); seq conflicts: writes acknowledged on new with an id not above the highest id at the switch, unique violations, and sequences behind max(id). All counts summed over runs.',
    `freeze ÷ A: freeze p50 ÷ the runbook's freeze p50 (the ratio B/A is the dump row's).`,
  ];
  const stamp = started.toISOString().replace(/[:]/g, '').replace(/\..*/, 'Z');
  const resultsDir = path.join(REPO, '.state', 'bench');
  mkdirSync(resultsDir, { recursive: true });
  const base = path.join(resultsDir, `cutover-${stamp}`);
  const totalMs = now();
  writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ bench: 'cutover', startedAt: started.toISOString(), totalMs, options: o, environment, loaded, rows, results: results.map((r) => ({ ...r, writes: r.writes.map((w) => ({ ...w, attempts: w.attempts.map((a) => [a.at, a.side, a.ms, a.outcome, a.phase ?? null]) })) })) })}\n`,
  );
  const md = [
    `# bench/cutover — ${started.toISOString()}`,
    '',
    Object.entries(environment).map(([k, v]) => `- ${k}: ${v}`).join('\n'),
    `- data: pg_database_size ${loaded.dbBytes} bytes, ${loaded.items} items, ${loaded.events} events`,
    `- total run time: ${secs(totalMs)} s`,
    '',
    markdownTable(rows),
    '',
    'Median step times:',
    '',
    breakdown.map((b) => `- ${b}`).join('\n'),
    '',
    notes.map((n) => `- ${n}`).join('\n'),
    '',
  ].join('\n');
  writeFileSync(`${base}.md`, md);
  process.stdout.write(`\n${textTable(rows)}\n\n${breakdown.join('\n')}\n\n${notes.join('\n')}\n\ntotal ${secs(totalMs)} s; results: ${base}.json, ${base}.md\n`);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`\nbench/cutover: ${sig}, stopping and removing both servers\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(cleanup, async (err: unknown) => {
    if (!interrupted) process.stderr.write(`bench/cutover failed: ${(err as Error)?.stack ?? String(err)}\n`);
    await cleanup();
    process.exitCode = interrupted ? 130 : 1;
  })
  .then(() => process.exit());
