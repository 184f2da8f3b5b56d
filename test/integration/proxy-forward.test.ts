// forwardProxy / unforwardProxy on the real engine: two nginx proxies ("old" and "new" sides, each
// published on its own loopback port); the old one forwards to the new side's address and back.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import { execInContainer } from '../../activities/docker';
import { keptConfigPath, PROXY_CONFIG_PATH, renderProxyConfig } from '../../common/commands/nginx';
import { labelsFor, LABEL } from '../../common/naming';
import type { ContainerSpec } from '../../common/types';
import { localHost as host } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const runId = `it-fwd-${randomUUID()}`;
const tag = runId.slice(7, 15);
const network = `it-fwd-${tag}`;
const oldName = `it-fwd-${tag}-old`;
const newName = `it-fwd-${tag}-new`;
let oldPort: number;
let newPort: number;
let newAddress: string;

let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

function proxySpec(name: string, port: number): ContainerSpec {
  return {
    name,
    image: `${REGISTRY}/nginx:1`,
    role: 'proxy',
    labels: labelsFor('it-fwd', tag, 'proxy', { [LABEL.runId]: runId }),
    env: {},
    envFiles: [],
    network,
    aliases: [],
    volumes: [],
    binds: [],
    ports: [{ hostIp: '127.0.0.1', hostPort: port, containerPort: 80 }],
    stopTimeoutSeconds: 2,
    restart: false,
  };
}

/** After a switch: the workers of the previous config are gone, every new request sees the new one. */
async function drained(container: string, workers: number[] | undefined): Promise<void> {
  expect(workers?.length).toBeGreaterThan(0);
  expect(await acts.waitProxyDrained({ host, container, workers: workers!, timeoutSeconds: 10 })).toMatchObject({ drained: true });
}

function get(port: number, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function sh(container: string, script: string): Promise<string> {
  const r = await execInContainer(docker, container, ['sh', '-c', script]);
  if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

// The old side's own config: the normal proxy config over one "replica", a server inside the same
// container answering "old-side"; an HTTPS-like snippet proxies to the upstream by its name.
const ownConfig =
  renderProxyConfig({ app: 'it-fwd', env: 'old', upstreams: ['127.0.0.1:8081'] }) +
  `
server {
    listen 127.0.0.1:8081;
    location / { default_type text/plain; return 200 "old-side host=$host\\n"; }
}
`;
// The new side answers who it is and what reached it.
const newConfig = `server {
    listen 80 default_server;
    location / {
        default_type text/plain;
        return 200 "new-side host=$host xff=$http_x_forwarded_for proto=$http_x_forwarded_proto upgrade=$http_upgrade connection=$http_connection\\n";
    }
}
`;

beforeAll(async () => {
  deps = createDeps({ inventoryPath: '/nonexistent', socketParent: mkdtempSync(path.join(os.tmpdir(), 'runbook-fwd-')) });
  acts = createActivities(deps);
  await acts.ensureNetwork({ host, name: network, labels: labelsFor('it-fwd', tag, 'proxy', { [LABEL.runId]: runId }) });
  oldPort = await freePort();
  newPort = await freePort();
  await acts.ensureContainer({ host, spec: proxySpec(oldName, oldPort) });
  await acts.ensureContainer({ host, spec: proxySpec(newName, newPort) });
  // what the HTTPS server block of the certificate runbook does: proxy to the upstream by name
  await sh(oldName, `mkdir -p /etc/nginx/tls /var/www/acme/.well-known/acme-challenge && printf 'server { listen 8443; location / { proxy_pass http://it_fwd_old; } }\\n' > /etc/nginx/tls/it.server.conf && printf 'token-of-old\\n' > /var/www/acme/.well-known/acme-challenge/tok1`);
  for (const [container, config] of [[oldName, ownConfig], [newName, newConfig]]) {
    const switched = await acts.configureProxy({ host, container, config });
    expect(switched.changed).toBe(true);
    await drained(container, switched.previousWorkers);
  }
  const info = await docker.getContainer(newName).inspect();
  newAddress = info.NetworkSettings.Networks[network].IPAddress;
  expect(newAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
});

afterAll(async () => {
  await closeDeps(deps);
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.runId}=${runId}`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await docker.getNetwork(network).remove().catch(() => undefined);
});

it('answers as itself before the forward', async () => {
  expect(await get(oldPort, '/', { Host: 'shop.example.com' })).toEqual({ status: 200, body: 'old-side host=shop.example.com\n' });
  expect((await get(newPort, '/', { Host: 'shop.example.com' })).body).toMatch(/^new-side host=shop\.example\.com /);
});

it('forwards to the new side with the original Host, forwarding headers and WebSocket upgrade', async () => {
  const forwarded = await acts.forwardProxy({ host, container: oldName, to: `http://${newAddress}:80`, app: 'it-fwd', env: 'old' });
  expect(forwarded.changed).toBe(true);
  await drained(oldName, forwarded.previousWorkers);
  const plain = await get(oldPort, '/some/page?x=1', { Host: 'shop.example.com' });
  expect(plain.status).toBe(200);
  expect(plain.body).toMatch(/^new-side host=shop\.example\.com xff=\d+\.\d+\.\d+\.\d+ proto=http upgrade= connection=\n$/);
  const ws = await get(oldPort, '/ws', { Host: 'shop.example.com', Upgrade: 'websocket', Connection: 'Upgrade' });
  expect(ws.body).toMatch(/upgrade=websocket connection=upgrade\n$/);
  // the ACME path is still answered by the old proxy itself
  expect(await get(oldPort, '/.well-known/acme-challenge/tok1', { Host: 'shop.example.com' })).toEqual({ status: 200, body: 'token-of-old\n' });
  // the own config is kept beside the live one
  expect(await sh(oldName, `cat ${keptConfigPath()}`)).toBe(ownConfig);
  expect(await sh(oldName, `head -n 1 ${PROXY_CONFIG_PATH}`)).toMatch(/^# temporal-runbooks: forward to /);
});

it('a second forward changes nothing and keeps the own config, not the forward one', async () => {
  expect(await acts.forwardProxy({ host, container: oldName, to: `http://${newAddress}:80`, app: 'it-fwd', env: 'old' })).toEqual({ changed: false });
  expect(await sh(oldName, `cat ${keptConfigPath()}`)).toBe(ownConfig);
  expect((await get(oldPort, '/', { Host: 'shop.example.com' })).body).toMatch(/^new-side /);
});

it('a bad target is refused before anything changes', async () => {
  const err = await acts.forwardProxy({ host, container: oldName, to: 'https://10.0.0.7', app: 'it-fwd', env: 'old' }).catch((e) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  expect(await sh(oldName, `cat ${keptConfigPath()}`)).toBe(ownConfig);
});

it('unforward puts the own config back and removes the copy; again is nothing to do', async () => {
  const back = await acts.unforwardProxy({ host, container: oldName });
  expect(back.changed).toBe(true);
  await drained(oldName, back.previousWorkers);
  expect(await get(oldPort, '/', { Host: 'shop.example.com' })).toEqual({ status: 200, body: 'old-side host=shop.example.com\n' });
  expect(await sh(oldName, `cat ${PROXY_CONFIG_PATH}`)).toBe(ownConfig);
  expect(await sh(oldName, `ls /etc/nginx/conf.d`)).toBe('default.conf\n');
  expect(await acts.unforwardProxy({ host, container: oldName })).toEqual({ changed: false });
  expect((await get(oldPort, '/', { Host: 'shop.example.com' })).body).toBe('old-side host=shop.example.com\n');
});
