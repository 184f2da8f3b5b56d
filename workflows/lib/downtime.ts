// What a restore does around the app's downtime: maintenance mode (every proxy of the app/env
// answers 503 with Retry-After and the app's page, not a stopped upstream's 502), and starting the
// containers it stopped again, health-gated, before maintenance mode is turned off.
import { ActivityCancellationType, proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { BackupPlan, HostSpec } from '../../common/types';
import { errorMessage, type Runbook } from './runbook';
import { allSettled, rootFailure } from './steps';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });
/** Runs while the app is down: heartbeats (a dead worker is noticed in seconds), and runs to its end when the run is cancelled. */
const settling = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { ...retry, initialInterval: '1s' },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** The containers that were running on a host when a restore stopped them: what it starts again. */
export interface RunningWeb {
  host: HostSpec;
  containers: string[];
}

export interface Maintenance {
  isOn: boolean;
  on(rb: Runbook): Promise<void>;
  off(rb: Runbook): Promise<void>;
}

export function maintenanceOf(plan: BackupPlan, reason: string): Maintenance {
  const request = (p: { host: HostSpec; container: string }, on: boolean) => quick.proxyMaintenance({ host: p.host, container: p.container, app: plan.app, env: plan.env, on, reason, ...plan.maintenance! });
  const m: Maintenance = {
    isOn: false,
    async on(rb) {
      try {
        m.isOn = true; // set first: a proxy switched before a sibling failed is switched back
        await rb.step('maintenance on', () => allSettled(plan.proxies!.map((p) => request(p, true))));
      } catch (err) {
        // the restore goes on: requests get 502 while the app is stopped, as before maintenance mode
        rb.note(`maintenance mode could not be turned on: ${errorMessage(rootFailure(err))}`);
      }
    },
    async off(rb) {
      if (!m.isOn) return;
      await rb.step('maintenance off', () => allSettled(plan.proxies!.map((p) => request(p, false))));
      m.isOn = false;
    },
  };
  return m;
}

/** Starts every container that was running, then waits until each is healthy and the app answers. */
export async function startFleet(rb: Runbook, plan: BackupPlan, running: RunningWeb[], maintenance?: Maintenance): Promise<void> {
  await rb.step('start app', () => allSettled(running.map((r) => (r.containers.length ? settling.startContainers({ host: r.host, names: r.containers }) : Promise.resolve({ host: r.host.name, started: [] })))));
  // A restarted container may get another address: each proxy reloads to resolve the names again.
  await rb.step('reload proxies', () => allSettled((plan.proxies ?? []).map((p) => quick.reloadProxy(p))));
  if (maintenance) {
    // healthy containers first, then the proxies serve the app again, then the check through them
    await rb.step('health check', () => allSettled(running.flatMap((r) => r.containers.map((container) => waiting.waitHealthy({ host: r.host, container, timeoutSeconds: plan.healthTimeoutSeconds })))));
    await maintenance.off(rb);
    const url = plan.healthUrl;
    if (url) await rb.step('smoke test', () => waiting.smokeTest({ url, expectStatus: 200 }));
    return;
  }
  await rb.step('health check', async () => {
    await allSettled(running.flatMap((r) => r.containers.map((container) => waiting.waitHealthy({ host: r.host, container, timeoutSeconds: plan.healthTimeoutSeconds }))));
    if (plan.healthUrl) await waiting.smokeTest({ url: plan.healthUrl, expectStatus: 200 });
  });
}
