// Watchtower's job with gates, end to end: the app tracks the tag `tracked` of demo-app in the local
// registry. The update schedule (`runbook schedule updates`) is triggered: the digest that runs is
// left alone; a new digest pushed for the tag (v2's image) is rolled out while the proxy is read
// every 50 ms, never failing, and the replicas record the digest; a broken one pushed next is rolled back, the app
// keeps serving v2, and the failure is posted to the app's webhook. Port 18290 and trapp-* are this file's.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import type { UpdateFromRegistryResult } from '../../workflows/updateFromRegistry';
import { e2eSetup, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { sleep, VersionSampler } from '../helpers/e2e-app';
import { DOCKER_SOCK, REGISTRY, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const APP = 'trapp';
const ENV = 'production';
const PROXY = 'http://127.0.0.1:18290';
const TRACKED = `${REGISTRY}/demo-app:tracked`;
const docker = new Docker({ socketPath: DOCKER_SOCK });
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
let hook: http.Server;
const posted: { kind?: string; runbook?: string; text: string }[] = [];
const figures: string[] = [];

const INVENTORY = `
hosts:
  local:
    docker: { socketPath: "\${DOCKER_SOCK}" }
    minFreeDiskMb: 256
apps:
  ${APP}:
    image: ${REGISTRY}/demo-app
    port: 8080
    healthCheck: { path: /health, timeoutSeconds: 20 }
    proxyImage: ${REGISTRY}/nginx:1
    smokeTest: { path: /health }
    stopTimeoutSeconds: 5
    notify:
      webhooks: [{ urlFile: "\${SECRETS_DIR}/webhook-url" }]
    environments:
      ${ENV}:
        hosts: [local]
        replicas: 2
        version: tracked
        proxy: { hostPort: 18290 }
        approvers: [alice]
`;

/** What the registry serves as `tracked` from now on: the image of `from` (v1, v2, broken), pushed. */
async function pushTracked(from: string): Promise<string> {
  await docker.getImage(`${REGISTRY}/demo-app:${from}`).tag({ repo: `${REGISTRY}/demo-app`, tag: 'tracked' });
  // the local registry takes anonymous pushes; the engine still wants an (empty) X-Registry-Auth
  const stream = await docker.getImage(TRACKED).push({ authconfig: { serveraddress: REGISTRY } });
  const events: { aux?: { Digest?: string }; error?: string }[] = await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: unknown[]) => (err ? reject(err) : resolve(out as never))));
  const failed = events.find((e) => e.error);
  if (failed) throw new Error(`push of ${TRACKED}: ${failed.error}`);
  const digest = events.find((e) => e.aux?.Digest)?.aux?.Digest;
  if (!digest) throw new Error(`push of ${TRACKED} reported no digest`);
  return digest;
}

async function cli(args: string[], what: string) {
  const r = await runCli(args, setup.env);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  return r;
}

/** Triggers the schedule and waits for that run; its result, or its failure's message. */
async function check(): Promise<{ result?: UpdateFromRegistryResult; failure?: string }> {
  const r = await cli(['schedule', 'updates', APP, '--env', ENV, '--trigger'], 'trigger');
  const workflowId = /started (\S+)/.exec(r.stdout)![1];
  try {
    return { result: (await client.workflow.getHandle(workflowId).result()) as UpdateFromRegistryResult };
  } catch (err) {
    return { failure: String((err as { cause?: Error }).cause?.message ?? err) };
  }
}

async function versions(): Promise<string[]> {
  const list = await docker.listContainers({ filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } });
  return [...new Set(list.map((c) => c.Labels['runbook.version']))];
}

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  await docker.getVolume(`${APP}-${ENV}-proxy-tls`).remove().catch(() => undefined);
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await client.schedule.getHandle(`updateFromRegistry/${APP}/${ENV}`).delete().catch(() => undefined);
  for (const id of [`rollingUpdate/${APP}/${ENV}`, `firstDeploy/${APP}/${ENV}`, `lock/${APP}/${ENV}`]) await client.workflow.getHandle(id).terminate('e2e: left over').catch(() => undefined);
  await removeEverything();
  hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const event = (() => {
        try {
          return JSON.parse(body) as { event?: { kind?: string }; runbook?: string };
        } catch {
          return {};
        }
      })();
      posted.push({ kind: event.event?.kind, runbook: event.runbook, text: body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  const template = path.join(os.tmpdir(), `updates-inventory-${process.pid}.yaml`);
  writeFileSync(template, INVENTORY);
  setup = e2eSetup(template, `e2e-updates-${randomUUID()}`);
  writeFileSync(path.join(setup.dir, 'webhook-url'), `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook\n`, { mode: 0o600 });
  worker = new WorkerProcess(setup.env);
  await worker.start();
});

