// The restore runbook (seed 003 "restore.sh", 000 "Restore procedure"), destructive, so gated:
// pick a verified backup → approval → lock → safety backup of the current data (and its drill) →
// restore into a side database and check it against the manifest (the app still runs) → stop the
// app → swap the restored database in (the old one is kept aside) → start the app → health check.
// From the first stop on, every step is one recovery path: on any failure or cancellation the
// previous database is put back if it was moved (the swap activities read the databases' state, so
// this holds whatever step died) and every web container that was running is started again. The
// previous live database holds every write up to the stop: it is kept (renamed) until released
// (`runbook restore --release`) or its window ends (default 7 days; releasePreviousDatabase below).
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { KeepPreviousInput } from '../activities/keeper';
import { restoreDatabaseNames } from '../common/commands/scratch';
import { parseDuration } from '../common/duration';
import type { BackupPlan, DatabaseTarget, FleetContainer, RestoreBackupInput } from '../common/types';
import { releasePreviousSignal } from './lib/definitions';
import { parseInput, ReleasePreviousDatabaseInputSchema, RestoreBackupInputSchema } from '../common/inputs';
import { maintenanceOf, startFleet, type RunningWeb } from './lib/downtime';
import { allSettled, rootFailure, withLock } from './lib/steps';
import { pinIfPatched } from './lib/pins';
import { errorMessage, Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const streaming = proxyActivities<Activities>({ startToCloseTimeout: '12 hours', heartbeatTimeout: '30 seconds', retry });
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });
/**
 * What runs while the app is down: these heartbeat, so a dead worker is noticed in seconds; and they
 * run to their end even when the run is cancelled, so the recovery never races a stop or a swap.
 */
const settling = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { ...retry, initialInterval: '1s' },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** How long the pre-restore database is kept by default: it holds every write up to the stop. */
export const DEFAULT_KEEP_PREVIOUS = '7d';

export interface RestoreBackupResult {
  app: string;
  env: string;
  database: string;
  restored: string;
  safetyBackup: string;
  tables: number;
  rows: number;
  previousDatabase: string;
  previousKept: boolean;
  /** The workflow that drops the kept previous database when released or when its window ends. */
  previousReleasedBy?: { workflowId: string; keepFor: string };
  appDownSeconds: number;
}

function validateRestoreInput(input: RestoreBackupInput): void {
  parseInput(RestoreBackupInputSchema, input, 'restoreBackup');
}

function chooseTarget(plan: BackupPlan, name: string | undefined): DatabaseTarget {
  const names = plan.targets.map((t) => t.name);
  if (name === undefined) {
    if (plan.targets.length === 1) return plan.targets[0];
    throw ApplicationFailure.nonRetryable(`${plan.app}/${plan.env} has ${names.length} databases: say which one to restore (${names.join(', ')})`, 'InvalidInput');
  }
  const target = plan.targets.find((t) => t.name === name);
  if (!target) throw ApplicationFailure.nonRetryable(`${plan.app}/${plan.env} has no database "${name}" (it has: ${names.join(', ')})`, 'InvalidInput');
  return target;
}

