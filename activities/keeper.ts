// Starts the run that keeps a pre-restore database until it is released or its window ends
// (releasePreviousDatabase in workflows/restoreBackup.ts). An independent workflow, not a child:
// it outlives the restore by days. Started idempotently: a retried attempt finds the first one.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV, SA_STEP } from '../common/search-attributes';
import type { ActivityDeps } from './deps';
import type { ReleasePreviousDatabaseInput } from '../common/inputs';

/** The input of releasePreviousDatabase (its schema: common/inputs.ts). */
export type KeepPreviousInput = ReleasePreviousDatabaseInput;

export function createKeeperActivities(deps: ActivityDeps) {
  return {
    async startPreviousDatabaseKeeper(req: { workflowId: string; input: KeepPreviousInput; summary: string }): Promise<{ workflowId: string; started: boolean }> {
      if (!deps.temporal) throw ApplicationFailure.nonRetryable('this worker has no Temporal client to start releasePreviousDatabase', 'WorkerMisconfigured');
      const { client, taskQueue } = deps.temporal;
      try {
        await client.workflow.start('releasePreviousDatabase', {
          workflowId: req.workflowId,
          taskQueue,
          args: [req.input],
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE', // one keeper per restore, even after it ended
          staticSummary: req.summary,
          typedSearchAttributes: [
            { key: SA_APP, value: req.input.app },
            { key: SA_ENV, value: req.input.env },
            { key: SA_STEP, value: 'starting' },
            { key: SA_AWAITING_APPROVAL, value: false },
          ],
        });
        return { workflowId: req.workflowId, started: true };
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return { workflowId: req.workflowId, started: false };
        throw err;
      }
    },
  };
}
