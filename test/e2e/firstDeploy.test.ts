// firstDeploy end to end: the dev server, a real worker process, the `runbook` CLI, the real engine
// (local socket and over SSH), the local registry. Each run is checked against the engine itself.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { httpGet } from '../../activities/health';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { e2eSetup, historyText, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
const runs: { workflowId: string; runId: string }[] = [];

async function appContainers(env: string, role?: string) {
  const label = ['runbook.app=e2eapp', `runbook.env=${env}`, ...(role ? [`runbook.role=${role}`] : [])];
  return docker.listContainers({ all: true, filters: { label } });
}

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: ['runbook.app=e2eapp'] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: ['e2eapp-'] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  const { Volumes } = await docker.listVolumes();
  for (const v of Volumes.filter((v) => v.Name.startsWith('e2eapp-'))) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

async function lastRunOf(workflowId: string): Promise<void> {
  const d = await client.workflow.getHandle(workflowId).describe();
  runs.push({ workflowId, runId: d.runId });
}

/** Runs left over by an interrupted earlier test run (e.g. one waiting for approval). */
async function terminateLeftoverRuns(): Promise<void> {
  for (const env of ['production', 'broken', 'crash', 'edge']) {
    for (const id of [`firstDeploy/e2eapp/${env}`, `lock/e2eapp/${env}`]) {
      await client.workflow.getHandle(id).terminate('left over by an earlier test run').catch(() => undefined);
    }
  }
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await terminateLeftoverRuns();
  await removeEverything();
  setup = e2eSetup(path.join(__dirname, 'inventory.yaml'), taskQueue);
  worker = new WorkerProcess(setup.env);
  await worker.start();
});

afterAll(async () => {
  await worker?.kill('SIGTERM');
  await terminateLeftoverRuns();
  await connection?.close();
  await removeEverything();
});

it('dry run prints the plan and preflight and changes nothing', async () => {
  const r = await runCli(['deploy', 'e2eapp', '--env', 'production', '--dry-run'], setup.env);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/plan: e2eapp v1 → production \(image 127\.0\.0\.1:5000\/demo-app:v1\)/);
  expect(r.stdout).toMatch(/replica: e2eapp-production-web-2 on local/);
  expect(r.stdout).toMatch(/\[ok {2}\] port 127\.0\.0\.1:18180: free/);
  expect(r.stdout).toMatch(/dry run: nothing was changed/);
  expect(await appContainers('production')).toEqual([]);
  await lastRunOf('firstDeploy/e2eapp/production');
});

let firstIds: string[] = [];

it('deploys postgres + 2 replicas + nginx; the proxy serves the deployed version', async () => {
  const r = await runCli(['deploy', 'e2eapp', '--env', 'production'], setup.env);
  expect(r.stdout).toMatch(/firstDeploy\/e2eapp\/production: succeeded/);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/\[ok {2}\] smoke test/);
  const answer = await httpGet('http://127.0.0.1:18180/version', { hostHeader: 'localhost' });
  expect(answer).toEqual({ status: 200, body: 'v1' });
  const containers = await appContainers('production');
  expect(containers.map((c) => c.Names[0]).sort()).toEqual(
    ['/e2eapp-production-migrate-v1', '/e2eapp-production-postgres', '/e2eapp-production-proxy', '/e2eapp-production-web-1', '/e2eapp-production-web-2'].sort(),
  );
  expect(containers.filter((c) => c.Labels['runbook.role'] !== 'migrate').every((c) => c.State === 'running')).toBe(true);
  firstIds = containers.map((c) => c.Id).sort();
  await lastRunOf('firstDeploy/e2eapp/production');
});

it('a second run is a no-op: same containers, same IDs', async () => {
  const r = await runCli(['deploy', 'e2eapp', '--env', 'production'], setup.env);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/nothing to change: already deployed as planned/);
  expect((await appContainers('production')).map((c) => c.Id).sort()).toEqual(firstIds);
  await lastRunOf('firstDeploy/e2eapp/production');
});

