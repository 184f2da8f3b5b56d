// The DNS cutover runbook's shared vocabulary (pure, no I/O): the plan the workflow acts on, what
// its DNS and replication activities take and return, and the seed 002 "Rollback Decision Tree".
import type { ApprovalPolicy, HostSpec, StorageSpec } from './types';
import type { DnsRecordType } from './commands/dns';

// ---- DNS ----

/** A zone changed by RFC 2136 dynamic updates (nsupdate + TSIG key file). */
export interface Rfc2136ZoneSpec {
  type: 'rfc2136';
  zone: string;
  /** The primary, "host:port": updates go there. */
  server: string;
  /** TSIG key file on the worker (path only; read by nsupdate). */
  keyFile: string;
  /**
   * The zone's authoritative servers to verify at, "host:port". Default: the zone's NS records
   * (asked of the primary), each NS name's address, on the primary's port.
   */
  nameServers?: string[];
}

/** A Route 53 hosted zone (AWS SDK); credentials from files on the worker, else the SDK's chain. */
export interface Route53ZoneSpec {
  type: 'route53';
  zone: string;
  hostedZoneId: string;
  region: string;
  /** Another endpoint (moto on loopback in the tests). */
  endpoint?: string;
  accessKeyIdFile?: string;
  secretAccessKeyFile?: string;
}

export type DnsZoneSpec = Rfc2136ZoneSpec | Route53ZoneSpec;

/** One RRset as it should be (or is): name absolute without the final dot, values normalized. */
export interface DnsRecordSet {
  name: string;
  type: Extract<DnsRecordType, 'A' | 'AAAA' | 'CNAME'>;
  values: string[];
  ttl: number;
}

/** What one authoritative server (or Route 53's API) answers for the records asked. */
export interface AuthoritativeAnswer {
  /** "ip:port", or "route53:<hostedZoneId>". */
  server: string;
  /** SOA serial (Route 53: the SOA record's serial too). */
  serial: number;
  /** One per record asked; `values: []` and `ttl: 0` when the server has none. */
  records: DnsRecordSet[];
}

export interface DnsSnapshot {
  zone: string;
  servers: AuthoritativeAnswer[];
}

// ---- PostgreSQL ----

/** A PostgreSQL database reached by address, for logical replication. Secrets stay files. */
export interface PgEndpoint {
  /** For people: "old" / "new" / an env name. */
  label: string;
  address: string;
  port: number;
  database: string;
  /** Connects as this role to set replication up (superuser or with REPLICATION and ownership). */
  user: string;
  passwordFile?: string;
  /** How the other database server reaches this one for a subscription (default: address/port). */
  peerAddress?: string;
  peerPort?: number;
  /** The app's role: made read-only / writable again at the switch (default: `user`). */
  appRole?: string;
}

/** Where a table stood at T0: rows with key ≤ `maxKey` existed before the switch. */
export interface TableMark {
  table: string;
  /** The single-column primary key used to tell rows before and after T0. */
  key: string;
  /** The highest key at T0 (as text), null for an empty table. */
  maxKey: string | null;
  rows: number;
}

/** A time-series table: seed 002's reconciliation by count per key per hour. */
export interface TimeSeriesTable {
  table: string;
  keyColumn: string;
  timeColumn: string;
}

export interface TableReconciliation {
  table: string;
  /** Pre-T0 rows on each side, and their content checksum. */
  rows: [number, number];
  checksums: [string, string];
  equal: boolean;
}

export interface TimeSeriesDifference {
  table: string;
  key: string;
  hour: string;
  counts: [number, number];
}

export interface ReconciliationReport {
  at: string;
  tables: TableReconciliation[];
  timeSeries: TimeSeriesDifference[];
  drift: boolean;
}

export interface RowExport {
  /** Storage key of the export's manifest (JSON: every file, its table, rows and sha256). */
  manifest: string;
  files: { table: string; file: string; rows: number; sha256: string }[];
  rows: number;
}

// ---- the plan ----

