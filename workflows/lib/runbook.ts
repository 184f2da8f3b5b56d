// What every runbook shares: the status query, steps with current details, search attributes
// kept current for the UI, and approval gates. The search attributes must be registered on the
// server (scripts/temporal.sh, docker-compose.temporal.yml, the test environments do it).
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV, SA_STEP } from '../../common/search-attributes';
import { parseDuration } from '../../common/duration';
import type { Activities } from '../../activities';
import type { RunbookEventResult } from '../../activities/notify';
import type { RunbookEvent } from '../../common/commands/notify';
import type { ApprovalPolicy, GateResult, RunbookPhase, RunbookStatus, RunbookTarget, StepRecord } from '../../common/types';
import { ApprovalGates, DEFAULT_APPROVAL_TIMEOUT_MS, MAX_APPROVAL_TIMEOUT_MS } from './approvals';
import { statusQuery } from './definitions';

/** Runs recorded before notifications existed replay without them. */
const NOTIFICATIONS_PATCH = 'runbook-notifications';
const notifier = proxyActivities<Pick<Activities, 'notifyRunbookEvent'>>({
  // each POST times out after 10 s, all webhooks in parallel
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 8 },
});

export class Runbook {
  private phase: RunbookPhase = 'planning';
  private currentStep = 'plan';
  private readonly steps: StepRecord[] = [];
  private error?: string;
  private readonly notes: string[] = [];
  readonly approvals: ApprovalGates;

  constructor(
    readonly name: string,
    readonly target: RunbookTarget,
  ) {
    this.approvals = new ApprovalGates(() => this.publish());
    setHandler(statusQuery, () => this.status());
    this.upsert([
      { key: SA_APP, value: target.app },
      { key: SA_ENV, value: target.env },
    ]);
    this.publish();
  }

  status(): RunbookStatus {
    return {
      runbook: this.name,
      app: this.target.app,
      env: this.target.env,
      phase: this.phase,
      step: this.currentStep,
      steps: this.steps.map((s) => ({ ...s })),
      pendingGates: this.approvals.pendingGates(),
      decisions: [...this.approvals.decisions],
      ...(this.error ? { error: this.error } : {}),
      ...(this.notes.length ? { notes: [...this.notes] } : {}),
    };
  }

  setPhase(phase: RunbookPhase): void {
    this.phase = phase;
    this.publish();
  }

