// Nightly backup, streaming core: pg_dump runs inside the database container (Docker exec), its
// stdout is demultiplexed as a stream, compressed by a zstd child process on the worker and written
// to `<final>.partial` in the storage directory, hashed (sha256 of the compressed bytes) on the way.
// Only a complete, checked dump is renamed to its final name; the manifest, written last, is what
// makes a backup finished. Memory use does not depend on the database size: backpressure runs from
// the file through zstd and the demultiplexer back to the engine socket.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import {
  DockerDemux,
  TailBuffer,
  backupFileName,
  backupNameProblem,
  buildManifest,
  listTablesScript,
  manifestFileName,
  parseListTablesOutput,
  parseManifest,
  parseTableChecksumsOutput,
  partialFileName,
  psqlQueryArgv,
  serializeManifest,
  tableChecksumsScript,
  zstdCompressArgv,
  type BackupManifest,
} from '../common/commands/backup';
import { envList, pgClientEnv, pgDumpArgv, type PgConnection } from '../common/commands/sql';
import type { HostSpec } from '../common/types';
import { heartbeat } from './context';
import { engineFailure, type DockerEngines } from './docker';
import { readPassword } from './postgres';

export interface BackupRequest {
  host: HostSpec;
  /** The PostgreSQL container; pg_dump and psql run inside it and connect over its loopback. */
  container: string;
  database: string;
  user: string;
  /** Read at use; only ever placed in the exec's environment (PGPASSWORD). */
  passwordFile?: string;
  /** A directory on the worker machine. */
  storageDir: string;
  app: string;
  env: string;
  /** The backup's time (ISO); the workflow passes it so a retried attempt writes the same name. */
  now?: string;
}

export interface BackupOptions {
  heartbeatMs?: number;
  zstdLevel?: number;
  /** The port PostgreSQL listens on inside the container. */
  containerPort?: number;
}

// pg_dump/psql stderr that no retry fixes.
const PERMANENT = /password authentication failed|no pg_hba\.conf entry|role "[^"]*" does not exist|database "[^"]*" does not exist|permission denied|fe_sendauth: no password supplied|invalid connection option/i;

function scrub(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('***') : text;
}

function lastLinesOf(text: string, n = 10): string {
  return text.split(/\r?\n/).filter((l) => l.trim()).slice(-n).join('\n');
}

/** A failed client program in the container: permanent (auth, missing db/role) or transient. */
function programFailure(what: string, exitCode: number, stderr: string, password: string | undefined): Error {
  const text = scrub(lastLinesOf(stderr), password);
  const message = `${what} failed (exit code ${exitCode})${text ? `: ${text}` : ''}`;
  return PERMANENT.test(stderr) ? ApplicationFailure.nonRetryable(message, 'BackupDumpRejected') : new Error(message);
}

async function execExitCode(exec: Docker.Exec): Promise<number> {
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    info = await exec.inspect();
  }
  if (info.Running) throw new Error('the exec did not finish after its output ended');
  return info.ExitCode ?? -1;
}

/** Starts argv in the container; returns its raw (multiplexed) stream and the exec. */
async function startExec(docker: Docker, container: string, argv: string[], env: Record<string, string>, withStdin: boolean): Promise<{ exec: Docker.Exec; stream: NodeJS.ReadWriteStream }> {
  const exec = await docker.getContainer(container).exec({ Cmd: argv, Env: envList(env), AttachStdin: withStdin, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: withStdin })) as unknown as NodeJS.ReadWriteStream;
  return { exec, stream };
}

/** Runs a small psql script inside the container; returns stdout (bounded output only). */
async function psqlScript(docker: Docker, container: string, conn: PgConnection, script: string, env: Record<string, string>, password: string | undefined, what: string): Promise<string> {
  const { exec, stream } = await startExec(docker, container, psqlQueryArgv(conn), env, true);
  const stderr = new TailBuffer();
  const out: Buffer[] = [];
  const collect = new PassThrough().on('data', (c: Buffer) => out.push(c));
  const reading = pipeline(stream as unknown as Readable, new DockerDemux((c) => stderr.write(c)), collect);
  (stream as unknown as Writable).end(script); // half-close: psql sees EOF after the script
  await reading;
  const code = await execExitCode(exec);
  if (code !== 0) throw programFailure(what, code, stderr.text(), password);
  return Buffer.concat(out).toString('utf8');
}

