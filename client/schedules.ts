// The nightly backup's Temporal Schedule: created or updated by `runbook schedule backup`, one per
// app/env (`nightlyBackup/<app>/<env>`). Overlap SKIP: a night still running when the next one is
// due is not doubled. The catch-up window says how late a missed run (server down at 02:00) may
// still start; older misses are skipped, not replayed in a burst.
// The certificate renewal's schedule (`runbook schedule certs`, one for the inventory) is at the end.
import { ScheduleNotFoundError, type Client, type ScheduleDescription, type ScheduleOptions } from '@temporalio/client';
import { parseDuration } from '../common/duration';
import { runbookWorkflowId } from '../common/naming';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV, SA_STEP } from '../common/search-attributes';
import type { HousekeepingInput, UpdateFromRegistryInput } from '../common/inputs';
import type { NightlyBackupInput } from '../common/types';
import { cronProblem, timezoneProblem } from './schedule-format';

export const DEFAULT_BACKUP_CRON = '0 2 * * *';
export const DEFAULT_CATCHUP_WINDOW = '6h';

export const backupScheduleId = (app: string, env: string): string => runbookWorkflowId('nightlyBackup', app, env);

export interface BackupScheduleOptions {
  app: string;
  env: string;
  cron?: string;
  timezone?: string;
  catchupWindow?: string;
  taskQueue: string;
}

function scheduleParts(o: BackupScheduleOptions) {
  const cron = o.cron ?? DEFAULT_BACKUP_CRON;
  const problem = cronProblem(cron, DEFAULT_BACKUP_CRON) ?? timezoneProblem(o.timezone ?? 'UTC');
  if (problem) throw new Error(problem);
  const catchupMs = catchupWindowMs(o.catchupWindow ?? DEFAULT_CATCHUP_WINDOW);
  const input: NightlyBackupInput = { app: o.app, env: o.env };
  return {
    spec: { cronExpressions: [cron.trim()], timezone: o.timezone ?? 'UTC' },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'nightlyBackup',
      args: [input],
      taskQueue: o.taskQueue,
      // the schedule appends the scheduled time: nightlyBackup/<app>/<env>-2026-11-22T02:00:00Z
      workflowId: backupScheduleId(o.app, o.env),
      staticSummary: `Nightly backup of ${o.app}/${o.env}`,
      typedSearchAttributes: [
        { key: SA_APP, value: o.app },
        { key: SA_ENV, value: o.env },
        { key: SA_STEP, value: 'starting' },
        { key: SA_AWAITING_APPROVAL, value: false },
      ],
    },
    policies: { overlap: 'SKIP' as const, catchupWindow: catchupMs },
  };
}

/** Creates the schedule, or updates its spec and policies (keeping its paused state): `created` says which. */
export async function upsertBackupSchedule(client: Client, o: BackupScheduleOptions): Promise<{ scheduleId: string; created: boolean }> {
  return upsertSchedule(client, backupScheduleId(o.app, o.env), scheduleParts(o), 'created by runbook schedule backup');
}

type ScheduleParts = Pick<ScheduleOptions, 'spec' | 'action' | 'policies'>;

/** Creates the schedule, or updates its spec, action and policies (keeping its paused state). */
async function upsertSchedule(client: Client, scheduleId: string, parts: ScheduleParts, note: string): Promise<{ scheduleId: string; created: boolean }> {
  const handle = client.schedule.getHandle(scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create({ scheduleId, ...parts, state: { note } });
    return { scheduleId, created: true };
  }
  await handle.update((prev) => ({ ...prev, spec: parts.spec, action: parts.action, policies: { ...prev.policies, ...parts.policies } }));
  return { scheduleId, created: false };
}

/** A catch-up window: at least 1m (Temporal's minimum is 10s; anything shorter misses runs after a brief outage). */
function catchupWindowMs(value: string): number {
  const ms = parseDuration(value, '--catchup-window');
  if (ms < 60_000) throw new Error('--catchup-window must be at least 1m (Temporal\'s minimum is 10s; anything shorter misses runs after a brief outage)');
  return ms;
}

export async function describeBackupSchedule(client: Client, app: string, env: string): Promise<ScheduleDescription> {
  return client.schedule.getHandle(backupScheduleId(app, env)).describe();
}

export interface TriggerOutcome {
  /** The workflow the trigger started, or undefined when it was skipped. */
  started?: string;
  /** Runs of the schedule still going (why a trigger was skipped). */
  running: string[];
}

