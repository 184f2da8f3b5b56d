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

