// rollingUpdate on the time-skipping server with mocked activities over a simulated two-host fleet:
// start-before-stop order, canary approve / reject / timeout, bake pass / fail, failure in the first
// and in the last batch (everything switched goes back), no-op, unknown tag, mixed fleet; a day-long
// bake in bounded history, and histories recorded before the bake moved into an activity still replay.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { historyToJson } from '../../client/history-json';
import { parseInventory } from '../../common/inventory';
import { buildUpdatePlan } from '../../common/plan';
import type { ContainerSpec, FleetContainer, RollingUpdateInput, RollingUpdateResult } from '../../common/types';
import { approveSignal, rejectSignal } from '../../workflows/lib/definitions';
import { mockActivities, TEST_INVENTORY_YAML, type MockActivities } from '../helpers/mock-activities';
import { testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure } from '../helpers/workflow-env';

const failureOf = (handle: WorkflowHandle) => workflowFailure(handle.result());

jest.setTimeout(120_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const inventory = parseInventory(TEST_INVENTORY_YAML);

/** Containers per host, as the engines would hold them; the proxies' upstreams per host. */
class FakeFleet {
  readonly containers = new Map<string, { host: string; version: string; replica: number; running: boolean; service?: string }>();
  readonly upstreams = new Map<string, string[]>();
  readonly events: string[] = [];
  unhealthy = new Set<string>(); // container names whose health check fails

  constructor(
    version = 'v1',
    hosts = ['one', 'two'],
    private readonly inv = inventory,
  ) {
    hosts.forEach((host, i) => this.containers.set(`shop-production-web-${i + 1}`, { host, version, replica: i + 1, running: true }));
  }

  fleet(): FleetContainer[] {
    return [...this.containers].map(([name, c]) => ({ host: c.host, name, replica: c.replica, ...(c.service ? { service: c.service } : {}), version: c.version, image: `reg:5000/shop:${c.version}`, state: c.running ? 'running' : 'exited' }));
  }

  versions(): string[] {
    return [...this.containers.values()].sort((a, b) => a.replica - b.replica).map((c) => `${c.host}:${c.replica}:${c.version}`);
  }

  activities(over: Record<string, (...args: any[]) => Promise<unknown>> = {}) {
    return {
      resolveUpdatePlan: async (input: RollingUpdateInput) => {
        try {
          return buildUpdatePlan(this.inv, input, this.fleet(), 'run-test');
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
        }
      },
      pullImage: async (req: { image: string }) => ({ image: req.image, id: 'sha256:1' }),
      ensureContainer: async (req: { host: { name: string }; spec: ContainerSpec }) => {
        this.events.push(`start ${req.spec.name}`);
        const service = req.spec.labels['runbook.service'];
        this.containers.set(req.spec.name, { host: req.host.name, version: req.spec.labels['runbook.version'], replica: Number(req.spec.labels['runbook.replica']), running: true, ...(service ? { service } : {}) });
        return { name: req.spec.name, id: `id-${req.spec.name}`, created: true };
      },
      waitHealthy: async (req: { container: string }) => {
        if (this.unhealthy.has(req.container)) throw ApplicationFailure.nonRetryable(`container ${req.container} is unhealthy: health log: exit 1: HTTP 500`, 'ContainerUnhealthy');
        return { container: req.container, health: 'healthy', seconds: 1 };
      },
      configureProxy: async (req: { host: { name: string }; config: string }) => {
        const ups = [...req.config.matchAll(/server (\S+):\d+ /g)].map((m) => m[1]);
        this.events.push(`proxy ${req.host.name} → ${ups.join(',')}`);
        this.upstreams.set(req.host.name, ups);
        return { changed: true, previousWorkers: [100 + this.events.length] };
      },
      waitProxyDrained: async (req: { host: { name: string }; workers: number[] }) => {
        this.events.push(`drain ${req.host.name}`);
        return { drained: true, stillServing: [], waitedMs: 5 };
      },
      removeContainers: async (req: { host: { name: string }; names: string[] }) => {
        for (const n of req.names) {
          if (this.containers.delete(n)) this.events.push(`remove ${n}`);
        }
        return { host: req.host.name, removed: req.names };
      },
      smokeTest: async (req: { url: string; expectBody?: string }) => ({ url: req.url, status: 200, body: req.expectBody ?? '' }),
      probeUrls: async (req: { urls: string[] }) => ({ ok: req.urls.length, failed: 0, errors: [] }),
      ...over,
    };
  }
}

async function run<T>(mocks: MockActivities, fn: (start: (input: Partial<RollingUpdateInput>) => Promise<WorkflowHandle>) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(
    fn((input) => env.client.workflow.start('rollingUpdate', { taskQueue, workflowId: `rollingUpdate/shop/production/${randomUUID()}`, args: [{ app: 'shop', env: 'production', version: 'v2', backup: false, drainDelay: '1s', ...input }] })),
  );
}



/** Two replicas on each host (web-1, web-2 on "one"; web-3, web-4 on "two"); health checks are logged as events. */
function fourReplicas(): { fleet: FakeFleet; mocks: MockActivities } {
  const four = structuredClone(inventory);
  four.apps.shop.environments.production.replicas = 2;
  const fleet = new FakeFleet('v1', ['one', 'one', 'two', 'two'], four);
  const mocks = mockActivities(
    fleet.activities({
      waitHealthy: async (req: { container: string }) => {
        if (fleet.unhealthy.has(req.container)) throw ApplicationFailure.nonRetryable(`container ${req.container} is unhealthy: health log: exit 1: HTTP 500`, 'ContainerUnhealthy');
        fleet.events.push(`healthy ${req.container}`);
        return { container: req.container, health: 'healthy', seconds: 1 };
      },
    }),
  );
  return { fleet, mocks };
}

/**
 * The order that keeps every request served, replica by replica: the new container is healthy before
 * a proxy points at it, and the old one is removed only after the proxy switched away from it and
 * drained. (Batches overlap, so only these relations are fixed, not the whole sequence.)
 */
function expectSafeOrder(events: string[], replicas: number): void {
  for (let n = 1; n <= replicas; n++) {
    const name = `shop-production-web-${n}-v2`;
    const started = events.indexOf(`start ${name}`);
    const switched = events.findIndex((e) => e.startsWith('proxy ') && e.split(/[ ,]/).includes(name));
    const removed = events.indexOf(`remove shop-production-web-${n}`);
    expect(started).toBeGreaterThanOrEqual(0);
    expect(switched).toBeGreaterThan(started);
    const healthy = events.indexOf(`healthy ${name}`);
    if (healthy >= 0) expect(healthy).toBeLessThan(switched);
    expect(removed).toBeGreaterThan(switched);
    expect(events.slice(switched, removed).some((e) => e.startsWith('drain '))).toBe(true);
  }
}

describe('rollingUpdate', () => {
  it('v1 → v2 on two hosts, one replica at a time: start, healthy, switch the proxy, drain, then stop the old', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    const r = (await run(mocks, async (start) => (await start({ surge: 0 })).result())) as RollingUpdateResult;
    expect(r).toMatchObject({ version: 'v2', fromVersion: 'v1', unchanged: false });
    expect(r.replicas).toEqual([
      { host: 'one', index: 1, container: 'shop-production-web-1-v2' },
      { host: 'two', index: 2, container: 'shop-production-web-2-v2' },
    ]);
    expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v2']);
    expectSafeOrder(fleet.events, 2);
    // surge 0: replica 2 boots only once replica 1 is switched
    expect(fleet.events.indexOf('start shop-production-web-2-v2')).toBeGreaterThan(fleet.events.indexOf('proxy one → shop-production-web-1-v2'));
    const order = mocks.names();
    expect(order.indexOf('pullImage')).toBeLessThan(order.indexOf('ensureContainer'));
    expect(order.at(-1)).toBe('releaseLock');
    // the drain waits for the workers that ran before that switch
    const drains = mocks.calls.filter((c) => c.name === 'waitProxyDrained').map((c) => c.args as { workers: number[]; timeoutSeconds: number });
    expect(drains).toEqual([expect.objectContaining({ workers: [expect.any(Number)], timeoutSeconds: 30 }), expect.objectContaining({ workers: [expect.any(Number)], timeoutSeconds: 30 })]);
  });

  it('surge 1: the next batch boots while this one is switched, never further ahead; the same safe order', async () => {
    const { fleet, mocks } = fourReplicas();
    await run(mocks, async (start) => (await start({ surge: 1 })).result());
    expect(fleet.versions()).toEqual(['one:1:v2', 'one:2:v2', 'two:3:v2', 'two:4:v2']);
    expectSafeOrder(fleet.events, 4);
    const at = (e: string) => fleet.events.indexOf(e);
    const switchOf = (n: number) => fleet.events.findIndex((e) => e.startsWith('proxy ') && e.includes(`web-${n}-v2`));
    expect(at('start shop-production-web-2-v2')).toBeLessThan(switchOf(1)); // batch 2 boots beside batch 1
    for (const n of [3, 4]) expect(at(`start shop-production-web-${n}-v2`)).toBeGreaterThan(switchOf(n - 2)); // one batch ahead, not two
  });

  it('takes a backup first, as a child nightlyBackup that prunes nothing', async () => {
    const fleet = new FakeFleet();
    const manifest = { file: 'shop-production-main-x.sql.zst', sizeBytes: 1, durationMs: 1 };
    const mocks = mockActivities(
      fleet.activities({
        backupDatabase: async () => manifest,
        drillRestore: async () => ({ file: manifest.file, tables: 1, rows: 1, durationMs: 1, scratchDatabase: 's' }),
        archiveVolume: async () => ({ file: 'v', sizeBytes: 1, sha256: '0' }),
        archiveConfig: async () => ({ file: 'c', sizeBytes: 1, sha256: '0' }),
      }),
    );
    await run(mocks, async (start) => (await start({ backup: true })).result());
    const order = mocks.names();
    expect(order.indexOf('backupDatabase')).toBeLessThan(order.indexOf('ensureContainer'));
    expect(order.indexOf('drillRestore')).toBeLessThan(order.indexOf('ensureContainer'));
    expect(order.indexOf('pullImage')).toBeLessThan(order.indexOf('backupDatabase')); // an unknown tag fails before the backup
    expect(order).not.toContain('listBackups');
    // pinned as a pre-update backup of this run: nightly retention keeps it until released or 30 days
    const { at, pin } = mocks.calls.find((c) => c.name === 'backupDatabase')!.args as { at: string; pin: { until: string } };
    expect(pin).toEqual({ reason: 'pre-update', by: expect.stringMatching(/^rollingUpdate\/shop\/production\//), until: new Date(Date.parse(at) + 30 * 86_400_000).toISOString() });
    expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v2']);
  });

  it("runs the new version's migration once, after the backup and before any new replica starts, then removes its container", async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(
      fleet.activities({
        backupDatabase: async () => ({ file: 'shop-production-main-x.sql.zst', sizeBytes: 1, durationMs: 1 }),
        drillRestore: async () => ({ file: 'f', tables: 1, rows: 1, durationMs: 1, scratchDatabase: 's' }),
        archiveVolume: async () => ({ file: 'v', sizeBytes: 1, sha256: '0' }),
        archiveConfig: async () => ({ file: 'c', sizeBytes: 1, sha256: '0' }),
        runOneOff: async (req: { spec: ContainerSpec }) => {
          fleet.events.push(`migrate ${req.spec.name}`);
          return { name: req.spec.name, exitCode: 0, alreadyDone: false, lastLogLines: ['migrations applied for v2'] };
        },
      }),
    );
    const { history } = await run(mocks, async (start) => {
      const h = await start({ backup: true });
      await h.result();
      return { history: await h.fetchHistory() };
    });
    const order = mocks.names();
    expect(order.filter((n) => n === 'runOneOff')).toHaveLength(1);
    expect(order.indexOf('drillRestore')).toBeLessThan(order.indexOf('runOneOff'));
    expect(fleet.events[0]).toBe('migrate shop-production-migrate-v2');
    expect(fleet.events.indexOf('start shop-production-web-1-v2')).toBeGreaterThan(0);
    const { host, spec, timeoutSeconds } = mocks.calls.find((c) => c.name === 'runOneOff')!.args as { host: { name: string }; spec: ContainerSpec; timeoutSeconds: number };
    expect([host.name, spec.image, spec.cmd, spec.role, spec.restart, timeoutSeconds]).toEqual(['one', 'reg:5000/shop:v2', ['shop', 'migrate'], 'migrate', false, 300]);
    expect(spec.envFiles).toEqual([{ path: '/etc/shop.env', required: ['DATABASE_URL'] }]);
    expect(mocks.calls.filter((c) => c.name === 'removeContainers').map((c) => (c.args as { names: string[] }).names)[0]).toEqual(['shop-production-migrate-v2']);
    expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v2']);
    if (process.env.RECORD_UPDATE_HISTORIES === '1') writeFileSync(path.join(__dirname, '../replay/histories/rollingUpdate-migrated-backed-up.json'), JSON.stringify(historyToJson(history), null, 1) + '\n');
  });

  it('a failing migration changes nothing else: no new replica, no switch, the old version serves; its container is kept for its logs', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(
      fleet.activities({
        runOneOff: async (req: { spec: ContainerSpec }) => {
          throw ApplicationFailure.nonRetryable(`${req.spec.name} exited with code 1\nlast log lines:\nmigration 2 failed: column "source" already exists`, 'OneOffFailed');
        },
      }),
    );
    const f = await run(mocks, async (start) => failureOf(await start({})));
    expect(f.type).toBe('MigrationFailed');
    expect(f.message).toBe(
      'the migrations of v2 failed: shop-production-migrate-v2 exited with code 1\nlast log lines:\nmigration 2 failed: column "source" already exists\nno replica was changed: every replica still runs v1 (the migration\'s container shop-production-migrate-v2 is kept on one for its logs)',
    );
    expect(fleet.events).toEqual([]);
    expect(mocks.called('ensureContainer') + mocks.called('configureProxy') + mocks.called('removeContainers')).toBe(0);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  it('a rollback runs no migration (the schema stays expanded for the old version)', async () => {
    const fleet = new FakeFleet('v2');
    for (const c of fleet.containers.values()) c.version = 'v2';
    const mocks = mockActivities(fleet.activities());
    await run(mocks, async (start) => (await start({ version: 'v1', isRollback: true })).result());
    expect(mocks.called('runOneOff')).toBe(0);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  it('the version already running: a no-op that touches nothing', async () => {
    const fleet = new FakeFleet('v2');
    const mocks = mockActivities(fleet.activities());
    const r = (await run(mocks, async (start) => (await start({})).result())) as RollingUpdateResult;
    expect(r.unchanged).toBe(true);
    expect(mocks.names()).toEqual(['resolveUpdatePlan']);
  });

  it('an unknown tag fails at the pull, before anything changes', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities({ pullImage: async () => { throw ApplicationFailure.nonRetryable('image reg:5000/shop:v9 not found in the registry', 'ImageNotFound'); } }));
    const f = await run(mocks, async (start) => failureOf(await start({ version: 'v9' })));
    expect(f.type).toBe('ImageNotFound');
    expect(f.message).toBe('image reg:5000/shop:v9 not found in the registry\nnothing was changed: every replica still runs v1');
    expect(fleet.events).toEqual([]);
  });

  it('a mixed fleet is refused with what runs where', async () => {
    const fleet = new FakeFleet();
    fleet.containers.get('shop-production-web-2')!.version = 'v3';
    const mocks = mockActivities(fleet.activities());
    const f = await run(mocks, async (start) => failureOf(await start({})));
    expect(f.message).toMatch(/runs mixed versions \(shop-production-web-1 v1, shop-production-web-2 v3\)/);
  });

  it('failure in the first batch: the unhealthy new container goes, nothing was switched', async () => {
    const fleet = new FakeFleet();
    fleet.unhealthy.add('shop-production-web-1-v2');
    const mocks = mockActivities(fleet.activities());
    const f = await run(mocks, async (start) => failureOf(await start({})));
    expect(f.type).toBe('ContainerUnhealthy');
    expect(f.message).toMatch(/is unhealthy: health log[\s\S]*nothing had been switched; every replica still runs v1/);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
    expect(mocks.called('configureProxy')).toBe(0);
  });

  it('failure in the last batch: the first batch is rolled back to v1, start-before-stop, on its host', async () => {
    const fleet = new FakeFleet();
    fleet.unhealthy.add('shop-production-web-2-v2');
    const mocks = mockActivities(fleet.activities());
    const f = await run(mocks, async (start) => failureOf(await start({ surge: 0 })));
    expect(f.message).toMatch(/shop-production-web-2-v2 is unhealthy[\s\S]*rolled back 1 replica\(s\) on one to v1; every replica runs v1 and serves/);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
    expect(fleet.upstreams.get('one')).toEqual(['shop-production-web-1-v1']);
    // the old replica 1 finishes draining first, then replica 1 goes back to v1 start-before-stop
    expect(fleet.events.indexOf('remove shop-production-web-1')).toBeLessThan(fleet.events.indexOf('start shop-production-web-1-v1'));
    expect(fleet.events.slice(-4)).toEqual(['start shop-production-web-1-v1', 'proxy one → shop-production-web-1-v1', 'drain one', 'remove shop-production-web-1-v2']);
  });

  it('by default every batch boots ahead: all new replicas are healthy before the first switch', async () => {
    const { fleet, mocks } = fourReplicas();
    await run(mocks, async (start) => (await start({})).result());
    expect(fleet.versions()).toEqual(['one:1:v2', 'one:2:v2', 'two:3:v2', 'two:4:v2']);
    expectSafeOrder(fleet.events, 4);
    const firstSwitch = fleet.events.findIndex((e) => e.startsWith('proxy '));
    for (const n of [1, 2, 3, 4]) expect(fleet.events.indexOf(`start shop-production-web-${n}-v2`)).toBeLessThan(firstSwitch);
    expect(fleet.events.filter((e) => e.startsWith('proxy '))).toHaveLength(4); // still switched one batch at a time
  });

  it('a batch booting ahead that never gets healthy: nothing further is switched, what was switched goes back, no orphans', async () => {
    const { fleet, mocks } = fourReplicas();
    fleet.unhealthy.add('shop-production-web-3-v2');
    const f = await run(mocks, async (start) => failureOf(await start({ surge: 1 })));
    expect(f.message).toMatch(/shop-production-web-3-v2 is unhealthy[\s\S]*every replica runs v1 and serves/);
    expect(fleet.versions()).toEqual(['one:1:v1', 'one:2:v1', 'two:3:v1', 'two:4:v1']); // batch 4, booted ahead, was removed too
    expect(fleet.events.some((e) => e.startsWith('proxy ') && /web-[34]-v2/.test(e))).toBe(false);
  });

  it('when the batch ahead fails before this one is switched, nothing is switched at all', async () => {
    const fleet = new FakeFleet();
    fleet.unhealthy.add('shop-production-web-2-v2');
    const mocks = mockActivities(
      fleet.activities({
        waitHealthy: async (req: { container: string }) => {
          if (fleet.unhealthy.has(req.container)) throw ApplicationFailure.nonRetryable(`container ${req.container} is unhealthy`, 'ContainerUnhealthy');
          await new Promise((r) => setTimeout(r, 500)); // replica 1 takes longer than replica 2 takes to fail
          return { container: req.container, health: 'healthy', seconds: 1 };
        },
      }),
    );
    const f = await run(mocks, async (start) => failureOf(await start({})));
    expect(f.message).toMatch(/web-2-v2 is unhealthy[\s\S]*nothing had been switched; every replica still runs v1/);
    expect(mocks.called('configureProxy')).toBe(0);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  describe('an app of several services (a frontend, an API behind /api, a worker with no port)', () => {
    const stack = parseInventory(
      TEST_INVENTORY_YAML.replace(
        '    proxyImage:',
        '    services:\n      api: { port: 3000, route: { path: /api } }\n      worker: { command: [shop, worker] }\n    proxyImage:',
      ),
    );
    const stackFleet = () => {
      const fleet = new FakeFleet('v1', ['one', 'two'], stack);
      ['one', 'two'].forEach((host, i) => {
        fleet.containers.set(`shop-production-api-${i + 1}`, { host, version: 'v1', replica: i + 1, running: true, service: 'api' });
        fleet.containers.set(`shop-production-worker-${i + 1}`, { host, version: 'v1', replica: i + 1, running: true, service: 'worker' });
      });
      return fleet;
    };
    const byHost = (fleet: FakeFleet) => [...fleet.containers].map(([name, c]) => `${c.host}:${name}:${c.version}`).sort();

    it('the canary is one whole stack: every service of the first host, then the next host; each proxy gets its host\'s web and api', async () => {
      const fleet = stackFleet();
      const mocks = mockActivities(fleet.activities());
      await run(mocks, async (start) => {
        const h = await start({ canary: 'approve' });
        await waitForGate(h, 'canary');
        expect(byHost(fleet)).toEqual([
          'one:shop-production-api-1-v2:v2',
          'one:shop-production-web-1-v2:v2',
          'one:shop-production-worker-1-v2:v2',
          'two:shop-production-api-2:v1',
          'two:shop-production-web-2:v1',
          'two:shop-production-worker-2:v1',
        ]);
        expect(fleet.upstreams.get('one')).toEqual(['shop-production-web-1-v2', 'shop-production-api-1-v2']);
        await h.signal(approveSignal, { gate: 'canary', by: 'alice' });
        await h.signal(approveSignal, { gate: 'canary', by: 'bob' });
        const r = (await h.result()) as RollingUpdateResult;
        expect(r.replicas.map((x) => `${x.service ?? 'web'} ${x.container}`)).toEqual([
          'web shop-production-web-1-v2',
          'api shop-production-api-1-v2',
          'worker shop-production-worker-1-v2',
          'web shop-production-web-2-v2',
          'api shop-production-api-2-v2',
          'worker shop-production-worker-2-v2',
        ]);
      });
      expect(byHost(fleet).every((c) => c.endsWith(':v2'))).toBe(true);
      expect(fleet.upstreams.get('two')).toEqual(['shop-production-web-2-v2', 'shop-production-api-2-v2']);
    });

    it('the worker of the last host never gets healthy: the first host\'s services go back to v1, all of them', async () => {
      const fleet = stackFleet();
      fleet.unhealthy.add('shop-production-worker-2-v2');
      const mocks = mockActivities(fleet.activities());
      const failure = await run(mocks, async (start) => failureOf(await start({ surge: 0 })));
      expect(failure.message).toMatch(/shop-production-worker-2-v2 is unhealthy[\s\S]*rolled back 3 replica\(s\) on one to v1/);
      expect(byHost(fleet).every((c) => c.endsWith(':v1'))).toBe(true);
      expect(fleet.upstreams.get('one')).toEqual(['shop-production-web-1-v1', 'shop-production-api-1-v1']);
    });
  });

  it('canary approved: the second batch follows', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    await run(mocks, async (start) => {
      const h = await start({ canary: 'approve' });
      const st = await waitForGate(h, 'canary');
      expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v1']); // the first batch only
      expect(st.pendingGates[0].minApprovals).toBe(2);
      await h.signal(approveSignal, { gate: 'canary', by: 'alice' });
      await h.signal(approveSignal, { gate: 'canary', by: 'bob' });
      await h.result();
    });
    expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v2']);
  });

  it('canary rejected: the first batch is rolled back and the runbook fails with the reason', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    const f = await run(mocks, async (start) => {
      const h = await start({ canary: 'approve' });
      await waitForGate(h, 'canary');
      await h.signal(rejectSignal, { gate: 'canary', by: 'carol', comment: 'error rate up' });
      return failureOf(h);
    });
    expect(f.type).toBe('CanaryRejected');
    expect(f.message).toMatch(/canary rejected by carol\nrolled back 1 replica\(s\) on one to v1/);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  it('canary approval timing out: the safe default rolls back', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    const f = await run(mocks, async (start) => failureOf(await start({ canary: 'approve', approvalTimeout: '1h' })));
    expect(f.type).toBe('CanaryTimedOut');
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  it('bake passes: probes through every proxy for the bake time, then the rest follows', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    await run(mocks, async (start) => (await start({ canary: { bake: '10m' }, bakeInterval: '30s' })).result());
    expect(mocks.called('probeUrls')).toBe(20);
    expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v2']);
  });

  it('bake fails on the error rate: rolled back', async () => {
    const fleet = new FakeFleet();
    let n = 0;
    const mocks = mockActivities(fleet.activities({ probeUrls: async (req: { urls: string[] }) => (++n % 4 === 0 ? { ok: 1, failed: 1, errors: [`${req.urls[0]}: HTTP 502`] } : { ok: 2, failed: 0, errors: [] }) }));
    const f = await run(mocks, async (start) => failureOf(await start({ canary: { bake: '10m' }, bakeInterval: '30s' })));
    expect(f.type).toBe('CanaryBakeFailed');
    expect(f.message).toMatch(/canary bake failed: 5 of 40 probes failed \(12\.5 % > 1\.0 %\): .*HTTP 502/);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  it('a 24 h bake at a 1 s interval: 86,400 probe rounds in one activity, the history stays under 10,000 events', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    const history = await run(mocks, async (start) => {
      const handle = await start({ canary: { bake: '24h' }, bakeInterval: '1s' });
      await handle.result();
      return handle.fetchHistory();
    });
    const events = history.events ?? [];
    console.log(`24 h bake at 1 s: ${events.length} history events, ${mocks.called('probeUrls')} probe rounds`);
    expect(events.length).toBeLessThan(10_000);
    expect(mocks.called('probeUrls')).toBe(86_400);
    expect(mocks.called('bakeCanary')).toBe(1);
    expect(scheduled(events)).not.toContain('probeUrls');
    expect(fleet.versions()).toEqual(['one:1:v2', 'two:2:v2']);
    // the new path replays too
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history);
  });

  it('a failing bake in the activity: one bakeCanary, then the rollback, as before', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities({ probeUrls: async (req: { urls: string[] }) => ({ ok: 1, failed: 1, errors: [`${req.urls[0]}: HTTP 502`] }) }));
    const f = await run(mocks, async (start) => failureOf(await start({ canary: { bake: '1h' }, bakeInterval: '1s' })));
    expect(f.type).toBe('CanaryBakeFailed');
    expect(f.message).toMatch(/canary bake failed: 3600 of 7200 probes failed \(50\.0 % > 1\.0 %\): .*HTTP 502/);
    expect(f.message).toMatch(/rolled back 1 replica\(s\) on one to v1/);
    expect(mocks.called('bakeCanary')).toBe(1);
    expect(mocks.called('probeUrls')).toBe(3600);
    expect(fleet.versions()).toEqual(['one:1:v1', 'two:2:v1']);
  });

  it('bad input is refused before the plan', async () => {
    const fleet = new FakeFleet();
    const mocks = mockActivities(fleet.activities());
    const f = await run(mocks, async (start) => failureOf(await start({ version: 'v2 beta', canary: 'maybe' as never })));
    expect(f.type).toBe('InvalidInput');
    expect(mocks.calls).toEqual([]);
  });
});

/** Activity types scheduled in a history, in order. */
function scheduled(events: temporal.api.history.v1.IHistoryEvent[]): string[] {
  return events.flatMap((e) => (e.activityTaskScheduledEventAttributes?.activityType?.name ? [e.activityTaskScheduledEventAttributes.activityType.name] : []));
}

// Recorded with the bake loop in the workflow (before patch 'canary-bake-activity'): 2 min bakes at
// 30 s through the mocks above, one passing, one failing (rolled back). A worker with the bake
// activity must replay them, and a run caught mid-bake goes on with the loop it started.
describe('rollingUpdate replays histories from before the bake activity', () => {
  const H = temporal.api.history.v1.History;
  const recorded = (name: string) => H.fromObject(JSON.parse(readFileSync(path.join(__dirname, 'histories', name), 'utf8')));

  it.each(['rollingUpdate-bake-passed.json', 'rollingUpdate-bake-failed.json'])('%s replays', async (name) => {
    const history = recorded(name);
    expect(scheduled(history.events)).toContain('probeUrls');
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history);
  });

  it('a run caught mid-bake (after its second probe) replays', async () => {
    const events = recorded('rollingUpdate-bake-passed.json').events;
    const probes = events.flatMap((e, i) => (e.activityTaskScheduledEventAttributes?.activityType?.name === 'probeUrls' ? [i] : []));
    const end = events.findIndex((e, i) => i > probes[1] && e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
    expect(end).toBeGreaterThan(probes[1]);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, H.create({ events: events.slice(0, end + 1) }));
  });
});
