// The worker's Prometheus endpoint: the SDK's own metrics (Runtime.install, telemetryOptions.metrics.prometheus)
// and, on the same endpoint, gauges read from what the runbooks already keep, so that they hold after
// a worker restart: runs waiting at an approval gate (visibility), the newest verified backup of each
// app/env/database (the manifests in the backup storage) and the expiry of what each proxy serves
// (a TLS handshake). The SDK's endpoint has no scrape-time hook: these are read every
// RUNBOOK_METRICS_REFRESH (default 60s) and set on the runtime's meter. Names: common/run-metrics.ts.
import type { Client } from '@temporalio/client';
import type { Logger, MetricGauge, MetricMeter, MetricTags } from '@temporalio/common';
import ms from 'ms';
import { listBackups, type BackupEntry } from '../activities/backup';
import type { ActivityDeps } from '../activities/deps';
import { loadInventory } from '../activities/inventory';
import { inspectServedCertificate } from '../activities/tls';
import { buildCertificatePlan, certificateTargets } from '../common/certificate-plan';
import type { Inventory } from '../common/inventory';
import { buildBackupPlan } from '../common/plan';
import { CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS, GATES_WAITING, LAST_BACKUP_TIMESTAMP_SECONDS, RUN_DURATION_BUCKETS_SECONDS, RUN_DURATION_SECONDS, SOURCE_UP } from '../common/run-metrics';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV } from '../common/search-attributes';

export const DEFAULT_METRICS_REFRESH = '60s';

export interface MetricsSettings {
  /** host:port of the Prometheus endpoint (`/metrics`); undefined: no metrics. */
  bindAddress?: string;
  refreshMs: number;
}

/** RUNBOOK_METRICS_ADDRESS (e.g. 127.0.0.1:9464; unset or empty: off) and RUNBOOK_METRICS_REFRESH (an ms duration, default 60s). */
export function metricsSettings(env: NodeJS.ProcessEnv = process.env): MetricsSettings {
  const address = env.RUNBOOK_METRICS_ADDRESS?.trim();
  if (address && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(address)) {
    throw new Error(`RUNBOOK_METRICS_ADDRESS must be host:port (e.g. 127.0.0.1:9464 or 0.0.0.0:9464), got ${JSON.stringify(address)}`);
  }
  if (address && Number(address.slice(address.lastIndexOf(':') + 1)) > 65535) throw new Error(`RUNBOOK_METRICS_ADDRESS: port out of range in ${address}`);
  const refreshText = env.RUNBOOK_METRICS_REFRESH?.trim() || DEFAULT_METRICS_REFRESH;
  const refreshMs = ms(refreshText as ms.StringValue);
  if (typeof refreshMs !== 'number' || !Number.isFinite(refreshMs) || refreshMs < 1000) {
    throw new Error(`RUNBOOK_METRICS_REFRESH must be a duration of at least 1s (e.g. 30s, 2m), got ${JSON.stringify(refreshText)}`);
  }
  return { ...(address ? { bindAddress: address } : {}), refreshMs };
}

/** The SDK's Prometheus exporter options for this worker. */
export function prometheusOptions(bindAddress: string) {
  return { bindAddress, histogramBucketOverrides: { [RUN_DURATION_SECONDS]: RUN_DURATION_BUCKETS_SECONDS } };
}

export interface Series {
  labels: Record<string, string>;
  value: number;
}

/** A stable key of a label set, whatever the order of its labels. */
export function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

/** Runs waiting at a gate, by runbook/app/env; runs without the runbook's search attributes are left out. */
export function countGatesWaiting(runs: { workflowType: string; app?: string; env?: string }[]): Series[] {
  const counts = new Map<string, Series>();
  for (const r of runs) {
    if (r.app === undefined) continue;
    const labels = { runbook: r.workflowType, app: r.app, env: r.env ?? '' };
    const key = labelKey(labels);
    const s = counts.get(key) ?? { labels, value: 0 };
    s.value += 1;
    counts.set(key, s);
  }
  return [...counts.values()];
}

/** The newest backup that passed its restore drill (only a verified backup counts, as for a restore). */
export function newestVerifiedBackup(backups: readonly BackupEntry[]): BackupEntry | undefined {
  return backups.filter((b) => b.verified && Number.isFinite(Date.parse(b.createdAt))).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
}

/** Every app/env whose app has a backup section. */
export function backupTargets(inventory: Inventory): { app: string; env: string }[] {
  return Object.entries(inventory.apps).flatMap(([app, a]) => (a.backup ? Object.keys(a.environments).map((env) => ({ app, env })) : []));
}

/** One series per name the served certificate covers: when it expires there. */
export function certificateSeries(target: { app: string; env: string; host: string }, served: { names: readonly string[]; notAfter: string }): Series[] {
  const expires = Date.parse(served.notAfter) / 1000;
  if (!Number.isFinite(expires)) return [];
  return [...new Set(served.names)].map((name) => ({ labels: { app: target.app, env: target.env, host: target.host, name }, value: expires }));
}

/** The SNI a probe sends, as issueCertificate's: the first plain name, else a label under the first wildcard. */
export function probeServername(domains: readonly string[]): string {
  return domains.find((d) => !d.startsWith('*.')) ?? `tls-check.${domains[0].slice(2)}`;
}

/**
 * One gauge and the label sets it has been given. `zeroMissing`: a label set not seen in a read is
 * set to 0 (a count that went away); otherwise it keeps its last value (a timestamp stays true).
 */
