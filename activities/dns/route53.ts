// A Route 53 hosted zone through the AWS SDK: RRsets read with ListResourceRecordSets, changed in
// one ChangeResourceRecordSets (Route 53 applies a batch all or nothing) and followed with GetChange
// until INSYNC (every Route 53 name server serves it), heartbeating. It is both the cutover's
// DnsZone (Route 53's API is the one "authoritative server": route53:<hostedZoneId>) and a
// DnsProvider (TXT for DNS-01, single RRsets).
//
// Credentials: accessKeyIdFile/secretAccessKeyFile read when a request is signed (never in an
// input, result, error or log: messages are scrubbed of both), else the SDK's default chain.
import { readFile } from 'node:fs/promises';
import {
  ChangeResourceRecordSetsCommand,
  type Change,
  GetChangeCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type RRType,
  type Route53ClientConfig,
} from '@aws-sdk/client-route-53';
import { ApplicationFailure } from '@temporalio/common';
import { assertRecordType, assertTtl, nameInZone, normalizeRecordValue, recordsMatch, type DnsRecordType } from '../../common/commands/dns';
import {
  hostedZoneId,
  recordSetFromRoute53,
  route53ChangeBatch,
  route53RecordValues,
  soaSerialFromRoute53,
  type Route53Change,
  type Route53RecordSet,
  type WantedRecordSet,
} from '../../common/commands/route53';
import type { DnsRecordSet, DnsSnapshot, Route53ZoneSpec } from '../../common/cutover';
import { cancellationSignal, heartbeat, sleep } from '../context';
import type { DnsProvider, WaitForRecordOptions, WaitForRecordResult } from './rfc2136';
import { inputChecked, validateQueries, validateRecordSets, zoneName, type DnsZone, type RecordQuery } from './zone';

// Refused for a reason no retry fixes.
const REJECTED = new Set([
  'NoSuchHostedZone',
  'InvalidChangeBatch',
  'InvalidInput',
  'InvalidArgument',
  'AccessDenied',
  'AccessDeniedException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'UnrecognizedClientException',
  'IncompleteSignature',
  'ExpiredToken',
  'NoSuchChange',
]);

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export interface Route53Options {
  /** How long to wait for a change to be INSYNC; default 10 minutes (AWS: usually under a minute). */
  insyncTimeoutMs?: number;
  /** Pause between GetChange calls; default 5 s (moto: INSYNC at once). */
  insyncIntervalMs?: number;
  /** TTL when a DnsProvider call gives none; default 60 s. */
  defaultTtl?: number;
}

export class Route53Zone implements DnsZone, DnsProvider {
  readonly zone: string;
  private readonly id: string;
  private readonly server: string;
  private readonly client: Route53Client;
  private secrets: string[] = [];
  private readonly insyncTimeoutMs: number;
  private readonly insyncIntervalMs: number;
  private readonly defaultTtl: number;

  constructor(
    private readonly spec: Route53ZoneSpec,
    opts: Route53Options = {},
  ) {
    this.zone = zoneName(spec.zone);
    this.id = inputChecked(() => hostedZoneId(spec.hostedZoneId));
    this.server = `route53:${this.id}`;
    if (typeof spec.region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(spec.region)) {
      throw ApplicationFailure.nonRetryable(`Route 53 zone ${this.zone}: region ${JSON.stringify(spec.region)} is not an AWS region (like us-east-1)`, 'DnsInvalidInput');
    }
    if ((spec.accessKeyIdFile === undefined) !== (spec.secretAccessKeyFile === undefined)) {
      throw ApplicationFailure.nonRetryable(`Route 53 zone ${this.zone}: give both accessKeyIdFile and secretAccessKeyFile, or neither (the SDK's default credentials)`, 'DnsInvalidInput');
    }
    const config: Route53ClientConfig = { region: spec.region, endpoint: spec.endpoint, requestHandler: { connectionTimeout: 10_000, requestTimeout: 30_000 } };
    if (spec.accessKeyIdFile && spec.secretAccessKeyFile) config.credentials = () => this.readCredentials(spec.accessKeyIdFile!, spec.secretAccessKeyFile!);
    this.client = new Route53Client(config);
    this.insyncTimeoutMs = opts.insyncTimeoutMs ?? 10 * 60_000;
    this.insyncIntervalMs = opts.insyncIntervalMs ?? 5000;
    this.defaultTtl = inputChecked(() => assertTtl(opts.defaultTtl ?? 60));
  }

  get provider(): DnsProvider {
    return this;
  }

  // ---- DnsZone ----

