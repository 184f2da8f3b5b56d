// housekeeping on the time-skipping server with mocked activities: per host, the repository's old tags
// are removed under the lock and the rest kept with reasons; an image the engine refuses (in use) is
// reported kept; a dry run removes nothing and takes no lock; a locked app/env is refused untouched.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { HousekeepingListing } from '../../activities/housekeeping';
import { historyToJson } from '../../client/history-json';
import type { HostContainer, RepositoryImage } from '../../common/housekeeping';
import type { HousekeepingInput } from '../../common/inputs';
import type { LockAnswer } from '../../common/types';
import type { HousekeepingResult } from '../../workflows/housekeeping';
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

const REPO = 'reg:5000/shop';
const image = (tag: string, created: number): RepositoryImage => ({ id: `sha256:${tag}`, references: [`${REPO}:${tag}`], created, size: 100 * created });
const container = (name: string, tag: string, state: string): HostContainer => ({ name, imageId: `sha256:${tag}`, state, labels: {} });

/** Host one: v3 runs, v4 is newer and unused, v1 and v2 are old. Host two: v2 runs, a stopped job uses v1. */
const LISTINGS: Record<string, HousekeepingListing> = {
  one: { host: 'one', images: [image('v1', 1), image('v2', 2), image('v3', 3), image('v4', 4)], containers: [container('shop-production-web-1', 'v3', 'running')] },
  two: { host: 'two', images: [image('v1', 1), image('v2', 2)], containers: [container('shop-production-web-1', 'v2', 'running'), container('old-job', 'v1', 'exited')] },
};
const disk = (imagesSize: number) => ({
  images: { count: 4, size: imagesSize, reclaimable: 0 },
  containers: { count: 1, size: 10, reclaimable: 0 },
  volumes: { count: 1, size: 50, reclaimable: 0 },
  buildCache: { count: 0, size: 0, reclaimable: 0 },
});

function housekeepingMocks(overrides: Parameters<typeof mockActivities>[0] = {}): MockActivities {
  let reads = 0;
  return mockActivities({
    listHousekeepingInventory: async (req: { host: { name: string } }) => LISTINGS[req.host.name],
    diskUsage: async (req: { host: { name: string } }) => ({ host: req.host.name, disk: disk(reads++ < 2 ? 1000 : 700) }),
    removeRepositoryImages: async (req: { host: { name: string }; images: { id: string; references: string[] }[] }) => ({
      host: req.host.name,
      // v2 on one got a container between the listing and the removal: the engine refuses it
      removals: req.images.map((i) =>
        i.id === 'sha256:v2'
          ? { id: i.id, references: i.references, outcome: 'in use' as const, deleted: false, reason: 'conflict: unable to remove repository reference "reg:5000/shop:v2" (must force) - container abc is using its referenced image' }
          : { id: i.id, references: i.references, outcome: 'removed' as const, deleted: true },
      ),
    }),
    ...overrides,
  });
}

async function run(mocks: MockActivities, input: HousekeepingInput): Promise<WorkflowHandle> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start('housekeeping', { taskQueue, workflowId: `housekeeping/shop/production/${randomUUID()}`, args: [input] });
    await handle.result().catch(() => undefined);
    return handle;
  });
}

it('removes the old tags on every host under the lock; keeps what runs, the newest not running and what a container uses; an engine refusal is kept as in use', async () => {
  const mocks = housekeepingMocks();
  const handle = await run(mocks, { app: 'shop', env: 'production' });
  const result = (await handle.result()) as HousekeepingResult;
  expect(result).toMatchObject({ app: 'shop', env: 'production', repository: REPO, dryRun: false });
  const [one, two] = result.hosts;
  expect(one.host).toBe('one');
  expect(one.removed).toEqual([{ id: 'sha256:v1', tags: ['v1'], size: 100, deleted: true }]);
  expect(one.kept.map((k) => [k.tags.join(','), k.reasons])).toEqual([
    ['v4', ['newest not running']],
    ['v3', ['running']],
    ['v2', ['in use']],
  ]);
  expect(one.kept[2].refused).toMatch(/container abc is using its referenced image/);
  expect(one.diskBefore.images.size).toBe(1000);
  expect(one.diskAfter?.images.size).toBe(700);
  expect(two.host).toBe('two');
  expect(two.removed).toEqual([]);
  expect(two.kept.map((k) => [k.tags.join(','), k.reasons, k.containers])).toEqual([
    ['v2', ['running'], ['shop-production-web-1']],
    ['v1', ['in use', 'newest not running'], ['old-job']],
  ]);
  // nothing to remove on two: no removal asked there
  expect(mocks.calls.filter((c) => c.name === 'removeRepositoryImages').map((c) => c.args)).toEqual([
    { host: expect.objectContaining({ name: 'one' }), repository: REPO, images: [{ id: 'sha256:v2', references: [`${REPO}:v2`] }, { id: 'sha256:v1', references: [`${REPO}:v1`] }] },
  ]);
  expect(mocks.names()[0]).toBe('resolveHousekeepingPlan');
  expect(mocks.names()[1]).toBe('acquireLock');
  expect(mocks.names().at(-1)).toBe('releaseLock');
  expect(mocks.called('diskUsage')).toBe(4);
  // RECORD_HOUSEKEEPING_HISTORIES=1 keeps this run as a replay fixture
  if (process.env.RECORD_HOUSEKEEPING_HISTORIES === '1') {
    writeFileSync(path.join(__dirname, '../replay/histories/housekeeping-two-hosts.json'), JSON.stringify(historyToJson(await handle.fetchHistory()), null, 1) + '\n');
  }
});

