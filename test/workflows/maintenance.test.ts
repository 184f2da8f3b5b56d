// maintenanceMode on the time-skipping server with mocked activities: every proxy of the app/env is
// switched under the lock; a locked app/env is refused before any proxy is touched; a proxy that
// refuses fails the run naming it.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJson } from '../../client/history-json';
import type { MaintenanceModeInput } from '../../common/inputs';
import type { MaintenancePlan } from '../../common/plan';
import type { LockAnswer } from '../../common/types';
import type { MaintenanceModeResult } from '../../workflows/maintenanceMode';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
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

const plan: MaintenancePlan = {
  app: 'shop',
  env: 'production',
  proxies: [
    { host: { name: 'one', address: '127.0.0.1', dockerSocket: '/run/test.sock', minFreeDiskMb: 1024 }, container: 'shop-production-proxy' },
    { host: { name: 'two', address: '10.0.0.2', dockerSocket: '/run/two.sock', minFreeDiskMb: 1024 }, container: 'shop-production-proxy' },
  ],
  maintenance: { retryAfterSeconds: 45, pageFile: '/etc/shop/maintenance.html' },
};

async function run(mocks: MockActivities, input: MaintenanceModeInput): Promise<WorkflowHandle> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start('maintenanceMode', { taskQueue, workflowId: `maintenanceMode/shop/production/${randomUUID()}`, args: [input] });
    await handle.result().catch(() => undefined);
    return handle;
  });
}

it('switches every proxy of the app/env under the lock, with the inventory page and Retry-After', async () => {
  const mocks = mockActivities({
    resolveMaintenancePlan: async () => plan,
    proxyMaintenance: async (req: { host: { name: string } }) => ({ changed: req.host.name === 'one' }),
  });
  const handle = await run(mocks, { app: 'shop', env: 'production', on: true, reason: 'migration' });
  expect((await handle.result()) as MaintenanceModeResult).toEqual({
    app: 'shop',
    env: 'production',
    on: true,
    proxies: [
      { host: 'one', container: 'shop-production-proxy', changed: true },
      { host: 'two', container: 'shop-production-proxy', changed: false },
    ],
  });
  expect(mocks.names()).toEqual(['resolveMaintenancePlan', 'acquireLock', 'proxyMaintenance', 'proxyMaintenance', 'releaseLock']);
  // the proxies are switched in parallel: in whichever order they were called
  const reqs = mocks.calls.filter((c) => c.name === 'proxyMaintenance').map((c) => c.args as { host: { name: string } });
  expect(reqs.sort((a, b) => a.host.name.localeCompare(b.host.name))).toEqual(
    plan.proxies.map((p) => ({ host: p.host, container: p.container, app: 'shop', env: 'production', on: true, reason: 'migration', retryAfterSeconds: 45, pageFile: '/etc/shop/maintenance.html' })),
  );
  // RECORD_MAINTENANCE_HISTORIES=1 keeps this run as a replay fixture
  if (process.env.RECORD_MAINTENANCE_HISTORIES === '1') {
    writeFileSync(path.join(__dirname, '../replay/histories/maintenanceMode-on-two-proxies.json'), JSON.stringify(historyToJson(await handle.fetchHistory()), null, 1) + '\n');
  }
});

it('refused while another runbook holds the lock: no proxy is touched', async () => {
  const mocks = mockActivities({
    resolveMaintenancePlan: async () => plan,
    acquireLock: async (): Promise<LockAnswer> => ({ acquired: false, holder: { workflowId: 'restoreBackup/shop/production', runId: 'r1', runbook: 'restoreBackup', since: '2027-01-01T00:00:00.000Z' } }),
  });
  const f = await workflowFailure((await run(mocks, { app: 'shop', env: 'production', on: false })).result());
  expect(f.message).toMatch(/^shop\/production is locked by restoreBackup \(restoreBackup\/shop\/production, run r1\) since .*; nothing was changed/);
  expect(mocks.called('proxyMaintenance')).toBe(0);
});

it('a proxy that refuses fails the run with its reason; bad input fails before any activity', async () => {
  const mocks = mockActivities({
    resolveMaintenancePlan: async () => plan,
    proxyMaintenance: async (req: { host: { name: string } }) => {
      if (req.host.name === 'two') throw ApplicationFailure.nonRetryable('shop-production-proxy on two: the proxy config does not include the maintenance snippets', 'ProxyMaintenanceUnsupported');
      return { changed: true };
    },
  });
  const f = await workflowFailure((await run(mocks, { app: 'shop', env: 'production', on: true })).result());
  expect(f.message).toMatch(/on two: the proxy config does not include the maintenance snippets/);
  const bad = mockActivities();
  const g = await workflowFailure((await run(bad, { app: 'shop', env: 'production', on: 'yes' } as unknown as MaintenanceModeInput)).result());
  expect(g.message).toMatch(/invalid input: on: /);
  expect(bad.calls).toEqual([]);
});