export async function restoreBackup(input: RestoreBackupInput): Promise<RestoreBackupResult> {
  validateRestoreInput(input);
  const rb = new Runbook('restoreBackup', { app: input.app, env: input.env });
  try {
    const plan = await rb.step('plan', () => quick.resolveBackupPlan({ app: input.app, env: input.env }));
    const target = chooseTarget(plan, input.database);
    const storage = plan.storage;
    const chosen = await rb.step('choose backup', async () => {
      const { backups } = await quick.listBackups({ app: plan.app, env: plan.env, target, storage });
      const verified = backups.filter((b) => b.verified);
      const wanted = input.backup ?? 'latest';
      if (wanted === 'latest') {
        const newest = verified[verified.length - 1];
        if (!newest) throw ApplicationFailure.nonRetryable(`no verified backup of ${plan.app}/${plan.env}/${target.name} in storage (${backups.length} unverified)`, 'BackupMissing');
        return newest;
      }
      const found = backups.find((b) => b.file === wanted);
      if (!found) throw ApplicationFailure.nonRetryable(`no backup ${wanted} of ${plan.app}/${plan.env}/${target.name} (newest verified: ${verified[verified.length - 1]?.file ?? 'none'})`, 'BackupMissing');
      if (!found.verified) throw ApplicationFailure.nonRetryable(`backup ${wanted} never passed its restore drill; refusing to restore it`, 'BackupUnverified');
      return found;
    });

    await rb.gate(
      'restore',
      `Restore ${target.name} (${target.database}) of ${plan.app}/${plan.env} from ${chosen.file} (taken ${chosen.createdAt}). ` +
        'The app is stopped during the swap; the current data is backed up first and kept aside.',
      plan.approval,
      input.approvalTimeout,
    ).then((g) => {
      if (g.outcome !== 'approved') throw ApplicationFailure.nonRetryable(`restore not approved (${g.outcome}); nothing was changed`, 'NotApproved', g);
    });

    rb.setPhase('running');
    // Runs recorded before the recovery path keep their old order (restoreV1) so they replay.
    const result = await withLock(rb, plan, () => (patched('restore-fleet-recovery-keep-previous') ? restore(rb, plan, target, chosen.file, input) : restoreV1(rb, plan, target, chosen.file, input)));
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

async function restore(rb: Runbook, plan: BackupPlan, target: DatabaseTarget, file: string, input: RestoreBackupInput): Promise<RestoreBackupResult> {
  const runTag = workflowInfo().startTime.toISOString();
  const storage = plan.storage;
  const safety = await rb.step('safety backup', () => streaming.backupDatabase({ app: plan.app, env: plan.env, target, storage, at: new Date().toISOString(), checksums: plan.checksums, ...pinIfPatched('safety', input.safetyPinWindow) }));
  await rb.step('safety backup drill', () => streaming.drillRestore({ app: plan.app, env: plan.env, target, storage, file: safety.file, at: new Date().toISOString() }));
  const prepared = await rb.step('restore into a side database', () => streaming.prepareRestore({ app: plan.app, env: plan.env, target, storage, file, runTag }));

  // The fleet as it runs, from the engines' labels (whatever its containers are named), recorded
  // before anything stops: this list is what is started again, whichever attempt stopped what.
  const fleets = await rb.step('read fleet', () => Promise.all(plan.web.map((w) => settling.inspectFleet({ host: w.host, app: plan.app, env: plan.env }))));
  const running: RunningWeb[] = plan.web.map((w, i) => ({ host: w.host, containers: fleets[i].filter((c: FleetContainer) => c.state === 'running').map((c: FleetContainer) => c.name) }));

  // 503 with Retry-After and the app's page while it is down, not a stopped upstream's 502
  const maintenance = plan.maintenance && plan.proxies?.length && patched('restore-maintenance-mode') ? maintenanceOf(plan, `restore of ${target.name} by ${workflowInfo().workflowId}`) : undefined;
  const stoppedAt = Date.now();
  let swapped = false;
  try {
    if (maintenance) await maintenance.on(rb);
    await rb.step('stop app', () => allSettled(running.map((r) => settling.stopContainers({ host: r.host, names: r.containers, timeoutSeconds: plan.stopTimeoutSeconds }))));
    await rb.step('swap in restored database', () => settling.swapInRestoredDatabase({ target, runTag }));
    swapped = true;
    if (patched('restore-migrations')) await migrateRestored(rb, plan, fleets.flat(), runTag);
    await startFleet(rb, plan, running, maintenance);
  } catch (err) {
    await CancellationScope.nonCancellable(async () => {
      const undo: string[] = [];
      try {
        // Idempotent and read from the databases: it puts the previous one back whatever step died.
        const back = await rb.step('put previous database back', () => settling.swapBackPreviousDatabase({ target, runTag }));
        undo.push(back.putBack === false && !swapped ? 'the live database was not changed' : `the previous database is live again (the restored copy is kept as ${back.restoredKeptAs})`);
      } catch (e) {
        undo.push(`COULD NOT put the previous database back: ${errorMessage(rootFailure(e))}`);
      }
      try {
        await startFleet(rb, plan, running, maintenance);
        undo.push('the app was started again and is healthy');
      } catch (e) {
        undo.push(`the app DID NOT come back: ${errorMessage(rootFailure(e))}${maintenance?.isOn ? `; maintenance mode stays on (\`runbook maintenance off ${plan.app} --env ${plan.env}\` once it is back)` : ''}`);
      }
      throw ApplicationFailure.nonRetryable(`restore of ${file} failed: ${errorMessage(rootFailure(err))}; ${undo.join('; ')}. Safety backup: ${safety.file}`, 'RestoreFailed');
    });
  }
  const appDownSeconds = Math.round((Date.now() - stoppedAt) / 1000);
  const { previous } = restoreDatabaseNames(target, runTag);
  let previousReleasedBy: RestoreBackupResult['previousReleasedBy'];
  if (!input.keepPrevious) {
    const keepFor = input.keepPreviousFor ?? DEFAULT_KEEP_PREVIOUS;
    const workflowId = `releasePreviousDatabase/${plan.app}/${plan.env}/${target.name}/${runTag.replace(/[-:.]/g, '')}`;
    // An independent run (not a child: it outlives this one by days), started idempotently.
    await rb.step('keep previous database', () =>
      quick.startPreviousDatabaseKeeper({
        workflowId,
        input: { app: plan.app, env: plan.env, database: target.name, runTag, keepFor },
        summary: `Keeps ${previous} (the database of ${plan.app}/${plan.env} before the restore) for ${keepFor}, then drops it`,
      }),
    );
    previousReleasedBy = { workflowId, keepFor };
  }
  return {
    app: plan.app,
    env: plan.env,
    database: target.name,
    restored: file,
    safetyBackup: safety.file,
    tables: prepared.tables,
    rows: prepared.rows,
    previousDatabase: previous,
    previousKept: true,
    ...(previousReleasedBy ? { previousReleasedBy } : {}),
    appDownSeconds,
  };
}

/**
 * A backup older than the running release holds an older schema: the running version's migration
 * brings the restored database to it before the app starts (it failing puts the previous one back).
 */
async function migrateRestored(rb: Runbook, plan: BackupPlan, fleet: FleetContainer[], runTag: string): Promise<void> {
  const versions = [...new Set(fleet.filter((c) => c.state === 'running').map((c) => c.version))];
  if (versions.length !== 1) {
    if (versions.length > 1) rb.note(`the app runs several versions (${versions.join(', ')}): no migration was run on the restored database`);
    return;
  }
  const migration = await rb.step('migration plan', () => quick.resolveRestoreMigration({ app: plan.app, env: plan.env, version: versions[0], runTag }));
  if (!migration) return;
  const host = plan.web.find((w) => w.host.name === migration.host)?.host ?? plan.web[0].host;
  await rb.step('migrate restored database', async () => {
    // the app is down: heartbeats show a dead worker in seconds; the migration's own timeout bounds it
    const migrating = proxyActivities<Activities>({ startToCloseTimeout: (migration.timeoutSeconds + 60) * 1000, heartbeatTimeout: '10 seconds', retry });
    const ran = await migrating.runOneOff.executeWithOptions({ summary: `migrations of ${versions[0]} on the restored database` }, [{ host, spec: migration.container, timeoutSeconds: migration.timeoutSeconds }]);
    await quick.removeContainers({ host, names: [migration.container.name], timeoutSeconds: 5 });
    return ran;
  });
}

/**
 * Keeps the database of an app/env as it was before a restore (it holds every write up to the
 * stop), then drops it: when released (signal `release`, `runbook restore --release`) or when the
 * window ends. Started by restoreBackup (through an activity), one per restore.
 */
export async function releasePreviousDatabase(input: KeepPreviousInput): Promise<{ dropped: string; releasedBy: string }> {
  parseInput(ReleasePreviousDatabaseInputSchema, input, 'releasePreviousDatabase');
  const rb = new Runbook('releasePreviousDatabase', { app: input.app, env: input.env });
  let releasedBy: string | undefined;
  setHandler(releasePreviousSignal, ({ by }) => {
    releasedBy ??= typeof by === 'string' && by ? by : 'unknown';
  });
  try {
    rb.setPhase('running');
    await rb.step(`keep for ${input.keepFor} or until released`, () => condition(() => releasedBy !== undefined, parseDuration(input.keepFor, 'keepFor')));
    const plan = await rb.step('plan', () => quick.resolveBackupPlan({ app: input.app, env: input.env }));
    const target = chooseTarget(plan, input.database);
    const { dropped } = await rb.step('drop previous database', () => quick.dropPreviousDatabase({ target, runTag: input.runTag }));
    rb.finish('succeeded');
    return { dropped, releasedBy: releasedBy ?? `the ${input.keepFor} window` };
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

/** restore() as it ran before the recovery path and the kept previous database (replay of older runs only). */
async function restoreV1(rb: Runbook, plan: BackupPlan, target: DatabaseTarget, file: string, input: RestoreBackupInput): Promise<RestoreBackupResult> {
  const runTag = workflowInfo().startTime.toISOString();
  const at = new Date().toISOString();
  const storage = plan.storage;
  const safety = await rb.step('safety backup', () => streaming.backupDatabase({ app: plan.app, env: plan.env, target, storage, at, checksums: plan.checksums, ...pinIfPatched('safety', input.safetyPinWindow) }));
  await rb.step('safety backup drill', () => streaming.drillRestore({ app: plan.app, env: plan.env, target, storage, file: safety.file, at: new Date().toISOString() }));
  const prepared = await rb.step('restore into a side database', () => streaming.prepareRestore({ app: plan.app, env: plan.env, target, storage, file, runTag }));

  // From here on the app is down: whatever happens, it is started again.
  const stoppedAt = Date.now();
  const stopped = await rb.step('stop app', () => Promise.all(plan.web.map((w) => quick.stopContainers({ host: w.host, names: w.containers, timeoutSeconds: plan.stopTimeoutSeconds }))));
  let swapped: { live: string; previous: string } | undefined;
  try {
    swapped = await rb.step('swap in restored database', () => quick.swapInRestoredDatabase({ target, runTag }));
    await startAndCheck(rb, plan, stopped);
  } catch (err) {
    await CancellationScope.nonCancellable(async () => {
      const undo: string[] = [];
      if (swapped) {
        try {
          const back = await rb.step('swap back previous database', () => quick.swapBackPreviousDatabase({ target, runTag }));
          undo.push(`the previous database is live again (the restored copy is kept as ${back.restoredKeptAs})`);
        } catch (e) {
          undo.push(`COULD NOT swap the previous database back: ${errorMessage(rootFailure(e))}`);
        }
      }
      try {
        await startAndCheck(rb, plan, stopped);
        undo.push('the app was started again and is healthy');
      } catch (e) {
        undo.push(`the app DID NOT come back: ${errorMessage(rootFailure(e))}`);
      }
      throw ApplicationFailure.nonRetryable(`restore of ${file} failed: ${errorMessage(rootFailure(err))}; ${undo.join('; ')}. Safety backup: ${safety.file}`, 'RestoreFailed');
    });
  }
  const appDownSeconds = Math.round((Date.now() - stoppedAt) / 1000);
  const previousDatabase = swapped!.previous;
  if (!input.keepPrevious) await rb.step('drop previous database', () => quick.dropPreviousDatabase({ target, runTag }));
  return {
    app: plan.app,
    env: plan.env,
    database: target.name,
    restored: file,
    safetyBackup: safety.file,
    tables: prepared.tables,
    rows: prepared.rows,
    previousDatabase,
    previousKept: Boolean(input.keepPrevious),
    appDownSeconds,
  };
}

/** Starts the containers that were running and waits until each is healthy, then checks the app's URL. */
async function startAndCheck(rb: Runbook, plan: BackupPlan, stopped: { host: string; stopped: string[] }[]): Promise<void> {
  await rb.step('start app', () =>
    Promise.all(
      plan.web.map((w) => {
        const names = stopped.find((s) => s.host === w.host.name)?.stopped ?? [];
        return names.length ? quick.startContainers({ host: w.host, names }) : Promise.resolve({ host: w.host.name, started: [] });
      }),
    ),
  );
  await rb.step('health check', async () => {
    for (const w of plan.web) {
      for (const container of stopped.find((s) => s.host === w.host.name)?.stopped ?? []) {
        await waiting.waitHealthy({ host: w.host, container, timeoutSeconds: plan.healthTimeoutSeconds });
      }
    }
    if (plan.healthUrl) await waiting.smokeTest({ url: plan.healthUrl, expectStatus: 200 });
  });
}
