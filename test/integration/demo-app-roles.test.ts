// The demo app as the stand-in for the seed guides' stacks, on the real engine and the built v1 image:
// an API under a path prefix (nginx forwards /api/... unchanged), its WebSocket and the close 1001 a
// client reconnects after when the container is stopped, a worker without a port that the engine's
// health check sees alive, and an app on SQLite with an uploads directory on a named volume.
import { randomBytes, randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { execInContainer } from '../../activities/docker';
import { waitContainerHealthy } from '../helpers/postgres-container';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const runId = randomUUID().slice(0, 8);
const prefix = `roles-test-${runId}`;
const LABEL = 'runbook.test';
const APP = '/usr/local/bin/demo-app';
const image = (version = 'v1') => `${REGISTRY}/demo-app:${version}`;
const volume = `${prefix}-data`;

type AppOptions = { image?: string; cmd?: string[]; env?: string[]; publish?: boolean; binds?: string[] };

/** Creates and starts a container; with publish, 8080 on a loopback port the engine picks (free by construction). */
async function start(suffix: string, o: AppOptions = {}): Promise<{ container: Docker.Container; name: string; port: number }> {
  const name = `${prefix}-${suffix}`;
  const publish = o.publish ?? true;
  const container = await docker.createContainer({
    name,
    Image: o.image ?? image(),
    ...(o.cmd ? { Cmd: o.cmd } : {}),
    Env: o.env ?? [],
    Labels: { [LABEL]: prefix },
    StopTimeout: 10,
    ...(publish ? { ExposedPorts: { '8080/tcp': {} } } : {}),
    HostConfig: {
      Binds: o.binds ?? [],
      ...(publish ? { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } } : {}),
    },
  });
  await container.start();
  if (!publish) return { container, name, port: 0 };
  const info = await container.inspect();
  const port = Number(info.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort);
  expect(port).toBeGreaterThan(0);
  return { container, name, port };
}

/** Runs a one-off container to its end: its exit code and output. */
async function runOnce(suffix: string, o: AppOptions): Promise<{ exitCode: number; output: string }> {
  const { container } = await start(suffix, { ...o, publish: false });
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  const output = (await container.logs({ stdout: true, stderr: true })).toString('utf8');
  await container.remove({ force: true });
  return { exitCode: StatusCode, output };
}

async function http(port: number, path: string, init: RequestInit = {}): Promise<{ status: number; body: Buffer }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}
const text = async (port: number, path: string, init?: RequestInit) => {
  const r = await http(port, path, init);
  return { status: r.status, body: r.body.toString('utf8') };
};

/** Until the app answers (the server starts a moment after the container). */
async function waitServing(port: number, path = '/health'): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await http(port, path).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`127.0.0.1:${port}${path} not answering`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the container as `docker stop` does (SIGTERM, then the stop timeout): how long it took, and its exit code. */
async function stopTimed(container: Docker.Container): Promise<{ ms: number; exitCode: number }> {
  const t0 = Date.now();
  await container.stop();
  const ms = Date.now() - t0;
  return { ms, exitCode: (await container.inspect()).State.ExitCode };
}

const logsOf = async (container: Docker.Container) => (await container.logs({ stdout: true, stderr: true })).toString('utf8');

