// The per-app/env lock (like `kamal lock`): a workflow that lives exactly while the lock is held.
// Acquired by update-with-start, so a second runbook gets an immediate "held by ..." answer.
import { allHandlersFinished, condition, setHandler } from '@temporalio/workflow';
import type { LockHolder } from '../common/types';
import { acquireLockUpdate, lockHolderQuery, releaseLockSignal } from './lib/definitions';

export async function appLock(): Promise<{ releasedBy: string | null }> {
  let holder: LockHolder | null = null;
  let everHeld = false;
  let releasedBy: string | null = null;

  setHandler(lockHolderQuery, () => holder);
  setHandler(acquireLockUpdate, (request) => {
    if (holder && (holder.workflowId !== request.workflowId || holder.runId !== request.runId)) {
      return { acquired: false, holder };
    }
    // Re-acquiring by the same run (an activity retry) is a no-op.
    holder ??= { ...request, since: new Date().toISOString() };
    everHeld = true;
    return { acquired: true, holder };
  });
  setHandler(releaseLockSignal, (request) => {
    if (holder && (request.force || (holder.workflowId === request.workflowId && holder.runId === request.runId))) {
      releasedBy = request.force ? `forced by ${request.workflowId}` : request.workflowId;
      holder = null;
    }
  });

  // Started by update-with-start, so the first acquire arrives with the start; one started any
  // other way (by hand) ends instead of lingering.
  if (!(await condition(() => everHeld, '1 minute'))) return { releasedBy: null };
  await condition(() => holder === null && allHandlersFinished());
  return { releasedBy };
}
