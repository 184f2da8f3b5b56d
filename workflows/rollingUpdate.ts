// Runbook 3: rolling update (seeds 000 "Watchtower"/"Rollback", 003 "update.sh", 004 "Scaling").
// Plan (the running version, read from labels, is the rollback target) → lock, and meanwhile the
// pull on every host (an unknown tag stops everything before any change) → backup first (child
// nightlyBackup, no pruning) → per batch: start the new containers beside the old, wait healthy, switch each host's
// proxy (graceful reload), drain (the proxy's previous workers finish their requests), stop and
// remove the old; the next batch boots meanwhile (`surge`) → canary after the first batch (approval
// gate or bake) → verify through every proxy. Any failure rolls every replica already switched back
// to the recorded version, on every host, the same start-before-stop way.
import { ActivityFailure, ApplicationFailure, CancellationScope, executeChild, patched, proxyActivities, sleep, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { formatDuration, parseDuration } from '../common/duration';
import { versionTag } from '../common/naming';
import { hostProxyConfig, slotKey } from '../common/plan';
import type { ContainerSpec, HostSpec, OneOffPlan, RollingUpdateInput, RollingUpdateResult, SlotPlan, UpdatePlan } from '../common/types';
import { parseInput, RollingUpdateInputSchema } from '../common/inputs';
import { rootFailure, withLock } from './lib/steps';
import { pinRequestIfPatched } from './lib/pins';
import { approvalTimeoutMs, errorMessage, Runbook } from './lib/runbook';
import { nightlyBackup } from './nightlyBackup';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });

const DEFAULTS = { drainTimeout: '30s', drainDelay: '0s', bakeInterval: '5s', maxErrorRate: 0.01 };

interface Timing {
  drainMs: number;
  drainTimeoutSeconds: number;
  surge: number;
  bakeMs?: number;
  bakeIntervalMs: number;
}

function invalid(problem: string): never {
  throw ApplicationFailure.nonRetryable(`invalid input: ${problem}`, 'InvalidInput');
}

export function validateUpdateInput(input: RollingUpdateInput): Timing {
  parseInput(RollingUpdateInputSchema, input, 'rollingUpdate');
  const canary = input.canary ?? 'none';
  const ms = (value: string, field: string) => {
    try {
      return parseDuration(value, field);
    } catch (err) {
      return invalid(errorMessage(err));
    }
  };
  return {
    drainMs: ms(input.drainDelay ?? DEFAULTS.drainDelay, 'drainDelay'),
    drainTimeoutSeconds: Math.ceil(ms(input.drainTimeout ?? DEFAULTS.drainTimeout, 'drainTimeout') / 1000),
    surge: input.surge ?? Number.MAX_SAFE_INTEGER, // default: every batch boots ahead
    bakeIntervalMs: Math.max(1000, ms(input.bakeInterval ?? DEFAULTS.bakeInterval, 'bakeInterval')),
    ...(typeof canary === 'object' ? { bakeMs: ms(canary.bake, 'canary.bake') } : {}),
  };
}

