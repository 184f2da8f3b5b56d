// restoreBackup on the time-skipping server, activities mocked: the fleet it stops and starts is the
// one the engines report (versioned names after a rolling update), a retried stop still starts what
// an earlier attempt stopped, a cancellation or a failed swap puts the previous database back and
// starts the app, and the previous database is kept until released or its window ends.
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { backupFileName, buildManifest } from '../../common/commands/backup';
import type { FleetContainer, RestoreBackupInput } from '../../common/types';
import { approveSignal, releasePreviousSignal, statusQuery } from '../../workflows/lib/definitions';
import type { RestoreBackupResult } from '../../workflows/restoreBackup';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { settled, testWorker, timeSkippingEnv, waitForGate, workflowBundle } from '../helpers/workflow-env';

jest.setTimeout(180_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

// The production environment of the test inventory: hosts one and two, one replica each. After a
// rolling update to v2 its replicas carry versioned names.
const FLEET: Record<string, FleetContainer[]> = {
  one: [{ host: 'one', name: 'shop-production-web-1-v2', replica: 1, version: 'v2', image: 'reg:5000/shop:v2', state: 'running', previousVersion: 'v1' }],
  two: [{ host: 'two', name: 'shop-production-web-2-v2', replica: 2, version: 'v2', image: 'reg:5000/shop:v2', state: 'running', previousVersion: 'v1' }],
};
const VERSIONED = ['shop-production-web-1-v2', 'shop-production-web-2-v2'];

type HostReq = { host: { name: string }; names: string[] };

/** Mocks of a restore: one verified backup; containers' running state kept per name, so a stop or start is visible. */
function restoreMocks(over: Record<string, (...args: any[]) => Promise<unknown>> = {}) {
  const running = new Set(VERSIONED);
  const file = backupFileName({ app: 'shop', env: 'production', database: 'main' }, '2027-01-02T02:00:00Z');
  const mocks = mockActivities({
    backupDatabase: async (req: { at: string }) => {
      const safety = backupFileName({ app: 'shop', env: 'production', database: 'main' }, req.at);
      return buildManifest({ app: 'shop', env: 'production', database: 'main', file: safety, createdAt: req.at, sizeBytes: 1, sha256: '0'.repeat(64), durationMs: 1, serverVersion: '15', tables: [{ table: 'public.items', rows: 3 }] });
    },
    drillRestore: async (req: { file: string }) => ({ file: req.file, scratchDatabase: 'scratch_drill', tables: 1, rows: 3, durationMs: 1 }),
    listBackups: async () => ({ backups: [{ file, manifest: file.replace('.sql.zst', '.manifest.json'), createdAt: '2027-01-02T02:00:00Z', sizeBytes: 1, verified: true }], orphans: [] }),
    prepareRestore: async () => ({ incoming: 'scratch_restore_main', tables: 1, rows: 3 }),
    inspectFleet: async (req: { host: { name: string } }) => FLEET[req.host.name].map((c) => ({ ...c, state: running.has(c.name) ? 'running' : 'exited' })),
    stopContainers: async (req: HostReq) => {
      const stopped = req.names.filter((n) => running.has(n));
      stopped.forEach((n) => running.delete(n));
      return { host: req.host.name, stopped };
    },
    startContainers: async (req: HostReq) => {
      const started = req.names.filter((n) => !running.has(n));
      started.forEach((n) => running.add(n));
      return { host: req.host.name, started };
    },
    swapInRestoredDatabase: async () => ({ live: 'shop', previous: 'scratch_previous_main' }),
    swapBackPreviousDatabase: async () => ({ live: 'shop', restoredKeptAs: 'scratch_restore_main', putBack: true }),
    dropPreviousDatabase: async (req: { runTag: string }) => ({ dropped: `scratch_previous_main_${req.runTag}` }),
    // as the real activity does: an independent releasePreviousDatabase run on the same task queue
    startPreviousDatabaseKeeper: async (req: { workflowId: string; input: unknown }) => {
      await env.client.workflow.start('releasePreviousDatabase', { workflowId: req.workflowId, taskQueue: Context.current().info.taskQueue, args: [req.input] });
      return { workflowId: req.workflowId, started: true };
    },
    ...over,
  });
  return { mocks, running };
}

async function withWorker<T>(mocks: MockActivities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(fn(taskQueue));
}

/** Starts a restore and approves its gate (two approvers: the inventory's minimum). */
async function approvedRestore(taskQueue: string, input: Partial<RestoreBackupInput> = {}): Promise<WorkflowHandle> {
  const handle = await env.client.workflow.start('restoreBackup', { taskQueue, workflowId: `restoreBackup/shop/production/${randomUUID()}`, args: [{ app: 'shop', env: 'production', ...input }] });
  await waitForGate(handle, 'restore');
  await handle.signal(approveSignal, { gate: 'restore', by: 'alice' });
  await handle.signal(approveSignal, { gate: 'restore', by: 'bob' });
  return handle;
}

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await settled(handle).then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

const argsOf = (mocks: MockActivities, name: string) => mocks.calls.filter((c) => c.name === name).map((c) => c.args as HostReq);
const namesOf = (mocks: MockActivities, name: string) => argsOf(mocks, name).flatMap((a) => a.names).sort();

describe('restoreBackup after a rolling update', () => {
  it('stops and starts the versioned replicas on both hosts (read from the engines, not derived names); keeps the previous database for its window', async () => {
    const { mocks, running } = restoreMocks();
    const result = await withWorker(mocks, async (taskQueue) => {
      const handle = await approvedRestore(taskQueue);
      const r = (await settled(handle)) as RestoreBackupResult;
      // the kept database is dropped only when its 7-day window ends (the test server skips it)
      expect(mocks.called('dropPreviousDatabase')).toBe(0);
      const released = await env.client.workflow.getHandle(r.previousReleasedBy!.workflowId).result();
      expect(released).toMatchObject({ releasedBy: 'the 7d window' });
      return r;
    });
    expect(namesOf(mocks, 'stopContainers')).toEqual(VERSIONED);
    expect(namesOf(mocks, 'startContainers')).toEqual(VERSIONED);
    expect(argsOf(mocks, 'stopContainers').map((a) => a.host.name).sort()).toEqual(['one', 'two']);
    expect([...running].sort()).toEqual(VERSIONED);
    expect(result).toMatchObject({ previousDatabase: expect.stringMatching(/^scratch_previous_main_/), previousKept: true, previousReleasedBy: { keepFor: '7d' } });
    // the safety backup is pinned by this run (nightly retention keeps it until released or 30 days)
    const safety = mocks.calls.find((c) => c.name === 'backupDatabase')!.args as { at: string; pin: { reason: string; by: string; until: string } };
    expect(safety.pin).toEqual({ reason: 'safety', by: expect.stringMatching(/^restoreBackup\/shop\/production\//), until: new Date(Date.parse(safety.at) + 30 * 86_400_000).toISOString() });
    const order = mocks
      .names()
      .filter((n) => ['inspectFleet', 'proxyMaintenance', 'stopContainers', 'swapInRestoredDatabase', 'startContainers', 'reloadProxy', 'waitHealthy', 'smokeTest', 'startPreviousDatabaseKeeper', 'releaseLock', 'dropPreviousDatabase'].includes(n));
    // maintenance mode on every proxy before the stop; off once the containers are healthy, before the check through the proxy
    expect(order).toEqual([
      'inspectFleet', 'inspectFleet', 'proxyMaintenance', 'proxyMaintenance', 'stopContainers', 'stopContainers', 'swapInRestoredDatabase', 'startContainers', 'startContainers',
      'reloadProxy', 'reloadProxy', 'waitHealthy', 'waitHealthy', 'proxyMaintenance', 'proxyMaintenance', 'smokeTest', 'startPreviousDatabaseKeeper', 'releaseLock', 'dropPreviousDatabase',
    ]);
    const switched = argsOf(mocks, 'proxyMaintenance').map((a) => `${a.host.name} ${(a as unknown as { on: boolean }).on ? 'on' : 'off'}`);
    expect([switched.slice(0, 2).sort(), switched.slice(2).sort()]).toEqual([['one on', 'two on'], ['one off', 'two off']]);
  });

  it('maintenance mode that cannot be turned on is noted; the restore goes on (a 502 while stopped, as before)', async () => {
    const { mocks } = restoreMocks({
      proxyMaintenance: async (req: { on: boolean; container: string }) => {
        if (req.on) throw ApplicationFailure.nonRetryable(`${req.container} on one: the proxy config does not include the maintenance snippets`, 'ProxyMaintenanceUnsupported');
        return { changed: false };
      },
    });
    await withWorker(mocks, async (taskQueue) => {
      const handle = await approvedRestore(taskQueue);
      expect(await settled(handle)).toMatchObject({ previousKept: true });
      const st = await handle.query(statusQuery);
      expect(st.notes?.join('\n')).toMatch(/maintenance mode could not be turned on: .*does not include the maintenance snippets/);
    });
    expect(mocks.called('swapInRestoredDatabase')).toBe(1);
  });

  it('released early: the kept database is dropped at once, and says by whom', async () => {
    const { mocks } = restoreMocks();
    await withWorker(mocks, async (taskQueue) => {
      const r = (await settled(await approvedRestore(taskQueue, { keepPreviousFor: '3d' }))) as RestoreBackupResult;
      expect(r.previousReleasedBy).toMatchObject({ keepFor: '3d' });
      const keeper = env.client.workflow.getHandle(r.previousReleasedBy!.workflowId);
      await keeper.signal(releasePreviousSignal, { by: 'carol' });
      expect(await settled(keeper)).toMatchObject({ releasedBy: 'carol' });
    });
    expect(mocks.called('dropPreviousDatabase')).toBe(1);
  });

  it('a retried stop: the containers an earlier attempt stopped are started again', async () => {
    const attempts: Record<string, number> = {};
    const { mocks, running } = restoreMocks({
      stopContainers: async (req: HostReq) => {
        attempts[req.host.name] = (attempts[req.host.name] ?? 0) + 1;
        const stopped = req.names.filter((n) => running.has(n));
        stopped.forEach((n) => running.delete(n));
        // the first attempt stops everything, then its answer is lost (worker died, network)
        if (attempts[req.host.name] === 1) throw ApplicationFailure.retryable('connection reset while stopping', 'EngineUnavailable');
        return { host: req.host.name, stopped };
      },
    });
    await withWorker(mocks, async (taskQueue) => settled(await approvedRestore(taskQueue, { keepPrevious: true })));
    expect(namesOf(mocks, 'startContainers')).toEqual(VERSIONED);
    expect([...running].sort()).toEqual(VERSIONED);
  });

  it('cancelled during the swap: the swap finishes, the previous database is put back and the app is started', async () => {
    let swapStarted!: () => void;
    const swapping = new Promise<void>((r) => (swapStarted = r));
    const { mocks, running } = restoreMocks({
      swapInRestoredDatabase: async () => {
        swapStarted();
        await new Promise((r) => setTimeout(r, 500));
        return { live: 'shop', previous: 'scratch_previous_main' };
      },
    });
    const f = await withWorker(mocks, async (taskQueue) => {
      const handle = await approvedRestore(taskQueue);
      await swapping;
      await handle.cancel();
      return failureOf(handle);
    });
    expect(f.type).toBe('RestoreFailed');
    expect(f.message).toMatch(/the previous database is live again .*; the app was started again and is healthy/);
    const names = mocks.names();
    expect(names.indexOf('swapBackPreviousDatabase')).toBeGreaterThan(names.indexOf('swapInRestoredDatabase'));
    expect([...running].sort()).toEqual(VERSIONED);
    expect(names).not.toContain('dropPreviousDatabase');
    expect(names.at(-1)).toBe('releaseLock');
  });

  it('the swap fails after its first rename: the previous database is put back (read from the databases) and the app started', async () => {
    const { mocks, running } = restoreMocks({
      swapInRestoredDatabase: async () => {
        throw ApplicationFailure.nonRetryable('renaming scratch_restore_main to shop: database "shop" is being accessed by other users', 'PostgresClientRejected');
      },
    });
    const f = await withWorker(mocks, async (taskQueue) => failureOf(await approvedRestore(taskQueue)));
    expect(f.type).toBe('RestoreFailed');
    expect(f.message).toMatch(/being accessed by other users; the previous database is live again/);
    expect(mocks.called('swapBackPreviousDatabase')).toBe(1);
    expect([...running].sort()).toEqual(VERSIONED);
  });

  it('the stop fails on one host: nothing was swapped, what was stopped is started again', async () => {
    const { mocks, running } = restoreMocks({
      stopContainers: async (req: HostReq) => {
        if (req.host.name === 'two') throw ApplicationFailure.nonRetryable('host two: engine unreachable', 'EngineUnavailable');
        const stopped = req.names.filter((n) => running.has(n));
        stopped.forEach((n) => running.delete(n));
        return { host: req.host.name, stopped };
      },
      swapBackPreviousDatabase: async () => ({ live: 'shop', restoredKeptAs: 'scratch_restore_main', putBack: false }),
    });
    const f = await withWorker(mocks, async (taskQueue) => failureOf(await approvedRestore(taskQueue)));
    expect(f.message).toMatch(/engine unreachable; the live database was not changed; the app was started again and is healthy/);
    expect(mocks.called('swapInRestoredDatabase')).toBe(0);
    expect([...running].sort()).toEqual(VERSIONED);
  });

  it("the running version's migration brings the restored database to its schema, after the swap and before the app starts", async () => {
    const { mocks } = restoreMocks();
    await withWorker(mocks, async (taskQueue) => settled(await approvedRestore(taskQueue)));
    const order = mocks.names().filter((n) => ['swapInRestoredDatabase', 'runOneOff', 'removeContainers', 'startContainers'].includes(n));
    expect(order).toEqual(['swapInRestoredDatabase', 'runOneOff', 'removeContainers', 'startContainers', 'startContainers']);
    const { host, spec } = argsOf(mocks, 'runOneOff')[0] as unknown as { host: { name: string }; spec: { name: string; image: string; cmd: string[] } };
    expect([host.name, spec.image, spec.cmd]).toEqual(['one', 'reg:5000/shop:v2', ['shop', 'migrate']]);
    expect(spec.name).toMatch(/^shop-production-migrate-v2-restore-\d{14}$/);
  });

  it('a migration that fails on the restored database: the previous database is put back and the app started on it', async () => {
    const { mocks } = restoreMocks({
      runOneOff: async (req: { spec: { name: string } }) => {
        throw ApplicationFailure.nonRetryable(`${req.spec.name} exited with code 1\nlast log lines:\nmigration 'items.source' failed`, 'OneOffFailed');
      },
    });
    const f = await withWorker(mocks, async (taskQueue) => failureOf(await approvedRestore(taskQueue)));
    expect(f.type).toBe('RestoreFailed');
    expect(f.message).toMatch(/exited with code 1\nlast log lines:\nmigration 'items.source' failed; the previous database is live again \(the restored copy is kept as scratch_restore_main\); the app was started again and is healthy/);
    const names = mocks.names();
    expect(names.indexOf('swapBackPreviousDatabase')).toBeGreaterThan(names.indexOf('runOneOff'));
  });

  it('the app does not come back healthy after the swap: the previous database is put back and the app restarted', async () => {
    let healthChecks = 0;
    const { mocks } = restoreMocks({
      waitHealthy: async (req: { container: string }) => {
        healthChecks++;
        if (healthChecks === 1) throw ApplicationFailure.nonRetryable(`container ${req.container} is unhealthy: migrations missing`, 'ContainerUnhealthy');
        return { container: req.container, health: 'healthy', seconds: 1 };
      },
    });
    const f = await withWorker(mocks, async (taskQueue) => failureOf(await approvedRestore(taskQueue)));
    expect(f.type).toBe('RestoreFailed');
    expect(f.message).toMatch(/is unhealthy: migrations missing; the previous database is live again \(the restored copy is kept as scratch_restore_main\); the app was started again and is healthy\. Safety backup: shop-production-main-\d{8}T\d{6}Z\.sql\.zst/);
    expect(argsOf(mocks, 'proxyMaintenance').map((a) => (a as unknown as { on: boolean }).on)).toEqual([true, true, false, false]); // off only once it was healthy again
    const names = mocks.names();
    expect(names.filter((n) => n === 'swapBackPreviousDatabase')).toHaveLength(1);
    expect(names.indexOf('swapBackPreviousDatabase')).toBeGreaterThan(names.indexOf('swapInRestoredDatabase'));
    expect(names).not.toContain('dropPreviousDatabase');
    expect(names.at(-1)).toBe('releaseLock');
  });
});