  async readAuthoritative(records: readonly RecordQuery[]): Promise<DnsSnapshot> {
    const queries = validateQueries(this.zone, records);
    const soa = await this.list(this.zone, 'SOA');
    const serial = soaSerialFromRoute53(soa, this.zone);
    if (serial === undefined) throw ApplicationFailure.retryable(`${this.server} returned no SOA for ${this.zone}`, 'DnsServerFailed');
    const answers: DnsRecordSet[] = [];
    for (const q of queries) {
      const sets = await this.list(q.name, q.type);
      answers.push(inputChecked(() => recordSetFromRoute53(sets, q.name, q.type)));
    }
    return { zone: this.zone, servers: [{ server: this.server, serial, records: answers }] };
  }

  async apply(records: readonly DnsRecordSet[]): Promise<{ changed: boolean }> {
    return { changed: await this.change(validateRecordSets(this.zone, records), `${records.length} record(s) by the DNS cutover`) };
  }

  // ---- DnsProvider ----

  async setRecord(name: string, type: DnsRecordType, values: readonly string[], ttl?: number): Promise<void> {
    const n = inputChecked(() => nameInZone(name, this.zone));
    const t = inputChecked(() => assertRecordType(type));
    await this.change([{ name: n, type: t, values, ttl: inputChecked(() => assertTtl(ttl ?? this.defaultTtl)) }], `${t} ${n}`);
  }

  async removeRecord(name: string, type: DnsRecordType, value?: string): Promise<void> {
    const n = inputChecked(() => nameInZone(name, this.zone));
    const t = inputChecked(() => assertRecordType(type));
    const now = route53RecordValues(await this.list(n, t), n, t);
    const gone = value === undefined ? undefined : inputChecked(() => normalizeRecordValue(t, value));
    const keep = gone === undefined ? [] : now.values.filter((v) => !recordsMatch(t, [v], [gone], 'exact'));
    await this.change([{ name: n, type: t, values: keep, ttl: now.ttl || this.defaultTtl }], `${t} ${n}`);
  }

  async setTxt(name: string, values: readonly string[], ttl?: number): Promise<void> {
    await this.setRecord(name, 'TXT', values, ttl);
  }

  async addTxt(name: string, value: string, ttl?: number): Promise<void> {
    const n = inputChecked(() => nameInZone(name, this.zone));
    const now = route53RecordValues(await this.list(n, 'TXT'), n, 'TXT');
    await this.change([{ name: n, type: 'TXT', values: [...now.values, value], ttl: inputChecked(() => assertTtl(ttl ?? this.defaultTtl)) }], `TXT ${n}`);
  }

  async removeTxt(name: string, value?: string): Promise<void> {
    await this.removeRecord(name, 'TXT', value);
  }

  async lookup(name: string, type: DnsRecordType): Promise<string[]> {
    const n = inputChecked(() => nameInZone(name, this.zone));
    const t = inputChecked(() => assertRecordType(type));
    return route53RecordValues(await this.list(n, t), n, t).values;
  }

  async waitForRecord(name: string, type: DnsRecordType, expected: readonly string[], timeoutMs: number, opts: WaitForRecordOptions = {}): Promise<WaitForRecordResult> {
    const t = inputChecked(() => assertRecordType(type));
    const want = inputChecked(() => expected.map((v) => normalizeRecordValue(t, v)));
    const match = opts.match ?? 'includes';
    const started = Date.now();
    for (let attempts = 1; ; attempts++) {
      const values = await this.lookup(name, t);
      if (recordsMatch(t, values, want, match)) return { values, elapsedMs: Date.now() - started, attempts };
      heartbeat({ waitingFor: `${t} ${name}`, attempts, last: values });
      if (cancellationSignal()?.aborted) throw ApplicationFailure.nonRetryable(`waiting for ${t} ${name} was cancelled`, 'Cancelled');
      if (Date.now() - started >= timeoutMs) {
        throw ApplicationFailure.retryable(`${t} ${name}: ${JSON.stringify(want)} not visible at ${this.server} after ${Math.round((Date.now() - started) / 1000)}s (it has ${JSON.stringify(values)})`, 'DnsRecordNotVisible');
      }
      await sleep(Math.min(opts.intervalMs ?? 1000, Math.max(0, timeoutMs - (Date.now() - started))));
    }
  }

  // ---- internals ----

