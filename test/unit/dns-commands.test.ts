import {
  DnsInputError,
  canonicalIpv6,
  classifyNsupdateFailure,
  joinTxtAnswers,
  nameInZone,
  normalizeDnsName,
  normalizeRecordValue,
  nsupdateArgv,
  nsupdateScript,
  parseDnsServer,
  quoteTxtValue,
  recordsMatch,
  redactTsigSecrets,
  removeRecordChanges,
  replaceRecordSetChanges,
  resolverServerString,
} from '../../common/commands/dns';

const ZONE = 'runbooks.test';
const CHALLENGE = '_acme-challenge.app.runbooks.test';

describe('DNS names', () => {
  it('normalizes case and the final dot', () => {
    expect(normalizeDnsName('_ACME-Challenge.App.Runbooks.Test.')).toBe(CHALLENGE);
    expect(normalizeDnsName('*.wild.runbooks.test')).toBe('*.wild.runbooks.test');
  });
  it.each([
    ['', 'non-empty'],
    ['a..b', 'empty label'],
    ['.', 'empty'],
    ['a b.runbooks.test', 'whitespace'],
    ['x.runbooks.test\nupdate add evil.runbooks.test. 60 A 6.6.6.6', 'control'],
    ['x.runbooks.test\rsend', 'control'],
    ['x\u0000.runbooks.test', 'control'],
    ['x;send.runbooks.test', 'label'],
    ['x"y.runbooks.test', 'label'],
    ['a.*.runbooks.test', 'leftmost'],
    ['*', 'parent'],
    ['é.runbooks.test', 'punycode'],
    [`${'a'.repeat(64)}.runbooks.test`, 'label'],
    [`${'a.'.repeat(127)}test`, 'longer than 253'],
  ])('refuses %j', (name, why) => {
    expect(() => normalizeDnsName(name)).toThrow(DnsInputError);
    expect(() => normalizeDnsName(name)).toThrow(why);
  });
  it('refuses non-strings and wildcards where a plain name is needed', () => {
    expect(() => normalizeDnsName(undefined)).toThrow('non-empty string');
    expect(() => normalizeDnsName('*.runbooks.test', 'zone', false)).toThrow('may not be a wildcard');
  });
  it('keeps names inside the zone', () => {
    expect(nameInZone('App.Runbooks.Test.', ZONE)).toBe('app.runbooks.test');
    expect(nameInZone(ZONE, `${ZONE}.`)).toBe(ZONE);
    expect(() => nameInZone('evil.test', ZONE)).toThrow('not in the zone runbooks.test');
    expect(() => nameInZone('notrunbooks.test', ZONE)).toThrow('not in the zone');
  });
});

describe('record values', () => {
  it('checks addresses and names', () => {
    expect(normalizeRecordValue('A', '127.0.0.1')).toBe('127.0.0.1');
    expect(() => normalizeRecordValue('A', '127.0.0.256')).toThrow('not an IPv4 address');
    expect(() => normalizeRecordValue('A', '127.0.0.1\nsend')).toThrow('not an IPv4 address');
    expect(normalizeRecordValue('AAAA', '2001:0DB8:0:0::1')).toBe('2001:db8::1');
    expect(() => normalizeRecordValue('AAAA', 'fe80::1%eth0')).toThrow('not an IPv6 address');
    expect(() => normalizeRecordValue('AAAA', '127.0.0.1')).toThrow('not an IPv6 address');
    expect(normalizeRecordValue('CNAME', 'LB.Example.COM.')).toBe('lb.example.com');
    expect(() => normalizeRecordValue('CNAME', '*.example.com')).toThrow('wildcard');
    expect(canonicalIpv6('::ffff:1.2.3.4')).toBe('::ffff:102:304');
    expect(canonicalIpv6('nope')).toBeUndefined();
  });
  it('refuses control characters in TXT values, whatever their position', () => {
    for (const v of ['a\nsend', 'a\r', '\u0000', 'tab\there', 'del\u007f', 'c1\u0085']) {
      expect(() => normalizeRecordValue('TXT', v)).toThrow('control characters');
      expect(() => quoteTxtValue(v)).toThrow(DnsInputError);
    }
    expect(() => normalizeRecordValue('TXT', 'x'.repeat(4001))).toThrow('longer than 4000 bytes');
  });
  it('quotes TXT values: quotes and backslashes escaped, UTF-8 as \\DDD, 255-byte strings', () => {
    expect(quoteTxtValue('Zk9x-abc_123')).toBe('"Zk9x-abc_123"');
    expect(quoteTxtValue('')).toBe('""');
    expect(quoteTxtValue('say "hi"; \\o/ $ORIGIN (x)')).toBe('"say \\"hi\\"; \\\\o/ $ORIGIN (x)"');
    expect(quoteTxtValue('café')).toBe('"caf\\195\\169"');
    const long = quoteTxtValue('a'.repeat(300));
    expect(long).toBe(`"${'a'.repeat(255)}" "${'a'.repeat(45)}"`);
    expect(quoteTxtValue('b'.repeat(255))).toBe(`"${'b'.repeat(255)}"`);
  });
});

