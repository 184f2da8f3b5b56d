// DNS providers: the interface the certificate runbook (DNS-01 challenges) and the DNS cutover
// runbook (A/AAAA/CNAME switches) change DNS through, and its first implementation: RFC 2136
// dynamic updates signed with a TSIG key, sent by `nsupdate` (Debian's bind9-dnsutils).
//
// The TSIG key stays a file path (`nsupdate -k`): its content is never an argument, an activity
// input or result, a log line or part of an error (nsupdate's output is shown only with the key's
// secrets redacted, and not at all when nsupdate could not parse the file).
//
// Errors are Temporal ApplicationFailures: what retrying cannot fix (an update the server refuses:
// bad or unknown key, NOTAUTH/REFUSED; an unreadable key file; an invalid name or value) is
// non-retryable; an unreachable server, SERVFAIL and a record not visible in time are retryable.
import { spawn } from 'node:child_process';
import { promises as dnsPromises } from 'node:dns';
import { constants as fsConstants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import {
  DnsInputError,
  assertRecordType,
  assertTtl,
  classifyNsupdateFailure,
  joinTxtAnswers,
  nameInZone,
  normalizeDnsName,
  normalizeRecordValue,
  nsupdateArgv,
  nsupdateScript,
  parseDnsServer,
  recordsMatch,
  redactTsigSecrets,
  removeRecordChanges,
  replaceRecordSetChanges,
  resolverServerString,
  type DnsChange,
  type DnsRecordType,
  type NsupdateFailure,
  type RecordMatch,
} from '../../common/commands/dns';
import { cancellationSignal, heartbeat, sleep } from '../context';

export type { DnsRecordType, RecordMatch };

export interface WaitForRecordOptions {
  /** 'includes' (default): every expected value is there; 'exact': exactly those (`[]`: none). */
  match?: RecordMatch;
  /** Pause between queries; default 500 ms. */
  intervalMs?: number;
  /** Servers to ask (all must show the value), "ip:port"; default the provider's own server. */
  servers?: string[];
}

export interface WaitForRecordResult {
  /** What the (last) server answered when the values became visible. */
  values: string[];
  elapsedMs: number;
  attempts: number;
}

/**
 * Changes and reads records of one zone. Names are absolute DNS names inside the zone, with or
 * without the final dot (`_acme-challenge.app.runbooks.test`); `*` may be the leftmost label.
 * Every change is one atomic update; all of them are idempotent. `ttl` defaults to the provider's.
 * A change is made at the zone's primary; `waitForRecord` tells when it is visible there (or at
 * other authoritative servers), never through a caching resolver.
 */
export interface DnsProvider {
  readonly zone: string;
  /** Makes `values` the whole TXT set at `name` (replacing what is there; `[]` removes it). */
  setTxt(name: string, values: readonly string[], ttl?: number): Promise<void>;
  /** Adds one TXT value at `name`, keeping the others (challenges of concurrent orders on one name). */
  addTxt(name: string, value: string, ttl?: number): Promise<void>;
  /** Removes the TXT record with `value` at `name`, or every TXT record there; an absent one is fine. */
  removeTxt(name: string, value?: string): Promise<void>;
  /** Makes `values` the whole RRset of `type` (A, AAAA, CNAME, TXT) at `name`. */
  setRecord(name: string, type: DnsRecordType, values: readonly string[], ttl?: number): Promise<void>;
  /** Removes one record (`value`) or the RRset of `type` at `name`; absent is fine. */
  removeRecord(name: string, type: DnsRecordType, value?: string): Promise<void>;
  /** What the zone's server answers now (TXT: one string per record, chunks joined); `[]` when none. */
  lookup(name: string, type: DnsRecordType): Promise<string[]>;
  /**
   * Queries the authoritative server(s) directly until `expected` is visible; a retryable failure
   * ('DnsRecordNotVisible') after `timeoutMs`. Heartbeats while waiting when run in an activity.
   */
  waitForRecord(name: string, type: DnsRecordType, expected: readonly string[], timeoutMs: number, opts?: WaitForRecordOptions): Promise<WaitForRecordResult>;
}

/** Plain JSON (a path, never the key): fine as an activity input. */
export interface Rfc2136ProviderSpec {
  type: 'rfc2136';
  /** The zone's primary server, "host:port" (port 53 when omitted): updates go there, lookups ask it. */
  server: string;
  zone: string;
  /** TSIG key file as `tsig-keygen` writes it (`key "name" { algorithm ...; secret "..."; };`). */
  keyFile: string;
  /** TTL when a change gives none; default 60 s. */
  defaultTtl?: number;
  /** Seconds nsupdate waits for the server; default 10. */
  timeoutSeconds?: number;
}

// ---- thin adapters (the only I/O) ----

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs argv (no shell) with `stdin` as its input; killed after `timeoutMs` or on `signal`. */
export type CommandRunner = (argv: readonly string[], stdin: string, timeoutMs: number, signal?: AbortSignal) => Promise<CommandResult>;

export const runCommand: CommandRunner = (argv, stdin, timeoutMs, signal) =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], signal });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined); // the process may exit before reading everything
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stdout, stderr, timedOut });
    });
    child.stdin.end(stdin);
  });

