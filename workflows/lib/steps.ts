// Step helpers every runbook shares: the per-app/env lock, failures a human reads,
// and parallel steps that settle before anyone cleans up after them.
import { ActivityFailure, ApplicationFailure, CancellationScope, log, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { errorMessage, type Runbook } from './runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };
const lockActivities = proxyActivities<Pick<Activities, 'acquireLock' | 'releaseLock'>>({ startToCloseTimeout: '2 minutes', retry });

/** The failure a human should read: an activity's own ApplicationFailure rather than its wrapper. */
export function rootFailure(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return err;
}

/**
 * Holds the app/env lock for the duration of `fn`; refuses at once if another runbook holds it.
 * The outcome of `fn` is the outcome: a release that fails (after its retries) is logged and shown
 * in the status, never thrown over the real result or the real error.
 */
export async function withLock<T>(rb: Runbook, target: { app: string; env: string }, fn: () => Promise<T>): Promise<T> {
  const { workflowId, runId } = workflowInfo();
  const answer = await rb.step('lock', () => lockActivities.acquireLock({ app: target.app, env: target.env, holder: { workflowId, runId, runbook: rb.name } }));
  if (!answer.acquired) {
    const h = answer.holder;
    throw ApplicationFailure.nonRetryable(`${target.app}/${target.env} is locked by ${h.runbook} (${h.workflowId}, run ${h.runId}) since ${h.since}; nothing was changed`, 'Locked', h);
  }
  try {
    return await fn();
  } finally {
    await CancellationScope.nonCancellable(async () => {
      try {
        await lockActivities.releaseLock({ app: target.app, env: target.env, workflowId, runId });
      } catch (err) {
        const message = `could not release the lock of ${target.app}/${target.env} (release it with \`runbook lock release ${target.app} --env ${target.env} --by <you>\`): ${errorMessage(rootFailure(err))}`;
        log.error(message);
        rb.note(message);
      }
    });
  }
}

/**
 * Like Promise.all, but waits until every promise has settled before it throws the first failure:
 * a clean-up that follows a failed parallel step never runs while a sibling is still creating things.
 */
export async function allSettled<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
