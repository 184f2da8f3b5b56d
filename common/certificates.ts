// Certificates for the SSL runbook, pure (no I/O): what a PEM certificate says, whether it covers
// the wanted names, when it is due for renewal, which names an ACME CA will accept, which challenge
// each name needs, how to classify what the ACME client throws, and the openssl commands that make
// a key with its CSR, or a self-signed certificate, on the host (so the key never leaves it).
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Reading a certificate

export interface CertificateSummary {
  /** Serial number, uppercase hex without colons, whole bytes (as node and `openssl x509 -serial` print it). */
  serial: string;
  /** The subject's common name, '' when the subject has none. */
  commonName: string;
  /** The subjectAltName DNS names, in certificate order. */
  names: string[];
  notBefore: string;
  notAfter: string;
  /** The issuer's distinguished name on one line, e.g. `CN=Pebble Intermediate CA 1f9a2b`. */
  issuer: string;
  /** The issuer's common name, '' when it has none. */
  issuerCommonName: string;
  /** SHA-256 fingerprint of the DER certificate, uppercase hex with colons (as node and openssl print it). */
  fingerprint256: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM blocks of a certificate chain, leaf first (as served and as ACME returns fullchain). */
export function splitPemChain(pem: string): string[] {
  return pem.match(PEM_CERT) ?? [];
}

/** `CN=a\nO=b` (node's X509Certificate.subject/issuer) → the value of `key`. */
function dnField(dn: string, key: string): string {
  for (const line of dn.split('\n')) {
    if (line.startsWith(`${key}=`)) return line.slice(key.length + 1);
  }
  return '';
}

/** The DNS names of node's `subjectAltName` string (`DNS:a, DNS:b, IP Address:1.2.3.4`). */
export function parseSubjectAltNames(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  // Node quotes an entry that holds a comma or quote as JSON (`DNS:"a,b"`); DNS names never need it.
  const re = /(?:^|,\s*)([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(san); m; m = re.exec(san)) {
    if (m[1] !== 'DNS') continue;
    const value = m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2];
    out.push(value.trim());
  }
  return out;
}

function normalizeSerial(serial: string): string {
  return serial.replace(/:/g, '').toUpperCase();
}

/** Summary of a PEM certificate; for a chain, of its first certificate (the leaf). */
export function describeCertificate(pem: string | X509Certificate): CertificateSummary {
  let cert: X509Certificate;
  if (typeof pem === 'string') {
    const first = splitPemChain(pem)[0];
    if (!first) throw new Error('no PEM certificate found');
    cert = new X509Certificate(first);
  } else {
    cert = pem;
  }
  return {
    serial: normalizeSerial(cert.serialNumber),
    commonName: dnField(cert.subject, 'CN'),
    names: parseSubjectAltNames(cert.subjectAltName),
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    issuer: cert.issuer.split('\n').join(', '),
    issuerCommonName: dnField(cert.issuer, 'CN'),
    fingerprint256: cert.fingerprint256,
  };
}

// ---------------------------------------------------------------------------------------------
// Names

export { coversNames, nameCovers, uncoveredNames } from './certificate-rules';
import { canonicalName as canonical, nameCovers } from './certificate-rules';

// ---------------------------------------------------------------------------------------------
// Renewal

export { renewalDue, type RenewalDecision } from './certificate-rules';

type Instant = Date | string | number;
const ms = (t: Instant) => (t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t));

// ---------------------------------------------------------------------------------------------
// Which names a CA accepts, which challenge they need

/** Let's Encrypt's limit of names in one certificate. */
export const MAX_NAMES_PER_CERTIFICATE = 100;

function labelProblem(label: string): string | undefined {
  if (label.length === 0) return 'has an empty label';
  if (label.length > 63) return `has a label longer than 63 characters (${label.slice(0, 20)}…)`;
  if (!/^[a-z0-9-]+$/.test(label)) return `label "${label}" may hold only letters, digits and hyphens`;
  if (label.startsWith('-') || label.endsWith('-')) return `label "${label}" must not start or end with a hyphen`;
  if (label.slice(2, 4) === '--' && !label.startsWith('xn--')) return `label "${label}" has the reserved form "??--" (only xn-- is allowed)`;
  return undefined;
}

