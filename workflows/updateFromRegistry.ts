// `runbook schedule updates`: Watchtower's job (seed 000) with the runbooks' gates. Every run asks
// the registry for the digest of the tracked tag; when the running replicas are not that digest, a
// child rollingUpdate goes to `<tag>@<digest>`: the backup first, the migration, the canary (a bake
// by default: a new digest at 03:00 needs nobody awake), and on any failure the rollback of the whole
// fleet. The version records the digest, so the fleet's labels say exactly what runs, and a rollback
// goes back to that digest even after the tag moved. A failure is alerted (the app's notify).
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ApplicationFailure, ChildWorkflowFailure, executeChild, proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { parseInput, UpdateFromRegistryInputSchema, type UpdateFromRegistryInput } from '../common/inputs';
import { runbookWorkflowId } from '../common/naming';
import type { RollingUpdateInput, RollingUpdateResult, TrackedUpdate } from '../common/types';
import { rootFailure } from './lib/steps';
import { Runbook } from './lib/runbook';
import { rollingUpdate } from './rollingUpdate';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });

/** Without a canary a bad digest would reach every replica before the verify step: a short bake. */
const DEFAULT_CANARY = { bake: '1m' } as const;

export interface UpdateFromRegistryResult extends TrackedUpdate {
  /** A rollout ran (and succeeded: a failed one fails this run). */
  updated: boolean;
  update?: RollingUpdateResult;
}

/** The child rollingUpdate (undefined: another update of the app/env runs); its failure (already rolled back) becomes this run's, with its message. */
async function rollOut(tracked: TrackedUpdate, options: { workflowId: string; memo: Record<string, unknown>; args: [RollingUpdateInput] }): Promise<RollingUpdateResult | undefined> {
  try {
    return await executeChild(rollingUpdate, options);
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return undefined;
    const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
    throw ApplicationFailure.create({
      message: `the rollout of ${tracked.version} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      type: cause instanceof ApplicationFailure ? (cause.type ?? 'UpdateFailed') : 'UpdateFailed',
      nonRetryable: true,
    });
  }
}

const plan = (t: TrackedUpdate) => `${t.repository}:${t.tag} is ${t.digest}`;

export async function updateFromRegistry(input: UpdateFromRegistryInput): Promise<UpdateFromRegistryResult> {
  const { app, env } = parseInput(UpdateFromRegistryInputSchema, input, 'updateFromRegistry');
  const rb = new Runbook('updateFromRegistry', { app, env });
  try {
    const tracked = await rb.step('ask the registry', () => quick.resolveTrackedUpdate(input));
    if (tracked.running.length === 0) {
      rb.note(`${plan(tracked)}: nothing of ${app}/${env} runs; deploy it first (runbook deploy ${app} --env ${env})`);
      rb.finish('succeeded');
      return { ...tracked, updated: false };
    }
    if (tracked.failedBefore) {
      // it was alerted then; the tag moving (a fixed image) or \`runbook update --version\` tries again
      rb.note(`${plan(tracked)}: its rollout failed at ${tracked.failedBefore.at} (${tracked.failedBefore.workflowId}, run ${tracked.failedBefore.runId}) and was rolled back; not tried again until the tag moves`);
      rb.finish('succeeded');
      return { ...tracked, updated: false };
    }
    if (tracked.current) {
      rb.note(`${plan(tracked)}: every replica runs it`);
      rb.finish('succeeded');
      return { ...tracked, updated: false };
    }
    rb.note(`${plan(tracked)}; running: ${tracked.running.join(', ')}`);
    rb.setPhase('running');
    const update = await rb.step(`roll out ${tracked.version}`, () =>
      rollOut(tracked, {
        // the same ID as `runbook update`: never two updates of one app/env at once
        workflowId: runbookWorkflowId('rollingUpdate', app, env),
        // how a later check knows this version's rollout failed
        memo: { trackedVersion: tracked.version },
        args: [
          {
            app,
            env,
            version: tracked.version,
            canary: input.canary ?? DEFAULT_CANARY,
            ...(input.batchSize !== undefined ? { batchSize: input.batchSize } : {}),
            ...(input.approvalTimeout !== undefined ? { approvalTimeout: input.approvalTimeout } : {}),
            ...(input.drainTimeout !== undefined ? { drainTimeout: input.drainTimeout } : {}),
          },
        ],
      }),
    );
    if (update === undefined) {
      rb.note(`an update of ${app}/${env} is running (${runbookWorkflowId('rollingUpdate', app, env)}): not started beside it; the next check looks again`);
      rb.finish('succeeded');
      return { ...tracked, updated: false };
    }
    rb.finish('succeeded');
    return { ...tracked, updated: true, update };
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}