afterAll(async () => {
  // eslint-disable-next-line no-console
  console.log(`updates e2e:\n  ${figures.join('\n  ')}`);
  await client?.schedule.getHandle(`updateFromRegistry/${APP}/${ENV}`).delete().catch(() => undefined);
  await worker?.kill('SIGTERM');
  await connection?.close();
  await removeEverything();
  hook?.close();
});

it('the digest that runs is left alone', async () => {
  await pushTracked('v1');
  await cli(['deploy', APP, '--env', ENV], 'deploy');
  const created = await cli(['schedule', 'updates', APP, '--env', ENV, '--every', '1h', '--canary', 'none'], 'schedule');
  expect(created.stdout).toMatch(/created updateFromRegistry\/trapp\/production/);
  const { result, failure } = await check();
  expect(failure).toBeUndefined();
  expect(result).toMatchObject({ updated: false, current: true, tag: 'tracked', running: ['tracked'] });
  expect(await versions()).toEqual(['tracked']);
});

it('a new digest pushed for the tag is rolled out while the proxy is read, never failing; the replicas record the digest', async () => {
  const digest = await pushTracked('v2');
  // the version through the proxy every 50 ms: a failed request would show as "HTTP <status>"
  const served = new VersionSampler(PROXY);
  const t0 = Date.now();
  const { result, failure } = await check();
  await sleep(500);
  const seen = await served.stop();
  expect(failure).toBeUndefined();
  figures.push(`new digest rolled out in ${((Date.now() - t0) / 1000).toFixed(1)} s; served ${seen.join(' → ')}`);
  expect(result).toMatchObject({ updated: true, digest, version: `tracked@${digest}` });
  // v1 until the first switch, v2 after the last (the host's two replicas serve both between them), never an error
  expect([seen[0], seen.at(-1), seen.every((v) => v === 'v1' || v === 'v2')]).toEqual(['v1', 'v2', true]);
  expect(await versions()).toEqual([`tracked@${digest}`]);
  const [replica] = await docker.listContainers({ filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } });
  expect(replica.Image).toBe(`${REGISTRY}/demo-app@${digest}`);
  expect(replica.Names[0]).toMatch(new RegExp(`^/trapp-production-web-\\d-tracked-${digest.slice(7, 19)}$`));
  // asked again: nothing to do
  expect((await check()).result).toMatchObject({ updated: false, current: true });
});

it('a broken digest is rolled back: the app keeps serving v2, the failure is posted once, and the next check leaves it alone', async () => {
  const good = await versions();
  await pushTracked('broken');
  const served = new VersionSampler(PROXY);
  const { result, failure } = await check();
  const seen = await served.stop();
  expect(result).toBeUndefined();
  expect(failure).toMatch(/unhealthy/);
  figures.push(`broken digest: ${failure!.split('\n')[0]}`);
  expect(seen).toEqual(['v2']);
  expect(await versions()).toEqual(good);
  await waitForPost();
  expect(posted.some((p) => p.kind === 'failed' && p.runbook === 'updateFromRegistry')).toBe(true);
  // the next check finds the same broken digest: not rolled out (nor alerted) again
  const alerts = posted.length;
  const again = await check();
  expect(again.result).toMatchObject({ updated: false, current: false, failedBefore: { workflowId: `rollingUpdate/${APP}/${ENV}` } });
  expect(posted.length).toBe(alerts);
  expect(await versions()).toEqual(good);
  // the tag back on a good image for whoever runs next
  await pushTracked('v2');
});

async function waitForPost(): Promise<void> {
  for (let i = 0; i < 100 && !posted.some((p) => p.kind === 'failed'); i++) await sleep(100);
}
