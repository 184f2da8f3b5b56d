import {
  acmeFailureKind,
  certificateRequestArgv,
  challengeTypeFor,
  coversNames,
  describeCertificate,
  dnsChallengeRecordName,
  httpChallengeFilePath,
  nameCovers,
  parseRetryAfter,
  parseSubjectAltNames,
  renewalDue,
  selfSignedCertificateArgv,
  splitPemChain,
  uncoveredNames,
  validateDomains,
} from '../../common/certificates';

// A leaf for app.runbooks.test and *.api.runbooks.test (plus an IP SAN, which `names` leaves out)
// followed by its CA, made with openssl; expected values as `openssl x509 -noout -serial -startdate
// -enddate -fingerprint -sha256` printed them (the serial's DER sign byte 00 is not part of it).
const CHAIN = `
-----BEGIN CERTIFICATE-----
MIIB5jCCAYygAwIBAgIJAPHi08S1ppeIMAoGCCqGSM49BAMCMDMxFjAUBgNVBAoM
DVJ1bmJvb2tzIFRlc3QxGTAXBgNVBAMMEFJ1bmJvb2tzIFRlc3QgQ0EwHhcNMjYx
MTIyMDMyMTI2WhcNMjcwMjIwMDMyMTI2WjAcMRowGAYDVQQDDBFhcHAucnVuYm9v
a3MudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCc57+tXAb87RnGnEfxS
6q8Qvi6IMDim4U5v0rwVdsyWo+Go6IfDlt5W6PoCXzNe6e7OI5pkoZIwEuRoIIbo
pSSjgZ8wgZwwNwYDVR0RBDAwLoIRYXBwLnJ1bmJvb2tzLnRlc3SCEyouYXBpLnJ1
bmJvb2tzLnRlc3SHBH8AAAEwDAYDVR0TAQH/BAIwADATBgNVHSUEDDAKBggrBgEF
BQcDATAdBgNVHQ4EFgQUmhDcCyzc0WEsxIbyaMAa9NFdL4MwHwYDVR0jBBgwFoAU
D6ZwOOk+cRsHXVDqpO5Tw+kk7JowCgYIKoZIzj0EAwIDSAAwRQIhAKGMq7wzfSYq
gmBzqj09Wk3hTDamMBdEE1IVDznlXvsVAiA2K+fhgRKWvqFpQ1HWLw57u7MVmGQR
AKrijm9RvY5iUg==
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
MIIBvDCCAWGgAwIBAgIUD2whUdwW4Rb41rygZfuH2/Yi+8EwCgYIKoZIzj0EAwIw
MzEWMBQGA1UECgwNUnVuYm9va3MgVGVzdDEZMBcGA1UEAwwQUnVuYm9va3MgVGVz
dCBDQTAeFw0yNjExMjIwMzIxMjVaFw0zNjExMTkwMzIxMjVaMDMxFjAUBgNVBAoM
DVJ1bmJvb2tzIFRlc3QxGTAXBgNVBAMMEFJ1bmJvb2tzIFRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAASCazOFi9UadMvuwNiZ+zPA9lxGfsGG0OXwEYru
7UJiE4bSyWCDohlAVoYpNFInQYx8NU9ybq2ML2Kb3/wCmQlgo1MwUTAdBgNVHQ4E
FgQUD6ZwOOk+cRsHXVDqpO5Tw+kk7JowHwYDVR0jBBgwFoAUD6ZwOOk+cRsHXVDq
pO5Tw+kk7JowDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA1JN4
q7hJsi2C8GUHngi2Xzs2tb14GCpYqZgG0DHeRaUCIQCp0h7DxYGyMlxN9fGLINY7
rDKrJ/l0/yDPBXjLx0oJ8w==
-----END CERTIFICATE-----
`;