/** The problem with one name, or undefined when a CA can issue for it. */
export function domainProblem(name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'is empty';
  if (name !== name.trim()) return 'has surrounding whitespace';
  if (/[^\x20-\x7e]/.test(name)) return 'is not ASCII: use the IDNA A-label form (xn--…)';
  if (isIP(name) || isIP(name.replace(/^\[|\]$/g, ''))) return 'is an IP address: only DNS names are supported';
  if (name.endsWith('.')) return 'must not end with a dot';
  if (name.length > 253) return 'is longer than 253 characters';
  const lower = name.toLowerCase();
  const labels = lower.split('.');
  const wildcard = labels[0] === '*';
  if (labels.some((l, i) => l.includes('*') && !(i === 0 && l === '*'))) return 'may hold a wildcard only as the whole leftmost label (*.example.com)';
  const rest = wildcard ? labels.slice(1) : labels;
  if (rest.length < 2) return wildcard ? 'is a wildcard over a top-level domain' : 'is not a fully qualified name (it has one label)';
  for (const label of rest) {
    const p = labelProblem(label);
    if (p) return p;
  }
  if (/^[0-9]+$/.test(rest[rest.length - 1])) return 'has an all-numeric top-level label';
  return undefined;
}

/**
 * Every problem with a certificate's names, each as `"<name>": <problem>`; empty when an ACME CA
 * can be asked for them: LDH names (no IDNA U-labels), at most 253 characters, a wildcard only as
 * the whole leftmost label, no IP address, no duplicate (case-insensitive), no name already covered
 * by a wildcard in the same list (Let's Encrypt refuses that as redundant).
 */
export function validateDomains(names: readonly string[]): string[] {
  const problems: string[] = [];
  if (names.length === 0) return ['no names: a certificate needs at least one'];
  if (names.length > MAX_NAMES_PER_CERTIFICATE) problems.push(`${names.length} names: at most ${MAX_NAMES_PER_CERTIFICATE} in one certificate`);
  const seen = new Set<string>();
  const valid: string[] = [];
  for (const name of names) {
    const p = domainProblem(name);
    if (p) {
      problems.push(`${JSON.stringify(name)}: ${p}`);
      continue;
    }
    const key = name.toLowerCase();
    if (seen.has(key)) {
      problems.push(`${JSON.stringify(name)}: is listed twice`);
      continue;
    }
    seen.add(key);
    valid.push(key);
  }
  for (const name of valid) {
    if (name.startsWith('*.')) continue;
    const wildcard = valid.find((w) => w.startsWith('*.') && nameCovers(w, name));
    if (wildcard) problems.push(`${JSON.stringify(name)}: is already covered by ${JSON.stringify(wildcard)} (drop one of them)`);
  }
  return problems;
}

export type ChallengeType = 'http-01' | 'dns-01';

export interface ChallengeChoice {
  type: ChallengeType;
  /** Why the preferred type was not used. */
  reason?: string;
}

/** The challenge to answer for a name: the preferred one, except dns-01 for a wildcard (HTTP-01 cannot validate one). */
export function challengeTypeFor(name: string, preferred: ChallengeType = 'http-01'): ChallengeChoice {
  if (name.startsWith('*.') && preferred !== 'dns-01') {
    return { type: 'dns-01', reason: `${name} is a wildcard: only dns-01 can validate it` };
  }
  return { type: preferred };
}

/** The TXT record name of a name's DNS-01 challenge (`*.example.com` → `_acme-challenge.example.com`). */
export function dnsChallengeRecordName(name: string): string {
  return `_acme-challenge.${canonical(name).replace(/^\*\./, '')}`;
}

/** ACME challenge tokens are base64url (RFC 8555 §8.1): safe as a file name in the webroot. */
export function isSafeChallengeToken(token: string): boolean {
  return /^[A-Za-z0-9_-]{16,256}$/.test(token);
}

/** Path of an HTTP-01 token file below the proxy's webroot (`/var/www/acme`); throws on an unsafe token. */
export function httpChallengeFilePath(webroot: string, token: string): string {
  if (!isSafeChallengeToken(token)) throw new Error('refusing an ACME token that is not base64url');
  return `${webroot.replace(/\/+$/, '')}/.well-known/acme-challenge/${token}`;
}

// ---------------------------------------------------------------------------------------------
// What acme-client (5.x) throws, classified
//
// acme-client turns every ACME problem answer into `new Error(detail)`: the problem `type`, the
// HTTP status and the headers (Retry-After) are dropped. A connection failure or timeout comes out
// as `TypeError: Cannot read properties of undefined (reading 'config')` (its axios interceptor
// reads `response.config` of a response that does not exist), after its own retries. So:
//  - with only what acme-client throws, classification goes by the message (the CA's `detail`);
//  - the adapter should capture the last problem answer (an interceptor on `acme.axios`, see
//    AcmeErrorCapture) and pass `{ message, problem, status, retryAfter }`: then the problem type
//    and the Retry-After header decide.