export class TrackedGauge {
  private readonly seen = new Map<string, Record<string, string>>();

  constructor(
    private readonly gauge: MetricGauge,
    private readonly zeroMissing: boolean,
  ) {}

  /** Sets every series; returns the label sets zeroed. */
  update(series: readonly Series[], scope: (labels: Record<string, string>) => boolean = () => true): Record<string, string>[] {
    const now = new Set<string>();
    for (const s of series) {
      const key = labelKey(s.labels);
      now.add(key);
      this.seen.set(key, s.labels);
      this.gauge.set(s.value, s.labels as MetricTags);
    }
    const zeroed: Record<string, string>[] = [];
    if (this.zeroMissing) {
      for (const [key, labels] of this.seen) {
        if (!now.has(key) && scope(labels)) {
          this.gauge.set(0, labels as MetricTags);
          zeroed.push(labels);
        }
      }
    }
    return zeroed;
  }
}

export interface RefresherOptions {
  meter: MetricMeter;
  deps: ActivityDeps;
  client: Client;
  taskQueue: string;
  logger: Logger;
  refreshMs: number;
}

/** Reads the three sources now and every refreshMs (never two reads at once); stop() before closing deps. */
export class MetricsRefresher {
  private readonly gates: TrackedGauge;
  private readonly backups: TrackedGauge;
  private readonly certificates: TrackedGauge;
  private readonly sourceUp: MetricGauge;
  private readonly failing = new Set<string>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(private readonly o: RefresherOptions) {
    this.gates = new TrackedGauge(o.meter.createGauge(GATES_WAITING, 'int', undefined, 'Runbook runs waiting at an approval gate now'), true);
    this.backups = new TrackedGauge(o.meter.createGauge(LAST_BACKUP_TIMESTAMP_SECONDS, 'float', 's', 'When the newest verified backup was taken, seconds since the epoch'), false);
    this.certificates = new TrackedGauge(o.meter.createGauge(CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS, 'float', 's', 'When the certificate a proxy serves for the name expires, seconds since the epoch'), false);
    this.sourceUp = o.meter.createGauge(SOURCE_UP, 'int', undefined, '1 when the last read of the source succeeded, else 0');
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.refresh().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.o.refreshMs).unref();
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  async refresh(): Promise<void> {
    await this.source({ source: 'gates', app: '*', env: '*' }, () => this.readGates());
    let inventory: Inventory | undefined;
    await this.source({ source: 'inventory', app: '*', env: '*' }, async () => {
      inventory = await loadInventory(this.o.deps.inventoryPath);
    });
    if (!inventory) return;
    for (const t of backupTargets(inventory)) await this.source({ source: 'backups', ...t }, () => this.readBackups(inventory!, t));
    for (const t of certificateTargets(inventory)) await this.source({ source: 'certificates', ...t }, () => this.readCertificates(inventory!, t));
  }

  /** Runs a read; its outcome goes to SOURCE_UP, and a failure is logged when it starts (not at every refresh). */
  private async source(labels: { source: string; app: string; env: string }, read: () => Promise<void>): Promise<void> {
    const key = labelKey(labels);
    try {
      await read();
      this.sourceUp.set(1, labels);
      if (this.failing.delete(key)) this.o.logger.info('metrics: the source reads again', labels);
    } catch (err) {
      this.sourceUp.set(0, labels);
      if (!this.failing.has(key)) {
        this.failing.add(key);
        this.o.logger.warn(`metrics: cannot read the source: ${err instanceof Error ? err.message : String(err)}`, labels);
      }
    }
  }

  private async readGates(): Promise<void> {
    const query = `ExecutionStatus = "Running" AND ${SA_AWAITING_APPROVAL.name} = true AND TaskQueue = "${this.o.taskQueue.replaceAll('"', '\\"')}"`;
    const runs: { workflowType: string; app?: string; env?: string }[] = [];
    for await (const w of this.o.client.workflow.list({ query })) {
      runs.push({ workflowType: w.type, app: w.typedSearchAttributes.get(SA_APP), env: w.typedSearchAttributes.get(SA_ENV) });
    }
    this.gates.update(countGatesWaiting(runs));
  }

  private async readBackups(inventory: Inventory, target: { app: string; env: string }): Promise<void> {
    const plan = buildBackupPlan(inventory, target);
    const series: Series[] = [];
    for (const db of plan.targets) {
      const listing = await listBackups(this.o.deps, { app: target.app, env: target.env, target: db, storage: plan.storage });
      const newest = newestVerifiedBackup(listing.backups);
      if (newest) series.push({ labels: { app: target.app, env: target.env, database: db.name }, value: Date.parse(newest.createdAt) / 1000 });
    }
    this.backups.update(series);
  }

  private async readCertificates(inventory: Inventory, target: { app: string; env: string }): Promise<void> {
    const plan = buildCertificatePlan(inventory, target);
    const series: Series[] = [];
    const failed: string[] = [];
    for (const p of plan.proxies) {
      // a proxy that serves nothing (none issued yet, or down) fails the read: its expiry is unknown
      try {
        const served = await inspectServedCertificate({ address: p.httpsAddress, port: p.httpsPort, servername: probeServername(plan.domains), ...(plan.trustedRootsFile ? { caFile: plan.trustedRootsFile } : {}) });
        series.push(...certificateSeries({ ...target, host: p.host.name }, served));
      } catch (err) {
        failed.push(`${p.host.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.certificates.update(series);
    if (failed.length) throw new Error(failed.join('; '));
  }
}
