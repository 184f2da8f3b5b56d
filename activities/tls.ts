// What a TLS endpoint serves: one handshake with SNI and a summary of the peer certificate (public
// data only), to skip an issuance that is not needed and to verify an install (serial and expiry).
// Trust is judged against the given CA bundle (else node's default roots) and reported, not thrown,
// so the caller decides: a self-signed certificate is untrusted and still the right one in that mode.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { ApplicationFailure } from '@temporalio/common';
import { describeCertificate, splitPemChain, type CertificateSummary } from '../common/certificates';

export interface InspectTlsRequest {
  /** Where to connect (an IP address or a host name), e.g. the host's proxy address. */
  address: string;
  port: number;
  /** The name sent as SNI and checked against the certificate. */
  servername: string;
  /** A PEM CA bundle (read at use, on the worker): the only roots the chain is verified against; default node's roots. */
  caFile?: string;
  /** Fail (TlsUntrusted, not retried) when the chain is not trusted or not valid for `servername`, instead of reporting it. */
  requireTrusted?: boolean;
  timeoutMs?: number;
}

export interface ServedCertificate extends CertificateSummary {
  address: string;
  port: number;
  servername: string;
  /** The negotiated protocol, e.g. TLSv1.3 or TLSv1.2. */
  protocol: string;
  /** Whether the chain verified against `caFile` (else node's default roots), whatever the names. */
  trusted: boolean;
  /** Why not, as OpenSSL names it (SELF_SIGNED_CERT_IN_CHAIN, DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_GET_ISSUER_CERT_LOCALLY, …). */
  trustError?: string;
  /** Trusted and valid for `servername`. */
  authorized: boolean;
  /** Why not: the trust error, or ERR_TLS_CERT_ALTNAME_INVALID for a trusted certificate of other names. */
  authorizationError?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'address not found',
  EAI_AGAIN: 'address lookup failed',
};

async function readCa(caFile: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(caFile, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot read the CA file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'TlsConfig');
  }
  if (splitPemChain(pem).length === 0) throw ApplicationFailure.nonRetryable(`the CA file ${caFile} holds no PEM certificate`, 'TlsConfig');
  return pem;
}

/** One TLS handshake with SNI; resolves with the served leaf certificate's summary. */
export async function inspectServedCertificate(req: InspectTlsRequest): Promise<ServedCertificate> {
  if (!req.servername || !req.address || !Number.isInteger(req.port) || req.port < 1 || req.port > 65535) {
    throw ApplicationFailure.nonRetryable(`inspectServedCertificate needs an address, a port (1-65535) and a servername, got ${req.address}:${req.port} / ${JSON.stringify(req.servername)}`, 'TlsConfig');
  }
  const ca = req.caFile ? await readCa(req.caFile) : undefined;
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const where = `${req.address}:${req.port} (SNI ${req.servername})`;
  // RFC 6066 forbids an IP address as SNI: none is sent then, but the certificate is still checked against it.
  const sni = isIP(req.servername) ? undefined : req.servername;

  const served = await new Promise<ServedCertificate>((resolve, reject) => {
    // The handshake itself never rejects the certificate: it is reported (or, with requireTrusted,
    // fails below with what it is in the message: the same verdict as rejectUnauthorized, more to read).
    // node calls checkServerIdentity only for a chain that verified (documented: "only called if the
    // certificate passed all other checks, such as being issued by trusted CA"): that call tells trust apart from names.
    let chainVerified = false;
    const socket = tls.connect({
      host: req.address,
      port: req.port,
      ...(sni ? { servername: sni } : {}),
      ...(ca ? { ca } : {}),
      rejectUnauthorized: false,
      checkServerIdentity: (_host, cert) => {
        chainVerified = true;
        return tls.checkServerIdentity(req.servername, cert);
      },
      timeout: timeoutMs,
    });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(err);
    };
    socket.once('timeout', () => fail(ApplicationFailure.retryable(`TLS handshake with ${where} timed out after ${timeoutMs} ms`, 'TlsUnreachable')));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const reason = (err.code && REASONS[err.code]) ?? err.message;
      const what = err.code && REASONS[err.code] ? 'cannot connect to' : 'TLS handshake failed with';
      fail(ApplicationFailure.retryable(`${what} ${where}: ${reason}${err.code && !REASONS[err.code] ? ` (${err.code})` : ''}`, 'TlsUnreachable'));
    });
    socket.once('secureConnect', () => {
      if (settled) return;
      try {
        const peer = socket.getPeerX509Certificate();
        if (!peer) throw ApplicationFailure.retryable(`${where} presented no certificate`, 'TlsNoCertificate');
        const authError = socket.authorizationError as unknown as string | Error | null | undefined;
        const authorizationError = socket.authorized || !authError ? undefined : typeof authError === 'string' ? authError : ((authError as NodeJS.ErrnoException).code ?? authError.message);
        const trusted = socket.authorized || chainVerified;
        const result: ServedCertificate = {
          ...describeCertificate(peer),
          address: req.address,
          port: req.port,
          servername: req.servername,
          protocol: socket.getProtocol() ?? 'unknown',
          trusted,
          ...(trusted ? {} : { trustError: authorizationError ?? 'not verified' }),
          authorized: socket.authorized,
          ...(authorizationError ? { authorizationError } : {}),
        };
        settled = true;
        socket.end();
        resolve(result);
      } catch (err) {
        fail(err as Error);
      }
    });
  });

  if (req.requireTrusted && !served.authorized) {
    throw ApplicationFailure.nonRetryable(
      `${where} serves a certificate ${req.caFile ? `the CA file ${req.caFile} does` : "node's default roots do"} not accept for ${req.servername}: ${served.authorizationError ?? 'not authorized'} (serial ${served.serial}, names ${served.names.join(', ') || 'none'}, issuer ${served.issuer}, expires ${served.notAfter})`,
      'TlsUntrusted',
      served,
    );
  }
  return served;
}

export function createTlsActivities(options: { timeoutMs?: number } = {}) {
  return {
    /**
     * One TLS handshake with SNI: the served certificate's serial, names, validity, issuer and
     * fingerprint, the protocol, whether its chain is trusted (against `caFile` when given, else
     * node's default roots) and whether it is valid for the name. An untrusted one is reported, or
     * with `requireTrusted` a non-retryable failure. Refused or timed out: retryable.
     */
    inspectServedCertificate: (req: InspectTlsRequest) => inspectServedCertificate({ ...req, timeoutMs: req.timeoutMs ?? options.timeoutMs }),
  };
}
