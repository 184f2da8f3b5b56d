// DNS changes as RFC 2136 dynamic updates: the `nsupdate` script (one update message, applied by
// the server all or nothing), its argv, the validation that keeps names and values from injecting
// nsupdate commands, and the reading of nsupdate's output. Pure: no I/O here.
//
// Names are plain ASCII DNS names (punycode for IDNs), case-insensitive, written without the final
// dot here ("_acme-challenge.app.runbooks.test") and absolute in scripts. A `*` label is allowed
// only leftmost (a wildcard record). TXT values are text: any character but control characters
// (newline, CR, NUL, tab, DEL, ...); quotes and backslashes are escaped, non-ASCII is sent as UTF-8
// bytes (\DDD), and values longer than 255 bytes are split into several character-strings of one
// record (resolvers join them back).

export const DNS_RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'TXT'] as const;
export type DnsRecordType = (typeof DNS_RECORD_TYPES)[number];

/** A name or value that would not make a valid (or safe) nsupdate script. Not worth retrying. */
export class DnsInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsInputError';
  }
}

const MAX_NAME_LENGTH = 253;
const LABEL = /^[a-z0-9_-]{1,63}$/;
// C0 controls (newline, CR, tab, NUL, ...), DEL and the C1 controls
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
export const MAX_TTL = 2_147_483_647; // RFC 2181 §8
export const MAX_TXT_VALUE_BYTES = 4000;

/**
 * `name` lowercased, without its final dot; throws DnsInputError when it is not a DNS name.
 * `wildcard`: whether a leftmost `*` label is allowed.
 */
export function normalizeDnsName(name: unknown, what = 'DNS name', wildcard = true): string {
  if (typeof name !== 'string' || name === '') throw new DnsInputError(`${what} must be a non-empty string`);
  const shown = JSON.stringify(name);
  if (CONTROL.test(name) || /\s/.test(name)) throw new DnsInputError(`${what} ${shown} contains whitespace or control characters`);
  let n = name.toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n === '' || n.length > MAX_NAME_LENGTH) throw new DnsInputError(`${what} ${shown} is empty or longer than ${MAX_NAME_LENGTH} characters`);
  const labels = n.split('.');
  labels.forEach((label, i) => {
    if (label === '*') {
      if (!wildcard) throw new DnsInputError(`${what} ${shown} may not be a wildcard`);
      if (i !== 0) throw new DnsInputError(`${what} ${shown}: "*" is only allowed as the leftmost label`);
      if (labels.length < 2) throw new DnsInputError(`${what} ${shown}: a wildcard needs a parent name`);
      return;
    }
    if (label === '') throw new DnsInputError(`${what} ${shown} has an empty label`);
    if (!LABEL.test(label)) {
      throw new DnsInputError(`${what} ${shown}: label ${JSON.stringify(label)} must be 1-63 of a-z, 0-9, "-", "_" (use punycode for other characters)`);
    }
  });
  return n;
}

/** `name` (normalized) when it is `zone` or below it; throws DnsInputError otherwise. */
export function nameInZone(name: string, zone: string): string {
  const n = normalizeDnsName(name);
  const z = normalizeDnsName(zone, 'zone', false);
  if (n !== z && !n.endsWith(`.${z}`)) throw new DnsInputError(`${n} is not in the zone ${z}`);
  return n;
}

export function assertRecordType(type: unknown): DnsRecordType {
  if (typeof type === 'string' && (DNS_RECORD_TYPES as readonly string[]).includes(type.toUpperCase())) return type.toUpperCase() as DnsRecordType;
  throw new DnsInputError(`record type ${JSON.stringify(type)} is not one of ${DNS_RECORD_TYPES.join(', ')}`);
}

export function assertTtl(ttl: unknown): number {
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL) throw new DnsInputError(`TTL must be an integer from 0 to ${MAX_TTL} seconds (got ${JSON.stringify(ttl)})`);
  return ttl;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The canonical text of an IPv6 address (RFC 5952, as resolvers print it), or undefined. */
export function canonicalIpv6(address: string): string | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(address) || !address.includes(':')) return undefined;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/**
 * The value of one record of `type` in the form compared with what resolvers answer: A/AAAA
 * canonical addresses, CNAME a normalized name, TXT the text itself. Throws DnsInputError.
 */