export async function rollingUpdate(input: RollingUpdateInput): Promise<RollingUpdateResult> {
  const timing = validateUpdateInput(input);
  approvalTimeoutMs(input.approvalTimeout);
  const rb = new Runbook(input.isRollback ? 'rollback' : 'rollingUpdate', { app: input.app, env: input.env });
  try {
    const plan = await rb.step('plan', () => quick.resolveUpdatePlan(input));
    const result = (live: Record<string, string>): RollingUpdateResult => ({
      app: plan.app,
      env: plan.env,
      version: plan.version,
      fromVersion: plan.fromVersion,
      unchanged: plan.unchanged,
      replicas: plan.slots.map((s) => ({ host: s.host, index: s.index, ...(s.service ? { service: s.service } : {}), container: live[slotKey(s)] })),
    });
    if (plan.unchanged) {
      rb.finish('succeeded');
      return result(Object.fromEntries(plan.slots.map((s) => [slotKey(s), s.current!.name])));
    }
    rb.setPhase('running');
    // The pull changes no replica: it runs beside the lock, and an unknown tag stops the runbook
    // before the backup and before any change.
    const pulled = pull(rb, plan);
    pulled.catch(() => undefined); // observed in update(), or moot when the lock is refused
    const live = await withLock(rb, plan, async () => {
      await pulled;
      return update(rb, plan, input, timing);
    });
    rb.finish('succeeded');
    return result(live);
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

/** The fleet as the proxies see it: which container serves each replica, kept in workflow state. */
class Fleet {
  /** By slot key (see slotKey): the main service's replica number, or `<service>/<n>`. */
  readonly live: Record<string, string> = {};
  /** Old containers draining and stopping in the background while the update goes on. */
  private retiring: Promise<unknown>[] = [];
  constructor(
    readonly rb: Runbook,
    readonly plan: UpdatePlan,
    private readonly timing: Timing,
  ) {
    for (const s of plan.slots) if (s.current) this.live[slotKey(s)] = s.current.name;
  }

  host(name: string): HostSpec {
    return this.plan.hosts.find((h) => h.name === name)!;
  }

  /**
   * Starts a batch's new containers beside the old ones and waits until they are healthy; if they
   * never are, removes them (nothing else changed) and fails. Nothing is switched yet.
   */
  async prepare(label: string, batch: SlotPlan[], specOf: (s: SlotPlan) => ContainerSpec): Promise<SlotPlan[]> {
    const todo = batch.filter((s) => this.live[slotKey(s)] !== specOf(s).name);
    if (todo.length === 0) return todo;
    await this.rb.step(`${label}: start`, () =>
      Promise.all(todo.map((s) => waiting.ensureContainer.executeWithOptions({ summary: `start ${specOf(s).name} on ${s.host}` }, [{ host: this.host(s.host), spec: specOf(s) }]))),
    );
    try {
      await this.rb.step(`${label}: health`, () =>
        Promise.all(todo.map((s) => waiting.waitHealthy({ host: this.host(s.host), container: specOf(s).name, timeoutSeconds: this.plan.healthTimeoutSeconds, pollMs: 100 }))),
      );
    } catch (err) {
      await CancellationScope.nonCancellable(() => this.removeEach(todo.map((s) => ({ host: s.host, name: specOf(s).name }))).catch(() => undefined));
      throw err;
    }
    return todo;
  }

  /**
   * Points each touched host's proxy at the prepared containers (graceful reload), then, in the
   * background: waits for the proxy's previous workers to answer their in-flight requests (the
   * drain, at most drainTimeout), the optional drainDelay, and stops (SIGTERM, grace period) and
   * removes the old containers. settled() waits for that.
   */
  async switchTo(label: string, todo: SlotPlan[], specOf: (s: SlotPlan) => ContainerSpec): Promise<void> {
    if (todo.length === 0) return;
    const plan = this.plan;
    const old = todo.flatMap((s) => (this.live[slotKey(s)] ? [{ host: s.host, name: this.live[slotKey(s)] }] : []));
    const hosts = [...new Set(todo.map((s) => s.host))];
    for (const s of todo) this.live[slotKey(s)] = specOf(s).name;
    const switched = await this.rb.step(`${label}: switch proxy`, () =>
      Promise.all(
        hosts.map(async (host) => {
          const proxy = plan.proxies.find((p) => p.host === host)!;
          const r = await quick.configureProxy({ host: this.host(host), container: proxy.container, config: hostProxyConfig(plan, host, this.live) });
          return { host, container: proxy.container, workers: r.previousWorkers ?? [] };
        }),
      ),
    );
    const retire = (async () => {
      const waits = switched.filter((p) => p.workers.length > 0);
      if (waits.length) {
        await this.rb.step(`${label}: drain`, () =>
          Promise.all(waits.map((p) => waiting.waitProxyDrained({ host: this.host(p.host), container: p.container, workers: p.workers, timeoutSeconds: this.timing.drainTimeoutSeconds }))),
        );
      }
      if (this.timing.drainMs > 0) await sleep(this.timing.drainMs);
      if (old.length) await this.rb.step(`${label}: stop old`, () => this.removeEach(old));
    })();
    retire.catch(() => undefined); // observed by settled()
    this.retiring.push(retire);
  }

  async replace(label: string, batch: SlotPlan[], specOf: (s: SlotPlan) => ContainerSpec): Promise<void> {
    await this.switchTo(label, await this.prepare(label, batch, specOf), specOf);
  }

  /** Waits until every old container retired so far is gone; the first failure among them fails this (once). */
  async settled(): Promise<void> {
    const results = await Promise.allSettled(this.retiring.splice(0));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async removeEach(containers: { host: string; name: string }[]): Promise<void> {
    const byHost = new Map<string, string[]>();
    for (const c of containers) byHost.set(c.host, [...(byHost.get(c.host) ?? []), c.name]);
    await Promise.all([...byHost].map(([host, names]) => quick.removeContainers({ host: this.host(host), names, timeoutSeconds: this.plan.stopTimeoutSeconds })));
  }

  /** Replicas whose proxy no longer points at the recorded version. */
  switched(): SlotPlan[] {
    return this.plan.slots.filter((s) => this.live[slotKey(s)] !== undefined && this.live[slotKey(s)] !== s.rollback.name && this.live[slotKey(s)] !== s.current?.name);
  }
}

/** The new image on every host in parallel; an unknown tag fails on the first host that lacks it, before anything changed. */
async function pull(rb: Runbook, plan: UpdatePlan): Promise<void> {
  try {
    const images = plan.images ?? [plan.image];
    await rb.step('pull', () => Promise.all(plan.hosts.flatMap((h) => images.map((image) => waiting.pullImage({ host: h, image })))));
  } catch (err) {
    const cause = rootFailure(err);
    throw ApplicationFailure.create({
      message: `${errorMessage(cause)}\nnothing was changed: every replica still runs ${plan.fromVersion}`,
      type: cause instanceof ApplicationFailure ? (cause.type ?? 'PullFailed') : 'PullFailed',
      nonRetryable: true,
    });
  }
}

async function update(rb: Runbook, plan: UpdatePlan, input: RollingUpdateInput, timing: Timing): Promise<Record<string, string>> {
  const fleet = new Fleet(rb, plan, timing);
  if (plan.backup) {
    const { runId } = workflowInfo();
    await rb.step('backup', () =>
      executeChild(nightlyBackup, {
        workflowId: `nightlyBackup/${plan.app}/${plan.env}/before-update-${runId}`,
        args: [{ app: plan.app, env: plan.env, skipPrune: true, ...pinRequestIfPatched('pre-update') }],
      }),
    );
  }
  // after the backup (it holds the schema before) and before any new replica starts
  if (plan.migrate && patched('update-migrations')) await migrate(rb, plan, plan.migrate);
  const batchSize = input.batchSize ?? 1;
  // a batch is batchSize units: a unit is one replica of the main service with the other services' replicas of its host and ordinal
  const units = [...new Set(plan.slots.map((s) => s.unit ?? s.index))];
  const batches: SlotPlan[][] = [];
  for (let i = 0; i < units.length; i += batchSize) {
    const chosen = new Set(units.slice(i, i + batchSize));
    batches.push(plan.slots.filter((s) => chosen.has(s.unit ?? s.index)));
  }
  const label = (i: number) => `batch ${i + 1}/${batches.length}`;
  const withCanary = batches.length > 1 && (input.canary ?? 'none') !== 'none';
  // Batches ahead of the one being switched boot and pass their health gate meanwhile (all of them
  // by default, as Kamal boots every host at once; `surge` bounds it): boots overlap each other and
  // the switches, and a version that never gets healthy is caught before most switches.
  const prepared: Promise<SlotPlan[]>[] = [];
  let failedAhead: unknown; // a batch booting ahead that failed: no further switch
  const prepare = (i: number) => {
    if (!prepared[i]) {
      prepared[i] = fleet.prepare(label(i), batches[i], (s) => s.next);
      prepared[i].catch((err) => (failedAhead ??= err));
    }
    return prepared[i];
  };
  try {
    for (const [i] of batches.entries()) {
      // with a canary, nothing beyond the first batch starts before it has been judged
      const lastAhead = i === 0 && withCanary ? 0 : Math.min(batches.length - 1, i + timing.surge);
      for (let j = i; j <= lastAhead; j++) prepare(j);
      const todo = await prepare(i);
      if (failedAhead !== undefined) throw failedAhead;
      await fleet.switchTo(label(i), todo, (s) => s.next);
      if (i === 0 && withCanary) {
        await fleet.settled(); // the canary judges the first batch alone
        await canary(rb, plan, input, timing);
      }
    }
    await fleet.settled();
    await rb.step('verify', () => verify(plan, plan.version));
  } catch (err) {
    rb.setPhase('rolling-back');
    await Promise.allSettled(prepared); // no batch still starting while the rollback looks at the fleet
    const outcome = await CancellationScope.nonCancellable(() => rollBack(rb, fleet));
    const cause = rootFailure(err);
    throw ApplicationFailure.create({
      message: `${errorMessage(cause)}\n${outcome}`,
      type: cause instanceof ApplicationFailure ? (cause.type ?? 'UpdateFailed') : 'UpdateFailed',
      nonRetryable: true,
      details: cause instanceof ApplicationFailure && cause.details?.length ? [...cause.details, { rollback: outcome }] : [{ rollback: outcome }],
    });
  }
  await removeStrays(fleet);
  return fleet.live;
}

/**
 * The new version's migration, once, while the old version serves: it must keep working on the
 * migrated schema (expand/contract, docs/migrations.md). Failed, nothing else is changed.
 */
async function migrate(rb: Runbook, plan: UpdatePlan, m: OneOffPlan): Promise<void> {
  const host = plan.hosts.find((h) => h.name === m.host)!;
  const failed = (err: unknown): never => {
    const cause = rootFailure(err);
    throw ApplicationFailure.create({
      message: `the migrations of ${plan.version} failed: ${errorMessage(cause)}\nno replica was changed: every replica still runs ${plan.fromVersion} (the migration's container ${m.container.name} is kept on ${m.host} for its logs)`,
      type: 'MigrationFailed',
      nonRetryable: true,
      ...(cause instanceof ApplicationFailure && cause.details?.length ? { details: cause.details } : {}),
    });
  };
  await rb.step('migrate', async () => {
    const ran = await waiting.runOneOff.executeWithOptions({ summary: `migrations of ${plan.version}: ${m.container.name} on ${m.host}` }, [{ host, spec: m.container, timeoutSeconds: m.timeoutSeconds }]).catch(failed);
    // its last log lines are in this run's history; the exited container would pin the image
    await quick.removeContainers({ host, names: [m.container.name], timeoutSeconds: 5 });
    return ran;
  });
}

/** After the first batch: a human approves, or the proxies are watched for the bake time. */
async function canary(rb: Runbook, plan: UpdatePlan, input: RollingUpdateInput, timing: { bakeMs?: number; bakeIntervalMs: number }): Promise<void> {
  const mode = input.canary ?? 'none';
  if (mode === 'approve') {
    const gate = await rb.gate('canary', `${plan.app} ${plan.version} (${plan.env}) runs on the first batch; approve to continue with the others, reject to roll back`, plan.approvals, input.approvalTimeout);
    if (gate.outcome !== 'approved') {
      throw ApplicationFailure.nonRetryable(
        `canary ${gate.outcome === 'rejected' ? `rejected by ${gate.by.join(', ')}` : 'approval timed out (safe default: roll back)'}`,
        gate.outcome === 'rejected' ? 'CanaryRejected' : 'CanaryTimedOut',
      );
    }
  } else if (timing.bakeMs !== undefined && patched('canary-bake-activity')) {
    // The bake runs in one heartbeating activity: the loop below (a probe activity and a timer per
    // interval) grew the history with the bake until the server terminated the run at its history
    // limit, with batch 1 switched and no rollback. Runs already baking when this worker was deployed
    // replay the loop below, so it stays as it was; once no such run remains, this becomes
    // deprecatePatch('canary-bake-activity') and the loop goes.
    const bakeMs = timing.bakeMs;
    const maxErrorRate = input.maxErrorRate ?? DEFAULTS.maxErrorRate;
    const urls = plan.proxies.map((p) => `${p.url}${plan.healthPath}`);
    const baking = proxyActivities<Activities>({
      // a round may last a probe timeout or two (a GET and its redirect) beyond the bake time
      startToCloseTimeout: bakeMs + timing.bakeIntervalMs + 5 * 60_000,
      heartbeatTimeout: '30 seconds',
      retry,
    });
    await rb.step('canary bake', async () => {
      const verdict = await baking.bakeCanary.executeWithOptions({ summary: `canary bake: ${formatDuration(bakeMs)}, every ${formatDuration(timing.bakeIntervalMs)} through ${urls.length === 1 ? '1 proxy' : `${urls.length} proxies`}, at most ${(maxErrorRate * 100).toFixed(1)} % errors` }, [
        { urls, ...(plan.smokeTest.hostHeader ? { hostHeader: plan.smokeTest.hostHeader } : {}), bakeMs, intervalMs: timing.bakeIntervalMs, maxErrorRate },
      ]);
      if (!verdict.passed) throw ApplicationFailure.nonRetryable(verdict.message ?? 'canary bake failed', 'CanaryBakeFailed');
      return { probes: verdict.probes, failed: verdict.failed };
    });
  } else if (timing.bakeMs !== undefined) {
    const bakeMs = timing.bakeMs;
    await rb.step('canary bake', async () => {
      const urls = plan.proxies.map((p) => `${p.url}${plan.healthPath}`);
      let ok = 0;
      let failed = 0;
      const errors: string[] = [];
      const until = Date.now() + bakeMs;
      while (Date.now() < until) {
        const r = await quick.probeUrls({ urls, ...(plan.smokeTest.hostHeader ? { hostHeader: plan.smokeTest.hostHeader } : {}) });
        ok += r.ok;
        failed += r.failed;
        errors.push(...r.errors);
        await sleep(timing.bakeIntervalMs);
      }
      const rate = failed / Math.max(1, ok + failed);
      const max = input.maxErrorRate ?? DEFAULTS.maxErrorRate;
      if (rate > max) {
        throw ApplicationFailure.nonRetryable(`canary bake failed: ${failed} of ${ok + failed} probes failed (${(rate * 100).toFixed(1)} % > ${(max * 100).toFixed(1)} %): ${errors.slice(-3).join('; ')}`, 'CanaryBakeFailed');
      }
      return { probes: ok + failed, failed };
    });
  }
}

/** The smoke test through every host's proxy, expecting `version`. */
async function verify(plan: UpdatePlan, version: string): Promise<void> {
  await Promise.all(
    plan.proxies.map((p) =>
      waiting.smokeTest({
        url: `${p.url}${plan.smokeTest.path}`,
        expectStatus: plan.smokeTest.expectStatus,
        ...(plan.smokeTest.expectBody !== undefined ? { expectBody: plan.smokeTest.expectBody.replace(/\{\{version\}\}/g, versionTag(version)) } : {}),
        ...(plan.smokeTest.hostHeader ? { hostHeader: plan.smokeTest.hostHeader } : {}),
      }),
    ),
  );
}

/** Every replica already switched goes back to the recorded version, start-before-stop. Returns what happened, for the error. */
async function rollBack(rb: Runbook, fleet: Fleet): Promise<string> {
  const plan = fleet.plan;
  await fleet.settled().catch(() => undefined); // an old container that would not stop is handled below as a stray
  const switched = fleet.switched();
  if (switched.length === 0) {
    await removeStrays(fleet).catch(() => undefined);
    return `rollback: nothing had been switched; every replica still runs ${plan.fromVersion}`;
  }
  try {
    await fleet.replace('rollback', switched, (s) => s.rollback);
    await fleet.settled();
    await rb.step('rollback: verify', () => verify(plan, plan.fromVersion));
    await removeStrays(fleet);
    return `rolled back ${switched.length} replica(s) on ${[...new Set(switched.map((s) => s.host))].join(', ')} to ${plan.fromVersion}; every replica runs ${plan.fromVersion} and serves`;
  } catch (err) {
    const where = plan.slots.map((s) => `${s.host}/${fleet.live[slotKey(s)] ?? 'none'}`).join(', ');
    return `ROLLBACK FAILED: ${errorMessage(err instanceof ActivityFailure ? (err.cause ?? err) : err)}; the proxies now point at: ${where}`;
  }
}

/** Web containers that serve no replica (the old ones of an interrupted run, the plan's strays) go. */
async function removeStrays(fleet: Fleet): Promise<void> {
  const plan = fleet.plan;
  const keep = new Set(Object.values(fleet.live));
  const extra = [
    ...plan.strays,
    ...plan.slots.flatMap((s) => [s.next.name, s.rollback.name, s.current?.name].filter((n): n is string => n !== undefined).map((name) => ({ host: s.host, name }))),
  ].filter((c) => !keep.has(c.name));
  const unique = [...new Map(extra.map((c) => [`${c.host}/${c.name}`, c])).values()];
  if (unique.length) await fleet.rb.step('remove leftovers', () => fleet.removeEach(unique));
}
