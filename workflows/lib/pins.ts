// Pinned backups, the workflow side: a restore's safety backup and a rolling update's pre-update
// backup are pinned in their manifest (reason, the pinning workflow, the time the pin ends), so
// the nightly retention keeps them outside its slots until released or until the window ends.
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import { parseDuration } from '../../common/duration';
import { DEFAULT_PIN_WINDOW, type BackupPin, type BackupPinRequest, type PinReason } from '../../common/types';

/**
 * patched() ID of pinned backups: the pin passed to backupDatabase and the pin-aware retention.
 * Runs recorded before it replay the old path (no pin, retention over every backup).
 */
export const BACKUP_PINS_PATCH = 'backup-pins';

/** A pin window in ms (default 30 d); a non-retryable InvalidInput naming `field` when it is not a positive duration. */
export function pinWindowMs(window: unknown, field = 'pin.window'): number {
  if (window === undefined) return parseDuration(DEFAULT_PIN_WINDOW);
  let ms: number;
  try {
    if (typeof window !== 'string' && typeof window !== 'number') throw new Error(`${field}: must be a duration like "30d"`);
    ms = parseDuration(window, field);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`invalid input: ${(err as Error).message}`, 'InvalidInput');
  }
  if (ms <= 0) throw ApplicationFailure.nonRetryable(`invalid input: ${field}: must be longer than 0 (release the pin instead)`, 'InvalidInput');
  return ms;
}

/** The pin for a backup taken at `at` (default now) by this workflow (or `by`), ending `window` (default 30 d) later. */
export function backupPin(reason: PinReason, window?: string, by: string = workflowInfo().workflowId, at: number = Date.now()): BackupPin {
  return { reason, by, until: new Date(at + pinWindowMs(window)).toISOString() };
}

/** The pin a runbook input asks for on a backup taken at `at` (ISO), by the workflow that started this one (a rolling update's child backup) or this one. */
export function requestedPin(request: BackupPinRequest, at: string): BackupPin {
  const info = workflowInfo();
  return backupPin(request.reason, request.window, info.parent?.workflowId ?? info.workflowId, Date.parse(at));
}

/**
 * `{ pin }` for a backup this workflow takes now (a restore's safety backup), behind
 * patched(BACKUP_PINS_PATCH): a replay of a run recorded before pins gets `{}`, the old input.
 */
export function pinIfPatched(reason: PinReason, window?: string): { pin?: BackupPin } {
  return patched(BACKUP_PINS_PATCH) ? { pin: backupPin(reason, window) } : {};
}

/** `{ pin }` for a child nightlyBackup's input (a rolling update's pre-update backup), behind patched(BACKUP_PINS_PATCH). */
export function pinRequestIfPatched(reason: PinReason): { pin?: BackupPinRequest } {
  return patched(BACKUP_PINS_PATCH) ? { pin: { reason } } : {};
}