describe('describeCertificate', () => {
  it('reads the leaf of a chain: serial, CN, DNS names, validity, issuer, fingerprint', () => {
    expect(splitPemChain(CHAIN)).toHaveLength(2);
    expect(describeCertificate(CHAIN)).toEqual({
      serial: 'F1E2D3C4B5A69788',
      commonName: 'app.runbooks.test',
      names: ['app.runbooks.test', '*.api.runbooks.test'],
      notBefore: '2026-11-22T03:21:26.000Z',
      notAfter: '2027-02-20T03:21:26.000Z',
      issuer: 'O=Runbooks Test, CN=Runbooks Test CA',
      issuerCommonName: 'Runbooks Test CA',
      fingerprint256: '44:69:7E:AD:07:64:E4:6A:CF:82:FD:43:06:5F:92:5B:FC:82:21:5C:24:2A:B8:4D:12:55:E4:2E:5C:DF:96:7E',
    });
  });

  it('reads the CA alone (no SAN) and refuses text without a certificate', () => {
    const ca = describeCertificate(splitPemChain(CHAIN)[1]);
    expect(ca.commonName).toBe('Runbooks Test CA');
    expect(ca.names).toEqual([]);
    expect(() => describeCertificate('not a certificate')).toThrow('no PEM certificate found');
  });

  it('parses node subjectAltName strings, quoted entries included', () => {
    expect(parseSubjectAltNames('DNS:a.example, IP Address:10.0.0.1, DNS:*.b.example, email:x@y.z')).toEqual(['a.example', '*.b.example']);
    expect(parseSubjectAltNames('DNS:"we,ird.example", DNS:c.example')).toEqual(['we,ird.example', 'c.example']);
    expect(parseSubjectAltNames(undefined)).toEqual([]);
  });
});

describe('coversNames', () => {
  it('matches exact names case-insensitively, ignoring a trailing dot', () => {
    expect(coversNames(['App.Example.COM'], ['app.example.com.'])).toBe(true);
    expect(coversNames(['app.example.com'], ['www.example.com'])).toBe(false);
  });

  it('a wildcard covers exactly one more label', () => {
    expect(nameCovers('*.example.com', 'a.example.com')).toBe(true);
    expect(nameCovers('*.EXAMPLE.com', 'B.example.COM')).toBe(true);
    expect(nameCovers('*.example.com', 'example.com')).toBe(false);
    expect(nameCovers('*.example.com', 'a.b.example.com')).toBe(false);
    expect(nameCovers('*.example.com', '.example.com')).toBe(false);
    expect(nameCovers('*.example.com', 'a.example.org')).toBe(false);
  });

  it('a wanted wildcard needs the same wildcard; every wanted name must be covered', () => {
    expect(nameCovers('a.example.com', '*.example.com')).toBe(false);
    expect(nameCovers('*.example.com', '*.example.com')).toBe(true);
    expect(nameCovers('*.a.example.com', '*.example.com')).toBe(false);
    expect(coversNames(['example.com', '*.example.com'], ['example.com', 'www.example.com', 'api.example.com'])).toBe(true);
    expect(uncoveredNames(['*.example.com'], ['example.com', 'www.example.com', 'x.www.example.com'])).toEqual(['example.com', 'x.www.example.com']);
    expect(coversNames([], [])).toBe(true);
  });
});

