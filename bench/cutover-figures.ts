// bench/cutover's figures from what its writer recorded (pure, no I/O): the write freeze, the
// backlog after the flip, and the checks of the writes against the rows found on the new database.

export type Side = 'old' | 'new';
export type Table = 'items' | 'events';

export interface Attempt {
  at: number;
  side: Side;
  ms: number;
  /** 'ok', or the SQLSTATE / error message of the failure. */
  outcome: string;
  /** Where it failed: connect, begin, insert, commit (a failed COMMIT may still have committed). */
  phase?: string;
}

export interface Write {
  ref: string;
  table: Table;
  scheduledAt: number;
  attempts: Attempt[];
  ackAt?: number;
  ackSide?: Side;
  id?: string;
}

export interface Gaps {
  /** The longest gap between two consecutive acknowledgements that overlaps [switchFrom, switchTo]. */
  freeze: { ms: number; from: number; to: number };
  /** The longest gap between acknowledgements ≥ `awayMs` before switchFrom or after switchTo. */
  otherMaxGapMs: number;
}

/**
 * Gaps between acknowledgement times (any order). A gap overlaps the switch when it ends after
 * switchFrom and starts before switchTo. No acknowledgement after the switch: the freeze runs to
 * `end` (when the writer stopped), so it is never shorter than it was.
 */
export function ackGaps(ackTimes: number[], switchFrom: number, switchTo: number, end: number, awayMs = 1000): Gaps {
  const acks = [...ackTimes].sort((a, b) => a - b);
  let freeze = { ms: 0, from: switchFrom, to: switchTo };
  let otherMaxGapMs = 0;
  const lastBefore = acks.filter((a) => a <= switchFrom).pop();
  if (!acks.some((a) => a > switchTo)) {
    const from = acks.filter((a) => a <= switchTo).pop() ?? lastBefore ?? switchFrom;
    freeze = { ms: end - from, from, to: end };
  }
  for (let i = 1; i < acks.length; i++) {
    const gap = acks[i] - acks[i - 1];
    if (acks[i] > switchFrom && acks[i - 1] < switchTo) {
      if (gap > freeze.ms) freeze = { ms: gap, from: acks[i - 1], to: acks[i] };
    } else if (acks[i] <= switchFrom - awayMs || acks[i - 1] >= switchTo + awayMs) otherMaxGapMs = Math.max(otherMaxGapMs, gap);
  }
  return { freeze, otherMaxGapMs };
}

/** Flip → the last acknowledgement of a write that was due before the flip and not yet acknowledged (0: none). */
export function backlogMs(writes: Write[], flipAt: number): number {
  const pending = writes.filter((w) => w.scheduledAt < flipAt && (w.ackAt === undefined || w.ackAt > flipAt));
  return Math.max(0, ...pending.map((w) => (w.ackAt ?? flipAt) - flipAt));
}

export interface WriteChecks {
  acked: number;
  unacked: number;
  lost: number;
  duplicated: number;
  phantoms: number;
  ambiguousCommits: number;
  uniqueViolations: number;
  sequenceConflicts: number;
  failedAttempts: Record<string, number>;
}

/**
 * The writes against the new database: `rowsOnNew` maps a write's ref to how many rows carry it
 * there; `maxAtSwitch` is each table's highest id when the switch began.
 */
export function checkWrites(writes: Write[], rowsOnNew: Map<string, number>, maxAtSwitch: Record<Table, bigint>): WriteChecks {
  const acked = writes.filter((w) => w.ackAt !== undefined);
  const failedAttempts: Record<string, number> = {};
  for (const w of writes) {
    for (const a of w.attempts) {
      if (a.outcome === 'ok') continue;
      const key = `${a.outcome} (${a.phase ?? '?'})`;
      failedAttempts[key] = (failedAttempts[key] ?? 0) + 1;
    }
  }
  return {
    acked: acked.length,
    unacked: writes.length - acked.length,
    lost: acked.filter((w) => !rowsOnNew.has(w.ref)).length,
    duplicated: [...rowsOnNew.values()].filter((n) => n > 1).length,
    phantoms: writes.filter((w) => w.ackAt === undefined && rowsOnNew.has(w.ref)).length,
    ambiguousCommits: writes.filter((w) => w.attempts.some((a) => a.phase === 'commit')).length,
    uniqueViolations: writes.reduce((n, w) => n + w.attempts.filter((a) => a.outcome === '23505').length, 0),
    sequenceConflicts: acked.filter((w) => w.ackSide === 'new' && BigInt(w.id!) <= maxAtSwitch[w.table]).length,
    failedAttempts,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