  /** Runs one named step; its state is visible in the status query, the UI and search attributes. */
  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const record: StepRecord = { step: name, state: 'running', startedAt: new Date().toISOString() };
    this.steps.push(record);
    this.currentStep = name;
    if (this.phase === 'planning' && name !== 'plan') this.phase = 'running';
    this.publish();
    try {
      const result = await fn();
      record.state = 'done';
      return result;
    } catch (err) {
      record.state = 'failed';
      record.detail = errorMessage(err).slice(0, 2000);
      throw err;
    } finally {
      record.endedAt = new Date().toISOString();
      this.publish();
    }
  }

  /**
   * An approval gate; anything but "approved" must stop the runbook (safe default). The app/env's
   * notify webhooks are told when it opens and again before its deadline if it is still open.
   */
  async gate(gate: string, description: string, policy: ApprovalPolicy, timeout?: string): Promise<GateResult> {
    const before = this.phase;
    this.phase = 'awaiting-approval';
    try {
      return await this.step(`approval:${gate}`, async () => {
        // wait() opens the gate before its first await: a decision sent while the notification is on its way counts
        const decision = this.approvals.wait(gate, description, policy, approvalTimeoutMs(timeout));
        // notifications never hold a decided gate: what is left of them (a POST being retried, the reminder) is cancelled
        const telling = new CancellationScope();
        const told = telling.run(() => this.tellWhileOpen(gate)).catch((err) => {
          if (!isCancellation(err)) throw err;
        });
        const result = await decision;
        telling.cancel();
        await told;
        return result;
      });
    } finally {
      this.phase = before;
      this.publish();
    }
  }

  /** Something the operator must know besides the outcome: kept in the status and the UI's details. */
  note(message: string): void {
    this.notes.push(message.slice(0, 2000));
    this.publish();
  }

  /**
   * Posts an event to the app/env's notify webhooks (none configured: nothing is sent). A notification
   * that cannot be sent is noted in the status, never fails the run.
   */
  async tell(event: RunbookEvent): Promise<RunbookEventResult | undefined> {
    if (!patched(NOTIFICATIONS_PATCH)) return undefined;
    try {
      const r = await notifier.notifyRunbookEvent({ runbook: this.name, app: this.target.app, env: this.target.env, event });
      if (r.unconfirmed) this.note(`the "${event.kind}" notification may not have reached ${r.unconfirmed} webhook(s): a worker stopped during the call, and it is never posted twice`);
      return r;
    } catch (err) {
      if (isCancellation(err)) throw err;
      this.note(`the "${event.kind}" notification could not be sent: ${errorMessage(err)}`);
      return undefined;
    }
  }

  private async tellWhileOpen(gate: string): Promise<void> {
    const open = this.approvals.pending.get(gate);
    if (!open) return;
    const about = { gate, description: open.description, approvers: [...open.approvers], minApprovals: open.minApprovals, deadline: open.deadline };
    const told = await this.tell({ kind: 'gate-opened', ...about });
    if (!told?.webhooks || told.remindBeforeMs === undefined) return;
    const stillOpen = () => this.approvals.pending.get(gate) === open;
    const remindIn = Date.parse(open.deadline) - told.remindBeforeMs - Date.now();
    if (remindIn <= 0 || !stillOpen()) return;
    if (!(await condition(() => !stillOpen(), remindIn))) await this.tell({ kind: 'gate-deadline', ...about, approvedBy: [...open.approvedBy] });
  }

  /** Marks the run failed and tells the notify webhooks (also when the run was cancelled). */
  async fail(error: unknown, title?: string): Promise<void> {
    this.finish('failed', error);
    await CancellationScope.nonCancellable(() => this.tell({ kind: 'failed', error: this.error ?? 'failed', ...(title ? { title } : {}) }));
  }

  finish(phase: 'succeeded' | 'failed', error?: unknown): void {
    this.phase = phase;
    if (error !== undefined) this.error = errorMessage(error).slice(0, 4000);
    this.currentStep = phase === 'succeeded' ? 'done' : this.currentStep;
    this.publish();
  }

  private publish(): void {
    const pending = this.approvals?.pendingGates() ?? [];
    this.upsert([
      { key: SA_STEP, value: this.currentStep },
      { key: SA_AWAITING_APPROVAL, value: pending.length > 0 },
    ]);
    const gates = pending.map((g) => `**${g.gate}** (${g.approvedBy.length}/${g.minApprovals} approvals; approvers: ${g.approvers.join(', ') || 'anyone'}; until ${g.deadline})`);
    setCurrentDetails(
      [
        `**${this.name}** ${this.target.app}/${this.target.env} — phase: ${this.phase}, step: ${this.currentStep}`,
        ...(gates.length ? ['', 'Waiting for approval: ' + gates.join('; '), 'Approve: signal `approve` with `{"gate": "<gate>", "by": "<name>"}`'] : []),
        ...(this.error ? ['', `Error: ${this.error}`] : []),
        ...this.notes.map((n) => `\nNote: ${n}`),
      ].join('\n'),
    );
  }

  private lastUpserted = new Map<string, unknown>();
  private upsert(updates: { key: typeof SA_APP | typeof SA_STEP | typeof SA_AWAITING_APPROVAL; value: string | boolean }[]): void {
    const changed = updates.filter((u) => this.lastUpserted.get(u.key.name) !== u.value);
    if (changed.length === 0) return;
    for (const u of changed) this.lastUpserted.set(u.key.name, u.value);
    upsertSearchAttributes(changed.map((u) => ({ key: u.key, value: u.value }) as SearchAttributeUpdatePair));
  }
}

export function approvalTimeoutMs(timeout?: string): number {
  if (timeout === undefined) return DEFAULT_APPROVAL_TIMEOUT_MS;
  let ms: number;
  try {
    ms = parseDuration(timeout, 'approvalTimeout');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(errorMessage(err), 'InvalidInput');
  }
  if (ms > MAX_APPROVAL_TIMEOUT_MS) throw ApplicationFailure.nonRetryable(`approvalTimeout: ${timeout} exceeds the maximum of 30d`, 'InvalidInput');
  return ms;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    // ActivityFailure wraps the real ApplicationFailure as its cause.
    if (cause instanceof Error && err.message.startsWith('Activity task failed')) return cause.message;
    return err.message;
  }
  return String(err);
}
