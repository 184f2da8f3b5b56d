// Message definitions shared by workflows and clients (pure: safe in the workflow bundle).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CutoverStatus } from '../../common/cutover';
import type { ApprovalDecisionInput, DecisionRecord, RunbookStatus } from '../../common/types';

/** Approve a pending gate: `{ gate, by, comment }`. From the UI, `temporal workflow signal`, or the CLI. */
export const approveSignal = defineSignal<[ApprovalDecisionInput]>('approve');
/** Reject a pending gate; one reject decides. */
export const rejectSignal = defineSignal<[ApprovalDecisionInput]>('reject');
/** Same as the signals, answered at once: the validator refuses what the signal would ignore. */
export const decideUpdate = defineUpdate<DecisionRecord, [ApprovalDecisionInput & { decision: 'approve' | 'reject' }]>('decide');
/** Phase, current step, pending gates and the decisions log. */
export const statusQuery = defineQuery<RunbookStatus>('status');

// The per-app/env lock workflow: one definition, in common/ (its activities and the CLI use it too).
export { acquireLockUpdate, lockHolderQuery, releaseLockSignal } from '../../common/lock';

// The kept pre-restore database (releasePreviousDatabase): drop it now instead of at the window's end.
export const releasePreviousSignal = defineSignal<[{ by: string }]>('release');

// The DNS cutover (dnsCutover): a rollback asked for inside the window (it opens the "rollback"
// approval gate), a longer window (from an approver), and the cutover's own status.
export const requestRollbackSignal = defineSignal<[{ by: string; reason?: string }]>('rollback');
export const extendWindowSignal = defineSignal<[{ by: string; extendBy: string; reason?: string }]>('extendWindow');
export const cutoverStatusQuery = defineQuery<CutoverStatus>('cutoverStatus');