export interface CutoverSide {
  env: string;
  /** What the records hold while this side serves. */
  addresses: string[];
  /** The proxy as the worker reaches it (probes, smoke tests), e.g. http://10.0.0.5:80. */
  url: string;
  /** Where the other side's proxies send requests while they forward here (default: url). */
  forwardUrl: string;
  /** Host and proxy container of this side (forwarding to the other side goes through them). */
  proxies: { host: HostSpec; container: string }[];
  database?: PgEndpoint;
}

export interface CutoverPlan {
  app: string;
  from: CutoverSide;
  to: CutoverSide;
  zone: DnsZoneSpec;
  /** The records moved, as they are before the cutover (values: the old side's addresses). */
  records: DnsRecordSet[];
  /** Host header of smoke tests and probes (the first record's name). */
  hostHeader: string;
  healthPath: string;
  timeSeries: TimeSeriesTable[];
  approval: ApprovalPolicy;
  /** Where the rollback export and the old side's backups go (the app's backup storage). */
  storage?: StorageSpec;
  /** Whether the app has backups configured: the pre-switch backup is a child nightlyBackup. */
  backups: boolean;
  /** Drift and rollbacks are posted here (the app's backup.notify webhook). */
  notify?: { webhookUrlFile: string };
  rehearsal: boolean;
}

// ---- validation: the seed's Rollback Decision Tree ----

export interface ValidationSample {
  requests: number;
  errors: number;
  /** Median latency of the successful requests, ms. */
  p50Ms: number;
  p95Ms: number;
}

export interface ValidationRound extends ValidationSample {
  /** Writes reached the new database since T0 (the data-flow check). */
  writesFlowing: boolean;
  /** Pre-T0 rows differ between the databases (counts or checksums). */
  dataLoss: boolean;
}

export type CutoverDecision =
  | { action: 'continue'; reason: string }
  | { action: 'rollback'; reason: string }
  | { action: 'ask'; reason: string };

export const ERROR_RATE_LIMIT = 0.1;
export const LATENCY_FACTOR_LIMIT = 2;

/**
 * Seed 002 "Rollback Decision Tree": data loss → roll back at once; error rate over 10 % → roll
 * back; latency over 2× the pre-T0 baseline → ask a person; otherwise continue. A median within
 * `latencyMarginMs` of the baseline is not slower, whatever the ratio: at a few milliseconds, 2× is
 * the machine's noise, and a person asked about it learns to approve without looking. A round with no
 * successful request has no latency to compare: its error rate decides. A round where no write
 * reached the new database is reported, not rolled back: a quiet app writes nothing.
 */
export function decideValidation(round: ValidationRound, baseline: ValidationSample, latencyMarginMs = 0): CutoverDecision {
  if (round.dataLoss) return { action: 'rollback', reason: 'data loss: rows that existed before the switch differ between the old and the new database' };
  const errorRate = round.requests > 0 ? round.errors / round.requests : 0;
  if (errorRate > ERROR_RATE_LIMIT) {
    return { action: 'rollback', reason: `error rate ${percent(errorRate)} over ${percent(ERROR_RATE_LIMIT)} (${round.errors} of ${round.requests} requests failed)` };
  }
  if (round.requests > round.errors && baseline.p50Ms > 0) {
    const factor = round.p50Ms / baseline.p50Ms;
    if (factor > LATENCY_FACTOR_LIMIT && round.p50Ms - baseline.p50Ms > latencyMarginMs) {
      return { action: 'ask', reason: `median latency ${round.p50Ms.toFixed(1)} ms is ${factor.toFixed(1)}× the ${baseline.p50Ms.toFixed(1)} ms measured before the switch (limit ${LATENCY_FACTOR_LIMIT}×)` };
    }
  }
  const flow = round.writesFlowing ? 'writes reach the new database' : 'no write reached the new database in this round';
  return { action: 'continue', reason: `error rate ${percent(errorRate)}, median ${round.p50Ms.toFixed(1)} ms (baseline ${baseline.p50Ms.toFixed(1)} ms); ${flow}` };
}

