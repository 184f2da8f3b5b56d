// Nightly backups: pg_dump streamed through zstd into storage (a directory on the worker or a host,
// or S3), sha256 and size computed on the way; the restore drill into a scratch database; listing
// and pruning; and the restore itself. Memory use does not depend on the database size:
// backpressure runs from the storage through zstd back to pg_dump.
//
// Consistency: a psql session exports its snapshot (pg_export_snapshot) and pg_dump runs with
// --snapshot, so the row counts and checksums in the manifest describe exactly the dumped data.
// Atomicity: storage shows a dump under its final name only once complete and checked (pg_dump and
// zstd exited 0); the manifest, written last, is what makes it a backup; the drill's verifiedAt in
// the manifest is what makes it count for retention.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import {
  BACKUP_SUFFIX,
  MANIFEST_SUFFIX,
  TailBuffer,
  backupFileName,
  backupNameProblem,
  backupSeriesPrefixes,
  buildManifest,
  listTablesScript,
  manifestFileName,
  manifestIdentityProblem,
  parseBackupFileName,
  parseManifest,
  pinProblem,
  serializeManifest,
  zstdCompressArgv,
  zstdDecompressArgv,
  type BackupManifest,
} from '../common/commands/backup';
import {
  RESTORE_BEGIN,
  RESTORE_COMMIT,
  checksumSessionSql,
  compareTableStats,
  createDatabaseSql,
  databaseExistsQuery,
  displayTableName,
  dropDatabaseSql,
  exportSnapshotSql,
  pgDumpArgv,
  psqlApplyArgv,
  renameDatabaseSql,
  rowCountSql,
  restoreDatabaseNames,
  scratchDatabaseName,
  scratchNameProblem,
  tableChecksumSql,
  terminateSessionsSql,
  type TableRef,
  type TableStat,
  type TableStats,
} from '../common/commands/sql';
import { pinHoldsAt } from '../common/retention';
import type { BackupPin, DatabaseTarget } from '../common/types';
import { cancellationSignal, heartbeat } from './context';
import type { DockerEngines } from './docker';
import { PsqlSession, clientEnv, clientRunner, lastLines, programFailure, scrub, type ClientProgram, type ClientRunner } from './pg-clients';
import type { SshPool } from './ssh';
import { isSqlite, sqliteBackup, sqliteDrill, sqliteDropPrevious, sqlitePrepareRestore, sqliteSwapBack, sqliteSwapIn } from './sqlite';
import { openStorage, storageSpecProblem, StorageNotFound, type BackupStorage, type StorageSpec, type StoredObject } from './storage';

export interface BackupDeps {
  engines: DockerEngines;
  ssh: SshPool;
}

export interface BackupOptions {
  heartbeatMs?: number;
  zstdLevel?: number;
}

/** Dumps hold every row of the database: owner-only, like the archives that hold secrets. */
export const DUMP_MODE = 0o600;
export const MANIFEST_MODE = 0o644;

export interface BackupDatabaseRequest {
  app: string;
  env: string;
  target: DatabaseTarget;
  storage: StorageSpec;
  /** The backup's time (ISO), from the workflow, so a retried attempt writes the same name. */
  at: string;
  /**
   * Content checksums of every table in the manifest, besides the exact row counts: one more full read
   * of every table by the server, concurrent with pg_dump (bench/backup: 2.4x the wall time on 2 cores). Default off.
   */
  checksums?: boolean;
  /**
   * Pins the backup (a restore's safety backup, a rolling update's pre-update backup): recorded in
   * the manifest; nightly retention keeps it, outside its slots, until released or `until` passed.
   * A retry that finds the finished backup unpinned pins it.
   */
  pin?: BackupPin;
}

export interface BackupEntry {
  file: string;
  manifest: string;
  createdAt: string;
  sizeBytes: number;
  verified: boolean;
  /** The pin in the manifest, as recorded (a pin whose `until` has passed counts as released). */
  pinned?: BackupPin;
}

export interface BackupListing {
  backups: BackupEntry[];
  /** Dumps without a manifest and manifests without a dump (left by a crash): never counted, safe to remove. */
  orphans: string[];
  /**
   * Files with this series' name that are not its backups: their manifest names another
   * app/env/database (a name shared by hyphenated series), or cannot be read while the name is shared.
   */
  foreign: { file: string; reason: string }[];
}

/** The reference a pin is shown with in retention reasons and messages. */
export function describePin(pin: BackupPin): string {
  return `pinned: ${pin.reason} by ${pin.by}${pin.until ? ` until ${pin.until}` : ''}`;
}

export function badRequest(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BackupBadRequest');
}

export function checkSeries(app: string, env: string, target: DatabaseTarget): void {
  const problem = backupNameProblem({ app, env, database: target.name });
  if (problem) throw badRequest(problem);
}

