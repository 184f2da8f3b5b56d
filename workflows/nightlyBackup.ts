// Runbook 5: nightly backup with retention (seeds 000 "Backup Strategy", 003 "backup.sh", 004
// "Database Backups"). Started by a Temporal Schedule. For each database: stream pg_dump into
// storage with a manifest → restore drill into a scratch database (only a verified backup counts)
// → optional volume and config archives → when everything of the night is verified and stored,
// apply retention (GFS; archives follow the first database's nights) → on any failure, alert and
// prune nothing. With `pin` (a rolling update's pre-update backup) the night's backups are pinned:
// retention keeps them outside its slots until released or the window ends; pinned backups of
// other runs are never pruned either.
import { ApplicationFailure, patched, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { applyRetention } from '../common/retention';
import type { BackupPin, BackupPlan, DatabaseTarget, NightlyBackupInput } from '../common/types';
import { BACKUP_PINS_PATCH, requestedPin } from './lib/pins';
import { NightlyBackupInputSchema, parseInput } from '../common/inputs';
import { rootFailure } from './lib/steps';
import { errorMessage, Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
/** Dumps, drills and prunes stream for a long time: they heartbeat, so a dead worker is noticed in 30 s. */
const streaming = proxyActivities<Activities>({ startToCloseTimeout: '12 hours', heartbeatTimeout: '30 seconds', retry });
const alerts = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { initialInterval: '5s', maximumAttempts: 5 } });

/** Orphans (a dump without manifest) younger than this may belong to a backup still being written. */
const ORPHAN_GRACE_MS = 24 * 3_600_000;

export interface DatabaseBackupResult {
  database: string;
  file: string;
  sizeBytes: number;
  dumpMs: number;
  tables: number;
  rows: number;
  drillMs: number;
}

export interface NightlyBackupResult {
  app: string;
  env: string;
  at: string;
  storage: string;
  backups: DatabaseBackupResult[];
  /** Volume and config archives of the night: file, size, sha256. */
  archives: { file: string; sizeBytes: number; sha256: string }[];
  pruned: string[];
  kept: Record<string, string[]>;
  /** The pin of this night's backups (a pre-update backup), if any. */
  pinned?: BackupPin;
}

/** Backs up one database and proves the dump restores; returns only for a verified backup. */
async function backupAndDrill(rb: Runbook, plan: BackupPlan, target: DatabaseTarget, at: string, pin: BackupPin | undefined): Promise<DatabaseBackupResult> {
  const manifest = await rb.step(`backup:${target.name}`, () =>
    streaming.backupDatabase({ app: plan.app, env: plan.env, target, storage: plan.storage, at, checksums: plan.checksums, ...(pin ? { pin } : {}) }),
  );
  const drill = await rb.step(`drill:${target.name}`, () =>
    streaming.drillRestore({ app: plan.app, env: plan.env, target, storage: plan.storage, file: manifest.file, at: new Date().toISOString() }),
  );
  return { database: target.name, file: manifest.file, sizeBytes: manifest.sizeBytes, dumpMs: manifest.durationMs, tables: drill.tables, rows: drill.rows, drillMs: drill.durationMs };
}

async function prune(rb: Runbook, plan: BackupPlan, target: DatabaseTarget): Promise<{ removed: string[]; kept: string[]; prunedNights: string[] }> {
  return rb.step(`retention:${target.name}`, async () => {
    const listing = await quick.listBackups({ app: plan.app, env: plan.env, target, storage: plan.storage });
    const now = new Date();
    // pinned backups (safety, pre-update) are kept outside the slots while their pin holds
    const pinAware = patched(BACKUP_PINS_PATCH);
    const decision = applyRetention(
      listing.backups.map((b) => ({ id: b.file, time: b.createdAt, verified: b.verified, ...(pinAware && b.pinned ? { pinned: b.pinned } : {}) })),
      plan.retention,
      now,
    );
    const orphans = listing.orphans.filter((name) => {
      const m = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\./.exec(name);
      return m !== null && now.getTime() - Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) > ORPHAN_GRACE_MS;
    });
    const files = decision.prune.map((p) => p.id);
    const { removed } = files.length || orphans.length ? await streaming.pruneBackups({ app: plan.app, env: plan.env, target, storage: plan.storage, files, orphans }) : { removed: [] };
    const createdAt = new Map(listing.backups.map((b) => [b.file, b.createdAt]));
    return { removed, kept: decision.keep.map((k) => `${k.id} (${k.reasons.join(', ')})`), prunedNights: files.map((f) => createdAt.get(f)!) };
  });
}