describe('renewalDue', () => {
  const DAY = 86_400_000;
  const start = Date.parse('2027-01-01T00:00:00Z');
  const at = (days: number) => new Date(start + days * DAY);

  it('renews a 90-day certificate when 30 days are left (⅓ of its lifetime)', () => {
    const cert = { notBefore: at(0).toISOString(), notAfter: at(90).toISOString() };
    expect(renewalDue(cert, at(59))).toEqual({ due: false, renewAt: at(60).toISOString(), remainingFraction: 31 / 90 });
    expect(renewalDue(cert, at(60))).toMatchObject({ due: true, remainingFraction: 1 / 3 });
    expect(renewalDue(cert, new Date(at(60).getTime() - 1)).due).toBe(false);
    expect(renewalDue(cert, at(0)).remainingFraction).toBe(1);
  });

  it('scales with the lifetime: 45-day and 6-day certificates, and a custom fraction', () => {
    expect(renewalDue({ notBefore: at(0), notAfter: at(45) }, at(29)).due).toBe(false);
    expect(renewalDue({ notBefore: at(0), notAfter: at(45) }, at(30))).toMatchObject({ due: true, renewAt: at(30).toISOString() });
    expect(renewalDue({ notBefore: at(0), notAfter: at(6) }, at(4))).toMatchObject({ due: true, renewAt: at(4).toISOString() });
    // certbot's rule for a 90-day certificate is ⅓ too; a 50 % policy renews at day 45
    expect(renewalDue({ notBefore: at(0), notAfter: at(90) }, at(45), 0.5)).toMatchObject({ due: true, renewAt: at(45).toISOString() });
  });

  it("keeps due ⇔ now ≥ renewAt when ⅓ of the lifetime is not a whole millisecond (Let's Encrypt: 90 days − 1 s)", () => {
    const cert = { notBefore: at(0), notAfter: new Date(at(90).getTime() - 1000) };
    const { renewAt } = renewalDue(cert, at(0));
    const t = Date.parse(renewAt);
    expect(t).toBe(Math.ceil(at(90).getTime() - 1000 - (90 * DAY - 1000) / 3));
    expect(renewalDue(cert, t).due).toBe(true);
    expect(renewalDue(cert, t - 1).due).toBe(false);
  });

  it('an expired or zero-lifetime certificate is due; a bad fraction or date throws', () => {
    expect(renewalDue({ notBefore: at(0), notAfter: at(90) }, at(100))).toMatchObject({ due: true, remainingFraction: 0 });
    expect(renewalDue({ notBefore: at(5), notAfter: at(5) }, at(0))).toMatchObject({ due: true, remainingFraction: 0 });
    expect(() => renewalDue({ notBefore: at(0), notAfter: at(90) }, at(1), 1)).toThrow('between 0 and 1');
    expect(() => renewalDue({ notBefore: 'soon', notAfter: at(90) }, at(1))).toThrow('invalid date');
  });

  it('works on describeCertificate output', () => {
    const cert = describeCertificate(CHAIN);
    expect(renewalDue(cert, '2027-01-20T00:00:00Z')).toMatchObject({ due: false, renewAt: '2027-01-21T03:21:26.000Z' });
    expect(renewalDue(cert, '2027-01-21T03:21:26Z').due).toBe(true);
  });
});

describe('validateDomains', () => {
  it('accepts LDH names, punycode and a leading wildcard', () => {
    expect(validateDomains(['example.com', 'www.example.com', '*.api.example.com', 'xn--bcher-kva.example', 'a-1.b2.example'])).toEqual([]);
  });

  it('reports each problem with the name', () => {
    expect(validateDomains([])).toEqual(['no names: a certificate needs at least one']);
    expect(
      validateDomains([
        'bücher.example',
        '127.0.0.1',
        '::1',
        'a..example.com',
        '-a.example.com',
        'a_b.example.com',
        'ab--c.example.com',
        'a.*.example.com',
        '*a.example.com',
        '*.com',
        'localhost',
        'example.com.',
        ' example.com',
        'host.123',
        `${'a'.repeat(64)}.example.com`,
        `${'abcdefghi.'.repeat(25)}example.com`,
      ]),
    ).toEqual([
      '"bücher.example": is not ASCII: use the IDNA A-label form (xn--…)',
      '"127.0.0.1": is an IP address: only DNS names are supported',
      '"::1": is an IP address: only DNS names are supported',
      '"a..example.com": has an empty label',
      '"-a.example.com": label "-a" must not start or end with a hyphen',
      '"a_b.example.com": label "a_b" may hold only letters, digits and hyphens',
      '"ab--c.example.com": label "ab--c" has the reserved form "??--" (only xn-- is allowed)',
      '"a.*.example.com": may hold a wildcard only as the whole leftmost label (*.example.com)',
      '"*a.example.com": may hold a wildcard only as the whole leftmost label (*.example.com)',
      '"*.com": is a wildcard over a top-level domain',
      '"localhost": is not a fully qualified name (it has one label)',
      '"example.com.": must not end with a dot',
      '" example.com": has surrounding whitespace',
      '"host.123": has an all-numeric top-level label',
      `"${'a'.repeat(64)}.example.com": has a label longer than 63 characters (aaaaaaaaaaaaaaaaaaaa…)`,
      `"${'abcdefghi.'.repeat(25)}example.com": is longer than 253 characters`,
    ]);
  });

  it('refuses duplicates (case-insensitive) and names a wildcard in the list already covers', () => {
    expect(validateDomains(['example.com', 'EXAMPLE.com', '*.example.com', 'www.example.com', 'a.b.example.com'])).toEqual([
      '"EXAMPLE.com": is listed twice',
      '"www.example.com": is already covered by "*.example.com" (drop one of them)',
    ]);
  });

  it('limits a certificate to 100 names', () => {
    const names = Array.from({ length: 101 }, (_, i) => `n${i}.example.com`);
    expect(validateDomains(names)).toEqual(['101 names: at most 100 in one certificate']);
  });
});

