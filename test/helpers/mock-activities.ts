// Mocked activities for workflow tests: they record calls and answer like the real ones would.
import { ApplicationFailure } from '@temporalio/common';
import { parseInventory } from '../../common/inventory';
import { buildBackupPlan, buildDeployPlan, buildHousekeepingPlan, buildRestoreMigrationPlan } from '../../common/plan';
import type { Activities } from '../../activities';
import { createHealthActivities, type BakeRequest } from '../../activities/health';
import type { FirstDeployInput, LockAnswer } from '../../common/types';

export const FINGERPRINT = 'SHA256:' + 'B'.repeat(43);

export const TEST_INVENTORY_YAML = `
hosts:
  one:
    docker: { socketPath: /run/test.sock }
  two:
    ssh: { address: 10.0.0.2, user: deploy, keyFile: /keys/id, hostKey: "${FINGERPRINT}" }
apps:
  shop:
    image: reg:5000/shop
    port: 8080
    migrate: { command: [shop, migrate] }
    envFile: { path: /etc/shop.env, required: [DATABASE_URL] }
    dependencies:
      - { name: postgres, image: "reg:5000/postgres:15", volumes: { pgdata: /var/lib/postgresql/data } }
    proxyImage: "reg:5000/nginx:1"
    smokeTest: { path: /version, expectBody: "{{version}}" }
    backup:
      storage: { type: directory, path: /srv/backups }
      databases:
        - { name: main, dependency: postgres, database: shop, user: shop, passwordFile: /etc/shop/pg-password }
      archives: { volumes: [pgdata], config: true }
      notify: { webhookUrlFile: /etc/shop/webhook-url }
    environments:
      production:
        hosts: [one, two]
        replicas: 1
        version: v1
        proxy: { hostPort: 8080 }
        approvers: [alice, bob, carol]
        minApprovals: 2
        goLiveApproval: true
      staging:
        hosts: [one]
        version: v1
        proxy: { hostPort: 8081 }
`;

export interface MockActivities {
  activities: Partial<Activities>;
  calls: { name: string; args: unknown }[];
  called(name: string): number;
  /** The activities called, in order, without the notifications (they tell people; they change nothing). */
  names(): string[];
}

type Overrides = Partial<Record<keyof Activities, (...args: any[]) => Promise<unknown>>>;

export function mockActivities(overrides: Overrides = {}): MockActivities {
  const calls: { name: string; args: unknown }[] = [];
  const inventory = parseInventory(TEST_INVENTORY_YAML);
  const defaults: Overrides = {
    resolveDeployPlan: async (input: FirstDeployInput) => {
      try {
        return buildDeployPlan(inventory, input, 'run-test');
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
      }
    },
    preflightHost: async (req: { host: { name: string } }) => ({ host: req.host.name, ok: true, checks: [{ check: 'docker', ok: true, detail: 'reachable' }] }),
    acquireLock: async (req: { holder: { workflowId: string; runId: string; runbook: string } }): Promise<LockAnswer> => ({ acquired: true, holder: { ...req.holder, since: new Date().toISOString() } }),
    releaseLock: async () => undefined,
    ensureNetwork: async (req: { name: string }) => ({ name: req.name, id: `net-${req.name}`, created: true }),
    ensureVolume: async (req: { name: string }) => ({ name: req.name, id: req.name, created: true }),
    ensureContainer: async (req: { spec: { name: string } }) => ({ name: req.spec.name, id: `id-${req.spec.name}`, created: true }),
    waitHealthy: async (req: { container: string }) => ({ container: req.container, health: 'healthy', seconds: 1 }),
    pullImage: async (req: { image: string }) => ({ image: req.image, id: 'sha256:1' }),
    runOneOff: async (req: { spec: { name: string } }) => ({ name: req.spec.name, exitCode: 0, alreadyDone: false, lastLogLines: [] }),
    resolveRestoreMigration: async (req: { app: string; env: string; version: string; runTag: string }) => buildRestoreMigrationPlan(inventory, req, req.version, 'run-test', req.runTag) ?? null,
    removeContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, removed: req.names }),
    configureProxy: async () => ({ changed: true, previousWorkers: [101] }),
    waitProxyDrained: async () => ({ drained: true, stillServing: [], waitedMs: 1 }),
    reloadProxy: async () => ({ reloaded: true }),
    proxyMaintenance: async () => ({ changed: true }),
    startPreviousDatabaseKeeper: async (req: { workflowId: string }) => ({ workflowId: req.workflowId, started: true }),
    smokeTest: async (req: { url: string }) => ({ url: req.url, status: 200, body: 'v1' }),
    probeUrls: async (req: { urls: string[] }) => ({ ok: req.urls.length, failed: 0, errors: [] }),
    // The real bake loop, on a virtual clock (a sleep moves it forward at once) and this mock's probeUrls
    // (so its calls are counted, and a test's override decides what the probes see).
    bakeCanary: async (req: BakeRequest) => {
      let now = 0;
      const { bakeCanary } = createHealthActivities(undefined as never, {
        probe: (r) => activities.probeUrls(r) as ReturnType<Activities['probeUrls']>,
        now: () => now,
        sleep: async (ms) => {
          now += ms;
          await new Promise((r) => setImmediate(r)); // let the worker breathe between rounds
        },
      });
      return bakeCanary(req);
    },
    resolveBackupPlan: async (target: { app: string; env: string }) => {
      try {
        return buildBackupPlan(inventory, target);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
      }
    },
    resolveHousekeepingPlan: async (target: { app: string; env: string }) => {
      try {
        return buildHousekeepingPlan(inventory, target);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
      }
    },
    diskUsage: async (req: { host: { name: string } }) => {
      const area = { count: 1, size: 1000, reclaimable: 0 };
      return { host: req.host.name, disk: { images: area, containers: area, volumes: area, buildCache: { count: 0, size: 0, reclaimable: 0 } } };
    },
    // one webhook configured, reminders an hour before a deadline
    notifyRunbookEvent: async () => ({ webhooks: 1, sent: 1, alreadySent: 0, unconfirmed: 0, remindBeforeMs: 3_600_000 }),
    removeRunResources: async (req: { host: { name: string } }) => ({ host: req.host.name, removedContainers: ['shop-production-web-1'], removedNetworks: [] }),
  };
  const activities: Record<string, (...args: any[]) => Promise<unknown>> = {};
  for (const name of new Set([...Object.keys(defaults), ...Object.keys(overrides)])) {
    const impl = (overrides as Record<string, any>)[name] ?? (defaults as Record<string, any>)[name];
    activities[name] = async (...args: any[]) => {
      calls.push({ name, args: args[0] });
      return impl(...args);
    };
  }
  return { activities: activities as Partial<Activities>, calls, called: (name) => calls.filter((c) => c.name === name).length, names: () => calls.map((c) => c.name).filter((n) => n !== 'notifyRunbookEvent') };
}
