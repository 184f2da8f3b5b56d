// inspectServedCertificate against real TLS servers on loopback: a throwaway CA and a leaf for
// app.runbooks.test made with openssl, served by node:https; trusted, untrusted, wrong SNI, a chain
// through an intermediate whose root is not sent (like pebble's), self-signed, TLS 1.2, refused and silent ports.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { createTlsActivities, inspectServedCertificate } from '../../activities/tls';
import { selfSignedCertificateArgv } from '../../common/certificates';
import { rejectionOf } from '../helpers/rejection';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-tls-'));
const file = (name: string) => path.join(tmp, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function makeCa(name: string, cn: string) {
  openssl('req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-days', '30', '-subj', `/O=Runbooks Test/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.pem`);
}

let server: https.Server;
let tls12: https.Server;
let chained: https.Server;
let silent: net.Server;
const silentSockets = new Set<net.Socket>();
let port = 0;
let tls12Port = 0;
let chainedPort = 0;
let silentPort = 0;
let refusedPort = 0;
let expected: { serial: string; notBefore: string; notAfter: string; fingerprint256: string };

const listen = (s: net.Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
const close = (s: net.Server) => new Promise((r) => s.close(r));
const opensslDate = (line: string) => new Date(line.slice(line.indexOf('=') + 1)).toISOString();

beforeAll(async () => {
  makeCa('ca', 'Runbooks Test CA');
  makeCa('other-ca', 'Some Other CA');
  openssl('req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=app.runbooks.test', '-keyout', 'leaf.key', '-out', 'leaf.csr');
  writeFileSync(file('leaf.ext'), 'subjectAltName=DNS:app.runbooks.test,DNS:*.api.runbooks.test\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x7A3F00C1D2E3F4', '-days', '20', '-sha256', '-extfile', 'leaf.ext', '-out', 'leaf.pem');
  const [serial, notBefore, notAfter, fingerprint] = openssl('x509', '-in', 'leaf.pem', '-noout', '-serial', '-startdate', '-enddate', '-fingerprint', '-sha256').trim().split('\n');
  expected = { serial: serial.replace('serial=', ''), notBefore: opensslDate(notBefore), notAfter: opensslDate(notAfter), fingerprint256: fingerprint.slice(fingerprint.indexOf('=') + 1) };

  // like an ACME CA's chain: root → intermediate → leaf, served as leaf + intermediate (the root is not sent)
  makeCa('root', 'Runbooks Test Root');
  openssl('req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=Runbooks Test Intermediate', '-keyout', 'int.key', '-out', 'int.csr');
  writeFileSync(file('int.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl('x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', '0x1001', '-days', '20', '-sha256', '-extfile', 'int.ext', '-out', 'int.pem');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-set_serial', '0x1002', '-days', '10', '-sha256', '-extfile', 'leaf.ext', '-out', 'leaf-int.pem');

  const key = readFileSync(file('leaf.key'));
  const cert = `${readFileSync(file('leaf.pem'), 'utf8')}${readFileSync(file('ca.pem'), 'utf8')}`;
  const answer = (_req: unknown, res: { end: (s: string) => void }) => res.end('ok');
  server = https.createServer({ key, cert }, answer);
  tls12 = https.createServer({ key, cert, maxVersion: 'TLSv1.2' }, answer);
  chained = https.createServer({ key, cert: `${readFileSync(file('leaf-int.pem'), 'utf8')}${readFileSync(file('int.pem'), 'utf8')}` }, answer);
  silent = net.createServer((socket) => silentSockets.add(socket)); // accepts, never answers the ClientHello
  [port, tls12Port, silentPort, chainedPort] = await Promise.all([listen(server), listen(tls12), listen(silent), listen(chained)]);
  const gone = net.createServer();
  refusedPort = await listen(gone);
  await close(gone);
});

afterAll(async () => {
  server.closeAllConnections();
  tls12.closeAllConnections();
  chained.closeAllConnections();
  for (const socket of silentSockets) socket.destroy();
  await Promise.all([close(server), close(tls12), close(silent), close(chained)]);
  rmSync(tmp, { recursive: true, force: true });
});

it('reads the served certificate with SNI, trusted by the given CA file', async () => {
  const got = await inspectServedCertificate({ address: '127.0.0.1', port, servername: 'app.runbooks.test', caFile: file('ca.pem') });
  expect(got).toEqual({
    ...expected,
    commonName: 'app.runbooks.test',
    names: ['app.runbooks.test', '*.api.runbooks.test'],
    issuer: 'O=Runbooks Test, CN=Runbooks Test CA',
    issuerCommonName: 'Runbooks Test CA',
    address: '127.0.0.1',
    port,
    servername: 'app.runbooks.test',
    protocol: 'TLSv1.3',
    trusted: true,
    authorized: true,
  });
  expect(expected.serial).toBe('7A3F00C1D2E3F4');
  // a name the wildcard covers is authorized too
  expect(await inspectServedCertificate({ address: '127.0.0.1', port, servername: 'v1.api.runbooks.test', caFile: file('ca.pem') })).toMatchObject({ authorized: true, serial: expected.serial });
  expect(JSON.stringify(got)).not.toMatch(/PRIVATE|BEGIN/);
});

it("without a CA file, trust is judged against node's default roots: reported as untrusted, not thrown", async () => {
  const got = await inspectServedCertificate({ address: '127.0.0.1', port, servername: 'app.runbooks.test' });
  expect(got).toMatchObject({ serial: expected.serial, notAfter: expected.notAfter, trusted: false, trustError: 'SELF_SIGNED_CERT_IN_CHAIN', authorized: false, authorizationError: 'SELF_SIGNED_CERT_IN_CHAIN' });
});

it('trust and names are told apart: a CA that did not sign it is untrusted; a name it does not cover is trusted but not authorized', async () => {
  expect(await inspectServedCertificate({ address: '127.0.0.1', port, servername: 'app.runbooks.test', caFile: file('other-ca.pem') })).toMatchObject({
    serial: expected.serial,
    trusted: false,
    trustError: 'SELF_SIGNED_CERT_IN_CHAIN',
    authorized: false,
  });
  const wrongName = await inspectServedCertificate({ address: '127.0.0.1', port, servername: 'shop.runbooks.test', caFile: file('ca.pem') });
  expect(wrongName).toMatchObject({ trusted: true, authorized: false, authorizationError: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  expect(wrongName).not.toHaveProperty('trustError');
});

it("a chain through an intermediate (like pebble's, whose root is not sent) is trusted only with its root", async () => {
  const probe = (caFile?: string) => inspectServedCertificate({ address: '127.0.0.1', port: chainedPort, servername: 'app.runbooks.test', ...(caFile ? { caFile } : {}) });
  expect(await probe()).toMatchObject({ serial: '1002', issuerCommonName: 'Runbooks Test Intermediate', trusted: false, trustError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', authorized: false });
  expect(await probe(file('ca.pem'))).toMatchObject({ trusted: false, trustError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' });
  // the intermediate alone is no trust anchor (no partial chains)
  expect(await probe(file('int.pem'))).toMatchObject({ trusted: false });
  expect(await probe(file('root.pem'))).toMatchObject({ trusted: true, authorized: true });
});

it('with requireTrusted, a CA that did not sign it, or a name it does not cover, fails without retry and says what is served', async () => {
  const untrusted = (await rejectionOf(inspectServedCertificate({ address: '127.0.0.1', port, servername: 'app.runbooks.test', caFile: file('other-ca.pem'), requireTrusted: true }))) as ApplicationFailure;
  expect(untrusted.nonRetryable).toBe(true);
  expect(untrusted.type).toBe('TlsUntrusted');
  expect(untrusted.message).toBe(
    `127.0.0.1:${port} (SNI app.runbooks.test) serves a certificate the CA file ${file('other-ca.pem')} does not accept for app.runbooks.test: SELF_SIGNED_CERT_IN_CHAIN (serial ${expected.serial}, names app.runbooks.test, *.api.runbooks.test, issuer O=Runbooks Test, CN=Runbooks Test CA, expires ${expected.notAfter})`,
  );

  const wrongName = (await rejectionOf(inspectServedCertificate({ address: '127.0.0.1', port, servername: 'shop.runbooks.test', caFile: file('ca.pem'), requireTrusted: true }))) as ApplicationFailure;
  expect(wrongName.nonRetryable).toBe(true);
  expect(wrongName.message).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} \\(SNI shop\\.runbooks\\.test\\) serves a certificate .* does not accept for shop\\.runbooks\\.test: ERR_TLS_CERT_ALTNAME_INVALID`));
  // a wildcard covers one label only
  const deeper = (await rejectionOf(inspectServedCertificate({ address: '127.0.0.1', port, servername: 'a.b.api.runbooks.test', caFile: file('ca.pem'), requireTrusted: true }))) as ApplicationFailure;
  expect(deeper.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);

  // against node's default roots
  const noCa = (await rejectionOf(inspectServedCertificate({ address: '127.0.0.1', port, servername: 'app.runbooks.test', requireTrusted: true }))) as ApplicationFailure;
  expect(noCa.message).toMatch(/serves a certificate node's default roots do not accept for app\.runbooks\.test: SELF_SIGNED_CERT_IN_CHAIN/);

  // without requireTrusted the wrong name is reported, not thrown
  expect(await createTlsActivities().inspectServedCertificate({ address: '127.0.0.1', port, servername: 'shop.runbooks.test' })).toMatchObject({ authorized: false, serial: expected.serial });
});

it('reports the negotiated protocol (TLS 1.2)', async () => {
  expect(await inspectServedCertificate({ address: '127.0.0.1', port: tls12Port, servername: 'app.runbooks.test', caFile: file('ca.pem') })).toMatchObject({ protocol: 'TLSv1.2', authorized: true });
});

it('a refused port and a silent one are retryable failures naming address, port and servername', async () => {
  const refused = (await rejectionOf(inspectServedCertificate({ address: '127.0.0.1', port: refusedPort, servername: 'app.runbooks.test' }))) as ApplicationFailure;
  expect(refused.nonRetryable).toBe(false);
  expect(refused.message).toBe(`cannot connect to 127.0.0.1:${refusedPort} (SNI app.runbooks.test): connection refused`);

  const started = Date.now();
  const timedOut = (await rejectionOf(createTlsActivities({ timeoutMs: 300 }).inspectServedCertificate({ address: '127.0.0.1', port: silentPort, servername: 'app.runbooks.test' }))) as ApplicationFailure;
  expect(timedOut.nonRetryable).toBe(false);
  expect(timedOut.message).toBe(`TLS handshake with 127.0.0.1:${silentPort} (SNI app.runbooks.test) timed out after 300 ms`);
  expect(Date.now() - started).toBeLessThan(5000);
});

it("self-signed mode: the openssl command's certificate, served, covers the names, is trusted by itself only", async () => {
  const [cmd, ...args] = selfSignedCertificateArgv({ names: ['dev.runbooks.test', '*.dev.runbooks.test'], keyFile: file('self.key'), certFile: file('self.pem'), days: 7 });
  execFileSync(cmd, args, { stdio: 'ignore' });
  const self = https.createServer({ key: readFileSync(file('self.key')), cert: readFileSync(file('self.pem')) });
  const selfPort = await listen(self);
  try {
    const got = await inspectServedCertificate({ address: '127.0.0.1', port: selfPort, servername: 'x.dev.runbooks.test', caFile: file('self.pem') });
    expect(got).toMatchObject({ trusted: true, authorized: true, commonName: 'dev.runbooks.test', names: ['dev.runbooks.test', '*.dev.runbooks.test'], issuer: 'CN=dev.runbooks.test' });
    expect(Date.parse(got.notAfter) - Date.parse(got.notBefore)).toBe(7 * 86_400_000);
    // as a client sees it: not trusted by the default roots, nor by another CA
    expect(await inspectServedCertificate({ address: '127.0.0.1', port: selfPort, servername: 'x.dev.runbooks.test' })).toMatchObject({ trusted: false, trustError: 'DEPTH_ZERO_SELF_SIGNED_CERT', authorized: false });
    expect(await inspectServedCertificate({ address: '127.0.0.1', port: selfPort, servername: 'x.dev.runbooks.test', caFile: file('ca.pem') })).toMatchObject({ trusted: false });
  } finally {
    self.closeAllConnections();
    await close(self);
  }
});

it('a missing CA file is a configuration error', async () => {
  const f = (await rejectionOf(inspectServedCertificate({ address: '127.0.0.1', port, servername: 'app.runbooks.test', caFile: file('nope.pem') }))) as ApplicationFailure;
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toBe(`cannot read the CA file ${file('nope.pem')}: ENOENT`);
});
