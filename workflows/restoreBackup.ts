// The restore runbook (seed 003 "restore.sh", 000 "Restore procedure"), destructive, so gated:
// pick a verified backup → approval → lock → safety backup of the current data (and its drill) →
// restore into a side database and check it against the manifest (the app still runs) → stop the
// app → swap the restored database in (the old one is kept aside) → start the app → health check.
// A failure after the swap swaps the old database back and restarts the app; a failure before it
// leaves everything as it was.
import { ApplicationFailure, CancellationScope, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { BackupPlan, DatabaseTarget, RestoreBackupInput } from '../common/types';
import { rootFailure, validateTarget, withLock } from './firstDeploy';
import { pinIfPatched } from './lib/pins';
import { approvalTimeoutMs, errorMessage, Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const streaming = proxyActivities<Activities>({ startToCloseTimeout: '12 hours', heartbeatTimeout: '30 seconds', retry });
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });

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
  appDownSeconds: number;
}

function validateRestoreInput(input: RestoreBackupInput): void {
  validateTarget(input);
  const problems: string[] = [];
  if (input.database !== undefined && typeof input.database !== 'string') problems.push('"database" must be a string');
  if (input.backup !== undefined && (typeof input.backup !== 'string' || input.backup === '')) problems.push('"backup" must be a backup file name or "latest"');
  if (input.keepPrevious !== undefined && typeof input.keepPrevious !== 'boolean') problems.push('"keepPrevious" must be true or false');
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid input: ${problems.join('; ')}`, 'InvalidInput');
  approvalTimeoutMs(input.approvalTimeout);
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
    const result = await withLock(rb, plan, () => restore(rb, plan, target, chosen.file, input));
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    rb.finish('failed', failure);
    throw failure;
  }
}

async function restore(rb: Runbook, plan: BackupPlan, target: DatabaseTarget, file: string, input: RestoreBackupInput): Promise<RestoreBackupResult> {
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