export function openBackupStorage(deps: BackupDeps, spec: StorageSpec): BackupStorage {
  const problem = storageSpecProblem(spec);
  if (problem) throw badRequest(`backup storage: ${problem}`);
  return openStorage(spec, { ssh: deps.ssh });
}

/** Counts bytes and hashes them as they pass; `check` (if any) runs at the end and can fail the stream. */
export class HashTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly check?: () => Promise<void>) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    if (!this.check) return done();
    this.check().then(() => done(), (err: Error) => done(err));
  }
}

type Zstd = ChildProcessByStdio<Writable, Readable, Readable>;

export function startZstd(argv: string[]): { proc: Zstd; exit: Promise<number>; stderr: TailBuffer } {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr = new TailBuffer();
  proc.stderr.on('data', (c: Buffer) => stderr.write(c));
  proc.stdin.on('error', () => undefined); // EPIPE when zstd quits: its exit code says why
  const exit = new Promise<number>((resolve, reject) => {
    proc.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? ApplicationFailure.nonRetryable('zstd is not installed on the worker (apt-get install zstd)', 'ZstdMissing') : err),
    );
    proc.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1)));
  });
  exit.catch(() => undefined);
  return { proc, exit, stderr };
}

/** Row counts (and checksums) of every user table, through an open session (its snapshot, if any). */
async function collectStats(session: PsqlSession, checksums: boolean, heartbeatMs: number): Promise<TableStats> {
  const rows = await session.query(listTablesScript(), 2);
  if (rows.length === 0) throw new Error('psql returned no server version');
  const [[serverVersion], ...rest] = rows;
  const refs: TableRef[] = rest.map(([schema, name]) => ({ schema, name }));
  const tables: TableStat[] = [];
  for (const [i, ref] of refs.entries()) {
    const table = displayTableName(ref);
    const progress = { phase: 'stats', table, done: i, of: refs.length };
    heartbeat(progress);
    const timer = setInterval(() => heartbeat(progress), heartbeatMs);
    try {
      if (checksums) {
        const [[n, checksum]] = await session.query(`${tableChecksumSql(ref)};`, 2);
        tables.push({ table, rows: Number(n), checksum });
      } else {
        const [[n]] = await session.query(`${rowCountSql(ref)};`, 1);
        tables.push({ table, rows: Number(n) });
      }
    } finally {
      clearInterval(timer);
    }
  }
  return { serverVersion, tables };
}

/**
 * Reads a stored dump back and checks its size and sha256 against the manifest, heartbeating every
 * `heartbeatMs` meanwhile: re-reading a large dump takes longer than the heartbeat timeout.
 */
export async function verifyStoredDump(storage: BackupStorage, manifest: BackupManifest, heartbeatMs = 1000): Promise<{ sizeBytes: number; sha256: string }> {
  const tap = new HashTap();
  const progress = () => heartbeat({ phase: 'verify stored dump', file: manifest.file, bytes: tap.bytes, of: manifest.sizeBytes });
  progress();
  const timer = setInterval(progress, heartbeatMs);
  try {
    const source = await dumpStream(storage, manifest.file);
    await pipeline(source, tap, async function* (chunks: AsyncIterable<Buffer>) {
      for await (const _ of chunks) {
        // discard: only the hash matters
      }
    });
  } finally {
    clearInterval(timer);
  }
  const got = { sizeBytes: tap.bytes, sha256: tap.hash.digest('hex') };
  const diffs = dumpDiffs(got, manifest);
  if (diffs.length) throw ApplicationFailure.nonRetryable(`backup ${manifest.file} in ${storage.description} does not match its manifest: ${diffs.join('; ')}`, 'BackupCorrupt');
  return got;
}

export function dumpDiffs(got: { sizeBytes: number; sha256: string }, manifest: BackupManifest): string[] {
  const diffs: string[] = [];
  if (got.sizeBytes !== manifest.sizeBytes) diffs.push(`${got.sizeBytes} bytes, the manifest says ${manifest.sizeBytes}`);
  if (got.sha256 !== manifest.sha256) diffs.push(`sha256 ${got.sha256}, the manifest says ${manifest.sha256}`);
  return diffs;
}

/** The manifest of a backup, or a non-retryable BackupMissing. */
export async function readManifest(storage: BackupStorage, file: string): Promise<BackupManifest> {
  const text = await storage.getText(manifestFileName(file));
  if (text === undefined) throw ApplicationFailure.nonRetryable(`backup ${file} has no manifest in ${storage.description} (not a finished backup)`, 'BackupMissing');
  try {
    return parseManifest(text);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`backup ${file} in ${storage.description}: ${(err as Error).message}`, 'BackupCorrupt');
  }
}

export type Series = { app: string; env: string; database: string };

function identityMismatch(action: string, file: string, storage: BackupStorage, problem: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`refusing to ${action} ${file} in ${storage.description}: ${problem}`, 'BackupIdentityMismatch');
}

