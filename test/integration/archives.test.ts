// Volume and config archives against the real engine: a helper container streams tar of a named
// volume through zstd into storage; the config archive gathers worker files and a container's
// proxy config; both mode 0600 with a manifest; pruning removes the archives of a night only.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
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
const app = `arch${tag}`;
const volume = `${app}-prod-data`;
const proxy = `${app}-prod-proxy`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-archives-'));
const dir = path.join(tmp, 'backups');
const ssh = new SshPool();
const engines = new DockerEngines(ssh, path.join(tmp, 'sockets'));
const acts = createArchiveActivities({ engines, ssh });
const storage = { type: 'directory' as const, path: dir };
const image = `${REGISTRY}/debian:bookworm`;
const at = '2025-05-01T02:00:00.000Z';

async function runToEnd(cmd: string[], binds: string[], name?: string): Promise<void> {
  const c = await docker.createContainer({ Image: image, Cmd: cmd, ...(name ? { name } : {}), HostConfig: { Binds: binds } });
  await c.start();
  if (!name) {
    await c.wait();
    await c.remove();
  }
}

beforeAll(async () => {
  await docker.createVolume({ Name: volume });
  // a few files, one big and incompressible, owned by a non-root uid
  await runToEnd(['sh', '-c', 'mkdir -p /data/sub && echo hello > /data/a.txt && head -c 3000000 /dev/urandom > /data/sub/blob && chown 999:999 /data/sub/blob'], [`${volume}:/data`]);
  // a "proxy" container holding its config file
  await runToEnd(['sh', '-c', 'mkdir -p /etc/nginx/conf.d && echo "server { listen 80; }" > /etc/nginx/conf.d/default.conf && sleep 600'], [], proxy);
});

afterAll(async () => {
  await docker.getContainer(proxy).remove({ force: true }).catch(() => undefined);
  await docker.getVolume(volume).remove().catch(() => undefined);
  await engines.closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('volume archive', () => {
  let manifest: ArchiveManifest;
  it('streams tar of the volume through zstd into storage, 0600, with a manifest', async () => {
    manifest = await acts.archiveVolume({ app, env: 'prod', host: localHost, name: 'data', volume, helperImage: image, storage, at });
    expect(manifest).toMatchObject({ kind: 'volume', app, env: 'prod', volume: 'data', file: `${app}-prod-volume-data-20250501T020000Z.tar.zst`, containsSecrets: true });
    const file = path.join(dir, manifest.file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(file).size).toBe(manifest.sizeBytes);
    expect(sha256(file)).toBe(manifest.sha256);
    const listing = execFileSync('sh', ['-c', `zstd -dc "${file}" | tar -tv --numeric-owner`]).toString();
    expect(listing).toMatch(/\.\/a\.txt/);
    expect(listing).toMatch(/999\/999\s+3000000 .*\.\/sub\/blob/);
    // the helper container is gone
    expect((await docker.listContainers({ all: true, filters: { name: [`${app}-prod-archive-data`] } })).length).toBe(0);
  });

  it('a retried attempt returns the finished archive', async () => {
    expect(await acts.archiveVolume({ app, env: 'prod', host: localHost, name: 'data', volume, helperImage: image, storage, at })).toEqual(manifest);
  });

  it('a volume that does not exist is a non-retryable error and leaves nothing', async () => {
    const f = (await rejectionOf(acts.archiveVolume({ app, env: 'prod', host: localHost, name: 'gone', volume: `${app}-prod-gone`, helperImage: image, storage, at }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/the volume does not exist/);
    expect(readdirSync(dir).filter((n) => n.includes('-gone-'))).toEqual([]);
  });
});

describe('config archive', () => {
  it('gathers worker files and the proxy config into one tar, 0600', async () => {
    const envFile = path.join(tmp, 'app.env');
    writeFileSync(envFile, 'SECRET_KEY=abc\n', { mode: 0o600 });
    const longFile = path.join(tmp, 'd'.repeat(120), 'long-named-secrets.env'); // more than 100 bytes
    execFileSync('mkdir', ['-p', path.dirname(longFile)]);
    writeFileSync(longFile, 'TOKEN=t\n', { mode: 0o600 });
    const m = await acts.archiveConfig({ app, env: 'prod', files: [envFile, longFile], proxies: [{ host: localHost, container: proxy, path: '/etc/nginx/conf.d/default.conf' }], storage, at });
    expect(m.entries).toEqual([envFile.slice(1), longFile.slice(1), 'proxy/local/etc/nginx/conf.d/default.conf']);
    const file = path.join(dir, m.file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(sha256(file)).toBe(m.sha256);
    const out = path.join(tmp, 'extract');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('tar', ['-xf', file, '-C', out]);
    expect(readFileSync(path.join(out, envFile.slice(1)), 'utf8')).toBe('SECRET_KEY=abc\n');
    expect(readFileSync(path.join(out, longFile.slice(1)), 'utf8')).toBe('TOKEN=t\n');
    const listing = execFileSync('tar', ['-tv', '--full-time', '-f', file], { env: { ...process.env, TZ: 'UTC' } }).toString().trim().split('\n');
    expect(listing.every((line) => line.startsWith('-rw------- ') && line.includes(' 2025-05-01 02:00:00 '))).toBe(true);
    expect(readFileSync(path.join(out, 'proxy/local/etc/nginx/conf.d/default.conf'), 'utf8')).toBe('server { listen 80; }\n');
  });

  it('a missing file is a clear non-retryable error', async () => {
    const f = (await rejectionOf(acts.archiveConfig({ app, env: 'prod', files: ['/nonexistent/app.env'], proxies: [], storage, at: '2025-05-02T02:00:00Z' }))) as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toBe('config archive: cannot read /nonexistent/app.env on the worker: ENOENT');
  });
});

describe('pruning archives', () => {
  it('removes the archives of the given nights only', async () => {
    const other = '2025-05-03T02:00:00.000Z';
    await acts.archiveConfig({ app, env: 'prod', files: [], proxies: [], storage, at: other });
    const before = readdirSync(dir).filter((n) => n.startsWith(app)).sort();
    expect(before.filter((n) => n.includes('20250501T020000Z'))).toHaveLength(4);
    const { removed } = await acts.pruneArchives({ app, env: 'prod', storage, nights: [at] });
    expect(removed.sort()).toEqual(before.filter((n) => n.includes('20250501T020000Z')));
    expect(readdirSync(dir).filter((n) => n.startsWith(app)).sort()).toEqual(before.filter((n) => n.includes('20250503T020000Z')));
  });
});
