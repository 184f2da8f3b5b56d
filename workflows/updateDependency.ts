// `runbook update <app> --service <name>`: one dependency (Redis, PostgreSQL, …) goes to the image
// the inventory declares. Plan → lock → pull (an unknown tag changes nothing) → for a database, an
// approval gate and a backup first → the old container renamed `<name>-previous` and stopped (its
// data flushed), the new one started on the same volumes → health gate (its declared check) → the
// old one removed. Unhealthy or failed: the new one goes and the old one comes back with the data.
import { ApplicationFailure, CancellationScope, executeChild, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { parseInput, UpdateDependencyInputSchema, type UpdateDependencyInput } from '../common/inputs';
import { previousDependencyName } from '../common/naming';
import type { DependencyUpdatePlan } from '../common/types';
import { nightlyBackup } from './nightlyBackup';
import { errorMessage, Runbook } from './lib/runbook';
import { rootFailure, withLock } from './lib/steps';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });

export interface UpdateDependencyResult {
  app: string;
  env: string;
  service: string;
  image: string;
  /** The image it ran before; absent when it already ran the declared one (nothing changed). */
  fromImage?: string;
  unchanged: boolean;
}

export async function updateDependency(input: UpdateDependencyInput): Promise<UpdateDependencyResult> {
  const { app, env, approvalTimeout } = parseInput(UpdateDependencyInputSchema, input, 'updateDependency');
  const rb = new Runbook('updateDependency', { app, env });
  try {
    const plan = await rb.step('plan', () => quick.resolveDependencyUpdatePlan(input));
    const result = await withLock(rb, plan, () => replace(rb, plan, approvalTimeout));
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

async function replace(rb: Runbook, plan: DependencyUpdatePlan, approvalTimeout: string | undefined): Promise<UpdateDependencyResult> {
  const { container } = plan.dependency;
  const done = (fromImage?: string): UpdateDependencyResult => ({ app: plan.app, env: plan.env, service: plan.service, image: container.image, ...(fromImage ? { fromImage } : {}), unchanged: !fromImage });
  const running = await rb.step('read running', () => quick.inspectContainerImage({ host: plan.host, name: container.name }));
  if (running.image === container.image && !running.previousKept) return done();
  rb.setPhase('running');
  try {
    await rb.step('pull', () => waiting.pullImage({ host: plan.host, image: container.image }));
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${errorMessage(rootFailure(err))}\nnothing was changed: ${container.name} still runs ${running.image ?? 'nothing'}`, 'PullFailed');
  }
  if (plan.database) {
    const gate = await rb.gate(
      `update-${plan.service}`,
      `Replace the database container ${container.name} on ${plan.host.name}: ${running.image ?? '(none)'} → ${container.image}. Its volumes are kept${plan.backup ? ', a backup is taken first' : ''}; it is down while the new one starts; an unhealthy new one is rolled back.`,
      plan.approvals,
      approvalTimeout,
    );
    if (gate.outcome !== 'approved') {
      throw ApplicationFailure.nonRetryable(
        `the update of ${plan.service} was ${gate.outcome === 'rejected' ? `rejected by ${gate.by.join(', ')}` : 'not approved in time'}; nothing was changed`,
        gate.outcome === 'rejected' ? 'ApprovalRejected' : 'ApprovalTimedOut',
      );
    }
  }
  if (plan.backup) {
    const { runId } = workflowInfo();
    await rb.step('backup', () =>
      executeChild(nightlyBackup, {
        workflowId: `nightlyBackup/${plan.app}/${plan.env}/before-${plan.service}-update-${runId}`,
        args: [{ app: plan.app, env: plan.env, skipPrune: true, pin: { reason: 'pre-update' } }],
      }),
    );
  }
  let replaced: { previous?: { name: string; image: string } } = {};
  try {
    replaced = await rb.step('replace', () => waiting.replaceDependency({ host: plan.host, spec: container, timeoutSeconds: plan.stopTimeoutSeconds }));
    await rb.step('health check', () => waiting.waitHealthy({ host: plan.host, container: container.name, timeoutSeconds: plan.dependency.healthTimeoutSeconds }));
  } catch (err) {
    const cause = rootFailure(err);
    const outcome = await CancellationScope.nonCancellable(() => rollBack(rb, plan, replaced.previous?.image ?? running.image));
    throw ApplicationFailure.create({
      message: `${errorMessage(cause)}\n${outcome}`,
      type: cause instanceof ApplicationFailure ? (cause.type ?? 'UpdateFailed') : 'UpdateFailed',
      nonRetryable: true,
      ...(cause instanceof ApplicationFailure && cause.details?.length ? { details: cause.details } : {}),
    });
  }
  await rb.step('remove previous', () => quick.removeContainers({ host: plan.host, names: [previousDependencyName(container.name)], timeoutSeconds: plan.stopTimeoutSeconds }));
  return done(replaced.previous?.image ?? running.image ?? '(none)');
}

/** The new container goes; the kept one comes back on the same volumes and must be healthy. */
async function rollBack(rb: Runbook, plan: DependencyUpdatePlan, oldImage: string | undefined): Promise<string> {
  rb.setPhase('rolling-back');
  const { container } = plan.dependency;
  try {
    const back = await rb.step('rollback', () => waiting.restoreDependency({ host: plan.host, name: container.name, timeoutSeconds: plan.stopTimeoutSeconds }));
    await rb.step('rollback: health check', () => waiting.waitHealthy({ host: plan.host, container: container.name, timeoutSeconds: plan.dependency.healthTimeoutSeconds }));
    return `rolled back: ${container.name} runs ${back.image} again, on its volumes`;
  } catch (err) {
    return `ROLLBACK FAILED: ${errorMessage(rootFailure(err))}; ${container.name} was to go back to ${oldImage ?? 'its previous image'} (kept as ${previousDependencyName(container.name)} if it is not back)`;
  }
}
