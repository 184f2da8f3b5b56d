// The pure parts of reading a zone's authoritative servers: dig's argv and output, the NS → server
// list, and the one-message update that makes several RRsets exact.
import {
  DnsInputError,
  authoritativeServers,
  digArgv,
  digFailureText,
  nsNamesFromAnswer,
  nsupdateScript,
  parseDigOutput,
  replaceRecordSetsChanges,
  rrsetFromAnswer,
  soaSerialFromAnswer,
} from '../../common/commands/dns';

const NS_OUTPUT = `;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 48381
;; flags: qr aa; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 3

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; ANSWER SECTION:
runbooks.test.		60	IN	NS	ns.runbooks.test.
runbooks.test.		60	IN	NS	NS2.runbooks.test.
`;

const A_OUTPUT = `;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1
;; flags: qr aa; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1

;; ANSWER SECTION:
app.runbooks.test.	300	IN	A	10.0.0.2
app.runbooks.test.	300	IN	A	10.0.0.1
`;

describe('digArgv', () => {
  it('asks the server directly, once, without recursion', () => {
    expect(digArgv('127.0.0.2:5353', 'App.Runbooks.Test.', 'A')).toEqual([
      'dig', '@127.0.0.2', '-p', '5353', '+norecurse', '+time=2', '+tries=1', '+noall', '+comments', '+answer', 'app.runbooks.test.', 'A',
    ]);
    expect(digArgv('[::1]:53', 'runbooks.test', 'SOA', 5)).toContain('@::1');
  });
  it('refuses what could become another option or query', () => {
    expect(() => digArgv('127.0.0.1:5353', '-f /etc/passwd', 'A')).toThrow(DnsInputError);
    expect(() => digArgv('127.0.0.1:5353', 'a.test', 'ANY' as never)).toThrow(DnsInputError);
    expect(() => digArgv('127.0.0.1:99999', 'a.test', 'A')).toThrow(DnsInputError);
    expect(() => digArgv('127.0.0.1', 'a.test', 'A', 0)).toThrow(DnsInputError);
  });
});

describe('parseDigOutput', () => {
  it('reads status, the AA flag and the answer records', () => {
    const a = parseDigOutput(NS_OUTPUT)!;
    expect(a.status).toBe('NOERROR');
    expect(a.authoritative).toBe(true);
    expect(a.records).toEqual([
      { name: 'runbooks.test', ttl: 60, type: 'NS', data: 'ns.runbooks.test.' },
      { name: 'runbooks.test', ttl: 60, type: 'NS', data: 'NS2.runbooks.test.' },
    ]);
    expect(nsNamesFromAnswer(a, 'runbooks.test')).toEqual(['ns.runbooks.test', 'ns2.runbooks.test']);
  });
  it('tells NXDOMAIN, a refusal without AA, and no answer at all', () => {
    const nx = parseDigOutput(';; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 2\n;; flags: qr aa; QUERY: 1, ANSWER: 0\n')!;
    expect(nx).toEqual({ status: 'NXDOMAIN', authoritative: true, records: [] });
    expect(rrsetFromAnswer(nx, 'x.runbooks.test', 'A')).toEqual({ values: [], ttl: 0 });
    expect(parseDigOutput(';; ->>HEADER<<- opcode: QUERY, status: REFUSED, id: 3\n;; flags: qr; QUERY: 1\n')).toMatchObject({ status: 'REFUSED', authoritative: false });
    const none = ';; communications error to 127.0.0.9#5353: connection refused\n;; no servers could be reached\n';
    expect(parseDigOutput(none)).toBeUndefined();
    expect(digFailureText(none, 9)).toBe('communications error to 127.0.0.9#5353: connection refused');
    expect(digFailureText('', 10)).toBe('dig exited with code 10');
  });
  it('gives an RRset its sorted values and served TTL; a CNAME is not an A', () => {
    const a = parseDigOutput(A_OUTPUT)!;
    expect(rrsetFromAnswer(a, 'APP.runbooks.test.', 'A')).toEqual({ values: ['10.0.0.1', '10.0.0.2'], ttl: 300 });
    const cname = parseDigOutput(';; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4\n;; flags: qr aa;\nw.runbooks.test.\t60\tIN\tCNAME\tApp.runbooks.test.\napp.runbooks.test.\t300\tIN\tA\t10.0.0.1\n')!;
    expect(rrsetFromAnswer(cname, 'w.runbooks.test', 'A')).toEqual({ values: [], ttl: 0 });
    expect(rrsetFromAnswer(cname, 'w.runbooks.test', 'CNAME')).toEqual({ values: ['app.runbooks.test'], ttl: 60 });
    const v6 = parseDigOutput(';; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 5\n;; flags: qr aa;\nv.runbooks.test.\t60\tIN\tAAAA\t2001:db8::1\n')!;
    expect(rrsetFromAnswer(v6, 'v.runbooks.test', 'AAAA')).toEqual({ values: ['2001:db8::1'], ttl: 60 });
  });
  it('reads the SOA serial', () => {
    const soa = parseDigOutput(';; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 6\n;; flags: qr aa;\nrunbooks.test.\t60\tIN\tSOA\tns.runbooks.test. hostmaster.runbooks.test. 1795710072 3600 600 86400 60\n')!;
    expect(soaSerialFromAnswer(soa, 'runbooks.test')).toBe(1795710072);
    expect(soaSerialFromAnswer(soa, 'other.test')).toBeUndefined();
  });
});

