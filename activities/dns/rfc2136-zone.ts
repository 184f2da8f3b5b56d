// A zone changed by RFC 2136 (the Rfc2136Provider's nsupdate) and read with `dig +norecurse` at
// each authoritative server: the TTL as the server serves it (no cache counting it down) and the
// SOA serial, from the servers in the spec or the zone's NS records.
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import {
  DnsInputError,
  authoritativeServers,
  digArgv,
  digFailureText,
  nsNamesFromAnswer,
  parseDigOutput,
  parseDnsServer,
  replaceRecordSetsChanges,
  resolverServerString,
  rrsetFromAnswer,
  soaSerialFromAnswer,
  type DigAnswer,
  type DigQueryType,
} from '../../common/commands/dns';
import { describeRecord, type AuthoritativeAnswer, type DnsRecordSet, type DnsSnapshot, type Rfc2136ZoneSpec } from '../../common/cutover';
import { cancellationSignal } from '../context';
import { Rfc2136Provider, runCommand, type CommandRunner } from './rfc2136';
import { inputChecked, validateQueries, validateRecordSets, zoneName, type DnsZone, type RecordQuery } from './zone';

export interface Rfc2136ZoneDeps {
  run?: CommandRunner;
  /** Addresses of a name the zone's primary does not know (an NS name outside the zone). */
  lookupAll?: (host: string) => Promise<string[]>;
}

const DIG_TIMEOUT_SECONDS = 2;

export class Rfc2136Zone implements DnsZone {
  readonly zone: string;
  readonly provider: Rfc2136Provider;
  private readonly primary: string;
  private readonly run: CommandRunner;
  private readonly lookupAll: (host: string) => Promise<string[]>;
  private readonly nameServers?: string[];

  constructor(spec: Rfc2136ZoneSpec, deps: Rfc2136ZoneDeps = {}) {
    this.zone = zoneName(spec.zone);
    this.provider = new Rfc2136Provider({ type: 'rfc2136', server: spec.server, zone: spec.zone, keyFile: spec.keyFile }, { run: deps.run });
    this.primary = inputChecked(() => {
      const s = parseDnsServer(spec.server);
      return isIP(s.host) ? resolverServerString(s) : spec.server;
    });
    this.run = deps.run ?? runCommand;
    this.lookupAll = deps.lookupAll ?? (async (host) => (await dnsPromises.lookup(host, { all: true })).map((a) => a.address));
    if (spec.nameServers !== undefined) {
      this.nameServers = inputChecked(() => {
        if (!Array.isArray(spec.nameServers) || spec.nameServers.length === 0) throw new DnsInputError('nameServers, when given, lists at least one server "ip:port"');
        return spec.nameServers.map((s) => {
          const a = parseDnsServer(s);
          if (!isIP(a.host)) throw new DnsInputError(`nameServers: ${JSON.stringify(s)} is not an address "ip:port" (a name would be resolved by a cache)`);
          return resolverServerString(a);
        });
      });
    }
  }

  async readAuthoritative(records: readonly RecordQuery[]): Promise<DnsSnapshot> {
    const queries = validateQueries(this.zone, records);
    const servers = await this.servers();
    return { zone: this.zone, servers: await Promise.all(servers.map((s) => this.readServer(s, queries))) };
  }

  async apply(records: readonly DnsRecordSet[]): Promise<{ changed: boolean }> {
    const wanted = validateRecordSets(this.zone, records);
    // What the primary serves now: a retried apply whose first attempt got through sends nothing.
    const now = await this.readServer(this.primary, wanted);
    const same = wanted.every((w) => describeRecord(now.records.find((r) => r.name === w.name && r.type === w.type)) === describeRecord(w));
    if (same) return { changed: false };
    await this.provider.applyChanges(inputChecked(() => replaceRecordSetsChanges(wanted)));
    return { changed: true };
  }

  /** The zone's authoritative servers "ip:port": the spec's, else its NS names' addresses (asked of the primary). */
  async servers(): Promise<string[]> {
    if (this.nameServers) return this.nameServers;
    const port = parseDnsServer(this.primary).port;
    const nsNames = nsNamesFromAnswer(await this.dig(this.primary, this.zone, 'NS'), this.zone);
    const addresses: Record<string, string[]> = {};
    for (const ns of nsNames) {
      const found: string[] = [];
      if (ns === this.zone || ns.endsWith(`.${this.zone}`)) {
        for (const type of ['A', 'AAAA'] as const) found.push(...rrsetFromAnswer(await this.dig(this.primary, ns, type), ns, type).values);
      }
      if (found.length === 0) {
        // outside the zone (or no glue in it): the system's resolver knows it
        found.push(...(await this.lookupAll(ns).catch(() => [])));
      }
      addresses[ns] = found;
    }
    return inputChecked(() => authoritativeServers(nsNames, addresses, port));
  }

  private async readServer(server: string, queries: readonly RecordQuery[]): Promise<AuthoritativeAnswer> {
    const serial = soaSerialFromAnswer(await this.dig(server, this.zone, 'SOA'), this.zone);
    if (serial === undefined) throw ApplicationFailure.retryable(`authoritative server ${server} answered no SOA for ${this.zone}`, 'DnsServerFailed');
    const records: DnsRecordSet[] = [];
    for (const q of queries) {
      const rr = rrsetFromAnswer(await this.dig(server, q.name, q.type), q.name, q.type);
      records.push({ name: q.name, type: q.type, ...rr });
    }
    return { server, serial, records };
  }

  /** One `dig +norecurse` at `server`: its answer, or a failure naming the server. */
  private async dig(server: string, name: string, type: DigQueryType): Promise<DigAnswer> {
    const argv = inputChecked(() => digArgv(server, name, type, DIG_TIMEOUT_SECONDS));
    const what = `authoritative server ${server} (${type} ${name})`;
    let result;
    try {
      result = await this.run(argv, '', (DIG_TIMEOUT_SECONDS + 3) * 1000, cancellationSignal());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw ApplicationFailure.nonRetryable('dig is not installed (Debian package bind9-dnsutils)', 'DigMissing');
      throw ApplicationFailure.retryable(`${what}: dig could not run (${code ?? (err as Error).message})`, 'DnsServerUnreachable');
    }
    const output = `${result.stdout}\n${result.stderr}`;
    const answer = result.timedOut ? undefined : parseDigOutput(output);
    if (!answer) throw ApplicationFailure.retryable(`${what} did not answer: ${result.timedOut ? 'dig timed out' : digFailureText(output, result.code)}`, 'DnsServerUnreachable');
    if (answer.status === 'REFUSED' || answer.status === 'NOTAUTH' || ((answer.status === 'NOERROR' || answer.status === 'NXDOMAIN') && !answer.authoritative)) {
      // a server that does not serve the zone: asking again will not change that
      throw ApplicationFailure.nonRetryable(
        `${what} is not authoritative for ${this.zone} (${answer.status}${answer.authoritative ? '' : ', no AA flag'}): fix its zone configuration or the zone's name servers`,
        'DnsNotAuthoritative',
      );
    }
    if (answer.status !== 'NOERROR' && answer.status !== 'NXDOMAIN') {
      // SERVFAIL: e.g. a secondary that has not transferred the zone (yet)
      throw ApplicationFailure.retryable(`${what} failed: ${answer.status}`, 'DnsServerFailed');
    }
    return answer;
  }
}
