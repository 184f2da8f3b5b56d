// The streaming backup against a real PostgreSQL 15 container on the test engine: pg_dump (exec) →
// zstd → file with sha256 and manifest; restore round trip into a scratch database; corruption,
// truncation and a missing database.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Docker from 'dockerode';
import { Client } from 'pg';
import { createBackupActivities } from '../../activities/backup';
import { DockerEngines } from '../../activities/docker';
import { createPostgresActivities, type PgConnection, type TableStats } from '../../activities/postgres';
import { SshPool } from '../../activities/ssh';
import { manifestFileName, parseManifest, zstdDecompressArgv, type BackupManifest } from '../../common/commands/backup';
import { compareTableStats, envList, pgClientEnv, psqlRestoreArgv, scratchDatabaseName } from '../../common/commands/sql';
import { localHost } from '../helpers/hosts';
import { DOCKER_SOCK } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';
import { startPostgresContainer, stopwatch, waitContainerHealthy } from '../helpers/postgres-container';

jest.setTimeout(180_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const container = `it-backup-${randomBytes(4).toString('hex')}`;
const password = `pw-${randomBytes(12).toString('hex')}`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-backup-'));
const storageDir = path.join(tmp, 'backups');
const passwordFile = path.join(tmp, 'pg-password');
writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });

const engines = new DockerEngines(new SshPool(), path.join(tmp, 'sockets'));
const backups = createBackupActivities(engines, { heartbeatMs: 200 });
const pgActs = createPostgresActivities();
let conn: PgConnection; // from the test process, through the published port
const inside = { host: '127.0.0.1', port: 5432, user: 'app', database: 'shop' };
const { timings, timed } = stopwatch();
const startPostgres = () => startPostgresContainer(docker, { name: container, password, label: 'it-backup', portBase: 18400 });
const waitHealthy = (timeoutMs: number) => waitContainerHealthy(docker, container, timeoutMs);

