// rollingUpdate end to end: the dev server, a real worker process, the CLI, two independent Docker
// engines (this machine's, and host 2 in its own network namespace, reached over SSH).
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { httpGet } from '../../activities/health';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { e2eSetup, historyText, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { DOCKER_SOCK, RUNBOOK_HOME, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const HOST2_ADDRESS = '10.201.0.2';
const HOST2_SOCK = '/run/temporal-runbooks/docker2.sock';
const engines = { local: new Docker({ socketPath: DOCKER_SOCK }), host2: new Docker({ socketPath: HOST2_SOCK }) };
const proxies = { local: 'http://127.0.0.1:18220', host2: `http://${HOST2_ADDRESS}:18220` };
const ID = 'rollingUpdate/ruapp/production';
const taskQueue = `e2e-ru-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
const runs: { workflowId: string; runId: string }[] = [];
const timings: Record<string, string> = {};

async function web(): Promise<{ host: string; name: string; version: string; state: string }[]> {
  const all = [];
  for (const [host, d] of Object.entries(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: ['runbook.app=ruapp', 'runbook.role=web'] } })) {
      all.push({ host, name: c.Names[0].slice(1), version: c.Labels['runbook.version'], state: c.State });
    }
  }
  return all.sort((a, b) => a.name.localeCompare(b.name));
}

async function versionsServed(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [host, url] of Object.entries(proxies)) out[host] = (await httpGet(`${url}/version`)).body;
  return out;
}

async function removeEverything(): Promise<void> {
  for (const d of Object.values(engines)) {
    for (const c of await d.listContainers({ all: true, filters: { label: ['runbook.app=ruapp'] } })) await d.getContainer(c.Id).remove({ force: true });
    for (const n of await d.listNetworks({ filters: { name: ['ruapp-'] } })) await d.getNetwork(n.Id).remove().catch(() => undefined);
  }
}

async function lastRun(): Promise<void> {
  const d = await client.workflow.getHandle(ID).describe();
  runs.push({ workflowId: ID, runId: d.runId });
}

async function waitForStep(pred: (st: RunbookStatus) => boolean, what: string): Promise<RunbookStatus> {
  const handle = client.workflow.getHandle(ID);
  for (let i = 0; i < 2400; i++) {
    const st = await handle.query(statusQuery).catch(() => undefined);
    if (st && pred(st)) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  for (const id of [ID, 'firstDeploy/ruapp/production', 'lock/ruapp/production']) await client.workflow.getHandle(id).terminate('left over').catch(() => undefined);
  await removeEverything();
  // host 2's values go into the template first; e2eSetup renders the rest
  const template = path.join(os.tmpdir(), `rolling-inventory-${process.pid}.yaml`);
  writeFileSync(
    template,
    readFileSync(path.join(__dirname, 'rolling-inventory.yaml'), 'utf8')
      .replaceAll('${HOST2_ADDRESS}', HOST2_ADDRESS)
      .replaceAll('${HOST2_DOCKER_SOCK}', HOST2_SOCK)
      .replaceAll('${HOST2_FINGERPRINT}', readFileSync(`${RUNBOOK_HOME}/host2/ssh/host_fingerprint`, 'utf8').trim()),
  );
  setup = e2eSetup(template, taskQueue);
  worker = new WorkerProcess(setup.env);
  await worker.start();
  const t0 = Date.now();
  const r = await runCli(['deploy', 'ruapp', '--env', 'production'], setup.env);
  if (r.code !== 0) throw new Error(`deploy failed: ${r.stdout}\n${r.stderr}`);
  timings.deploy = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
});

afterAll(async () => {
  await worker?.kill('SIGTERM');
  for (const id of [ID, 'lock/ruapp/production']) await client?.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await connection?.close();
  await removeEverything();
  // eslint-disable-next-line no-console
  console.log(`timings: ${JSON.stringify(timings, null, 1)}`);
});

it('deployed v1 on both engines: 2 replicas each, both proxies serve v1', async () => {
  expect((await web()).map((c) => `${c.host} ${c.name} ${c.version} ${c.state}`)).toEqual([
    'local ruapp-production-web-1 v1 running',
    'local ruapp-production-web-2 v1 running',
    'host2 ruapp-production-web-3 v1 running',
    'host2 ruapp-production-web-4 v1 running',
  ]);
  expect(await versionsServed()).toEqual({ local: 'v1', host2: 'v1' });
});

it('v1 → v2 across the two hosts: every replica on v2, both proxies serve v2, nothing left behind', async () => {
  const t0 = Date.now();
  const r = await runCli(['update', 'ruapp', '--env', 'production', '--version', 'v2', '--no-backup'], setup.env);
  expect(r.stdout).toMatch(/rollingUpdate\/ruapp\/production: succeeded/);
  expect(r.code).toBe(0);
  timings['update v1→v2 (4 replicas, batch 1)'] = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  expect((await web()).map((c) => `${c.host} ${c.name} ${c.version}`)).toEqual([
    'local ruapp-production-web-1-v2 v2',
    'local ruapp-production-web-2-v2 v2',
    'host2 ruapp-production-web-3-v2 v2',
    'host2 ruapp-production-web-4-v2 v2',
  ]);
  expect(await versionsServed()).toEqual({ local: 'v2', host2: 'v2' });
  await lastRun();
});

it('the same version again is a no-op', async () => {
  const r = await runCli(['update', 'ruapp', '--env', 'production', '--version', 'v2', '--no-backup'], setup.env);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/nothing to change/);
  await lastRun();
});

it('v2 → broken fails with the health diagnostics and every replica still runs v2', async () => {
  const r = await runCli(['update', 'ruapp', '--env', 'production', '--version', 'broken', '--batch', '2', '--no-backup'], setup.env);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/rollingUpdate\/ruapp\/production: FAILED/);
  expect(r.stdout).toMatch(/ruapp-production-web-\d-broken on local is unhealthy after/);
  expect(r.stdout).toMatch(/health log:/);
  expect(r.stdout).toMatch(/every replica still runs v2/);
  expect((await web()).map((c) => c.version)).toEqual(['v2', 'v2', 'v2', 'v2']);
  expect(await versionsServed()).toEqual({ local: 'v2', host2: 'v2' });
  await lastRun();
});

it('a canary rejected through the approval signal rolls the first batch back, on its host', async () => {
  const started = await runCli(['update', 'ruapp', '--env', 'production', '--version', 'v1', '--batch', '2', '--canary', 'approve', '--no-backup', '--detach'], setup.env);
  expect(started.code).toBe(0);
  await waitForStep((st) => st.pendingGates.some((g) => g.gate === 'canary'), 'the canary gate');
  expect((await web()).map((c) => `${c.host} ${c.version}`)).toEqual(['local v1', 'local v1', 'host2 v2', 'host2 v2']);
  expect(await versionsServed()).toEqual({ local: 'v1', host2: 'v2' });
  const rejected = await runCli(['reject', ID, '--gate', 'canary', '--by', 'alice', '--comment', 'p99 up'], setup.env);
  expect(rejected.code).toBe(0);
  const watched = await runCli(['watch', ID], setup.env);
  expect(watched.code).toBe(1);
  expect(watched.stdout).toMatch(/canary rejected by alice/);
  expect(watched.stdout).toMatch(/rolled back 2 replica\(s\) on local to v2; every replica runs v2 and serves/);
  expect((await web()).map((c) => `${c.host} ${c.version} ${c.state}`)).toEqual(['local v2 running', 'local v2 running', 'host2 v2 running', 'host2 v2 running']);
  expect(await versionsServed()).toEqual({ local: 'v2', host2: 'v2' });
  await lastRun();
});

it('a worker SIGKILLed in the middle of a batch and restarted ends with a consistent fleet and no orphans', async () => {
  const started = await runCli(['update', 'ruapp', '--env', 'production', '--version', 'v1', '--no-backup', '--detach'], setup.env);
  expect(started.code).toBe(0);
  await waitForStep((st) => st.step.startsWith('batch 2/4'), 'batch 2');
  await worker.kill('SIGKILL');
  worker = new WorkerProcess(setup.env);
  await worker.start();
  const t0 = Date.now();
  const watched = await runCli(['watch', ID], setup.env);
  timings['recovery after SIGKILL'] = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const fleet = await web();
  // all new (it finished) or all rolled back — never mixed, one container per replica
  expect(fleet).toHaveLength(4);
  expect(new Set(fleet.map((c) => c.version)).size).toBe(1);
  expect(fleet.every((c) => c.state === 'running')).toBe(true);
  const version = fleet[0].version;
  expect(watched.code).toBe(version === 'v1' ? 0 : 1);
  expect(await versionsServed()).toEqual({ local: version, host2: version });
  await lastRun();
});

it('runbook rollback goes back to the version before the running one', async () => {
  const before = (await web())[0].version;
  const r = await runCli(['rollback', 'ruapp', '--env', 'production', ...(before === 'v1' ? [] : ['--to', 'v1'])], setup.env);
  expect(r.code).toBe(0);
  const expected = before === 'v1' ? 'v2' : 'v1';
  expect((await web()).map((c) => c.version)).toEqual([expected, expected, expected, expected]);
  expect(await versionsServed()).toEqual({ local: expected, host2: expected });
  await lastRun();
});

it('no secret in any history', async () => {
  for (const run of runs) {
    const text = await historyText(client, run.workflowId, run.runId);
    for (const secret of setup.secrets) expect(text).not.toContain(secret);
  }
});