afterAll(async () => {
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${prefix}`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  await docker.getVolume(volume).remove().catch(() => undefined);
});

describe('an API behind nginx at /api (PATH_PREFIX)', () => {
  it('answers every route under the prefix and without it; ROLE names the banner; no UPLOAD_DIR, no uploads', async () => {
    const { port } = await start('api', { env: ['PATH_PREFIX=/api', 'ROLE=api'] });
    await waitServing(port, '/api/health');
    expect(await text(port, '/api/health')).toEqual({ status: 200, body: 'ok' });
    expect(await text(port, '/api/version')).toEqual({ status: 200, body: 'v1' });
    expect(await text(port, '/api/')).toEqual({ status: 200, body: 'api v1' });
    expect(await text(port, '/health')).toEqual({ status: 200, body: 'ok' }); // the image's HEALTHCHECK asks here
    expect((await text(port, '/api/nope')).status).toBe(404);
    expect((await text(port, '/api/items/count')).status).toBe(503); // no database
    expect((await text(port, '/api/ws')).status).toBe(426); // not an upgrade
    expect((await text(port, '/api/uploads/a.txt', { method: 'PUT', body: 'x' })).status).toBe(404);
  });

  it('without ROLE the banner stays "demo-app v1"; a frontend is serve with ROLE=frontend', async () => {
    const [plain, frontend] = await Promise.all([start('plain'), start('frontend', { env: ['ROLE=frontend'] })]);
    await Promise.all([waitServing(plain.port), waitServing(frontend.port)]);
    expect(await text(plain.port, '/')).toEqual({ status: 200, body: 'demo-app v1' });
    expect(await text(frontend.port, '/')).toEqual({ status: 200, body: 'frontend v1' });
    expect((await text(plain.port, '/api/health')).status).toBe(404); // no prefix, no /api
  });
});

describe('WebSocket at /api/ws', () => {
  it('says hello, echoes, and on docker stop gets close 1001 (going away); the container exits 0 at once', async () => {
    const { container, port } = await start('ws', { env: ['PATH_PREFIX=/api'] });
    await waitServing(port, '/api/health');

    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/ws`);
    const messages: string[] = [];
    const waiters: Array<() => void> = [];
    ws.addEventListener('message', (e) => {
      messages.push(String(e.data));
      waiters.splice(0).forEach((w) => w());
    });
    const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', (e) => resolve(e)));
    const nextMessage = async (n: number): Promise<string> => {
      const deadline = Date.now() + 5000;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`no message ${n} (got ${JSON.stringify(messages)})`);
        await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 200)));
      }
      return messages[n - 1];
    };

    expect(await nextMessage(1)).toBe('hello v1');
    ws.send('ping me');
    expect(await nextMessage(2)).toBe('v1: ping me');
    const big = 'x'.repeat(70_000); // a 64-bit payload length each way
    ws.send(big);
    expect(await nextMessage(3)).toBe(`v1: ${big}`);

    const stopped = stopTimed(container);
    const e = await closed;
    expect(e.code).toBe(1001);
    expect(e.wasClean).toBe(true);
    const { ms, exitCode } = await stopped;
    expect(exitCode).toBe(0);
    expect(ms).toBeLessThan(5000); // not the 10 s stop timeout: the WebSocket did not hold the drain
    expect(await logsOf(container)).toMatch(/sent close 1001 \(going away\) to 1 WebSocket/);
  });
});

describe('worker', () => {
  it('has no port, becomes healthy through its heartbeat, and exits 0 on stop', async () => {
    const { container, name } = await start('worker', { cmd: [APP, 'worker'], env: ['ROLE=worker'], publish: false });
    await waitContainerHealthy(docker, name, 30_000);
    // nothing listens: no socket in state LISTEN (0A) over IPv4 or IPv6
    const tcp = await execInContainer(docker, name, ['sh', '-c', 'cat /proc/net/tcp /proc/net/tcp6']);
    expect(tcp.exitCode).toBe(0);
    expect(tcp.stdout.split('\n').filter((l) => l.split(/\s+/)[4] === '0A')).toEqual([]);
    const { ms, exitCode } = await stopTimed(container);
    expect(exitCode).toBe(0);
    expect(ms).toBeLessThan(5000);
    const logs = await logsOf(container);
    expect(logs).toMatch(/worker v1 started/);
    expect(logs).toMatch(/worker v1: received SIGTERM after \d+ unit\(s\) of work; exiting/);
  });

  it('without a heartbeat the health check fails', async () => {
    // the same image serving HTTP, told it is a worker: no heartbeat file, so not healthy
    const { name } = await start('not-a-worker', { env: ['ROLE=worker'], publish: false });
    // the image's cheap check (no Python) and the app's own give the same answer
    for (const argv of [[APP, 'healthcheck'], [`${APP}-health`]]) {
      const r = await execInContainer(docker, name, argv);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(/no heartbeat/);
    }
  });

  it("the image's cheap health check answers as the app's own: 200 from /health, or what refused it", async () => {
    const { name } = await start('health', {});
    await waitContainerHealthy(docker, name, 30_000);
    const cheap = await execInContainer(docker, name, [`${APP}-health`]);
    expect(cheap).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^HTTP\/1\.[01] 200 /) });
    expect((await execInContainer(docker, name, [APP, 'healthcheck'])).exitCode).toBe(0);
    // nothing on that port: both fail
    for (const argv of [[APP, 'healthcheck'], [`${APP}-health`]]) {
      const r = await execInContainer(docker, name, ['env', 'PORT=9', ...argv]);
      expect(r.exitCode).toBe(1);
    }
    expect((await execInContainer(docker, name, ['env', 'PORT=9', `${APP}-health`])).stdout).toMatch(/health check failed: nothing answers on port 9/);
  });
});

