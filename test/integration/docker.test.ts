// The Docker, health, proxy and preflight activities against the real engine, through the local
// socket and over SSH (the same engine behind a second sshd with a pinned host key).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import { renderProxyConfig } from '../../common/commands/nginx';
import { labelsFor, LABEL } from '../../common/naming';
import type { ContainerSpec, HostSpec } from '../../common/types';
import { localHost, sshHost } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-'));
const envFile = path.join(tmp, 'app.env');
writeFileSync(envFile, 'DATABASE_URL=postgres://demo:s3cret-value@db:5432/demo\nSECRET_KEY=abc\n', { mode: 0o600 });

let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;
beforeAll(() => {
  deps = createDeps({ inventoryPath: '/nonexistent', socketParent: path.join(tmp, 'sockets') });
  acts = createActivities(deps);
});
afterAll(async () => {
  await closeDeps(deps);
  const leftovers = await docker.listContainers({ all: true, filters: { label: ['runbook.app=it'] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  for (const n of await docker.listNetworks({ filters: { label: ['runbook.app=it'] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
});

function webSpec(name: string, network: string, version: string, runId: string): ContainerSpec {
  return {
    name,
    image: `${REGISTRY}/demo-app:${version}`,
    role: 'web',
    labels: labelsFor('it', 'test', 'web', { [LABEL.version]: version, [LABEL.runId]: runId }),
    env: {},
    envFiles: [{ path: envFile, required: ['DATABASE_URL'] }],
    network,
    aliases: [],
    volumes: [],
    binds: [],
    ports: [],
    stopTimeoutSeconds: 5,
    restart: false,
  };
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe.each([
  ['local socket', () => localHost],
  ['ssh', () => sshHost()],
])('engine through %s', (mode, hostOf) => {
  const tag = mode === 'ssh' ? 'ssh' : 'sock';
  const runId = `it-${randomUUID()}`;
  const network = `it-test-${tag}`;
  let host: HostSpec;
  beforeAll(() => {
    host = hostOf();
  });

  it('preflight passes with every check named', async () => {
    const report = await acts.preflightHost({ host, envFiles: [{ path: envFile, required: ['DATABASE_URL'] }], secretFiles: [envFile], ports: [{ bindAddress: '127.0.0.1', port: 18999, owner: 'it-test-proxy' }], domain: { name: 'localhost', address: '127.0.0.1' } });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.map((c) => c.check)).toEqual([
      ...(host.ssh ? ['ssh'] : []),
      'docker',
      'disk',
      `env file ${envFile}`,
      `secret file ${envFile}`,
      'port 127.0.0.1:18999',
      'domain localhost',
    ]);
  });

  it('ensures a network once', async () => {
    const labels = labelsFor('it', 'test', 'web', { [LABEL.runId]: runId });
    const first = await acts.ensureNetwork({ host, name: network, labels });
    const second = await acts.ensureNetwork({ host, name: network, labels });
    expect(second).toEqual({ ...first, created: false });
  });

  it('pulls from the registry, starts a replica, waits healthy, and is idempotent', async () => {
    const spec = webSpec(`it-test-${tag}-web-1`, network, 'v1', runId);
    await docker.getImage(spec.image).remove({ force: true }).catch(() => undefined); // make the pull real
    const pulled = await acts.pullImage({ host, image: spec.image });
    expect(pulled.id).toMatch(/^sha256:/);
    const started = await acts.ensureContainer({ host, spec });
    expect(started.created).toBe(true);
    const healthy = await acts.waitHealthy({ host, container: spec.name, timeoutSeconds: 60 });
    expect(healthy.health).toBe('healthy');
    const again = await acts.ensureContainer({ host, spec });
    expect(again).toEqual({ ...started, created: false });
    // secrets reach the container's environment through the engine
    const info = await docker.getContainer(spec.name).inspect();
    expect(info.Config.Env).toContain('SECRET_KEY=abc');
  });

  it('refuses to take over a container of another version', async () => {
    const f = await failure(acts.ensureContainer({ host, spec: webSpec(`it-test-${tag}-web-1`, network, 'v2', runId) }));
    expect(f.type).toBe('ContainerConflict');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/image is 127\.0\.0\.1:5000\/demo-app:v1, want 127\.0\.0\.1:5000\/demo-app:v2/);
  });

  it('reports an unknown tag as non-retryable before anything changes', async () => {
    const f = await failure(acts.pullImage({ host, image: `${REGISTRY}/demo-app:no-such-tag` }));
    expect(f.type).toBe('ImageNotFound');
    expect(f.nonRetryable).toBe(true);
  });

  it('fails an unhealthy container with its health log and last log lines', async () => {
    const spec = webSpec(`it-test-${tag}-broken-1`, network, 'broken', runId);
    await acts.ensureContainer({ host, spec });
    const f = await failure(acts.waitHealthy({ host, container: spec.name, timeoutSeconds: 60 }));
    expect(f.type).toBe('ContainerUnhealthy');
    expect(f.message).toMatch(/is unhealthy after/);
    expect(f.message).toMatch(/health log:\n {2}exit 1: /);
    expect(f.message).toMatch(/last log lines:/);
    expect(f.message).not.toContain('s3cret-value');
  });

  it('gates a one-off container on its exit code', async () => {
    const ok = webSpec(`it-test-${tag}-migrate-ok`, network, 'v1', runId);
    const done = await acts.runOneOff({ host, spec: { ...ok, role: 'migrate', cmd: ['sh', '-c', 'echo migrated'] }, timeoutSeconds: 30 });
    expect(done).toMatchObject({ exitCode: 0, alreadyDone: false, lastLogLines: ['migrated'] });
    const again = await acts.runOneOff({ host, spec: { ...ok, role: 'migrate', cmd: ['sh', '-c', 'echo migrated'] }, timeoutSeconds: 30 });
    expect(again.alreadyDone).toBe(true);
    const bad = webSpec(`it-test-${tag}-migrate-bad`, network, 'v1', runId);
    const f = await failure(acts.runOneOff({ host, spec: { ...bad, role: 'migrate', cmd: ['sh', '-c', 'echo "relation missing" >&2; exit 3'] }, timeoutSeconds: 30 }));
    expect(f.type).toBe('OneOffFailed');
    expect(f.message).toMatch(/exited with code 3/);
    expect(f.message).toMatch(/relation missing/);
  });

  it('configures the proxy: nginx -t, reload, no change the second time, bad config rolled back', async () => {
    const proxy: ContainerSpec = {
      ...webSpec(`it-test-${tag}-proxy`, network, 'v1', runId),
      image: `${REGISTRY}/nginx:1`,
      role: 'proxy',
      envFiles: [],
      ports: [{ hostIp: '127.0.0.1', hostPort: tag === 'ssh' ? 18902 : 18901, containerPort: 80 }],
    };
    await acts.ensureContainer({ host, spec: proxy });
    const config = renderProxyConfig({ app: 'it', env: tag, upstreams: [`it-test-${tag}-web-1:8080`] });
    const switched = await acts.configureProxy({ host, container: proxy.name, config });
    expect(switched.changed).toBe(true);
    expect(switched.previousWorkers?.length).toBeGreaterThan(0); // the workers of the image's own config
    // those workers had nothing in flight: they are gone within moments of the reload
    const drained = await acts.waitProxyDrained({ host, container: proxy.name, workers: switched.previousWorkers!, timeoutSeconds: 10 });
    expect(drained).toMatchObject({ drained: true, stillServing: [] });
    expect(await acts.configureProxy({ host, container: proxy.name, config })).toEqual({ changed: false });
    const answer = await acts.smokeTest({ url: `http://127.0.0.1:${proxy.ports[0].hostPort}/version`, expectStatus: 200, expectBody: 'v1' });
    expect(answer.body).toBe('v1');
    const f = await failure(acts.configureProxy({ host, container: proxy.name, config: 'this is not nginx;' }));
    expect(f.type).toBe('ProxyConfigInvalid');
    expect(await acts.configureProxy({ host, container: proxy.name, config })).toEqual({ changed: false }); // previous config kept
  });

  it("a declared health check is the engine's (not the image's), waitHealthy follows it; memory and CPU limits are enforced", async () => {
    const base = { ...webSpec(`it-test-${tag}-dep-ok`, network, 'v1', runId), image: `${REGISTRY}/debian:bookworm`, role: 'dependency' as const, envFiles: [] };
    const ready: ContainerSpec = {
      ...base,
      cmd: ['sh', '-c', 'sleep 2; touch /tmp/ready; exec sleep 600'],
      healthCheck: { test: ['CMD-SHELL', 'test -f /tmp/ready'], intervalSeconds: 1, timeoutSeconds: 2, retries: 3, startPeriodSeconds: 0 },
      resources: { memoryBytes: 64 * 1024 ** 2, nanoCpus: 500_000_000 },
    };
    await acts.ensureContainer({ host, spec: ready });
    const healthy = await acts.waitHealthy({ host, container: ready.name, timeoutSeconds: 30 });
    expect(healthy.health).toBe('healthy');
    expect(healthy.seconds).toBeGreaterThanOrEqual(1.5); // not "running for 2 s": the check passed once the file existed
    const info = await docker.getContainer(ready.name).inspect();
    expect([info.HostConfig.Memory, info.HostConfig.NanoCpus, info.Config.Healthcheck?.Test]).toEqual([64 * 1024 ** 2, 500_000_000, ['CMD-SHELL', 'test -f /tmp/ready']]);
    const never: ContainerSpec = { ...ready, name: `it-test-${tag}-dep-bad`, cmd: ['sleep', '600'], healthCheck: { ...ready.healthCheck!, test: ['CMD', 'sh', '-c', 'echo "not ready: no /tmp/ready"; exit 1'] } };
    await acts.ensureContainer({ host, spec: never });
    const f = await failure(acts.waitHealthy({ host, container: never.name, timeoutSeconds: 30 }));
    expect(f.type).toBe('ContainerUnhealthy');
    expect(f.message).toMatch(/health log:\n {2}exit 1: not ready: no \/tmp\/ready/);
  });

  it('removes what a run created, keeping nothing of it, also a container in a restart loop', async () => {
    // a dependency that cannot start: the engine keeps restarting it, and refuses to remove it while it does
    const looping = await docker.createContainer({
      name: `it-test-${tag}-looping`,
      Image: `${REGISTRY}/demo-app:v1`,
      Cmd: ['sh', '-c', 'exit 3'],
      Labels: labelsFor('it', 'test', 'dependency', { [LABEL.runId]: runId }),
      HostConfig: { RestartPolicy: { Name: 'always' } },
    });
    await looping.start();
    // seen restarting at least once (between two restarts it is briefly running again)
    let status = '';
    for (let i = 0; i < 100 && status !== 'restarting'; i++) {
      status = (await looping.inspect()).State.Status;
      if (status !== 'restarting') await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe('restarting');
    const result = await acts.removeRunResources({ host, app: 'it', env: 'test', runId });
    expect(result.removedContainers.sort()).toEqual(
      [`it-test-${tag}-broken-1`, `it-test-${tag}-dep-bad`, `it-test-${tag}-dep-ok`, `it-test-${tag}-looping`, `it-test-${tag}-migrate-bad`, `it-test-${tag}-migrate-ok`, `it-test-${tag}-proxy`, `it-test-${tag}-web-1`].sort(),
    );
    expect(result.removedNetworks).toEqual([network]);
    expect(await docker.listContainers({ all: true, filters: { label: [`runbook.run-id=${runId}`] } })).toEqual([]);
  });
});

describe('ssh', () => {
  it('used one SSH connection for every engine call above', () => {
    expect(deps.ssh.handshakes).toBe(1);
  });

  it('refuses a host whose key does not match the pinned fingerprint', async () => {
    const wrong = sshHost('SHA256:' + 'x'.repeat(43));
    const f = await failure(acts.ensureNetwork({ host: wrong, name: 'it-never', labels: {} }));
    expect(f.type).toBe('HostKeyMismatch');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/the server presented SHA256:\S+ but the inventory pins SHA256:x{43}; refusing to connect/);
    const report = await acts.preflightHost({ host: wrong, envFiles: [], secretFiles: [], ports: [] });
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ check: 'ssh', ok: false });
  });
});
