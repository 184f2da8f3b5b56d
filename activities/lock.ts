// Lock activities: talk to the per-app/env lock workflow (update-with-start, so acquiring either
// starts the lock or asks the running one). A holder that is no longer running is released.
import { ApplicationFailure } from '@temporalio/common';
import { WithStartWorkflowOperation, WorkflowNotFoundError } from '@temporalio/client';
import { acquireLockUpdate, LOCK_WORKFLOW_TYPE, releaseLockSignal } from '../common/lock';
import { lockWorkflowId } from '../common/naming';
import type { LockAnswer, LockHolder } from '../common/types';
import type { ActivityDeps } from './deps';

export function createLockActivities(deps: ActivityDeps) {
  const temporal = () => {
    if (!deps.temporal) throw ApplicationFailure.nonRetryable('this worker has no Temporal client for locks', 'WorkerMisconfigured');
    return deps.temporal;
  };

  const tryAcquire = async (app: string, env: string, holder: Omit<LockHolder, 'since'>): Promise<LockAnswer> => {
    const { client, taskQueue } = temporal();
    return client.workflow.executeUpdateWithStart(acquireLockUpdate, {
      args: [holder],
      startWorkflowOperation: new WithStartWorkflowOperation(LOCK_WORKFLOW_TYPE, {
        workflowId: lockWorkflowId(app, env),
        taskQueue,
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `Lock for ${app}/${env}`,
      }),
    });
  };

  return {
    async acquireLock(req: { app: string; env: string; holder: Omit<LockHolder, 'since'> }): Promise<LockAnswer> {
      const answer = await tryAcquire(req.app, req.env, req.holder);
      if (answer.acquired) return answer;
      // A holder that ended without releasing (terminated, timed out) must not block forever.
      const { client } = temporal();
      const description = await client.workflow.getHandle(answer.holder.workflowId, answer.holder.runId).describe().catch((err) => {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      });
      if (description && description.status.name === 'RUNNING') return answer;
      await client.workflow.getHandle(lockWorkflowId(req.app, req.env)).signal(releaseLockSignal, { workflowId: answer.holder.workflowId, runId: answer.holder.runId });
      return tryAcquire(req.app, req.env, req.holder);
    },

    async releaseLock(req: { app: string; env: string; workflowId: string; runId: string }): Promise<void> {
      const { client } = temporal();
      try {
        await client.workflow.getHandle(lockWorkflowId(req.app, req.env)).signal(releaseLockSignal, { workflowId: req.workflowId, runId: req.runId });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err; // no lock workflow: nothing to release
      }
    },

  };
}
