// Whether a served certificate can stay (common/certificate-rules.ts judgeServed): a CA-issued one
// must be trusted (its chain verified against the configured CA bundle or the default roots);
// self-signed mode serves an untrusted certificate by design, and a staging one chains to no trusted root.
import { judgeServed, servedTrustProblem, type ServedCertificateFacts } from '../../common/certificate-rules';

const DAY = 86_400_000;
const t0 = Date.parse('2030-01-01T00:00:00Z');
const acme = { domains: ['shop.example.com'], mode: 'acme' as const, renewFraction: 1 / 3 };
const selfSignedPlan = { ...acme, mode: 'self-signed' as const };
const caIssued: ServedCertificateFacts = {
  serial: '01',
  names: ['shop.example.com'],
  notBefore: new Date(t0).toISOString(),
  notAfter: new Date(t0 + 90 * DAY).toISOString(),
  issuer: 'CN=Pebble Intermediate CA 1f9a2b',
  commonName: 'shop.example.com',
  issuerCommonName: 'Pebble Intermediate CA 1f9a2b',
  trusted: true,
  authorized: true,
};
const untrusted = { ...caIssued, trusted: false, trustError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', authorized: false };
const selfSigned: ServedCertificateFacts = { ...caIssued, issuer: 'CN=shop.example.com', issuerCommonName: 'shop.example.com', trusted: false, trustError: 'DEPTH_ZERO_SELF_SIGNED_CERT', authorized: false };

describe('judgeServed and trust', () => {
  it('keeps a trusted CA-issued certificate that covers the names and is not due', () => {
    expect(judgeServed(caIssued, acme, t0 + 10 * DAY)).toMatchObject({ keep: true, reason: expect.stringMatching(/^valid: 80d of 90d left/) });
  });

  it('does not keep a CA-issued certificate whose chain is not trusted, though valid, covering and not due', () => {
    expect(judgeServed(untrusted, acme, t0 + 10 * DAY)).toEqual({
      keep: false,
      reason: 'the served certificate is not trusted (UNABLE_TO_GET_ISSUER_CERT_LOCALLY), issued by CN=Pebble Intermediate CA 1f9a2b',
    });
    // a result that does not say (an older worker's): nothing showed it is trusted
    const { trusted: _t, authorized: _a, ...unknown } = caIssued;
    expect(judgeServed(unknown, acme, t0 + 10 * DAY)).toMatchObject({ keep: false, reason: expect.stringMatching(/not trusted \(trust was not checked\)/) });
  });

  it('self-signed mode keeps its untrusted certificate; staging certificates are not required to be trusted', () => {
    expect(judgeServed(selfSigned, selfSignedPlan, t0 + 10 * DAY)).toMatchObject({ keep: true });
    const staging = { ...untrusted, issuer: "CN=(STAGING) Counterfeit Cashew R10, O=(STAGING) Let's Encrypt, C=US", trustError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' };
    expect(judgeServed(staging, acme, t0 + 10 * DAY, true)).toMatchObject({ keep: true });
    expect(judgeServed(staging, acme, t0 + 10 * DAY, false)).toMatchObject({ keep: false, reason: expect.stringMatching(/staging environment/) });
  });

  it('the other reasons come first, unchanged; requireTrust: false is the old judgement (for replaying older histories)', () => {
    expect(judgeServed({ ...untrusted, names: ['other.example.com'] }, acme, t0).reason).toMatch(/does not cover shop\.example\.com/);
    expect(judgeServed(untrusted, acme, t0 + 95 * DAY).reason).toMatch(/expired/);
    expect(judgeServed(untrusted, acme, t0 + 61 * DAY).reason).toMatch(/not trusted/);
    expect(judgeServed(untrusted, acme, t0 + 10 * DAY, false, undefined, { requireTrust: false })).toMatchObject({ keep: true });
    expect(judgeServed(undefined, acme, t0, false, 'connection refused')).toEqual({ keep: false, reason: 'no certificate served (connection refused)' });
  });

  it('servedTrustProblem', () => {
    expect(servedTrustProblem({ trusted: true }, 'acme')).toBeUndefined();
    expect(servedTrustProblem({ trusted: false, trustError: 'CERT_HAS_EXPIRED' }, 'acme')).toBe('the served certificate is not trusted (CERT_HAS_EXPIRED)');
    expect(servedTrustProblem({ trusted: false }, 'acme')).toBe('the served certificate is not trusted (its chain does not verify)');
    expect(servedTrustProblem({ trusted: false }, 'self-signed')).toBeUndefined();
    expect(servedTrustProblem({ trusted: false }, 'acme', true)).toBeUndefined();
  });
});
