// What a TLS endpoint serves: one handshake with SNI and a summary of the peer certificate (public
// data only), to skip an issuance that is not needed and to verify an install (serial and expiry).
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
  /** A PEM CA bundle (read at use, on the worker): when given, a certificate it does not trust (or whose names do not match) fails the activity. */
  caFile?: string;
  timeoutMs?: number;
}

export interface ServedCertificate extends CertificateSummary {
  address: string;
  port: number;
  servername: string;
  /** The negotiated protocol, e.g. TLSv1.3 or TLSv1.2. */
  protocol: string;
  /** Whether the chain verified (against `caFile`, else node's default roots) and matched `servername`. */
  authorized: boolean;
  /** Why not, as OpenSSL/node name it (UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID, …). */
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
    // The handshake itself never rejects the certificate: with a CA file an untrusted one fails
    // below, with what it is in the message (the same verdict as rejectUnauthorized, more to read).
    const socket = tls.connect({
      host: req.address,
      port: req.port,
      ...(sni ? { servername: sni } : {}),
      ...(ca ? { ca } : {}),
      rejectUnauthorized: false,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(req.servername, cert),
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
        const result: ServedCertificate = {
          ...describeCertificate(peer),
          address: req.address,
          port: req.port,
          servername: req.servername,
          protocol: socket.getProtocol() ?? 'unknown',
          authorized: socket.authorized,
          ...(socket.authorized || !authError ? {} : { authorizationError: typeof authError === 'string' ? authError : (authError as NodeJS.ErrnoException).code ?? authError.message }),
        };
        settled = true;
        socket.end();
        resolve(result);
      } catch (err) {
        fail(err as Error);
      }
    });
  });

  if (ca && !served.authorized) {
    throw ApplicationFailure.nonRetryable(
      `${where} serves a certificate the CA file ${req.caFile} does not accept for ${req.servername}: ${served.authorizationError ?? 'not authorized'} (serial ${served.serial}, names ${served.names.join(', ') || 'none'}, issuer ${served.issuer}, expires ${served.notAfter})`,
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
     * fingerprint, the protocol, and whether it is trusted (against `caFile` when given: then an
     * untrusted one is a non-retryable failure). Refused or timed out: retryable.
     */
    inspectServedCertificate: (req: InspectTlsRequest) => inspectServedCertificate({ ...req, timeoutMs: req.timeoutMs ?? options.timeoutMs }),
  };
}
