// Restores of the archives a backup night takes (activities/archives.ts): a named volume's tar is
// read back through zstd into a helper container that empties the volume and extracts it, while
// the containers using the volume are stopped; the config archive's worker files are put back in
// place, each file it replaces kept beside it. Every archive is checked against its manifest
// (size, sha256) and read through as a tar before anything is changed.
import { chmod, chown, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { extract } from 'tar-stream';
import {
  archiveManifestName,
  archiveTime,
  backupTimestamp,
  CONFIG_ARCHIVE_SUFFIX,
  volumeClearArgv,
  volumeExtractArgv,
  zstdDecompressArgv,
  type ArchiveManifest,
} from '../common/commands/backup';
import { untarFiles } from '../common/commands/tar';
import { labelsFor } from '../common/naming';
import type { HostSpec, StorageSpec } from '../common/types';
import { ARCHIVE_HELPER_LABEL, RESTORE_HELPER_LABEL, type VolumeArchiveRequest } from './archives';
import type { BackupDeps } from './backup';
import { HashTap, openBackupStorage, startZstd } from './backup';
import { cancellationSignal, heartbeat } from './context';
import { engineFailure, execInContainer, imageExists, pullImage, statusCode } from './docker';
import { lastLines, startInContainer } from './pg-clients';
import { StorageNotFound, type BackupStorage } from './storage';

/** An archive in storage, as its manifest describes it; `problem` says why it cannot be restored. */
export interface StoredArchive {
  file: string;
  createdAt: string;
  sizeBytes: number;
  sha256: string;
  /** Written in full and described by its manifest: the only kind a restore takes. */
  complete: boolean;
  problem?: string;
  /** Why it was taken outside a backup night (e.g. the copy a restore took before replacing the volume). */
  reason?: string;
}

/** The archive to read, as its manifest describes it. */
export interface ArchiveRef {
  storage: StorageSpec;
  file: string;
  sizeBytes: number;
  sha256: string;
}

/** The volume (as the night archived it: same host, names and helper image) and the archive to extract into it. */
export type VolumeRestoreRequest = Omit<VolumeArchiveRequest, 'storage' | 'at' | 'reason'> & ArchiveRef;

export interface ConfigRestoreRequest extends ArchiveRef {
  /** The restore's start time: the kept files' suffix. */
  runTag: string;
  /** The worker files the inventory names as config files now: the only paths written. */
  configFiles: string[];
}

export interface ConfigRestoreResult {
  /** Worker files written from the archive. */
  restored: string[];
  /** Files already as archived. */
  unchanged: string[];
  /** Each file the restore replaced, and where its content before the restore is kept. */
  keptAs: { path: string; keptAs: string }[];
  /** Archive entries not restored, and why. */
  skipped: { name: string; reason: string }[];
}

const corrupt = (file: string, why: string) => ApplicationFailure.nonRetryable(`archive ${file} is damaged: ${why}`, 'ArchiveCorrupt');

function sizeAndHashDiffs(got: { bytes: number; sha256: string }, want: { sizeBytes: number; sha256: string }): string[] {
  const diffs: string[] = [];
  if (got.bytes !== want.sizeBytes) diffs.push(`${got.bytes} bytes, the manifest says ${want.sizeBytes}`);
  if (got.sha256 !== want.sha256) diffs.push(`sha256 ${got.sha256}, the manifest says ${want.sha256}`);
  return diffs;
}

async function archiveStream(storage: BackupStorage, file: string): Promise<Readable> {
  try {
    return await storage.getStream(file);
  } catch (err) {
    if (err instanceof StorageNotFound) throw ApplicationFailure.nonRetryable(`archive ${file} is missing from ${storage.description}`, 'ArchiveMissing');
    throw err;
  }
}

/** `20250102T030405Z` → `2025-01-02T03:04:05Z`. */
const stampIso = (stamp: string) => stamp.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');

/** The archives of one volume (or the config archives), oldest first, each checked against its manifest. */
export async function listArchives(deps: BackupDeps, req: { app: string; env: string; storage: StorageSpec; volume?: string }): Promise<{ storage: string; archives: StoredArchive[] }> {
  const storage = openBackupStorage(deps, req.storage);
  const series = req.volume === undefined ? 'config' : `volume-${req.volume}`;
  const objects = await storage.list(`${req.app}-${req.env}-${series}-`);
  const archives: StoredArchive[] = [];
  for (const o of objects) {
    const stamp = archiveTime(o.name, req, req.volume);
    if (!stamp) continue;
    const base = { file: o.name, createdAt: stampIso(stamp), sizeBytes: o.sizeBytes, sha256: '' };
    const text = await storage.getText(archiveManifestName(o.name));
    if (text === undefined) {
      archives.push({ ...base, complete: false, problem: 'it has no manifest (its writing never finished)' });
      continue;
    }
    let m: ArchiveManifest;
    try {
      m = JSON.parse(text) as ArchiveManifest;
    } catch {
      archives.push({ ...base, complete: false, problem: 'its manifest is not JSON' });
      continue;
    }
    const kind = req.volume === undefined ? 'config' : 'volume';
    const problem =
      m.file !== o.name || m.app !== req.app || m.env !== req.env || m.kind !== kind || m.volume !== req.volume
        ? `its manifest describes ${m.kind} archive ${m.file} of ${m.app}/${m.env}${m.volume ? ` (${m.volume})` : ''}`
        : m.sizeBytes !== o.sizeBytes
          ? `it has ${o.sizeBytes} bytes, its manifest says ${m.sizeBytes}`
          : undefined;
    archives.push({ ...base, createdAt: m.createdAt ?? base.createdAt, sha256: m.sha256 ?? '', complete: !problem, ...(problem ? { problem } : {}), ...(m.reason ? { reason: m.reason } : {}) });
  }
  return { storage: storage.description, archives };
}

/**
 * Reads a volume archive through: its size and sha256 against the manifest, zstd, and every tar
 * entry; a damaged one is a non-retryable ArchiveCorrupt, a storage that fails on the way a
 * retryable error. Nothing is written anywhere.
 */
export async function verifyVolumeArchive(deps: BackupDeps, req: ArchiveRef): Promise<{ entries: number; bytes: number }> {
  const storage = openBackupStorage(deps, req.storage);
  const tap = new HashTap();
  const reader = extract();
  let entries = 0;
  let bytes = 0;
  let stoppedByUs = false;
  let readError: unknown;
  const timer = setInterval(() => heartbeat({ phase: 'verify', file: req.file, bytes: tap.bytes, of: req.sizeBytes }), 1000);
  let source: Readable | undefined;
  let zstd: ReturnType<typeof startZstd> | undefined;
  try {
    source = await archiveStream(storage, req.file);
    zstd = startZstd(zstdDecompressArgv());
    const unzip = zstd;
    const reading = pipeline(source, tap, unzip.proc.stdin);
    // a storage failure comes first; the tar error it causes (a cut stream) must not hide it
    reading.catch((err) => {
      if (!stoppedByUs) readError ??= err;
    });
    unzip.proc.stdout.pipe(reader);
    const listing = (async () => {
      for await (const entry of reader) {
        entries += 1;
        for await (const chunk of entry) bytes += (chunk as Buffer).length;
      }
    })();
    listing.catch(() => {
      // a tar that cannot be read: stop reading the rest
      stoppedByUs = true;
      unzip.proc.kill('SIGKILL');
      source?.destroy();
    });
    const [, listed] = await Promise.allSettled([reading, listing]);
    const unzipped = await unzip.exit;
    if (readError !== undefined) throw readError;
    if (listed.status === 'rejected') throw corrupt(req.file, `not a tar archive: ${(listed.reason as Error).message}`);
    const diffs = sizeAndHashDiffs({ bytes: tap.bytes, sha256: tap.hash.digest('hex') }, req);
    if (unzipped !== 0) diffs.unshift(`zstd cannot decompress it (exit code ${unzipped}: ${lastLines(unzip.stderr.text(), 3)})`);
    if (diffs.length) throw corrupt(req.file, diffs.join('; '));
    return { entries, bytes };
  } finally {
    clearInterval(timer);
    zstd?.proc.kill('SIGKILL');
    source?.destroy();
  }
}

/**
 * Whether the volume exists on the host, and the running containers that have it mounted (stopped
 * while it is replaced). The runbooks' own helpers are not its users: `archiving` says a backup
 * night's archive is being taken of it right now.
 */
export async function volumeUsers(deps: BackupDeps, req: { host: HostSpec; volume: string }): Promise<{ host: string; exists: boolean; running: string[]; archiving: boolean }> {
  try {
    const docker = await deps.engines.engine(req.host);
    const exists = await docker
      .getVolume(req.volume)
      .inspect()
      .then(
        () => true,
        (err: unknown) => (statusCode(err) === 404 ? false : Promise.reject(err)),
      );
    const list = exists ? await docker.listContainers({ filters: { volume: [req.volume], status: ['running', 'restarting'] } }) : [];
    const helper = (c: Docker.ContainerInfo) => RESTORE_HELPER_LABEL in c.Labels || ARCHIVE_HELPER_LABEL in c.Labels;
    return {
      host: req.host.name,
      exists,
      running: list.filter((c) => !helper(c)).map((c) => (c.Names[0] ?? c.Id).replace(/^\//, '')).sort(),
      archiving: list.some((c) => ARCHIVE_HELPER_LABEL in c.Labels),
    };
  } catch (err) {
    throw engineFailure(req.host, `list the containers using volume ${req.volume}`, err);
  }
}

/** The codes a stream fails with when the other end quit (its own exit code says why). */
const BROKEN_PIPE = new Set(['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'ERR_STREAM_DESTROYED']);
const brokenPipe = (err: unknown) => BROKEN_PIPE.has((err as NodeJS.ErrnoException)?.code ?? '');

/**
 * Replaces the volume's content with the archive's: a helper container empties it and extracts the
 * tar streamed from storage through zstd. Refused while a container uses the volume, and (retryably)
 * while a backup night archives it. The archive is opened before the volume is emptied (a missing
 * one changes nothing). Once emptied, a failure leaves the volume partly written and says so:
 * tar's own error (e.g. no space left) and a damaged archive are non-retryable, a storage that
 * fails on the way is retried; the caller puts the previous content back. A retry (or a leftover
 * helper of a dead worker) starts again from an emptied volume.
 */
export async function restoreVolumeArchive(deps: BackupDeps, req: VolumeRestoreRequest): Promise<{ bytes: number }> {
  const what = `restore of ${req.file} into volume ${req.volume} on ${req.host.name}`;
  const helper = `${req.app}-${req.env}-restore-${req.name}`;
  let docker: Docker;
  try {
    docker = await deps.engines.engine(req.host);
    await docker.getContainer(helper).remove({ force: true }).catch(() => undefined); // a leftover of an interrupted attempt
  } catch (err) {
    throw engineFailure(req.host, what, err);
  }
  const users = await volumeUsers(deps, { host: req.host, volume: req.volume });
  if (!users.exists) throw ApplicationFailure.nonRetryable(`${what}: the volume does not exist (a deploy creates it)`, 'VolumeMissing');
  if (users.running.length) throw ApplicationFailure.nonRetryable(`${what}: ${users.running.join(', ')} use the volume: they must be stopped first (the volume was not changed)`, 'VolumeInUse');
  if (users.archiving) throw new Error(`${what}: a backup night is archiving the volume right now; retrying when it is done (the volume was not changed)`);

  const storage = openBackupStorage(deps, req.storage);
  const container = docker.getContainer(helper);
  const tap = new HashTap();
  const timer = setInterval(() => heartbeat({ phase: 'restore', volume: req.volume, bytes: tap.bytes, of: req.sizeBytes }), 1000);
  let source: Readable | undefined;
  let zstd: ReturnType<typeof startZstd> | undefined;
  let tar: Awaited<ReturnType<typeof startInContainer>> | undefined;
  const cancelled = cancellationSignal();
  const onCancel = () => source?.destroy(new Error('the restore was cancelled'));
  cancelled?.addEventListener('abort', onCancel);
  try {
    source = await archiveStream(storage, req.file); // before the volume is emptied
    try {
      if (!(await imageExists(docker, req.helperImage))) await pullImage(docker, req.helperImage);
      await docker.createContainer({
        name: helper,
        Image: req.helperImage,
        Cmd: ['sleep', '43200'], // gone by itself after the activity's 12 h, should a dead worker leave it
        Labels: labelsFor(req.app, req.env, 'dependency', { [RESTORE_HELPER_LABEL]: req.name }),
        HostConfig: { Binds: [`${req.volume}:/data`], NetworkMode: 'none' },
      });
      await container.start();
      const cleared = await execInContainer(docker, helper, volumeClearArgv());
      if (cleared.exitCode !== 0) throw new Error(`${what}: emptying the volume failed (exit ${cleared.exitCode}): ${lastLines(cleared.stderr, 5)}`);
    } catch (err) {
      throw err instanceof ApplicationFailure ? err : engineFailure(req.host, what, err);
    }
    zstd = startZstd(zstdDecompressArgv());
    tar = await startInContainer(deps.engines, req.host, helper, volumeExtractArgv(), {}, true);
    tar.stdout.resume();
    const extracting = tar;
    // the end of the tar half-closes the exec's stream: tar sees EOF
    const [reading, writing] = await Promise.allSettled([pipeline(source, tap, zstd.proc.stdin), pipeline(zstd.proc.stdout, extracting.stdin!)]);
    const code = await extracting.exitCode().catch(() => undefined); // the stream to tar broke: its stderr still says why
    const unzipped = await zstd.exit;
    const partly = 'the volume is partly written';
    if (reading.status === 'rejected' && !brokenPipe(reading.reason)) throw new Error(`${what}: reading the archive failed (${partly}): ${(reading.reason as Error).message}`);
    const zstdBroke = unzipped !== 0 && !/broken pipe/i.test(zstd.stderr.text());
    if (zstdBroke) throw corrupt(req.file, `zstd cannot decompress it (exit code ${unzipped}: ${lastLines(zstd.stderr.text(), 3)}) (${partly})`);
    if (code !== 0) {
      throw ApplicationFailure.nonRetryable(`${what}: tar ${code === undefined ? 'stopped' : `exited ${code}`} (${partly}): ${lastLines(extracting.stderrText(), 5) || 'no message'}`, 'VolumeRestoreFailed');
    }
    const diffs = sizeAndHashDiffs({ bytes: tap.bytes, sha256: tap.hash.digest('hex') }, req);
    if (diffs.length) throw corrupt(req.file, `${diffs.join('; ')} (${partly})`);
    if (writing.status === 'rejected') throw writing.reason;
    return { bytes: tap.bytes };
  } finally {
    cancelled?.removeEventListener('abort', onCancel);
    clearInterval(timer);
    source?.destroy();
    zstd?.proc.kill('SIGKILL');
    tar?.abort();
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** A config archive in memory (they are small), checked against its manifest and read as a tar. */
async function readConfigArchive(storage: BackupStorage, req: ArchiveRef): Promise<{ name: string; mode: number; body: Buffer }[]> {
  const archive = await buffer(await archiveStream(storage, req.file));
  const diffs = sizeAndHashDiffs({ bytes: archive.length, sha256: createHash('sha256').update(archive).digest('hex') }, req);
  if (diffs.length) throw corrupt(req.file, diffs.join('; '));
  try {
    return await untarFiles(archive);
  } catch (err) {
    throw corrupt(req.file, `not a tar archive: ${(err as Error).message}`);
  }
}

/** Reads a config archive through (size, sha256, tar); nothing is written. */
export async function verifyConfigArchive(deps: BackupDeps, req: ArchiveRef): Promise<{ entries: number; bytes: number }> {
  const files = await readConfigArchive(openBackupStorage(deps, req.storage), req);
  return { entries: files.length, bytes: files.reduce((n, f) => n + f.body.length, 0) };
}

/**
 * What a config archive's entry is restored to: a worker path the inventory names as a config file
 * now (its env files, secret files, extra files), or why it is not restored. Never another path: an
 * archive's names come from storage.
 */
export function configEntryTarget(name: string, configFiles: readonly string[]): { path: string } | { skip: string } {
  const path = `/${name}`;
  if (configFiles.includes(path) && !name.split('/').includes('..')) return { path };
  if (name.startsWith('proxy/')) return { skip: "a proxy's config: every deploy writes it from the inventory (read it from the archive to compare)" };
  return { skip: 'not one of the config files the inventory names now' };
}

const readIfExists = (path: string) => readFile(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));

/**
 * Puts the worker files of a config archive (env files, secret files, extra files) back at their
 * paths. A file whose content differs is kept first as `<path>.before-restore-<time>`, then
 * replaced atomically (a new file, never through a symlink) with its mode and owner kept (0600
 * when new). Idempotent: a retry finds what it wrote, and a half-written copy is never taken for
 * the kept one.
 */
export async function restoreConfigArchive(deps: BackupDeps, req: ConfigRestoreRequest): Promise<ConfigRestoreResult> {
  if (!req.file.endsWith(CONFIG_ARCHIVE_SUFFIX)) throw ApplicationFailure.nonRetryable(`${req.file} is not a config archive`, 'InvalidInput');
  const files = await readConfigArchive(openBackupStorage(deps, req.storage), req);
  const stamp = backupTimestamp(req.runTag);
  const result: ConfigRestoreResult = { restored: [], unchanged: [], keptAs: [], skipped: [] };
  for (const file of files) {
    const target = configEntryTarget(file.name, req.configFiles);
    if ('skip' in target) {
      result.skipped.push({ name: file.name, reason: target.skip });
      continue;
    }
    const { path } = target;
    const keptAs = `${path}.before-restore-${stamp}`;
    const current = await readIfExists(path);
    const keptBefore = (await readIfExists(keptAs)) !== undefined;
    if (current?.equals(file.body)) {
      // as archived: untouched, or written by an earlier attempt of this restore
      if (keptBefore) {
        result.restored.push(path);
        result.keptAs.push({ path, keptAs });
      } else result.unchanged.push(path);
      continue;
    }
    const before = current === undefined ? undefined : await stat(path);
    if (before) {
      if (!keptBefore) await writeAtomically(keptAs, current!, before.mode & 0o7777, before, stamp);
      result.keptAs.push({ path, keptAs });
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeAtomically(path, file.body, before ? before.mode & 0o7777 : 0o600, before, stamp);
    result.restored.push(path);
  }
  return result;
}

/** Writes a new file beside `path` and renames it over: never half-written, never through a symlink; mode and owner as given. */
async function writeAtomically(path: string, body: Buffer, mode: number, owner: { uid: number; gid: number } | undefined, stamp: string): Promise<void> {
  const temporary = `${path}.restoring-${stamp}`;
  await rm(temporary, { force: true }); // a leftover of an interrupted attempt
  await writeFile(temporary, body, { mode, flag: 'wx' });
  await chmod(temporary, mode); // not masked by the umask
  if (owner) await chown(temporary, owner.uid, owner.gid).catch((err: NodeJS.ErrnoException) => (err.code === 'EPERM' ? undefined : Promise.reject(err)));
  await rename(temporary, path);
}

export function createArchiveRestoreActivities(deps: BackupDeps) {
  return {
    listArchives: (req: { app: string; env: string; storage: StorageSpec; volume?: string }) => listArchives(deps, req),
    verifyVolumeArchive: (req: ArchiveRef) => verifyVolumeArchive(deps, req),
    verifyConfigArchive: (req: ArchiveRef) => verifyConfigArchive(deps, req),
    volumeUsers: (req: { host: HostSpec; volume: string }) => volumeUsers(deps, req),
    restoreVolumeArchive: (req: VolumeRestoreRequest) => restoreVolumeArchive(deps, req),
    restoreConfigArchive: (req: ConfigRestoreRequest) => restoreConfigArchive(deps, req),
  };
}