/** Asks one server ("ip:port") for `name`/`type`: the answer's values, `[]` for NXDOMAIN/NODATA. */
export type DnsQuery = (server: string, name: string, type: DnsRecordType, timeoutMs: number) => Promise<string[]>;

export const queryServer: DnsQuery = async (server, name, type, timeoutMs) => {
  // A new resolver per query: nothing cached between polls.
  const resolver = new dnsPromises.Resolver({ timeout: Math.max(200, Math.min(timeoutMs, 2000)), tries: 2 });
  resolver.setServers([server]);
  try {
    switch (type) {
      case 'A':
        return await resolver.resolve4(name);
      case 'AAAA':
        return await resolver.resolve6(name);
      case 'CNAME':
        return await resolver.resolveCname(name);
      case 'TXT':
        return joinTxtAnswers(await resolver.resolveTxt(name));
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENODATA' || code === 'ENOTFOUND') return [];
    throw err;
  }
};

export interface Rfc2136Deps {
  run?: CommandRunner;
  query?: DnsQuery;
}

// ---- the provider ----

export class Rfc2136Provider implements DnsProvider {
  readonly zone: string;
  private readonly server: string;
  private readonly keyFile: string;
  private readonly defaultTtl: number;
  private readonly argv: string[];
  private readonly timeoutMs: number;
  private readonly run: CommandRunner;
  private readonly query: DnsQuery;
  private resolverServer?: Promise<string>;

  constructor(spec: Rfc2136ProviderSpec, deps: Rfc2136Deps = {}) {
    const server = inputChecked(() => parseDnsServer(spec.server));
    this.server = spec.server;
    this.zone = inputChecked(() => normalizeDnsName(spec.zone, 'zone', false));
    this.keyFile = spec.keyFile;
    this.defaultTtl = inputChecked(() => assertTtl(spec.defaultTtl ?? 60));
    const timeoutSeconds = spec.timeoutSeconds ?? 10;
    this.argv = inputChecked(() => nsupdateArgv(spec.keyFile, { timeoutSeconds }));
    // nsupdate's own timeout, plus a margin before we kill it
    this.timeoutMs = (timeoutSeconds + 5) * 1000;
    this.run = deps.run ?? runCommand;
    this.query = deps.query ?? queryServer;
    if (isIP(server.host)) this.resolverServer = Promise.resolve(resolverServerString(server));
  }

  async setTxt(name: string, values: readonly string[], ttl?: number): Promise<void> {
    await this.setRecord(name, 'TXT', values, ttl);
  }

  async addTxt(name: string, value: string, ttl?: number): Promise<void> {
    const ttlSeconds = this.ttl(ttl);
    await this.update(() => [{ op: 'add', name, type: 'TXT', value: normalizeRecordValue('TXT', value), ttl: ttlSeconds }]);
  }

  async removeTxt(name: string, value?: string): Promise<void> {
    await this.removeRecord(name, 'TXT', value);
  }

  async setRecord(name: string, type: DnsRecordType, values: readonly string[], ttl?: number): Promise<void> {
    const ttlSeconds = this.ttl(ttl);
    await this.update(() => replaceRecordSetChanges(name, assertRecordType(type), values, ttlSeconds));
  }

  async removeRecord(name: string, type: DnsRecordType, value?: string): Promise<void> {
    await this.update(() => removeRecordChanges(name, assertRecordType(type), value));
  }

  async lookup(name: string, type: DnsRecordType): Promise<string[]> {
    const n = inputChecked(() => nameInZone(name, this.zone));
    const t = inputChecked(() => assertRecordType(type));
    const server = await this.lookupServer();
    try {
      return await this.query(server, n, t, 5000);
    } catch (err) {
      throw queryFailure(server, n, t, err);
    }
  }

  async waitForRecord(name: string, type: DnsRecordType, expected: readonly string[], timeoutMs: number, opts: WaitForRecordOptions = {}): Promise<WaitForRecordResult> {
    const n = inputChecked(() => nameInZone(name, this.zone));
    const t = inputChecked(() => assertRecordType(type));
    const want = inputChecked(() => expected.map((v) => normalizeRecordValue(t, v)));
    const match = opts.match ?? 'includes';
    const intervalMs = opts.intervalMs ?? 500;
    const servers = opts.servers?.length
      ? inputChecked(() => opts.servers!.map((s) => resolverServerString(parseDnsServer(s))))
      : [await this.lookupServer()];
    const signal = cancellationSignal();
    const started = Date.now();
    let attempts = 0;
    let last = '';
    for (;;) {
      attempts++;
      let values: string[] = [];
      let visible = true;
      for (const server of servers) {
        try {
          values = await this.query(server, n, t, Math.min(2000, Math.max(200, timeoutMs)));
          last = `${server} answered ${JSON.stringify(values)}`;
        } catch (err) {
          last = `${server}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
          visible = false;
          break;
        }
        if (!recordsMatch(t, values, want, match)) {
          visible = false;
          break;
        }
      }
      if (visible) return { values, elapsedMs: Date.now() - started, attempts };
      heartbeat({ waitingFor: `${t} ${n}`, attempts, last });
      if (signal?.aborted) throw ApplicationFailure.nonRetryable(`waiting for ${t} ${n} was cancelled`, 'Cancelled');
      const elapsed = Date.now() - started;
      if (elapsed >= timeoutMs) {
        const what = match === 'exact' && want.length === 0 ? 'no records' : `${match === 'exact' ? 'exactly ' : ''}${JSON.stringify(want)}`;
        throw ApplicationFailure.retryable(
          `${t} ${n}: ${what} not visible at ${servers.join(', ')} after ${Math.round(elapsed / 1000)}s (${attempts} queries; last: ${last})`,
          'DnsRecordNotVisible',
        );
      }
      await sleep(Math.min(intervalMs, Math.max(0, timeoutMs - elapsed)));
    }
  }

  // ---- internals ----

  private ttl(ttl: number | undefined): number {
    return inputChecked(() => assertTtl(ttl ?? this.defaultTtl));
  }

  private lookupServer(): Promise<string> {
    if (!this.resolverServer) {
      const { host, port } = parseDnsServer(this.server);
      this.resolverServer = dnsPromises.lookup(host).then(
        (a) => resolverServerString({ host: a.address, port }),
        (err) => {
          this.resolverServer = undefined;
          throw ApplicationFailure.retryable(`DNS server ${this.server} does not resolve (${(err as NodeJS.ErrnoException).code ?? err})`, 'DnsServerUnreachable');
        },
      );
    }
    return this.resolverServer;
  }

  /** Sends `changes` as one update message (all or nothing at the server). */
  async applyChanges(changes: readonly DnsChange[]): Promise<void> {
    await this.update(() => [...changes]);
  }

  /** Sends one update message with `changes()` (built inside, so bad input becomes a failure). */
  private async update(changes: () => DnsChange[]): Promise<void> {
    const script = inputChecked(() => nsupdateScript({ server: this.server, zone: this.zone, changes: changes() }));
    const where = `DNS update of zone ${this.zone} at ${this.server}`;
    let keyText: string | undefined;
    try {
      await access(this.keyFile, fsConstants.R_OK);
      keyText = await readFile(this.keyFile, 'utf8'); // only to redact its secrets from nsupdate's output
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`${where}: the TSIG key file ${this.keyFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'DnsKeyFileUnreadable');
    }
    let result: CommandResult;
    try {
      result = await this.run(this.argv, script, this.timeoutMs, cancellationSignal());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw ApplicationFailure.nonRetryable(`${where}: nsupdate is not installed (Debian package bind9-dnsutils)`, 'NsupdateMissing');
      throw ApplicationFailure.retryable(`${where}: nsupdate could not run (${code ?? (err as Error).message})`, 'DnsUpdateFailed');
    }
    const output = `${result.stderr}\n${result.stdout}`.trim();
    // nsupdate exits 0 after "could not read key" (and then sends unsigned): look at the output too
    const failure: NsupdateFailure | undefined = result.timedOut
      ? { kind: 'unreachable' }
      : result.code !== 0 || /could not read key|update failed|TSIG error|failed:/i.test(output)
        ? classifyNsupdateFailure(output)
        : undefined;
    if (!failure) return;
    throw nsupdateFailure(where, this.keyFile, this.zone, failure, result.timedOut ? `no answer within ${this.timeoutMs / 1000}s` : redactTsigSecrets(output, keyText));
  }
}

/** The provider for a spec (the only kind so far). */
export function openDnsProvider(spec: Rfc2136ProviderSpec, deps: Rfc2136Deps = {}): DnsProvider {
  if (spec?.type !== 'rfc2136') throw ApplicationFailure.nonRetryable(`unknown DNS provider type ${JSON.stringify((spec as { type?: unknown })?.type)}`, 'DnsInvalidInput');
  return new Rfc2136Provider(spec, deps);
}

// ---- errors ----

function inputChecked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DnsInputError) throw ApplicationFailure.nonRetryable(err.message, 'DnsInvalidInput');
    throw err;
  }
}

