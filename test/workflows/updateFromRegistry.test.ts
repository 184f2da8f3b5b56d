// updateFromRegistry on the time-skipping server with mocked activities: the tracked tag's digest
// is what runs (nothing happens), a new digest (a child rollingUpdate to <tag>@<digest>, its bake by
// default), a broken one (the child rolls the fleet back, this run fails and alerts), bad input.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJson } from '../../client/history-json';
import type { UpdateFromRegistryInput } from '../../common/inputs';
import { parseInventory } from '../../common/inventory';
import { buildUpdatePlan } from '../../common/plan';
import type { FleetContainer, RollingUpdateInput, TrackedUpdate } from '../../common/types';
import type { UpdateFromRegistryResult } from '../../workflows/updateFromRegistry';
import { mockActivities, TEST_INVENTORY_YAML, type MockActivities } from '../helpers/mock-activities';
import { testWorker, timeSkippingEnv, workflowBundle, workflowFailure } from '../helpers/workflow-env';

jest.setTimeout(60_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const inventory = parseInventory(TEST_INVENTORY_YAML);
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const fleet: FleetContainer[] = [
  { host: 'one', name: 'shop-production-web-1', replica: 1, version: 'v1', image: 'reg:5000/shop:v1', state: 'running' },
  { host: 'two', name: 'shop-production-web-2', replica: 2, version: 'v1', image: 'reg:5000/shop:v1', state: 'running' },
];
const tracked = (current: boolean): TrackedUpdate => ({ app: 'shop', env: 'production', repository: 'reg:5000/shop', tag: 'v1', digest: DIGEST, version: `v1@${DIGEST}`, running: ['v1'], current });

function mocks(current: boolean, over: Parameters<typeof mockActivities>[0] = {}): MockActivities {
  return mockActivities({
    resolveTrackedUpdate: async () => tracked(current),
    // the backup before an update is the nightly backup's business (tested there)
    resolveUpdatePlan: async (input: RollingUpdateInput) => buildUpdatePlan(inventory, { ...input, backup: false }, fleet, 'run-test'),
    ...over,
  });
}

async function run(m: MockActivities, input: Partial<UpdateFromRegistryInput> = {}): Promise<WorkflowHandle> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, m.activities);
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start('updateFromRegistry', { taskQueue, workflowId: `updateFromRegistry/shop/production/${randomUUID()}`, args: [{ app: 'shop', env: 'production', ...input }] });
    await handle.result().catch(() => undefined);
    return handle;
  });
}

it('the tracked tag is the digest that runs: nothing else happens', async () => {
  const m = mocks(true);
  const result = (await (await run(m)).result()) as UpdateFromRegistryResult;
  expect(result).toMatchObject({ updated: false, digest: DIGEST, current: true });
  expect(m.names()).toEqual(['resolveTrackedUpdate']);
});

it('a new digest: a rollingUpdate to <tag>@<digest>, with a bake by default; the replicas are named after the digest', async () => {
  const m = mocks(false);
  const handle = await run(m);
  const result = (await handle.result()) as UpdateFromRegistryResult;
  expect(result.updated).toBe(true);
  expect(result.update).toMatchObject({ version: `v1@${DIGEST}`, fromVersion: 'v1' });
  expect(result.update!.replicas.map((r) => r.container)).toEqual(['shop-production-web-1-v1-abababababab', 'shop-production-web-2-v1-abababababab']);
  const plan = m.calls.find((c) => c.name === 'resolveUpdatePlan')!.args as RollingUpdateInput;
  expect(plan).toMatchObject({ version: `v1@${DIGEST}`, canary: { bake: '1m' } });
  const pulled = m.calls.filter((c) => c.name === 'pullImage').map((c) => (c.args as { image: string }).image);
  expect(new Set(pulled)).toEqual(new Set([`reg:5000/shop@${DIGEST}`]));
  expect(m.called('bakeCanary')).toBe(1);
  // RECORD_UPDATE_FROM_REGISTRY_HISTORIES=1 keeps this run as a replay fixture
  if (process.env.RECORD_UPDATE_FROM_REGISTRY_HISTORIES === '1') {
    writeFileSync(path.join(__dirname, '../replay/histories/updateFromRegistry-new-digest-rolled-out.json'), JSON.stringify(historyToJson(await handle.fetchHistory()), null, 1) + '\n');
  }
});

it('a broken digest: the rollout rolls the fleet back, this run fails with why and alerts', async () => {
  const m = mocks(false, {
    waitHealthy: async (req: { container: string }) => {
      if (req.container.endsWith('-abababababab')) throw ApplicationFailure.nonRetryable(`container ${req.container} is unhealthy`, 'ContainerUnhealthy');
      return { container: req.container, health: 'healthy', seconds: 1 };
    },
  });
  const failure = await workflowFailure((await run(m, { canary: 'none' })).result());
  expect(failure.message).toMatch(/is unhealthy[\s\S]*rollback: nothing had been switched; every replica still runs v1/);
  const alerts = m.calls.filter((c) => c.name === 'notifyRunbookEvent').map((c) => c.args as { event: { kind: string; runbook?: string } });
  expect(alerts.some((a) => JSON.stringify(a).includes('"failed"') && JSON.stringify(a).includes('updateFromRegistry'))).toBe(true);
});

it('bad input is refused before anything is asked', async () => {
  const m = mocks(false);
  const failure = await workflowFailure((await run(m, { tag: `v1@${DIGEST}` })).result());
  expect(failure.message).toMatch(/^invalid input: tag: .* is not an image tag/);
  expect(m.names()).toEqual([]);
});

it('a digest whose rollout failed before is not rolled out (nor alerted) again until the tag moves', async () => {
  const m = mocks(false, { resolveTrackedUpdate: async () => ({ ...tracked(false), failedBefore: { workflowId: 'rollingUpdate/shop/production', runId: 'r1', at: '2026-11-27T03:00:00Z' } }) });
  const result = (await (await run(m)).result()) as UpdateFromRegistryResult;
  expect(result).toMatchObject({ updated: false, failedBefore: { runId: 'r1' } });
  expect(m.names()).toEqual(['resolveTrackedUpdate']);
});
