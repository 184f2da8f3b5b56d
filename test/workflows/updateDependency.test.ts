// updateDependency on the time-skipping server with mocked activities: a Redis goes to the
// inventory's image (old one renamed, stopped, kept until the new one is healthy, then removed); an
// unhealthy new one is rolled back to the old container and its data; a database needs the gate and
// gets a backup first; the image already running changes nothing.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJson } from '../../client/history-json';
import type { UpdateDependencyInput } from '../../common/inputs';
import { parseInventory } from '../../common/inventory';
import { buildDependencyUpdatePlan } from '../../common/plan';
import type { UpdateDependencyResult } from '../../workflows/updateDependency';
import { approveSignal, rejectSignal } from '../../workflows/lib/definitions';
import { mockActivities, TEST_INVENTORY_YAML, type MockActivities } from '../helpers/mock-activities';
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

const inventory = parseInventory(
  TEST_INVENTORY_YAML.replace(
    '      - { name: postgres, image: "reg:5000/postgres:15", volumes: { pgdata: /var/lib/postgresql/data } }',
    '      - { name: postgres, image: "reg:5000/postgres:15", volumes: { pgdata: /var/lib/postgresql/data } }\n      - { name: redis, image: "reg:5000/redis:7.2", command: [redis-server, --appendonly, "yes"], volumes: { redisdata: /data } }',
  ),
);

/** One engine's dependency containers: name → image, and what happened, in order. */
function engine(running: Record<string, string>, o: { unhealthy?: string } = {}) {
  const containers = new Map(Object.entries(running));
  const events: string[] = [];
  const mocks = mockActivities({
    resolveDependencyUpdatePlan: async (input: UpdateDependencyInput) => {
      try {
        return buildDependencyUpdatePlan(inventory, input, 'run-test');
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
      }
    },
    inspectContainerImage: async (req: { name: string }) => ({ ...(containers.has(req.name) ? { image: containers.get(req.name) } : {}), previousKept: containers.has(`${req.name}-previous`) }),
    pullImage: async (req: { image: string }) => ({ image: req.image, id: 'sha256:1' }),
    replaceDependency: async (req: { spec: { name: string; image: string } }) => {
      const old = containers.get(req.spec.name)!;
      containers.set(`${req.spec.name}-previous`, old);
      containers.set(req.spec.name, req.spec.image);
      events.push(`replace ${old} → ${req.spec.image}`);
      return { previous: { name: `${req.spec.name}-previous`, image: old }, created: true };
    },
    waitHealthy: async (req: { container: string }) => {
      if (containers.get(req.container) === o.unhealthy) throw ApplicationFailure.nonRetryable(`${req.container} on one is unhealthy after 12s\nhealth log:\n  exit 1: Could not connect to Redis`, 'ContainerUnhealthy');
      events.push(`healthy ${containers.get(req.container)}`);
      return { container: req.container, health: 'healthy', seconds: 1 };
    },
    restoreDependency: async (req: { name: string }) => {
      const old = containers.get(`${req.name}-previous`)!;
      containers.delete(`${req.name}-previous`);
      containers.set(req.name, old);
      events.push(`restore ${old}`);
      return { image: old };
    },
    removeContainers: async (req: { host: { name: string }; names: string[] }) => {
      for (const n of req.names) if (containers.delete(n)) events.push(`remove ${n}`);
      return { host: req.host.name, removed: req.names };
    },
    backupDatabase: async () => ({ file: 'shop-production-main-x.sql.zst', sizeBytes: 1, durationMs: 1 }),
    drillRestore: async () => ({ file: 'f', tables: 1, rows: 1, durationMs: 1, scratchDatabase: 's' }),
    archiveVolume: async () => ({ file: 'v', sizeBytes: 1, sha256: '0' }),
    archiveConfig: async () => ({ file: 'c', sizeBytes: 1, sha256: '0' }),
  });
  return { containers, events, mocks };
}

async function run<T>(mocks: MockActivities, input: Partial<UpdateDependencyInput>, drive: (h: WorkflowHandle) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(async () => drive(await env.client.workflow.start('updateDependency', { taskQueue, workflowId: `updateDependency/shop/production/${randomUUID()}`, args: [{ app: 'shop', env: 'production', service: 'redis', ...input }] })));
}