/**
 * The manifest of a backup of this app/env/database: the name must be one of the series' and the
 * manifest must name the same app, env, database and file (names of hyphenated series can be
 * shared), else a non-retryable BackupBadRequest / BackupIdentityMismatch saying whose it is.
 */
export async function readSeriesManifest(storage: BackupStorage, file: string, series: Series, action: string): Promise<BackupManifest> {
  if (!parseBackupFileName(file, series)) throw badRequest(`refusing to ${action} ${file}: not a backup of ${series.app}/${series.env}/${series.database}`);
  const manifest = await readManifest(storage, file);
  const problem = manifestIdentityProblem(manifest, series, file);
  if (problem) throw identityMismatch(action, file, storage, problem);
  return manifest;
}

/**
 * A retry after the manifest was written: the backup is done if it still checks out (re-read with
 * heartbeats: a large dump takes longer than the heartbeat timeout to hash again), pinned now if asked.
 * Undefined: there is none, or a broken leftover, to be made again.
 */
export async function finishedBackup(storage: BackupStorage, series: Series, file: string, pin: BackupPin | undefined, heartbeatMs: number): Promise<BackupManifest | undefined> {
  const manifestName = manifestFileName(file);
  const existing = await storage.getText(manifestName);
  if (existing === undefined) return undefined;
  let manifest: BackupManifest | undefined;
  try {
    manifest = parseManifest(existing);
  } catch {
    return undefined; // an unreadable leftover
  }
  const problem = manifestIdentityProblem(manifest, series, file);
  if (problem) throw identityMismatch('overwrite', file, storage, problem);
  try {
    await verifyStoredDump(storage, manifest, heartbeatMs);
    if (!pin || manifest.pinned) return manifest;
    const pinned = buildManifest({ ...manifest, pinned: pin });
    await storage.putText(manifestName, serializeManifest(pinned), { mode: MANIFEST_MODE });
    return pinned;
  } catch {
    return undefined; // a broken leftover
  }
}

/** The drill's verdict in the manifest (read again: a pin set or released meanwhile stays as it is now). */
export async function markVerified(storage: BackupStorage, series: Series, manifest: BackupManifest, at: string, durationMs: number): Promise<void> {
  const latest = await readSeriesManifest(storage, manifest.file, series, 'mark verified');
  if (latest.sha256 !== manifest.sha256) throw new Error(`restore drill of ${manifest.file}: the backup was replaced during the drill`);
  await storage.putText(manifestFileName(manifest.file), serializeManifest({ ...latest, verifiedAt: at, drillDurationMs: durationMs }), { mode: MANIFEST_MODE });
}

