// Which names a certificate covers and when it is due for renewal: pure and free of Node
// built-ins, so workflow code may import it (common/certificates.ts re-exports it).

export interface RenewalDecision {
  due: boolean;
  /** When the remaining lifetime reaches `fraction` of the total. */
  renewAt: string;
  /** Remaining lifetime / total lifetime at `now`, 0 once expired. */
  remainingFraction: number;
}

export type Instant = Date | string | number;
const ms = (t: Instant) => (t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t));

/**
 * Due when the remaining lifetime is at most `fraction` of the certificate's lifetime (Caddy's
 * rule, ⅓ by default; certbot's "30 days left" is ⅓ of a 90-day certificate but is wrong for
 * 45- or 6-day ones). An expired or zero-lifetime certificate is due.
 */
export function renewalDue(cert: { notBefore: Instant; notAfter: Instant }, now: Instant = Date.now(), fraction = 1 / 3): RenewalDecision {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`renewal fraction must be between 0 and 1 (exclusive), got ${fraction}`);
  const from = ms(cert.notBefore);
  const to = ms(cert.notAfter);
  const t = ms(now);
  if ([from, to, t].some((v) => !Number.isFinite(v))) throw new Error('renewalDue: invalid date');
  const lifetime = to - from;
  if (lifetime <= 0) return { due: true, renewAt: new Date(to).toISOString(), remainingFraction: 0 };
  // Renew at the first whole millisecond at or after the exact point, so `due` ⇔ now ≥ renewAt.
  const renewAt = Math.ceil(to - fraction * lifetime);
  const remainingFraction = Math.min(1, Math.max(0, (to - t) / lifetime));
  return { due: t >= renewAt, renewAt: new Date(renewAt).toISOString(), remainingFraction };
}


export const canonicalName = (name: string): string => name.trim().toLowerCase().replace(/\.$/, '');

/**
 * True when a certificate name covers a wanted name: the same name, or a wildcard `*.example.com`
 * covering exactly one more (non-empty) label: `a.example.com`, not `example.com` nor
 * `a.b.example.com`. A wanted wildcard is covered only by the same wildcard. Case-insensitive.
 */
export function nameCovers(certName: string, wanted: string): boolean {
  const c = canonicalName(certName);
  const w = canonicalName(wanted);
  if (c === '' || w === '') return false;
  if (c === w) return true;
  if (!c.startsWith('*.') || w.startsWith('*.')) return false;
  const base = c.slice(2);
  const dot = w.indexOf('.');
  return dot > 0 && w.slice(dot + 1) === base;
}

/** The wanted names that no certificate name covers. */
export function uncoveredNames(certNames: readonly string[], wanted: readonly string[]): string[] {
  return wanted.filter((w) => !certNames.some((c) => nameCovers(c, w)));
}

/** True when every wanted name is covered by one of the certificate's names (see nameCovers). */
export function coversNames(certNames: readonly string[], wanted: readonly string[]): boolean {
  return uncoveredNames(certNames, wanted).length === 0;
}


// ---- whether a served certificate can stay (issueCertificate: skip or issue; renewCertificates: due or not) ----

/** What a TLS handshake shows of a served certificate (activities/tls.ts ServedCertificate, public data only). */
export interface ServedCertificateFacts {
  serial: string;
  names: string[];
  notBefore: string;
  notAfter: string;
  issuer: string;
  commonName: string;
  issuerCommonName: string;
  /** The chain verified against the configured CA bundle (or the default roots); absent in results of older workers. */
  trusted?: boolean;
  /** Why not, as OpenSSL names it (UNABLE_TO_GET_ISSUER_CERT_LOCALLY, CERT_HAS_EXPIRED, …). */
  trustError?: string;
  /** Trusted and valid for the name probed. */
  authorized?: boolean;
}

export interface ServedVerdict {
  /** The served certificate can stay: valid, covering the names, of the wanted kind, trusted where it must be, not due. */
  keep: boolean;
  reason: string;
}