it('redis to the inventory image: the old one stopped and kept until the new one is healthy, then removed; no gate, no backup', async () => {
  const e = engine({ 'shop-production-redis': 'reg:5000/redis:7.0' });
  const { result, history } = await run(e.mocks, {}, async (h) => ({ result: (await settled(h)) as UpdateDependencyResult, history: await h.fetchHistory() }));
  expect(result).toEqual({ app: 'shop', env: 'production', service: 'redis', image: 'reg:5000/redis:7.2', fromImage: 'reg:5000/redis:7.0', unchanged: false });
  expect(e.events).toEqual(['replace reg:5000/redis:7.0 → reg:5000/redis:7.2', 'healthy reg:5000/redis:7.2', 'remove shop-production-redis-previous']);
  const spec = (e.mocks.calls.find((c) => c.name === 'replaceDependency')!.args as { spec: { cmd: string[]; volumes: unknown[] } }).spec;
  expect([spec.cmd, spec.volumes]).toEqual([['redis-server', '--appendonly', 'yes'], [{ name: 'shop-production-redisdata', target: '/data' }]]);
  expect(e.mocks.names()).not.toContain('backupDatabase');
  if (process.env.RECORD_DEPENDENCY_HISTORIES === '1') writeFileSync(path.join(__dirname, '../replay/histories/updateDependency-redis-replaced.json'), JSON.stringify(historyToJson(history), null, 1) + '\n');
});

it('an unhealthy new image is rolled back: the old container, with its data, runs and is healthy again', async () => {
  const e = engine({ 'shop-production-redis': 'reg:5000/redis:7.0' }, { unhealthy: 'reg:5000/redis:7.2' });
  const f = await run(e.mocks, {}, (h) => workflowFailure(settled(h)));
  expect(f.type).toBe('ContainerUnhealthy');
  expect(f.message).toMatch(/is unhealthy after 12s[\s\S]*Could not connect to Redis\nrolled back: shop-production-redis runs reg:5000\/redis:7\.0 again, on its volumes$/);
  expect(e.events).toEqual(['replace reg:5000/redis:7.0 → reg:5000/redis:7.2', 'restore reg:5000/redis:7.0', 'healthy reg:5000/redis:7.0']);
  expect([...e.containers]).toEqual([['shop-production-redis', 'reg:5000/redis:7.0']]);
});

it('the image already running: nothing happens', async () => {
  const e = engine({ 'shop-production-redis': 'reg:5000/redis:7.2' });
  const result = (await run(e.mocks, {}, (h) => settled(h))) as UpdateDependencyResult;
  expect(result.unchanged).toBe(true);
  expect(e.mocks.names()).toEqual(['resolveDependencyUpdatePlan', 'acquireLock', 'inspectContainerImage', 'releaseLock']);
});

it('a database: the gate first (rejected: nothing changed); approved: a pinned backup, then the replacement', async () => {
  const rejected = engine({ 'shop-production-postgres': 'reg:5000/postgres:14' });
  const f = await run(rejected.mocks, { service: 'postgres' }, async (h) => {
    const st = await waitForGate(h, 'update-postgres');
    expect(st.pendingGates[0].description).toMatch(/Replace the database container shop-production-postgres on one: reg:5000\/postgres:14 → reg:5000\/postgres:15\. Its volumes are kept, a backup is taken first/);
    await h.signal(rejectSignal, { gate: 'update-postgres', by: 'alice' });
    return workflowFailure(settled(h));
  });
  expect(f.message).toBe('the update of postgres was rejected by alice; nothing was changed');
  expect(rejected.events).toEqual([]);

  const approved = engine({ 'shop-production-postgres': 'reg:5000/postgres:14' });
  await run(approved.mocks, { service: 'postgres' }, async (h) => {
    await waitForGate(h, 'update-postgres');
    await h.signal(approveSignal, { gate: 'update-postgres', by: 'alice' });
    await h.signal(approveSignal, { gate: 'update-postgres', by: 'bob' });
    return settled(h);
  });
  const order = approved.mocks.names();
  expect(order.indexOf('backupDatabase')).toBeLessThan(order.indexOf('replaceDependency'));
  expect((approved.mocks.calls.find((c) => c.name === 'backupDatabase')!.args as { pin: { reason: string } }).pin.reason).toBe('pre-update');
  expect([...approved.containers]).toEqual([['shop-production-postgres', 'reg:5000/postgres:15']]);
});

it('a version that is not the inventory\'s is refused before anything, saying what to change; an unknown service too', async () => {
  const e = engine({ 'shop-production-redis': 'reg:5000/redis:7.0' });
  const f = await run(e.mocks, { version: '8.0' }, (h) => workflowFailure(settled(h)));
  expect(f.message).toBe('apps.shop.dependencies.1.image is reg:5000/redis:7.2: set it to reg:5000/redis:8.0 first (the inventory is what runs; a deploy would otherwise refuse the container)');
  const g = await run(e.mocks, { service: 'mongo' }, (h) => workflowFailure(settled(h)));
  expect(g.message).toBe('app "shop" has no dependency "mongo" (it has: postgres, redis)');
  expect(e.events).toEqual([]);
});
