// The Route 53 zone (activities/dns/route53.ts) against moto's Route 53 on loopback (scripts/s3.sh:
// one moto server for S3 and Route 53): a hosted zone made here, an A record set, its TTL lowered
// and its address flipped through applyDnsRecords/awaitDnsRecords, read back by readAuthoritative,
// a repeated apply that sends nothing, TXT records through the DnsProvider interface, and the
// failures (no such zone, unreadable credentials) with the credentials never in an error.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChangeResourceRecordSetsCommand, CreateHostedZoneCommand, DeleteHostedZoneCommand, ListResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { ApplicationFailure } from '@temporalio/common';
import { createDnsActivities, openZone } from '../../activities/dns';
import type { DnsRecordSet, Route53ZoneSpec } from '../../common/cutover';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(60_000);

const ENDPOINT = process.env.S3_ENDPOINT ?? 'http://127.0.0.1:9000';
const REGION = 'us-east-1';
const run = randomBytes(4).toString('hex');
const ZONE = `r53-${run}.test`;
const NAME = `app.${ZONE}`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-route53-'));
const idFile = path.join(tmp, 'access-key-id');
const secretFile = path.join(tmp, 'secret-access-key');
const SECRET = `secret-${randomBytes(12).toString('hex')}`;
writeFileSync(idFile, `AKIA${run.toUpperCase()}TEST\n`, { mode: 0o600 });
writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });

const admin = new Route53Client({ region: REGION, endpoint: ENDPOINT, credentials: { accessKeyId: 'admin', secretAccessKey: 'admin' } });
const dns = createDnsActivities();
let zone: Route53ZoneSpec;
const record = (values: string[], ttl: number): DnsRecordSet => ({ name: NAME, type: 'A', values, ttl });
const FAST = { timeoutMs: 10_000, intervalMs: 200 };

beforeAll(async () => {
  const out = await admin.send(new CreateHostedZoneCommand({ Name: ZONE, CallerReference: `it-${run}` }));
  zone = { type: 'route53', zone: ZONE, hostedZoneId: out.HostedZone!.Id!.replace('/hostedzone/', ''), region: REGION, endpoint: ENDPOINT, accessKeyIdFile: idFile, secretAccessKeyFile: secretFile };
});

afterAll(async () => {
  if (zone) {
    // a hosted zone is deleted only without records of its own (SOA and NS stay)
    const sets = (await admin.send(new ListResourceRecordSetsCommand({ HostedZoneId: zone.hostedZoneId }))).ResourceRecordSets ?? [];
    const mine = sets.filter((s) => s.Type !== 'SOA' && s.Type !== 'NS');
    if (mine.length) await admin.send(new ChangeResourceRecordSetsCommand({ HostedZoneId: zone.hostedZoneId, ChangeBatch: { Changes: mine.map((s) => ({ Action: 'DELETE', ResourceRecordSet: s })) } }));
    await admin.send(new DeleteHostedZoneCommand({ Id: zone.hostedZoneId }));
  }
  rmSync(tmp, { recursive: true, force: true });
});

