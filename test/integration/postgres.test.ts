// The postgres activities and the pg_dump/psql argv builders against a real PostgreSQL 15 in a
// container on the test engine: stats and checksums, a dump → scratch restore round trip, errors.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { Client } from 'pg';
import { createPostgresActivities, type PgConnection, type TableStats } from '../../activities/postgres';
import { compareTableStats, envList, pgClientEnv, pgDumpArgv, psqlRestoreArgv, scratchDatabaseName } from '../../common/commands/sql';
import { DOCKER_SOCK } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';
import { portFree, startPostgresContainer, stopwatch, waitContainerHealthy } from '../helpers/postgres-container';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const container = `it-postgres-${randomBytes(4).toString('hex')}`;
const password = `pw-${randomBytes(12).toString('hex')}`;
const wrongPassword = `wrong-${randomBytes(12).toString('hex')}`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-pg-'));
const passwordFile = path.join(tmp, 'pg-password');
const wrongPasswordFile = path.join(tmp, 'pg-wrong-password');
writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
writeFileSync(wrongPasswordFile, `${wrongPassword}\n`, { mode: 0o600 });

const acts = createPostgresActivities({ heartbeatMs: 1000 });
let conn: PgConnection; // from the test process, through the published port
let inside: PgConnection; // from inside the container (what pg_dump and psql use), over TCP with a password
const { timings, timed } = stopwatch();
const startPostgres = () => startPostgresContainer(docker, { name: container, password, label: 'it-postgres', portBase: 18300 });
const waitHealthy = (timeoutMs: number) => waitContainerHealthy(docker, container, timeoutMs);

/**
 * Runs argv in the container with `env`, optionally feeding `stdin`, streaming stdout into `stdout`
 * (nothing buffered but stderr). The environment is given to the exec, never put on the command line.
 */
async function exec(argv: string[], env: Record<string, string>, io: { stdin?: Readable; stdout?: NodeJS.WritableStream } = {}): Promise<{ exitCode: number; stderr: string }> {
  const e = await docker.getContainer(container).exec({ Cmd: argv, Env: envList(env), AttachStdin: Boolean(io.stdin), AttachStdout: true, AttachStderr: true });
  const stream = (await e.start({ hijack: true, stdin: Boolean(io.stdin) })) as unknown as NodeJS.ReadWriteStream & { end(): void };
  const stderr: Buffer[] = [];
  const errSink = new PassThrough().on('data', (c: Buffer) => stderr.push(c));
  const outSink = io.stdout ?? new PassThrough().resume();
  docker.modem.demuxStream(stream, outSink, errSink);
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve).on('close', resolve).on('error', reject);
  });
  if (io.stdin) {
    io.stdin.on('end', () => stream.end()); // half-close: the process sees EOF on stdin
    io.stdin.pipe(stream as unknown as NodeJS.WritableStream, { end: false });
  }
  await done;
  let info = await e.inspect();
  for (let i = 0; info.Running && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    info = await e.inspect();
  }
  return { exitCode: info.ExitCode ?? -1, stderr: Buffer.concat(stderr).toString('utf8') };
}

