// awaitDnsRecords' polling (activities/dns/index.ts) with a fake zone: it returns once every server
// serves the records and one serial, counts a server that does not answer as lagging, gives up with
// a retryable DnsNotConverged naming the laggards, and stops at once on what no retry fixes.
import { ApplicationFailure } from '@temporalio/common';
import { createDnsActivities, openZone, type DnsZone } from '../../activities/dns';
import type { DnsRecordSet, DnsSnapshot, Rfc2136ZoneSpec } from '../../common/cutover';
import { rejectionOf } from '../helpers/rejection';

const spec: Rfc2136ZoneSpec = { type: 'rfc2136', zone: 'runbooks.test', server: '127.0.0.1:5353', keyFile: '/nonexistent/key' };
const want: DnsRecordSet = { name: 'app.runbooks.test', type: 'A', values: ['10.0.0.2'], ttl: 60 };

function answer(server: string, serial: number, values: string[], ttl = 60) {
  return { server, serial, records: [{ name: 'app.runbooks.test', type: 'A' as const, values, ttl }] };
}

/** A zone whose reads return the given snapshots (or throw the given errors) in turn, the last forever. */
function fakeZone(reads: (DnsSnapshot | Error)[]): DnsZone & { reads: number } {
  const zone = {
    zone: 'runbooks.test',
    reads: 0,
    provider: undefined as never,
    async readAuthoritative() {
      const r = reads[Math.min(zone.reads++, reads.length - 1)];
      if (r instanceof Error) throw r;
      return r;
    },
    async apply() {
      return { changed: false };
    },
  };
  return zone;
}

const snap = (...servers: ReturnType<typeof answer>[]): DnsSnapshot => ({ zone: 'runbooks.test', servers });

describe('awaitDnsRecords', () => {
  it('polls until every server serves the records with one serial', async () => {
    const zone = fakeZone([
      snap(answer('127.0.0.1:5353', 2, ['10.0.0.2']), answer('127.0.0.2:5353', 1, ['10.0.0.1'])),
      new ApplicationFailure('authoritative server 127.0.0.2:5353 did not answer', 'DnsServerUnreachable', false),
      snap(answer('127.0.0.1:5353', 2, ['10.0.0.2']), answer('127.0.0.2:5353', 2, ['10.0.0.2'])),
    ]);
    const dns = createDnsActivities({ openZone: () => zone });
    const got = await dns.awaitDnsRecords({ zone: spec, records: [want], timeoutMs: 5000, intervalMs: 100 });
    expect(got.servers.map((s) => s.serial)).toEqual([2, 2]);
    expect(zone.reads).toBe(3);
  });

  it('an equal answer with different serials is not converged', async () => {
    const zone = fakeZone([snap(answer('127.0.0.1:5353', 3, ['10.0.0.2']), answer('127.0.0.3:5353', 2, ['10.0.0.2']))]);
    const err = (await rejectionOf(createDnsActivities({ openZone: () => zone }).awaitDnsRecords({ zone: spec, records: [want], timeoutMs: 250, intervalMs: 100 }))) as ApplicationFailure;
    expect(err.type).toBe('DnsNotConverged');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain('127.0.0.3:5353 serves serial 2, 127.0.0.1:5353 serves 3');
  });

  it('after the timeout: retryable DnsNotConverged naming each lagging server and what it serves', async () => {
    const zone = fakeZone([snap(answer('127.0.0.1:5353', 2, ['10.0.0.2']), answer('127.0.0.2:5353', 1, ['10.0.0.1'], 300))]);
    const err = (await rejectionOf(createDnsActivities({ openZone: () => zone }).awaitDnsRecords({ zone: spec, records: [want], timeoutMs: 250, intervalMs: 100 }))) as ApplicationFailure;
    expect(err.type).toBe('DnsNotConverged');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain('127.0.0.2:5353 answers app.runbooks.test A 10.0.0.1 ttl 300, wanted 10.0.0.2 ttl 60');
    expect(err.message).toContain('127.0.0.2:5353 serves serial 1');
    expect(err.message).not.toContain('127.0.0.1:5353 answers');
    expect(zone.reads).toBeGreaterThanOrEqual(2);
  });

  it('stops at once on a non-retryable failure (a server not authoritative for the zone)', async () => {
    const zone = fakeZone([ApplicationFailure.nonRetryable('authoritative server 127.0.0.9:53 is not authoritative for runbooks.test', 'DnsNotAuthoritative')]);
    const err = (await rejectionOf(createDnsActivities({ openZone: () => zone }).awaitDnsRecords({ zone: spec, records: [want], timeoutMs: 5000, intervalMs: 100 }))) as ApplicationFailure;
    expect(err.type).toBe('DnsNotAuthoritative');
    expect(zone.reads).toBe(1);
  });

  it('refuses bad input before asking anything', async () => {
    const zone = fakeZone([snap()]);
    const dns = createDnsActivities({ openZone: () => zone });
    for (const req of [
      { records: [{ ...want, name: 'app.elsewhere.test' }], timeoutMs: 1000 },
      { records: [{ ...want, type: 'TXT' as never }], timeoutMs: 1000 },
      { records: [{ ...want, values: ['10.0.0.300'] }], timeoutMs: 1000 },
      { records: [want, want], timeoutMs: 1000 },
      { records: [want], timeoutMs: -1 },
      { records: [want], timeoutMs: 1000, intervalMs: 1 },
    ]) {
      const err = (await rejectionOf(dns.awaitDnsRecords({ zone: spec, ...req }))) as ApplicationFailure;
      expect(err.nonRetryable).toBe(true);
    }
    expect(zone.reads).toBe(0);
  });
});

describe('openZone', () => {
  it('picks the provider by type; an unknown type is non-retryable and lists the known ones', async () => {
    expect(openZone(spec).zone).toBe('runbooks.test');
    expect(openZone({ type: 'route53', zone: 'Example.Test.', hostedZoneId: 'Z1', region: 'us-east-1' }).zone).toBe('example.test');
    let err: unknown;
    try {
      openZone({ type: 'cloudflare' } as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).message).toMatch(/rfc2136, route53/);
  });
  it('refuses Route 53 specs a person must fix', () => {
    expect(() => openZone({ type: 'route53', zone: 'example.test', hostedZoneId: 'Z1', region: 'moon' })).toThrow(/not an AWS region/);
    expect(() => openZone({ type: 'route53', zone: 'example.test', hostedZoneId: 'Z1', region: 'us-east-1', accessKeyIdFile: '/x' })).toThrow(/both/);
    expect(() => openZone({ ...spec, nameServers: ['ns.example.test:53'] })).toThrow(/not an address/);
  });
});
