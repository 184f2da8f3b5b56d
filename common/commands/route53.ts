// Route 53 requests and answers, pure: the change batch that makes RRsets exactly what is wanted
// (one ChangeResourceRecordSets: Route 53 applies it all or nothing), and the reading of
// ListResourceRecordSets' RRsets into the normalized form the DNS activities compare.
//
// Route 53 names are absolute with the final dot; it returns `*` and other special characters as
// octal escapes (`\052`). A DELETE must repeat the RRset exactly as it is (values and TTL): it is
// built from the RRset the API returned, never from what we think is there.
import type { DnsRecordSet } from '../cutover';
import { DnsInputError, assertRecordType, assertTtl, distinctValues, nameInZone, normalizeDnsName, normalizeRecordValue, type DnsRecordType } from './dns';

/** An RRset as the Route 53 API takes and returns it (the fields we use). */
export interface Route53RecordSet {
  Name: string;
  Type: string;
  TTL?: number;
  ResourceRecords?: { Value: string }[];
  /** Alias, weighted, latency... records: never changed by us. */
  AliasTarget?: unknown;
  SetIdentifier?: string;
}

export interface Route53Change {
  Action: 'UPSERT' | 'DELETE';
  ResourceRecordSet: Route53RecordSet;
}

/** What we want at one name and type (values [] : no such RRset). */
export interface WantedRecordSet {
  name: string;
  type: DnsRecordType;
  values: readonly string[];
  ttl: number;
}

/** A Route 53 name (with its `\ddd` escapes) as a plain lowercase name without the final dot. */
export function decodeRoute53Name(name: string): string {
  return name.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))).toLowerCase().replace(/\.$/, '');
}

/** A TXT value as Route 53 takes it: quoted strings of at most 255 bytes, `"` and `\` escaped, other bytes octal. */
export function route53TxtValue(value: string): string {
  const bytes = Buffer.from(normalizeRecordValue('TXT', value), 'utf8');
  const chunks: string[] = [];
  for (let start = 0; start < bytes.length || chunks.length === 0; start += 255) {
    let out = '';
    for (const b of bytes.subarray(start, start + 255)) {
      if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
      else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
      else out += `\\${b.toString(8).padStart(3, '0')}`;
    }
    chunks.push(`"${out}"`);
  }
  return chunks.join(' ');
}