export type AcmeFailureKind = 'rate-limited' | 'bad-request' | 'transient';

export interface AcmeProblemDocument {
  type?: string;
  detail?: string;
  status?: number;
  subproblems?: AcmeProblemDocument[];
}

/** What an adapter captured about the failed request, attached to (or instead of) acme-client's error. */
export interface AcmeErrorCapture {
  message?: string;
  /** The problem document of the answer (RFC 7807), or an authorization's/challenge's `error`. */
  problem?: AcmeProblemDocument;
  /** HTTP status of the answer. */
  status?: number;
  /** The raw Retry-After header value: seconds or an HTTP date. */
  retryAfter?: string | number;
  /** A node/axios error code for a request that got no answer (ECONNREFUSED, ETIMEDOUT, ECONNABORTED, …). */
  code?: string;
}

export interface AcmeFailure {
  kind: AcmeFailureKind;
  /** When the CA says to try again (Retry-After header, or the "retry after …" of Let's Encrypt's detail). */
  retryAfter?: Date;
  /** The ACME problem type without its `urn:ietf:params:acme:error:` prefix, when known. */
  problemType?: string;
  /** One line for an operator. */
  message: string;
}

const ACME_ERROR = 'urn:ietf:params:acme:error:';

/** Problem types that retrying the same request cannot fix (RFC 8555 §6.7 and validation failures). */
const NON_RETRYABLE_TYPES = new Set([
  'accountDoesNotExist',
  'alreadyRevoked',
  'badCSR',
  'badPublicKey',
  'badRevocationReason',
  'badSignatureAlgorithm',
  'caa',
  'connection', // the CA could not connect to the validation target: the challenge failed
  'dns', // the CA's DNS lookup of the name failed: the challenge failed
  'externalAccountRequired',
  'incorrectResponse',
  'invalidContact',
  'malformed',
  'orderNotReady',
  'rejectedIdentifier',
  'tls',
  'unauthorized',
  'unsupportedContact',
  'unsupportedIdentifier',
  'userActionRequired',
  'invalidProfile',
]);
const TRANSIENT_TYPES = new Set(['serverInternal', 'badNonce']);

/** Node/axios codes of a request that got no answer, or an answer cut short. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ECONNABORTED', // axios timeout
  'ERR_NETWORK',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);
/** TLS verification failures of the CA's own HTTPS: a configuration error (trust), not worth retrying. */
const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Retry-After: delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | number | undefined, now: Instant = Date.now()): Date | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return new Date(ms(now) + Number(text) * 1000);
  const t = Date.parse(text);
  return Number.isFinite(t) ? new Date(t) : undefined;
}

/** Let's Encrypt's rate-limit detail: "…, retry after 2027-01-01 00:00:00 UTC: see https://…". */
function retryAfterInDetail(detail: string): Date | undefined {
  const m = /retry after (\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?\s*(UTC|Z)?/i.exec(detail);
  if (!m) return undefined;
  const t = Date.parse(`${m[1]}T${m[2]}Z`);
  return Number.isFinite(t) ? new Date(t) : undefined;
}

// Messages acme-client (or the CA's detail in them) uses, when nothing else is known.
const RATE_LIMIT_TEXT = /rate.?limit|too many (certificates|new orders|new registrations|failed authori[sz]ations|registrations|orders|requests|pending)|retry after \d{4}-/i;
const TRANSIENT_TEXT = [
  /^Cannot read properties of undefined \(reading 'config'\)$/, // acme-client: no answer at all (refused, reset, timed out)
  /^Failed to get nonce from ACME provider/,
  /^Operation is pending or processing/, // waitForValidStatus gave up while the CA was still working
  /anti-replay nonce/i, // badNonce after acme-client's own five retries
  /^Attempting to read ACME directory returned error 5\d\d/,
  /^Attempting to read ACME directory returned no data/,
  /^Creating a new order did not return an order link/,
  /service unavailable|internal server error|temporarily|try again later|timeout|timed out/i,
];
const BAD_REQUEST_TEXT = [
  /^Attempting to read ACME directory returned error 4\d\d/,
  /^Unable to locate API resource URL in ACME directory/,
  /^Unable to (produce key authorization|download certificate|finalize order|get order|verify)/,
  /Cannot issue for|policy forbids|CAA record|rejected identifier|not a valid (e-?mail|contact)|invalid contact|contact (email|domain)/i,
  /Invalid response from|key authorization .*(did not match|mismatch)|No TXT record|Incorrect TXT record|NXDOMAIN|No valid IP addresses|During secondary validation/i,
  /account .*(does not exist|deactivated)|JWS verification error|unauthori[sz]ed/i,
  /Error finalizing order|CSR|not acceptable for finalization/i,
  /^Error creating new (order|account) ::/,
];

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') return (err as { message: string }).message;
  return String(err);
}

