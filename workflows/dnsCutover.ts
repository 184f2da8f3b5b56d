// Runbook 4, the staged DNS cutover (seed 002 "Pattern 4", "Pattern 5", "Pitfall 3", "Pitfall 5",
// "Rollback Decision Tree", "Open Questions" 3): move an app from one environment to another and
// keep the way back open for a week.
//   plan → check the zone's authoritative servers agree → lower the TTL, verify it everywhere, wait
//   the old TTL plus the lead time → replicate the database old → new (logical replication) →
//   smoke test the new side, measure the old side's baseline, fresh backup of the old database →
//   go/no-go → switch (T0): old database read-only for the app, replication caught up, sequences
//   carried over, reverse replication new → old, new database writable, old proxies forward to the
//   new side, records flipped and verified → validation rounds judged by the decision tree → T+24h
//   TTL back → reconciliation every 6 h → at the end of the window, a gate decommissions the old side.
// An approved rollback request (signal "rollback", then the "rollback" gate) undoes it on any day of
// the window and loses no write: the reverse replication has kept the old database current, and the
// rows written on the new side after T0 are exported besides.
import { ApplicationFailure, CancellationScope, condition, executeChild, isCancellation, proxyActivities, setHandler, sleep, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  decideValidation,
  describeRecord,
  type CutoverPlan,
  type CutoverStage,
  type CutoverStatus,
  type DnsCutoverResult,
  type DnsRecordSet,
  type DnsSnapshot,
  type PgEndpoint,
  type RowExport,
  type TableMark,
  type ValidationSample,
  snapshotDisagreements,
} from '../common/cutover';
import { formatDuration, parseDuration } from '../common/duration';
import { DnsCutoverInputSchema, parseInput, type DnsCutoverInput } from '../common/inputs';
import { cutoverStatusQuery, extendWindowSignal, requestRollbackSignal } from './lib/definitions';
import { errorMessage, Runbook } from './lib/runbook';
import { allSettled, rootFailure, withLock } from './lib/steps';
import { nightlyBackup } from './nightlyBackup';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 6 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
/** Waits and measurements: they heartbeat, so a dead worker is noticed in a minute. */
const watching = proxyActivities<Activities>({ startToCloseTimeout: '4 hours', heartbeatTimeout: '1 minute', retry });

export const CUTOVER_DEFAULTS = {
  lowTtl: 60,
  ttlLeadTime: '48h',
  dnsTimeout: '15m',
  catchUpTimeout: '5m',
  validationDelay: '15m',
  validationWindow: '2h',
  validationRound: '15m',
  probeInterval: '5s',
  latencyMargin: '25ms',
  ttlRestoreAfter: '24h',
  reconcileEvery: '6h',
  window: '7d',
} as const;

/** How long the old side's baseline and the new side's smoke test are measured (at most). */
const BASELINE_MS = 60_000;
/** A drift must still be there this long after it was seen before it counts (reverse replication lag). */
const DRIFT_RECHECK_MS = 60_000;
const INITIAL_COPY_POLL_MS = 10_000;

interface Timings {
  lowTtl: number;
  ttlLeadTime: number;
  dnsTimeout: number;
  catchUpTimeout: number;
  validationDelay: number;
  validationWindow: number;
  validationRound: number;
  probeInterval: number;
  latencyMargin: number;
  ttlRestoreAfter: number;
  reconcileEvery: number;
  window: number;
}

function timings(input: DnsCutoverInput): Timings {
  const d = (field: Exclude<keyof typeof CUTOVER_DEFAULTS, 'lowTtl'>) => parseDuration(input[field] ?? CUTOVER_DEFAULTS[field], field);
  return {
    lowTtl: input.lowTtl ?? CUTOVER_DEFAULTS.lowTtl,
    ttlLeadTime: d('ttlLeadTime'),
    dnsTimeout: d('dnsTimeout'),
    catchUpTimeout: d('catchUpTimeout'),
    validationDelay: d('validationDelay'),
    validationWindow: d('validationWindow'),
    validationRound: d('validationRound'),
    probeInterval: d('probeInterval'),
    latencyMargin: d('latencyMargin'),
    ttlRestoreAfter: d('ttlRestoreAfter'),
    reconcileEvery: d('reconcileEvery'),
    window: d('window'),
  };
}

