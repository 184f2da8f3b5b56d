// Activity context helpers that also work when an activity function is called directly (tests).
import { Context, type Info } from '@temporalio/activity';

export function activityInfoOrUndefined(): Info | undefined {
  try {
    return Context.current().info;
  } catch {
    return undefined;
  }
}

/** Heartbeat with progress details when running as an activity. */
export function heartbeat(details?: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // not inside an activity
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `fn` heartbeating every `everyMs`, so a short heartbeat timeout notices a dead worker in seconds. */
export async function whileHeartbeating<T>(fn: () => Promise<T>, everyMs = 2000): Promise<T> {
  heartbeat();
  const timer = setInterval(() => heartbeat(), everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Aborted when the activity is cancelled (delivered with a heartbeat) or its worker shuts down. */
export function cancellationSignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}
