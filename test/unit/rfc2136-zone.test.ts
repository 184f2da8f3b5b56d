// The RFC 2136 zone's adapter logic with a fake command runner (no dig, no nsupdate): the servers
// from NS, the reading of each, dig failures classified, and apply sending one update or nothing.
import { ApplicationFailure } from '@temporalio/common';
import type { CommandResult } from '../../activities/dns/rfc2136';
import { Rfc2136Zone } from '../../activities/dns/rfc2136-zone';
import { rejectionOf } from '../helpers/rejection';

const ok = (stdout: string): CommandResult => ({ code: 0, signal: null, stdout, stderr: '', timedOut: false });
const header = (status = 'NOERROR', flags = 'qr aa') => `;; ->>HEADER<<- opcode: QUERY, status: ${status}, id: 1\n;; flags: ${flags}; QUERY: 1\n`;
const SOA = (serial: number) => `runbooks.test.\t60\tIN\tSOA\tns.runbooks.test. hostmaster.runbooks.test. ${serial} 3600 600 86400 60\n`;

interface Call {
  argv: readonly string[];
  stdin: string;
}

/** Answers dig by (server, name, type) from `zones`; records nsupdate calls. */
function fakeRunner(answers: Record<string, string | CommandResult>, calls: Call[]) {
  return async (argv: readonly string[], stdin: string): Promise<CommandResult> => {
    calls.push({ argv, stdin });
    if (argv[0] === 'nsupdate') return ok('');
    const key = `${argv[1].slice(1)} ${argv.at(-2)} ${argv.at(-1)}`;
    const a = answers[key] ?? header('NXDOMAIN');
    return typeof a === 'string' ? ok(a) : a;
  };
}

// keyFile: any readable file (the provider reads it only to redact nsupdate's output; the fake ignores it)
const spec = { type: 'rfc2136' as const, zone: 'runbooks.test', server: '127.0.0.1:5353', keyFile: __filename };

const TWO_SERVERS = {
  '127.0.0.1 runbooks.test. NS': `${header()}runbooks.test.\t60\tIN\tNS\tns.runbooks.test.\nrunbooks.test.\t60\tIN\tNS\tns2.runbooks.test.\n`,
  '127.0.0.1 ns.runbooks.test. A': `${header()}ns.runbooks.test.\t60\tIN\tA\t127.0.0.1\n`,
  '127.0.0.1 ns2.runbooks.test. A': `${header()}ns2.runbooks.test.\t60\tIN\tA\t127.0.0.2\n`,
  '127.0.0.1 runbooks.test. SOA': header() + SOA(7),
  '127.0.0.2 runbooks.test. SOA': header() + SOA(6),
  '127.0.0.1 app.runbooks.test. A': `${header()}app.runbooks.test.\t60\tIN\tA\t10.0.0.2\n`,
  '127.0.0.2 app.runbooks.test. A': `${header()}app.runbooks.test.\t300\tIN\tA\t10.0.0.1\n`,
};

describe('Rfc2136Zone', () => {
  it('finds the servers from NS at the primary and reads each', async () => {
    const calls: Call[] = [];
    const zone = new Rfc2136Zone(spec, { run: fakeRunner(TWO_SERVERS, calls), lookupAll: async () => [] });
    const snap = await zone.readAuthoritative([{ name: 'App.runbooks.test.', type: 'A' }]);
    expect(snap).toEqual({
      zone: 'runbooks.test',
      servers: [
        { server: '127.0.0.1:5353', serial: 7, records: [{ name: 'app.runbooks.test', type: 'A', values: ['10.0.0.2'], ttl: 60 }] },
        { server: '127.0.0.2:5353', serial: 6, records: [{ name: 'app.runbooks.test', type: 'A', values: ['10.0.0.1'], ttl: 300 }] },
      ],
    });
    // every query without recursion, at the server itself
    for (const c of calls) expect(c.argv).toContain('+norecurse');
  });

  it('resolves an NS name outside the zone with the system resolver', async () => {
    const answers = { ...TWO_SERVERS, '127.0.0.1 runbooks.test. NS': `${header()}runbooks.test.\t60\tIN\tNS\tns.elsewhere.test.\n` };
    const zone = new Rfc2136Zone(spec, { run: fakeRunner(answers, []), lookupAll: async (h) => (h === 'ns.elsewhere.test' ? ['127.0.0.2'] : []) });
    expect(await zone.servers()).toEqual(['127.0.0.2:5353']);
  });

  it('classifies what dig gets: no answer retryable, REFUSED or no AA not, SERVFAIL retryable', async () => {
    const cases: [string | CommandResult, boolean, RegExp][] = [
      [{ code: 9, signal: null, stdout: ';; communications error to 127.0.0.2#5353: timed out\n;; no servers could be reached\n', stderr: '', timedOut: false }, false, /127\.0\.0\.2:5353.*did not answer: communications error/],
      [header('REFUSED', 'qr'), true, /not authoritative for runbooks\.test \(REFUSED/],
      [header('NOERROR', 'qr') + SOA(6), true, /no AA flag/],
      [header('SERVFAIL'), false, /127\.0\.0\.2:5353.*SERVFAIL/],
    ];
    for (const [out, nonRetryable, message] of cases) {
      const zone = new Rfc2136Zone({ ...spec, nameServers: ['127.0.0.2:5353'] }, { run: fakeRunner({ '127.0.0.2 runbooks.test. SOA': out }, []) });
      const err = (await rejectionOf(zone.readAuthoritative([{ name: 'app.runbooks.test', type: 'A' }]))) as ApplicationFailure;
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err.nonRetryable).toBe(nonRetryable);
      expect(err.message).toMatch(message);
    }
  });

  it('apply: nothing sent when the primary serves exactly that; else one update message', async () => {
    const calls: Call[] = [];
    const zone = new Rfc2136Zone(spec, { run: fakeRunner(TWO_SERVERS, calls) });
    expect(await zone.apply([{ name: 'app.runbooks.test', type: 'A', values: ['10.0.0.2'], ttl: 60 }])).toEqual({ changed: false });
    expect(calls.filter((c) => c.argv[0] === 'nsupdate')).toHaveLength(0);
    expect(await zone.apply([{ name: 'app.runbooks.test', type: 'A', values: ['10.0.0.2'], ttl: 30 }, { name: 'www.runbooks.test', type: 'CNAME', values: ['app.runbooks.test'], ttl: 30 }])).toEqual({
      changed: true,
    });
    const updates = calls.filter((c) => c.argv[0] === 'nsupdate');
    expect(updates).toHaveLength(1);
    expect(updates[0].stdin).toBe(
      [
        'server 127.0.0.1 5353',
        'zone runbooks.test.',
        'update delete app.runbooks.test. IN A',
        'update delete www.runbooks.test. IN CNAME',
        'update add app.runbooks.test. 30 IN A 10.0.0.2',
        'update add www.runbooks.test. 30 IN CNAME app.runbooks.test.',
        'send',
        '',
      ].join('\n'),
    );
  });
});
