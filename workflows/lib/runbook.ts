// What every runbook shares: the status query, steps with current details, search attributes
// kept current for the UI, and approval gates. The search attributes must be registered on the
// server (scripts/temporal.sh, docker-compose.temporal.yml, the test environments do it).
import { ApplicationFailure, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV, SA_STEP } from '../../common/search-attributes';
import { parseDuration } from '../../common/duration';
import type { ApprovalPolicy, GateResult, RunbookPhase, RunbookStatus, RunbookTarget, StepRecord } from '../../common/types';
import { ApprovalGates, DEFAULT_APPROVAL_TIMEOUT_MS, MAX_APPROVAL_TIMEOUT_MS } from './approvals';
import { statusQuery } from './definitions';

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

  /** An approval gate; anything but "approved" must stop the runbook (safe default). */
  async gate(gate: string, description: string, policy: ApprovalPolicy, timeout?: string): Promise<GateResult> {
    const before = this.phase;
    this.phase = 'awaiting-approval';
    try {
      return await this.step(`approval:${gate}`, () => this.approvals.wait(gate, description, policy, approvalTimeoutMs(timeout)));
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
