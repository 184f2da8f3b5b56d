// Archive restores against the real engine: a volume archived by archiveVolume is listed, read
// through, and extracted back into the volume after it changed (files added and removed, owners
// and modes as archived); a damaged archive is refused by the read-through and, given to the
// restore, fails with the volume's users still refused; config files go back in place with the
// replaced ones kept beside them.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { createArchiveRestoreActivities } from '../../activities/archive-restore';
import { createArchiveActivities } from '../../activities/archives';
import { DockerEngines } from '../../activities/docker';
import { SshPool } from '../../activities/ssh';
import type { ArchiveManifest } from '../../common/commands/backup';
import { localHost } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const tag = randomBytes(3).toString('hex');
const app = `rest${tag}`;
const volume = `${app}-prod-media`;
const user = `${app}-prod-web-1`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-archive-restore-'));
const dir = path.join(tmp, 'backups');
const ssh = new SshPool();
const engines = new DockerEngines(ssh, path.join(tmp, 'sockets'));
const deps = { engines, ssh };
const archives = createArchiveActivities(deps);
const restores = createArchiveRestoreActivities(deps);
const storage = { type: 'directory' as const, path: dir };
const image = `${REGISTRY}/debian:bookworm`;
const target = { app, env: 'prod', host: localHost, name: 'media', volume, helperImage: image };

/** Runs a shell script in a throwaway container with the volume at /data; its stdout. */
async function inVolume(script: string): Promise<string> {
  const c = await docker.createContainer({ Image: image, Cmd: ['sh', '-c', script], HostConfig: { Binds: [`${volume}:/data`] } });
  await c.start();
  await c.wait();
  const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
  await c.remove();
  // the multiplexed log stream: 8-byte frame headers before each chunk
  let out = '';
  for (let i = 0; i + 8 <= logs.length; ) {
    const size = logs.readUInt32BE(i + 4);
    out += logs.subarray(i + 8, i + 8 + size).toString();
    i += 8 + size;
  }
  return out;
}

const LISTING = 'cd /data && find . -mindepth 1 | sort | while read f; do stat -c "%n %u:%g %a %s" "$f"; done';

beforeAll(async () => {
  await docker.createVolume({ Name: volume });
  await inVolume('mkdir -p /data/uploads && echo one > /data/uploads/a.txt && echo hidden > /data/.keep && head -c 2000000 /dev/urandom > /data/uploads/big && chown -R 1000:1000 /data/uploads && chmod 640 /data/uploads/a.txt');
});

