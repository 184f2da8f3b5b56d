// Archives taken with a backup night (seed 000 "Backup Strategy": volumes through a helper
// container running tar; the config files): named volumes stream tar → zstd → storage, never held
// in memory; the config archive (env files, secret files, proxy config — small files) is built in
// memory. Both are written with mode 0600, hashed, and committed by a manifest written last.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import {
  DockerDemux,
  TailBuffer,
  archiveFileName,
  archiveManifestName,
  backupTimestamp,
  isArchiveOfNight,
  volumeTarArgv,
  zstdCompressArgv,
  type ArchiveManifest,
} from '../common/commands/backup';
import { tarFiles } from '../common/commands/tar';
import { labelsFor } from '../common/naming';
import type { HostSpec, StorageSpec } from '../common/types';
import { cancellationSignal, heartbeat } from './context';
import { engineFailure, execInContainer, imageExists, pullImage, statusCode } from './docker';
import type { BackupDeps } from './backup';
import { HashTap, openBackupStorage, startZstd } from './backup';
import { lastLines } from './pg-clients';

const ARCHIVE_MODE = 0o600;
/** The label of the helper container that archives a volume (its value: the volume's name in the inventory). */
export const ARCHIVE_HELPER_LABEL = 'runbook.archive';
/** The label of the helper container that restores a volume (activities/archive-restore.ts). */
export const RESTORE_HELPER_LABEL = 'runbook.archive-restore';
const MANIFEST_MODE = 0o644;

export interface VolumeArchiveRequest {
  app: string;
  env: string;
  host: HostSpec;
  /** The volume's name in the inventory, and its Docker name (`<app>-<env>-<name>`). */
  name: string;
  volume: string;
  helperImage: string;
  storage: StorageSpec;
  at: string;
  /** Why, when it is not a backup night's (recorded in the manifest). */
  reason?: string;
}

export interface ConfigArchiveRequest {
  app: string;
  env: string;
  /** Files on the worker. */
  files: string[];
  proxies: { host: HostSpec; container: string; path: string }[];
  storage: StorageSpec;
  at: string;
}

