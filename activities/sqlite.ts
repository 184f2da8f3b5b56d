// SQLite databases of the app's own services (seed 003): backed up by SQLite's online backup in a
// running container of the service, stored as the SQL dump of that snapshot through zstd (the same
// file, manifest, drill and retention as PostgreSQL's), drilled and restored with sqlite3 in that
// container; swapped in the volume by a helper container while a restore has the app stopped.
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { backupFileName, buildManifest, manifestFileName, serializeManifest, TailBuffer, zstdCompressArgv, zstdDecompressArgv, type BackupManifest } from '../common/commands/backup';
import { restoreDatabaseNames, scratchDatabaseName } from '../common/commands/scratch';
import {
  parseCounts,
  parseTableNames,
  SQLITE_INTEGRITY_SQL,
  SQLITE_SWAP_EXIT,
  SQLITE_TABLES_SQL,
  SQLITE_VERSION_SQL,
  sqliteApplyArgv,
  sqliteCountsSql,
  sqliteDumpArgv,
  sqliteQueryArgv,
  sqliteRemoveArgv,
  sqliteRestoreFiles,
  sqliteSnapshotArgv,
  sqliteSwapBackArgv,
  sqliteSwapInArgv,
} from '../common/commands/sqlite';
import { compareTableStats, type TableStats } from '../common/commands/sql';
import { LABEL, labelsFor, MAIN_SERVICE } from '../common/naming';
import type { DatabaseLocation, DatabaseTarget } from '../common/types';
import {
  checkSeries,
  dumpDiffs,
  dumpStream,
  DUMP_MODE,
  finishedBackup,
  HashTap,
  MANIFEST_MODE,
  markVerified,
  openBackupStorage,
  readSeriesManifest,
  startZstd,
  type BackupDatabaseRequest,
  type BackupDeps,
  type BackupOptions,
  type DrillRequest,
  type DrillResult,
  type RestoreRequest,
} from './backup';
import { cancellationSignal, heartbeat } from './context';
import { engineFailure, execInContainer, imageExists, pullImage } from './docker';
import { lastLines, startInContainer } from './pg-clients';
import type { BackupStorage } from './storage';

type SqliteLocation = Extract<DatabaseLocation, { kind: 'sqlite' }>;
export type SqliteTarget = DatabaseTarget & { location: SqliteLocation };

export const isSqlite = (target: DatabaseTarget): target is SqliteTarget => target.location.kind === 'sqlite';

const describe = (loc: SqliteLocation) => `sqlite ${loc.path} of ${loc.app}/${loc.env} ${loc.service} on ${loc.host.name}`;

/** A running container of the service on the host (by labels): where sqlite3 runs against the volume. */
async function serviceContainer(deps: BackupDeps, loc: SqliteLocation): Promise<{ docker: Docker; name: string }> {
  let docker: Docker;
  let list: Docker.ContainerInfo[];
  try {
    docker = await deps.engines.engine(loc.host);
    list = await docker.listContainers({ filters: { label: [`${LABEL.app}=${loc.app}`, `${LABEL.env}=${loc.env}`, `${LABEL.role}=web`], status: ['running'] } });
  } catch (err) {
    throw engineFailure(loc.host, `find a container of ${loc.service}`, err);
  }
  const ours = list.filter((c) => (c.Labels[LABEL.service] ?? MAIN_SERVICE) === loc.service).map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ''));
  if (ours.length === 0) {
    throw ApplicationFailure.nonRetryable(`${describe(loc)}: no running container of ${loc.service} (sqlite3 runs in the app's own container, which has the volume): start the app first`, 'AppNotRunning');
  }
  return { docker, name: ours.sort()[0] };
}