export function normalizeRecordValue(type: DnsRecordType, value: unknown): string {
  if (typeof value !== 'string') throw new DnsInputError(`${type} value must be a string (got ${typeof value})`);
  const shown = JSON.stringify(value);
  switch (type) {
    case 'A':
      if (!IPV4.test(value)) throw new DnsInputError(`A value ${shown} is not an IPv4 address`);
      return value;
    case 'AAAA': {
      const v6 = canonicalIpv6(value);
      if (v6 === undefined) throw new DnsInputError(`AAAA value ${shown} is not an IPv6 address`);
      return v6;
    }
    case 'CNAME':
      return normalizeDnsName(value, 'CNAME target', false);
    case 'TXT':
      if (CONTROL.test(value)) throw new DnsInputError(`TXT value ${shown} contains control characters (newline, CR, tab, NUL, ...)`);
      if (Buffer.byteLength(value) > MAX_TXT_VALUE_BYTES) throw new DnsInputError(`TXT value is longer than ${MAX_TXT_VALUE_BYTES} bytes`);
      return value;
  }
}

/**
 * A TXT value as nsupdate's rdata: quoted character-strings of at most 255 bytes each, `"` and `\`
 * escaped, bytes outside printable ASCII as \DDD. Throws DnsInputError on control characters.
 */
export function quoteTxtValue(value: string): string {
  normalizeRecordValue('TXT', value);
  const bytes = Buffer.from(value, 'utf8');
  const chunks: string[] = [];
  for (let start = 0; start < bytes.length || chunks.length === 0; start += 255) {
    let out = '';
    for (const b of bytes.subarray(start, start + 255)) {
      if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
      else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
      else out += `\\${String(b).padStart(3, '0')}`;
    }
    chunks.push(`"${out}"`);
  }
  return chunks.join(' ');
}

/** One record's rdata as it goes into an nsupdate `update` line. */
export function rdataText(type: DnsRecordType, value: string): string {
  const v = normalizeRecordValue(type, value);
  if (type === 'TXT') return quoteTxtValue(v);
  if (type === 'CNAME') return `${v}.`;
  return v;
}

