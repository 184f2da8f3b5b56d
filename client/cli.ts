#!/usr/bin/env node
// `runbook`: start, watch, approve and list runbooks. Exit code 0 only on success.
import type { ScheduleHandle } from '@temporalio/client';
import { Command } from 'commander';
import { isValidVersion, NAME_PATTERN, runbookWorkflowId } from '../common/naming';
import { parseDuration } from '../common/duration';
import type { CanaryMode, FirstDeployResult, IssueCertificateResult } from '../common/types';
import { formatBackups, formatCutoverStatus, formatHistory, formatRunList, formatPlan, formatPreflight, formatStatus } from './format';
import { failureText, RunbookClient } from './runbooks';
import { backupScheduleId, certScheduleId, DEFAULT_BACKUP_CRON, DEFAULT_CATCHUP_WINDOW, DEFAULT_CERT_CATCHUP_WINDOW, DEFAULT_CERT_EVERY, DEFAULT_HOUSEKEEPING_CRON, describeBackupSchedule, hasBackupSchedule, housekeepingScheduleId, triggerBackupSchedule, triggerSchedule, upsertBackupSchedule, upsertCertSchedule, upsertHousekeepingSchedule, DEFAULT_UPDATES_EVERY, updatesScheduleId, upsertUpdatesSchedule } from './schedules';
import { formatSchedule } from './schedule-format';
import { formatHousekeeping } from './housekeeping-format';
import type { HousekeepingResult } from '../workflows/housekeeping';
import { watch } from './watch';

/** Kept here too: scripts import `watch` from the CLI module. */
export { watch };