export async function backupDatabase(deps: BackupDeps, req: BackupDatabaseRequest, options: BackupOptions = {}): Promise<BackupManifest> {
  if (isSqlite(req.target)) return sqliteBackup(deps, { ...req, target: req.target }, options);
  checkSeries(req.app, req.env, req.target);
  if (Number.isNaN(Date.parse(req.at))) throw badRequest(`at is not a time: ${JSON.stringify(req.at)}`);
  if (req.pin !== undefined) {
    const problem = pinProblem(req.pin, 'pin');
    if (problem) throw badRequest(problem);
  }
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  const file = backupFileName(series, req.at);
  const manifestName = manifestFileName(file);
  const runner = clientRunner(deps.engines, req.target);
  const what = `backup of ${runner.describe(req.target.database)}`;
  const heartbeatMs = options.heartbeatMs ?? 1000;

  const done = await finishedBackup(storage, series, file, req.pin, heartbeatMs);
  if (done) return done;

  const { env, password } = await clientEnv(req.target, 'temporal-runbooks backup');
  const signal = cancellationSignal();
  const t0 = Date.now();
  let session: PsqlSession | undefined;
  let dump: ClientProgram | undefined;
  let zstd: ReturnType<typeof startZstd> | undefined;
  let phase = 'snapshot';
  const tap = new HashTap(async () => {
    // the dump counts only if pg_dump and zstd both finished well: checked before storage commits it
    const dumpExit = await dump!.exitCode();
    if (dumpExit !== 0) throw programFailure(`${what}: pg_dump`, dumpExit, dump!.stderrText(), password);
    const zstdExit = await zstd!.exit;
    if (zstdExit !== 0) throw new Error(`${what}: zstd failed (exit code ${zstdExit}): ${lastLines(zstd!.stderr.text())}`);
  });
  const timer = setInterval(() => heartbeat({ phase, bytes: tap.bytes }), heartbeatMs);
  let stored = false;
  try {
    session = await PsqlSession.open(runner, req.target.database, env, password, what);
    const [[snapshot]] = await session.query(exportSnapshotSql(), 1);
    phase = 'dump';
    dump = await runner.start(pgDumpArgv(runner.connection(req.target.database), { snapshot }), env, false);
    zstd = startZstd(zstdCompressArgv(options.zstdLevel));
    // The exporting transaction must stay open until pg_dump has imported the snapshot, which it
    // does before it writes its first byte.
    const dumpStarted = new Promise<void>((resolve) => {
      dump!.stdout.once('data', () => resolve());
      dump!.stdout.once('end', () => resolve());
      dump!.stdout.once('close', () => resolve());
    });
    const dumping = pipeline(dump.stdout, zstd.proc.stdin);
    const storing = storage.putStream(file, zstd.proc.stdout.pipe(tap), { mode: DUMP_MODE, signal });
    const stats = (async () => {
      const s = await collectStats(session!, req.checksums ?? false, heartbeatMs);
      await dumpStarted;
      await session!.close('COMMIT;');
      return s;
    })();
    const [dumped, put, counted] = await Promise.allSettled([
      dumping.catch((err) => {
        zstd?.proc.kill('SIGKILL');
        throw err;
      }),
      storing.catch((err) => {
        dump?.abort();
        zstd?.proc.kill('SIGKILL');
        throw err;
      }),
      stats.catch((err) => {
        dump?.abort();
        zstd?.proc.kill('SIGKILL');
        throw err;
      }),
    ]);
    if (put.status === 'fulfilled') stored = true;
    if (signal?.aborted) throw ApplicationFailure.fromError(signal.reason ?? new Error('cancelled'));
    if (put.status === 'rejected') throw put.reason; // includes pg_dump/zstd failures (checked before the commit)
    if (counted.status === 'rejected') throw counted.reason;
    if (dumped.status === 'rejected') throw dumped.reason;
    phase = 'manifest';
    const manifest = buildManifest({
      app: req.app,
      env: req.env,
      database: req.target.name,
      file,
      createdAt: req.at,
      sizeBytes: tap.bytes,
      sha256: tap.hash.digest('hex'),
      durationMs: Date.now() - t0,
      serverVersion: counted.value.serverVersion,
      tables: counted.value.tables,
      ...(req.pin ? { pinned: req.pin } : {}),
    });
    if (put.value.sizeBytes !== manifest.sizeBytes) throw new Error(`${what}: storage received ${put.value.sizeBytes} bytes, zstd produced ${manifest.sizeBytes}`);
    await storage.putText(manifestName, serializeManifest(manifest), { mode: MANIFEST_MODE });
    return manifest;
  } catch (err) {
    session?.abort();
    dump?.abort();
    zstd?.proc.kill('SIGKILL');
    // stored but not committed by a manifest: not a backup; do not leave it looking like one
    if (stored) await storage.remove(file).catch(() => undefined);
    if (err instanceof ApplicationFailure) throw err;
    const message = scrub((err as Error)?.message ?? String(err), password);
    throw new Error(message.startsWith(what) ? message : `${what}: ${message}`);
  } finally {
    clearInterval(timer);
  }
}

/** The stored dump as a stream; a missing one is a non-retryable BackupMissing that names it and the storage. */
export async function dumpStream(storage: BackupStorage, file: string): Promise<Readable> {
  try {
    return await storage.getStream(file);
  } catch (err) {
    if (err instanceof StorageNotFound) throw ApplicationFailure.nonRetryable(`backup ${file} is missing from ${storage.description}`, 'BackupMissing');
    throw err;
  }
}

/**
 * Streams a stored dump into `database` in one transaction, committed only if the whole file
 * decompressed and its size and sha256 match the manifest. Anything else rolls back.
 */
async function applyDump(runner: ClientRunner, database: string, storage: BackupStorage, manifest: BackupManifest, env: Record<string, string>, password: string | undefined, heartbeatMs: number): Promise<void> {
  const what = `restore of ${manifest.file} into ${runner.describe(database)}`;
  const source = await dumpStream(storage, manifest.file);
  const psql = await runner.start(psqlApplyArgv(runner.connection(database)), env, true);
  psql.stdout.resume(); // set_config() rows and the like: not needed
  const zstd = startZstd(zstdDecompressArgv());
  const tap = new HashTap();
  let problem: string | undefined;
  const reading = pipeline(source, tap, zstd.proc.stdin);
  reading.catch(() => undefined);
  const gate = new Transform({
    transform: (chunk, _enc, done) => done(null, chunk),
    flush(done) {
      (async () => {
        await reading;
        const code = await zstd.exit;
        const diffs = dumpDiffs({ sizeBytes: tap.bytes, sha256: tap.hash.digest('hex') }, manifest);
        if (code !== 0) diffs.unshift(`zstd cannot decompress it (exit code ${code}: ${lastLines(zstd.stderr.text(), 3)})`);
        return diffs;
      })().then(
        (diffs) => {
          if (diffs.length) {
            problem = diffs.join('; ');
            return done(new Error(problem));
          }
          done(null, RESTORE_COMMIT);
        },
        (err: Error) => done(err),
      );
    },
  });
  gate.push(RESTORE_BEGIN);
  const timer = setInterval(() => heartbeat({ phase: 'restore', bytes: tap.bytes, of: manifest.sizeBytes }), heartbeatMs);
  try {
    const writing = await pipeline(zstd.proc.stdout, gate, psql.stdin!).then(
      () => undefined,
      (err: Error) => err,
    );
    if (problem) {
      psql.abort();
      throw ApplicationFailure.nonRetryable(`${what}: the backup is damaged, nothing was committed: ${problem}`, 'BackupCorrupt');
    }
    const code = await psql.exitCode();
    if (code === 3) throw ApplicationFailure.nonRetryable(`${what}: psql stopped at an error, rolled back: ${scrub(lastLines(psql.stderrText(), 5), password)}`, 'BackupRestoreFailed');
    if (code !== 0) throw programFailure(what, code, psql.stderrText(), password);
    if (writing) throw new Error(`${what}: ${scrub(writing.message, password)}`);
  } finally {
    clearInterval(timer);
    source.destroy();
    zstd.proc.kill('SIGKILL');
  }
}

