// Typed helpers to start, watch, approve and list runbooks; used by the CLI and the tests.
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { lockWorkflowId, runbookWorkflowId, type RunbookName } from '../common/naming';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV, SA_STEP } from '../common/search-attributes';
import type { DecisionRecord, FirstDeployInput, IssueCertificateInput, LockHolder, NightlyBackupInput, RestoreBackupInput, RollingUpdateInput, RunbookStatus, RunbookTarget } from '../common/types';
import { lockHolderQuery, releaseLockSignal } from '../common/lock';
import { approveSignal, cutoverStatusQuery, decideUpdate, extendWindowSignal, releasePreviousSignal, rejectSignal, requestRollbackSignal, statusQuery } from '../workflows/lib/definitions';
import type { CutoverStatus } from '../common/cutover';
import { connectionSettings, type ConnectionSettings } from './connection';
import { BackupCatalogInputSchema, INPUT_SCHEMAS, parseInput, type DnsCutoverInput, type RunbookWithInputSchema } from '../common/inputs';
import { historyEntry, type HistoryEntry, type ListedRun } from './format';
import type { backupCatalog, BackupCatalog } from '../workflows/backupCatalog';

/**
 * The input checked with its runbook's schema (the one the workflow checks again), before anything
 * starts: throws `invalid input: <path>: <message>; ...` (the CLI prints it and exits 2).
 */
export function checkRunbookInput(runbook: RunbookName, input: unknown): void {
  if (runbook in INPUT_SCHEMAS) parseInput(INPUT_SCHEMAS[runbook as RunbookWithInputSchema], input, runbook);
}

export class RunbookClient {
  private constructor(
    readonly client: Client,
    readonly settings: ConnectionSettings,
    private readonly connection: Connection,
  ) {}

  static async connect(settings: ConnectionSettings = connectionSettings()): Promise<RunbookClient> {
    const connection = await Connection.connect({
      address: settings.address,
      ...(settings.tls ? { tls: settings.tls } : {}),
      ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
    });
    return new RunbookClient(new Client({ connection, namespace: settings.namespace }), settings, connection);
  }

  async close(): Promise<void> {
    await this.connection.close();
  }