/** A Route 53 TXT value (`"a" "b"`, escapes) back to the text (chunks joined). */
export function parseRoute53TxtValue(value: string): string {
  const bytes: number[] = [];
  let inQuote = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"') {
      inQuote = !inQuote;
    } else if (c === '\\' && /^\d{3}$/.test(value.slice(i + 1, i + 4))) {
      bytes.push(parseInt(value.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (c === '\\' && i + 1 < value.length) {
      bytes.push(...Buffer.from(value[++i], 'utf8'));
    } else if (inQuote || c !== ' ') {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** One value as Route 53 takes it. */
export function route53Value(type: DnsRecordType, value: string): string {
  const v = normalizeRecordValue(type, value);
  if (type === 'CNAME') return `${v}.`;
  if (type === 'TXT') return route53TxtValue(v);
  return v;
}

/** One value Route 53 returned, normalized like the values we compare. */
export function valueFromRoute53(type: DnsRecordType, value: string): string {
  if (type === 'TXT') return parseRoute53TxtValue(value);
  if (type === 'CNAME') return normalizeDnsName(decodeRoute53Name(value), 'CNAME target', false);
  return normalizeRecordValue(type, value);
}

/** The plain (no alias, no routing policy) RRset of `type` at `name` among `sets`, or undefined. */
export function findRoute53RecordSet(sets: readonly Route53RecordSet[], name: string, type: DnsRecordType): Route53RecordSet | undefined {
  const n = normalizeDnsName(name);
  return sets.find((s) => decodeRoute53Name(s.Name) === n && s.Type === type && s.SetIdentifier === undefined);
}

/** The values (normalized, sorted) and TTL of the plain RRset of `type` at `name`; `[]` and 0 when none. */
export function route53RecordValues(sets: readonly Route53RecordSet[], name: string, type: DnsRecordType): { values: string[]; ttl: number } {
  const set = findRoute53RecordSet(sets, name, type);
  if (!set?.ResourceRecords?.length) return { values: [], ttl: 0 };
  return { values: [...new Set(set.ResourceRecords.map((r) => valueFromRoute53(type, r.Value)))].sort(), ttl: set.TTL ?? 0 };
}

/**
 * What `sets` hold at `name`/`type`, normalized: values sorted, the TTL; `[]` and 0 when there is
 * none. An alias or routed RRset there is an input error: this runbook changes plain records only.
 */
export function recordSetFromRoute53(sets: readonly Route53RecordSet[], name: string, type: 'A' | 'AAAA' | 'CNAME'): DnsRecordSet {
  const n = normalizeDnsName(name);
  const odd = sets.find((s) => decodeRoute53Name(s.Name) === n && s.Type === type && (s.AliasTarget !== undefined || s.SetIdentifier !== undefined));
  if (odd) throw new DnsInputError(`${type} ${n} is an alias or routing-policy record in Route 53: change it there, not with this runbook`);
  return { name: n, type, ...route53RecordValues(sets, n, type) };
}

/** The serial in the zone's SOA RRset (`mname rname serial refresh retry expire minimum`), or undefined. */
export function soaSerialFromRoute53(sets: readonly Route53RecordSet[], zone: string): number | undefined {
  const z = normalizeDnsName(zone, 'zone', false);
  const soa = sets.find((s) => decodeRoute53Name(s.Name) === z && s.Type === 'SOA');
  // matched, not split: moto (5.2.5) returns the value wrapped in a Python repr, `{'Value': '...'}`
  const m = /(?:^|[\s'"])\S+\.?\s+\S+\.?\s+(\d+)\s+\d+\s+\d+\s+\d+\s+\d+(?:$|[\s'"])/.exec(soa?.ResourceRecords?.[0]?.Value ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * The changes that make every wanted RRset exactly its values and TTL, given what the API returned
 * (`current`): UPSERT where it differs, DELETE (of the RRset exactly as returned) where the wanted
 * values are `[]` and there is one. DELETEs come first: a name's A can become a CNAME in one batch.
 * `[]` when everything already is as wanted: nothing to send.
 */
export function route53ChangeBatch(zone: string, wanted: readonly WantedRecordSet[], current: readonly Route53RecordSet[]): Route53Change[] {
  const z = normalizeDnsName(zone, 'zone', false);
  const deletes: Route53Change[] = [];
  const upserts: Route53Change[] = [];
  const seen = new Set<string>();
  for (const w of wanted) {
    const name = nameInZone(w.name, z);
    const type = assertRecordType(w.type);
    const key = `${name} ${type}`;
    if (seen.has(key)) throw new DnsInputError(`${type} ${name} is given twice`);
    seen.add(key);
    const values = distinctValues(type, w.values);
    if (type === 'CNAME' && values.length > 1) throw new DnsInputError('a name has at most one CNAME');
    const ttl = assertTtl(w.ttl);
    const existing = findRoute53RecordSet(current, name, type);
    if (existing?.AliasTarget !== undefined) throw new DnsInputError(`${type} ${name} is an alias record in Route 53: change it there, not with this runbook`);
    if (values.length === 0) {
      if (existing) deletes.push({ Action: 'DELETE', ResourceRecordSet: existing });
      continue;
    }
    if (existing) {
      const have = [...new Set((existing.ResourceRecords ?? []).map((r) => valueFromRoute53(type, r.Value)))].sort();
      if (existing.TTL === ttl && have.join('\n') === [...values].sort().join('\n')) continue;
    }
    upserts.push({ Action: 'UPSERT', ResourceRecordSet: { Name: `${name}.`, Type: type, TTL: ttl, ResourceRecords: values.map((v) => ({ Value: route53Value(type, v) })) } });
  }
  return [...deletes, ...upserts];
}

/** A hosted zone id as the API takes it ("Z123", also accepted: "/hostedzone/Z123"). Throws DnsInputError. */
export function hostedZoneId(id: unknown): string {
  if (typeof id !== 'string') throw new DnsInputError('hostedZoneId must be a string');
  const bare = id.replace(/^\/?hostedzone\//, '');
  if (!/^[A-Z0-9]{1,32}$/.test(bare)) throw new DnsInputError(`hostedZoneId ${JSON.stringify(id)} is not a Route 53 hosted zone id (like Z0123456789ABCDEFGHIJ)`);
  return bare;
}