async function sql(database: string, text: string): Promise<void> {
  const client = new Client({ ...conn, database, password });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const failure = rejectionOf;

const SCHEMA = `
CREATE TABLE users (
  id serial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL,
  bio text,
  balance numeric(12,2) NOT NULL DEFAULT 0,
  born date,
  created_at timestamptz NOT NULL
);
INSERT INTO users (email, name, bio, balance, born, created_at)
SELECT 'user' || g || '@example.com',
       (ARRAY['Zoë Ødegård', 'José Müller', '李小龙', 'Ἀριστοτέλης', 'O''Brien', 'Åsa "Kalle" Öberg', 'محمد', '🙂 emoji'])[1 + g % 8] || ' #' || g,
       CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('lorem ipsum ', g % 17) || E'\\ttab\\nnewline' END,
       round((g * 37.31) % 100000, 2) - 5000,
       CASE WHEN g % 5 = 0 THEN NULL ELSE date '1950-01-01' + (g * 13) % 20000 END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes'
FROM generate_series(1, 3000) g;

CREATE TABLE orders (
  id bigint PRIMARY KEY,
  user_id int NOT NULL REFERENCES users(id),
  amount double precision,
  note text,
  tags text[],
  payload jsonb,
  receipt bytea,
  paid boolean
);
INSERT INTO orders
SELECT g, 1 + g % 3000, CASE WHEN g % 11 = 0 THEN NULL ELSE g / 7.0 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'note ' || md5(g::text) END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE ARRAY['a', 'b c', 'ü'] END,
       jsonb_build_object('n', g, 'city', (ARRAY['Zürich', 'København', '東京'])[1 + g % 3], 'pi', 3.14159265358979),
       CASE WHEN g % 9 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 = 0 END
FROM generate_series(1, 12000) g;

CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Invoice Lines" ("Line ""No""" int, "Amount" numeric, "Überweisung" text);
INSERT INTO "Billing"."Invoice Lines" SELECT g, g * 1.5, 'Zahlung ' || g FROM generate_series(1, 500) g;
INSERT INTO "Billing"."Invoice Lines" SELECT 1, 1.5, 'Zahlung 1' FROM generate_series(1, 3) g; -- duplicate rows

CREATE TABLE audit_log (at timestamptz, what text);
CREATE VIEW rich_users AS SELECT * FROM users WHERE balance > 1000;
`;

const USER_TABLES = ['"Billing"."Invoice Lines"', 'public.audit_log', 'public.orders', 'public.users'];

let source: TableStats;

beforeAll(async () => {
  const t0 = Date.now();
  const port = await startPostgres();
  await waitHealthy(60_000);
  timings['container start → healthy'] = Date.now() - t0;
  conn = { host: '127.0.0.1', port, user: 'app', database: 'shop', passwordFile };
  inside = { host: '127.0.0.1', port: 5432, user: 'app', database: 'shop' };
  await timed('load test data', sql('shop', SCHEMA));
});

afterAll(async () => {
  await docker.getContainer(container).remove({ force: true, v: true }).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
  // eslint-disable-next-line no-console
  console.log(`timings (ms): ${JSON.stringify(timings, null, 1)}`);
});

describe('tableStats', () => {
  it('counts every user table exactly, with the server version', async () => {
    const counts = await timed('tableStats counts', acts.tableStats(conn, { checksums: false }));
    expect(counts.serverVersion).toMatch(/^15\.\d+/);
    expect(counts.tables).toEqual([
      { table: '"Billing"."Invoice Lines"', rows: 503 },
      { table: 'public.audit_log', rows: 0 },
      { table: 'public.orders', rows: 12000 },
      { table: 'public.users', rows: 3000 },
    ]);
  });

  it('checksums every table; the checksum does not depend on the physical order of rows', async () => {
    source = await timed('tableStats checksums', acts.tableStats(conn, { checksums: true }));
    expect(source.tables.map((t) => t.table)).toEqual(USER_TABLES);
    for (const t of source.tables) expect(t.checksum).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(source.tables.map((t) => t.checksum)).size).toBe(4);
    // Rewrite the tables in another physical order (an update moves a row to the end of the heap,
    // CLUSTER rewrites the table in index order) — same content, same checksums.
    await sql('shop', `UPDATE users SET name = name WHERE id % 2 = 0; CLUSTER orders USING orders_pkey; UPDATE orders SET note = note WHERE id % 3 = 0;`);
    const reordered = await acts.tableStats(conn, { checksums: true });
    expect(reordered).toEqual(source);
  });

  it('a changed row changes the checksum, and the comparison says which table', async () => {
    await sql('shop', `UPDATE users SET balance = balance + 0.01 WHERE id = 1234`);
    const changed = await acts.tableStats(conn, { checksums: true });
    expect(compareTableStats(source, changed)).toEqual([
      expect.stringMatching(/^table public\.users has the expected 3000 rows but different content \(checksum [0-9a-f]{32}, expected [0-9a-f]{32}\)$/),
    ]);
    // a NULL becoming an empty string is a change too
    await sql('shop', `UPDATE users SET balance = balance - 0.01 WHERE id = 1234; UPDATE users SET bio = '' WHERE id = 3`);
    expect(compareTableStats(source, await acts.tableStats(conn, { checksums: true }))).toHaveLength(1);
    await sql('shop', `UPDATE users SET bio = NULL WHERE id = 3`);
    expect(compareTableStats(source, await acts.tableStats(conn, { checksums: true }))).toEqual([]);
  });

  it('a deleted row changes count and checksum; re-inserting it (at another place) restores both', async () => {
    await sql('shop', `CREATE TABLE saved AS SELECT * FROM orders WHERE id = 777; DELETE FROM orders WHERE id = 777`);
    const deleted = await acts.tableStats(conn, { checksums: true });
    expect(compareTableStats(source, deleted)).toEqual([
      'table public.orders has 11999 rows, expected 12000 (-1)',
      'table public.saved is not expected (found with 1 rows)',
    ]);
    await sql('shop', `INSERT INTO orders SELECT * FROM saved; DROP TABLE saved`);
    // one of the three duplicate rows removed: multiset semantics, not set semantics
    await sql('shop', `DELETE FROM "Billing"."Invoice Lines" WHERE ctid = (SELECT max(ctid) FROM "Billing"."Invoice Lines" WHERE "Line ""No""" = 1)`);
    expect(compareTableStats(source, await acts.tableStats(conn, { checksums: true }))).toEqual(['table "Billing"."Invoice Lines" has 502 rows, expected 503 (-1)']);
    await sql('shop', `INSERT INTO "Billing"."Invoice Lines" VALUES (1, 1.5, 'Zahlung 1')`);
    expect(await acts.tableStats(conn, { checksums: true })).toEqual(source);
  });
});