export async function nightlyBackup(input: NightlyBackupInput): Promise<NightlyBackupResult> {
  parseInput(NightlyBackupInputSchema, input, 'nightlyBackup');
  const rb = new Runbook('nightlyBackup', { app: input.app, env: input.env });
  let plan: BackupPlan | undefined;
  try {
    plan = await rb.step('plan', () => quick.resolveBackupPlan({ app: input.app, env: input.env }));
    const p = plan;
    rb.setPhase('running');
    const at = new Date().toISOString();
    const pin = input.pin && patched(BACKUP_PINS_PATCH) ? requestedPin(input.pin, at) : undefined;
    const backups: DatabaseBackupResult[] = [];
    const failures: string[] = [];
    // One database at a time: a backup night must not load the servers more than one dump does.
    for (const target of p.targets) {
      try {
        backups.push(await backupAndDrill(rb, p, target, at, pin));
      } catch (err) {
        failures.push(`${target.name}: ${errorMessage(rootFailure(err))}`);
      }
    }
    // Archives only for a night whose dumps all verified: a failed night keeps nothing half-made.
    if (failures.length) throw nightFailed(failures);
    const archives: NightlyBackupResult['archives'] = [];
    const archive = async (step: string, fn: () => Promise<{ file: string; sizeBytes: number; sha256: string }>) => {
      try {
        const a = await rb.step(step, fn);
        archives.push({ file: a.file, sizeBytes: a.sizeBytes, sha256: a.sha256 });
      } catch (err) {
        failures.push(`${step}: ${errorMessage(rootFailure(err))}`);
      }
    };
    for (const v of p.archives.volumes) {
      await archive(`archive:volume:${v.name}`, () =>
        streaming.archiveVolume({ app: p.app, env: p.env, host: v.host, name: v.name, volume: v.volume, helperImage: p.archives.helperImage, storage: p.storage, at }),
      );
    }
    const config = p.archives.config;
    if (config) await archive('archive:config', () => quick.archiveConfig({ app: p.app, env: p.env, files: config.files, proxies: config.proxies, storage: p.storage, at }));
    if (failures.length) throw nightFailed(failures);
    const pruned: string[] = [];
    const kept: Record<string, string[]> = {};
    if (!input.skipPrune) {
      for (const [i, target] of p.targets.entries()) {
        const r = await prune(rb, p, target);
        pruned.push(...r.removed);
        kept[target.name] = r.kept;
        // archives share the nights of the first database's dumps: kept and pruned with them
        if (i === 0 && r.prunedNights.length && (p.archives.volumes.length || p.archives.config)) {
          const a = await rb.step('retention:archives', () => streaming.pruneArchives({ app: p.app, env: p.env, storage: p.storage, nights: r.prunedNights }));
          pruned.push(...a.removed);
        }
      }
    }
    rb.finish('succeeded');
    return { app: p.app, env: p.env, at, storage: describeStorage(p), backups, archives, pruned, kept, ...(pin ? { pinned: pin } : {}) };
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure, 'no backup was pruned');
    if (plan?.notify) await alert(rb, plan, failure);
    throw failure;
  }
}

function nightFailed(failures: string[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`backup night failed (${failures.length} problem(s)); nothing was pruned:\n  - ${failures.join('\n  - ')}`, 'BackupNightFailed');
}

async function alert(rb: Runbook, plan: BackupPlan, failure: unknown): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  try {
    await rb.step('alert', () =>
      alerts.notify({
        webhookUrlFile: plan.notify!.webhookUrlFile,
        notification: {
          severity: 'failure',
          runbook: 'nightlyBackup',
          app: plan.app,
          env: plan.env,
          title: 'backup failed; no backup was pruned',
          details: errorMessage(failure).slice(0, 3000),
          workflowId,
          runId,
          at: new Date().toISOString(),
        },
      }),
    );
  } catch {
    // the run fails with the backup's error either way; the alert's own failure is in the history
  }
}

function describeStorage(plan: BackupPlan): string {
  const s = plan.storage;
  return s.type === 's3' ? `s3://${s.bucket}/${s.prefix}` : `${s.path}${s.host ? ` on ${s.host.name}` : ''}`;
}