it('a broken image fails with diagnostics and leaves no app containers, only its volume', async () => {
  const r = await runCli(['deploy', 'e2eapp', '--env', 'broken'], setup.env);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/firstDeploy\/e2eapp\/broken: FAILED/);
  expect(r.stdout).toMatch(/e2eapp-broken-web-\d on local is unhealthy after/);
  expect(r.stdout).toMatch(/health log:/);
  expect(r.stdout).toMatch(/last log lines:/);
  expect(r.stdout).toMatch(/cleanup: removed .*container e2eapp-broken-web-1/);
  expect(r.stdout).toMatch(/volumes kept: e2eapp-broken-pgdata/);
  expect(await appContainers('broken')).toEqual([]);
  await expect(docker.getVolume('e2eapp-broken-pgdata').inspect()).resolves.toBeTruthy();
  await lastRunOf('firstDeploy/e2eapp/broken');
});

it('a worker killed with SIGKILL mid-deploy and restarted finishes with one container per replica', async () => {
  const started = await runCli(['deploy', 'e2eapp', '--env', 'crash', '--detach'], setup.env);
  expect(started.code).toBe(0);
  const handle = client.workflow.getHandle('firstDeploy/e2eapp/crash');
  let status: RunbookStatus | undefined;
  for (let i = 0; i < 600; i++) {
    status = await handle.query(statusQuery).catch(() => undefined);
    if (status && ['dependency postgres', 'pull', 'migrations', 'replicas', 'health'].includes(status.step)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(status?.phase).toBe('running');
  await worker.kill('SIGKILL');
  worker = new WorkerProcess(setup.env);
  await worker.start();
  const watched = await runCli(['watch', 'firstDeploy/e2eapp/crash'], setup.env);
  expect(watched.stdout).toMatch(/firstDeploy\/e2eapp\/crash: succeeded/);
  expect(watched.code).toBe(0);
  const web = await appContainers('crash', 'web');
  expect(web.map((c) => c.Names[0]).sort()).toEqual(['/e2eapp-crash-web-1', '/e2eapp-crash-web-2']);
  expect(await appContainers('crash', 'dependency')).toHaveLength(1);
  expect(await appContainers('crash', 'proxy')).toHaveLength(1);
  expect(await httpGet('http://127.0.0.1:18182/version')).toEqual({ status: 200, body: 'v1' });
  await lastRunOf('firstDeploy/e2eapp/crash');
});

it('deploys to a host over SSH, waiting for go-live approval given through the CLI', async () => {
  const started = await runCli(['deploy', 'e2eapp', '--env', 'edge', '--detach'], setup.env);
  expect(started.code).toBe(0);
  const id = 'firstDeploy/e2eapp/edge';
  for (let i = 0; i < 1200; i++) {
    const st = await client.workflow.getHandle(id).query(statusQuery).catch(() => undefined);
    if (st?.pendingGates.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const listed = await runCli(['list', '--awaiting-approval'], setup.env);
  expect(listed.stdout).toMatch(/^WORKFLOW ID +STATUS +STEP +WAITING +STARTED\n/);
  expect(listed.stdout).toMatch(/\nfirstDeploy\/e2eapp\/edge +RUNNING +approval:go-live +APPROVAL +\d+ (ms|s) ago\n?/);
  const listedJson = JSON.parse((await runCli(['list', '--awaiting-approval', '--json'], setup.env)).stdout) as { workflowId: string; step: string; awaiting: boolean }[];
  expect(listedJson.find((r) => r.workflowId === id)).toMatchObject({ step: 'approval:go-live', awaiting: true });
  const refused = await runCli(['approve', id, '--gate', 'go-live', '--by', 'mallory'], setup.env);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/approve not allowed: "mallory" is not an approver of gate "go-live" \(approvers: alice, bob\)/);
  const approved = await runCli(['approve', id, '--gate', 'go-live', '--by', 'alice', '--comment', 'e2e'], setup.env);
  expect(approved.stdout).toMatch(/approve by alice on gate "go-live": accepted/);
  const watched = await runCli(['watch', id], setup.env);
  expect(watched.code).toBe(0);
  expect(await httpGet('http://127.0.0.1:18183/version')).toEqual({ status: 200, body: 'v2' });
  const status = await runCli(['status', id], setup.env);
  expect(status.stdout).toMatch(/alice approve "go-live" via update: accepted — e2e/);
  await lastRunOf(id);
});

it('no secret value appears in any workflow history', async () => {
  expect(runs.length).toBeGreaterThanOrEqual(6);
  for (const run of runs) {
    const text = await historyText(client, run.workflowId, run.runId);
    expect(text).toContain('e2eapp'); // the scan reads the payloads
    for (const secret of setup.secrets) expect(text.includes(secret)).toBe(false);
  }
});
