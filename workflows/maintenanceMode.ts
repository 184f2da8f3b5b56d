// `runbook maintenance on|off`: every proxy of an app/env answers 503 with Retry-After and the app's
// maintenance page, or serves the app again. Under the app/env lock, so it never turns maintenance
// off under a restore that has the app stopped (the restore turns it on and off by itself).
import { proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { MaintenanceModeInputSchema, parseInput, type MaintenanceModeInput } from '../common/inputs';
import { allSettled, rootFailure, withLock } from './lib/steps';
import { Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });

export interface MaintenanceModeResult {
  app: string;
  env: string;
  on: boolean;
  /** Per proxy: whether this run switched it (false: it already was so). */
  proxies: { host: string; container: string; changed: boolean }[];
}

export async function maintenanceMode(input: MaintenanceModeInput): Promise<MaintenanceModeResult> {
  const { app, env, on, reason } = parseInput(MaintenanceModeInputSchema, input, 'maintenanceMode');
  const rb = new Runbook('maintenanceMode', { app, env });
  try {
    const plan = await rb.step('plan', () => quick.resolveMaintenancePlan({ app, env }));
    const result = await withLock(rb, plan, async () => {
      const switched = await rb.step(`maintenance ${on ? 'on' : 'off'}`, () =>
        allSettled(plan.proxies.map((p) => quick.proxyMaintenance({ host: p.host, container: p.container, app, env, on, reason: reason ?? 'runbook maintenance on', ...plan.maintenance }))),
      );
      return { app, env, on, proxies: plan.proxies.map((p, i) => ({ host: p.host.name, container: p.container, changed: switched[i].changed })) };
    });
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}