/** Runs `sql` in a short autocommit psql session on `database` (CREATE/DROP/ALTER DATABASE). */
async function adminSql(runner: ClientRunner, database: string, env: Record<string, string>, password: string | undefined, what: string, sql: string, fieldsPerRow = 1): Promise<string[][]> {
  const session = await PsqlSession.open(runner, database, env, password, what);
  try {
    const rows = await session.query(sql, fieldsPerRow);
    await session.close();
    return rows;
  } catch (err) {
    session.abort();
    throw err;
  }
}

async function statsOf(runner: ClientRunner, database: string, env: Record<string, string>, password: string | undefined, checksums: boolean, heartbeatMs: number): Promise<TableStats> {
  const session = await PsqlSession.open(runner, database, env, password, `statistics of ${database}`);
  try {
    await session.query(`${checksumSessionSql().map((s) => `${s};`).join('\n')}`, 1);
    const stats = await collectStats(session, checksums, heartbeatMs);
    await session.close();
    return stats;
  } catch (err) {
    session.abort();
    throw err;
  }
}

export interface DrillRequest {
  app: string;
  env: string;
  target: DatabaseTarget;
  storage: StorageSpec;
  file: string;
  /** When the drill ran (ISO, from the workflow); recorded as the manifest's verifiedAt. */
  at: string;
}

export interface DrillResult {
  file: string;
  scratchDatabase: string;
  tables: number;
  rows: number;
  durationMs: number;
}

/**
 * The restore drill: restores the dump into a scratch database on the same server, compares every
 * table's rows (and checksums) with the manifest, drops the scratch database, and marks the
 * manifest verified. A mismatch or a damaged file is a non-retryable BackupDrillFailed/BackupCorrupt.
 */
export async function drillRestore(deps: BackupDeps, req: DrillRequest, options: BackupOptions = {}): Promise<DrillResult> {
  if (isSqlite(req.target)) return sqliteDrill(deps, { ...req, target: req.target }, options);
  checkSeries(req.app, req.env, req.target);
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  const manifest = await readSeriesManifest(storage, req.file, series, 'drill');
  const runner = clientRunner(deps.engines, req.target);
  const scratch = scratchDatabaseName('drill', req.target.name, manifest.createdAt);
  const problem = scratchNameProblem(scratch, req.target.database);
  if (problem) throw badRequest(problem);
  const { env, password } = await clientEnv(req.target, 'temporal-runbooks restore drill');
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const t0 = Date.now();
  const admin = (sql: string) => adminSql(runner, req.target.database, env, password, `restore drill of ${req.file}`, sql);
  // a leftover from an interrupted attempt goes first
  await admin(`${dropDatabaseSql(scratch)};\n${createDatabaseSql(scratch)};`);
  try {
    await applyDump(runner, scratch, storage, manifest, env, password, heartbeatMs);
    const checksums = manifest.tables.some((t) => t.checksum !== undefined);
    const restored = await statsOf(runner, scratch, env, password, checksums, heartbeatMs);
    const diffs = compareTableStats(manifest, restored);
    if (diffs.length) throw ApplicationFailure.nonRetryable(`restore drill of ${req.file}: the restored copy differs from the manifest: ${diffs.join('; ')}`, 'BackupDrillFailed');
    const durationMs = Date.now() - t0;
    await markVerified(storage, series, manifest, req.at, durationMs);
    return { file: req.file, scratchDatabase: scratch, tables: restored.tables.length, rows: restored.tables.reduce((n, t) => n + t.rows, 0), durationMs };
  } finally {
    await admin(`${dropDatabaseSql(scratch)};`).catch(() => undefined);
  }
}