/** Runs one sqlite3 (or rm) command in the container; its stdout, or an error with its stderr. */
async function run(docker: Docker, container: string, argv: string[], what: string): Promise<string> {
  const r = await execInContainer(docker, container, argv);
  if (r.exitCode === 127 || /sqlite3: (not found|No such file)|executable file not found/.test(r.stderr)) {
    throw ApplicationFailure.nonRetryable(`${what}: the container ${container} has no sqlite3 (the image must have it: apt-get install sqlite3 / apk add sqlite)`, 'SqliteMissing');
  }
  if (r.exitCode !== 0) throw new Error(`${what}: ${argv[0]} exited ${r.exitCode}: ${lastLines(r.stderr || r.stdout, 5)}`);
  return r.stdout;
}

/** Every table's row count in a database file, and SQLite's version. */
async function statsOf(docker: Docker, container: string, db: string, what: string): Promise<TableStats> {
  const tables = parseTableNames(await run(docker, container, sqliteQueryArgv(db, SQLITE_TABLES_SQL), what));
  const counts = tables.length ? parseCounts(await run(docker, container, sqliteQueryArgv(db, sqliteCountsSql(tables)), what), tables) : [];
  const version = (await run(docker, container, sqliteQueryArgv(db, SQLITE_VERSION_SQL), what)).trim();
  return { serverVersion: `SQLite ${version}`, tables: counts };
}

export async function sqliteBackup(deps: BackupDeps, req: BackupDatabaseRequest & { target: SqliteTarget }, options: BackupOptions = {}): Promise<BackupManifest> {
  checkSeries(req.app, req.env, req.target);
  const loc = req.target.location;
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  const file = backupFileName(series, req.at);
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const done = await finishedBackup(storage, series, file, req.pin, heartbeatMs);
  if (done) return done;
  const what = `backup of ${describe(loc)}`;
  const { docker, name } = await serviceContainer(deps, loc);
  const copy = `/tmp/${scratchDatabaseName('backup', req.target.name, req.at)}.db`;
  const t0 = Date.now();
  let phase = 'snapshot';
  let tap: HashTap | undefined;
  const timer = setInterval(() => heartbeat({ phase, bytes: tap?.bytes ?? 0 }), heartbeatMs);
  let stored = false;
  let dump: Awaited<ReturnType<typeof startInContainer>> | undefined;
  let zstd: ReturnType<typeof startZstd> | undefined;
  try {
    await run(docker, name, sqliteRemoveArgv(copy), what);
    await run(docker, name, sqliteSnapshotArgv(loc.path, copy), what);
    phase = 'stats';
    const stats = await statsOf(docker, name, copy, what);
    phase = 'dump';
    const program = await startInContainer(deps.engines, loc.host, name, sqliteDumpArgv(copy), {}, false);
    const compressor = startZstd(zstdCompressArgv());
    [dump, zstd] = [program, compressor];
    const checkedTap = new HashTap(async () => {
      // the dump counts only if sqlite3 and zstd both finished well: checked before storage commits it
      const code = await program.exitCode();
      if (code !== 0) throw new Error(`${what}: sqlite3 .dump exited ${code}: ${lastLines(program.stderrText(), 5)}`);
      const z = await compressor.exit;
      if (z !== 0) throw new Error(`${what}: zstd failed (exit code ${z}): ${lastLines(compressor.stderr.text())}`);
    });
    tap = checkedTap;
    const dumping = pipeline(program.stdout, compressor.proc.stdin);
    dumping.catch(() => compressor.proc.kill('SIGKILL')); // observed below, after the storage's answer
    const put = await storage.putStream(file, compressor.proc.stdout.pipe(checkedTap), { mode: DUMP_MODE, signal: cancellationSignal() });
    stored = true;
    await dumping;
    if (put.sizeBytes !== checkedTap.bytes) throw new Error(`${what}: storage received ${put.sizeBytes} bytes, zstd produced ${checkedTap.bytes}`);
    phase = 'manifest';
    const manifest = buildManifest({
      app: req.app,
      env: req.env,
      database: req.target.name,
      file,
      createdAt: req.at,
      sizeBytes: checkedTap.bytes,
      sha256: checkedTap.hash.digest('hex'),
      durationMs: Date.now() - t0,
      serverVersion: stats.serverVersion,
      tables: stats.tables,
      ...(req.pin ? { pinned: req.pin } : {}),
    });
    await storage.putText(manifestFileName(file), serializeManifest(manifest), { mode: MANIFEST_MODE });
    return manifest;
  } catch (err) {
    dump?.abort();
    zstd?.proc.kill('SIGKILL');
    // stored but not committed by a manifest: not a backup; do not leave it looking like one
    if (stored) await storage.remove(file).catch(() => undefined);
    throw err;
  } finally {
    clearInterval(timer);
    await run(docker, name, sqliteRemoveArgv(copy), what).catch(() => undefined);
  }
}