function percent(x: number): string {
  return `${(x * 100).toFixed(x * 100 < 10 ? 1 : 0)} %`;
}

/** Why authoritative servers disagree (answers or serials), or [] when they all agree. */
export function snapshotDisagreements(snapshot: DnsSnapshot): string[] {
  const [first, ...rest] = snapshot.servers;
  if (!first) return [`no authoritative server answered for ${snapshot.zone}`];
  const problems: string[] = [];
  for (const other of rest) {
    if (other.serial !== first.serial) problems.push(`${other.server} serves serial ${other.serial}, ${first.server} serves ${first.serial}`);
    for (const record of other.records) {
      const mine = first.records.find((r) => r.name === record.name && r.type === record.type);
      const a = describeRecord(mine);
      const b = describeRecord(record);
      if (a !== b) problems.push(`${record.name} ${record.type}: ${first.server} answers ${a}, ${other.server} answers ${b}`);
    }
  }
  return problems;
}

/** Why a server's answers differ from the wanted records, per server ([] when every server serves them). */
export function snapshotMismatches(snapshot: DnsSnapshot, wanted: readonly DnsRecordSet[]): string[] {
  const problems: string[] = [];
  if (snapshot.servers.length === 0) problems.push(`no authoritative server answered for ${snapshot.zone}`);
  for (const server of snapshot.servers) {
    for (const want of wanted) {
      const got = server.records.find((r) => r.name === want.name && r.type === want.type);
      if (describeRecord(got) !== describeRecord(want)) problems.push(`${server.server} answers ${want.name} ${want.type} ${describeRecord(got)}, wanted ${describeRecord(want)}`);
    }
  }
  return problems;
}

export function describeRecord(r: DnsRecordSet | undefined): string {
  if (!r || r.values.length === 0) return '(none)';
  return `${[...r.values].sort().join(',')} ttl ${r.ttl}`;
}

// ---- what the status query and the result say ----

export type CutoverStage = 'plan' | 'ttl-staging' | 'replicating' | 'preflight' | 'go-no-go' | 'switching' | 'validating' | 'window' | 'decommission' | 'rolling-back' | 'done';

export interface CutoverStatus {
  stage: CutoverStage;
  /** The switch: from then on a rollback moves data back. */
  t0?: string;
  /** The earliest switch (old TTL + lead time after the TTL was lowered). */
  switchNotBefore?: string;
  windowEndsAt?: string;
  replication?: { direction: 'old→new' | 'new→old'; ready: boolean; lagBytes: number; at: string };
  baseline?: ValidationSample;
  writeFreezeMs?: number;
  /** The last validation rounds (at most 20) with the decision tree's answer. */
  rounds: (ValidationRound & { at: string; decision: CutoverDecision })[];
  /** The last reconciliations (at most 28: 6-hourly over a week). */
  reconciliations: { at: string; drift: boolean; differences: string[] }[];
  rollbackRequest?: { by: string; reason?: string; at: string };
  extensions: { by: string; extendBy: string; reason?: string; at: string; accepted: boolean; why?: string }[];
  /** How long each stage took (ms), in the order they ran. */
  stageDurations: { stage: CutoverStage; ms: number }[];
}

export interface DnsCutoverResult {
  app: string;
  from: string;
  to: string;
  outcome: 'completed' | 'rolled-back';
  t0?: string;
  records: DnsRecordSet[];
  writeFreezeMs?: number;
  /** Rolled back: who asked (or the decision tree), and where the rows written after T0 went. */
  rollback?: { reason: string; by: string; export?: RowExport; sequencesCopied: number };
  decommissioned?: boolean;
  stageDurations: { stage: CutoverStage; ms: number }[];
  /** Rehearsal: did the rollback restore the starting state (DNS as before, old database writable with every row). */
  rehearsal?: { restored: boolean; problems: string[] };
  notes: string[];
}