export async function listBackups(deps: BackupDeps, req: { app: string; env: string; target: DatabaseTarget; storage: StorageSpec }): Promise<BackupListing> {
  checkSeries(req.app, req.env, req.target);
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  const listed = new Map<string, StoredObject>();
  for (const prefix of backupSeriesPrefixes(series)) for (const o of await storage.list(prefix)) listed.set(o.name, o);
  const objects = [...listed.values()];
  const backups: BackupEntry[] = [];
  const orphans: string[] = [];
  const foreign: BackupListing['foreign'] = [];
  const manifestOf = async (name: string): Promise<BackupManifest | undefined> => {
    const text = await storage.getText(name);
    try {
      return text === undefined ? undefined : parseManifest(text);
    } catch {
      return undefined;
    }
  };
  for (const o of objects) {
    const parsed = parseBackupFileName(o.name, series);
    if (parsed) {
      const manifestName = manifestFileName(o.name);
      if (!listed.has(manifestName)) {
        orphans.push(o.name);
        continue;
      }
      const manifest = await manifestOf(manifestName);
      // the manifest says whose a backup is: a shared name alone does not
      const problem = manifest ? manifestIdentityProblem(manifest, series, o.name) : parsed.shared && 'its manifest cannot be read and other series have the same name';
      if (problem) {
        foreign.push({ file: o.name, reason: problem });
        continue;
      }
      if (!manifest || manifest.sizeBytes !== o.sizeBytes) {
        backups.push({ file: o.name, manifest: manifestName, createdAt: parsed.createdAt, sizeBytes: o.sizeBytes, verified: false });
        continue;
      }
      backups.push({
        file: o.name,
        manifest: manifestName,
        createdAt: manifest.createdAt,
        sizeBytes: o.sizeBytes,
        verified: manifest.verifiedAt !== undefined,
        ...(manifest.pinned ? { pinned: manifest.pinned } : {}),
      });
    } else if (o.name.endsWith(MANIFEST_SUFFIX)) {
      const dumpName = o.name.slice(0, -MANIFEST_SUFFIX.length) + BACKUP_SUFFIX;
      const dump = parseBackupFileName(dumpName, series);
      if (!dump || listed.has(dumpName)) continue;
      if (dump.shared) {
        const manifest = await manifestOf(o.name);
        if (!manifest || manifestIdentityProblem(manifest, series, dumpName)) continue; // not known to be ours
      }
      orphans.push(o.name);
    }
  }
  backups.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return { backups, orphans, foreign };
}

/**
 * Removes backups (manifest first, so a crash half-way leaves an orphan, never a false backup) and
 * orphans. Everything is checked before anything is removed: a name that is not the series', or a
 * manifest that names another app/env/database, refuses the whole request (non-retryable). A
 * backup whose pin still holds is never removed: it is returned in `skipped`.
 */
export async function pruneBackups(deps: BackupDeps, req: PruneRequest): Promise<{ removed: string[]; skipped: { file: string; reason: string }[] }> {
  checkSeries(req.app, req.env, req.target);
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  const now = new Date();
  const files: string[] = [];
  const skipped: { file: string; reason: string }[] = [];
  const notOurs = (f: string) => badRequest(`refusing to prune ${f}: not a backup of ${req.app}/${req.env}/${req.target.name}`);
  /** The manifest beside a dump, checked to be this series' (undefined: none, e.g. removed by an earlier attempt). */
  const checkedManifest = async (dump: string, manifestName: string, shared: boolean): Promise<BackupManifest | undefined> => {
    const text = await storage.getText(manifestName);
    if (text === undefined) return undefined;
    let manifest: BackupManifest;
    try {
      manifest = parseManifest(text);
    } catch (err) {
      if (shared) throw identityMismatch('prune', dump, storage, `its manifest cannot be read (${(err as Error).message}) and other series have the same name`);
      return undefined;
    }
    const problem = manifestIdentityProblem(manifest, series, dump);
    if (problem) throw identityMismatch('prune', dump, storage, problem);
    return manifest;
  };
  for (const f of req.files) {
    const parsed = parseBackupFileName(f, series);
    if (!parsed) throw notOurs(f);
    const manifest = await checkedManifest(f, manifestFileName(f), parsed.shared ?? false);
    if (manifest?.pinned && pinHoldsAt(manifest.pinned, now)) skipped.push({ file: f, reason: describePin(manifest.pinned) });
    else files.push(f);
  }
  for (const f of req.orphans ?? []) {
    const isManifest = f.endsWith(MANIFEST_SUFFIX);
    const dump = isManifest ? f.slice(0, -MANIFEST_SUFFIX.length) + BACKUP_SUFFIX : f;
    const parsed = parseBackupFileName(dump, series);
    if (!parsed) throw notOurs(f);
    if (isManifest) await checkedManifest(dump, f, parsed.shared ?? false);
  }
  const removed: string[] = [];
  for (const f of files) {
    await storage.remove(manifestFileName(f));
    await storage.remove(f);
    removed.push(f);
    heartbeat({ phase: 'prune', removed: removed.length });
  }
  for (const f of req.orphans ?? []) {
    await storage.remove(f);
    removed.push(f);
  }
  return { removed, skipped };
}

