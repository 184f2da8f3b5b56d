// The DNS cutover's activities, for any zone: read every authoritative server, make RRsets exact
// in one atomic change (idempotent), and wait until every authoritative server serves them.
// A provider is one file implementing DnsZone (zone.ts) plus one line in ZONE_OPENERS.
import { ApplicationFailure } from '@temporalio/common';
import { snapshotDisagreements, snapshotMismatches, type DnsRecordSet, type DnsSnapshot, type DnsZoneSpec } from '../../common/cutover';
import { cancellationSignal, heartbeat, sleep, whileHeartbeating } from '../context';
import { Rfc2136Zone } from './rfc2136-zone';
import { Route53Zone } from './route53';
import { validateRecordSets, type DnsZone, type RecordQuery } from './zone';

export type { DnsZone, RecordQuery } from './zone';

const ZONE_OPENERS: { [K in DnsZoneSpec['type']]: (spec: Extract<DnsZoneSpec, { type: K }>) => DnsZone } = {
  rfc2136: (spec) => new Rfc2136Zone(spec),
  route53: (spec) => new Route53Zone(spec),
};

/** The zone behind `spec` (its `type` picks the provider). */
export function openZone(spec: DnsZoneSpec): DnsZone {
  const open = ZONE_OPENERS[spec?.type as DnsZoneSpec['type']] as ((s: DnsZoneSpec) => DnsZone) | undefined;
  if (!open) {
    throw ApplicationFailure.nonRetryable(`unknown DNS provider type ${JSON.stringify((spec as { type?: unknown })?.type)} (known: ${Object.keys(ZONE_OPENERS).join(', ')})`, 'DnsInvalidInput');
  }
  return open(spec);
}

export interface ReadAuthoritativeRequest {
  zone: DnsZoneSpec;
  records: RecordQuery[];
}

export interface ApplyDnsRecordsRequest {
  zone: DnsZoneSpec;
  records: DnsRecordSet[];
}

export interface AwaitDnsRecordsRequest {
  zone: DnsZoneSpec;
  records: DnsRecordSet[];
  timeoutMs: number;
  /** Pause between rounds of queries; default 2 s. */
  intervalMs?: number;
}

const MAX_WAIT_MS = 24 * 3600_000;

/** Why a snapshot is not yet what is wanted: a server answers otherwise, or serials differ. */
export function convergenceProblems(snapshot: DnsSnapshot, wanted: readonly DnsRecordSet[]): string[] {
  const mismatches = snapshotMismatches(snapshot, wanted);
  // the answers agree once they all match; what is left to disagree on is the serial
  const serials = snapshotDisagreements(snapshot).filter((p) => / serves serial /.test(p));
  return [...mismatches, ...serials];
}

export interface DnsActivityDeps {
  /** The zone behind a spec (tests give a fake). */
  openZone?: (spec: DnsZoneSpec) => DnsZone;
}

export function createDnsActivities(deps: DnsActivityDeps = {}) {
  const open = deps.openZone ?? openZone;
  return {
    /** Each authoritative server's values, TTLs (as served) and SOA serial; a server that does not answer: retryable, named. */
    async readAuthoritative(req: ReadAuthoritativeRequest): Promise<DnsSnapshot> {
      // heartbeats: servers that time out make a read take seconds each
      return whileHeartbeating(() => open(req.zone).readAuthoritative(req.records));
    },

    /** Every record exactly its values+TTL in one atomic change; nothing sent when the primary already serves that. */
    async applyDnsRecords(req: ApplyDnsRecordsRequest): Promise<{ changed: boolean }> {
      return whileHeartbeating(() => open(req.zone).apply(req.records));
    },

    /**
     * Polls until every authoritative server serves exactly `records` and all serve one SOA serial.
     * After `timeoutMs`: a retryable 'DnsNotConverged' naming each lagging server and what it serves.
     */
    async awaitDnsRecords(req: AwaitDnsRecordsRequest): Promise<DnsSnapshot> {
      const zone = open(req.zone);
      const wanted = validateRecordSets(zone.zone, req.records);
      const timeoutMs = req.timeoutMs;
      const intervalMs = req.intervalMs ?? 2000;
      if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_WAIT_MS) throw ApplicationFailure.nonRetryable(`timeoutMs must be 0 to ${MAX_WAIT_MS} ms (got ${JSON.stringify(timeoutMs)})`, 'DnsInvalidInput');
      if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 600_000) throw ApplicationFailure.nonRetryable(`intervalMs must be 100 to 600000 ms (got ${JSON.stringify(intervalMs)})`, 'DnsInvalidInput');
      const queries = wanted.map(({ name, type }) => ({ name, type }));
      const started = Date.now();
      // between rounds and during a slow one (servers timing out): the last round's problems
      let progress: unknown = { rounds: 0 };
      const timer = setInterval(() => heartbeat(progress), 2000);
      try {
        for (let rounds = 1; ; rounds++) {
          let problems: string[];
          let snapshot: DnsSnapshot | undefined;
          try {
            snapshot = await zone.readAuthoritative(queries);
            problems = convergenceProblems(snapshot, wanted);
          } catch (err) {
            // a server that does not answer (yet) is lagging too; one that refuses is not going to change
            if (!(err instanceof ApplicationFailure) || err.nonRetryable) throw err;
            problems = [err.message];
          }
          if (problems.length === 0 && snapshot) return snapshot;
          progress = { rounds, problems };
          heartbeat(progress);
          if (cancellationSignal()?.aborted) throw ApplicationFailure.nonRetryable(`waiting for DNS in ${zone.zone} was cancelled`, 'Cancelled');
          const elapsed = Date.now() - started;
          if (elapsed >= timeoutMs) {
            throw ApplicationFailure.create({
              message: `DNS of ${zone.zone} has not converged after ${Math.round(elapsed / 1000)}s (${rounds} rounds): ${problems.join('; ')}`,
              type: 'DnsNotConverged',
              nonRetryable: false,
              details: [{ problems, snapshot }],
            });
          }
          await sleep(Math.min(intervalMs, Math.max(0, timeoutMs - elapsed)));
        }
      } finally {
        clearInterval(timer);
      }
    },
  };
}

export type DnsActivities = ReturnType<typeof createDnsActivities>;