/** Every error message seen, checked for the secret at the end. */
const messages: string[] = [];
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await rejectionOf(p);
  messages.push(err.message, String(err.stack ?? ''));
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('Route 53 through the cutover activities', () => {
  it('readAuthoritative: one "server", the API; no record yet', async () => {
    const snap = await dns.readAuthoritative({ zone, records: [{ name: NAME, type: 'A' }] });
    expect(snap.zone).toBe(ZONE);
    expect(snap.servers).toHaveLength(1);
    expect(snap.servers[0].server).toBe(`route53:${zone.hostedZoneId}`);
    expect(Number.isInteger(snap.servers[0].serial)).toBe(true);
    expect(snap.servers[0].records).toEqual([{ name: NAME, type: 'A', values: [], ttl: 0 }]);
  });

  it('sets an A record, lowers its TTL, flips its address: each one change, each verified', async () => {
    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.1'], 300)] })).toEqual({ changed: true });
    let snap = await dns.awaitDnsRecords({ zone, records: [record(['10.0.0.1'], 300)], ...FAST });
    expect(snap.servers[0].records[0]).toEqual(record(['10.0.0.1'], 300));

    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.1'], 60)] })).toEqual({ changed: true });
    snap = await dns.awaitDnsRecords({ zone, records: [record(['10.0.0.1'], 60)], ...FAST });
    expect(snap.servers[0].records[0]).toEqual(record(['10.0.0.1'], 60));

    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.3', '10.0.0.2'], 60)] })).toEqual({ changed: true });
    snap = await dns.readAuthoritative({ zone, records: [{ name: NAME, type: 'A' }] });
    expect(snap.servers[0].records[0]).toEqual(record(['10.0.0.2', '10.0.0.3'], 60));
  });

  it('a repeated apply sends nothing', async () => {
    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.2', '10.0.0.3'], 60)] })).toEqual({ changed: false });
  });

  it('awaitDnsRecords times out with DnsNotConverged saying what the API has', async () => {
    const err = await failureOf(dns.awaitDnsRecords({ zone, records: [record(['10.0.0.9'], 60)], timeoutMs: 500, intervalMs: 200 }));
    expect(err.type).toBe('DnsNotConverged');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain(`route53:${zone.hostedZoneId} answers ${NAME} A 10.0.0.2,10.0.0.3 ttl 60, wanted 10.0.0.9 ttl 60`);
  });

  it('moves a name from A to CNAME in one batch, and removes it', async () => {
    const other = `www.${ZONE}`;
    await dns.applyDnsRecords({ zone, records: [{ name: other, type: 'A', values: ['10.0.0.5'], ttl: 60 }] });
    const to: DnsRecordSet[] = [
      { name: other, type: 'A', values: [], ttl: 60 },
      { name: other, type: 'CNAME', values: [NAME], ttl: 60 },
    ];
    expect(await dns.applyDnsRecords({ zone, records: to })).toEqual({ changed: true });
    const snap = await dns.awaitDnsRecords({ zone, records: to, ...FAST });
    expect(snap.servers[0].records.map((r) => r.values)).toEqual([[], [NAME]]);
    expect(await dns.applyDnsRecords({ zone, records: [{ name: other, type: 'CNAME', values: [], ttl: 60 }] })).toEqual({ changed: true });
  });

  it('serves DNS-01 through the DnsProvider interface (TXT)', async () => {
    const dns01 = openZone(zone).provider;
    const name = `_acme-challenge.${ZONE}`;
    const a = randomBytes(32).toString('base64url');
    const b = 'with "quotes" and spaces';
    await dns01.setTxt(name, [a]);
    await dns01.addTxt(name, b);
    expect((await dns01.lookup(name, 'TXT')).sort()).toEqual([a, b].sort());
    await dns01.waitForRecord(name, 'TXT', [a, b], 5000, { match: 'exact' });
    await dns01.removeTxt(name, a);
    expect(await dns01.lookup(name, 'TXT')).toEqual([b]);
    await dns01.removeTxt(name);
    expect(await dns01.lookup(name, 'TXT')).toEqual([]);
    await dns01.removeTxt(name); // absent is fine
  });
});

describe('failures', () => {
  it('no such hosted zone: non-retryable, says what to fix', async () => {
    const err = await failureOf(dns.readAuthoritative({ zone: { ...zone, hostedZoneId: 'ZNOSUCHZONE1' }, records: [{ name: NAME, type: 'A' }] }));
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/hostedZoneId/);
  });

  it('an unreadable credential file: non-retryable, names the file', async () => {
    const err = await failureOf(dns.applyDnsRecords({ zone: { ...zone, secretAccessKeyFile: path.join(tmp, 'missing') }, records: [record(['10.0.0.1'], 60)] }));
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(path.join(tmp, 'missing'));
  });

  it('bad input: non-retryable before any request', async () => {
    expect((await failureOf(dns.applyDnsRecords({ zone, records: [{ name: 'app.elsewhere.test', type: 'A', values: ['10.0.0.1'], ttl: 60 }] }))).nonRetryable).toBe(true);
    expect((await failureOf(dns.applyDnsRecords({ zone, records: [record(['not-an-ip'], 60)] }))).nonRetryable).toBe(true);
    expect((await failureOf(dns.readAuthoritative({ zone: { ...zone, hostedZoneId: '../etc' }, records: [{ name: NAME, type: 'A' }] }))).nonRetryable).toBe(true);
  });

  it('no error carried the secret', () => {
    for (const m of messages) expect(m).not.toContain(SECRET);
  });
});