export interface PruneRequest {
  app: string;
  env: string;
  target: DatabaseTarget;
  storage: StorageSpec;
  files: string[];
  orphans?: string[];
}

export interface ReleasePinRequest {
  app: string;
  env: string;
  target: DatabaseTarget;
  storage: StorageSpec;
  /** The pinned backup (its .sql.zst name, as backupDatabase returned it). */
  file: string;
}

export interface ReleasePinResult {
  file: string;
  /** False when the backup is gone (pruned after its pin lapsed): nothing to release. */
  found: boolean;
  /** True when this call removed a pin; false when there was none (already released: idempotent). */
  released: boolean;
  /** The pin that was removed. */
  pin?: BackupPin;
}

/**
 * Releases a pinned backup: the pin is removed from its manifest, so the next night's retention
 * keeps or prunes it like any other backup. Idempotent: an unpinned or vanished backup is not an
 * error. A backup of another app/env/database is refused (non-retryable).
 */
export async function releaseBackupPin(deps: BackupDeps, req: ReleasePinRequest): Promise<ReleasePinResult> {
  checkSeries(req.app, req.env, req.target);
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  if (!parseBackupFileName(req.file, series)) throw badRequest(`refusing to release ${req.file}: not a backup of ${req.app}/${req.env}/${req.target.name}`);
  if ((await storage.getText(manifestFileName(req.file))) === undefined) return { file: req.file, found: false, released: false };
  const manifest = await readSeriesManifest(storage, req.file, series, 'release');
  if (!manifest.pinned) return { file: req.file, found: true, released: false };
  const { pinned, ...rest } = manifest;
  await storage.putText(manifestFileName(req.file), serializeManifest(buildManifest(rest)), { mode: MANIFEST_MODE });
  return { file: req.file, found: true, released: true, pin: pinned };
}

export interface RestoreRequest {
  app: string;
  env: string;
  target: DatabaseTarget;
  storage: StorageSpec;
  file: string;
  /** A token unique to the restore run (the workflow's start time), used in the side databases' names. */
  runTag: string;
}

export { restoreDatabaseNames };

/**
 * Restores a backup into a fresh side database and checks it against the manifest; the live
 * database is not touched. `swapInRestoredDatabase` then puts it in place.
 */
export async function prepareRestore(deps: BackupDeps, req: RestoreRequest, options: BackupOptions = {}): Promise<{ incoming: string; tables: number; rows: number }> {
  if (isSqlite(req.target)) return sqlitePrepareRestore(deps, { ...req, target: req.target }, options);
  checkSeries(req.app, req.env, req.target);
  const storage = openBackupStorage(deps, req.storage);
  const manifest = await readSeriesManifest(storage, req.file, { app: req.app, env: req.env, database: req.target.name }, 'restore');
  const runner = clientRunner(deps.engines, req.target);
  const { incoming } = restoreDatabaseNames(req.target, req.runTag);
  const { env, password } = await clientEnv(req.target, 'temporal-runbooks restore');
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const admin = (sql: string) => adminSql(runner, req.target.database, env, password, `restore of ${req.file}`, sql);
  await admin(`${dropDatabaseSql(incoming)};\n${createDatabaseSql(incoming)};`);
  try {
    await applyDump(runner, incoming, storage, manifest, env, password, heartbeatMs);
    const restored = await statsOf(runner, incoming, env, password, manifest.tables.some((t) => t.checksum !== undefined), heartbeatMs);
    const diffs = compareTableStats(manifest, restored);
    if (diffs.length) throw ApplicationFailure.nonRetryable(`restore of ${req.file}: the restored copy differs from the manifest: ${diffs.join('; ')}`, 'BackupRestoreFailed');
    return { incoming, tables: restored.tables.length, rows: restored.tables.reduce((n, t) => n + t.rows, 0) };
  } catch (err) {
    await admin(`${dropDatabaseSql(incoming)};`).catch(() => undefined);
    throw err;
  }
}

async function databaseExists(runner: ClientRunner, maintenance: string, name: string, env: Record<string, string>, password: string | undefined): Promise<boolean> {
  return (await adminSql(runner, maintenance, env, password, `looking up database ${name}`, databaseExistsQuery(name))).length > 0;
}

/**
 * Puts the restored database in place: live → previous, incoming → live, in that order, each step
 * idempotent (a retry after a crash finds where it stopped). Sessions on the live database are ended
 * first (the app is stopped by then). Runs on the maintenance database `postgres`.
 */
/** What both swaps need: the side databases' names and psql on the maintenance database. */
async function swapContext(deps: BackupDeps, req: { target: DatabaseTarget; runTag: string; maintenanceDatabase?: string }, what: string) {
  const runner = clientRunner(deps.engines, req.target);
  const { incoming, previous } = restoreDatabaseNames(req.target, req.runTag);
  const maintenance = req.maintenanceDatabase ?? 'postgres';
  const { env, password } = await clientEnv(req.target, 'temporal-runbooks restore');
  return {
    incoming,
    previous,
    live: req.target.database,
    exists: (name: string) => databaseExists(runner, maintenance, name, env, password),
    admin: (sql: string) => adminSql(runner, maintenance, env, password, what, sql),
  };
}