/**
 * Streams a stored dump into the new file `db` in the container; the file is kept only if the whole
 * dump decompressed, matches the manifest's size and sha256, and sqlite3 applied it without error.
 */
async function applyDump(deps: BackupDeps, loc: SqliteLocation, container: { docker: Docker; name: string }, db: string, storage: BackupStorage, manifest: BackupManifest, heartbeatMs: number): Promise<void> {
  const what = `restore of ${manifest.file} into ${db}`;
  await run(container.docker, container.name, sqliteRemoveArgv(db), what);
  const source = await dumpStream(storage, manifest.file);
  const zstd = startZstd(zstdDecompressArgv());
  const tap = new HashTap();
  const sqlite = await startInContainer(deps.engines, loc.host, container.name, sqliteApplyArgv(db), {}, true);
  sqlite.stdout.resume();
  const timer = setInterval(() => heartbeat({ phase: 'restore', bytes: tap.bytes, of: manifest.sizeBytes }), heartbeatMs);
  try {
    // the end of the dump half-closes the exec's stream: sqlite3 sees EOF
    const [reading, writing] = await Promise.allSettled([pipeline(source, tap, zstd.proc.stdin), pipeline(zstd.proc.stdout, sqlite.stdin!)]);
    const code = await sqlite.exitCode();
    const unzipped = await zstd.exit;
    const stoppedAtAnError = () => ApplicationFailure.nonRetryable(`${what}: sqlite3 stopped at an error: ${lastLines(sqlite.stderrText(), 5)}`, 'BackupRestoreFailed');
    // sqlite3 quit before the end (the rest of the dump unread): its own error says why, not the size
    if (code !== 0 && writing.status === 'rejected') throw stoppedAtAnError();
    const diffs = dumpDiffs({ sizeBytes: tap.bytes, sha256: tap.hash.digest('hex') }, manifest);
    if (unzipped !== 0) diffs.unshift(`zstd cannot decompress it (exit code ${unzipped}: ${lastLines(zstd.stderr.text(), 3)})`);
    if (diffs.length) throw ApplicationFailure.nonRetryable(`${what}: the backup is damaged: ${diffs.join('; ')}`, 'BackupCorrupt');
    if (code !== 0) throw stoppedAtAnError();
    if (reading.status === 'rejected') throw reading.reason;
    if (writing.status === 'rejected') throw writing.reason;
  } catch (err) {
    await run(container.docker, container.name, sqliteRemoveArgv(db), what).catch(() => undefined);
    throw err;
  } finally {
    clearInterval(timer);
    source.destroy();
    zstd.proc.kill('SIGKILL');
  }
}

/** Restored into `db`: sound (integrity_check) and the manifest's tables and rows, else the reason. Heartbeats meanwhile (a large file takes a while). */
async function checkRestored(container: { docker: Docker; name: string }, db: string, manifest: BackupManifest, what: string): Promise<TableStats> {
  const timer = setInterval(() => heartbeat({ phase: 'check', db }), 1000);
  try {
    return await checkRestoredFile(container, db, manifest, what);
  } finally {
    clearInterval(timer);
  }
}