describe('dump and restore drill', () => {
  const scratch = scratchDatabaseName('shop', 'drill', randomBytes(3).toString('hex'));

  it('creates the scratch database idempotently, and refuses a name that is not scratch', async () => {
    expect(await acts.createScratchDatabase(conn, scratch)).toEqual({ name: scratch, created: true });
    expect(await acts.createScratchDatabase(conn, scratch)).toEqual({ name: scratch, created: false });
    const f = await failure(acts.dropScratchDatabase(conn, 'shop'));
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect(f.message).toMatch(/must start with scratch_/);
  });

  it('pg_dump | psql into the scratch database reproduces every count and checksum', async () => {
    const env = pgClientEnv(password);
    const dump = new PassThrough();
    const chunks: Buffer[] = [];
    dump.on('data', (c: Buffer) => chunks.push(c));
    const dumped = await timed('pg_dump (exec, streamed)', exec(pgDumpArgv(inside), env, { stdout: dump }));
    dump.end();
    expect(dumped).toEqual({ exitCode: 0, stderr: '' });
    const text = Buffer.concat(chunks);
    timings['dump bytes'] = text.length;
    expect(text.toString('utf8')).toContain('CREATE TABLE "Billing"."Invoice Lines"');
    expect(text.toString('utf8')).not.toContain(password);

    const restored = await timed('psql restore (exec, stdin)', exec(psqlRestoreArgv({ ...inside, database: scratch }), env, { stdin: Readable.from([text]) }));
    expect(restored).toEqual({ exitCode: 0, stderr: '' });

    const copy = await timed('tableStats checksums (scratch)', acts.tableStats({ ...conn, database: scratch }, { checksums: true }));
    expect(copy).toEqual(source);
    expect(await acts.compareTableStats(source, copy)).toEqual([]);
  });

  it('a failing restore leaves nothing behind (single transaction, ON_ERROR_STOP)', async () => {
    const broken = scratchDatabaseName('shop', 'broken', randomBytes(3).toString('hex'));
    await acts.createScratchDatabase(conn, broken);
    const env = pgClientEnv(password);
    const script = 'CREATE TABLE half_done (x int);\nINSERT INTO half_done VALUES (1);\nSELECT 1/0;\nCREATE TABLE never (x int);\n';
    const r = await exec(psqlRestoreArgv({ ...inside, database: broken }), env, { stdin: Readable.from([Buffer.from(script)]) });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/division by zero/);
    const stats = await acts.tableStats({ ...conn, database: broken }, { checksums: false });
    expect(stats.tables).toEqual([]);
    expect(await acts.dropScratchDatabase(conn, broken)).toEqual({ name: broken, dropped: true });
  });

  it('pg_dump with a wrong password fails without printing it', async () => {
    const r = await exec(pgDumpArgv(inside), pgClientEnv(wrongPassword), {});
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/password authentication failed for user "app"/);
    expect(r.stderr).not.toContain(wrongPassword);
  });

  it('drops the scratch database even while someone is connected, idempotently', async () => {
    const client = new Client({ ...conn, database: scratch, password });
    client.on('error', () => undefined);
    await client.connect();
    expect(await acts.dropScratchDatabase(conn, scratch)).toEqual({ name: scratch, dropped: true });
    expect(await acts.dropScratchDatabase(conn, scratch)).toEqual({ name: scratch, dropped: false });
    await client.end().catch(() => undefined);
    const f = await failure(acts.tableStats({ ...conn, database: scratch }, { checksums: false }));
    expect((f as ApplicationFailure).type).toBe('PostgresDatabaseMissing');
  });
});

