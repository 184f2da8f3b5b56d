// What the DNS cutover asks of a zone, whatever serves it: read every authoritative server, and
// make RRsets exact in one atomic change. Each provider (rfc2136-zone.ts, route53.ts) implements
// it; index.ts picks one by the spec's type.
import { ApplicationFailure } from '@temporalio/common';
import { DnsInputError, assertTtl, distinctValues, nameInZone, normalizeDnsName } from '../../common/commands/dns';
import type { DnsRecordSet, DnsSnapshot } from '../../common/cutover';
import type { DnsProvider } from './rfc2136';

export type CutoverRecordType = DnsRecordSet['type'];

export interface RecordQuery {
  name: string;
  type: CutoverRecordType;
}

export interface DnsZone {
  /** The zone's name, normalized. */
  readonly zone: string;
  /** The same zone as a DnsProvider (TXT for DNS-01, single-record changes, lookups). */
  readonly provider: DnsProvider;
  /** Every authoritative server's answers (values, TTL as served) and SOA serial. */
  readAuthoritative(records: readonly RecordQuery[]): Promise<DnsSnapshot>;
  /**
   * Makes every RRset exactly its values and TTL in ONE atomic change, or sends nothing when the
   * primary (or the API) already serves exactly that. `records` are validated (validateRecordSets).
   */
  apply(records: readonly DnsRecordSet[]): Promise<{ changed: boolean }>;
}

const TYPES: readonly string[] = ['A', 'AAAA', 'CNAME'];

/** Bad input as a non-retryable failure a person can act on. */
export function inputChecked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DnsInputError) throw ApplicationFailure.nonRetryable(err.message, 'DnsInvalidInput');
    throw err;
  }
}

/** The queries, normalized: names in the zone, A/AAAA/CNAME, no duplicates. */
export function validateQueries(zone: string, records: readonly RecordQuery[]): RecordQuery[] {
  return inputChecked(() => {
    if (!Array.isArray(records) || records.length === 0) throw new DnsInputError('no records given');
    const seen = new Set<string>();
    return records.map((r) => {
      const name = nameInZone(r?.name, zone);
      if (!TYPES.includes(r?.type)) throw new DnsInputError(`${name}: record type ${JSON.stringify(r?.type)} is not one of ${TYPES.join(', ')}`);
      const key = `${name} ${r.type}`;
      if (seen.has(key)) throw new DnsInputError(`${r.type} ${name} is given twice`);
      seen.add(key);
      return { name, type: r.type };
    });
  });
}

/** The RRsets, normalized as answers are (values distinct and sorted): comparable with snapshots. */
export function validateRecordSets(zone: string, records: readonly DnsRecordSet[]): DnsRecordSet[] {
  const queries = validateQueries(zone, records);
  return inputChecked(() =>
    records.map((r, i) => {
      const values = distinctValues(queries[i].type, r.values).sort();
      if (queries[i].type === 'CNAME' && values.length > 1) throw new DnsInputError(`${queries[i].name}: a name has at most one CNAME`);
      return { ...queries[i], values, ttl: assertTtl(r.ttl) };
    }),
  );
}

export function zoneName(zone: unknown): string {
  return inputChecked(() => normalizeDnsName(zone, 'zone', false));
}
