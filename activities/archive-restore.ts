// Restores of the archives a backup night takes (activities/archives.ts): a named volume's tar is
// read back through zstd into a helper container that empties the volume and extracts it, while
// the containers using the volume are stopped; the config archive's worker files are put back in
// place, each file it replaces kept beside it. Every archive is checked against its manifest
// (size, sha256) and read through as a tar before anything is changed.
import { copyFile, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
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
import type { VolumeArchiveRequest } from './archives';
import type { BackupDeps } from './backup';
import { HashTap, openBackupStorage, startZstd } from './backup';
import { heartbeat } from './context';
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
 * entry; a damaged one is a non-retryable ArchiveCorrupt. Nothing is written anywhere.
 */
export async function verifyVolumeArchive(deps: BackupDeps, req: ArchiveRef): Promise<{ entries: number; bytes: number }> {
  const storage = openBackupStorage(deps, req.storage);
  const source = await archiveStream(storage, req.file);
  const tap = new HashTap();
  const zstd = startZstd(zstdDecompressArgv());
  const reader = extract();
  let entries = 0;
  let bytes = 0;
  let stopped = false;
  const timer = setInterval(() => heartbeat({ phase: 'verify', file: req.file, bytes: tap.bytes, of: req.sizeBytes }), 1000);
  try {
    const reading = pipeline(source, tap, zstd.proc.stdin);
    zstd.proc.stdout.pipe(reader);
    const listing = (async () => {
      for await (const entry of reader) {
        entries += 1;
        for await (const chunk of entry) bytes += (chunk as Buffer).length;
      }
    })();
    listing.catch(() => {
      // a tar that cannot be read: stop reading the rest
      stopped = true;
      zstd.proc.kill('SIGKILL');
      source.destroy();
    });
    const [read, listed] = await Promise.allSettled([reading, listing]);
    const unzipped = await zstd.exit;
    if (read.status === 'rejected' && !stopped) throw read.reason;
    if (listed.status === 'rejected') throw corrupt(req.file, `not a tar archive: ${(listed.reason as Error).message}`);
    const diffs = sizeAndHashDiffs({ bytes: tap.bytes, sha256: tap.hash.digest('hex') }, req);
    if (unzipped !== 0) diffs.unshift(`zstd cannot decompress it (exit code ${unzipped}: ${lastLines(zstd.stderr.text(), 3)})`);
    if (diffs.length) throw corrupt(req.file, diffs.join('; '));
    return { entries, bytes };
  } finally {
    clearInterval(timer);
    zstd.proc.kill('SIGKILL');
    source.destroy();
  }
}

/** The running containers (on that host) that have the volume mounted: stopped while it is replaced. */
export async function volumeUsers(deps: BackupDeps, req: { host: HostSpec; volume: string }): Promise<{ host: string; running: string[] }> {
  try {
    const docker = await deps.engines.engine(req.host);
    const list = await docker.listContainers({ filters: { volume: [req.volume], status: ['running', 'restarting'] } });
    return { host: req.host.name, running: list.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, '')).sort() };
  } catch (err) {
    throw engineFailure(req.host, `list the containers using volume ${req.volume}`, err);
  }
}

/**
 * Replaces the volume's content with the archive's: a helper container empties it and extracts the
 * tar streamed from storage through zstd. Refused while a container uses the volume. A damaged
 * archive (size, sha256, zstd, tar) fails non-retryably with the volume partly written: the caller
 * puts its previous content back. Idempotent: a retry empties the volume again.
 */
