// Approval gates with the contract of AWS SSM aws:approve: named gate, approver list (empty =
// anyone), M-of-N, a timeout whose safe default is "do not proceed", one reject decides.
// Every decision, accepted or ignored, lands in the decisions log.
import { condition, setHandler } from '@temporalio/workflow';
import type {
  ApprovalDecisionInput,
  ApprovalPolicy,
  DecisionKind,
  DecisionRecord,
  GateResult,
  PendingGate,
} from '../../common/types';
import { approveSignal, decideUpdate, rejectSignal } from './definitions';

export const DEFAULT_APPROVAL_TIMEOUT_MS = 7 * 24 * 3600 * 1000;
export const MAX_APPROVAL_TIMEOUT_MS = 30 * 24 * 3600 * 1000;

interface OpenGate extends PendingGate {
  rejectedBy?: string;
}

export class ApprovalGates {
  readonly pending = new Map<string, OpenGate>();
  readonly decisions: DecisionRecord[] = [];

  constructor(private readonly onChange: () => void) {
    setHandler(approveSignal, (d) => void this.decide('approve', d, 'signal'));
    setHandler(rejectSignal, (d) => void this.decide('reject', d, 'signal'));
    setHandler(
      decideUpdate,
      (d) => this.decide(d.decision, d, 'update'),
      {
        validator: (d) => {
          const reason = this.refusal(d.decision, d);
          if (reason) throw new Error(reason);
        },
      },
    );
  }

  /** Why a decision would be ignored, or undefined when it counts. */
  refusal(kind: DecisionKind, d: ApprovalDecisionInput): string | undefined {
    if (kind !== 'approve' && kind !== 'reject') return `decision must be "approve" or "reject"`;
    if (!d || typeof d.gate !== 'string' || typeof d.by !== 'string' || !d.by.trim()) return 'a decision needs "gate" and "by"';
    const gate = this.pending.get(d.gate);
    if (!gate) {
      const open = [...this.pending.keys()];
      return `no pending gate "${d.gate}" (${open.length ? `pending: ${open.join(', ')}` : 'no gate is pending'})`;
    }
    if (gate.approvers.length > 0 && !gate.approvers.includes(d.by)) {
      return `"${d.by}" is not an approver of gate "${d.gate}" (approvers: ${gate.approvers.join(', ')})`;
    }
    if (kind === 'approve' && gate.approvedBy.includes(d.by)) return `"${d.by}" already approved gate "${d.gate}"`;
    return undefined;
  }

  private decide(kind: DecisionKind, d: ApprovalDecisionInput, via: 'signal' | 'update'): DecisionRecord {
    const reason = this.refusal(kind, d);
    const record: DecisionRecord = {
      gate: String(d?.gate ?? ''),
      by: String(d?.by ?? ''),
      ...(d?.comment ? { comment: String(d.comment).slice(0, 1000) } : {}),
      decision: kind,
      at: new Date().toISOString(),
      accepted: !reason,
      ...(reason ? { reason } : {}),
      via,
    };
    this.decisions.push(record);
    if (!reason) {
      const gate = this.pending.get(d.gate)!;
      if (kind === 'reject') gate.rejectedBy = d.by;
      else gate.approvedBy.push(d.by);
    }
    this.onChange();
    return record;
  }

  /** Waits for the gate's decision; resolves to "timed-out" (caller must not proceed) after `timeoutMs`. */
  async wait(gate: string, description: string, policy: ApprovalPolicy, timeoutMs: number): Promise<GateResult> {
    if (this.pending.has(gate)) throw new Error(`gate "${gate}" is already pending`);
    const ms = Math.min(Math.max(timeoutMs, 1000), MAX_APPROVAL_TIMEOUT_MS);
    const open: OpenGate = {
      gate,
      description,
      approvers: [...policy.approvers],
      minApprovals: Math.max(1, policy.minApprovals),
      approvedBy: [],
      deadline: new Date(Date.now() + ms).toISOString(),
    };
    this.pending.set(gate, open);
    this.onChange();
    try {
      const decided = await condition(() => open.rejectedBy !== undefined || open.approvedBy.length >= open.minApprovals, ms);
      if (open.rejectedBy !== undefined) return { gate, outcome: 'rejected', by: [open.rejectedBy] };
      if (decided) return { gate, outcome: 'approved', by: [...open.approvedBy] };
      return { gate, outcome: 'timed-out', by: [] };
    } finally {
      this.pending.delete(gate);
      this.onChange();
    }
  }

  pendingGates(): PendingGate[] {
    return [...this.pending.values()].map(({ rejectedBy: _r, ...g }) => ({ ...g, approvedBy: [...g.approvedBy] }));
  }
}