describe('nsupdate scripts', () => {
  it('replaces a TXT set in one message', () => {
    const script = nsupdateScript({
      server: '127.0.0.1:5353',
      zone: 'runbooks.test.',
      changes: replaceRecordSetChanges('_ACME-challenge.wild.runbooks.test', 'TXT', ['v1', 'v2', 'v1'], 60),
    });
    expect(script).toBe(
      [
        'server 127.0.0.1 5353',
        'zone runbooks.test.',
        'update delete _acme-challenge.wild.runbooks.test. IN TXT',
        'update add _acme-challenge.wild.runbooks.test. 60 IN TXT "v1"',
        'update add _acme-challenge.wild.runbooks.test. 60 IN TXT "v2"',
        'send',
        '',
      ].join('\n'),
    );
  });
  it('adds and deletes A, AAAA and CNAME records', () => {
    const script = nsupdateScript({
      server: '[::1]:53',
      zone: ZONE,
      changes: [
        ...replaceRecordSetChanges('app.runbooks.test', 'A', ['10.0.0.1', '10.0.0.2'], 300),
        ...replaceRecordSetChanges('www.runbooks.test', 'CNAME', ['app.runbooks.test'], 60),
        ...removeRecordChanges('old.runbooks.test', 'AAAA', '2001:db8::0:1'),
        ...removeRecordChanges('_acme-challenge.app.runbooks.test', 'TXT'),
        { op: 'add', name: '*.wild.runbooks.test', type: 'A', value: '127.0.0.1', ttl: 0 },
      ],
    });
    expect(script.split('\n')).toEqual([
      'server ::1 53',
      'zone runbooks.test.',
      'update delete app.runbooks.test. IN A',
      'update add app.runbooks.test. 300 IN A 10.0.0.1',
      'update add app.runbooks.test. 300 IN A 10.0.0.2',
      'update delete www.runbooks.test. IN CNAME',
      'update add www.runbooks.test. 60 IN CNAME app.runbooks.test.',
      'update delete old.runbooks.test. IN AAAA 2001:db8::1',
      'update delete _acme-challenge.app.runbooks.test. IN TXT',
      'update add *.wild.runbooks.test. 0 IN A 127.0.0.1',
      'send',
      '',
    ]);
  });
  it('an empty value list deletes the set; one CNAME at most', () => {
    expect(replaceRecordSetChanges(CHALLENGE, 'TXT', [], 60)).toEqual([{ op: 'delete', name: CHALLENGE, type: 'TXT' }]);
    expect(() => replaceRecordSetChanges('www.runbooks.test', 'CNAME', ['a.test', 'b.test'], 60)).toThrow('at most one CNAME');
  });
  it('never lets a name, value, server, TTL or type start another command', () => {
    const inject = '\nupdate add evil.runbooks.test. 60 A 6.6.6.6\nsend';
    const cases: Array<() => unknown> = [
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'add', name: `x.runbooks.test${inject}`, type: 'TXT', value: 'v', ttl: 60 }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'add', name: CHALLENGE, type: 'TXT', value: `v"${inject}`, ttl: 60 }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'delete', name: CHALLENGE, type: 'TXT', value: `v${inject}` }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'add', name: 'app.runbooks.test', type: 'CNAME', value: `x.test.${inject}`, ttl: 60 }] }),
      () => nsupdateScript({ server: `127.0.0.1:5353${inject}`, zone: ZONE, changes: [{ op: 'delete', name: CHALLENGE, type: 'TXT' }] }),
      () => nsupdateScript({ server: `ns.example${inject}`, zone: ZONE, changes: [{ op: 'delete', name: CHALLENGE, type: 'TXT' }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: `${ZONE}${inject}`, changes: [{ op: 'delete', name: CHALLENGE, type: 'TXT' }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'add', name: CHALLENGE, type: 'TXT', value: 'v', ttl: '60\nsend' as unknown as number }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'add', name: CHALLENGE, type: 'TXT\nsend' as 'TXT', value: 'v', ttl: 60 }] }),
      () => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'prereq' as 'add', name: CHALLENGE, type: 'TXT', value: 'v', ttl: 60 }] }),
    ];
    for (const c of cases) expect(c).toThrow(DnsInputError);
  });
  it('refuses names outside the zone, bad TTLs and empty updates', () => {
    const one = (name: string, ttl = 60) => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [{ op: 'add', name, type: 'A', value: '127.0.0.1', ttl }] });
    expect(() => one('example.com')).toThrow('not in the zone');
    expect(() => one('app.runbooks.test', -1)).toThrow('TTL');
    expect(() => one('app.runbooks.test', 1.5)).toThrow('TTL');
    expect(() => one('app.runbooks.test', 2 ** 31)).toThrow('TTL');
    expect(() => nsupdateScript({ server: '127.0.0.1:5353', zone: ZONE, changes: [] })).toThrow('at least one change');
  });
});