function uiUrl(rc: RunbookClient, workflowId: string): string {
  const base = process.env.TEMPORAL_UI_URL ?? 'http://127.0.0.1:8233';
  return `${base}/namespaces/${encodeURIComponent(rc.settings.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

function checkName(what: string, value: string): string {
  if (!NAME_PATTERN.test(value)) throw new Error(`${what} "${value}" is not a valid name (lowercase letters, digits, '-')`);
  return value;
}

interface CutoverCliOptions {
  from?: string;
  to?: string;
  record?: string[];
  rehearse?: boolean;
  lowTtl?: string;
  ttlLeadTime?: string;
  validationDelay?: string;
  validationWindow?: string;
  validationRound?: string;
  probeInterval?: string;
  latencyMargin?: string;
  ttlRestoreAfter?: string;
  reconcileEvery?: string;
  window?: string;
  backup?: boolean;
  approvalTimeout?: string;
  by: string;
  reason?: string;
  approve?: boolean;
  extendBy?: string;
  json?: boolean;
  detach?: boolean;
}

/** `approve`, `none` or `bake=10m`. */
interface ScheduleVerbs {
  show?: boolean;
  trigger?: boolean;
  pause?: boolean;
  resume?: boolean;
  delete?: boolean;
  note?: string;
}

/**
 * `runbook schedule certs|housekeeping`: with no verb, create or update the schedule (\`upsert\`);
 * else one of show, trigger (through the schedule: skipped, exit 1, while a run goes on), pause,
 * resume, delete. Prints the schedule after it.
 */
async function scheduleCommand(rc: RunbookClient, handle: ScheduleHandle, opts: ScheduleVerbs, what: string, upsert: () => Promise<{ scheduleId: string; created: boolean }>): Promise<number> {
  const verbs = (['show', 'trigger', 'pause', 'resume', 'delete'] as const).filter((v) => opts[v]);
  if (verbs.length > 1) throw new Error(`--${verbs.join(', --')}: give one at most`);
  switch (verbs[0]) {
    case undefined: {
      const r = await upsert();
      console.log(`${r.created ? 'created' : 'updated'} ${r.scheduleId}`);
      break;
    }
    case 'trigger': {
      const outcome = await triggerSchedule(rc.client, handle.scheduleId);
      if (!outcome.started) {
        console.log(`skipped: ${what} is already running (${outcome.running.join(', ') || 'unknown'}); overlap policy SKIP`);
        return 1;
      }
      console.log(`started ${outcome.started}\n  UI: ${uiUrl(rc, outcome.started)}\n  follow: runbook watch ${outcome.started}`);
      return 0;
    }
    case 'pause':
      await handle.pause(opts.note ?? 'pause from the runbook CLI');
      break;
    case 'resume':
      await handle.unpause(opts.note ?? 'resume from the runbook CLI');
      break;
    case 'delete':
      await handle.delete();
      console.log(`deleted ${handle.scheduleId}`);
      return 0;
  }
  console.log(formatSchedule(await handle.describe()));
  return 0;
}

export function parseCanary(text: string): CanaryMode {
  if (text === 'approve' || text === 'none') return text;
  const m = /^bake=(\S+)$/.exec(text);
  if (!m) throw new Error(`--canary must be "approve", "none" or "bake=<duration>" (got "${text}")`);
  parseDuration(m[1], '--canary bake'); // throws with a clear message
  return { bake: m[1] };
}

export function buildCli(): Command {
  const program = new Command('runbook')
    .description('Durable operations runbooks on Temporal (settings: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*)')
    .showHelpAfterError()
    // a usage error is "could not run at all" (2), as a bad input is; help and --version stay 0
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  let exitCode = 0;
  const withClient = (fn: (rc: RunbookClient, ...args: any[]) => Promise<number | void>) =>
    async (...args: any[]) => {
      const rc = await RunbookClient.connect();
      try {
        exitCode = (await fn(rc, ...args)) ?? 0;
      } finally {
        await rc.close();
      }
    };

  program
    .command('deploy <app>')
    .description('first deploy of an app to an environment (firstDeploy)')
    .requiredOption('--env <env>', 'environment, as named in the inventory')
    .option('--version <version>', 'image tag (default: the inventory\'s version)')
    .option('--dry-run', 'print the plan and the preflight results; change nothing')
    .option('--go-live-approval', 'stop for approval before the proxy exposes the app')
    .option('--approval-timeout <duration>', 'how long approval gates wait (default 7d, at most 30d)')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; version?: string; dryRun?: boolean; goLiveApproval?: boolean; approvalTimeout?: string; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        if (opts.version !== undefined && !isValidVersion(opts.version)) throw new Error(`version "${opts.version}" is not a valid image tag`);
        const handle = await rc.startFirstDeploy({
          app,
          env: opts.env,
          ...(opts.version ? { version: opts.version } : {}),
          ...(opts.dryRun ? { dryRun: true } : {}),
          ...(opts.goLiveApproval ? { goLiveApproval: true } : {}),
          ...(opts.approvalTimeout ? { approvalTimeout: opts.approvalTimeout } : {}),
        });
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        if (opts.dryRun) {
          try {
            const result = (await handle.result()) as FirstDeployResult;
            console.log(formatPlan(result.plan));
            console.log(formatPreflight(result.preflight));
            console.log('dry run: nothing was changed');
            return result.preflight.every((r) => r.ok) ? 0 : 1;
          } catch (err) {
            console.error(`dry run failed:\n  ${failureText(err).split('\n').join('\n  ')}`);
            return 1;
          }
        }
        if (opts.detach) return 0;
        return watch(rc, handle.workflowId);
      }),
    );

  program
    .command('status <workflowId>')
    .description('phase, steps, pending approval gates and decisions of a runbook')
    .option('--json', 'print the raw status')
    .action(
      withClient(async (rc, id: string, opts: { json?: boolean }) => {
        const [st, d] = await Promise.all([rc.status(id), rc.handle(id).describe()]);
        console.log(opts.json ? JSON.stringify({ ...st, execution: d.status.name }, null, 2) : `${formatStatus(id, st)}\n  execution: ${d.status.name}\n  UI: ${uiUrl(rc, id)}`);
      }),
    );

  program
    .command('watch <workflowId>')
    .description('follow a runbook until it ends: on a terminal a live view (steps and their times, the pending gate, who may approve and how), else one line per change; exit code 0 only on success')
    .option('--plain', 'one line per change, also on a terminal')
    .action(withClient((rc, id: string, opts: { plain?: boolean }) => watch(rc, id, opts.plain ? { live: false } : {})));

  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(`${decision} <workflowId>`)
      .description(`${decision} a pending approval gate`)
      .requiredOption('--gate <gate>', 'gate name, as shown by `runbook status`')
      .requiredOption('--by <name>', 'who decides (must be a listed approver, if the gate lists any)')
      .option('--comment <text>', 'kept in the decisions log')
      .option('--signal', 'send a signal instead of an update (no immediate answer)')
      .action(
        withClient(async (rc, id: string, opts: { gate: string; by: string; comment?: string; signal?: boolean }) => {
          if (opts.signal) {
            await rc.signalDecision(id, decision, opts.gate, opts.by, opts.comment);
            console.log(`${decision} signal sent to ${id}; see \`runbook status ${id}\` for whether it counted`);
            return 0;
          }
          try {
            const record = await rc.decide(id, decision, opts.gate, opts.by, opts.comment);
            console.log(`${decision} by ${record.by} on gate "${record.gate}": accepted`);
            return 0;
          } catch (err) {
            console.error(`${decision} not allowed: ${failureText((err as { cause?: unknown }).cause ?? err)}`);
            return 1;
          }
        }),
      );
  }

  program
    .command('list')
    .description('running runbooks (search attributes)')
    .option('--awaiting-approval', 'only those waiting for an approval')
    .option('--app <app>')
    .option('--env <env>')
    .option('--all', 'include finished runs')
    .option('--json', 'the runs as JSON')
    .action(
      withClient(async (rc, opts: { awaitingApproval?: boolean; app?: string; env?: string; all?: boolean; json?: boolean }) => {
        const rows = await rc.list(opts);
        console.log(opts.json ? JSON.stringify(rows, null, 2) : formatRunList(rows, new Date()));
      }),
    );

  program
    .command('backups <app>')
    .description('the backups of an app/env, newest first: time, size, verified by a drill, pinned and why; where they are')
    .requiredOption('--env <env>')
    .option('--json', 'the catalog as JSON')
    .action(
      withClient(async (rc, app: string, opts: { env: string; json?: boolean }) => {
        const catalog = await rc.backups(checkName('app', app), checkName('env', opts.env));
        console.log(opts.json ? JSON.stringify(catalog, null, 2) : formatBackups(catalog, new Date()));
      }),
    );

  program
    .command('history <app>')
    .description('every runbook run on an app/env, newest first: runbook, result, duration, who approved or rejected (the audit trail)')
    .requiredOption('--env <env>')
    .option('--limit <n>', 'at most this many runs', '50')
    .option('--json', 'the entries as JSON')
    .action(
      withClient(async (rc, app: string, opts: { env: string; limit: string; json?: boolean }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit must be a whole number of runs, at least 1 (not ${JSON.stringify(opts.limit)})`);
        const entries = await rc.history(checkName('app', app), checkName('env', opts.env), limit);
        console.log(opts.json ? JSON.stringify(entries, null, 2) : formatHistory(app, opts.env, entries, new Date()));
      }),
    );

  program
    .command('update <app>')
    .description('rolling update to a version: start-before-stop per batch, canary, automatic rollback of the whole fleet (rollingUpdate); with --service, one dependency to the image the inventory declares (updateDependency)')
    .requiredOption('--env <env>')
    .option('--version <version>', 'image tag to roll out (required without --service; with it, the inventory\'s tag, checked)')
    .option('--service <name>', 'update this dependency (e.g. redis) instead of the app: volumes kept, health-gated, approval for a database, rolled back on failure')
    .option('--batch <n>', 'replicas replaced at a time, across hosts', (v) => Number(v), 1)
    .option('--canary <mode>', 'after the first batch: "approve" (a gate) or "bake=10m" (watch health and errors)')
    .option('--surge <n>', 'batches that may boot ahead while one is switched (default: all; 0: one after the other)', (v) => Number(v))
    .option('--drain-timeout <duration>', 'longest wait for in-flight requests through the old proxy config before SIGTERM', '30s')
    .option('--no-backup', 'skip the backup taken first')
    .option('--approval-timeout <duration>', 'how long the canary gate waits (default 7d)')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; version?: string; service?: string; batch: number; surge?: number; drainTimeout: string; canary?: string; backup: boolean; approvalTimeout?: string; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        if (opts.version !== undefined && !isValidVersion(opts.version)) throw new Error(`version "${opts.version}" is not a valid image tag`);
        if (opts.service !== undefined) {
          checkName('service', opts.service);
          if (opts.canary !== undefined || opts.surge !== undefined) throw new Error('--canary and --surge are for the app\'s replicas, not for --service');
          const input = { app, env: opts.env, service: opts.service, ...(opts.version ? { version: opts.version } : {}), ...(opts.backup === false ? { backup: false } : {}), ...(opts.approvalTimeout ? { approvalTimeout: opts.approvalTimeout } : {}) };
          const handle = await rc.start('updateDependency', input, `Update the dependency ${opts.service} of ${app}/${opts.env} to the inventory's image${opts.version ? ` (${opts.version})` : ''}`);
          console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
          return opts.detach ? 0 : watch(rc, handle.workflowId);
        }
        if (opts.version === undefined) throw new Error('--version is required (or --service <name> to update a dependency)');
        if (!Number.isInteger(opts.batch) || opts.batch < 1) throw new Error('--batch must be a whole number ≥ 1');
        if (opts.surge !== undefined && (!Number.isInteger(opts.surge) || opts.surge < 0)) throw new Error('--surge must be a whole number ≥ 0');
        parseDuration(opts.drainTimeout, '--drain-timeout');
        const handle = await rc.startRollingUpdate({
          app,
          env: opts.env,
          version: opts.version,
          batchSize: opts.batch,
          ...(opts.surge !== undefined ? { surge: opts.surge } : {}),
          drainTimeout: opts.drainTimeout,
          ...(opts.canary !== undefined ? { canary: parseCanary(opts.canary) } : {}),
          ...(opts.backup === false ? { backup: false } : {}),
          ...(opts.approvalTimeout ? { approvalTimeout: opts.approvalTimeout } : {}),
        });
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  program
    .command('rollback <app>')
    .description('roll the whole fleet back (the rolling update machinery, no canary): to --to, or to the version before the running one')
    .requiredOption('--env <env>')
    .option('--to <version>', 'the version to go back to (default: recorded on the running containers)')
    .option('--batch <n>', 'replicas replaced at a time', (v) => Number(v), 1)
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; to?: string; batch: number; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        if (opts.to !== undefined && !isValidVersion(opts.to)) throw new Error(`version "${opts.to}" is not a valid image tag`);
        const handle = await rc.startRollingUpdate({ app, env: opts.env, isRollback: true, batchSize: opts.batch, ...(opts.to ? { version: opts.to } : {}) });
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  program
    .command('backup <app>')
    .description('one backup now (nightlyBackup outside its schedule): dump, restore drill, retention')
    .requiredOption('--env <env>')
    .option('--skip-prune', 'do not apply retention this time')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; skipPrune?: boolean; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        // With a schedule, go through it: its overlap policy keeps a manual run from doubling a nightly one.
        if (!opts.skipPrune && (await hasBackupSchedule(rc.client, app, opts.env))) {
          const outcome = await triggerBackupSchedule(rc.client, app, opts.env);
          if (!outcome.started) {
            console.error(`a backup of ${app}/${opts.env} is already running (${outcome.running.join(', ') || 'see runbook schedule show'}); not started`);
            return 1;
          }
          console.log(`started ${outcome.started} through schedule ${backupScheduleId(app, opts.env)}\n  UI: ${uiUrl(rc, outcome.started)}`);
          return opts.detach ? 0 : watch(rc, outcome.started);
        }
        const handle = await rc.startNightlyBackup({ app, env: opts.env, ...(opts.skipPrune ? { skipPrune: true } : {}) });
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  program
    .command('maintenance <onOrOff> <app>')
    .description("maintenance mode (maintenanceMode): every proxy of the app/env answers 503 with Retry-After and the app's page, or serves the app again")
    .requiredOption('--env <env>')
    .option('--reason <text>', 'why (kept in the proxy snippet and the history)')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, onOrOff: string, app: string, opts: { env: string; reason?: string; detach?: boolean }) => {
        if (onOrOff !== 'on' && onOrOff !== 'off') throw new Error(`maintenance: "${onOrOff}" is not "on" or "off"`);
        checkName('app', app);
        checkName('env', opts.env);
        const input = { app, env: opts.env, on: onOrOff === 'on', ...(opts.reason ? { reason: opts.reason } : {}) };
        const handle = await rc.start('maintenanceMode', input, `Maintenance mode ${onOrOff} for ${app}/${opts.env}${opts.reason ? `: ${opts.reason}` : ''}`);
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  program
    .command('housekeeping <app>')
    .description("remove the app's images older than the running and the previous version on every host of the env, never one in use; report disk per host (housekeeping)")
    .requiredOption('--env <env>')
    .option('--dry-run', 'decide and report only: remove nothing, take no lock')
    .option('--json', 'print the result as JSON (no live view)')
    .action(
      withClient(async (rc, app: string, opts: { env: string; dryRun?: boolean; json?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        const input = { app, env: opts.env, ...(opts.dryRun ? { dryRun: true } : {}) };
        const handle = await rc.start('housekeeping', input, `Housekeeping of ${app}/${opts.env}'s images${opts.dryRun ? ' (dry run)' : ''}`);
        if (opts.json) {
          console.log(JSON.stringify(await handle.result(), null, 2));
          return 0;
        }
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        const code = await watch(rc, handle.workflowId);
        if (code === 0) console.log(formatHousekeeping((await rc.handle(handle.workflowId).result()) as HousekeepingResult));
        return code;
      }),
    );

  program
    .command('stop <app>')
    .description('stop an app/env (stopApp): its containers on every host, proxy first, databases last, and its networks; volumes are kept')
    .requiredOption('--env <env>')
    .option('--volumes', 'also remove its volumes (the data), after a "remove-volumes" approval')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; volumes?: boolean; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        const input = { app, env: opts.env, ...(opts.volumes ? { removeVolumes: true } : {}) };
        const handle = await rc.start('stopApp', input, `Stop ${app}/${opts.env}${opts.volumes ? ' and remove its volumes (needs approval)' : ' (volumes kept)'}`);
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  program
    .command('restore <app>')
    .description('restore a database from a verified backup (restoreBackup), or with --volume/--config an archived volume or the config files (restoreArchive); waits for approval of gate "restore"')
    .requiredOption('--env <env>')
    .option('--volume <name>', 'restore this archived volume (backup.archives.volumes) instead of a database: its containers stop meanwhile')
    .option('--config', "restore the config archive's worker files (env and secret files) instead of a database")
    .option('--archive <file>', 'with --volume or --config: archive file name, or "latest" (the newest complete one)', 'latest')
    .option('--backup <file>', 'backup file name, or "latest" (the newest verified one)', 'latest')
    .option('--database <name>', 'which database (its name in the inventory\'s backup section); needed when there are several')
    .option('--keep-previous', 'keep the pre-restore database (every write up to the stop) until dropped by hand')
    .option('--keep-for <duration>', 'how long the pre-restore database is kept before it is dropped (default 7d)')
    .option('--release', 'do not restore: drop the kept pre-restore database(s) of this app/env now')
    .option('--by <name>', 'who releases (with --release)', process.env.USER ?? 'cli')
    .option('--approval-timeout <duration>', 'how long the approval waits (default 7d, at most 30d)')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; backup: string; database?: string; volume?: string; config?: boolean; archive: string; keepPrevious?: boolean; keepFor?: string; release?: boolean; by: string; approvalTimeout?: string; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        const archiveRestore = opts.volume !== undefined || opts.config === true;
        const databaseOnly = [opts.release && '--release', opts.database && '--database', opts.keepPrevious && '--keep-previous', opts.keepFor && '--keep-for', opts.backup !== 'latest' && '--backup'].filter(Boolean);
        if (archiveRestore && databaseOnly.length) throw new Error(`${databaseOnly.join(', ')}: for a database restore, not with --volume or --config (say --archive <file> for an archive)`);
        if (opts.volume !== undefined && opts.config) throw new Error('--volume and --config: restore one at a time');
        if (!archiveRestore && opts.archive !== 'latest') throw new Error('--archive: with --volume <name> or --config (a database backup is --backup <file>)');
        if (archiveRestore) {
          const input = {
            app,
            env: opts.env,
            ...(opts.volume !== undefined ? { volume: opts.volume } : {}),
            ...(opts.config ? { config: true } : {}),
            archive: opts.archive,
            ...(opts.approvalTimeout ? { approvalTimeout: opts.approvalTimeout } : {}),
          };
          const handle = await rc.start('restoreArchive', input, `Restore of ${opts.volume !== undefined ? `volume ${opts.volume}` : 'the config files'} of ${app}/${opts.env} from ${opts.archive === 'latest' ? 'the latest archive' : opts.archive} (needs approval)`);
          console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}\n  approve: runbook approve ${handle.workflowId} --gate restore --by <name>`);
          return opts.detach ? 0 : watch(rc, handle.workflowId);
        }
        if (opts.release) {
          const released = await rc.releasePreviousDatabases(app, opts.env, opts.by, opts.database);
          if (!released.length) {
            console.error(`no kept pre-restore database of ${app}/${opts.env}${opts.database ? `/${opts.database}` : ''} is waiting for release`);
            return 1;
          }
          for (const id of released) console.log(`released ${id}: the kept database is dropped now (watch: runbook watch ${id})`);
          return 0;
        }
        const handle = await rc.startRestore({
          app,
          env: opts.env,
          backup: opts.backup,
          ...(opts.database ? { database: opts.database } : {}),
          ...(opts.keepPrevious ? { keepPrevious: true } : {}),
          ...(opts.keepFor ? { keepPreviousFor: opts.keepFor } : {}),
          ...(opts.approvalTimeout ? { approvalTimeout: opts.approvalTimeout } : {}),
        });
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}\n  approve: runbook approve ${handle.workflowId} --gate restore --by <name>`);
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  program
    .command('cert <app>')
    .description('issue the HTTPS certificate of an app/env and switch its proxies to HTTPS (issueCertificate); a no-op while a valid one with more than a third of its lifetime left is served')
    .requiredOption('--env <env>')
    .option('--domains <names>', 'comma-separated names to cover (default: the inventory\'s proxy.tls.domains or proxy.domain)')
    .option('--staging', 'use the CA\'s staging directory (untrusted test certificates, generous rate limits)')
    .option('--self-signed', 'make a self-signed certificate on the host (development; no CA)')
    .option('--force', 'issue even when the served certificate is still good')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, app: string, opts: { env: string; domains?: string; staging?: boolean; selfSigned?: boolean; force?: boolean; detach?: boolean }) => {
        checkName('app', app);
        checkName('env', opts.env);
        if (opts.staging && opts.selfSigned) throw new Error('--staging and --self-signed exclude each other');
        const domains = opts.domains?.split(',').map((d) => d.trim()).filter((d) => d !== '');
        if (opts.domains !== undefined && !domains?.length) throw new Error('--domains needs at least one name');
        const handle = await rc.startIssueCertificate({
          app,
          env: opts.env,
          ...(domains ? { domains } : {}),
          ...(opts.staging ? { staging: true } : {}),
          ...(opts.selfSigned ? { selfSigned: true } : {}),
          ...(opts.force ? { force: true } : {}),
        });
        console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}`);
        if (opts.detach) return 0;
        const code = await watch(rc, handle.workflowId);
        if (code === 0) {
          const r = (await handle.result()) as IssueCertificateResult;
          for (const h of r.hosts) console.log(`  ${h.host}: ${h.outcome === 'issued' ? 'issued' : 'unchanged'} serial ${h.certificate.serial}, valid until ${h.certificate.notAfter} (${h.certificate.issuer}) — ${h.reason}`);
        }
        return code;
      }),
    );

  program
    .command('cutover <appOrAction> [app]')
    .description(
      'staged DNS cutover of an app from one environment to another, with a rollback window (dnsCutover).\n' +
        '  runbook cutover <app> --from E --to E          start (waits for gate "go-no-go")\n' +
        '  runbook cutover rollback <app> --to E --by N   ask for a rollback (gate "rollback"; --approve also approves it as N)\n' +
        '  runbook cutover extend <app> --to E --by N --extend-by 2d\n' +
        '  runbook cutover status <app> --to E [--json]',
    )
    .option('--from <env>', 'the environment that serves now')
    .option('--to <env>', 'the environment that takes over')
    .option('--record <name...>', "records to move (default: the inventory's cutover.records)")
    .option('--rehearse', 'rehearsal: the rehearsal record and databases; rolls back by itself and reports whether the start state came back')
    .option('--ttl-lead-time <duration>', 'how long before the switch the TTL is lowered (default 48h)')
    .option('--low-ttl <seconds>', 'the TTL around the switch (default 60)')
    .option('--validation-delay <duration>', 'when validation starts after the switch (default 15m)')
    .option('--validation-window <duration>', 'when validation ends after the switch (default 2h)')
    .option('--validation-round <duration>', 'one decision per round (default 15m)')
    .option('--probe-interval <duration>', 'probe interval within a round (default 5s)')
    .option('--latency-margin <duration>', 'a median within this of the baseline is never slower (default 25ms)')
    .option('--ttl-restore-after <duration>', 'when the old TTL comes back after the switch (default 24h)')
    .option('--reconcile-every <duration>', 'reconciliation interval in the window (default 6h)')
    .option('--window <duration>', 'the rollback window (default 7d)')
    .option('--no-backup', 'no backups of the old side (before the switch and at decommission)')
    .option('--approval-timeout <duration>', 'how long each gate waits (default 7d, at most 30d)')
    .option('--by <name>', 'who asks (rollback, extend)', process.env.USER ?? 'cli')
    .option('--reason <text>', 'why (rollback, extend)')
    .option('--approve', 'rollback: also approve the rollback gate as --by')
    .option('--extend-by <duration>', 'extend: how much longer the window stays open')
    .option('--json', 'status: the raw status')
    .option('--detach', 'start and return; do not watch')
    .action(
      withClient(async (rc, first: string, second: string | undefined, opts: CutoverCliOptions) => {
        const action = second === undefined ? 'start' : first;
        const app = checkName('app', second ?? first);
        if (!['start', 'rollback', 'extend', 'status'].includes(action)) throw new Error(`unknown cutover action "${action}" (rollback, extend or status; or: runbook cutover <app> --from E --to E)`);
        if (!opts.to) throw new Error('--to <env> is required (the environment that takes over)');
        const id = runbookWorkflowId('dnsCutover', app, checkName('env', opts.to));
        if (action === 'status') {
          const [st, cut] = await Promise.all([rc.status(id), rc.cutoverStatus(id)]);
          console.log(opts.json ? JSON.stringify({ ...st, cutover: cut }, null, 2) : `${formatStatus(id, st)}\n${formatCutoverStatus(cut)}`);
          return 0;
        }
        if (action === 'extend') {
          if (!opts.extendBy) throw new Error('--extend-by <duration> is required');
          await rc.extendCutoverWindow(id, opts.by, opts.extendBy, opts.reason);
          const cut = await rc.cutoverStatus(id);
          const last = cut.extensions.at(-1);
          if (!last?.accepted) {
            console.error(`extension not accepted: ${last?.why ?? 'unknown'}`);
            return 1;
          }
          console.log(`window of ${id} now ends at ${cut.windowEndsAt}`);
          return 0;
        }
        if (action === 'rollback') {
          await rc.requestCutoverRollback(id, opts.by, opts.reason);
          console.log(`rollback requested by ${opts.by}; it waits for approval of gate "rollback"`);
          if (!opts.approve) {
            console.log(`  approve: runbook approve ${id} --gate rollback --by <name>`);
            return 0;
          }
          const deadline = Date.now() + 60_000;
          while (!(await rc.status(id)).pendingGates.some((g) => g.gate === 'rollback')) {
            if (Date.now() > deadline) throw new Error('the rollback gate did not open within 60 s (is the cutover past its switch, or already ended?)');
            await new Promise((r) => setTimeout(r, 250));
          }
          try {
            await rc.decide(id, 'approve', 'rollback', opts.by, opts.reason);
          } catch (err) {
            console.error(`approval not allowed: ${failureText((err as { cause?: unknown }).cause ?? err)}`);
            return 1;
          }
          console.log(`rollback approved by ${opts.by}`);
          return opts.detach ? 0 : watch(rc, id);
        }
        if (!opts.from) throw new Error('--from <env> is required (the environment that serves now)');
        const handle = await rc.startCutover({
          app,
          from: checkName('env', opts.from),
          to: opts.to,
          ...(opts.record ? { records: opts.record } : {}),
          ...(opts.rehearse ? { rehearse: true } : {}),
          ...(opts.lowTtl !== undefined ? { lowTtl: Number(opts.lowTtl) } : {}),
          ...(opts.ttlLeadTime ? { ttlLeadTime: opts.ttlLeadTime } : {}),
          ...(opts.validationDelay ? { validationDelay: opts.validationDelay } : {}),
          ...(opts.validationWindow ? { validationWindow: opts.validationWindow } : {}),
          ...(opts.validationRound ? { validationRound: opts.validationRound } : {}),
          ...(opts.probeInterval ? { probeInterval: opts.probeInterval } : {}),
          ...(opts.latencyMargin ? { latencyMargin: opts.latencyMargin } : {}),
          ...(opts.ttlRestoreAfter ? { ttlRestoreAfter: opts.ttlRestoreAfter } : {}),
          ...(opts.reconcileEvery ? { reconcileEvery: opts.reconcileEvery } : {}),
          ...(opts.window ? { window: opts.window } : {}),
          ...(opts.backup === false ? { backup: false } : {}),
          ...(opts.approvalTimeout ? { approvalTimeout: opts.approvalTimeout } : {}),
        });
        console.log(
          `started ${handle.workflowId} (run ${handle.firstExecutionRunId})\n  UI: ${uiUrl(rc, handle.workflowId)}` +
            (opts.rehearse ? '' : `\n  go/no-go: runbook approve ${handle.workflowId} --gate go-no-go --by <name>`) +
            `\n  roll back: runbook cutover rollback ${app} --to ${opts.to} --by <name> [--approve]`,
        );
        return opts.detach ? 0 : watch(rc, handle.workflowId);
      }),
    );

  const schedule = program.command('schedule').description('Temporal Schedules of the runbooks');
  schedule
    .command('certs')
    .description('create or update the certificate renewal schedule (one for the whole inventory, renewCertificates every 12 h, overlap: skip); or show, trigger, pause, resume, delete it')
    .option('--every <duration>', 'how often every certificate is checked', DEFAULT_CERT_EVERY)
    .option('--catchup-window <duration>', 'how late a missed check may still start', DEFAULT_CERT_CATCHUP_WINDOW)
    .option('--show', 'show the schedule; change nothing')
    .option('--trigger', 'run one check now through the schedule (skipped, exit code 1, if one is running)')
    .option('--pause', 'pause the schedule')
    .option('--resume', 'resume the paused schedule')
    .option('--delete', 'delete the schedule (installed certificates stay)')
    .option('--note <text>', 'why (kept on the schedule, with --pause/--resume)')
    .action(
      withClient(async (rc, opts: { every: string; catchupWindow: string } & ScheduleVerbs) =>
        scheduleCommand(rc, rc.client.schedule.getHandle(certScheduleId()), opts, 'a renewal check', () => upsertCertSchedule(rc.client, { every: opts.every, catchupWindow: opts.catchupWindow, taskQueue: rc.settings.taskQueue })),
      ),
    );
  schedule
    .command('housekeeping <app>')
    .description(`create or update the housekeeping schedule of an app/env (daily, overlap: skip): old images removed, disk per host; or show, trigger, pause, resume, delete it`)
    .requiredOption('--env <env>')
    .option('--cron <expr>', 'when, as 5 cron fields', DEFAULT_HOUSEKEEPING_CRON)
    .option('--timezone <tz>', 'IANA time zone of the cron expression', 'UTC')
    .option('--catchup-window <duration>', 'how late a missed run may still start', DEFAULT_CATCHUP_WINDOW)
    .option('--show', 'show the schedule; change nothing')
    .option('--trigger', 'run housekeeping now through the schedule (skipped, exit code 1, if one is running)')
    .option('--pause', 'pause the schedule')
    .option('--resume', 'resume the paused schedule')
    .option('--delete', 'delete the schedule')
    .option('--note <text>', 'why (kept on the schedule, with --pause/--resume)')
    .action(
      withClient(async (rc, app: string, opts: { env: string; cron: string; timezone: string; catchupWindow: string } & ScheduleVerbs) => {
        checkName('app', app);
        checkName('env', opts.env);
        const handle = rc.client.schedule.getHandle(housekeepingScheduleId(app, opts.env));
        return scheduleCommand(rc, handle, opts, `housekeeping of ${app}/${opts.env}`, () =>
          upsertHousekeepingSchedule(rc.client, { app, env: opts.env, cron: opts.cron, timezone: opts.timezone, catchupWindow: opts.catchupWindow, taskQueue: rc.settings.taskQueue }),
        );
      }),
    );
  schedule
    .command('updates <app>')
    .description("create or update the update schedule of an app/env (Watchtower's job, with gates): every 15 minutes the tracked tag's digest is asked of the registry, and a new one is rolled out (rollingUpdate to <tag>@<digest>: backup, migration, canary, rollback and an alert on failure); or show, trigger, pause, resume, delete it")
    .requiredOption('--env <env>')
    .option('--every <duration>', 'how often the registry is asked', DEFAULT_UPDATES_EVERY)
    .option('--tag <tag>', "the tag to follow (default: the tag of the environment's version)")
    .option('--canary <mode>', 'the rollout\'s canary: "bake=1m" (default), "approve" (a gate) or "none"')
    .option('--show', 'show the schedule; change nothing')
    .option('--trigger', 'ask the registry now through the schedule (skipped, exit code 1, if a check or rollout is running)')
    .option('--pause', 'pause the schedule (the version stays as it is)')
    .option('--resume', 'resume the paused schedule')
    .option('--delete', 'delete the schedule')
    .option('--note <text>', 'why (kept on the schedule, with --pause/--resume)')
    .action(
      withClient(async (rc, app: string, opts: { env: string; every: string; tag?: string; canary?: string } & ScheduleVerbs) => {
        checkName('app', app);
        checkName('env', opts.env);
        const handle = rc.client.schedule.getHandle(updatesScheduleId(app, opts.env));
        return scheduleCommand(rc, handle, opts, `an update check of ${app}/${opts.env}`, () =>
          upsertUpdatesSchedule(rc.client, {
            app,
            env: opts.env,
            every: opts.every,
            ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
            ...(opts.canary !== undefined ? { canary: parseCanary(opts.canary) } : {}),
            taskQueue: rc.settings.taskQueue,
          }),
        );
      }),
    );
  schedule
    .command('backup <app>')
    .description(`create or update the nightly backup schedule of an app/env (overlap: skip)`)
    .requiredOption('--env <env>')
    .option('--cron <expr>', 'when, as 5 cron fields', DEFAULT_BACKUP_CRON)
    .option('--timezone <tz>', 'IANA time zone of the cron expression', 'UTC')
    .option('--catchup-window <duration>', 'how late a missed run may still start (e.g. after the server was down)', DEFAULT_CATCHUP_WINDOW)
    .action(
      withClient(async (rc, app: string, opts: { env: string; cron: string; timezone: string; catchupWindow: string }) => {
        checkName('app', app);
        checkName('env', opts.env);
        const r = await upsertBackupSchedule(rc.client, { app, env: opts.env, cron: opts.cron, timezone: opts.timezone, catchupWindow: opts.catchupWindow, taskQueue: rc.settings.taskQueue });
        console.log(`${r.created ? 'created' : 'updated'} ${r.scheduleId}`);
        console.log(formatSchedule(await describeBackupSchedule(rc.client, app, opts.env)));
      }),
    );
  const scheduleVerb = (verb: 'show' | 'pause' | 'resume' | 'delete', description: string, run: (h: ReturnType<RunbookClient['client']['schedule']['getHandle']>, note: string) => Promise<void>) =>
    schedule
      .command(`${verb} <app>`)
      .description(description)
      .requiredOption('--env <env>')
      .option('--note <text>', 'why (kept on the schedule)')
      .action(
        withClient(async (rc, app: string, opts: { env: string; note?: string }) => {
          checkName('app', app);
          checkName('env', opts.env);
          const handle = rc.client.schedule.getHandle(backupScheduleId(app, opts.env));
          await run(handle, opts.note ?? `${verb} from the runbook CLI`);
          if (verb !== 'delete') console.log(formatSchedule(await handle.describe()));
          else console.log(`deleted ${handle.scheduleId}`);
        }),
      );
  scheduleVerb('show', 'the backup schedule: state, next runs, recent and skipped runs', async () => undefined);
  scheduleVerb('pause', 'pause the backup schedule (no runs until resumed)', (h, note) => h.pause(note));
  scheduleVerb('resume', 'resume a paused backup schedule', (h, note) => h.unpause(note));
  schedule
    .command('trigger <app>')
    .description('start a backup now through the schedule (skipped, exit code 1, if one is running)')
    .requiredOption('--env <env>')
    .action(
      withClient(async (rc, app: string, opts: { env: string }) => {
        checkName('app', app);
        checkName('env', opts.env);
        const outcome = await triggerBackupSchedule(rc.client, app, opts.env);
        if (!outcome.started) {
          console.log(`skipped: a backup is already running (${outcome.running.join(', ') || 'unknown'}); overlap policy SKIP`);
          return 1;
        }
        console.log(`started ${outcome.started}\n  UI: ${uiUrl(rc, outcome.started)}`);
        return 0;
      }),
    );
  scheduleVerb('delete', 'delete the backup schedule (backups already taken stay)', (h) => h.delete());

  const lock = program.command('lock').description('the per-app/env lock held by mutating runbooks');
  lock
    .command('status <app>')
    .requiredOption('--env <env>')
    .action(
      withClient(async (rc, app: string, opts: { env: string }) => {
        const holder = await rc.lockHolder(app, opts.env);
        console.log(holder ? `${app}/${opts.env} is locked by ${holder.runbook} ${holder.workflowId} (run ${holder.runId}) since ${holder.since}` : `${app}/${opts.env} is not locked`);
      }),
    );
  lock
    .command('release <app>')
    .description('force-release a lock whose holder is stuck (the holder is not stopped)')
    .requiredOption('--env <env>')
    .requiredOption('--by <name>')
    .action(
      withClient(async (rc, app: string, opts: { env: string; by: string }) => {
        await rc.forceReleaseLock(app, opts.env, opts.by);
        console.log(`release of ${app}/${opts.env} requested by ${opts.by}`);
      }),
    );

  program.hook('postAction', () => {
    process.exitCode = exitCode;
  });
  return program;
}

if (require.main === module) {
  buildCli()
    .parseAsync(process.argv)
    .catch((err) => {
      console.error(`runbook: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(2);
    });
}
