// The canary bake: its pure decisions (common/bake.ts) and the bakeCanary activity on a fake probe
// (no Docker, no server): rounds, waits, verdict, heartbeats, resume from heartbeat details, cancel.
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { bakeVerdict, nextBakeStep, recordRound, resumeBake, startBake, type BakeProgress, type BakeSpec, type BakeVerdict, type ProbeRound } from '../../common/bake';
import { createHealthActivities, runBake, type BakeDeps, type BakeRequest } from '../../activities/health';

/** An activity environment that does not log the activities' failures (some tests expect them). */
const activityEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) => new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
const bakeIn = (env: MockActivityEnvironment, deps: Partial<BakeDeps>, r: BakeRequest) => env.run(createHealthActivities(undefined as never, deps).bakeCanary, r) as Promise<BakeVerdict>;

const spec: BakeSpec = { bakeMs: 10 * 60_000, intervalMs: 30_000, maxErrorRate: 0.01 };
const good: ProbeRound = { ok: 2, failed: 0, errors: [] };
const bad = (n: number): ProbeRound => ({ ok: 1, failed: 1, errors: [`http://one:8080/up: HTTP 502 #${n}`] });

/** The pure loop on a clock where probes take `probeMs`: the rounds' start times and the final progress. */
function simulate(s: BakeSpec, roundAt: (n: number) => ProbeRound, probeMs = 0, from = startBake()): { starts: number[]; progress: BakeProgress } {
  let progress = from;
  let t = progress.elapsedMs;
  const starts: number[] = [];
  for (let guard = 0; guard < 1_000_000; guard++) {
    const step = nextBakeStep(progress, t, s);
    if (step.kind === 'done') return { starts, progress };
    if (step.kind === 'wait') {
      if (!(step.ms > 0)) throw new Error(`a wait of ${step.ms} ms`);
      t += step.ms;
    } else {
      starts.push(t);
      t += probeMs;
      progress = recordRound(progress, roundAt(starts.length), t, s);
    }
  }
  throw new Error('the bake never ended');
}

describe('bake decisions (common/bake.ts)', () => {
  it('probes at once, then every interval, while the bake time has not elapsed (as the workflow loop did)', () => {
    const { starts, progress } = simulate(spec, () => good);
    expect(starts).toHaveLength(20);
    expect(starts.slice(0, 3)).toEqual([0, 30_000, 60_000]);
    expect(starts.at(-1)).toBe(570_000);
    expect(progress).toMatchObject({ rounds: 20, probes: 40, ok: 40, failed: 0, errorRate: 0 });
  });

  it('the interval runs from the end of a round, as the loop slept after each probe', () => {
    const { starts } = simulate(spec, () => good, 5000);
    expect(starts.slice(0, 3)).toEqual([0, 35_000, 70_000]);
    expect(starts).toHaveLength(18); // 17 × 35 s = 595 s < 600 s
  });

  it('a bake shorter than the interval probes once; no bake time, no probe (and passes)', () => {
    expect(simulate({ ...spec, bakeMs: 1000 }, () => good).starts).toEqual([0]);
    const none = simulate({ ...spec, bakeMs: 0 }, () => good);
    expect(none.starts).toEqual([]);
    expect(bakeVerdict(none.progress, spec)).toEqual({ passed: true, rounds: 0, probes: 0, failed: 0, errorRate: 0 });
  });

  it('never waits past the end of the bake', () => {
    const p = recordRound(startBake(), good, 590_000, spec);
    expect(nextBakeStep(p, 590_000, spec)).toEqual({ kind: 'wait', ms: 10_000 });
    expect(nextBakeStep(p, 600_000, spec)).toEqual({ kind: 'done' });
  });

  it('a 24 h bake at 1 s is 86,400 rounds', () => {
    expect(simulate({ ...spec, bakeMs: 86_400_000, intervalMs: 1000 }, () => good).starts).toHaveLength(86_400);
  });

  it('fails above maxErrorRate with the counts, the rate, the limit and the last three errors (the loop\'s message)', () => {
    const { progress } = simulate(spec, (n) => (n % 4 === 0 ? bad(n) : good));
    const verdict = bakeVerdict(progress, spec);
    expect(verdict).toMatchObject({ passed: false, rounds: 20, probes: 40, failed: 5, errorRate: 0.125 });
    expect(verdict.message).toBe(
      'canary bake failed: 5 of 40 probes failed (12.5 % > 1.0 %): http://one:8080/up: HTTP 502 #12; http://one:8080/up: HTTP 502 #16; http://one:8080/up: HTTP 502 #20',
    );
  });

  it('a rate equal to the limit passes; above it fails', () => {
    const at = { ...startBake(), ok: 99, failed: 1, lastErrors: ['x'] };
    expect(bakeVerdict(at, spec).passed).toBe(true);
    expect(bakeVerdict({ ...at, ok: 98, failed: 2 }, spec).passed).toBe(false);
  });

  it('keeps only the last three errors', () => {
    let p = startBake();
    for (let n = 1; n <= 5; n++) p = recordRound(p, { ok: 0, failed: 2, errors: [`a${n}`, `b${n}`] }, n * 1000, spec);
    expect(p.lastErrors).toEqual(['b4', 'a5', 'b5']);
  });

  it('resumes from heartbeat details; anything else starts over', () => {
    const mid = simulate({ ...spec, bakeMs: 300_000 }, (n) => (n === 3 ? bad(n) : good)).progress;
    const resumed = resumeBake(JSON.parse(JSON.stringify({ ...mid, elapsedMs: 290_000 }))); // heartbeat while waiting
    expect(resumed).toEqual({ ...mid, elapsedMs: 290_000 });
    // the rest of the 10 min bake: the same rounds as an uninterrupted one
    const rest = simulate(spec, () => good, 0, resumed);
    expect(rest.starts[0]).toBe(mid.nextProbeAtMs);
    expect(rest.progress).toMatchObject({ rounds: 20, probes: 40, failed: 1 });
    for (const junk of [undefined, null, 'x', 3, {}, { rounds: -1, ok: 0, failed: 0, elapsedMs: 0, nextProbeAtMs: 0, lastErrors: [] }, { ...mid, lastErrors: 'x' }]) {
      expect(resumeBake(junk)).toEqual(startBake());
    }
  });
});