async function checkRestoredFile(container: { docker: Docker; name: string }, db: string, manifest: BackupManifest, what: string): Promise<TableStats> {
  const integrity = (await run(container.docker, container.name, sqliteQueryArgv(db, SQLITE_INTEGRITY_SQL), what)).trim();
  if (integrity !== 'ok') throw ApplicationFailure.nonRetryable(`${what}: integrity_check says: ${integrity.slice(0, 300)}`, 'BackupDrillFailed');
  const restored = await statsOf(container.docker, container.name, db, what);
  const diffs = compareTableStats(manifest, restored);
  if (diffs.length) throw ApplicationFailure.nonRetryable(`${what}: the restored copy differs from the manifest: ${diffs.join('; ')}`, 'BackupDrillFailed');
  return restored;
}

const totals = (stats: TableStats) => ({ tables: stats.tables.length, rows: stats.tables.reduce((n, t) => n + t.rows, 0) });

/** The restore drill: the dump into a scratch file in the app's container, checked, removed; the backup marked verified. */
export async function sqliteDrill(deps: BackupDeps, req: DrillRequest & { target: SqliteTarget }, options: BackupOptions = {}): Promise<DrillResult> {
  checkSeries(req.app, req.env, req.target);
  const loc = req.target.location;
  const storage = openBackupStorage(deps, req.storage);
  const series = { app: req.app, env: req.env, database: req.target.name };
  const manifest = await readSeriesManifest(storage, req.file, series, 'drill');
  const container = await serviceContainer(deps, loc);
  const scratchName = scratchDatabaseName('drill', req.target.name, manifest.createdAt);
  const scratch = `/tmp/${scratchName}.db`;
  const t0 = Date.now();
  try {
    await applyDump(deps, loc, container, scratch, storage, manifest, options.heartbeatMs ?? 1000);
    const restored = await checkRestored(container, scratch, manifest, `restore drill of ${req.file}`);
    const durationMs = Date.now() - t0;
    await markVerified(storage, series, manifest, req.at, durationMs);
    return { file: req.file, scratchDatabase: scratch, ...totals(restored), durationMs };
  } finally {
    await run(container.docker, container.name, sqliteRemoveArgv(scratch), 'drill cleanup').catch(() => undefined);
  }
}

const restoreFiles = (target: SqliteTarget, runTag: string) => sqliteRestoreFiles(target.location.path, restoreDatabaseNames(target, runTag));

/** The backup restored beside the live file, in the volume (the app still runs on the live one), and checked. */
export async function sqlitePrepareRestore(deps: BackupDeps, req: RestoreRequest & { target: SqliteTarget }, options: BackupOptions = {}): Promise<{ incoming: string; tables: number; rows: number }> {
  checkSeries(req.app, req.env, req.target);
  const storage = openBackupStorage(deps, req.storage);
  const manifest = await readSeriesManifest(storage, req.file, { app: req.app, env: req.env, database: req.target.name }, 'restore');
  const container = await serviceContainer(deps, req.target.location);
  const { incoming } = restoreFiles(req.target, req.runTag);
  await applyDump(deps, req.target.location, container, incoming, storage, manifest, options.heartbeatMs ?? 1000);
  try {
    return { incoming, ...totals(await checkRestored(container, incoming, manifest, `restore of ${req.file}`)) };
  } catch (err) {
    await run(container.docker, container.name, sqliteRemoveArgv(incoming), 'restore cleanup').catch(() => undefined);
    throw err;
  }
}

/** Stops the service's running containers on the host (gracefully): nothing has the database file open. */
async function stopService(deps: BackupDeps, loc: SqliteLocation): Promise<void> {
  try {
    const docker = await deps.engines.engine(loc.host);
    const list = await docker.listContainers({ filters: { label: [`${LABEL.app}=${loc.app}`, `${LABEL.env}=${loc.env}`, `${LABEL.role}=web`], status: ['running', 'restarting'] } });
    for (const c of list.filter((c) => (c.Labels[LABEL.service] ?? MAIN_SERVICE) === loc.service)) {
      await docker.getContainer(c.Id).stop().catch((err: { statusCode?: number }) => (err.statusCode === 304 ? undefined : Promise.reject(err)));
    }
  } catch (err) {
    throw engineFailure(loc.host, `stop ${loc.service} before moving ${loc.path}`, err);
  }
}

