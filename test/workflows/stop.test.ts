// stopApp on the time-skipping server with mocked activities: containers go on every host, volumes
// stay; with removeVolumes the "remove-volumes" gate comes before anything stops; rejected, nothing
// changed.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJson } from '../../client/history-json';
import type { StopAppInput } from '../../common/inputs';
import type { StopPlan } from '../../common/plan';
import type { StopAppResult } from '../../workflows/stopApp';
import { approveSignal, rejectSignal } from '../../workflows/lib/definitions';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { settled, testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure } from '../helpers/workflow-env';

jest.setTimeout(60_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const host = (name: string, address: string) => ({ name, address, dockerSocket: `/run/${name}.sock`, minFreeDiskMb: 1024 });
const plan: StopPlan = {
  app: 'shop',
  env: 'production',
  hosts: [host('one', '127.0.0.1'), host('two', '10.0.0.2')],
  volumes: [
    { host: 'one', name: 'shop-production-pgdata' },
    { host: 'one', name: 'shop-production-proxy-tls' },
    { host: 'two', name: 'shop-production-proxy-tls' },
  ],
  stopTimeoutSeconds: 30,
  approvals: { approvers: ['alice', 'bob'], minApprovals: 1 },
};

function stopMocks(): MockActivities {
  return mockActivities({
    resolveStopPlan: async () => plan,
    listVolumes: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, existing: req.names }),
    removeAppContainers: async (req: { host: { name: string } }) => ({
      host: req.host.name,
      removed: [
        { name: 'shop-production-proxy', role: 'proxy' },
        { name: 'shop-production-web-1-v2', role: 'web' },
        ...(req.host.name === 'one' ? [{ name: 'shop-production-postgres', role: 'dependency' }] : []),
      ],
      networks: req.host.name === 'one' ? ['shop-production'] : [],
    }),
    removeVolumes: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, removed: req.names }),
  });
}

async function run<T>(mocks: MockActivities, input: StopAppInput, drive: (h: WorkflowHandle) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(async () => drive(await env.client.workflow.start('stopApp', { taskQueue, workflowId: `stopApp/shop/production/${randomUUID()}`, args: [input] })));
}

it('stops every host with the grace period, under the lock; the volumes are kept', async () => {
  const mocks = stopMocks();
  const { result, history } = await run(mocks, { app: 'shop', env: 'production' }, async (h) => ({ result: (await h.result()) as StopAppResult, history: await h.fetchHistory() }));
  expect(mocks.names()).toEqual(['resolveStopPlan', 'acquireLock', 'listVolumes', 'listVolumes', 'removeAppContainers', 'removeAppContainers', 'releaseLock']);
  expect(mocks.calls.filter((c) => c.name === 'removeAppContainers').map((c) => (c.args as { timeoutSeconds: number }).timeoutSeconds)).toEqual([30, 30]);
  expect(result.hosts.map((h) => [h.host, h.removed.length])).toEqual([['one', 3], ['two', 2]]);
  expect(result.volumes).toEqual(plan.volumes.map((v) => ({ ...v, removed: false })));
  if (process.env.RECORD_STOP_HISTORIES === '1') writeFileSync(path.join(__dirname, '../replay/histories/stopApp-volumes-kept.json'), JSON.stringify(historyToJson(history), null, 1) + '\n');
});

it('removeVolumes: the gate lists every volume before anything stops; approved, they are removed after the containers', async () => {
  const mocks = stopMocks();
  const result = await run(mocks, { app: 'shop', env: 'production', removeVolumes: true }, async (h) => {
    const st = await waitForGate(h, 'remove-volumes');
    expect(st.pendingGates[0].description).toMatch(/REMOVE its volumes, the data in them: shop-production-pgdata on one, shop-production-proxy-tls on one, shop-production-proxy-tls on two/);
    expect(mocks.called('removeAppContainers')).toBe(0);
    await h.signal(approveSignal, { gate: 'remove-volumes', by: 'bob' });
    return (await settled(h)) as StopAppResult;
  });
  const order = mocks.names().filter((n) => ['removeAppContainers', 'removeVolumes'].includes(n));
  expect(order).toEqual(['removeAppContainers', 'removeAppContainers', 'removeVolumes', 'removeVolumes']);
  expect(result.volumes.every((v) => v.removed)).toBe(true);
});

it('removeVolumes rejected: the run fails and nothing was changed', async () => {
  const mocks = stopMocks();
  const f = await run(mocks, { app: 'shop', env: 'production', removeVolumes: true }, async (h) => {
    await waitForGate(h, 'remove-volumes');
    await h.signal(rejectSignal, { gate: 'remove-volumes', by: 'alice' });
    return workflowFailure(settled(h));
  });
  expect(f.message).toBe('removing the volumes of shop/production was rejected by alice; nothing was changed');
  expect(mocks.called('removeAppContainers') + mocks.called('removeVolumes')).toBe(0);
});