export interface DnsServerAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:5353", "[::1]:53", "ns1.example.com" (port 53) → host and port. Throws DnsInputError. */
export function parseDnsServer(address: unknown): DnsServerAddress {
  if (typeof address !== 'string' || address === '') throw new DnsInputError('DNS server address must be a non-empty string');
  const shown = JSON.stringify(address);
  let host = address;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (bracketed) {
    host = bracketed[1];
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if ((address.match(/:/g) ?? []).length === 1) {
    const i = address.lastIndexOf(':');
    host = address.slice(0, i);
    port = /^\d+$/.test(address.slice(i + 1)) ? Number(address.slice(i + 1)) : NaN;
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DnsInputError(`DNS server ${shown}: bad port`);
  if (IPV4.test(host)) return { host, port };
  const v6 = canonicalIpv6(host);
  if (v6 !== undefined) return { host: v6, port };
  return { host: normalizeDnsName(host, `DNS server ${shown}`, false), port };
}

/** The server as node:dns `Resolver.setServers` takes it ("1.2.3.4:53", "[::1]:53"); IPs only. */
export function resolverServerString(server: DnsServerAddress): string {
  return server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

export type DnsChange =
  /** Adds one record; adding a record that exists already changes nothing (RFC 2136 §3.4.2.2). */
  | { op: 'add'; name: string; type: DnsRecordType; value: string; ttl: number }
  /** Deletes one record (`value`) or the whole RRset of `type` at `name`; absent ones are fine. */
  | { op: 'delete'; name: string; type: DnsRecordType; value?: string };

export interface NsupdateScriptInput {
  /** Where to send the update (the zone's primary), e.g. "127.0.0.1:5353". */
  server: string;
  zone: string;
  changes: readonly DnsChange[];
}

/**
 * The nsupdate script that applies every change in one update message (all or nothing) and sends
 * it. Every name must be in `zone`. Throws DnsInputError on anything that does not validate.
 */
export function nsupdateScript(input: NsupdateScriptInput): string {
  const server = parseDnsServer(input.server);
  const zone = normalizeDnsName(input.zone, 'zone', false);
  if (!Array.isArray(input.changes) || input.changes.length === 0) throw new DnsInputError('an update needs at least one change');
  const lines = [`server ${server.host} ${server.port}`, `zone ${zone}.`];
  for (const c of input.changes) {
    const name = nameInZone(c.name, zone);
    const type = assertRecordType(c.type);
    if (c.op === 'add') {
      lines.push(`update add ${name}. ${assertTtl(c.ttl)} IN ${type} ${rdataText(type, c.value)}`);
    } else if (c.op === 'delete') {
      lines.push(c.value === undefined ? `update delete ${name}. IN ${type}` : `update delete ${name}. IN ${type} ${rdataText(type, c.value)}`);
    } else {
      throw new DnsInputError(`unknown change ${JSON.stringify((c as { op?: unknown }).op)}`);
    }
  }
  lines.push('send', '');
  return lines.join('\n');
}

/** Distinct values in first-seen order, normalized for `type`. */
export function distinctValues(type: DnsRecordType, values: readonly string[]): string[] {
  if (!Array.isArray(values)) throw new DnsInputError(`${type} values must be an array`);
  return [...new Set(values.map((v) => normalizeRecordValue(type, v)))];
}

/**
 * Makes `values` the whole RRset of `type` at `name`: delete the RRset, add each value, in one
 * message. Setting the same values twice leaves the same records. An empty list removes the RRset.
 */
export function replaceRecordSetChanges(name: string, type: DnsRecordType, values: readonly string[], ttl: number): DnsChange[] {
  const t = assertRecordType(type);
  const distinct = distinctValues(t, values);
  if (t === 'CNAME' && distinct.length > 1) throw new DnsInputError('a name has at most one CNAME');
  return [{ op: 'delete', name, type: t }, ...distinct.map((value): DnsChange => ({ op: 'add', name, type: t, value, ttl }))];
}

/** Removes one record (`value`) or every record of `type` at `name`. */
export function removeRecordChanges(name: string, type: DnsRecordType, value?: string): DnsChange[] {
  const t = assertRecordType(type);
  return [value === undefined ? { op: 'delete', name, type: t } : { op: 'delete', name, type: t, value: normalizeRecordValue(t, value) }];
}

export interface NsupdateArgvOptions {
  /** Seconds nsupdate waits for the server (its -t); default 10. */
  timeoutSeconds?: number;
}

/**
 * `nsupdate` signing with the TSIG key in `keyFile` (a path: the key itself never is an argument),
 * over TCP (-v: one exchange, no UDP retries), the script on stdin.
 */
export function nsupdateArgv(keyFile: string, opts: NsupdateArgvOptions = {}): string[] {
  if (typeof keyFile !== 'string' || !keyFile.startsWith('/') || CONTROL.test(keyFile)) {
    throw new DnsInputError('the TSIG key file must be an absolute path without control characters');
  }
  const timeout = opts.timeoutSeconds ?? 10;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 300) throw new DnsInputError('nsupdate timeout must be 1-300 seconds');
  return ['nsupdate', '-v', '-t', String(timeout), '-k', keyFile];
}

export type NsupdateFailureKind =
  /** The server refused the update (bad/unknown key, signature, time; not authoritative; refused). Not retryable. */
  | 'refused'
  /** nsupdate could not read or parse the key file. Not retryable. Its output may quote the file: not shown. */
  | 'badKey'
  /** The server could not be reached or did not answer. Retryable. */
  | 'unreachable'
  /** The server failed (SERVFAIL) or something unrecognized happened. Retryable. */
  | 'failed';

export interface NsupdateFailure {
  kind: NsupdateFailureKind;
  /** The response code when the server answered, e.g. "NOTAUTH(BADSIG)", "REFUSED". */
  rcode?: string;
}

const REFUSING_RCODES = ['NOTAUTH', 'REFUSED', 'NOTZONE', 'FORMERR', 'NOTIMP', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NXDOMAIN', 'BADKEY', 'BADSIG', 'BADTIME'];

/** What went wrong, from a failed nsupdate's output (exit code not 0, or error lines). */
export function classifyNsupdateFailure(output: string): NsupdateFailure {
  if (/could not read key/i.test(output)) return { kind: 'badKey' };
  const rcode = /update failed: ([A-Z]+(?:\([A-Z]+\))?)/.exec(output)?.[1];
  if (rcode) {
    const base = rcode.replace(/\(.*$/, '');
    return { kind: REFUSING_RCODES.includes(base) ? 'refused' : 'failed', rcode };
  }
  if (/TSIG error|tsig verify failure|BADKEY|BADSIG|BADTIME/.test(output)) return { kind: 'refused', rcode: /\b(BADKEY|BADSIG|BADTIME)\b/.exec(output)?.[1] };
  if (/communication with .* failed|couldn't get address|could not talk|timed out|connection refused|no servers could be reached|operation canceled|network unreachable/i.test(output)) {
    return { kind: 'unreachable' };
  }
  return { kind: 'failed' };
}

/**
 * `text` with every secret of a TSIG key file (the `secret "..."` values, in whatever form they
 * appear) replaced by [redacted], so that nsupdate's output can go into an error message.
 */
export function redactTsigSecrets(text: string, keyFileText: string | undefined): string {
  const secrets = new Set<string>();
  if (keyFileText) {
    for (const m of keyFileText.matchAll(/secret\s+"?([^";\s]+)"?/g)) secrets.add(m[1]);
    // any long token of the file (a malformed file may have its secret anywhere)
    for (const m of keyFileText.matchAll(/[A-Za-z0-9+/=_-]{16,}/g)) secrets.add(m[0]);
  }
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('[redacted]');
  // a `secret "..."` nsupdate might echo from somewhere else
  return out.replace(/(secret\s+)"?[^";\s]+"?/gi, '$1[redacted]');
}

/**
 * node:dns TXT answers (each record a list of character-strings) as one string per record. Node
 * hands each byte over as one character (latin1): the joined bytes are decoded as UTF-8 here, so a
 * value written as UTF-8 reads back the same, even when split across strings.
 */
export function joinTxtAnswers(records: readonly (readonly string[])[]): string[] {
  return records.map((chunks) => Buffer.from(chunks.join(''), 'latin1').toString('utf8'));
}

export type RecordMatch =
  /** every expected value is there (others may be too) */
  | 'includes'
  /** exactly the expected values (an empty list: no record of that type) */
  | 'exact';

/** Whether an answer (`actual`) shows `expected` for `type`, under `match`. */
export function recordsMatch(type: DnsRecordType, actual: readonly string[], expected: readonly string[], match: RecordMatch): boolean {
  const norm = (v: string) => (type === 'TXT' ? v : type === 'AAAA' ? (canonicalIpv6(v) ?? v) : v.toLowerCase().replace(/\.$/, ''));
  const have = new Set(actual.map(norm));
  const want = new Set(expected.map(norm));
  if (![...want].every((v) => have.has(v))) return false;
  return match === 'includes' || have.size === want.size;
}

// ---- reading authoritative servers with dig ----

/** What `dig` may ask: the cutover's record types, and the zone's SOA and NS. */
export type DigQueryType = 'A' | 'AAAA' | 'CNAME' | 'TXT' | 'SOA' | 'NS';

/**
 * `dig` asking `server` directly, without recursion (+norecurse: an authoritative server answers
 * from its zone, with the TTL as served, not a cache's countdown), once (+tries=1, +time: a server
 * that does not answer is reported, not retried here), printing only the header and the answer.
 */
export function digArgv(server: string, name: string, type: DigQueryType, timeoutSeconds = 2): string[] {
  const s = parseDnsServer(server);
  const n = normalizeDnsName(name);
  if (!['A', 'AAAA', 'CNAME', 'TXT', 'SOA', 'NS'].includes(type)) throw new DnsInputError(`dig: record type ${JSON.stringify(type)} is not supported`);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 30) throw new DnsInputError('dig timeout must be 1-30 seconds');
  return ['dig', `@${s.host}`, '-p', String(s.port), '+norecurse', `+time=${timeoutSeconds}`, '+tries=1', '+noall', '+comments', '+answer', `${n}.`, type];
}

export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  /** The record's data as dig prints it (names with their final dot). */
  data: string;
}

export interface DigAnswer {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... */
  status: string;
  /** The AA flag: the server answered from a zone it is authoritative for. */
  authoritative: boolean;
  records: DigRecord[];
}

/** dig's output (digArgv's options) → status, AA flag and answer records; undefined when no server answered. */
export function parseDigOutput(output: string): DigAnswer | undefined {
  const header = /->>HEADER<<-.*status: ([A-Z]+)/.exec(output);
  if (!header) return undefined;
  const flags = /;; flags:([^;]*);/.exec(output)?.[1] ?? '';
  const records: DigRecord[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith(';') || line.trim() === '') continue;
    const m = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    records.push({ name: m[1].toLowerCase().replace(/\.$/, ''), ttl: Number(m[2]), type: m[3].toUpperCase(), data: m[4].trim() });
  }
  return { status: header[1], authoritative: flags.trim().split(/\s+/).includes('aa'), records };
}

/** Why dig got no answer (its output, exit code): for an error message. */
export function digFailureText(output: string, code: number | null): string {
  const line = output.split('\n').map((l) => l.replace(/^;;\s*/, '').trim()).find((l) => /timed out|refused|unreachable|no servers|error|couldn't/i.test(l));
  return line ?? `dig exited with code ${code}`;
}

/**
 * One RRset of `type` at `name` from an answer: values normalized (CNAME targets without the final
 * dot, AAAA canonical), sorted; the TTL as served (the lowest, should the records differ); `[]` and
 * TTL 0 when the server has none (NXDOMAIN, no such type, or a CNAME where an address was asked).
 */
export function rrsetFromAnswer(answer: DigAnswer, name: string, type: 'A' | 'AAAA' | 'CNAME'): { values: string[]; ttl: number } {
  const n = normalizeDnsName(name);
  const mine = answer.records.filter((r) => r.name === n && r.type === type);
  if (mine.length === 0) return { values: [], ttl: 0 };
  const values = [...new Set(mine.map((r) => normalizeRecordValue(type, type === 'CNAME' ? r.data.replace(/\.$/, '') : r.data)))].sort();
  return { values, ttl: Math.min(...mine.map((r) => r.ttl)) };
}

/** The serial of the zone's SOA in an answer, or undefined. */
export function soaSerialFromAnswer(answer: DigAnswer, zone: string): number | undefined {
  const z = normalizeDnsName(zone, 'zone', false);
  const soa = answer.records.find((r) => r.name === z && r.type === 'SOA');
  const serial = soa?.data.split(/\s+/)[2];
  return serial !== undefined && /^\d+$/.test(serial) ? Number(serial) : undefined;
}

/** The zone's NS names in an answer (normalized, sorted, distinct). */
export function nsNamesFromAnswer(answer: DigAnswer, zone: string): string[] {
  const z = normalizeDnsName(zone, 'zone', false);
  return [...new Set(answer.records.filter((r) => r.name === z && r.type === 'NS').map((r) => normalizeDnsName(r.data, 'NS name', false)))].sort();
}

/**
 * The authoritative servers "ip:port" from the zone's NS names and their addresses (IPv4 and IPv6,
 * all of them), on `port` (the primary's: a test zone's servers all listen on one port). Sorted,
 * distinct. Throws DnsInputError naming an NS name without an address.
 */
export function authoritativeServers(nsNames: readonly string[], addresses: Readonly<Record<string, readonly string[]>>, port: number): string[] {
  if (nsNames.length === 0) throw new DnsInputError('the zone has no NS records: give its authoritative servers (nameServers)');
  const servers = new Set<string>();
  for (const ns of nsNames) {
    const list = addresses[ns] ?? [];
    if (list.length === 0) throw new DnsInputError(`the zone's name server ${ns} has no address: give the zone's authoritative servers (nameServers)`);
    for (const a of list) servers.add(resolverServerString({ host: a, port }));
  }
  return [...servers].sort();
}

/**
 * The changes that make each RRset exactly its values and TTL, as one update message: every RRset
 * deleted first, then the values added (so an A at a name can become a CNAME in the same message:
 * bind ignores a CNAME added beside other data). An RRset with no values is only deleted.
 */
export function replaceRecordSetsChanges(records: readonly { name: string; type: DnsRecordType; values: readonly string[]; ttl: number }[]): DnsChange[] {
  const sets = records.map((r) => replaceRecordSetChanges(r.name, r.type, r.values, assertTtl(r.ttl)));
  return [...sets.flatMap((s) => s.filter((c) => c.op === 'delete')), ...sets.flatMap((s) => s.filter((c) => c.op === 'add'))];
}