/** Counts and checksums of every user table, by psql inside the container (its port need not be published). */
async function tableStatsInContainer(docker: Docker, container: string, conn: PgConnection, env: Record<string, string>, password: string | undefined) {
  const listed = parseListTablesOutput(await psqlScript(docker, container, conn, listTablesScript(), env, password, `listing the tables of ${conn.database}`));
  const tables = listed.tables.length
    ? parseTableChecksumsOutput(await psqlScript(docker, container, conn, tableChecksumsScript(listed.tables), env, password, `checksumming the tables of ${conn.database}`), listed.tables)
    : [];
  return { serverVersion: listed.serverVersion, tables };
}

/** Counts bytes and hashes them as they pass. */
class HashTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

async function fsyncPath(p: string, flags = 'r'): Promise<void> {
  const fh = await open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** sha256 and size of a file, streamed. */
export async function hashFile(file: string): Promise<{ sizeBytes: number; sha256: string }> {
  const tap = new HashTap();
  await pipeline(createReadStream(file), tap, new PassThrough().resume());
  return { sizeBytes: tap.bytes, sha256: tap.hash.digest('hex') };
}

/**
 * Recomputes size and sha256 of a backup file and compares them with its manifest. A missing or
 * different file is a non-retryable failure that says what differs.
 */
export async function verifyBackupFile(req: { file: string; manifest: BackupManifest }): Promise<{ ok: true; sizeBytes: number; sha256: string }> {
  let got: { sizeBytes: number; sha256: string };
  try {
    got = await hashFile(req.file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw ApplicationFailure.nonRetryable(`backup file ${req.file} does not exist`, 'BackupFileMissing');
    throw new Error(`cannot read backup file ${req.file}: ${(err as Error).message}`);
  }
  const diffs: string[] = [];
  if (got.sizeBytes !== req.manifest.sizeBytes) diffs.push(`size ${got.sizeBytes} bytes, manifest says ${req.manifest.sizeBytes}`);
  if (got.sha256 !== req.manifest.sha256) diffs.push(`sha256 ${got.sha256}, manifest says ${req.manifest.sha256}`);
  if (diffs.length) throw ApplicationFailure.nonRetryable(`backup file ${req.file} does not match its manifest: ${diffs.join('; ')}`, 'BackupChecksumMismatch');
  return { ok: true, ...got };
}

/** The finished backup already there (a retried attempt after the manifest was written), if it checks out. */
async function existingBackup(finalPath: string, manifestPath: string): Promise<BackupManifest | undefined> {
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const manifest = parseManifest(text);
    await verifyBackupFile({ file: finalPath, manifest });
    return manifest;
  } catch {
    return undefined; // a broken leftover: made again below
  }
}

export async function backupDatabase(engines: DockerEngines, req: BackupRequest, options: BackupOptions = {}): Promise<BackupManifest> {
  const problem = backupNameProblem({ app: req.app, env: req.env, database: req.database });
  if (problem) throw ApplicationFailure.nonRetryable(problem, 'BackupBadRequest');
  if (!path.isAbsolute(req.storageDir)) throw ApplicationFailure.nonRetryable(`storageDir must be an absolute path (got ${JSON.stringify(req.storageDir)})`, 'BackupBadRequest');
  const createdAt = req.now ?? new Date().toISOString();
  if (Number.isNaN(Date.parse(createdAt))) throw ApplicationFailure.nonRetryable(`now is not a time: ${JSON.stringify(req.now)}`, 'BackupBadRequest');

  const file = backupFileName(req, createdAt);
  const finalPath = path.join(req.storageDir, file);
  const partialPath = partialFileName(finalPath);
  const manifestPath = path.join(req.storageDir, manifestFileName(file));
  const manifestPartial = partialFileName(manifestPath);
  const conn: PgConnection = { host: '127.0.0.1', port: options.containerPort ?? 5432, user: req.user, database: req.database, passwordFile: req.passwordFile };
  const what = `backup of ${req.database} in ${req.container} on ${req.host.name}`;

  try {
    await mkdir(req.storageDir, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot create the storage directory ${req.storageDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'BackupStorage');
  }
  const done = await existingBackup(finalPath, manifestPath);
  if (done) return done;

  const password = await readPassword(conn);
  const env = pgClientEnv(password, { applicationName: 'temporal-runbooks backup' });
  let docker: Docker;
  try {
    docker = await engines.engine(req.host);
  } catch (err) {
    throw engineFailure(req.host, what, err);
  }

  const t0 = Date.now();
  const tap = new HashTap();
  let phase = 'dump';
  const timer = setInterval(() => heartbeat({ phase, bytes: tap.bytes }), options.heartbeatMs ?? 1000);
  let zstd: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  let dumpStream: NodeJS.ReadWriteStream | undefined;
  try {
    await rm(partialPath, { force: true });
    let started: { exec: Docker.Exec; stream: NodeJS.ReadWriteStream };
    try {
      started = await startExec(docker, req.container, pgDumpArgv(conn), env, false);
    } catch (err) {
      throw engineFailure(req.host, `${what}: starting pg_dump`, err);
    }
    dumpStream = started.stream;

    zstd = spawn(zstdCompressArgv(options.zstdLevel)[0], zstdCompressArgv(options.zstdLevel).slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const zstdStderr = new TailBuffer();
    zstd.stderr.on('data', (c: Buffer) => zstdStderr.write(c));
    const zstdExit = new Promise<number>((resolve, reject) => {
      zstd!.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? ApplicationFailure.nonRetryable('zstd is not installed on the worker (apt-get install zstd)', 'ZstdMissing') : err),
      );
      zstd!.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1)));
    });
    zstdExit.catch(() => undefined); // observed below

    const dumpStderr = new TailBuffer();
    const out = createWriteStream(partialPath, { flags: 'wx', mode: 0o640 });
    const dumping = pipeline(dumpStream as unknown as Readable, new DockerDemux((c) => dumpStderr.write(c)), zstd.stdin);
    const writing = pipeline(zstd.stdout, tap, out);
    // Whichever fails first decides; the other side is torn down so nothing waits forever.
    const results = await Promise.allSettled([
      dumping.catch((err) => {
        zstd?.kill('SIGKILL');
        throw err;
      }),
      writing.catch((err) => {
        (dumpStream as unknown as Readable).destroy();
        zstd?.kill('SIGKILL');
        throw err;
      }),
      zstdExit,
    ]);
    const [dumped, written, zstdDone] = results;
    if (written.status === 'rejected') throw written.reason; // the storage side: disk full, permissions
    if (zstdDone.status === 'rejected') throw zstdDone.reason;
    if (zstdDone.value !== 0) throw new Error(`${what}: zstd failed (exit code ${zstdDone.value}): ${lastLinesOf(zstdStderr.text())}`);
    if (dumped.status === 'rejected') throw dumped.reason; // the engine connection broke
    const dumpExit = await execExitCode(started.exec);
    if (dumpExit !== 0) throw programFailure(`${what}: pg_dump`, dumpExit, dumpStderr.text(), password);

    phase = 'stats';
    heartbeat({ phase, bytes: tap.bytes });
    const stats = await tableStatsInContainer(docker, req.container, conn, env, password);

    phase = 'commit';
    await fsyncPath(partialPath, 'r+');
    const manifest = buildManifest({
      app: req.app,
      env: req.env,
      database: req.database,
      file,
      createdAt,
      sizeBytes: tap.bytes,
      sha256: tap.hash.digest('hex'),
      durationMs: Date.now() - t0,
      serverVersion: stats.serverVersion,
      tables: stats.tables,
    });
    const onDisk = await stat(partialPath);
    if (onDisk.size !== manifest.sizeBytes) throw new Error(`${what}: wrote ${manifest.sizeBytes} bytes but the file has ${onDisk.size}`);
    await rename(partialPath, finalPath);
    const mh = await open(manifestPartial, 'w', 0o640);
    try {
      await mh.writeFile(serializeManifest(manifest));
      await mh.sync();
    } finally {
      await mh.close();
    }
    await rename(manifestPartial, manifestPath); // the commit: a backup without its manifest is not finished
    await fsyncPath(req.storageDir);
    return manifest;
  } catch (err) {
    zstd?.kill('SIGKILL');
    (dumpStream as unknown as Readable | undefined)?.destroy();
    await Promise.all([rm(partialPath, { force: true }), rm(manifestPartial, { force: true })]).catch(() => undefined);
    // renamed but not committed: no manifest means it is not a backup, but do not leave it looking like one
    if (!(await readFile(manifestPath).then(() => true, () => false))) await rm(finalPath, { force: true }).catch(() => undefined);
    if (err instanceof ApplicationFailure) throw err;
    const message = scrub((err as Error)?.message ?? String(err), password);
    throw new Error(message.startsWith(what) ? message : `${what}: ${message}`);
  } finally {
    clearInterval(timer);
  }
}

export function createBackupActivities(engines: DockerEngines, options: BackupOptions = {}) {
  return {
    /** Streams pg_dump → zstd → `<storageDir>/<app>-<env>-<db>-<time>.sql.zst` and writes its manifest. */
    async backupDatabase(req: BackupRequest): Promise<BackupManifest> {
      return backupDatabase(engines, req, options);
    },

    /** Recomputes size and sha256 of a backup file; throws (non-retryable) on a mismatch. */
    async verifyBackupFile(req: { file: string; manifest: BackupManifest }): Promise<{ ok: true; sizeBytes: number; sha256: string }> {
      return verifyBackupFile(req);
    },
  };
}