async function sql(database: string, text: string): Promise<void> {
  const client = new Client({ ...conn, database, password });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** `zstd -d -c file | psql` (psql inside the container, reading the exec's stdin); both exit codes. */
async function restore(file: string, database: string): Promise<{ zstd: number; zstdStderr: string; psql: number; psqlStderr: string }> {
  const e = await docker.getContainer(container).exec({ Cmd: psqlRestoreArgv({ ...inside, database }), Env: envList(pgClientEnv(password)), AttachStdin: true, AttachStdout: true, AttachStderr: true });
  const stream = (await e.start({ hijack: true, stdin: true })) as unknown as NodeJS.ReadWriteStream & { end(): void };
  const stderr: Buffer[] = [];
  docker.modem.demuxStream(stream, new PassThrough().resume(), new PassThrough().on('data', (c: Buffer) => stderr.push(c)));
  const done = new Promise<void>((resolve, reject) => stream.on('end', resolve).on('close', resolve).on('error', reject));
  // zstd starts only now, with the exec attached: its output cannot end before it is piped
  const argv = zstdDecompressArgv(file);
  const z = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let zstdStderr = '';
  z.stderr.on('data', (c: Buffer) => (zstdStderr += c.toString()));
  const zstdExit = new Promise<number>((resolve) => z.once('close', (code) => resolve(code ?? -1)));
  (z.stdout as Readable).on('end', () => stream.end());
  z.stdout.pipe(stream as unknown as NodeJS.WritableStream, { end: false });
  await done;
  let info = await e.inspect();
  for (let i = 0; info.Running && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    info = await e.inspect();
  }
  return { zstd: await zstdExit, zstdStderr, psql: info.ExitCode ?? -1, psqlStderr: Buffer.concat(stderr).toString() };
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

const failure = rejectionOf;

// Random md5 text: barely compressible, like real-world ids, tokens and hashes.
const SCHEMA = `
CREATE TABLE events (id bigint PRIMARY KEY, token text NOT NULL, payload text, at timestamptz NOT NULL, amount numeric(12,2));
INSERT INTO events SELECT g, md5(random()::text), md5(random()::text) || md5(random()::text) || md5(random()::text),
  timestamptz '2024-01-01 00:00:00+00' + g * interval '7 seconds', round((random() * 10000)::numeric, 2)
FROM generate_series(1, 20000) g;
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text, notes text);
INSERT INTO customers (email, name, notes) SELECT 'c' || g || '@example.com', 'Zoë #' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE md5(random()::text) || E'\\ttab\\nnewline' END
FROM generate_series(1, 5000) g;
CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Invoice Lines" ("Line No" int, "Amount" numeric, blob bytea);
INSERT INTO "Billing"."Invoice Lines" SELECT g, g * 1.5, decode(md5(random()::text) || md5(random()::text), 'hex') FROM generate_series(1, 3000) g;
CREATE TABLE empty_table (x int);
`;

let source: TableStats;
let manifest: BackupManifest;
let backupPath: string;

beforeAll(async () => {
  const t0 = Date.now();
  const port = await startPostgres();
  await waitHealthy(60_000);
  timings['container start → healthy'] = Date.now() - t0;
  conn = { host: '127.0.0.1', port, user: 'app', database: 'shop', passwordFile };
  await timed('load test data', sql('shop', SCHEMA));
  source = await pgActs.tableStats(conn, { checksums: true });
});

afterAll(async () => {
  await docker.getContainer(container).remove({ force: true, v: true }).catch(() => undefined);
  await engines.closeAll();
  rmSync(tmp, { recursive: true, force: true });
  // eslint-disable-next-line no-console
  console.log(`timings (ms): ${JSON.stringify(timings, null, 1)}`);
});

const request = () => ({ host: localHost, container, database: 'shop', user: 'app', passwordFile, storageDir, app: 'shop', env: 'production', now: '2025-01-02T03:04:05.000Z' });

describe('backupDatabase', () => {
  it('streams pg_dump through zstd into a file with a matching manifest', async () => {
    manifest = await timed('backupDatabase', backups.backupDatabase(request()));
    const name = 'shop-production-shop-20250102T030405Z.sql.zst';
    expect(readdirSync(storageDir).sort()).toEqual([manifestFileName(name), name]);
    backupPath = path.join(storageDir, name);
    expect(manifest).toMatchObject({ app: 'shop', env: 'production', database: 'shop', file: name, createdAt: '2025-01-02T03:04:05.000Z', compression: 'zstd' });
    expect(manifest.serverVersion).toMatch(/^15\.\d+/);
    expect(manifest.durationMs).toBeGreaterThan(0);
    // checked independently of the activity
    expect(manifest.sizeBytes).toBe(statSync(backupPath).size);
    expect(manifest.sha256).toBe(sha256(backupPath));
    expect(parseManifest(readFileSync(path.join(storageDir, manifestFileName(name)), 'utf8'))).toEqual(manifest);
    // the same counts and checksums as tableStats over the network
    expect(manifest.tables).toEqual(source.tables);
    expect(manifest.tables.map((t) => [t.table, t.rows])).toEqual([
      ['"Billing"."Invoice Lines"', 3000],
      ['public.customers', 5000],
      ['public.empty_table', 0],
      ['public.events', 20000],
    ]);
    timings['backup bytes (zstd)'] = manifest.sizeBytes;
    expect(manifest.sizeBytes).toBeGreaterThan(1_000_000); // random text stays big
    for (const text of [JSON.stringify(manifest), readFileSync(path.join(storageDir, manifestFileName(name)), 'utf8')]) expect(text).not.toContain(password);
  });

  it('a retried attempt with the same time returns the finished backup', async () => {
    const again = await backups.backupDatabase(request());
    expect(again).toEqual(manifest);
    expect(readdirSync(storageDir)).toHaveLength(2);
  });

  it('heartbeats the compressed byte count while it runs, as an activity', async () => {
    const env = new MockActivityEnvironment();
    const beats: { phase: string; bytes: number }[] = [];
    env.on('heartbeat', (d: { phase: string; bytes: number }) => beats.push(d));
    const dir = path.join(tmp, 'heartbeat');
    const m = (await env.run(backups.backupDatabase, { ...request(), storageDir: dir, now: '2025-01-03T03:04:05Z' })) as BackupManifest;
    expect(beats.length).toBeGreaterThan(0);
    expect(beats.at(-1)).toEqual({ phase: 'stats', bytes: m.sizeBytes });
    expect(readdirSync(dir)).toEqual(['shop-production-shop-20250103T030405Z.manifest.json', 'shop-production-shop-20250103T030405Z.sql.zst']);
  });

  it('verifyBackupFile: ok for the file, a clear mismatch for a corrupted copy', async () => {
    expect(await backups.verifyBackupFile({ file: backupPath, manifest })).toEqual({ ok: true, sizeBytes: manifest.sizeBytes, sha256: manifest.sha256 });
    const corrupt = path.join(tmp, 'corrupt.sql.zst');
    copyFileSync(backupPath, corrupt);
    const bytes = readFileSync(corrupt);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(corrupt, bytes);
    const f = await failure(backups.verifyBackupFile({ file: corrupt, manifest }));
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect((f as ApplicationFailure).type).toBe('BackupChecksumMismatch');
    expect(f.message).toMatch(new RegExp(`^backup file .*corrupt\\.sql\\.zst does not match its manifest: sha256 [0-9a-f]{64}, manifest says ${manifest.sha256}$`));
    const missing = await failure(backups.verifyBackupFile({ file: path.join(tmp, 'nope.sql.zst'), manifest }));
    expect((missing as ApplicationFailure).type).toBe('BackupFileMissing');
  });
});

describe('restore', () => {
  it('zstd -d | psql into a scratch database reproduces every count and checksum', async () => {
    const scratch = scratchDatabaseName('shop', 'restore', randomBytes(3).toString('hex'));
    await pgActs.createScratchDatabase(conn, scratch);
    const r = await timed('restore (zstd -d | psql)', restore(backupPath, scratch));
    expect(r).toEqual({ zstd: 0, zstdStderr: '', psql: 0, psqlStderr: '' });
    const copy = await timed('tableStats (scratch)', pgActs.tableStats({ ...conn, database: scratch }, { checksums: true }));
    expect(compareTableStats(manifest, copy)).toEqual([]);
    expect(copy.tables).toEqual(manifest.tables);
    await pgActs.dropScratchDatabase(conn, scratch);
  });

  it('a truncated file fails: zstd reports it and psql restores nothing', async () => {
    const truncated = path.join(tmp, 'truncated.sql.zst');
    copyFileSync(backupPath, truncated);
    truncateSync(truncated, Math.floor(manifest.sizeBytes * 0.6));
    const f = await failure(backups.verifyBackupFile({ file: truncated, manifest }));
    expect(f.message).toMatch(/size \d+ bytes, manifest says/);
    const scratch = scratchDatabaseName('shop', 'truncated', randomBytes(3).toString('hex'));
    await pgActs.createScratchDatabase(conn, scratch);
    const r = await restore(truncated, scratch);
    expect(r.zstd).not.toBe(0);
    expect(r.zstdStderr).toMatch(/truncated|premature end|unexpected end/i);
    // psql saw an incomplete script (a statement cut in the middle, or a COPY without its end):
    // whatever it did, it ran in one transaction, so the scratch database has no tables, or failed.
    const stats = await pgActs.tableStats({ ...conn, database: scratch }, { checksums: false });
    if (r.psql === 0) expect(compareTableStats(manifest, stats)).not.toEqual([]);
    else expect(stats.tables).toEqual([]);
    await pgActs.dropScratchDatabase(conn, scratch);
  });
});

describe('failures', () => {
  it('a database that does not exist: non-retryable, pg_dump stderr in the message, no file left', async () => {
    const dir = path.join(tmp, 'missing-db');
    const f = await failure(backups.backupDatabase({ ...request(), storageDir: dir, database: 'no_such_db' }));
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect(f.message).toMatch(/pg_dump failed \(exit code 1\): .*database "no_such_db" does not exist/s);
    expect(f.message).not.toContain(password);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a wrong password: non-retryable, the password never in the error', async () => {
    const dir = path.join(tmp, 'wrong-password');
    const wrong = path.join(tmp, 'wrong');
    const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;
    writeFileSync(wrong, wrongPassword);
    const f = await failure(backups.backupDatabase({ ...request(), storageDir: dir, passwordFile: wrong }));
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect(f.message).toMatch(/password authentication failed for user "app"/);
    for (const text of [f.message, f.stack ?? '', JSON.stringify(f)]) {
      expect(text).not.toContain(wrongPassword);
      expect(text).not.toContain(password);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a container that does not exist: non-retryable, no file left', async () => {
    const dir = path.join(tmp, 'no-container');
    const f = await failure(backups.backupDatabase({ ...request(), storageDir: dir, container: `${container}-gone` }));
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect(f.message).toMatch(/no such container/i);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });

  it('bad input is refused before anything runs', async () => {
    const f = await failure(backups.backupDatabase({ ...request(), storageDir: path.join(tmp, 'x'), database: '../../etc' }));
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect(f.message).toMatch(/cannot be part of a backup file name/);
    expect(existsSync(path.join(tmp, 'x'))).toBe(false);
  });
});
