// `runbook stop`: an app/env stops. On every host its containers (found by label) are stopped with
// their grace period and removed, the proxy first and the databases last, then its networks. Its
// volumes, the data, are kept: removing them too must be asked for (`--volumes`) and approved.
import { ApplicationFailure, proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { parseInput, StopAppInputSchema, type StopAppInput } from '../common/inputs';
import { allSettled, rootFailure, withLock } from './lib/steps';
import { Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
/** Stopping waits for every container's grace period. */
const stopping = proxyActivities<Activities>({ startToCloseTimeout: '15 minutes', retry });

export interface StopAppResult {
  app: string;
  env: string;
  hosts: { host: string; removed: { name: string; role: string }[]; networks: string[] }[];
  /** Volumes that exist and were kept, or were removed (approved). */
  volumes: { host: string; name: string; removed: boolean }[];
}

export async function stopApp(input: StopAppInput): Promise<StopAppResult> {
  const { app, env, removeVolumes, approvalTimeout } = parseInput(StopAppInputSchema, input, 'stopApp');
  const rb = new Runbook('stopApp', { app, env });
  try {
    const plan = await rb.step('plan', () => quick.resolveStopPlan({ app, env }));
    const result = await withLock(rb, plan, async (): Promise<StopAppResult> => {
      const hostsWith = (host: string) => plan.hosts.find((h) => h.name === host)!;
      const existing = await rb.step('list volumes', () =>
        allSettled(plan.hosts.map((h) => quick.listVolumes({ host: h, names: plan.volumes.filter((v) => v.host === h.name).map((v) => v.name) }))),
      );
      const volumes = existing.flatMap((e) => e.existing.map((name) => ({ host: e.host, name })));
      if (removeVolumes && volumes.length) {
        // before anything stops: refused or unanswered, nothing was changed
        const gate = await rb.gate(
          'remove-volumes',
          `Stop ${app}/${env} and REMOVE its volumes, the data in them: ${volumes.map((v) => `${v.name} on ${v.host}`).join(', ')}. Not approved: nothing is changed.`,
          plan.approvals,
          approvalTimeout,
        );
        if (gate.outcome !== 'approved') {
          throw ApplicationFailure.nonRetryable(
            `removing the volumes of ${app}/${env} was ${gate.outcome === 'rejected' ? `rejected by ${gate.by.join(', ')}` : 'not approved in time'}; nothing was changed`,
            gate.outcome === 'rejected' ? 'ApprovalRejected' : 'ApprovalTimedOut',
          );
        }
      }
      const hosts = await rb.step('stop containers', () => allSettled(plan.hosts.map((h) => stopping.removeAppContainers({ host: h, app, env, timeoutSeconds: plan.stopTimeoutSeconds }))));
      const removing = removeVolumes === true && volumes.length > 0;
      if (removing) {
        // a volume already gone (a retried attempt removed it) counts as removed
        const onHosts = [...new Set(volumes.map((v) => v.host))];
        await rb.step('remove volumes', () => allSettled(onHosts.map((h) => quick.removeVolumes({ host: hostsWith(h), names: volumes.filter((v) => v.host === h).map((v) => v.name) }))));
      }
      return { app, env, hosts, volumes: volumes.map((v) => ({ ...v, removed: removing })) };
    });
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}
