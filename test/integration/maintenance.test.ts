// Maintenance mode on a real nginx proxy: on, requests get 503 with Retry-After and the app's page
// (the ACME path still answers); off, the app again; both idempotent; a proxy whose config predates
// the snippets is refused with a message that says how to fix it.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import { execInContainer } from '../../activities/docker';
import { renderProxyConfig } from '../../common/commands/nginx';
import { labelsFor, LABEL } from '../../common/naming';
import { localHost as host } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const runId = `it-mnt-${randomUUID()}`;
const tag = runId.slice(7, 15);
const network = `it-mnt-${tag}`;
const container = `it-mnt-${tag}-proxy`;
let port: number;
let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-mnt-'));

function get(urlPath: string, method = 'GET'): Promise<{ status: number; retryAfter?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(method === 'POST' ? 'a write' : undefined);
  });
}

const config =
  renderProxyConfig({ app: 'it-mnt', env: tag, upstreams: ['127.0.0.1:8081'] }) +
  `
server {
    listen 127.0.0.1:8081;
    location / { default_type text/plain; return 200 "the app\\n"; }
    # a slow answer (3000 bytes at 1000 bytes/s): a request still in flight when the proxy switches
    location /slow { default_type text/plain; limit_rate 1000; return 200 "${'x'.repeat(3000)}"; }
}
`;
const request = (on: boolean, pageFile?: string) => ({ host, container, app: 'it-mnt', env: tag, on, reason: 'integration test', retryAfterSeconds: 30, ...(pageFile ? { pageFile } : {}) });

beforeAll(async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  deps = createDeps({ inventoryPath: '/nonexistent', socketParent: tmp, stateDir: tmp });
  acts = createActivities(deps);
  const labels = labelsFor('it-mnt', tag, 'proxy', { [LABEL.runId]: runId });
  await acts.ensureNetwork({ host, name: network, labels });
  await acts.ensureContainer({
    host,
    spec: { name: container, image: `${REGISTRY}/nginx:1`, role: 'proxy', labels, env: {}, envFiles: [], network, aliases: [], volumes: [], binds: [], ports: [{ hostIp: '127.0.0.1', hostPort: port, containerPort: 80 }], stopTimeoutSeconds: 2, restart: false },
  });
  const r = await execInContainer(docker, container, ['sh', '-c', 'mkdir -p /etc/nginx/tls /var/www/acme/.well-known/acme-challenge && printf tok > /var/www/acme/.well-known/acme-challenge/t1']);
  expect(r.exitCode).toBe(0);
  expect((await acts.configureProxy({ host, container, config })).changed).toBe(true);
});

afterAll(async () => {
  await closeDeps(deps);
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.runId}=${runId}`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await docker.getNetwork(network).remove().catch(() => undefined);
});

/** nginx reloads gracefully: a request right after may still meet an old worker. */
async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await probe();
    if (ok(v) || i >= 50) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('on: 503 with Retry-After and the default page; the ACME path still answers; on again changes nothing', async () => {
  expect(await eventually(() => get('/'), (x) => x.body === 'the app\n')).toMatchObject({ status: 200, body: 'the app\n' });
  expect(await acts.proxyMaintenance(request(true))).toEqual({ changed: true });
  const r = await eventually(() => get('/orders/1'), (x) => x.status === 503);
  expect(r.status).toBe(503);
  expect(r.retryAfter).toBe('30');
  expect(r.body).toContain('it-mnt is down for maintenance');
  // a write gets the same page (not nginx's 405 for a POST to a static file)
  expect(await get('/items', 'POST')).toMatchObject({ status: 503, retryAfter: '30', body: expect.stringContaining('it-mnt is down for maintenance') });
  expect(await get('/.well-known/acme-challenge/t1')).toMatchObject({ status: 200, body: 'tok' });
  expect(await acts.proxyMaintenance(request(true))).toEqual({ changed: false });
});

it("the app's own page replaces the default one; off serves the app again; off again changes nothing", async () => {
  const page = path.join(tmp, 'page.html');
  writeFileSync(page, '<h1>Back at 10:00 $not_a_variable</h1>\n');
  expect(await acts.proxyMaintenance(request(true, page))).toEqual({ changed: true });
  const r = await eventually(() => get('/'), (x) => x.body.includes('Back at 10:00'));
  expect(r).toMatchObject({ status: 503, retryAfter: '30', body: '<h1>Back at 10:00 $not_a_variable</h1>\n' });
  expect(await acts.proxyMaintenance(request(false))).toEqual({ changed: true });
  expect(await eventually(() => get('/'), (x) => x.status === 200)).toMatchObject({ status: 200, body: 'the app\n' });
  expect(await acts.proxyMaintenance(request(false))).toEqual({ changed: false });
});

it('on returns only after the requests already in flight at the app were answered (the caller stops the app next)', async () => {
  expect(await eventually(() => get('/'), (x) => x.status === 200)).toMatchObject({ status: 200, body: 'the app\n' });
  let answeredAt = 0;
  const slow = get('/slow').then((r) => ((answeredAt = Date.now()), r));
  await new Promise((r) => setTimeout(r, 300)); // the request reached the app
  expect(await acts.proxyMaintenance(request(true))).toEqual({ changed: true });
  const switchedAt = Date.now();
  expect(answeredAt).toBeGreaterThan(0);
  expect(answeredAt).toBeLessThanOrEqual(switchedAt);
  expect(await slow).toMatchObject({ status: 200, body: 'x'.repeat(3000) });
  expect(await acts.proxyMaintenance(request(false))).toEqual({ changed: true });
});

it('a proxy config rendered before maintenance mode existed is refused, saying how to fix it', async () => {
  const old = config.replace(/^.*maintenance-(server|location)\.conf;\n/gm, '');
  expect(old).not.toContain('maintenance');
  await acts.configureProxy({ host, container, config: old });
  const f = (await rejectionOf(acts.proxyMaintenance(request(true)))) as ApplicationFailure;
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toMatch(/does not include the maintenance snippets .*an update or deploy renders it again/);
  expect(await get('/')).toMatchObject({ status: 200 });
  await acts.configureProxy({ host, container, config });
});