describe('challenges', () => {
  it('uses the preferred type, except dns-01 for a wildcard', () => {
    expect(challengeTypeFor('example.com')).toEqual({ type: 'http-01' });
    expect(challengeTypeFor('example.com', 'dns-01')).toEqual({ type: 'dns-01' });
    expect(challengeTypeFor('*.example.com', 'http-01')).toEqual({ type: 'dns-01', reason: '*.example.com is a wildcard: only dns-01 can validate it' });
    expect(challengeTypeFor('*.example.com', 'dns-01')).toEqual({ type: 'dns-01' });
  });

  it('names the TXT record and the token file', () => {
    expect(dnsChallengeRecordName('*.Example.com')).toBe('_acme-challenge.example.com');
    expect(dnsChallengeRecordName('www.example.com')).toBe('_acme-challenge.www.example.com');
    expect(httpChallengeFilePath('/var/www/acme/', 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0')).toBe('/var/www/acme/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0');
    expect(() => httpChallengeFilePath('/var/www/acme', '../../etc/nginx/conf.d/x')).toThrow('not base64url');
  });
});

describe('acmeFailureKind', () => {
  const NOW = new Date('2027-01-01T00:00:00Z');
  // What acme-client 5.4 throws for an ACME problem answer: `new Error(problem.detail)`, nothing else.
  const thrown = (detail: string) => new Error(detail);
  // What it throws when a request got no answer (refused, reset, timed out): its axios interceptor
  // reads `response.config` of an undefined response.
  const noAnswer = () => {
    try {
      const response = undefined as unknown as { config: unknown };
      return response.config;
    } catch (e) {
      return e as Error;
    }
  };

  it("recognises acme-client's own no-answer TypeError as transient", () => {
    const err = noAnswer();
    expect(err).toBeInstanceOf(TypeError);
    expect(err).toHaveProperty('message', "Cannot read properties of undefined (reading 'config')");
    expect(acmeFailureKind(err, NOW)).toEqual({ kind: 'transient', message: 'no answer from the ACME server (connection refused, reset or timed out)' });
  });

  it("classifies acme-client's plain errors by the CA's detail", () => {
    const le = thrown(
      'too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2027-01-03 04:05:06 UTC: see https://letsencrypt.org/docs/rate-limits/#new-certificates-per-exact-set-of-hostnames',
    );
    expect(acmeFailureKind(le, NOW)).toEqual({
      kind: 'rate-limited',
      retryAfter: new Date('2027-01-03T04:05:06Z'),
      message: expect.stringMatching(/^rate limited by the CA, retry after 2027-01-03T04:05:06\.000Z: too many certificates \(5\)/),
    });
    expect(acmeFailureKind(thrown('Error creating new order :: too many failed authorizations recently: see https://letsencrypt.org/docs/failed-validation-limit/'), NOW).kind).toBe('rate-limited');
    expect(acmeFailureKind(thrown('Error creating new order :: Cannot issue for "x.invalid": Domain name does not end with a valid public suffix (TLD)'), NOW).kind).toBe('bad-request');
    expect(acmeFailureKind(thrown('CAA record for example.com prevents issuance'), NOW).kind).toBe('bad-request');
    expect(acmeFailureKind(thrown('Invalid response from http://app.example.com/.well-known/acme-challenge/abc: 404'), NOW).kind).toBe('bad-request');
    expect(acmeFailureKind(thrown('Attempting to read ACME directory returned error 404: https://ca.test/dir'), NOW).kind).toBe('bad-request');
    expect(acmeFailureKind(thrown('Attempting to read ACME directory returned error 503: https://ca.test/dir'), NOW).kind).toBe('transient');
    expect(acmeFailureKind(thrown('JWS has an invalid anti-replay nonce: "abc"'), NOW).kind).toBe('transient');
    expect(acmeFailureKind(thrown('Operation is pending or processing'), NOW).kind).toBe('transient');
    expect(acmeFailureKind(thrown('Failed to get nonce from ACME provider'), NOW).kind).toBe('transient');
    expect(acmeFailureKind(thrown('something nobody anticipated'), NOW)).toEqual({ kind: 'transient', message: 'something nobody anticipated' });
  });

  it("uses an adapter's capture (problem type, status, Retry-After) when there is one", () => {
    const rate = Object.assign(thrown('too many new orders recently'), {
      acme: { status: 429, retryAfter: '3600', problem: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many new orders recently', status: 429 } },
    });
    expect(acmeFailureKind(rate, NOW)).toEqual({
      kind: 'rate-limited',
      retryAfter: new Date('2027-01-01T01:00:00Z'),
      problemType: 'rateLimited',
      message: 'rate limited by the CA, retry after 2027-01-01T01:00:00.000Z: too many new orders recently',
    });
    const httpDate = Object.assign(thrown('slow down'), { acme: { status: 429, retryAfter: 'Sat, 02 Jan 2027 00:00:00 GMT' } });
    expect(acmeFailureKind(httpDate, NOW)).toMatchObject({ kind: 'rate-limited', retryAfter: new Date('2027-01-02T00:00:00Z') });
    for (const type of ['malformed', 'rejectedIdentifier', 'unauthorized', 'caa', 'invalidContact', 'badCSR', 'incorrectResponse', 'connection', 'dns']) {
      expect(acmeFailureKind({ acme: { status: 400, problem: { type: `urn:ietf:params:acme:error:${type}`, detail: 'x' } } }, NOW)).toMatchObject({ kind: 'bad-request', problemType: type });
    }
    for (const type of ['serverInternal', 'badNonce']) {
      expect(acmeFailureKind({ acme: { status: type === 'badNonce' ? 400 : 500, problem: { type: `urn:ietf:params:acme:error:${type}`, detail: 'x' } } }, NOW).kind).toBe('transient');
    }
    expect(acmeFailureKind({ acme: { status: 502 } }, NOW).kind).toBe('transient');
    expect(acmeFailureKind({ acme: { status: 403 } }, NOW).kind).toBe('bad-request');
    expect(acmeFailureKind({ acme: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:14000' } }, NOW)).toMatchObject({ kind: 'transient', message: expect.stringMatching(/^no answer from the ACME server \(ECONNREFUSED\)/) });
    expect(acmeFailureKind({ acme: { code: 'SELF_SIGNED_CERT_IN_CHAIN' } }, NOW)).toMatchObject({ kind: 'bad-request', message: expect.stringMatching(/not trusted/) });
  });

  it('reads a compound problem by its subproblems, an axios error and a bare problem document', () => {
    const compound = { type: 'urn:ietf:params:acme:error:compound', detail: 'several', subproblems: [{ type: 'urn:ietf:params:acme:error:rateLimited' }, { type: 'urn:ietf:params:acme:error:caa' }] };
    expect(acmeFailureKind({ acme: { status: 403, problem: compound } }, NOW).kind).toBe('rate-limited');
    expect(acmeFailureKind({ acme: { status: 403, problem: { ...compound, subproblems: [{ type: 'urn:ietf:params:acme:error:caa' }] } } }, NOW).kind).toBe('bad-request');
    const axiosError = Object.assign(new Error('Request failed with status code 429'), {
      code: 'ERR_BAD_REQUEST',
      response: { status: 429, headers: { 'retry-after': '60' }, data: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many', status: 429 } },
    });
    expect(acmeFailureKind(axiosError, NOW)).toMatchObject({ kind: 'rate-limited', retryAfter: new Date('2027-01-01T00:01:00Z'), problemType: 'rateLimited' });
    expect(acmeFailureKind({ type: 'urn:ietf:params:acme:error:unauthorized', detail: 'key authorization mismatch', status: 403 }, NOW)).toEqual({
      kind: 'bad-request',
      problemType: 'unauthorized',
      message: 'key authorization mismatch',
    });
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('120', NOW)).toEqual(new Date('2027-01-01T00:02:00Z'));
    expect(parseRetryAfter(5, NOW)).toEqual(new Date('2027-01-01T00:00:05Z'));
    expect(parseRetryAfter('Fri, 01 Jan 2027 12:00:00 GMT', NOW)).toEqual(new Date('2027-01-01T12:00:00Z'));
    expect(parseRetryAfter('soon', NOW)).toBeUndefined();
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
  });
});

describe('certificateRequestArgv', () => {
  it('makes the key on the host and prints only the CSR', () => {
    expect(certificateRequestArgv({ names: ['app.example.test', 'www.example.test'], keyFile: '/etc/nginx/certs/.app.key.new', keyType: 'rsa' })).toEqual([
      'openssl', 'req', '-new', '-nodes',
      '-newkey', 'rsa:2048',
      '-sha256',
      '-subj', '/CN=app.example.test',
      '-addext', 'subjectAltName=DNS:app.example.test,DNS:www.example.test',
      '-keyout', '/etc/nginx/certs/.app.key.new',
      '-out', '-',
    ]);
    expect(() => certificateRequestArgv({ names: ['10.0.0.1'], keyFile: 'k' })).toThrow(/IP address/);
  });

  it('uses the first name short enough for a CN', () => {
    const long = `${'a'.repeat(60)}.example.test`;
    expect(certificateRequestArgv({ names: [long, 'b.example.test'], keyFile: 'k' })).toContain('/CN=b.example.test');
  });
});

describe('selfSignedCertificateArgv', () => {
  it('builds one openssl req -x509 call with the names as SANs and an EC key', () => {
    expect(selfSignedCertificateArgv({ names: ['app.example.test', '*.api.example.test'], keyFile: '/etc/nginx/certs/.key.tmp', certFile: '/etc/nginx/certs/.crt.tmp' })).toEqual([
      'openssl', 'req', '-x509', '-nodes',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-sha256', '-days', '90',
      '-subj', '/CN=app.example.test',
      '-addext', 'subjectAltName=DNS:app.example.test,DNS:*.api.example.test',
      '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature',
      '-addext', 'extendedKeyUsage=serverAuth',
      '-keyout', '/etc/nginx/certs/.key.tmp',
      '-out', '/etc/nginx/certs/.crt.tmp',
    ]);
  });

  it('refuses bad names and days', () => {
    expect(() => selfSignedCertificateArgv({ names: ['a b'], keyFile: 'k', certFile: 'c' })).toThrow(/cannot make a self-signed certificate: "a b"/);
    expect(() => selfSignedCertificateArgv({ names: ['a.example'], keyFile: 'k', certFile: 'c', days: 0 })).toThrow(/days/);
  });
});