describe('SQLite app with uploads on a named volume at /data', () => {
  const env = ['DATABASE_URL=sqlite:////data/app.db', 'UPLOAD_DIR=/data/uploads'];
  const binds = [`${volume}:/data`];
  let app: { container: Docker.Container; name: string; port: number };

  beforeAll(async () => {
    await docker.createVolume({ Name: volume, Labels: { [LABEL]: prefix } });
    const failed = await runOnce('migrate-bad', { image: image('bad-migration'), cmd: [APP, 'migrate'], env, binds });
    expect(failed.exitCode).toBe(1);
    expect(failed.output).toMatch(/nothing applied/);
    const migrated = await runOnce('migrate', { image: image('v2'), cmd: [APP, 'migrate'], env, binds });
    expect(migrated).toEqual({ exitCode: 0, output: expect.stringContaining('migrations applied for v2') });
    app = await start('sqlite', { env, binds });
    await waitServing(app.port);
  });

  it('migrate v2, then POST /items and /items/count = 1; the index exists; sqlite3 backs it up', async () => {
    expect(await text(app.port, '/items', { method: 'POST', body: 'first' })).toEqual({ status: 201, body: '1' });
    expect(await text(app.port, '/items/count')).toEqual({ status: 200, body: '1' });
    const indexes = await execInContainer(docker, app.name, ['sqlite3', '/data/app.db', '.indexes']);
    expect(indexes.exitCode).toBe(0);
    expect(indexes.stdout.split(/\s+/)).toContain('items_created_at');
    const mode = await execInContainer(docker, app.name, ['sqlite3', '/data/app.db', 'PRAGMA journal_mode']);
    expect(mode.stdout.trim()).toBe('wal');
    const backup = await execInContainer(docker, app.name, ['sh', '-c', 'sqlite3 /data/app.db ".backup /tmp/backup.db" && sqlite3 /tmp/backup.db "SELECT body FROM items"']);
    expect(backup).toMatchObject({ exitCode: 0, stdout: 'first\n' });
  });

  it('uploads: PUT then GET returns the same bytes; missing 404; too big 413; no temporary file left', async () => {
    const data = randomBytes(300_000);
    const put = await text(app.port, '/uploads/photo-1.jpg', { method: 'PUT', body: data });
    expect(put.status).toBe(201);
    const got = await http(app.port, '/uploads/photo-1.jpg');
    expect(got.status).toBe(200);
    expect(got.body.equals(data)).toBe(true);
    expect((await http(app.port, '/uploads/missing.jpg')).status).toBe(404);
    expect((await http(app.port, `/uploads/${'n'.repeat(65)}`, { method: 'PUT', body: 'x' })).status).toBe(404); // name too long
    expect((await http(app.port, '/uploads/big.bin', { method: 'PUT', body: randomBytes((1 << 20) + 1) })).status).toBe(413);
    expect((await http(app.port, '/uploads/big.bin')).status).toBe(404);
    const ls = await execInContainer(docker, app.name, ['ls', '-A', '/data/uploads']);
    expect(ls).toMatchObject({ exitCode: 0, stdout: 'photo-1.jpg\n' });
  });
});