/** "12d 4h", "5h 10m", "30m" (to the nearest minute): how a person reads a remaining lifetime. */
export function humanDuration(ms: number): string {
  const neg = ms < 0;
  const minutes = Math.round(Math.abs(ms) / 60_000);
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  const text = d > 0 ? `${d}d${h ? ` ${h}h` : ''}` : h > 0 ? `${h}h${m ? ` ${m}m` : ''}` : `${m}m`;
  return neg ? `-${text}` : text;
}

/** A self-signed certificate names itself as its issuer. */
export function isSelfSigned(cert: Pick<ServedCertificateFacts, 'issuer' | 'commonName' | 'issuerCommonName'>): boolean {
  if (cert.issuerCommonName) return cert.issuerCommonName === cert.commonName;
  return cert.issuer === `CN=${cert.commonName}`;
}

/**
 * Why a served certificate may not stay for lack of trust, or undefined. Trust is required of a
 * CA-issued certificate only: self-signed mode serves an untrusted one by design, and a staging
 * certificate (wanted with `staging`) chains to roots no client trusts. `trusted` missing counts as
 * not trusted: nothing showed it was.
 */
export function servedTrustProblem(served: Pick<ServedCertificateFacts, 'trusted' | 'trustError'>, mode: 'acme' | 'self-signed', staging = false): string | undefined {
  if (mode !== 'acme' || staging || served.trusted === true) return undefined;
  return `the served certificate is not trusted (${served.trustError ?? (served.trusted === undefined ? 'trust was not checked' : 'its chain does not verify')})`;
}

/**
 * Whether a served certificate can stay, and why (or why not): nothing served, names not covered,
 * not valid now, the wrong kind (self-signed where a CA's is wanted and the reverse, a CA's staging
 * certificate where a real one is wanted), a CA-issued one whose chain is not trusted (unless
 * `requireTrust` is false: how workflow histories recorded before this check replay), or at most
 * `plan.renewFraction` of its lifetime left.
 */
export function judgeServed(
  served: ServedCertificateFacts | undefined,
  plan: { domains: readonly string[]; mode: 'acme' | 'self-signed'; renewFraction?: number },
  now: number,
  staging = false,
  unreachable?: string,
  options: { requireTrust?: boolean } = {},
): ServedVerdict {
  if (!served) return { keep: false, reason: `no certificate served${unreachable ? ` (${unreachable})` : ''}` };
  const missing = uncoveredNames(served.names, plan.domains);
  if (missing.length) return { keep: false, reason: `the served certificate (${served.names.join(', ') || 'no names'}) does not cover ${missing.join(', ')}` };
  if (now < Date.parse(served.notBefore)) return { keep: false, reason: `the served certificate is not valid before ${served.notBefore}` };
  if (now >= Date.parse(served.notAfter)) return { keep: false, reason: `the served certificate expired at ${served.notAfter}` };
  const selfSigned = isSelfSigned(served);
  if (plan.mode === 'self-signed' && !selfSigned) return { keep: false, reason: `a self-signed certificate is wanted, the served one is issued by ${served.issuer}` };
  if (plan.mode === 'acme' && selfSigned) return { keep: false, reason: 'the served certificate is self-signed, a CA-issued one is wanted' };
  // Let's Encrypt's staging intermediates are all named "(STAGING) …": not trusted by browsers.
  if (plan.mode === 'acme' && !staging && /\(STAGING\)/i.test(served.issuer)) return { keep: false, reason: `the served certificate is from the CA's staging environment (${served.issuer})` };
  const untrusted = options.requireTrust === false ? undefined : servedTrustProblem(served, plan.mode, staging);
  if (untrusted) return { keep: false, reason: `${untrusted}, issued by ${served.issuer}` };
  const r = renewalDue(served, now, plan.renewFraction);
  const left = Date.parse(served.notAfter) - now;
  const lifetime = Date.parse(served.notAfter) - Date.parse(served.notBefore);
  const what = `${humanDuration(left)} of ${humanDuration(lifetime)} left (valid until ${served.notAfter}), renewal from ${r.renewAt}`;
  return r.due ? { keep: false, reason: `due for renewal: ${what}` } : { keep: true, reason: `valid: ${what}` };
}