describe('errors', () => {
  it('bad credentials: non-retryable, no password in the message', async () => {
    const f = await failure(acts.tableStats({ ...conn, passwordFile: wrongPasswordFile }, { checksums: false }));
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect((f as ApplicationFailure).type).toBe('PostgresAuthFailed');
    expect(f.message).toBe(`table statistics on postgres://app@127.0.0.1:${conn.port}/shop: password authentication failed for user "app" (28P01)`);
    for (const text of [f.message, f.stack ?? '', JSON.stringify(f)]) {
      expect(text).not.toContain(wrongPassword);
      expect(text).not.toContain(password);
    }
    const noRole = await failure(acts.tableStats({ ...conn, user: 'nobody' }, { checksums: false }));
    expect((noRole as ApplicationFailure).nonRetryable).toBe(true);
    expect(noRole.message).not.toContain(password);
  });

  it('a missing database: non-retryable', async () => {
    const f = await failure(acts.createScratchDatabase({ ...conn, database: 'no_such_db' }, 'scratch_never'));
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect((f as ApplicationFailure).type).toBe('PostgresDatabaseMissing');
    expect(f.message).toMatch(/database "no_such_db" does not exist/);
  });

  it('a missing password file: non-retryable, naming the file', async () => {
    const f = await failure(acts.tableStats({ ...conn, passwordFile: path.join(tmp, 'missing') }, { checksums: false }));
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect(f.message).toMatch(/cannot read the password file .*missing .*ENOENT/);
  });

  it('connection refused: a plain, retryable error', async () => {
    let port = 18399;
    while (!(await portFree(port))) port--;
    const f = await failure(acts.tableStats({ ...conn, port }, { checksums: false }));
    expect(f).not.toBeInstanceOf(ApplicationFailure);
    expect(f.message).toMatch(new RegExp(`table statistics on postgres://app@127\\.0\\.0\\.1:${port}/shop: connect ECONNREFUSED`));
    expect(f.message).not.toContain(password);
  });
});
