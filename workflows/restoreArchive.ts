// The restore runbook for what is not a database (seed 000 "Backup Strategy": volumes and config
// files): pick a complete archive → read it through (size, sha256, zstd, tar) → approval → lock.
// A volume: maintenance on → stop the containers that mount it → archive its current content (the
// copy to go back to) → empty it and extract the archive → start them, health-gated → maintenance
// off. Any failure after the stop puts the copy back and starts them again; the copy stays in
// storage. Config: the worker files are put back in place, each replaced file kept beside it.
import { ActivityCancellationType, ApplicationFailure, CancellationScope, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ConfigRestoreResult, StoredArchive } from '../activities/archive-restore';
import { parseInput, RestoreArchiveInputSchema, type RestoreArchiveInput } from '../common/inputs';
import type { BackupPlan } from '../common/types';
import { maintenanceOf, startFleet, type RunningWeb } from './lib/downtime';
import { errorMessage, Runbook } from './lib/runbook';
import { rootFailure, withLock } from './lib/steps';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const streaming = proxyActivities<Activities>({ startToCloseTimeout: '12 hours', heartbeatTimeout: '30 seconds', retry });
/** What runs while the containers are stopped: heartbeats, and runs to its end when the run is cancelled. */
const settling = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '10 seconds',
  retry: { ...retry, initialInterval: '1s' },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

export interface RestoreArchiveResult {
  app: string;
  env: string;
  /** The archive restored. */
  restored: string;
  /** What it held: tar entries and their bytes. */
  entries: number;
  bytes: number;
  volume?: {
    name: string;
    host: string;
    /** The volume's content before the restore, archived after the stop (every write up to it): restore it to go back. */
    previousArchive: string;
    /** The containers stopped and started again. */
    stopped: string[];
    downSeconds: number;
  };
  config?: ConfigRestoreResult;
}