  /** Starts a runbook as `<runbook>/<app>/<env>`; refuses while one runs on the same target. */
  async start(runbook: RunbookName, input: { app: string } & Record<string, unknown>, summary: string, target: RunbookTarget = { app: input.app, env: String(input.env) }): Promise<WorkflowHandleWithFirstExecutionRunId> {
    checkRunbookInput(runbook, input);
    const workflowId = runbookWorkflowId(runbook, target.app, target.env);
    try {
      return await this.client.workflow.start(runbook, {
        workflowId,
        taskQueue: this.settings.taskQueue,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        staticSummary: summary,
        staticDetails: [
          `Input: \`${JSON.stringify(input)}\``,
          `Follow: \`runbook watch ${workflowId}\` or the \`status\` query.`,
          'Approve a gate: signal `approve` (or `reject`) with `{"gate": "<gate>", "by": "<name>", "comment": "..."}`.',
        ].join('\n\n'),
        typedSearchAttributes: [
          { key: SA_APP, value: target.app },
          { key: SA_ENV, value: target.env },
          { key: SA_STEP, value: 'starting' },
          { key: SA_AWAITING_APPROVAL, value: false },
        ],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new Error(`${workflowId} is already running; watch it with \`runbook watch ${workflowId}\` or wait for it to finish`);
      }
      throw err;
    }
  }

  /** `dnsCutover/<app>/<to>`: the staged DNS cutover of an app from one environment to another. */
  startCutover(input: DnsCutoverInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
    const what = input.rehearse ? 'Rehearsal of the DNS cutover' : 'DNS cutover';
    return this.start('dnsCutover', { ...input }, `${what} of ${input.app} from ${input.from} to ${input.to}`, { app: input.app, env: input.to });
  }

  /** Asks a running cutover to roll back: it opens the "rollback" gate, which approvers decide. */
  async requestCutoverRollback(workflowId: string, by: string, reason?: string): Promise<void> {
    await this.handle(workflowId).signal(requestRollbackSignal, { by, ...(reason ? { reason } : {}) });
  }

  async extendCutoverWindow(workflowId: string, by: string, extendBy: string, reason?: string): Promise<void> {
    await this.handle(workflowId).signal(extendWindowSignal, { by, extendBy, ...(reason ? { reason } : {}) });
  }

  cutoverStatus(workflowId: string): Promise<CutoverStatus> {
    return this.handle(workflowId).query(cutoverStatusQuery);
  }

  startFirstDeploy(input: FirstDeployInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
    const what = input.dryRun ? 'Dry run of first deploy' : 'First deploy';
    return this.start('firstDeploy', { ...input }, `${what} of ${input.app} ${input.version ?? '(inventory version)'} to ${input.env}`);
  }

  startRollingUpdate(input: RollingUpdateInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
    const what = input.isRollback ? `Rollback of ${input.app}/${input.env} to ${input.version ?? 'the previous version'}` : `Rolling update of ${input.app}/${input.env} to ${input.version}`;
    return this.start('rollingUpdate', { ...input }, what);
  }

  /** `issueCertificate/<app>/<env>`: issue (or renew) the environment's certificate; a no-op while the served one is good. */
  startIssueCertificate(input: IssueCertificateInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
    const mode = input.selfSigned ? 'self-signed certificate' : input.staging ? 'staging certificate' : 'certificate';
    const names = input.domains?.length ? ` for ${input.domains.join(', ')}` : '';
    return this.start('issueCertificate', { ...input }, `${input.force ? 'Forced ' : ''}${mode}${names} of ${input.app}/${input.env}`.replace(/^./, (c) => c.toUpperCase()));
  }

  /** One backup night now, outside the schedule (same workflow, same retention). */
  startNightlyBackup(input: NightlyBackupInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
    return this.start('nightlyBackup', { ...input }, `Backup of ${input.app}/${input.env} (started by hand)`);
  }

  startRestore(input: RestoreBackupInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
    return this.start('restoreBackup', { ...input }, `Restore of ${input.app}/${input.env}${input.database ? ` ${input.database}` : ''} from ${input.backup ?? 'the latest verified backup'} (needs approval)`);
  }

  handle(workflowId: string): WorkflowHandle {
    return this.client.workflow.getHandle(workflowId);
  }

  status(workflowId: string): Promise<RunbookStatus> {
    return this.handle(workflowId).query(statusQuery);
  }

  /** Approve or reject through the Update: answered at once with "accepted" or why not. */
  decide(workflowId: string, decision: 'approve' | 'reject', gate: string, by: string, comment?: string): Promise<DecisionRecord> {
    return this.handle(workflowId).executeUpdate(decideUpdate, { args: [{ gate, by, decision, ...(comment ? { comment } : {}) }] });
  }

  /** The same through a signal (fire and forget; ignored decisions are logged by the workflow). */
  signalDecision(workflowId: string, decision: 'approve' | 'reject', gate: string, by: string, comment?: string): Promise<void> {
    return this.handle(workflowId).signal(decision === 'approve' ? approveSignal : rejectSignal, { gate, by, ...(comment ? { comment } : {}) });
  }

  async list(filter: { awaitingApproval?: boolean; app?: string; env?: string; all?: boolean }): Promise<ListedRun[]> {
    const clauses = [`${filter.all ? '' : "ExecutionStatus = 'Running' AND "}RunbookApp IS NOT NULL`];
    if (filter.awaitingApproval) clauses.push('RunbookAwaitingApproval = true');
    if (filter.app) clauses.push(`RunbookApp = '${filter.app.replace(/'/g, '')}'`);
    if (filter.env) clauses.push(`RunbookEnv = '${filter.env.replace(/'/g, '')}'`);
    const rows: ListedRun[] = [];
    for await (const wf of this.client.workflow.list({ query: clauses.join(' AND ') })) {
      rows.push({
        workflowId: wf.workflowId,
        runId: wf.runId,
        type: wf.type,
        status: wf.status.name,
        startTime: wf.startTime,
        step: wf.typedSearchAttributes.get(SA_STEP),
        awaiting: wf.typedSearchAttributes.get(SA_AWAITING_APPROVAL),
      });
      if (rows.length >= 200) break;
    }
    return rows;
  }

  /** The backups of an app/env, read by a worker (`backupCatalog/<app>/<env>`; concurrent asks share one run). */
  async backups(app: string, env: string): Promise<BackupCatalog> {
    const input = parseInput(BackupCatalogInputSchema, { app, env }, 'backupCatalog');
    return this.client.workflow.execute<typeof backupCatalog>('backupCatalog', {
      workflowId: `backupCatalog/${app}/${env}`,
      taskQueue: this.settings.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowExecutionTimeout: '5 minutes',
      staticSummary: `Which backups ${app}/${env} has (read-only)`,
    });
  }

  /**
   * Every run on an app/env, newest first (at most `limit`): runbook, result, duration, and the
   * approvals and rejections that counted, read from each run's status query (a closed run is
   * replayed by a worker to answer; without one within `queryTimeoutMs`, the entry says so).
   */
  async history(app: string, env: string, limit = 50, queryTimeoutMs = 5000): Promise<HistoryEntry[]> {
    const runs: { workflowId: string; runId: string; type: string; status: string; startTime: Date; closeTime?: Date }[] = [];
    const query = `RunbookApp = '${app.replace(/'/g, '')}' AND RunbookEnv = '${env.replace(/'/g, '')}'`;
    for await (const wf of this.client.workflow.list({ query })) {
      runs.push({ workflowId: wf.workflowId, runId: wf.runId, type: wf.type, status: wf.status.name, startTime: wf.startTime, closeTime: wf.closeTime });
    }
    runs.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
    const newest = runs.slice(0, limit);
    const statusOf = async (run: (typeof runs)[number]): Promise<HistoryEntry> => {
      try {
        // aborted, not just raced: a query still retrying when the CLI closes its connection would crash it
        const st = await this.client.withAbortSignal(AbortSignal.timeout(queryTimeoutMs), () => this.client.workflow.getHandle(run.workflowId, run.runId).query(statusQuery));
        return historyEntry(run, st);
      } catch (err) {
        const e = err as Error & { cause?: Error };
        const why = e.name === 'AbortError' || /abort|cancel/i.test(`${e.message} ${e.cause?.message ?? ''}`) ? `no worker answered its status query within ${queryTimeoutMs} ms` : `${e.message}${e.cause?.message ? `: ${e.cause.message}` : ''}`;
        return historyEntry(run, undefined, `details unknown: ${why}`);
      }
    };
    const entries: HistoryEntry[] = [];
    for (let i = 0; i < newest.length; i += 4) entries.push(...(await Promise.all(newest.slice(i, i + 4).map(statusOf))));
    return entries;
  }

  /** Releases the kept pre-restore databases of an app/env (optionally one database): each is dropped now by its releasePreviousDatabase run. */
  async releasePreviousDatabases(app: string, env: string, by: string, database?: string): Promise<string[]> {
    const kept = (await this.list({ app, env })).filter((r) => r.type === 'releasePreviousDatabase' && (database === undefined || r.workflowId.startsWith(`releasePreviousDatabase/${app}/${env}/${database}/`)));
    for (const r of kept) await this.client.workflow.getHandle(r.workflowId, r.runId).signal(releasePreviousSignal, { by });
    return kept.map((r) => r.workflowId);
  }

  async lockHolder(app: string, env: string): Promise<LockHolder | null> {
    const handle = this.handle(lockWorkflowId(app, env));
    try {
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') return null;
      return await handle.query(lockHolderQuery);
    } catch (err) {
      if ((err as Error).name === 'WorkflowNotFoundError') return null;
      throw err;
    }
  }

  async forceReleaseLock(app: string, env: string, by: string): Promise<void> {
    await this.handle(lockWorkflowId(app, env)).signal(releaseLockSignal, { workflowId: `cli:${by}`, runId: '', force: true });
  }
}

export function failureText(err: unknown): string {
  if (err instanceof WorkflowFailedError) {
    const parts: string[] = [];
    let cause: unknown = err.cause;
    while (cause instanceof Error) {
      parts.push(cause.message);
      cause = (cause as { cause?: unknown }).cause;
    }
    return parts.join('\ncaused by: ') || err.message;
  }
  return err instanceof Error ? err.message : String(err);
}