export async function restoreVolumeArchive(deps: BackupDeps, req: VolumeRestoreRequest): Promise<{ bytes: number }> {
  const what = `restore of ${req.file} into volume ${req.volume} on ${req.host.name}`;
  let docker: Docker;
  try {
    docker = await deps.engines.engine(req.host);
    await docker.getVolume(req.volume).inspect();
  } catch (err) {
    if (statusCode(err) === 404) throw ApplicationFailure.nonRetryable(`${what}: the volume does not exist (a deploy creates it)`, 'VolumeMissing');
    throw engineFailure(req.host, what, err);
  }
  const users = await volumeUsers(deps, { host: req.host, volume: req.volume });
  if (users.running.length) throw ApplicationFailure.nonRetryable(`${what}: ${users.running.join(', ')} still use the volume (they are stopped first)`, 'VolumeInUse');

  const storage = openBackupStorage(deps, req.storage);
  const helper = `${req.app}-${req.env}-restore-${req.name}`;
  const container = docker.getContainer(helper);
  const tap = new HashTap();
  const timer = setInterval(() => heartbeat({ phase: 'restore', volume: req.volume, bytes: tap.bytes, of: req.sizeBytes }), 1000);
  try {
    try {
      if (!(await imageExists(docker, req.helperImage))) await pullImage(docker, req.helperImage);
      await container.remove({ force: true }).catch(() => undefined); // a leftover of an interrupted attempt
      await docker.createContainer({
        name: helper,
        Image: req.helperImage,
        Cmd: ['sleep', 'infinity'],
        Labels: labelsFor(req.app, req.env, 'dependency', { 'runbook.archive-restore': req.name }),
        HostConfig: { Binds: [`${req.volume}:/data`], NetworkMode: 'none' },
      });
      await container.start();
      const cleared = await execInContainer(docker, helper, volumeClearArgv());
      if (cleared.exitCode !== 0) throw new Error(`${what}: emptying the volume failed (exit ${cleared.exitCode}): ${lastLines(cleared.stderr, 5)}`);
    } catch (err) {
      throw err instanceof ApplicationFailure ? err : engineFailure(req.host, what, err);
    }
    const source = await archiveStream(storage, req.file);
    const zstd = startZstd(zstdDecompressArgv());
    const tar = await startInContainer(deps.engines, req.host, helper, volumeExtractArgv(), {}, true);
    tar.stdout.resume();
    try {
      // the end of the tar half-closes the exec's stream: tar sees EOF
      const [reading, writing] = await Promise.allSettled([pipeline(source, tap, zstd.proc.stdin), pipeline(zstd.proc.stdout, tar.stdin!)]);
      const code = await tar.exitCode();
      const unzipped = await zstd.exit;
      const diffs = sizeAndHashDiffs({ bytes: tap.bytes, sha256: tap.hash.digest('hex') }, req);
      if (unzipped !== 0) diffs.unshift(`zstd cannot decompress it (exit code ${unzipped}: ${lastLines(zstd.stderr.text(), 3)})`);
      if (reading.status === 'rejected') throw reading.reason;
      if (diffs.length) throw corrupt(req.file, `${diffs.join('; ')} (the volume is partly written)`);
      if (code !== 0) throw new Error(`${what}: tar exited ${code}: ${lastLines(tar.stderrText(), 5)}`);
      if (writing.status === 'rejected') throw writing.reason;
      return { bytes: tap.bytes };
    } finally {
      source.destroy();
      zstd.proc.kill('SIGKILL');
      tar.abort();
    }
  } finally {
    clearInterval(timer);
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

/** What a config archive's entry is restored to: a worker path, or why it is not restored. */
export function configEntryTarget(name: string): { path: string } | { skip: string } {
  if (name.startsWith('proxy/')) return { skip: "a proxy's config: every deploy writes it from the inventory (read it from the archive to compare)" };
  if (name.split('/').includes('..')) return { skip: 'a path with ".." is never written' };
  return { path: `/${name}` };
}

const readIfExists = (path: string) => readFile(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));

/**
 * Puts the worker files of a config archive (env files, secret files, extra files) back at their
 * paths. A file whose content differs is kept first as `<path>.before-restore-<time>`, then
 * replaced atomically with its mode kept (0600 when new). Idempotent: a retry finds what it wrote.
 */
export async function restoreConfigArchive(deps: BackupDeps, req: ArchiveRef & { runTag: string }): Promise<ConfigRestoreResult> {
  if (!req.file.endsWith(CONFIG_ARCHIVE_SUFFIX)) throw ApplicationFailure.nonRetryable(`${req.file} is not a config archive`, 'InvalidInput');
  const files = await readConfigArchive(openBackupStorage(deps, req.storage), req);
  const stamp = backupTimestamp(req.runTag);
  const result: ConfigRestoreResult = { restored: [], unchanged: [], keptAs: [], skipped: [] };
  for (const file of files) {
    const target = configEntryTarget(file.name);
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
    let mode = 0o600;
    if (current !== undefined) {
      mode = (await stat(path)).mode & 0o7777;
      if (!keptBefore) await copyFile(path, keptAs);
      result.keptAs.push({ path, keptAs });
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const temporary = `${path}.restoring-${stamp}`;
    await writeFile(temporary, file.body, { mode });
    await rename(temporary, path);
    result.restored.push(path);
  }
  return result;
}

export function createArchiveRestoreActivities(deps: BackupDeps) {
  return {
    listArchives: (req: { app: string; env: string; storage: StorageSpec; volume?: string }) => listArchives(deps, req),
    verifyVolumeArchive: (req: ArchiveRef) => verifyVolumeArchive(deps, req),
    verifyConfigArchive: (req: ArchiveRef) => verifyConfigArchive(deps, req),
    volumeUsers: (req: { host: HostSpec; volume: string }) => volumeUsers(deps, req),
    restoreVolumeArchive: (req: VolumeRestoreRequest) => restoreVolumeArchive(deps, req),
    restoreConfigArchive: (req: ArchiveRef & { runTag: string }) => restoreConfigArchive(deps, req),
  };
}