export async function restoreArchive(input: RestoreArchiveInput): Promise<RestoreArchiveResult> {
  const { app, env } = parseInput(RestoreArchiveInputSchema, input, 'restoreArchive');
  const rb = new Runbook('restoreArchive', { app, env });
  try {
    const plan = await rb.step('plan', () => quick.resolveBackupPlan({ app, env }));
    const volume = input.volume === undefined ? undefined : chooseVolume(plan, input.volume);
    const chosen = await rb.step('choose archive', async () => {
      const { archives, storage } = await quick.listArchives({ app, env, storage: plan.storage, ...(volume ? { volume: volume.name } : {}) });
      return chooseArchive(archives, input.archive ?? 'latest', `${volume ? `volume ${volume.name}` : 'config'} of ${app}/${env} in ${storage}`);
    });
    const ref = { storage: plan.storage, file: chosen.file, sizeBytes: chosen.sizeBytes, sha256: chosen.sha256 };
    // read through before anyone approves: a damaged archive or a missing volume is refused with nothing changed
    const contents = await rb.step('verify archive', () => (volume ? streaming.verifyVolumeArchive(ref) : streaming.verifyConfigArchive(ref)));
    if (volume) {
      const found = await rb.step('check volume', () => quick.volumeUsers({ host: volume.host, volume: volume.volume }));
      if (!found.exists) throw ApplicationFailure.nonRetryable(`volume ${volume.volume} does not exist on ${volume.host.name}: deploy ${app}/${env} first (it creates its volumes), then restore`, 'VolumeMissing');
    }

    const what = volume
      ? `Restore volume ${volume.name} (${volume.volume} on ${volume.host.name}) of ${app}/${env} from ${chosen.file} (taken ${chosen.createdAt}${chosen.reason ? `: ${chosen.reason}` : ''}; ${contents.entries} entries, ${contents.bytes} bytes). ` +
        'The containers that use it are stopped meanwhile; its current content is archived first and put back if anything fails.'
      : `Restore the config files of ${app}/${env} from ${chosen.file} (taken ${chosen.createdAt}; ${contents.entries} files) on the worker. Each file it replaces is kept beside it.`;
    const gate = await rb.gate('restore', what, plan.approval, input.approvalTimeout);
    if (gate.outcome !== 'approved') throw ApplicationFailure.nonRetryable(`restore not approved (${gate.outcome}); nothing was changed`, 'NotApproved', gate);

    rb.setPhase('running');
    const result = await withLock(rb, plan, async (): Promise<RestoreArchiveResult> => {
      const base = { app, env, restored: chosen.file, entries: contents.entries, bytes: contents.bytes };
      if (!volume) {
        const runTag = workflowInfo().startTime.toISOString();
        const config = await rb.step('restore config files', () => quick.restoreConfigArchive({ ...ref, runTag, configFiles: plan.archives.config?.files ?? [] }));
        if (config.restored.length) rb.note('containers read env and secret files when they are created: the next deploy or update uses the restored ones');
        return { ...base, config };
      }
      return { ...base, volume: await restoreVolume(rb, plan, volume, ref) };
    });
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

type ArchivedVolume = BackupPlan['archives']['volumes'][number];

function chooseVolume(plan: BackupPlan, name: string): ArchivedVolume {
  const found = plan.archives.volumes.find((v) => v.name === name);
  if (found) return found;
  const names = plan.archives.volumes.map((v) => v.name);
  throw ApplicationFailure.nonRetryable(
    `${plan.app}/${plan.env} does not archive a volume "${name}" (backup.archives.volumes: ${names.join(', ') || 'none'}); only archived volumes can be restored`,
    'InvalidInput',
  );
}

function chooseArchive(archives: StoredArchive[], wanted: string, where: string): StoredArchive {
  // "latest" is the newest night's: a copy an earlier restore took of what it replaced is only taken by name
  const complete = archives.filter((a) => a.complete && !a.reason);
  if (wanted === 'latest') {
    const newest = complete[complete.length - 1];
    if (!newest) throw ApplicationFailure.nonRetryable(`no complete archive of the ${where} (${archives.filter((a) => !a.complete).length} incomplete)`, 'ArchiveMissing');
    return newest;
  }
  const found = archives.find((a) => a.file === wanted);
  if (!found) throw ApplicationFailure.nonRetryable(`no archive ${wanted} of the ${where} (newest: ${complete[complete.length - 1]?.file ?? 'none'})`, 'ArchiveMissing');
  if (!found.complete) throw ApplicationFailure.nonRetryable(`archive ${wanted} cannot be restored: ${found.problem}`, 'ArchiveIncomplete');
  return found;
}

async function restoreVolume(rb: Runbook, plan: BackupPlan, volume: ArchivedVolume, ref: { storage: BackupPlan['storage']; file: string; sizeBytes: number; sha256: string }): Promise<NonNullable<RestoreArchiveResult['volume']>> {
  const target = { app: plan.app, env: plan.env, host: volume.host, name: volume.name, volume: volume.volume, helperImage: plan.archives.helperImage };
  // recorded before anything stops: what is started again, whichever attempt stopped what
  const users = await rb.step('containers using the volume', () => settling.volumeUsers({ host: volume.host, volume: volume.volume }));
  const running: RunningWeb[] = [{ host: volume.host, containers: users.running }];
  const stop = (step: string) => rb.step(step, () => settling.stopContainers({ host: volume.host, names: users.running, timeoutSeconds: plan.stopTimeoutSeconds }));
  const maintenance = users.running.length && plan.maintenance && plan.proxies?.length ? maintenanceOf(plan, `restore of volume ${volume.name} by ${workflowInfo().workflowId}`) : undefined;
  const stoppedAt = Date.now();
  let previous: { file: string; sizeBytes: number; sha256: string } | undefined;
  let changing = false;
  try {
    if (maintenance) await maintenance.on(rb);
    await stop('stop containers');
    previous = await rb.step('archive current content', () =>
      settling.archiveVolume({ ...target, storage: plan.storage, at: new Date().toISOString(), reason: `content before the restore of ${ref.file} by ${workflowInfo().workflowId}` }),
    );
    changing = true;
    await rb.step('restore volume', () => settling.restoreVolumeArchive({ ...target, ...ref }));
    await startFleet(rb, plan, running, maintenance);
  } catch (err) {
    await CancellationScope.nonCancellable(async () => {
      const undo: string[] = [];
      let safeToStart = true;
      if (changing && previous) {
        const copy = previous;
        try {
          // they may have been started again (a failed health check): the volume changes only under stopped containers
          await stop('stop containers again');
          await rb.step('put previous content back', () => settling.restoreVolumeArchive({ ...target, storage: plan.storage, file: copy.file, sizeBytes: copy.sizeBytes, sha256: copy.sha256 }));
          undo.push(`the volume's previous content is back (from ${copy.file})`);
        } catch (e) {
          // never start the app on an emptied or partly written volume: it would write to it
          safeToStart = false;
          undo.push(
            `COULD NOT put the previous content back: ${errorMessage(rootFailure(e))}. The volume may be empty or partly written: ${users.running.join(', ') || 'its containers'} stay stopped` +
              `${maintenance?.isOn ? ' and maintenance mode stays on' : ''}; its content before the restore is archived as ${copy.file} (runbook restore ${plan.app} --env ${plan.env} --volume ${volume.name} --archive ${copy.file})`,
          );
        }
      } else undo.push('the volume was not changed');
      if (safeToStart) {
        try {
          await startFleet(rb, plan, running, maintenance);
          undo.push(users.running.length ? 'its containers were started again and are healthy' : 'no container was using it');
        } catch (e) {
          undo.push(`its containers DID NOT come back: ${errorMessage(rootFailure(e))}${maintenance?.isOn ? `; maintenance mode stays on (\`runbook maintenance off ${plan.app} --env ${plan.env}\` once it is back)` : ''}`);
        }
      }
      throw ApplicationFailure.nonRetryable(`restore of ${ref.file} into volume ${volume.volume} failed: ${errorMessage(rootFailure(err))}; ${undo.join('; ')}`, 'RestoreFailed');
    });
  }
  return { name: volume.name, host: volume.host.name, previousArchive: previous!.file, stopped: users.running, downSeconds: Math.round((Date.now() - stoppedAt) / 1000) };
}