/** A script in a helper container with the volume at its mount path (the app's containers are stopped): its exit code and output. */
async function inVolume(deps: BackupDeps, target: SqliteTarget, runTag: string, purpose: string, argv: string[]): Promise<{ exitCode: number; output: string }> {
  const loc = target.location;
  const what = `${purpose} of ${describe(loc)}`;
  const name = `${loc.app}-${loc.env}-sqlite-${purpose}-${runTag.replace(/[^0-9]/g, '').slice(0, 14)}`;
  let docker: Docker;
  try {
    docker = await deps.engines.engine(loc.host);
    if (!(await imageExists(docker, loc.helperImage))) await pullImage(docker, loc.helperImage);
    await docker.getContainer(name).remove({ force: true }).catch(() => undefined); // a leftover of an interrupted attempt
    const container = await docker.createContainer({
      name,
      Image: loc.helperImage,
      Cmd: argv,
      Labels: labelsFor(loc.app, loc.env, 'dependency', { 'runbook.sqlite': purpose }),
      HostConfig: { Binds: [`${loc.volume}:${loc.mountPath}`], NetworkMode: 'none' },
    });
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const logs = new TailBuffer();
    const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    logs.write(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
    await container.remove({ force: true }).catch(() => undefined);
    return { exitCode: StatusCode, output: lastLines(logs.text().replace(/[\x00-\x08]/g, ''), 5) };
  } catch (err) {
    throw engineFailure(loc.host, what, err);
  }
}

/** With the app stopped: live → previous, restored → live (each step idempotent). */
export async function sqliteSwapIn(deps: BackupDeps, req: { target: SqliteTarget; runTag: string }): Promise<{ live: string; previous: string }> {
  const files = restoreFiles(req.target, req.runTag);
  const r = await inVolume(deps, req.target, req.runTag, 'swap-in', sqliteSwapInArgv(files));
  if (r.exitCode === SQLITE_SWAP_EXIT.noIncoming) throw ApplicationFailure.nonRetryable(r.output, 'BackupRestoreFailed');
  if (r.exitCode !== 0) throw new Error(`swapping in the restored ${files.live} failed (exit ${r.exitCode}): ${r.output}`);
  return { live: files.live, previous: files.previous };
}

/** Undoes the swap: the restored file aside (kept for inspection), previous live again; `putBack` false: nothing to undo. */
export async function sqliteSwapBack(deps: BackupDeps, req: { target: SqliteTarget; runTag: string }): Promise<{ live: string; restoredKeptAs: string; putBack: boolean }> {
  const files = restoreFiles(req.target, req.runTag);
  // a restore that failed after the app started again: the files move only under a stopped app
  // (the workflow starts it again afterwards)
  await stopService(deps, req.target.location);
  const r = await inVolume(deps, req.target, req.runTag, 'swap-back', sqliteSwapBackArgv(files));
  if (r.exitCode === SQLITE_SWAP_EXIT.nothingToPutBack) return { live: files.live, restoredKeptAs: files.incoming, putBack: false };
  if (r.exitCode !== 0) throw new Error(`putting back the previous ${files.live} failed (exit ${r.exitCode}): ${r.output}`);
  return { live: files.live, restoredKeptAs: files.incoming, putBack: true };
}

/** Removes the pre-restore copy (with its -wal and -shm). */
export async function sqliteDropPrevious(deps: BackupDeps, req: { target: SqliteTarget; runTag: string }): Promise<{ dropped: string }> {
  const files = restoreFiles(req.target, req.runTag);
  const r = await inVolume(deps, req.target, req.runTag, 'drop', sqliteRemoveArgv(files.previous));
  if (r.exitCode !== 0) throw new Error(`removing ${files.previous} failed (exit ${r.exitCode}): ${r.output}`);
  return { dropped: files.previous };
}