function manifestText(m: ArchiveManifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/** The finished archive of a retried attempt, if its manifest and size still agree. */
async function finished(storage: Awaited<ReturnType<typeof openBackupStorage>>, file: string): Promise<ArchiveManifest | undefined> {
  const text = await storage.getText(archiveManifestName(file));
  if (text === undefined) return undefined;
  try {
    const m = JSON.parse(text) as ArchiveManifest;
    const listed = (await storage.list(file)).find((o) => o.name === file);
    return listed && listed.sizeBytes === m.sizeBytes && m.file === file ? m : undefined;
  } catch {
    return undefined;
  }
}

async function waitExit(container: Docker.Container): Promise<number> {
  const r = (await container.wait()) as { StatusCode: number };
  return r.StatusCode;
}

export async function archiveVolume(deps: BackupDeps, req: VolumeArchiveRequest): Promise<ArchiveManifest> {
  const storage = openBackupStorage(deps, req.storage);
  let file: string;
  try {
    file = archiveFileName(req, 'volume', req.at, req.name);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BackupBadRequest');
  }
  const done = await finished(storage, file);
  if (done) return done;
  const what = `archive of volume ${req.volume} on ${req.host.name}`;
  let docker: Docker;
  try {
    docker = await deps.engines.engine(req.host);
    await docker.getVolume(req.volume).inspect();
  } catch (err) {
    if (statusCode(err) === 404) throw ApplicationFailure.nonRetryable(`${what}: the volume does not exist`, 'VolumeMissing');
    throw engineFailure(req.host, what, err);
  }
  // a volume being restored is emptied and partly written: an archive of it now would look complete
  const restoring = await docker.listContainers({ filters: { volume: [req.volume], label: [RESTORE_HELPER_LABEL] } }).catch((err: unknown) => Promise.reject(engineFailure(req.host, what, err)));
  if (restoring.length) throw ApplicationFailure.nonRetryable(`${what}: the volume is being restored right now (restoreArchive); not archived`, 'VolumeBeingRestored');
  const helper = `${req.app}-${req.env}-archive-${req.name}`;
  const container = docker.getContainer(helper);
  const zstd = startZstd(zstdCompressArgv());
  const stderr = new TailBuffer();
  let exitCode: Promise<number> | undefined;
  const tap = new HashTap(async () => {
    const code = await exitCode!;
    if (code !== 0) throw new Error(`${what}: tar exited with ${code}: ${lastLines(stderr.text())}`);
    const z = await zstd.exit;
    if (z !== 0) throw new Error(`${what}: zstd failed (exit code ${z}): ${lastLines(zstd.stderr.text())}`);
  });
  const timer = setInterval(() => heartbeat({ phase: 'archive', volume: req.volume, bytes: tap.bytes }), 1000);
  try {
    if (!(await imageExists(docker, req.helperImage))) await pullImage(docker, req.helperImage);
    await container.remove({ force: true }).catch(() => undefined); // a leftover of an interrupted attempt
    await docker.createContainer({
      name: helper,
      Image: req.helperImage,
      Cmd: volumeTarArgv(),
      Labels: labelsFor(req.app, req.env, 'dependency', { [ARCHIVE_HELPER_LABEL]: req.name }),
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      HostConfig: { Binds: [`${req.volume}:/data:ro`], NetworkMode: 'none' },
    });
    const raw = (await container.attach({ stream: true, stdout: true, stderr: true, hijack: true })) as unknown as Readable;
    const streaming = pipeline(raw, new DockerDemux((c) => stderr.write(c)), zstd.proc.stdin);
    streaming.catch(() => undefined);
    exitCode = waitExit(container);
    exitCode.catch(() => undefined);
    await container.start();
    const put = await storage.putStream(file, zstd.proc.stdout.pipe(tap), { mode: ARCHIVE_MODE, signal: cancellationSignal() });
    const manifest: ArchiveManifest = {
      kind: 'volume',
      app: req.app,
      env: req.env,
      volume: req.name,
      file,
      createdAt: req.at,
      sizeBytes: put.sizeBytes,
      sha256: tap.hash.digest('hex'),
      containsSecrets: true,
      ...(req.reason ? { reason: req.reason } : {}),
    };
    await storage.putText(archiveManifestName(file), manifestText(manifest), { mode: MANIFEST_MODE });
    return manifest;
  } catch (err) {
    zstd.proc.kill('SIGKILL');
    if (err instanceof ApplicationFailure) throw err;
    throw engineFailure(req.host, what, err);
  } finally {
    clearInterval(timer);
    await container.remove({ force: true }).catch(() => undefined);
  }
}

export async function archiveConfig(deps: BackupDeps, req: ConfigArchiveRequest): Promise<ArchiveManifest> {
  const storage = openBackupStorage(deps, req.storage);
  let file: string;
  try {
    file = archiveFileName(req, 'config', req.at);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BackupBadRequest');
  }
  const done = await finished(storage, file);
  if (done) return done;
  const entries: { name: string; body: Buffer }[] = [];
  for (const path of req.files) {
    try {
      entries.push({ name: path.replace(/^\/+/, ''), body: await readFile(path) });
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`config archive: cannot read ${path} on the worker: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'ConfigFileMissing');
    }
  }
  for (const p of req.proxies) {
    const what = `config archive: reading ${p.path} in ${p.container}`;
    try {
      const r = await execInContainer(await deps.engines.engine(p.host), p.container, ['cat', '--', p.path]);
      if (r.exitCode !== 0) throw ApplicationFailure.nonRetryable(`${what} on ${p.host.name}: ${r.stderr.trim() || `exit code ${r.exitCode}`}`, 'ConfigFileMissing');
      entries.push({ name: `proxy/${p.host.name}${p.path}`, body: Buffer.from(r.stdout, 'utf8') });
    } catch (err) {
      if (statusCode(err) === 404) throw ApplicationFailure.nonRetryable(`${what} on ${p.host.name}: the container does not exist`, 'ConfigFileMissing');
      throw engineFailure(p.host, what, err);
    }
  }
  const mtime = new Date(req.at); // whole seconds in the archive
  const tar = await tarFiles(entries.map((e) => ({ ...e, mode: 0o600, mtime })));
  const put = await storage.putStream(file, Readable.from([tar]), { mode: ARCHIVE_MODE });
  const manifest: ArchiveManifest = {
    kind: 'config',
    app: req.app,
    env: req.env,
    file,
    createdAt: req.at,
    sizeBytes: put.sizeBytes,
    sha256: createHash('sha256').update(tar).digest('hex'),
    entries: entries.map((e) => e.name),
    containsSecrets: true,
  };
  await storage.putText(archiveManifestName(file), manifestText(manifest), { mode: MANIFEST_MODE });
  return manifest;
}

/** Removes the archives of the given nights (the nights whose dumps retention pruned). */
export async function pruneArchives(deps: BackupDeps, req: { app: string; env: string; storage: StorageSpec; nights: string[] }): Promise<{ removed: string[] }> {
  const storage = openBackupStorage(deps, req.storage);
  const stamps = req.nights.map((n) => backupTimestamp(n));
  const objects = await storage.list(`${req.app}-${req.env}-`);
  const doomed = objects.map((o) => o.name).filter((name) => stamps.some((t) => isArchiveOfNight(name, req, t)));
  // manifests first: a crash half-way leaves an archive without manifest, never a false one
  doomed.sort((a, b) => Number(b.endsWith('.manifest.json')) - Number(a.endsWith('.manifest.json')));
  for (const name of doomed) await storage.remove(name);
  return { removed: doomed };
}

export function createArchiveActivities(deps: BackupDeps) {
  return {
    archiveVolume: (req: VolumeArchiveRequest) => archiveVolume(deps, req),
    archiveConfig: (req: ConfigArchiveRequest) => archiveConfig(deps, req),
    pruneArchives: (req: { app: string; env: string; storage: StorageSpec; nights: string[] }) => pruneArchives(deps, req),
  };
}