/**
 * Puts the restored database in place: live → previous, incoming → live, in that order, each step
 * idempotent (a retry after a crash finds where it stopped). Sessions on the live database are ended
 * first (the app is stopped by then). Runs on the maintenance database `postgres`.
 */
export async function swapInRestoredDatabase(deps: BackupDeps, req: { target: DatabaseTarget; runTag: string; maintenanceDatabase?: string }): Promise<{ live: string; previous: string }> {
  if (isSqlite(req.target)) return sqliteSwapIn(deps, { ...req, target: req.target });
  const { incoming, previous, live, exists, admin } = await swapContext(deps, req, `swapping in the restored ${req.target.database}`);
  if (!(await exists(previous))) {
    if (!(await exists(incoming))) throw ApplicationFailure.nonRetryable(`the restored database ${incoming} does not exist: run the restore again`, 'BackupRestoreFailed');
    await admin(`${terminateSessionsSql(live)}\n${renameDatabaseSql(live, previous)}`);
  }
  if (await exists(incoming)) {
    await admin(`${terminateSessionsSql(incoming)}\n${renameDatabaseSql(incoming, live)}`);
  }
  return { live, previous };
}

/** Undoes swapInRestoredDatabase: the restored copy goes aside (kept for inspection) and previous is live again; `putBack` false: there was nothing to undo. */
export async function swapBackPreviousDatabase(deps: BackupDeps, req: { target: DatabaseTarget; runTag: string; maintenanceDatabase?: string }): Promise<{ live: string; restoredKeptAs: string; putBack: boolean }> {
  if (isSqlite(req.target)) return sqliteSwapBack(deps, { ...req, target: req.target });
  const { incoming, previous, live, exists, admin } = await swapContext(deps, req, `putting back the previous ${req.target.database}`);
  // Read from the databases, so it is right whichever step of the swap died: nothing moved yet,
  // live renamed aside only, or both renames done.
  if (!(await exists(previous))) return { live, restoredKeptAs: incoming, putBack: false };
  if (await exists(live)) await admin(`${terminateSessionsSql(live)}\n${dropDatabaseSql(incoming)};\n${renameDatabaseSql(live, incoming)}`);
  await admin(`${terminateSessionsSql(previous)}\n${renameDatabaseSql(previous, live)}`);
  return { live, restoredKeptAs: incoming, putBack: true };
}

/** Drops the pre-restore copy once the restored database is live and the app is healthy. */
export async function dropPreviousDatabase(deps: BackupDeps, req: { target: DatabaseTarget; runTag: string; maintenanceDatabase?: string }): Promise<{ dropped: string }> {
  if (isSqlite(req.target)) return sqliteDropPrevious(deps, { ...req, target: req.target });
  const runner = clientRunner(deps.engines, req.target);
  const { previous } = restoreDatabaseNames(req.target, req.runTag);
  const { env, password } = await clientEnv(req.target, 'temporal-runbooks restore');
  await adminSql(runner, req.maintenanceDatabase ?? 'postgres', env, password, `dropping ${previous}`, `${dropDatabaseSql(previous)};`);
  return { dropped: previous };
}

export function createBackupActivities(deps: BackupDeps, options: BackupOptions = {}) {
  return {
    /** pg_dump → zstd → storage, with sha256, row counts/checksums (same snapshot) and the manifest. */
    backupDatabase: (req: BackupDatabaseRequest) => backupDatabase(deps, req, options),
    /** Restore into a scratch database, compare with the manifest, drop it, mark the backup verified. */
    drillRestore: (req: DrillRequest) => drillRestore(deps, req, options),
    listBackups: (req: { app: string; env: string; target: DatabaseTarget; storage: StorageSpec }) => listBackups(deps, req),
    /** Removes backups retention let go; never one of another series, nor one whose pin holds. */
    pruneBackups: (req: PruneRequest) => pruneBackups(deps, req),
    /** Removes a backup's pin (a safety or pre-update backup): retention treats it like any other from then on. Idempotent. */
    releaseBackupPin: (req: ReleasePinRequest) => releaseBackupPin(deps, req),
    prepareRestore: (req: RestoreRequest) => prepareRestore(deps, req, options),
    swapInRestoredDatabase: (req: { target: DatabaseTarget; runTag: string }) => swapInRestoredDatabase(deps, req),
    swapBackPreviousDatabase: (req: { target: DatabaseTarget; runTag: string }) => swapBackPreviousDatabase(deps, req),
    dropPreviousDatabase: (req: { target: DatabaseTarget; runTag: string }) => dropPreviousDatabase(deps, req),
  };
}