function shortType(type: string | undefined): string | undefined {
  if (!type) return undefined;
  return type.startsWith(ACME_ERROR) ? type.slice(ACME_ERROR.length) : type;
}

/** The capture on an error: `err.acme` (an adapter's), the error itself, or an axios error's response. */
function captureOf(err: unknown): AcmeErrorCapture {
  if (!err || typeof err !== 'object') return {};
  const e = err as Record<string, unknown> & { acme?: AcmeErrorCapture; response?: { status?: number; headers?: Record<string, unknown>; data?: unknown } };
  const own: AcmeErrorCapture = e.acme && typeof e.acme === 'object' ? e.acme : (e as AcmeErrorCapture);
  const out: AcmeErrorCapture = {
    problem: own.problem,
    status: own.status,
    retryAfter: own.retryAfter,
    code: typeof own.code === 'string' ? own.code : typeof e.code === 'string' ? e.code : undefined,
  };
  // An axios error (a wrapper around acme.axios, or a future acme-client that keeps it).
  if (e.response && typeof e.response === 'object') {
    out.status ??= e.response.status;
    const ra = e.response.headers?.['retry-after'];
    if (out.retryAfter === undefined && (typeof ra === 'string' || typeof ra === 'number')) out.retryAfter = ra;
    const data = e.response.data as AcmeProblemDocument | undefined;
    if (!out.problem && data && typeof data === 'object' && typeof data.type === 'string') out.problem = data;
  }
  // A bare problem document.
  if (!out.problem && typeof (e as AcmeProblemDocument).type === 'string' && String((e as AcmeProblemDocument).type).startsWith(ACME_ERROR)) {
    out.problem = e as AcmeProblemDocument;
  }
  return out;
}

function kindOfType(type: string, problem: AcmeProblemDocument): AcmeFailureKind | undefined {
  if (type === 'rateLimited') return 'rate-limited';
  if (TRANSIENT_TYPES.has(type)) return 'transient';
  if (NON_RETRYABLE_TYPES.has(type)) return 'bad-request';
  if (type === 'compound') {
    const kinds = (problem.subproblems ?? []).map((s) => kindOfType(shortType(s.type) ?? '', s));
    if (kinds.includes('rate-limited')) return 'rate-limited';
    if (kinds.includes('bad-request')) return 'bad-request';
    if (kinds.length > 0 && kinds.every((k) => k === 'transient')) return 'transient';
    return 'bad-request';
  }
  return undefined;
}

/**
 * Classifies an error from an ACME order: `rate-limited` (non-retryable for this run; `retryAfter`
 * says until when, when the CA said), `bad-request` (retrying cannot help: malformed, rejected
 * identifier, unauthorized or failed validation, CAA, invalid contact, a wrong directory URL, an
 * untrusted CA certificate) or `transient` (server errors, badNonce, no answer: retry with backoff).
 * Accepts what acme-client throws (a plain Error whose message is the CA's detail, or its TypeError
 * for a request that got no answer), an error with an adapter's capture in `err.acme`, an axios
 * error, or a problem document.
 */