export async function dnsCutover(rawInput: DnsCutoverInput): Promise<DnsCutoverResult> {
  const input = parseInput(DnsCutoverInputSchema, rawInput, 'dnsCutover');
  const t = timings(input);
  if (t.validationDelay >= t.validationWindow) throw ApplicationFailure.nonRetryable(`invalid input: validationDelay (${formatDuration(t.validationDelay)}) must be shorter than validationWindow (${formatDuration(t.validationWindow)})`, 'InvalidInput');
  if (t.validationWindow > t.window) throw ApplicationFailure.nonRetryable(`invalid input: validationWindow (${formatDuration(t.validationWindow)}) must fit in the window (${formatDuration(t.window)})`, 'InvalidInput');
  const rb = new Runbook('dnsCutover', { app: input.app, env: input.to });
  const cutover = new Cutover(rb, input, t);
  try {
    const plan = await rb.step('plan', () => quick.resolveCutoverPlan(input));
    const result = await withLock(rb, { app: plan.app, env: plan.from.env }, () => withLock(rb, { app: plan.app, env: plan.to.env }, () => cutover.run(plan)));
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

/** What the switch has done so far: the undo reverses exactly these, whatever order they came in. */
type Done = 'replicating' | 'old-forwarding' | 'old-frozen' | 'forward-removed' | 'reverse-started' | 'new-writable' | 'dns-flipped';

class Cutover {
  private plan!: CutoverPlan;
  private original: DnsRecordSet[] = [];
  private marks: TableMark[] = [];
  private readonly done = new Set<Done>();
  private stageStarted = Date.now();
  private rollbackApproved?: { by: string; reason: string };
  /** Set when the window's opening was told: how long before its end the reminder goes out. */
  private remindBeforeWindowEnd?: number;
  private windowEnd = 0;
  private sequencesBack = 0;
  private readonly notes: string[] = [];
  private readonly state: CutoverStatus = { stage: 'plan', rounds: [], reconciliations: [], extensions: [], stageDurations: [] };

  constructor(
    private readonly rb: Runbook,
    private readonly input: DnsCutoverInput,
    private readonly t: Timings,
  ) {
    setHandler(cutoverStatusQuery, () => JSON.parse(JSON.stringify(this.state)) as CutoverStatus);
    setHandler(requestRollbackSignal, (req) => {
      if (!req || typeof req.by !== 'string' || !req.by.trim()) return;
      if (this.state.rollbackRequest || this.state.stage === 'rolling-back' || this.state.stage === 'done') return;
      this.state.rollbackRequest = { by: req.by, ...(req.reason ? { reason: String(req.reason).slice(0, 500) } : {}), at: new Date().toISOString() };
    });
    setHandler(extendWindowSignal, (req) => this.extend(req));
  }

  private get db(): { old: PgEndpoint; new: PgEndpoint } | undefined {
    const { from, to } = this.plan;
    return from.database && to.database ? { old: from.database, new: to.database } : undefined;
  }

  private get replicationNames() {
    const tag = workflowInfo().runId.replace(/-/g, '').slice(0, 12);
    return { forward: `runbook_cutover_${tag}_fwd`, reverse: `runbook_cutover_${tag}_rev` };
  }

  private stage(stage: CutoverStage): void {
    const now = Date.now();
    if (this.state.stage !== stage) this.state.stageDurations.push({ stage: this.state.stage, ms: now - this.stageStarted });
    this.stageStarted = now;
    this.state.stage = stage;
  }

  private note(message: string): void {
    this.notes.push(message);
    this.rb.note(message);
  }

  async run(plan: CutoverPlan): Promise<DnsCutoverResult> {
    this.plan = plan;
    const { t } = this;
    this.original = await this.readAgreedRecords();

    this.stage('ttl-staging');
    const lowered = this.original.map((r) => ({ ...r, ttl: Math.min(r.ttl, t.lowTtl) }));
    await this.rb.step('lower TTL', () => quick.applyDnsRecords({ zone: plan.zone, records: lowered }));
    await this.rb.step('verify low TTL', () => this.awaitRecords(lowered));
    const waitMs = Math.max(...this.original.map((r) => r.ttl)) * 1000 + t.ttlLeadTime;
    this.state.switchNotBefore = new Date(Date.now() + waitMs).toISOString();
    if ((await this.waitUnlessRollback(waitMs)) === 'rollback') return this.abort(`rollback requested before the switch by ${this.rollbackApproved!.by}`);
    await this.rb.step('verify low TTL before the switch', () => this.awaitRecords(lowered));

    const db = this.db;
    if (db) {
      this.stage('replicating');
      await this.rb.step('new database read-only for the app', () => quick.setAppWrites({ endpoint: db.new, writable: false }));
      this.done.add('replicating');
      await this.rb.step('replicate old → new', () => quick.startReplication({ from: db.old, to: db.new, name: this.replicationNames.forward, copyData: true, copySchema: true }));
      if ((await this.rb.step('initial copy', () => this.awaitInitialCopy(db))) === 'rollback') return this.abort(`rollback requested before the switch by ${this.rollbackApproved!.by}`);
    }

    this.stage('preflight');
    const probe = (url: string, durationMs: number) =>
      watching.measureEndpoint({ url, hostHeader: plan.hostHeader, path: plan.healthPath, durationMs, intervalMs: Math.min(t.probeInterval, durationMs) });
    const smoke = await this.rb.step('smoke test the new side', () => probe(plan.to.url, Math.min(BASELINE_MS, t.validationRound)));
    if (smoke.requests === 0 || smoke.errors > 0) {
      return this.abort(`the new side failed its smoke test (${smoke.errors} of ${smoke.requests} requests to ${plan.to.url}${plan.healthPath} with Host ${plan.hostHeader} failed)`, 'SmokeTestFailed');
    }
    const baseline = await this.rb.step('baseline of the old side', () => probe(plan.from.url, Math.min(BASELINE_MS, t.validationRound)));
    this.state.baseline = { requests: baseline.requests, errors: baseline.errors, p50Ms: baseline.p50Ms, p95Ms: baseline.p95Ms };
    if (plan.backups && this.input.backup !== false) {
      await this.rb.step('backup of the old database', () =>
        executeChild(nightlyBackup, {
          workflowId: `nightlyBackup/${plan.app}/${plan.from.env}/before-cutover-${workflowInfo().runId}`,
          args: [{ app: plan.app, env: plan.from.env, skipPrune: true, pin: { reason: 'safety' as const, window: formatDuration(t.ttlLeadTime + t.window) } }],
        }),
      );
    }

    if (!plan.rehearsal) {
      this.stage('go-no-go');
      const gate = await this.rb.gate(
        'go-no-go',
        `Switch ${plan.app} from ${plan.from.env} (${plan.from.addresses.join(', ')}) to ${plan.to.env} (${plan.to.addresses.join(', ')}): ` +
          `${plan.records.map((r) => `${r.name} ${r.type}`).join(', ')}. The new side passed its smoke test; ` +
          `baseline of the old side: median ${baseline.p50Ms} ms, ${baseline.errors}/${baseline.requests} errors. Not approved: the TTL goes back and replication is removed.`,
        plan.approval,
        this.input.approvalTimeout,
      );
      if (gate.outcome !== 'approved') return this.abort(`go/no-go ${gate.outcome}${gate.by.length ? ` by ${gate.by.join(', ')}` : ''}`, 'NotApproved');
    }

    this.stage('switching');
    try {
      await this.switchOver(lowered);
    } catch (err) {
      if (isCancellation(err)) throw err;
      const failure = rootFailure(err);
      return this.rollback(`the switch failed: ${errorMessage(failure)}`, 'the runbook', failure);
    }
    const t0 = Date.now();
    this.state.t0 = new Date(t0).toISOString();
    this.windowEnd = t0 + t.window;
    this.state.windowEndsAt = new Date(this.windowEnd).toISOString();

    this.stage('validating');
    const validation = await this.validate(t0, baseline);
    if (validation) return this.rollback(validation.reason, validation.by);
    if (plan.rehearsal) return this.rollback('rehearsal: rolling back by itself after validation', 'the rehearsal');

    this.stage('window');
    const told = await this.rb.tell({
      kind: 'window-open',
      description: `switched to ${plan.to.env}; a rollback that loses no write stays possible (\`runbook cutover rollback ${plan.app} --to ${plan.to.env} --by <you>\`) until the window ends, then ${plan.from.env} is decommissioned`,
      deadline: this.state.windowEndsAt!,
    });
    if (told?.webhooks) this.remindBeforeWindowEnd = told.remindBeforeMs;
    const endedBy = await this.watchWindow(t0);
    if (endedBy) return this.rollback(endedBy.reason, endedBy.by);

    this.stage('decommission');
    const decommissioned = await this.decommission();
    this.stage('done');
    return this.result('completed', { decommissioned });
  }

  /** What the records hold now, the same at every authoritative server, and pointing at the old side. */
  private async readAgreedRecords(): Promise<DnsRecordSet[]> {
    const { plan } = this;
    const snapshot = await this.rb.step('check DNS', () => quick.readAuthoritative({ zone: plan.zone, records: plan.records.map(({ name, type }) => ({ name, type })) }));
    const disagreements = snapshotDisagreements(snapshot);
    if (disagreements.length) {
      throw ApplicationFailure.nonRetryable(`the authoritative servers of ${snapshot.zone} disagree; nothing was changed: ${disagreements.join('; ')}`, 'DnsDisagreement');
    }
    const served = snapshot.servers[0].records;
    const problems: string[] = [];
    const records = plan.records.map((want) => {
      const got = served.find((r) => r.name === want.name && r.type === want.type) ?? { ...want, values: [], ttl: 0 };
      if (describeRecord({ ...got, ttl: 0 }) !== describeRecord({ ...want, ttl: 0 })) {
        const onNew = plan.to.addresses.filter((a) => (want.type === 'A') === a.includes('.'));
        const already = describeRecord({ ...got, ttl: 0 }) === describeRecord({ ...want, values: onNew, ttl: 0 });
        problems.push(`${want.name} ${want.type} holds ${got.values.join(', ') || '(nothing)'}${already ? ` — already the new side's (${plan.to.env})` : ''}; the old side ${plan.from.env} has ${want.values.join(', ') || '(none)'}`);
      }
      return { ...want, values: got.values, ttl: got.ttl || this.t.lowTtl };
    });
    if (problems.length) throw ApplicationFailure.nonRetryable(`the records do not point at the old side; nothing was changed: ${problems.join('; ')}`, 'DnsNotOldSide');
    return records;
  }

  private flipped(ttlOf: (r: DnsRecordSet) => number): DnsRecordSet[] {
    return this.original.map((r) => ({ ...r, values: this.plan.to.addresses.filter((a) => (r.type === 'A') === a.includes('.')), ttl: ttlOf(r) }));
  }

  private awaitRecords(records: DnsRecordSet[]): Promise<DnsSnapshot> {
    return watching.awaitDnsRecords({ zone: this.plan.zone, records, timeoutMs: this.t.dnsTimeout });
  }

  /** The initial copy: polled, its progress in the status; a rollback request is answered between polls. */
  private async awaitInitialCopy(db: { old: PgEndpoint; new: PgEndpoint }): Promise<'ready' | 'rollback'> {
    for (;;) {
      const s = await quick.replicationStatus({ from: db.old, to: db.new, name: this.replicationNames.forward });
      this.state.replication = { direction: 'old→new', ready: s.ready, lagBytes: s.lagBytes, at: new Date().toISOString() };
      if (s.ready) return 'ready';
      if ((await this.waitUnlessRollback(INITIAL_COPY_POLL_MS)) === 'rollback') return 'rollback';
    }
  }

  /**
   * T0. The old proxies forward to the new side first, so from then on every request reaches the
   * new app, whose writes wait (the app retries a write refused as read-only) until the new
   * database opens; then the old database freezes, catches up and hands over. No request is
   * refused, and no write lands where it would be lost. Each step is recorded in `done`, so an undo
   * reverses exactly what was done.
   */
  private async switchOver(lowered: DnsRecordSet[]): Promise<void> {
    const { plan, t } = this;
    const db = this.db;
    const frozenAt = Date.now();
    this.done.add('old-forwarding'); // before the change: a forward that fails half-way is undone too
    await this.rb.step('old proxies forward to the new side', () => this.forward(plan.from, plan.to.forwardUrl));
    if (db) {
      const names = this.replicationNames;
      this.done.add('old-frozen');
      await this.rb.step('old database read-only for the app', () => quick.setAppWrites({ endpoint: db.old, writable: false }));
      await this.rb.step('replication caught up', () => watching.awaitReplicationCaughtUp({ from: db.old, to: db.new, name: names.forward, timeoutMs: t.catchUpTimeout }));
      await this.rb.step('remove replication old → new', () => quick.removeReplication({ from: db.old, to: db.new, name: names.forward }));
      this.done.add('forward-removed');
      await this.rb.step('carry sequences over', () => quick.copySequences({ from: db.old, to: db.new }));
      this.marks = await this.rb.step('mark the tables at T0', () => quick.markTables({ endpoint: db.old }));
      await this.rb.step('replicate new → old', () => quick.startReplication({ from: db.new, to: db.old, name: names.reverse, copyData: false, copySchema: false }));
      this.done.add('reverse-started');
      this.done.add('new-writable'); // before the change: a RESET committed by an attempt that then failed is undone too
      await this.rb.step('new database writable', () => quick.setAppWrites({ endpoint: db.new, writable: true }));
      this.state.replication = { direction: 'new→old', ready: true, lagBytes: 0, at: new Date().toISOString() };
    }
    this.done.add('new-writable');
    this.state.writeFreezeMs = Date.now() - frozenAt;
    const flipped = this.flipped((r) => lowered.find((l) => l.name === r.name && l.type === r.type)!.ttl);
    this.done.add('dns-flipped'); // set before the change: a change that fails half-way is undone too
    await this.rb.step('switch the records', () => quick.applyDnsRecords({ zone: plan.zone, records: flipped }));
    await this.rb.step('verify the switch', () => this.awaitRecords(flipped));
  }

  /** Validation rounds from T0 + delay to T0 + window; the decision tree judges each. */
  private async validate(t0: number, baseline: ValidationSample): Promise<{ reason: string; by: string } | undefined> {
    const { plan, t } = this;
    if ((await this.waitUnlessRollback(t0 + t.validationDelay - Date.now())) === 'rollback') return this.approvedRollback();
    let round = 0;
    let writesBefore = 0;
    while (Date.now() < t0 + t.validationWindow) {
      round++;
      const roundEnd = Math.min(Date.now() + t.validationRound, t0 + t.validationWindow);
      const durationMs = roundEnd - Date.now();
      const sample = await this.unlessRollback(() =>
        this.rb.step(`validation round ${round}`, () => watching.measureEndpoint({ url: plan.to.url, hostHeader: plan.hostHeader, path: plan.healthPath, durationMs, intervalMs: Math.min(t.probeInterval, durationMs) })),
      );
      if (sample === 'rollback') return this.approvedRollback();
      // a round that ended early (a measurement cut short) still lasts its time: rounds are periods
      if ((await this.waitUnlessRollback(roundEnd - Date.now())) === 'rollback') return this.approvedRollback();
      const db = this.db;
      let writesFlowing = false;
      let dataLoss = false;
      if (db) {
        const after = await quick.countRowsAfter({ endpoint: db.new, marks: this.marks });
        const writes = after.reduce((n, r) => n + r.rows, 0);
        writesFlowing = writes > writesBefore;
        writesBefore = writes;
        dataLoss = (await this.reconcile(`reconcile (validation round ${round})`)).drift;
      }
      const decision = decideValidation({ ...sample, writesFlowing, dataLoss }, baseline, t.latencyMargin);
      this.state.rounds.push({ requests: sample.requests, errors: sample.errors, p50Ms: sample.p50Ms, p95Ms: sample.p95Ms, writesFlowing, dataLoss, at: new Date().toISOString(), decision });
      if (this.state.rounds.length > 20) this.state.rounds.shift();
      if (decision.action === 'rollback') return { reason: `validation round ${round}: ${decision.reason}`, by: 'the decision tree' };
      if (decision.action === 'ask') {
        const gate = await this.rb.gate(`latency-${round}`, `Validation round ${round}: ${decision.reason}. Approve to continue; reject (or no answer) rolls back.`, plan.approval, this.input.approvalTimeout);
        if (gate.outcome !== 'approved') return { reason: `validation round ${round}: ${decision.reason}; continuing was ${gate.outcome}${gate.by.length ? ` by ${gate.by.join(', ')}` : ''}`, by: gate.by.join(', ') || 'the decision tree' };
      }
    }
    return undefined;
  }

  /**
   * From validation to the end of the window: the TTL back at T0 + ttlRestoreAfter, reconciliation
   * every reconcileEvery, a rollback whenever one is approved. Returns the rollback, if any.
   */
  private async watchWindow(t0: number): Promise<{ reason: string; by: string } | undefined> {
    const { plan, t } = this;
    let ttlRestored = false;
    let nextReconcile = t0 + t.reconcileEvery;
    let remindedFor = 0;
    for (;;) {
      const ttlDue = ttlRestored ? Infinity : t0 + t.ttlRestoreAfter;
      // one reminder per window end (an extension moves it); none when nobody is told
      const remindAt = this.remindBeforeWindowEnd === undefined || remindedFor === this.windowEnd ? Infinity : this.windowEnd - this.remindBeforeWindowEnd;
      const next = Math.min(ttlDue, nextReconcile, this.windowEnd, remindAt);
      if ((await this.waitUnlessRollback(next - Date.now())) === 'rollback') return this.approvedRollback();
      const now = Date.now();
      if (!ttlRestored && now >= ttlDue) {
        const restored = this.flipped((r) => this.original.find((o) => o.name === r.name && o.type === r.type)!.ttl);
        await this.rb.step('TTL back', () => quick.applyDnsRecords({ zone: plan.zone, records: restored }));
        await this.rb.step('verify TTL back', () => this.awaitRecords(restored));
        ttlRestored = true;
      }
      if (now >= remindAt && now < this.windowEnd) {
        remindedFor = this.windowEnd;
        await this.rb.tell({
          kind: 'window-closing',
          description: `the rollback window closes; then ${plan.from.env} is decommissioned (extend it: \`runbook cutover extend ${plan.app} --to ${plan.to.env} --by <you> --extend-by 2d\`)`,
          deadline: new Date(this.windowEnd).toISOString(),
        });
      }
      if (now >= nextReconcile && nextReconcile < this.windowEnd) {
        if (this.db) await this.reconcile('reconcile');
        nextReconcile += t.reconcileEvery;
      }
      if (Date.now() >= this.windowEnd) return undefined;
    }
  }

  /** Reconciles pre-T0 rows; a drift is re-checked once (reverse replication may be a moment behind) and then alerted. */
  private async reconcile(step: string): Promise<{ drift: boolean }> {
    const db = this.db!;
    const check = () => this.rb.step(step, () => watching.reconcileTables({ a: db.old, b: db.new, marks: this.marks, timeSeries: this.plan.timeSeries }));
    let report = await check();
    if (report.drift) {
      await sleep(DRIFT_RECHECK_MS);
      report = await check();
    }
    const differences = [
      ...report.tables.filter((x) => !x.equal).map((x) => `${x.table}: ${x.rows[0]} rows (${x.checksums[0].slice(0, 8)}) on ${db.old.label}, ${x.rows[1]} (${x.checksums[1].slice(0, 8)}) on ${db.new.label}`),
      ...report.timeSeries.slice(0, 10).map((d) => `${d.table} ${d.key} ${d.hour}: ${d.counts[0]} vs ${d.counts[1]}`),
    ];
    this.state.reconciliations.push({ at: report.at, drift: report.drift, differences });
    if (this.state.reconciliations.length > 28) this.state.reconciliations.shift();
    if (report.drift) await this.alert('warning', 'cutover reconciliation found drift between the old and the new database', differences.join('\n'));
    return { drift: report.drift };
  }

  private async decommission(): Promise<boolean> {
    const { plan } = this;
    const gate = await this.rb.gate(
      'decommission',
      `The rollback window of ${plan.app} (${plan.from.env} → ${plan.to.env}) has ended. Approve to remove the reverse replication, take a final backup of ${plan.from.env}'s database and stop ${plan.from.env}'s containers. Not approved: the old side is kept as it is.`,
      plan.approval,
      this.input.approvalTimeout,
    );
    if (gate.outcome !== 'approved') {
      this.note(`decommission ${gate.outcome}: ${plan.from.env} is kept as it is (its proxy forwards to ${plan.to.env}${this.db ? '; the reverse replication keeps its database current' : ''})`);
      return false;
    }
    const db = this.db;
    if (db) await this.rb.step('remove replication new → old', () => quick.removeReplication({ from: db.new, to: db.old, name: this.replicationNames.reverse }));
    if (plan.backups && this.input.backup !== false) {
      await this.rb.step('final backup of the old database', () =>
        executeChild(nightlyBackup, { workflowId: `nightlyBackup/${plan.app}/${plan.from.env}/decommission-${workflowInfo().runId}`, args: [{ app: plan.app, env: plan.from.env, skipPrune: true, pin: { reason: 'safety' as const, window: '90d' } }] }),
      );
    }
    await this.rb.step('stop the old side', async () => {
      for (const p of plan.from.proxies) {
        const fleet = await quick.inspectFleet({ host: p.host, app: plan.app, env: plan.from.env });
        const names = [...fleet.filter((c) => c.state === 'running').map((c) => c.name), p.container];
        await quick.stopContainers({ host: p.host, names, timeoutSeconds: 30 });
      }
    });
    this.note(`${plan.from.env} is stopped (containers and volumes kept; remove them by hand when sure)`);
    return true;
  }

  /** Before T0: the TTL back, replication removed, the new database writable again; nothing else was changed. */
  private async abort(reason: string, type = 'CutoverAborted'): Promise<never> {
    this.rb.setPhase('rolling-back');
    const undone = await this.undo();
    this.stage('done');
    throw ApplicationFailure.nonRetryable(`cutover aborted before the switch: ${reason}. ${undone.join('; ')}; nothing else was changed`, type);
  }

  /** After (or during) the switch: everything back to the old side, no write lost. */
  private async rollback(reason: string, by: string, cause?: unknown): Promise<DnsCutoverResult> {
    this.stage('rolling-back');
    this.rb.setPhase('rolling-back');
    const wroteOnNew = this.done.has('new-writable');
    const undone = await this.undo();
    let rowExport: RowExport | undefined;
    const db = this.db;
    if (db && wroteOnNew && this.plan.storage) {
      const prefix = `cutover/${this.plan.app}/${this.plan.from.env}-${this.plan.to.env}/${workflowInfo().runId}/rows-after-t0`;
      rowExport = await this.rb.step('export the rows written after T0', () => watching.exportRowsAfter({ endpoint: db.new, marks: this.marks, storage: this.plan.storage!, prefix }));
    } else if (db && wroteOnNew) {
      this.note('no backup storage in the inventory: the rows written on the new side after T0 were not exported (they are in the old database through the reverse replication)');
    }
    const details = [`reason: ${reason}`, `by: ${by}`, ...undone, ...(rowExport ? [`rows written after T0: ${rowExport.rows}, exported to ${rowExport.manifest}`] : [])].join('\n');
    await this.alert(cause ? 'failure' : 'warning', `cutover of ${this.plan.app} rolled back to ${this.plan.from.env}`, details);
    const rehearsal = this.plan.rehearsal ? await this.checkRestored() : undefined;
    this.stage('done');
    if (cause && !this.plan.rehearsal) {
      throw ApplicationFailure.nonRetryable(`${reason}; rolled back to ${this.plan.from.env}: ${undone.join('; ')}`, 'CutoverRolledBack');
    }
    return this.result('rolled-back', {
      rollback: { reason, by, ...(rowExport ? { export: rowExport } : {}), sequencesCopied: this.sequencesBack },
      ...(rehearsal ? { rehearsal } : {}),
    });
  }

  /**
   * Reverses what the switch did. The old proxies serve their side again before the new ones forward
   * there (two forwarding proxies would send requests round in a loop); the old app's writes wait
   * until its database opens, after the new one froze and every write on it replicated back.
   * Idempotent steps, so a retry is safe.
   */
  private async undo(): Promise<string[]> {
    const { plan } = this;
    const db = this.db;
    const names = this.replicationNames;
    const did = (d: Done) => this.done.has(d);
    const done: string[] = [];
    const undoing = async () => {
      if (did('new-writable')) {
        // the old side's reload first: never two sides forwarding to each other
        await this.rb.step('old proxies serve again, new proxies forward to the old side', () =>
          this.repoint([
            { side: plan.from, to: undefined },
            { side: plan.to, to: plan.from.forwardUrl },
          ]),
        );
        done.push(`${plan.from.env}'s proxies serve it again`, `${plan.to.env}'s proxies forward to ${plan.from.env} (clients still holding the new address)`);
      } else if (did('old-forwarding')) {
        await this.rb.step('old proxies serve again', () => this.forward(plan.from, undefined));
        done.push(`${plan.from.env}'s proxies serve it again`);
      }
      if (db) {
        if (did('new-writable')) await this.rb.step('new database read-only for the app', () => quick.setAppWrites({ endpoint: db.new, writable: false }));
        if (did('reverse-started')) {
          await this.rb.step('reverse replication caught up', () => watching.awaitReplicationCaughtUp({ from: db.new, to: db.old, name: names.reverse, timeoutMs: this.t.catchUpTimeout }));
          await this.rb.step('remove replication new → old', () => quick.removeReplication({ from: db.new, to: db.old, name: names.reverse }));
          const seq = await this.rb.step('carry sequences back', () => quick.copySequences({ from: db.new, to: db.old }));
          this.sequencesBack = seq.sequences.length;
          done.push(`every write on ${plan.to.env} replicated back to ${plan.from.env}'s database (${seq.sequences.length} sequences carried back)`);
        } else if (did('forward-removed')) {
          await this.rb.step('carry sequences back', () => quick.copySequences({ from: db.new, to: db.old }));
        }
        if (did('replicating') && !did('forward-removed')) {
          await this.rb.step('remove replication old → new', () => quick.removeReplication({ from: db.old, to: db.new, name: names.forward }));
          done.push('replication old → new removed');
        }
        if (did('old-frozen')) {
          await this.rb.step('old database writable', () => quick.setAppWrites({ endpoint: db.old, writable: true }));
          done.push(`${plan.from.env}'s database writable again`);
        }
        if (did('replicating') && !did('new-writable')) {
          await this.rb.step('new database writable again', () => quick.setAppWrites({ endpoint: db.new, writable: true }));
        }
      }
      await this.rb.step('records back', () => quick.applyDnsRecords({ zone: plan.zone, records: this.original }));
      await this.rb.step('verify records back', () => this.awaitRecords(this.original));
      done.push(`records back to ${this.original.map((r) => `${r.name} ${r.type} ${describeRecord(r)}`).join(', ')}, verified at every authoritative server`);
      this.done.clear();
      return done;
    };
    return CancellationScope.nonCancellable(async () => {
      try {
        return await undoing();
      } catch (err) {
        const failure = rootFailure(err);
        throw ApplicationFailure.nonRetryable(
          `rolling back to ${plan.from.env} failed: ${errorMessage(failure)}. Done before it failed: ${done.join('; ') || 'nothing'}. Left as it was: the switch had done ${[...this.done].join(", ") || "nothing"} (see the steps in the status query); fix the cause and finish by hand`,
          'CutoverRollbackFailed',
        );
      }
    });
  }

  /**
   * Makes a side's proxies forward every request to `to` (or serve the side again: undefined), then
   * waits until the workers of the previous config are gone: until then they still answer the old way.
   */
  private async forward(side: CutoverPlan['from'], to: string | undefined): Promise<void> {
    await this.repoint([{ side, to }]);
  }

  /**
   * Several sides' proxies changed in this order (each side's reload before the next side's), then
   * every previous worker waited for at once: one drain, not one per side, while writes wait.
   */
  private async repoint(changes: { side: CutoverPlan['from']; to: string | undefined }[]): Promise<void> {
    const draining: { host: CutoverPlan['from']['proxies'][number]['host']; container: string; workers: number[] }[] = [];
    for (const { side, to } of changes) {
      await allSettled(
        side.proxies.map(async (p) => {
          const r = to === undefined ? await quick.unforwardProxy({ host: p.host, container: p.container }) : await quick.forwardProxy({ host: p.host, container: p.container, to, app: this.plan.app, env: side.env });
          if (r.previousWorkers?.length) draining.push({ host: p.host, container: p.container, workers: r.previousWorkers });
        }),
      );
    }
    await allSettled(draining.map((d) => quick.waitProxyDrained({ ...d, timeoutSeconds: 60 })));
  }

  /** Rehearsal: is everything as it was (DNS as before, the old database writable with every row)? */
  private async checkRestored(): Promise<{ restored: boolean; problems: string[] }> {
    const { plan } = this;
    const problems: string[] = [];
    const snapshot = await quick.readAuthoritative({ zone: plan.zone, records: plan.records.map(({ name, type }) => ({ name, type })) });
    for (const server of snapshot.servers) {
      for (const want of this.original) {
        const got = server.records.find((r) => r.name === want.name && r.type === want.type);
        if (describeRecord(got) !== describeRecord(want)) problems.push(`${server.server}: ${want.name} ${want.type} is ${describeRecord(got)}, was ${describeRecord(want)}`);
      }
    }
    const db = this.db;
    if (db && this.marks.length) {
      const report = await quick.reconcileTables({ a: db.old, b: db.new, marks: this.marks, timeSeries: plan.timeSeries });
      for (const x of report.tables.filter((x) => !x.equal)) problems.push(`${x.table}: the rows from before T0 differ between the databases`);
      const after = await quick.countRowsAfter({ endpoint: db.old, marks: this.marks });
      const onNew = await quick.countRowsAfter({ endpoint: db.new, marks: this.marks });
      for (const row of onNew) {
        const back = after.find((a) => a.table === row.table)?.rows ?? 0;
        if (back < row.rows) problems.push(`${row.table}: ${row.rows} rows written on the new side after T0, ${back} in the old database`);
      }
    }
    return { restored: problems.length === 0, problems };
  }

  private result(outcome: DnsCutoverResult['outcome'], extra: Partial<DnsCutoverResult>): DnsCutoverResult {
    return {
      app: this.plan.app,
      from: this.plan.from.env,
      to: this.plan.to.env,
      outcome,
      ...(this.state.t0 ? { t0: this.state.t0 } : {}),
      records: this.original,
      ...(this.state.writeFreezeMs !== undefined ? { writeFreezeMs: this.state.writeFreezeMs } : {}),
      stageDurations: [...this.state.stageDurations],
      notes: [...this.notes],
      ...extra,
    };
  }

  /**
   * Waits `ms`, or until a rollback request is approved (the "rollback" gate opens when one
   * arrives; a refused or expired one lets the wait go on). Returns what ended the wait.
   */
  private async waitUnlessRollback(ms: number): Promise<'elapsed' | 'rollback'> {
    const until = Date.now() + Math.max(0, ms);
    for (;;) {
      const remaining = until - Date.now();
      if (remaining <= 0) return 'elapsed';
      const asked = await condition(() => this.state.rollbackRequest !== undefined, remaining);
      if (!asked) return 'elapsed';
      if (await this.decideRollbackRequest()) return 'rollback';
    }
  }

  /** Runs `fn` unless a rollback is approved first; then `fn` is cancelled. */
  private async unlessRollback<T>(fn: () => Promise<T>): Promise<T | 'rollback'> {
    const scope = new CancellationScope();
    let finished = false;
    const work = scope.run(fn).finally(() => {
      finished = true;
    });
    work.catch(() => undefined);
    for (;;) {
      await condition(() => finished || this.state.rollbackRequest !== undefined);
      if (finished) return work;
      if (await this.decideRollbackRequest()) {
        scope.cancel();
        await work.catch(() => undefined);
        return 'rollback';
      }
    }
  }

  /** The "rollback" gate for the pending request; clears a refused request so another can be made. */
  private async decideRollbackRequest(): Promise<boolean> {
    const req = this.state.rollbackRequest!;
    const gate = await this.rb.gate(
      'rollback',
      `${req.by} asks to roll ${this.plan.app} back to ${this.plan.from.env}${req.reason ? ` (${req.reason})` : ''}. Approve to roll back now: writes stop on ${this.plan.to.env}, the reverse replication catches up, DNS goes back.`,
      this.plan.approval,
      this.input.approvalTimeout,
    );
    if (gate.outcome === 'approved') {
      this.rollbackApproved = { by: `${req.by} (approved by ${gate.by.join(', ')})`, reason: req.reason ?? 'rollback requested' };
      return true;
    }
    this.note(`rollback requested by ${req.by} was ${gate.outcome}; the cutover goes on`);
    this.state.rollbackRequest = undefined;
    return false;
  }

  private approvedRollback(): { reason: string; by: string } {
    return { reason: this.rollbackApproved!.reason, by: this.rollbackApproved!.by };
  }

  private extend(req: { by: string; extendBy: string; reason?: string }): void {
    const at = new Date().toISOString();
    const record = { by: String(req?.by ?? ''), extendBy: String(req?.extendBy ?? ''), ...(req?.reason ? { reason: String(req.reason).slice(0, 500) } : {}), at, accepted: false };
    let why: string | undefined;
    let ms = 0;
    const approvers = this.plan?.approval.approvers ?? [];
    try {
      ms = parseDuration(record.extendBy, 'extendBy');
    } catch (err) {
      why = (err as Error).message;
    }
    if (!why && !record.by.trim()) why = 'an extension needs "by"';
    else if (!why && approvers.length > 0 && !approvers.includes(record.by)) why = `"${record.by}" is not an approver (approvers: ${approvers.join(', ')})`;
    else if (!why && (this.windowEnd === 0 || this.state.stage === 'decommission' || this.state.stage === 'done' || this.state.stage === 'rolling-back')) why = 'the window is not open (it opens at the switch)';
    else if (!why && (ms <= 0 || ms > parseDuration('30d'))) why = 'extendBy must be longer than 0 and at most 30d';
    if (!why) {
      this.windowEnd += ms;
      this.state.windowEndsAt = new Date(this.windowEnd).toISOString();
    }
    this.state.extensions.push({ ...record, accepted: !why, ...(why ? { why } : {}) });
  }

  private async alert(severity: 'failure' | 'warning', title: string, details: string): Promise<void> {
    const { plan } = this;
    this.note(`${title}: ${details.split('\n')[0]}`);
    if (!plan.notify) return;
    const { workflowId, runId } = workflowInfo();
    try {
      await quick.notify({
        webhookUrlFile: plan.notify.webhookUrlFile,
        notification: { severity, runbook: 'dnsCutover', app: plan.app, env: plan.to.env, title, details: details.slice(0, 3000), workflowId, runId, at: new Date().toISOString() },
      });
    } catch (err) {
      this.rb.note(`the alert could not be sent: ${errorMessage(rootFailure(err))}`);
    }
  }
}
