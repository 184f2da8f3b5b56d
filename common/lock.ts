// The per-app/env lock's workflow type and message definitions, shared by the lock workflow
// (workflows/lock.ts), its activities (activities/lock.ts) and the CLI. Plain data typed with
// @temporalio/common (what defineUpdate/defineSignal/defineQuery return), so activity and client
// code need not import workflow code, and the workflow bundle may import it too.
import type { QueryDefinition, SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { LockAnswer, LockHolder } from './types';

/** The lock workflow's type: the name of the function exported by workflows/lock.ts. */
export const LOCK_WORKFLOW_TYPE = 'appLock';
export const LOCK_ACQUIRE_UPDATE = 'acquire';
export const LOCK_RELEASE_SIGNAL = 'release';
export const LOCK_HOLDER_QUERY = 'holder';

/** Who asks for the lock (the lock adds `since`). */
export type LockRequest = Omit<LockHolder, 'since'>;
/** Releases the lock if held by this run, or whoever holds it with `force`. */
export interface LockRelease {
  workflowId: string;
  runId: string;
  force?: boolean;
}

export const acquireLockUpdate = { type: 'update', name: LOCK_ACQUIRE_UPDATE } as UpdateDefinition<LockAnswer, [LockRequest], typeof LOCK_ACQUIRE_UPDATE>;
export const releaseLockSignal = { type: 'signal', name: LOCK_RELEASE_SIGNAL } as SignalDefinition<[LockRelease], typeof LOCK_RELEASE_SIGNAL>;
export const lockHolderQuery = { type: 'query', name: LOCK_HOLDER_QUERY } as QueryDefinition<LockHolder | null, [], typeof LOCK_HOLDER_QUERY>;
