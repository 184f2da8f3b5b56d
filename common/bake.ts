// A canary bake's decisions, kept pure: when to probe, when to wait, when the bake is over, and its
// verdict. The bakeCanary activity (activities/health.ts) only does the I/O around them: one probe
// round through every proxy, sleeping, heartbeating the progress, resuming from it when retried.
//
// The rules are those of the workflow loop it replaces (rollingUpdate's canary(), pre
// 'canary-bake-activity'): while the bake time has not elapsed, one round of probes, then the
// interval; after it, failed / (ok + failed) above maxErrorRate fails the bake (no probes: passes),
// and the message names the counts, the rate, the limit and the last three errors.

export interface BakeSpec {
  bakeMs: number;
  intervalMs: number;
  maxErrorRate: number;
}

/** One round: a GET through every proxy (probeUrls' answer). */
export interface ProbeRound {
  ok: number;
  failed: number;
  errors: string[];
}

/** What a bake has seen so far; also its heartbeat details, from which a retried attempt resumes. */
export interface BakeProgress {
  rounds: number;
  /** Probes (one per URL per round), as counted in the verdict. */
  probes: number;
  ok: number;
  failed: number;
  errorRate: number;
  /** Bake time observed so far (the time of the attempts, summed; not the wall clock). */
  elapsedMs: number;
  /** When (in elapsedMs) the next round is due. */
  nextProbeAtMs: number;
  /** The last three errors, for the verdict's message. */
  lastErrors: string[];
}

export type BakeStep = { kind: 'probe' } | { kind: 'wait'; ms: number } | { kind: 'done' };

export interface BakeVerdict {
  passed: boolean;
  rounds: number;
  probes: number;
  failed: number;
  errorRate: number;
  /** Why the bake failed (only when it did). */
  message?: string;
}

const KEPT_ERRORS = 3;

export function startBake(): BakeProgress {
  return { rounds: 0, probes: 0, ok: 0, failed: 0, errorRate: 0, elapsedMs: 0, nextProbeAtMs: 0, lastErrors: [] };
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * The progress a retried attempt resumes from: the last heartbeat's details when they are a bake's
 * progress, else a fresh start.
 */
export function resumeBake(details: unknown): BakeProgress {
  const d = details as Partial<BakeProgress> | undefined;
  if (!d || typeof d !== 'object') return startBake();
  const numbers = [d.rounds, d.ok, d.failed, d.elapsedMs, d.nextProbeAtMs];
  if (!numbers.every(count) || !Array.isArray(d.lastErrors)) return startBake();
  const ok = d.ok!;
  const failed = d.failed!;
  return {
    rounds: d.rounds!,
    probes: ok + failed,
    ok,
    failed,
    errorRate: rate(ok, failed),
    elapsedMs: d.elapsedMs!,
    nextProbeAtMs: d.nextProbeAtMs!,
    lastErrors: d.lastErrors.filter((e): e is string => typeof e === 'string').slice(-KEPT_ERRORS),
  };
}

function rate(ok: number, failed: number): number {
  return failed / Math.max(1, ok + failed);
}

/**
 * What to do at `elapsedMs` of bake time: probe when a round is due, wait until the next one (never
 * past the end of the bake), or stop once the bake time has elapsed.
 */
export function nextBakeStep(progress: BakeProgress, elapsedMs: number, spec: BakeSpec): BakeStep {
  if (elapsedMs >= spec.bakeMs) return { kind: 'done' };
  if (elapsedMs >= progress.nextProbeAtMs) return { kind: 'probe' };
  return { kind: 'wait', ms: Math.min(progress.nextProbeAtMs, spec.bakeMs) - elapsedMs };
}

/** Adds a round that finished at `elapsedMs`; the next one is due an interval later. */
export function recordRound(progress: BakeProgress, round: ProbeRound, elapsedMs: number, spec: BakeSpec): BakeProgress {
  const ok = progress.ok + round.ok;
  const failed = progress.failed + round.failed;
  return {
    rounds: progress.rounds + 1,
    probes: ok + failed,
    ok,
    failed,
    errorRate: rate(ok, failed),
    elapsedMs,
    nextProbeAtMs: elapsedMs + spec.intervalMs,
    lastErrors: [...progress.lastErrors, ...round.errors].slice(-KEPT_ERRORS),
  };
}

/** Pass or fail once the bake is over: the error rate against maxErrorRate. */
export function bakeVerdict(progress: BakeProgress, spec: Pick<BakeSpec, 'maxErrorRate'>): BakeVerdict {
  const { rounds, failed } = progress;
  const probes = progress.ok + failed;
  const errorRate = rate(progress.ok, failed);
  const max = spec.maxErrorRate;
  if (errorRate <= max) return { passed: true, rounds, probes, failed, errorRate };
  return {
    passed: false,
    rounds,
    probes,
    failed,
    errorRate,
    message: `canary bake failed: ${failed} of ${probes} probes failed (${(errorRate * 100).toFixed(1)} % > ${(max * 100).toFixed(1)} %): ${progress.lastErrors.join('; ')}`,
  };
}
