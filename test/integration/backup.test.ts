// Backups against real PostgreSQL 15 — in a container on the test engine (pg_dump/psql by Docker
// exec) and a plain Debian server (pg_dump/psql on the worker) — into real storage (a directory on
// the worker, a directory over SSH, S3 on the local moto server): backup → drill → restore round
// trips compared by per-table content checksums; damaged dumps; a worker killed mid-dump.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Docker from 'dockerode';
import { Client } from 'pg';
import { createBackupActivities, restoreDatabaseNames } from '../../activities/backup';
import { DockerEngines } from '../../activities/docker';
import { tableStats, type PgConnection } from '../../activities/postgres';
import { SshPool } from '../../activities/ssh';
import { manifestFileName, parseManifest, type BackupManifest } from '../../common/commands/backup';
import { compareTableStats, type TableStats } from '../../common/commands/sql';
import type { DatabaseTarget, StorageSpec } from '../../common/types';
import { localHost, sshHost } from '../helpers/hosts';
import { DOCKER_SOCK, RUNBOOK_HOME } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';
import { startPostgresContainer, stopwatch, waitContainerHealthy } from '../helpers/postgres-container';

jest.setTimeout(240_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const tag = randomBytes(4).toString('hex');
const container = `it-backup-${tag}`;
const password = `pw-${randomBytes(12).toString('hex')}`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-backup-'));
const passwordFile = path.join(tmp, 'pg-password');
writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
const serverPasswordFile = `${RUNBOOK_HOME}/pg-server/password`;
const serverPort = Number(process.env.PG_SERVER_PORT ?? 15432);
const serverDb = `it_backup_${tag}`;

const ssh = new SshPool();
const engines = new DockerEngines(ssh, path.join(tmp, 'sockets'));
const acts = createBackupActivities({ engines, ssh }, { heartbeatMs: 200 });
const { timings, timed } = stopwatch();

const s3Endpoint = process.env.S3_ENDPOINT ?? 'http://127.0.0.1:9000';
const s3Bucket = `it-backup-${tag}`;
const s3KeyFile = path.join(tmp, 's3-key');
const s3SecretFile = path.join(tmp, 's3-secret');
writeFileSync(s3KeyFile, 'testing\n', { mode: 0o600 });
writeFileSync(s3SecretFile, 'testing-secret\n', { mode: 0o600 });

const localDir = path.join(tmp, 'local-backups');
const sshDir = path.join(tmp, 'ssh-backups'); // the SSH "host" is this machine: checked through the filesystem
const storages: Record<'local' | 'ssh' | 's3', StorageSpec> = {
  local: { type: 'directory', path: localDir },
  ssh: { type: 'directory', path: sshDir, host: sshHost() },
  s3: { type: 's3', bucket: s3Bucket, prefix: 'nightly/', region: 'us-east-1', endpoint: s3Endpoint, forcePathStyle: true, accessKeyIdFile: s3KeyFile, secretAccessKeyFile: s3SecretFile },
};

let containerConn: PgConnection; // from the test process, through the published port
const serverConn = (database: string): PgConnection => ({ host: '127.0.0.1', port: serverPort, user: 'runbook', database, passwordFile: serverPasswordFile });

const containerTarget = (over: Partial<DatabaseTarget> = {}): DatabaseTarget => ({
  name: 'main',
  database: 'shop',
  user: 'app',
  passwordFile,
  location: { kind: 'container', host: localHost, container, port: 5432 },
  ...over,
});
const serverTarget = (over: Partial<DatabaseTarget> = {}): DatabaseTarget => ({
  name: 'reports',
  database: serverDb,
  user: 'runbook',
  passwordFile: serverPasswordFile,
  location: { kind: 'server', address: '127.0.0.1', port: serverPort },
  ...over,
});

async function sql(conn: PgConnection, text: string): Promise<void> {
  const client = new Client({ ...conn, password: readFileSync(conn.passwordFile!, 'utf8').trim() });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const checksums = (conn: PgConnection) => tableStats(conn, { checksums: true });

// Random md5 text: barely compressible, like real-world ids, tokens and hashes; awkward names and values.
const SCHEMA = (rows: number) => `
CREATE TABLE events (id bigint PRIMARY KEY, token text NOT NULL, payload text, at timestamptz NOT NULL, amount numeric(12,2));
INSERT INTO events SELECT g, md5(random()::text), md5(random()::text) || md5(random()::text) || md5(random()::text),
  timestamptz '2024-01-01 00:00:00+00' + g * interval '7 seconds', round((random() * 10000)::numeric, 2)
FROM generate_series(1, ${rows}) g;
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text, notes text);
INSERT INTO customers (email, name, notes) SELECT 'c' || g || '@example.com', 'Zoë #' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE md5(random()::text) || E'\\ttab\\nnewline' END
FROM generate_series(1, 5000) g;
CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Invoice Lines" ("Line No" int, "Amount" numeric, blob bytea);
INSERT INTO "Billing"."Invoice Lines" SELECT g, g * 1.5, decode(md5(random()::text) || md5(random()::text), 'hex') FROM generate_series(1, 3000) g;
CREATE TABLE empty_table (x int);
`;

beforeAll(async () => {
  const t0 = Date.now();
  const port = await startPostgresContainer(docker, { name: container, password, label: 'it-backup', portBase: 18400 });
  await waitContainerHealthy(docker, container, 60_000);
  timings['container start → healthy'] = Date.now() - t0;
  containerConn = { host: '127.0.0.1', port, user: 'app', database: 'shop', passwordFile };
  await sql(serverConn('postgres'), `DROP DATABASE IF EXISTS ${serverDb}`);
  await sql(serverConn('postgres'), `CREATE DATABASE ${serverDb}`);
  await Promise.all([timed('load (container)', sql(containerConn, SCHEMA(20_000))), timed('load (server)', sql(serverConn(serverDb), SCHEMA(10_000)))]);
  await new S3Client({ endpoint: s3Endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing-secret' } }).send(new CreateBucketCommand({ Bucket: s3Bucket }));
});

afterAll(async () => {
  await docker.getContainer(container).remove({ force: true, v: true }).catch(() => undefined);
  await sql(serverConn('postgres'), `DROP DATABASE IF EXISTS ${serverDb} WITH (FORCE)`).catch(() => undefined);
  await engines.closeAll();
  await ssh.closeAll();
  rmSync(tmp, { recursive: true, force: true });
  // eslint-disable-next-line no-console
  console.log(`timings (ms): ${JSON.stringify(timings, null, 1)}`);
});

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.each([
  { kind: 'container', storage: 'local' as const, target: containerTarget, conn: () => containerConn },
  { kind: 'Debian server', storage: 'ssh' as const, target: serverTarget, conn: () => serverConn(serverDb) },
  { kind: 'container', storage: 's3' as const, target: containerTarget, conn: () => containerConn },
])('PostgreSQL in a $kind, storage $storage', ({ kind, storage, target, conn }) => {
  const at = storage === 's3' ? '2025-01-02T04:00:00.000Z' : '2025-01-02T03:04:05.000Z';
  const req = () => ({ app: 'shop', env: 'production', target: target(), storage: storages[storage], at, checksums: true });
  let source: TableStats;
  let manifest: BackupManifest;

  it('backs up: the manifest holds the same row counts and content checksums as the live tables', async () => {
    source = await checksums(conn());
    manifest = await timed(`backup (${kind}, ${storage})`, acts.backupDatabase(req()));
    expect(manifest).toMatchObject({ app: 'shop', env: 'production', database: target().name, createdAt: at, compression: 'zstd' });
    expect(manifest.file).toBe(`shop-production-${target().name}-${at.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}.sql.zst`);
    expect(manifest.serverVersion).toMatch(/^15\.\d+/);
    expect(manifest.tables).toEqual(source.tables);
    expect(manifest.verifiedAt).toBeUndefined();
    if (storage !== 's3') {
      const dir = storage === 'local' ? localDir : sshDir;
      const file = path.join(dir, manifest.file);
      expect(statSync(file).size).toBe(manifest.sizeBytes);
      expect(sha256(file)).toBe(manifest.sha256);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir).filter((f) => f.includes(target().name)).sort()).toEqual([manifestFileName(manifest.file), manifest.file]);
    }
    expect(JSON.stringify(manifest)).not.toContain(password);
  });

  it('a retried attempt with the same time returns the finished backup', async () => {
    expect(await acts.backupDatabase(req())).toEqual(manifest);
  });

  it('the drill restores into a scratch database, matches every table and marks the backup verified', async () => {
    const drill = await timed(`drill (${kind}, ${storage})`, acts.drillRestore({ ...req(), file: manifest.file, at: '2025-01-02T05:00:00.000Z' }));
    expect(drill.tables).toBe(source.tables.length);
    expect(drill.rows).toBe(source.tables.reduce((n, t) => n + t.rows, 0));
    const listing = await acts.listBackups(req());
    expect(listing.backups.find((b) => b.file === manifest.file)).toMatchObject({ verified: true, sizeBytes: manifest.sizeBytes });
    // the scratch database is gone
    const probe = await rejectionOf(checksums({ ...conn(), database: drill.scratchDatabase }));
    expect(probe.message).toMatch(/does not exist/);
  });

  it('restore round trip: the live database gets back exactly the backed-up content, the old one kept aside', async () => {
    await sql(conn(), 'DELETE FROM events WHERE id % 2 = 0; UPDATE customers SET name = \'changed\'; DROP TABLE empty_table');
    const changed = await checksums(conn());
    expect(compareTableStats(source, changed)).not.toEqual([]);
    const runTag = `it-${storage}`;
    const prepared = await timed(`prepareRestore (${kind}, ${storage})`, acts.prepareRestore({ ...req(), file: manifest.file, runTag }));
    expect(prepared.tables).toBe(source.tables.length);
    // the live database was not touched yet
    expect(compareTableStats(changed, await checksums(conn()))).toEqual([]);
    const swapped = await acts.swapInRestoredDatabase({ target: target(), runTag });
    expect(swapped.previous).toBe(restoreDatabaseNames(target(), runTag).previous);
    expect((await checksums(conn())).tables).toEqual(source.tables); // every row of every table, by content
    expect(compareTableStats(changed, await checksums({ ...conn(), database: swapped.previous }))).toEqual([]);
    // idempotent: a retried swap changes nothing
    await acts.swapInRestoredDatabase({ target: target(), runTag });
    expect((await checksums(conn())).tables).toEqual(source.tables);
    // and reversible: swap back, then forward again and drop the previous copy
    await acts.swapBackPreviousDatabase({ target: target(), runTag });
    expect(compareTableStats(changed, await checksums(conn()))).toEqual([]);
    await acts.prepareRestore({ ...req(), file: manifest.file, runTag });
    await acts.swapInRestoredDatabase({ target: target(), runTag });
    await acts.dropPreviousDatabase({ target: target(), runTag });
    expect((await checksums(conn())).tables).toEqual(source.tables);
  });
});

describe('damaged backups fail the drill and never count', () => {
  const storage = storages.local;
  const base = { app: 'shop', env: 'damaged', target: containerTarget(), storage };

  async function freshBackup(at: string): Promise<{ manifest: BackupManifest; file: string }> {
    const manifest = await acts.backupDatabase({ ...base, at });
    return { manifest, file: path.join(localDir, manifest.file) };
  }

  it('a corrupted byte: BackupCorrupt, nothing committed, not verified', async () => {
    const { manifest, file } = await freshBackup('2025-02-01T02:00:00Z');
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(file, bytes, { mode: 0o600 });
    const f = (await rejectionOf(acts.drillRestore({ ...base, file: manifest.file, at: '2025-02-01T03:00:00Z' }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.type).toBe('BackupCorrupt');
    expect(f.message).toMatch(/the backup is damaged, nothing was committed: .*sha256 [0-9a-f]{64}, the manifest says/);
    const listing = await acts.listBackups(base);
    expect(listing.backups.find((b) => b.file === manifest.file)?.verified).toBe(false);
  });

  it('a truncated file: zstd says so, BackupCorrupt, not verified', async () => {
    const { manifest, file } = await freshBackup('2025-02-02T02:00:00Z');
    truncateSync(file, Math.floor(manifest.sizeBytes * 0.6));
    const f = (await rejectionOf(acts.drillRestore({ ...base, file: manifest.file, at: '2025-02-02T03:00:00Z' }))) as ApplicationFailure;
    expect(f.type).toBe('BackupCorrupt');
    expect(f.message).toMatch(/zstd cannot decompress it|bytes, the manifest says/);
    expect((await acts.listBackups(base)).backups.find((b) => b.file === manifest.file)?.verified).toBe(false);
  });

  it('a missing manifest: the dump is an orphan, never listed as a backup', async () => {
    const { manifest } = await freshBackup('2025-02-03T02:00:00Z');
    rmSync(path.join(localDir, manifestFileName(manifest.file)));
    const listing = await acts.listBackups(base);
    expect(listing.backups.map((b) => b.file)).not.toContain(manifest.file);
    expect(listing.orphans).toContain(manifest.file);
    const f = (await rejectionOf(acts.drillRestore({ ...base, file: manifest.file, at: '2025-02-03T03:00:00Z' }))) as ApplicationFailure;
    expect(f.type).toBe('BackupMissing');
  });

  it('pruning refuses files of another series', async () => {
    const other = path.join(localDir, 'shop-production-main-20250102T030405Z.sql.zst');
    if (!existsSync(other)) writeFileSync(other, 'another series');
    const f = (await rejectionOf(acts.pruneBackups({ ...base, files: ['shop-production-main-20250102T030405Z.sql.zst'] }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/refusing to prune/);
    expect(existsSync(other)).toBe(true);
  });
});

describe('failures before anything is stored', () => {
  const base = { app: 'shop', env: 'failing', storage: storages.local, at: '2025-03-01T02:00:00Z' };
  const leftovers = () => (existsSync(localDir) ? readdirSync(localDir).filter((f) => f.startsWith('shop-failing-')) : []);

  it('a database that does not exist: non-retryable, the server message, nothing left', async () => {
    const f = (await rejectionOf(acts.backupDatabase({ ...base, target: containerTarget({ database: 'no_such_db' }) }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/database "no_such_db" does not exist/);
    expect(leftovers()).toEqual([]);
  });

  it('a wrong password (server): non-retryable, no password in the error', async () => {
    const wrong = path.join(tmp, 'wrong');
    const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;
    writeFileSync(wrong, wrongPassword);
    const f = (await rejectionOf(acts.backupDatabase({ ...base, target: serverTarget({ passwordFile: wrong }) }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/password authentication failed for user "runbook"/);
    for (const text of [f.message, f.stack ?? '', JSON.stringify(f)]) expect(text).not.toContain(wrongPassword);
    expect(leftovers()).toEqual([]);
  });

  it('a container that does not exist: non-retryable, nothing left', async () => {
    const f = (await rejectionOf(acts.backupDatabase({ ...base, target: containerTarget({ location: { kind: 'container', host: localHost, container: `${container}-gone`, port: 5432 } }) }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/no such container/i);
    expect(leftovers()).toEqual([]);
  });

  it('bad input is refused before anything runs', async () => {
    const f = (await rejectionOf(acts.backupDatabase({ ...base, target: containerTarget({ name: '../../etc' }) }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/cannot be part of a backup file name/);
    const g = (await rejectionOf(acts.backupDatabase({ ...base, target: containerTarget(), storage: { type: 'directory', path: 'relative/dir' } }))) as ApplicationFailure;
    expect(g.nonRetryable).toBe(true);
    expect(g.message).toMatch(/absolute path/);
  });
});

describe('a worker killed in the middle of a dump', () => {
  const dir = path.join(tmp, 'killed');
  const base = { app: 'shop', env: 'killed', target: containerTarget({ name: 'big' }), storage: { type: 'directory' as const, path: dir }, at: '2025-04-01T02:00:00Z' };

  it('leaves nothing that counts as a backup, and the retried attempt finishes cleanly', async () => {
    await sql(containerConn, `CREATE TABLE IF NOT EXISTS big AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) AS t FROM generate_series(1, 600000) g`);
    // the worker: the compiled activity in its own process (npm test builds dist/ first)
    const script = `require(${JSON.stringify(path.resolve(__dirname, '../../dist/activities/backup.js'))}).backupDatabase(
      { engines: new (require(${JSON.stringify(path.resolve(__dirname, '../../dist/activities/docker.js'))}).DockerEngines)(null, ${JSON.stringify(path.join(tmp, 'child-sockets'))}), ssh: null },
      ${JSON.stringify({ ...base, target: containerTarget({ name: 'big' }) })}).then(() => console.log('finished'))`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // kill -9 as soon as compressed bytes are landing in the partial file
    const deadline = Date.now() + 60_000;
    for (;;) {
      const partial = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.partial')) : undefined;
      if (partial && statSync(path.join(dir, partial)).size > 0) break;
      if (Date.now() > deadline || output.includes('finished')) throw new Error(`the dump did not start or finished too fast: ${output}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await exited;
    timings['killed after (bytes in the partial)'] = readdirSync(dir).filter((f) => f.endsWith('.partial')).map((f) => statSync(path.join(dir, f)).size)[0] ?? 0;
    const listing = await acts.listBackups(base);
    expect(listing.backups).toEqual([]);
    expect(listing.orphans).toEqual([]); // a .partial is never even listed
    // the retry (Temporal would run it on another worker after the heartbeat timeout)
    const env = new MockActivityEnvironment();
    const manifest = (await env.run(acts.backupDatabase, base)) as BackupManifest;
    expect(readdirSync(dir).sort()).toEqual([manifestFileName(manifest.file), manifest.file]);
    expect(parseManifest(readFileSync(path.join(dir, manifestFileName(manifest.file)), 'utf8')).tables.find((t) => t.table === 'public.big')?.rows).toBe(600_000);
    await acts.drillRestore({ ...base, file: manifest.file, at: '2025-04-01T03:00:00Z' });
    expect((await acts.listBackups(base)).backups).toMatchObject([{ file: manifest.file, verified: true }]);
  });
});