  /** Reads what is there, sends one batch when anything differs, waits for INSYNC; whether it sent one. */
  private async change(wanted: readonly WantedRecordSet[], what: string): Promise<boolean> {
    const current: Route53RecordSet[] = [];
    for (const w of wanted) current.push(...(await this.list(inputChecked(() => nameInZone(w.name, this.zone)), w.type)));
    const batch: Route53Change[] = inputChecked(() => route53ChangeBatch(this.zone, wanted, current));
    if (batch.length === 0) return false;
    let changeId: string | undefined;
    try {
      const out = await this.client.send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: this.id,
          // our structural RRsets are the SDK's (a DELETE repeats the one the API returned)
          ChangeBatch: { Comment: `temporal-runbooks: ${what}`.slice(0, 256), Changes: batch as unknown as Change[] },
        }),
        { abortSignal: cancellationSignal() },
      );
      changeId = out.ChangeInfo?.Id;
    } catch (err) {
      throw this.failure(`changing ${what} in`, err);
    }
    if (changeId) await this.waitInsync(changeId, what);
    return true;
  }

  /** GetChange until INSYNC, heartbeating: then every Route 53 name server serves the change. */
  private async waitInsync(changeId: string, what: string): Promise<void> {
    const started = Date.now();
    for (let attempts = 1; ; attempts++) {
      let status: string | undefined;
      try {
        status = (await this.client.send(new GetChangeCommand({ Id: changeId }), { abortSignal: cancellationSignal() })).ChangeInfo?.Status;
      } catch (err) {
        throw this.failure(`waiting for change ${changeId} (${what}) in`, err);
      }
      if (status === 'INSYNC') return;
      heartbeat({ change: changeId, status, attempts });
      if (cancellationSignal()?.aborted) throw ApplicationFailure.nonRetryable(`waiting for Route 53 change ${changeId} was cancelled`, 'Cancelled');
      if (Date.now() - started >= this.insyncTimeoutMs) {
        // the change is made: a retry finds it there and sends nothing
        throw ApplicationFailure.retryable(`Route 53 change ${changeId} (${what}) in ${this.server} is still ${status ?? 'unknown'} after ${Math.round((Date.now() - started) / 1000)}s`, 'Route53ChangePending');
      }
      await sleep(this.insyncIntervalMs);
    }
  }

  /** The RRsets at `name` from `type` on (the API lists in order: the ones asked come first). */
  private async list(name: string, type: DnsRecordType | 'SOA'): Promise<Route53RecordSet[]> {
    try {
      const out = await this.client.send(new ListResourceRecordSetsCommand({ HostedZoneId: this.id, StartRecordName: `${name}.`, StartRecordType: type as RRType, MaxItems: 20 }), {
        abortSignal: cancellationSignal(),
      });
      return (out.ResourceRecordSets ?? []) as Route53RecordSet[];
    } catch (err) {
      throw this.failure(`reading ${type} ${name} in`, err);
    }
  }

  private async readCredentials(idFile: string, secretFile: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
    const [accessKeyId, secretAccessKey] = await Promise.all([readCredentialFile(idFile, 'access key id'), readCredentialFile(secretFile, 'secret access key')]);
    this.secrets = [accessKeyId, secretAccessKey];
    return { accessKeyId, secretAccessKey };
  }

  private scrub(text: string): string {
    return this.secrets.filter((s) => s.length >= 4).reduce((t, s) => t.split(s).join('***'), text);
  }

  /** A failed call: what no retry fixes (missing zone, refused batch, credentials) is non-retryable. */
  private failure(what: string, err: unknown): ApplicationFailure {
    if (err instanceof ApplicationFailure) return err;
    const e = (err ?? {}) as SdkError;
    const name = e.name ?? '';
    const status = e.$metadata?.httpStatusCode;
    const head = `${what} Route 53 zone ${this.zone} (${this.server}${this.spec.endpoint ? ` at ${endpointForMessages(this.spec.endpoint)}` : ''})`;
    const credentials = this.spec.accessKeyIdFile ? `the credentials in ${this.spec.accessKeyIdFile} and ${this.spec.secretAccessKeyFile}` : 'the credentials of the default AWS chain';
    const detail = this.scrub(`${name && name !== 'Error' ? `${name}: ` : ''}${e.message ?? String(err)}`);
    if (name === 'NoSuchHostedZone') return ApplicationFailure.nonRetryable(`${head}: no such hosted zone; fix hostedZoneId`, 'DnsZoneNotFound');
    if (name === 'CredentialsProviderError') return ApplicationFailure.nonRetryable(`${head}: no AWS credentials found; set accessKeyIdFile and secretAccessKeyFile`, 'DnsCredentialsMissing');
    if (REJECTED.has(name) || status === 403) return ApplicationFailure.nonRetryable(`${head} was refused: ${detail}${status === 403 || /Access|Signature|Token|Client/.test(name) ? `; check ${credentials}` : ''}`, 'DnsUpdateRefused');
    if (status !== undefined && status >= 400 && status < 500 && !/Throttl|PriorRequestNotComplete|TooMany/i.test(name)) {
      return ApplicationFailure.nonRetryable(`${head} was refused: ${detail}`, 'DnsUpdateRefused');
    }
    return ApplicationFailure.retryable(`${head} failed: ${detail}`, 'DnsServerUnreachable');
  }
}

function endpointForMessages(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '(invalid endpoint)';
  }
}

/** One credential value from a file (trimmed); never its content in an error. */
async function readCredentialFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot read the AWS ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'read error'}`, 'DnsCredentialsUnreadable');
  }
  const value = text.trim();
  if (!value) throw ApplicationFailure.nonRetryable(`the AWS ${what} file ${file} is empty`, 'DnsCredentialsUnreadable');
  return value;
}