export function acmeFailureKind(err: unknown, now: Instant = Date.now()): AcmeFailure {
  const cap = captureOf(err);
  const problem = cap.problem;
  const detail = (problem?.detail ?? messageOf(err)).replace(/\s*\n\s*/g, ' ').trim();
  const problemType = shortType(problem?.type);
  const retryAfter = parseRetryAfter(cap.retryAfter, now) ?? retryAfterInDetail(detail);
  const status = cap.status ?? problem?.status;

  let kind: AcmeFailureKind | undefined;
  let message = detail;
  if (problemType && problem) kind = kindOfType(problemType, problem);
  if (!kind && status !== undefined) {
    if (status === 429) kind = 'rate-limited';
    else if (status >= 500 || status === 408) kind = 'transient';
    else if (status >= 400) kind = 'bad-request';
  }
  if (!kind && cap.code) {
    if (TRANSIENT_CODES.has(cap.code)) {
      kind = 'transient';
      message = `no answer from the ACME server (${cap.code}): ${detail}`;
    } else if (TLS_TRUST_CODES.has(cap.code)) {
      kind = 'bad-request';
      message = `the ACME server's TLS certificate is not trusted (${cap.code}): give its CA (NODE_EXTRA_CA_CERTS or an https agent with that CA)`;
    }
  }
  if (!kind) {
    if (/^Cannot read properties of undefined \(reading 'config'\)$/.test(detail)) {
      kind = 'transient';
      message = 'no answer from the ACME server (connection refused, reset or timed out)';
    } else if (RATE_LIMIT_TEXT.test(detail)) kind = 'rate-limited';
    else if (BAD_REQUEST_TEXT.some((re) => re.test(detail))) kind = 'bad-request';
    else if (TRANSIENT_TEXT.some((re) => re.test(detail))) kind = 'transient';
    // Unknown: retry with backoff (the activity's retry policy bounds it).
    else kind = 'transient';
  }
  if (kind === 'rate-limited') {
    message = `rate limited by the CA${retryAfter ? `, retry after ${retryAfter.toISOString()}` : ''}: ${detail}`;
  }
  return { kind, ...(retryAfter ? { retryAfter } : {}), ...(problemType ? { problemType } : {}), message };
}

// ---------------------------------------------------------------------------------------------
// Keys made on the host: a CSR for an ACME order, or a self-signed certificate

/** The subject CN openssl writes: the first name that fits (CN is at most 64 characters). */
function subjectFor(names: readonly string[]): string {
  return `/CN=${names.find((n) => n.length <= 64) ?? 'self-signed'}`;
}

function keyArgv(keyType: 'ec' | 'rsa' | undefined): string[] {
  return keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
}

export interface CertificateRequestSpec {
  names: string[];
  /** Where openssl writes the new private key (mode 0600), on the host. */
  keyFile: string;
  keyType?: 'ec' | 'rsa';
}

/**
 * The argv for `openssl req -new` that generates the certificate's private key on the host and
 * prints the CSR (PEM) on stdout: the CSR is public and goes to acme-client's
 * `finalizeOrder(order, csrPem)`; the key never leaves the host. (acme-client's own
 * `crypto.createCsr` needs the key in the worker's memory, so it is not used for it.)
 */
export function certificateRequestArgv(spec: CertificateRequestSpec): string[] {
  const problems = validateDomains(spec.names);
  if (problems.length > 0) throw new Error(`cannot make a certificate request: ${problems.join('; ')}`);
  return [
    'openssl', 'req', '-new', '-nodes',
    ...keyArgv(spec.keyType),
    '-sha256',
    '-subj', subjectFor(spec.names),
    '-addext', `subjectAltName=${spec.names.map((n) => `DNS:${n}`).join(',')}`,
    '-keyout', spec.keyFile,
    '-out', '-',
  ];
}

export interface SelfSignedRequest {
  names: string[];
  /** Where openssl writes the key and the certificate (temporary names, renamed into place after). */
  keyFile: string;
  certFile: string;
  /** Validity in days, default 90. */
  days?: number;
  /** Key type: ECDSA P-256 (default) or RSA 2048. */
  keyType?: 'ec' | 'rsa';
}

/**
 * The argv for `openssl req -x509` that generates a key and a self-signed certificate for `names`
 * in one step, run on the host (e.g. in the proxy container, whose image has openssl through
 * ca-certificates), so the key never leaves it. Run it under `umask 077` and chmod 0600 the key.
 * Needs OpenSSL ≥ 1.1.1 (`-addext`).
 */
export function selfSignedCertificateArgv(req: SelfSignedRequest): string[] {
  const problems = validateDomains(req.names);
  if (problems.length > 0) throw new Error(`cannot make a self-signed certificate: ${problems.join('; ')}`);
  const days = req.days ?? 90;
  if (!Number.isInteger(days) || days < 1 || days > 825) throw new Error(`days must be an integer from 1 to 825, got ${days}`);
  const keyUsage = req.keyType === 'rsa' ? 'critical,digitalSignature,keyEncipherment' : 'critical,digitalSignature';
  return [
    'openssl', 'req', '-x509', '-nodes',
    ...keyArgv(req.keyType),
    '-sha256',
    '-days', String(days),
    '-subj', subjectFor(req.names),
    '-addext', `subjectAltName=${req.names.map((n) => `DNS:${n}`).join(',')}`,
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', `keyUsage=${keyUsage}`,
    '-addext', 'extendedKeyUsage=serverAuth',
    '-keyout', req.keyFile,
    '-out', req.certFile,
  ];
}