it('a dry run reports what would go and what stays, removes nothing and takes no lock', async () => {
  const mocks = housekeepingMocks();
  const result = (await (await run(mocks, { app: 'shop', env: 'production', dryRun: true })).result()) as HousekeepingResult;
  expect(result.dryRun).toBe(true);
  expect(result.hosts.map((h) => [h.host, h.removed.map((r) => r.tags.join(','))])).toEqual([
    ['one', ['v2', 'v1']],
    ['two', []],
  ]);
  expect(result.hosts.every((h) => h.diskAfter === undefined)).toBe(true);
  expect(mocks.called('removeRepositoryImages')).toBe(0);
  expect(mocks.called('acquireLock')).toBe(0);
});

it('refused while another runbook holds the lock: nothing is listed or removed', async () => {
  const mocks = housekeepingMocks({
    acquireLock: async (): Promise<LockAnswer> => ({ acquired: false, holder: { workflowId: 'rollingUpdate/shop/production', runId: 'r1', runbook: 'rollingUpdate', since: '2027-01-01T00:00:00.000Z' } }),
  });
  const f = await workflowFailure((await run(mocks, { app: 'shop', env: 'production' })).result());
  expect(f.message).toMatch(/^shop\/production is locked by rollingUpdate \(rollingUpdate\/shop\/production, run r1\) since .*; nothing was changed/);
  expect(mocks.called('listHousekeepingInventory')).toBe(0);
  expect(mocks.called('removeRepositoryImages')).toBe(0);
});

it('an unknown environment fails from the plan; bad input fails before any activity', async () => {
  const mocks = housekeepingMocks();
  const f = await workflowFailure((await run(mocks, { app: 'shop', env: 'nowhere' })).result());
  expect(f.message).toMatch(/app "shop" has no environment "nowhere"/);
  expect(mocks.names()).toEqual(['resolveHousekeepingPlan']);
  const bad = housekeepingMocks();
  const g = await workflowFailure((await run(bad, { app: 'shop', env: 'production', dryRun: 'yes' } as unknown as HousekeepingInput)).result());
  expect(g.message).toMatch(/invalid input: dryRun: /);
  expect(bad.calls).toEqual([]);
});

it("an app whose services have images of their own: each repository's old tags go, on every host", async () => {
  const API = 'reg:5000/shop-api';
  const apiImage = (tag: string, created: number): RepositoryImage => ({ id: `sha256:api-${tag}`, references: [`${API}:${tag}`], created, size: 10 });
  const mocks = housekeepingMocks({
    resolveHousekeepingPlan: async () => ({
      app: 'shop',
      env: 'production',
      repository: REPO,
      repositories: [REPO, API],
      hosts: [{ name: 'one', address: '127.0.0.1', dockerSocket: '/var/run/docker.sock', minFreeDiskMb: 1 }],
    }),
    listHousekeepingInventory: async (req: { host: { name: string }; repository: string }) =>
      req.repository === API
        ? { host: 'one', images: [apiImage('v1', 1), apiImage('v2', 2), apiImage('v3', 3)], containers: [{ name: 'shop-production-api-1', imageId: 'sha256:api-v3', state: 'running', labels: {} }] }
        : LISTINGS.one,
    removeRepositoryImages: async (req: { host: { name: string }; images: { id: string; references: string[] }[] }) => ({
      host: req.host.name,
      removals: req.images.map((i) => ({ id: i.id, references: i.references, outcome: 'removed' as const, deleted: true })),
    }),
  });
  const result = (await (await run(mocks, { app: 'shop', env: 'production' })).result()) as HousekeepingResult;
  expect(result.repositories).toEqual([REPO, API]);
  expect(result.hosts[0].removed.map((r) => r.id).sort()).toEqual(['sha256:api-v1', 'sha256:v1', 'sha256:v2']);
  const removals = mocks.calls.filter((c) => c.name === 'removeRepositoryImages').map((c) => (c.args as { repository: string }).repository);
  expect(removals).toEqual([REPO, API]);
});