describe('bakeCanary activity (fake probe, real timers)', () => {
  const req = { urls: ['http://one:8080/up', 'http://two:8080/up'], hostHeader: 'shop.test', bakeMs: 300, intervalMs: 20, maxErrorRate: 0.01 };
  function fakeProbe(answer: (n: number) => ProbeRound = () => good) {
    const seen: unknown[] = [];
    const probe: BakeDeps['probe'] = async (r) => {
      seen.push(r);
      return answer(seen.length);
    };
    return { probe, seen };
  }

  it('probes through every proxy each interval for the bake time, heartbeating its progress', async () => {
    const { probe, seen } = fakeProbe();
    const env = activityEnv();
    const beats: BakeProgress[] = [];
    env.on('heartbeat', (d: BakeProgress) => beats.push(d));
    const started = Date.now();
    const verdict = await bakeIn(env, { probe, heartbeatEveryMs: 5 }, req);
    expect(Date.now() - started).toBeGreaterThanOrEqual(295);
    expect(verdict.passed).toBe(true);
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(seen.length).toBeLessThanOrEqual(16); // 300 / 20 at most, fewer on a busy machine
    expect(seen[0]).toEqual({ urls: req.urls, hostHeader: 'shop.test' });
    expect(verdict).toMatchObject({ rounds: seen.length, probes: 2 * seen.length, failed: 0 });
    expect(beats.length).toBeGreaterThan(seen.length); // also while waiting
    expect(beats.at(-1)).toMatchObject({ rounds: seen.length, ok: 2 * seen.length, failed: 0, errorRate: 0 });
    expect(beats.at(-1)!.elapsedMs).toBeGreaterThanOrEqual(300);
  });

  it('a failing bake is a verdict with the message, not an error', async () => {
    const { probe } = fakeProbe((n) => bad(n));
    const verdict = await bakeIn(activityEnv(), { probe }, { ...req, bakeMs: 50 });
    expect(verdict.passed).toBe(false);
    expect(verdict.message).toMatch(/^canary bake failed: \d+ of \d+ probes failed \(50\.0 % > 1\.0 %\): .*HTTP 502/);
  });

  it('a retried attempt resumes from the last heartbeat: the counts go on, only the rest of the bake is probed', async () => {
    const { probe, seen } = fakeProbe();
    const before: BakeProgress = { rounds: 50, probes: 100, ok: 97, failed: 3, errorRate: 0.03, elapsedMs: 250, nextProbeAtMs: 260, lastErrors: ['http://two:8080/up: HTTP 503'] };
    const verdict = await bakeIn(activityEnv({ attempt: 2, heartbeatDetails: before }), { probe }, req);
    // ~50 ms of the 300 ms bake were left: a few rounds at 20 ms, not the 15 of a bake from the start
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.length).toBeLessThanOrEqual(3);
    expect(verdict).toMatchObject({ passed: false, rounds: 50 + seen.length, probes: 100 + 2 * seen.length, failed: 3 });
    expect(verdict.message).toMatch(/HTTP 503/);
  });

  it('runs on a virtual clock too (runBake with injected time): a 6 h bake at 1 s in a moment', async () => {
    let now = 0;
    const { probe, seen } = fakeProbe();
    const verdict = await runBake({ ...req, bakeMs: 21_600_000, intervalMs: 1000 }, { probe, now: () => now, sleep: async (ms) => void (now += ms), heartbeatEveryMs: 5000 });
    expect(seen).toHaveLength(21_600);
    expect(verdict).toMatchObject({ passed: true, rounds: 21_600, probes: 43_200 });
  });

  it('stops when cancelled', async () => {
    const { probe } = fakeProbe();
    const env = activityEnv();
    const running = bakeIn(env, { probe }, { ...req, bakeMs: 60_000, intervalMs: 1000 });
    setTimeout(() => env.cancel(), 50);
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
  });

  it('refuses a request that is not a bake', async () => {
    await expect(bakeIn(activityEnv(), {}, { ...req, urls: [] })).rejects.toThrow(/no URL/);
    await expect(bakeIn(activityEnv(), {}, { ...req, intervalMs: 0 })).rejects.toThrow(/not a bake/);
  });
});