const RCODE_HINTS: Record<string, string> = {
  BADKEY: 'the server does not know the key named in KEYFILE',
  BADSIG: 'the secret in KEYFILE is not the one the server has for that key name',
  BADTIME: "this machine's clock and the server's differ too much for TSIG",
  REFUSED: 'the key in KEYFILE may not change these names (update-policy), or the zone takes no updates',
  NOTAUTH: 'the server is not authoritative for the zone, or did not accept the key in KEYFILE',
  NOTZONE: 'a name is not in the zone',
};

function nsupdateFailure(where: string, keyFile: string, zone: string, failure: NsupdateFailure, output: string): ApplicationFailure {
  switch (failure.kind) {
    case 'badKey':
      // nsupdate's parse errors may quote the file: say nothing of its output
      return ApplicationFailure.nonRetryable(`${where}: nsupdate could not read the TSIG key file ${keyFile} (not a key in tsig-keygen's format)`, 'DnsKeyFileInvalid');
    case 'refused': {
      const rcode = failure.rcode ?? 'TSIG error';
      const inner = /\((\w+)\)/.exec(rcode)?.[1];
      const hint = (RCODE_HINTS[inner ?? rcode.replace(/\(.*$/, '')] ?? `the server refused the update for zone ${zone}`).replace('KEYFILE', keyFile);
      return ApplicationFailure.nonRetryable(`${where} refused: ${rcode}: ${hint}\n${output}`, 'DnsUpdateRefused');
    }
    case 'unreachable':
      return ApplicationFailure.retryable(`${where}: the server did not answer: ${output}`, 'DnsServerUnreachable');
    case 'failed':
      return ApplicationFailure.retryable(`${where} failed${failure.rcode ? ` (${failure.rcode})` : ''}: ${output}`, 'DnsUpdateFailed');
  }
}

function queryFailure(server: string, name: string, type: DnsRecordType, err: unknown): ApplicationFailure {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  const message = `DNS query ${type} ${name} at ${server} failed: ${code}`;
  // REFUSED: the server does not serve that zone; asking again will not change it
  return code === 'EREFUSED' ? ApplicationFailure.nonRetryable(message, 'DnsQueryRefused') : ApplicationFailure.retryable(message, 'DnsQueryFailed');
}
