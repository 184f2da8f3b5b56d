// The runbook metrics' names, labels and histogram buckets: shared by the workflow interceptor that
// records them (workflows/lib/metrics-interceptor.ts), the worker that exports them (workers/) and docs/metrics.md.

/** Counter: one per finished runbook run. Labels: runbook, app, env, outcome (+ the SDK's namespace, taskQueue, workflowType). */
export const RUNS_TOTAL = 'runbook_runs_total';
/** Histogram (seconds): from the run's start to its end, whatever the outcome. Same labels as RUNS_TOTAL. */
export const RUN_DURATION_SECONDS = 'runbook_run_duration_seconds';
/** Gauge: runs that wait for an approval now (visibility: RunbookAwaitingApproval = true). Labels: runbook, app, env. */
export const GATES_WAITING = 'runbook_gates_waiting';
/** Gauge: when the newest verified backup was taken (seconds since the epoch). Labels: app, env, database. */
export const LAST_BACKUP_TIMESTAMP_SECONDS = 'runbook_backup_last_success_timestamp_seconds';
/** Gauge: when the certificate a proxy serves expires (seconds since the epoch). Labels: app, env, host, name. */
export const CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS = 'runbook_certificate_expiry_timestamp_seconds';
/** Gauge: 1 when the last read of a source succeeded, 0 when it failed (its other gauges keep their last value). Labels: source, app, env. */
export const SOURCE_UP = 'runbook_metrics_source_up';

/** Runs last from seconds (a no-op update) to days (a cutover's window). */
export const RUN_DURATION_BUCKETS_SECONDS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600];

export type RunOutcome = 'succeeded' | 'failed' | 'cancelled';

export interface RunLabels {
  runbook: string;
  app: string;
  env: string;
  outcome: RunOutcome;
}

/** A finished run's labels; app/env as its search attributes say (`*` for a run over the whole inventory). */
export function runLabels(runbook: string, target: { app: string; env: string }, outcome: RunOutcome): RunLabels {
  return { runbook, app: target.app, env: target.env, outcome };
}

/** A run's duration in seconds from its start and end in ms since the epoch (never negative). */
export function runDurationSeconds(startMs: number, endMs: number): number {
  return Math.max(0, endMs - startMs) / 1000;
}