/**
 * Starts a run through the schedule now, under the schedule's own overlap policy (the SDK's
 * trigger() without an argument would allow an overlap), and says what happened: a new run, or
 * skipped because one is going.
 */
export async function triggerBackupSchedule(client: Client, app: string, env: string, timeoutMs = 15_000): Promise<TriggerOutcome> {
  return triggerSchedule(client, backupScheduleId(app, env), timeoutMs);
}

/** triggerBackupSchedule for any schedule. */
export async function triggerSchedule(client: Client, scheduleId: string, timeoutMs = 15_000): Promise<TriggerOutcome> {
  const handle = client.schedule.getHandle(scheduleId);
  const before = await handle.describe();
  await handle.trigger(before.policies.overlap ?? 'SKIP');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await handle.describe();
    if (d.info.numActionsTaken > before.info.numActionsTaken) {
      const newest = [...d.info.recentActions].sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime()).at(-1);
      return { started: newest?.action.workflow.workflowId, running: d.info.runningActions.map((a) => a.workflow.workflowId) };
    }
    if (d.info.numActionsSkippedOverlap > before.info.numActionsSkippedOverlap) {
      return { running: d.info.runningActions.map((a) => a.workflow.workflowId) };
    }
    if (Date.now() > deadline) throw new Error(`the schedule ${handle.scheduleId} neither started nor skipped a run within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Whether the app/env has a backup schedule. */
export async function hasBackupSchedule(client: Client, app: string, env: string): Promise<boolean> {
  try {
    await client.schedule.getHandle(backupScheduleId(app, env)).describe();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Certificate renewal: ONE schedule for the whole inventory ("renewCertificates"). Each run lists
// every app/env with proxy.tls at that time, so an environment added to the inventory is covered
// without a new schedule, and renewals run one after the other (one CA account, its rate limits).

export const DEFAULT_CERT_EVERY = '12h';
export const DEFAULT_CERT_CATCHUP_WINDOW = '1h';

export const certScheduleId = (): string => 'renewCertificates';

export interface CertScheduleOptions {
  /** How often the certificates are checked (default 12h, aligned on the Unix epoch: 00:00 and 12:00 UTC). */
  every?: string;
  catchupWindow?: string;
  taskQueue: string;
}

function certScheduleParts(o: CertScheduleOptions): ScheduleParts {
  const every = o.every ?? DEFAULT_CERT_EVERY;
  const everyMs = parseDuration(every, '--every');
  if (everyMs < 60_000 || everyMs > 7 * 86_400_000) throw new Error(`--every must be from 1m to 7d (got "${every}"); certificates are renewed when a third of their lifetime is left`);
  return {
    spec: { intervals: [{ every: everyMs }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'renewCertificates',
      args: [{}],
      taskQueue: o.taskQueue,
      // the schedule appends the scheduled time: renewCertificates-2026-11-22T12:00:00Z
      workflowId: certScheduleId(),
      staticSummary: 'Certificate renewal check of every app/env with proxy.tls',
      typedSearchAttributes: [
        { key: SA_APP, value: '*' },
        { key: SA_ENV, value: '*' },
        { key: SA_STEP, value: 'starting' },
        { key: SA_AWAITING_APPROVAL, value: false },
      ],
    },
    policies: { overlap: 'SKIP', catchupWindow: catchupWindowMs(o.catchupWindow ?? DEFAULT_CERT_CATCHUP_WINDOW) },
  };
}

/** Creates the renewal schedule, or updates its interval and policies (keeping its paused state). */
export async function upsertCertSchedule(client: Client, o: CertScheduleOptions): Promise<{ scheduleId: string; created: boolean }> {
  return upsertSchedule(client, certScheduleId(), certScheduleParts(o), 'created by runbook schedule certs');
}

// ---------------------------------------------------------------------------------------------
// Housekeeping: one schedule per app/env (`housekeeping/<app>/<env>`), daily by default after the
// nightly backup. Overlap SKIP. A run that finds the app/env locked (an update going on) fails
// without removing anything; the next one tries again.

export const DEFAULT_HOUSEKEEPING_CRON = '30 4 * * *';

export const housekeepingScheduleId = (app: string, env: string): string => runbookWorkflowId('housekeeping', app, env);

/** The same options as the backup schedule's: an app/env, a cron line, its time zone, a catch-up window. */
export type HousekeepingScheduleOptions = BackupScheduleOptions;

export function housekeepingScheduleParts(o: HousekeepingScheduleOptions): ScheduleParts {
  const cron = o.cron ?? DEFAULT_HOUSEKEEPING_CRON;
  const problem = cronProblem(cron, DEFAULT_HOUSEKEEPING_CRON) ?? timezoneProblem(o.timezone ?? 'UTC');
  if (problem) throw new Error(problem);
  const input: HousekeepingInput = { app: o.app, env: o.env };
  return {
    spec: { cronExpressions: [cron.trim()], timezone: o.timezone ?? 'UTC' },
    action: {
      type: 'startWorkflow',
      workflowType: 'housekeeping',
      args: [input],
      taskQueue: o.taskQueue,
      // the schedule appends the scheduled time: housekeeping/<app>/<env>-2026-11-22T04:30:00Z
      workflowId: housekeepingScheduleId(o.app, o.env),
      staticSummary: `Housekeeping of ${o.app}/${o.env}: images older than the running and previous versions, disk per host`,
      typedSearchAttributes: [
        { key: SA_APP, value: o.app },
        { key: SA_ENV, value: o.env },
        { key: SA_STEP, value: 'starting' },
        { key: SA_AWAITING_APPROVAL, value: false },
      ],
    },
    policies: { overlap: 'SKIP', catchupWindow: catchupWindowMs(o.catchupWindow ?? DEFAULT_CATCHUP_WINDOW) },
  };
}

/** Creates the housekeeping schedule of an app/env, or updates it (keeping its paused state). */
export async function upsertHousekeepingSchedule(client: Client, o: HousekeepingScheduleOptions): Promise<{ scheduleId: string; created: boolean }> {
  return upsertSchedule(client, housekeepingScheduleId(o.app, o.env), housekeepingScheduleParts(o), 'created by runbook schedule housekeeping');
}

// ---------------------------------------------------------------------------------------------
// Updates from the registry: one schedule per app/env (`updateFromRegistry/<app>/<env>`), every 15
// minutes by default (seed 000's Watchtower interval). Overlap SKIP: a rollout still running when the
// next check is due is not doubled; a missed check is not worth catching up beyond one interval.

export const DEFAULT_UPDATES_EVERY = '15m';

export const updatesScheduleId = (app: string, env: string): string => runbookWorkflowId('updateFromRegistry', app, env);

export interface UpdatesScheduleOptions {
  app: string;
  env: string;
  every?: string;
  /** The tag to follow (default: the tag of the environment's version). */
  tag?: string;
  canary?: UpdateFromRegistryInput['canary'];
  taskQueue: string;
}

export function updatesScheduleParts(o: UpdatesScheduleOptions): ScheduleParts {
  const every = o.every ?? DEFAULT_UPDATES_EVERY;
  const everyMs = parseDuration(every, '--every');
  if (everyMs < 60_000 || everyMs > 86_400_000) throw new Error(`--every must be from 1m to 1d (got "${every}")`);
  const input: UpdateFromRegistryInput = { app: o.app, env: o.env, ...(o.tag !== undefined ? { tag: o.tag } : {}), ...(o.canary !== undefined ? { canary: o.canary } : {}) };
  return {
    spec: { intervals: [{ every: everyMs }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'updateFromRegistry',
      args: [input],
      taskQueue: o.taskQueue,
      // the schedule appends the scheduled time: updateFromRegistry/<app>/<env>-2026-11-22T12:15:00Z
      workflowId: updatesScheduleId(o.app, o.env),
      staticSummary: `Updates of ${o.app}/${o.env} from the registry (${o.tag ?? 'its version\'s tag'}), every ${every}`,
      typedSearchAttributes: [
        { key: SA_APP, value: o.app },
        { key: SA_ENV, value: o.env },
        { key: SA_STEP, value: 'starting' },
        { key: SA_AWAITING_APPROVAL, value: false },
      ],
    },
    policies: { overlap: 'SKIP', catchupWindow: Math.max(60_000, everyMs) },
  };
}

/** Creates the updates schedule of an app/env, or updates it (keeping its paused state). */
export async function upsertUpdatesSchedule(client: Client, o: UpdatesScheduleOptions): Promise<{ scheduleId: string; created: boolean }> {
  return upsertSchedule(client, updatesScheduleId(o.app, o.env), updatesScheduleParts(o), 'created by runbook schedule updates');
}