describe('authoritativeServers', () => {
  it("every NS name's addresses on the primary's port, sorted and distinct", () => {
    expect(authoritativeServers(['ns.runbooks.test', 'ns2.runbooks.test'], { 'ns.runbooks.test': ['127.0.0.1'], 'ns2.runbooks.test': ['127.0.0.2', '::1', '127.0.0.1'] }, 5353)).toEqual([
      '127.0.0.1:5353',
      '127.0.0.2:5353',
      '[::1]:5353',
    ]);
  });
  it('says what to do when a name server has no address or there is none', () => {
    expect(() => authoritativeServers(['ns.runbooks.test', 'ns9.elsewhere.test'], { 'ns.runbooks.test': ['127.0.0.1'] }, 53)).toThrow(/ns9\.elsewhere\.test has no address.*nameServers/);
    expect(() => authoritativeServers([], {}, 53)).toThrow(/no NS records/);
  });
});

describe('replaceRecordSetsChanges', () => {
  it('deletes every RRset first, then adds: one message makes them exact', () => {
    const changes = replaceRecordSetsChanges([
      { name: 'a.runbooks.test', type: 'A', values: [], ttl: 60 },
      { name: 'a.runbooks.test', type: 'CNAME', values: ['b.runbooks.test'], ttl: 60 },
      { name: 'c.runbooks.test', type: 'A', values: ['10.0.0.1', '10.0.0.1', '10.0.0.2'], ttl: 300 },
    ]);
    expect(changes).toEqual([
      { op: 'delete', name: 'a.runbooks.test', type: 'A' },
      { op: 'delete', name: 'a.runbooks.test', type: 'CNAME' },
      { op: 'delete', name: 'c.runbooks.test', type: 'A' },
      { op: 'add', name: 'a.runbooks.test', type: 'CNAME', value: 'b.runbooks.test', ttl: 60 },
      { op: 'add', name: 'c.runbooks.test', type: 'A', value: '10.0.0.1', ttl: 300 },
      { op: 'add', name: 'c.runbooks.test', type: 'A', value: '10.0.0.2', ttl: 300 },
    ]);
    expect(nsupdateScript({ server: '127.0.0.1:5353', zone: 'runbooks.test', changes }).match(/send/g)).toHaveLength(1);
  });
  it('refuses a bad TTL or two CNAMEs', () => {
    expect(() => replaceRecordSetsChanges([{ name: 'a.runbooks.test', type: 'A', values: ['10.0.0.1'], ttl: -1 }])).toThrow(DnsInputError);
    expect(() => replaceRecordSetsChanges([{ name: 'a.runbooks.test', type: 'CNAME', values: ['x.test', 'y.test'], ttl: 60 }])).toThrow(DnsInputError);
  });
});