afterAll(async () => {
  await docker.getContainer(user).remove({ force: true }).catch(() => undefined);
  await docker.getVolume(volume).remove().catch(() => undefined);
  await engines.closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('volume archive restore', () => {
  let night: ArchiveManifest;
  let archived: string;
  let ref: { storage: typeof storage; file: string; sizeBytes: number; sha256: string };

  it('lists the complete archives oldest first, and one without manifest as incomplete', async () => {
    archived = await inVolume(LISTING);
    night = await archives.archiveVolume({ ...target, storage, at: '2025-05-01T02:00:00Z' });
    ref = { storage, file: night.file, sizeBytes: night.sizeBytes, sha256: night.sha256 };
    writeFileSync(path.join(dir, `${app}-prod-volume-media-20250502T020000Z.tar.zst`), 'half written');
    writeFileSync(path.join(dir, `${app}-prod-volume-media-old-20250501T020000Z.tar.zst`), 'another volume');
    const { archives: listed } = await restores.listArchives({ app, env: 'prod', storage, volume: 'media' });
    expect(listed.map((a) => [a.file, a.complete])).toEqual([
      [night.file, true],
      [`${app}-prod-volume-media-20250502T020000Z.tar.zst`, false],
    ]);
    expect(listed[0]).toMatchObject({ createdAt: '2025-05-01T02:00:00Z', sizeBytes: night.sizeBytes, sha256: night.sha256 });
    expect(listed[1].problem).toBe('it has no manifest (its writing never finished)');
  });

  it('reads the archive through: every entry and its bytes', async () => {
    const read = await restores.verifyVolumeArchive(ref);
    // ., .keep, uploads, uploads/a.txt, uploads/big
    expect(read.entries).toBe(5);
    expect(read.bytes).toBe(2_000_000 + 'one\n'.length + 'hidden\n'.length);
  });

  it('refuses while a container uses the volume', async () => {
    const c = await docker.createContainer({ name: user, Image: image, Cmd: ['sleep', '600'], HostConfig: { Binds: [`${volume}:/srv/media`] } });
    await c.start();
    expect((await restores.volumeUsers({ host: localHost, volume })).running).toEqual([user]);
    const err = (await rejectionOf(restores.restoreVolumeArchive({ ...target, ...ref }))) as ApplicationFailure;
    expect(err).toMatchObject({ type: 'VolumeInUse', nonRetryable: true });
    expect(err.message).toContain(`${user} use the volume: they must be stopped first (the volume was not changed)`);
    await c.stop({ t: 0 });
    expect(await restores.volumeUsers({ host: localHost, volume })).toEqual({ host: 'local', exists: true, running: [], archiving: false });
    expect(await restores.volumeUsers({ host: localHost, volume: `${volume}-none` })).toEqual({ host: 'local', exists: false, running: [], archiving: false });
  });

  it("a dead worker's leftover helper does not block the retry; a backup night does not archive a volume being restored", async () => {
    const leftover = await docker.createContainer({
      name: `${app}-prod-restore-media`,
      Image: image,
      Cmd: ['sleep', '600'],
      Labels: { 'runbook.archive-restore': 'media' },
      HostConfig: { Binds: [`${volume}:/data`] },
    });
    await leftover.start();
    // not one of the volume's users (nothing to stop and start again)
    expect((await restores.volumeUsers({ host: localHost, volume })).running).toEqual([]);
    const night = (await rejectionOf(archives.archiveVolume({ ...target, storage, at: '2025-05-01T03:00:00Z' }))) as ApplicationFailure;
    expect(night).toMatchObject({ type: 'VolumeBeingRestored', nonRetryable: true });
    expect(readdirSync(dir).filter((f) => f.includes('20250501T030000Z'))).toEqual([]);
    await restores.restoreVolumeArchive({ ...target, ...ref });
    expect(await inVolume(LISTING)).toBe(archived);
    expect((await docker.listContainers({ all: true, filters: { name: [`${app}-prod-restore-media`] } })).length).toBe(0);
  });

  it('an archive gone from storage is refused before the volume is emptied', async () => {
    const err = (await rejectionOf(restores.restoreVolumeArchive({ ...target, ...ref, file: `${app}-prod-volume-media-20250509T020000Z.tar.zst` }))) as ApplicationFailure;
    expect(err).toMatchObject({ type: 'ArchiveMissing', nonRetryable: true });
    expect(await inVolume(LISTING)).toBe(archived);
  });

  it('puts the archived content back exactly: later files gone, removed ones back, owners and modes as archived', async () => {
    await inVolume('rm /data/uploads/a.txt && echo later > /data/uploads/later.txt && chmod 600 /data/.keep && mkdir /data/new');
    expect(await inVolume(LISTING)).not.toBe(archived);
    const r = await restores.restoreVolumeArchive({ ...target, ...ref });
    expect(r.bytes).toBe(night.sizeBytes);
    expect(await inVolume(LISTING)).toBe(archived);
    expect(await inVolume('cat /data/uploads/a.txt')).toBe('one\n');
    // the helper is gone; a retry does the same again
    expect((await docker.listContainers({ all: true, filters: { name: [`${app}-prod-restore-media`] } })).length).toBe(0);
    await restores.restoreVolumeArchive({ ...target, ...ref });
    expect(await inVolume(LISTING)).toBe(archived);
  });

  it('a damaged archive is refused by the read-through, and by the restore (the caller puts the previous content back)', async () => {
    const file = path.join(dir, night.file);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    const damaged = `${app}-prod-volume-media-20250503T020000Z.tar.zst`;
    writeFileSync(path.join(dir, damaged), bytes);
    const bad = { storage, file: damaged, sizeBytes: bytes.length, sha256: night.sha256 };
    const read = (await rejectionOf(restores.verifyVolumeArchive(bad))) as ApplicationFailure;
    expect(read).toMatchObject({ type: 'ArchiveCorrupt', nonRetryable: true });
    expect(read.message).toMatch(/is damaged: .*(sha256|zstd|tar)/);
    const restored = (await rejectionOf(restores.restoreVolumeArchive({ ...target, ...bad }))) as ApplicationFailure;
    expect(restored).toMatchObject({ type: 'ArchiveCorrupt', nonRetryable: true });
    expect(restored.message).toContain('the volume is partly written');
    await restores.restoreVolumeArchive({ ...target, ...ref });
    expect(await inVolume(LISTING)).toBe(archived);
  });

  it('a missing volume is said so', async () => {
    const err = (await rejectionOf(restores.restoreVolumeArchive({ ...target, volume: `${volume}-none`, ...ref }))) as ApplicationFailure;
    expect(err).toMatchObject({ type: 'VolumeMissing', nonRetryable: true });
  });
});

describe('config archive restore', () => {
  it('puts changed and missing worker files back, keeps each replaced file beside it, leaves the proxy config out; a retry changes nothing more', async () => {
    const etc = path.join(tmp, 'etc');
    mkdirSync(etc, { recursive: true });
    const envFile = path.join(etc, 'app.env');
    const secret = path.join(etc, 'secrets', 'pg-password');
    const same = path.join(etc, 'same.env');
    mkdirSync(path.dirname(secret), { recursive: true });
    writeFileSync(envFile, 'EMAIL_ENABLED=true\n', { mode: 0o640 });
    writeFileSync(secret, 's3cret\n', { mode: 0o600 });
    writeFileSync(same, 'A=1\n');
    const proxy = `${app}-prod-proxy`;
    const c = await docker.createContainer({ name: proxy, Image: image, Cmd: ['sh', '-c', 'mkdir -p /etc/nginx/conf.d && echo "server {}" > /etc/nginx/conf.d/default.conf && sleep 600'] });
    await c.start();
    let m: ArchiveManifest;
    try {
      m = await archives.archiveConfig({ app, env: 'prod', files: [envFile, secret, same], proxies: [{ host: localHost, container: proxy, path: '/etc/nginx/conf.d/default.conf' }], storage, at: '2025-05-01T02:00:00Z' });
    } finally {
      await c.remove({ force: true });
    }
    const { archives: listed } = await restores.listArchives({ app, env: 'prod', storage });
    expect(listed.map((a) => [a.file, a.complete])).toEqual([[m.file, true]]);
    const ref = { storage, file: m.file, sizeBytes: m.sizeBytes, sha256: m.sha256 };
    expect(await restores.verifyConfigArchive(ref)).toEqual({ entries: 4, bytes: 'EMAIL_ENABLED=true\n'.length + 's3cret\n'.length + 'A=1\n'.length + 'server {}\n'.length });

    writeFileSync(envFile, 'EMAIL_ENABLED=false\n');
    rmSync(path.dirname(secret), { recursive: true });
    const runTag = '2025-05-04T10:00:00.000Z';
    const configFiles = [envFile, secret, same];
    const r = await restores.restoreConfigArchive({ ...ref, runTag, configFiles });
    expect(r.restored.sort()).toEqual([envFile, secret].sort());
    expect(r.unchanged).toEqual([same]);
    expect(r.keptAs).toEqual([{ path: envFile, keptAs: `${envFile}.before-restore-20250504T100000Z` }]);
    expect(r.skipped).toEqual([{ name: 'proxy/local/etc/nginx/conf.d/default.conf', reason: expect.stringContaining("a proxy's config") }]);
    expect(readFileSync(envFile, 'utf8')).toBe('EMAIL_ENABLED=true\n');
    expect(statSync(envFile).mode & 0o777).toBe(0o640);
    expect(readFileSync(`${envFile}.before-restore-20250504T100000Z`, 'utf8')).toBe('EMAIL_ENABLED=false\n');
    expect(readFileSync(secret, 'utf8')).toBe('s3cret\n');
    expect(statSync(secret).mode & 0o777).toBe(0o600);
    expect(readdirSync(etc).filter((n) => n.includes('.restoring-'))).toEqual([]);

    // a retry of the same restore: the same answer, nothing written again
    const again = await restores.restoreConfigArchive({ ...ref, runTag, configFiles });
    expect(again.restored.sort()).toEqual([envFile].sort());
    expect(again.unchanged.sort()).toEqual([same, secret].sort());
    expect(readFileSync(`${envFile}.before-restore-20250504T100000Z`, 'utf8')).toBe('EMAIL_ENABLED=false\n');

    // damaged: refused before any file is written
    const bytes = readFileSync(path.join(dir, m.file));
    bytes[10] ^= 0xff;
    writeFileSync(path.join(dir, m.file), bytes);
    writeFileSync(envFile, 'EMAIL_ENABLED=false\n');
    const err = (await rejectionOf(restores.restoreConfigArchive({ ...ref, runTag: '2025-05-05T10:00:00.000Z', configFiles }))) as ApplicationFailure;
    expect(err).toMatchObject({ type: 'ArchiveCorrupt', nonRetryable: true });
    expect(readFileSync(envFile, 'utf8')).toBe('EMAIL_ENABLED=false\n');
    expect(createHash('sha256').update(bytes).digest('hex')).not.toBe(m.sha256);
  });
});