describe('servers and argv', () => {
  it('parses server addresses', () => {
    expect(parseDnsServer('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseDnsServer('127.0.0.1')).toEqual({ host: '127.0.0.1', port: 53 });
    expect(parseDnsServer('[::1]:5353')).toEqual({ host: '::1', port: 5353 });
    expect(parseDnsServer('::1')).toEqual({ host: '::1', port: 53 });
    expect(parseDnsServer('NS1.Example.com:53')).toEqual({ host: 'ns1.example.com', port: 53 });
    expect(resolverServerString({ host: '127.0.0.1', port: 5353 })).toBe('127.0.0.1:5353');
    expect(resolverServerString({ host: '::1', port: 53 })).toBe('[::1]:53');
    for (const bad of ['', '127.0.0.1:0', '127.0.0.1:70000', '127.0.0.1:x', 'a b:53']) expect(() => parseDnsServer(bad)).toThrow(DnsInputError);
  });
  it('passes the key as a path, over TCP, with a timeout', () => {
    expect(nsupdateArgv('/var/lib/temporal-runbooks/bind9/tsig.key')).toEqual(['nsupdate', '-v', '-t', '10', '-k', '/var/lib/temporal-runbooks/bind9/tsig.key']);
    expect(nsupdateArgv('/k', { timeoutSeconds: 3 })).toEqual(['nsupdate', '-v', '-t', '3', '-k', '/k']);
    expect(() => nsupdateArgv('relative.key')).toThrow('absolute path');
    expect(() => nsupdateArgv('/k\n')).toThrow('absolute path');
    expect(() => nsupdateArgv('/k', { timeoutSeconds: 0 })).toThrow('timeout');
  });
});

describe('nsupdate output', () => {
  it('tells refusals, key problems, unreachable servers and failures apart', () => {
    expect(classifyNsupdateFailure('; TSIG error with server: tsig indicates error\nupdate failed: NOTAUTH(BADSIG)')).toEqual({ kind: 'refused', rcode: 'NOTAUTH(BADSIG)' });
    expect(classifyNsupdateFailure('update failed: NOTAUTH(BADKEY)')).toEqual({ kind: 'refused', rcode: 'NOTAUTH(BADKEY)' });
    expect(classifyNsupdateFailure('update failed: REFUSED')).toEqual({ kind: 'refused', rcode: 'REFUSED' });
    expect(classifyNsupdateFailure('update failed: NOTAUTH')).toEqual({ kind: 'refused', rcode: 'NOTAUTH' });
    expect(classifyNsupdateFailure('update failed: SERVFAIL')).toEqual({ kind: 'failed', rcode: 'SERVFAIL' });
    expect(classifyNsupdateFailure("/k:1: unknown option 'x'\ncould not read key from /k.{private,key}: unexpected token")).toEqual({ kind: 'badKey' });
    expect(classifyNsupdateFailure('; Communication with 127.0.0.1#5354 failed: operation canceled')).toEqual({ kind: 'unreachable' });
    expect(classifyNsupdateFailure("couldn't get address for 'nowhere.invalid': not found")).toEqual({ kind: 'unreachable' });
    expect(classifyNsupdateFailure('something else')).toEqual({ kind: 'failed' });
  });
  it('redacts the key file secrets from output', () => {
    const secret = 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==';
    const keyFile = `key "runbook-acme" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`;
    const out = redactTsigSecrets(`/k:3: unexpected token near '${secret}'\nsecret "other-thing";`, keyFile);
    expect(out).not.toContain(secret);
    expect(out).not.toContain('other-thing');
    expect(out).toContain('[redacted]');
    expect(redactTsigSecrets('update failed: REFUSED', undefined)).toBe('update failed: REFUSED');
  });
});

describe('answers', () => {
  it('joins TXT character-strings and compares answers', () => {
    expect(joinTxtAnswers([['a'.repeat(255), 'b'], ['v2']])).toEqual([`${'a'.repeat(255)}b`, 'v2']);
    // node gives TXT bytes as latin1 characters; UTF-8 split across two strings comes back whole
    expect(joinTxtAnswers([['caf\u00c3', '\u00a9']])).toEqual(['café']);
    expect(recordsMatch('TXT', ['v1', 'v2'], ['v1'], 'includes')).toBe(true);
    expect(recordsMatch('TXT', ['v1', 'v2'], ['v1'], 'exact')).toBe(false);
    expect(recordsMatch('TXT', ['V1'], ['v1'], 'includes')).toBe(false);
    expect(recordsMatch('TXT', [], [], 'exact')).toBe(true);
    expect(recordsMatch('A', ['10.0.0.1'], [], 'exact')).toBe(false);
    expect(recordsMatch('CNAME', ['App.Runbooks.Test'], ['app.runbooks.test.'], 'exact')).toBe(true);
    expect(recordsMatch('AAAA', ['2001:db8::1'], ['2001:0db8:0::1'], 'exact')).toBe(true);
  });
});
