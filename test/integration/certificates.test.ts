// The certificate activities (runbook 2) against the real thing: pebble (scripts/pebble.sh) as the CA,
// bind9 (scripts/bind9.sh) for the names and the DNS-01 TXT records, and an nginx proxy container on
// the test engine in front of a demo-app replica. HTTP-01 for app.runbooks.test (→ 127.0.0.1, the
// proxy's port 80 published on PEBBLE_HTTP_PORT), DNS-01 for a wildcard and its apex; after each, a
// TLS client trusting pebble's root sees the new certificate served by nginx. Keys stay in the proxy's
// volume (0600); challenge files and records are gone afterwards, also after a refused order.
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import * as acme from 'acme-client';
import { openDnsProvider } from '../../activities/dns/rfc2136';
import { renewalDue } from '../../common/certificate-rules';
import { renderProxyConfig } from '../../common/commands/nginx';
import { labelsFor, proxyContainerName, proxyTlsVolumeName } from '../../common/naming';
import type { CertificatePlan, ContainerSpec } from '../../common/types';
import { judgeServed } from '../../workflows/issueCertificate';
import { BIND9_ADDRESS, BIND9_TSIG_KEY_FILE, BIND9_ZONE, DOCKER_SOCK, PEBBLE_DIRECTORY_URL, PEBBLE_HTTP_PORT, PEBBLE_MANAGEMENT_URL, PEBBLE_TLS_CA, REGISTRY } from '../helpers/paths';

jest.setTimeout(180_000);

const APP = 'certit';
const ENV = 'test';
const HTTPS_PORT = 18443;
const docker = new Docker({ socketPath: DOCKER_SOCK });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-cert-it-'));
const inventoryPath = path.join(tmp, 'inventory.yaml');
const rootFile = path.join(tmp, 'pebble-root.pem');
const proxyName = proxyContainerName(APP, ENV);

function inventory(tls: string): string {
  return `hosts:
  local:
    docker: { socketPath: "${DOCKER_SOCK}" }
    minFreeDiskMb: 256
apps:
  ${APP}:
    image: ${REGISTRY}/demo-app
    port: 8080
    healthCheck: { path: /health, timeoutSeconds: 60 }
    proxyImage: ${REGISTRY}/nginx:1
    environments:
      ${ENV}:
        hosts: [local]
        version: v1
        proxy:
          hostPort: ${PEBBLE_HTTP_PORT}
          httpsPort: ${HTTPS_PORT}
          domain: app.runbooks.test
          tls:
${tls
  .trim()
  .split('\n')
  .map((l) => `            ${l}`)
  .join('\n')}
`;
}

const TLS_COMMON = `acme: { directoryUrl: "${PEBBLE_DIRECTORY_URL}", caFile: "${PEBBLE_TLS_CA}", email: ops@runbooks.test }
resolver: "${BIND9_ADDRESS}"
dns: { type: rfc2136, server: "${BIND9_ADDRESS}", zone: ${BIND9_ZONE}, keyFile: "${BIND9_TSIG_KEY_FILE}" }`;

let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;

function spec(name: string, o: Partial<ContainerSpec>): ContainerSpec {
  return { name, image: `${REGISTRY}/demo-app:v1`, role: 'web', labels: labelsFor(APP, ENV, 'web', {}), env: {}, envFiles: [], network: `${APP}-${ENV}`, aliases: [], volumes: [], binds: [], ports: [], stopTimeoutSeconds: 2, restart: false, ...o };
}

function fetchText(url: string, options: https.RequestOptions = {}): Promise<{ status: number; body: string; location?: string }> {
  const get = url.startsWith('https:') ? https.get : http.get;
  return new Promise((resolve, reject) => {
    get(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers.location ? { location: res.headers.location } : {}) }));
    }).on('error', reject);
  });
}

async function proxyExec(cmd: string): Promise<string> {
  const exec = await docker.getContainer(proxyName).exec({ Cmd: ['sh', '-c', cmd], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((r) => stream.on('end', r));
  return Buffer.concat(chunks).toString('utf8').replace(/[\x00-\x08]\x00\x00\x00[\s\S]{4}/g, '');
}

async function plan(tls: string, input: { domains?: string[] } = {}): Promise<CertificatePlan> {
  writeFileSync(inventoryPath, inventory(tls));
  return acts.resolveCertificatePlan({ app: APP, env: ENV, ...input });
}

/** The whole issuance as the workflow runs it, on the one host. */
async function issue(p: CertificatePlan) {
  const proxy = p.proxies[0];
  const t0 = Date.now();
  const { csrPem } = await acts.createCertificateKey({ proxy, id: p.id, domains: p.domains });
  let ordered;
  try {
    ordered = await acts.orderCertificate({ proxy, proxies: p.proxies, plan: p, csrPem });
  } finally {
    await acts.cleanupChallenges({ plan: p });
  }
  const installed = await acts.installCertificate({ proxy, id: p.id, fullchainPem: ordered.fullchainPem });
  await acts.enableHttps({ proxy, plan: p });
  return { ordered, installed, ms: Date.now() - t0, csrPem };
}

beforeAll(async () => {
  deps = createDeps({ inventoryPath, socketParent: path.join(tmp, 'sockets') });
  acts = createActivities(deps);
  writeFileSync(rootFile, (await fetchText(`${PEBBLE_MANAGEMENT_URL}/roots/0`, { ca: await import('node:fs').then((fs) => fs.readFileSync(PEBBLE_TLS_CA)) })).body);
  await cleanupContainers();
  const host = { name: 'local', address: '127.0.0.1', dockerSocket: DOCKER_SOCK, minFreeDiskMb: 256 };
  await acts.ensureNetwork({ host, name: `${APP}-${ENV}`, labels: labelsFor(APP, ENV, 'dependency', {}) });
  await acts.ensureContainer({ host, spec: spec(`${APP}-${ENV}-web-1`, {}) });
  await acts.ensureContainer({
    host,
    spec: spec(proxyName, {
      image: `${REGISTRY}/nginx:1`,
      role: 'proxy',
      labels: labelsFor(APP, ENV, 'proxy', {}),
      volumes: [{ name: proxyTlsVolumeName(APP, ENV), target: '/etc/nginx/tls' }],
      ports: [
        { hostIp: '127.0.0.1', hostPort: PEBBLE_HTTP_PORT, containerPort: 80 },
        { hostIp: '127.0.0.1', hostPort: HTTPS_PORT, containerPort: 443 },
      ],
    }),
  });
  await acts.configureProxy({ host, container: proxyName, config: renderProxyConfig({ app: APP, env: ENV, upstreams: [`${APP}-${ENV}-web-1:8080`], serverName: 'app.runbooks.test' }) });
});

async function cleanupContainers(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-${ENV}`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  await docker.getVolume(proxyTlsVolumeName(APP, ENV)).remove().catch(() => undefined);
}

afterAll(async () => {
  await closeDeps(deps);
  await cleanupContainers();
});

describe('certificates: pebble + bind9 + nginx', () => {
  it('HTTP-01: preflight, key on the host, order, install, HTTPS with redirect; a client trusting pebble sees it', async () => {
    const p = await plan(`domains: [app.runbooks.test]\nchallenge: http-01\n${TLS_COMMON}`);
    expect(p).toMatchObject({ mode: 'acme', challenge: 'http-01', domains: ['app.runbooks.test'], id: `${APP}-${ENV}` });
    const pre = await acts.certificatePreflight({ plan: p });
    expect(pre.checks.filter((c) => !c.ok)).toEqual([]);
    expect(pre.checks).toHaveLength(2);

    const r = await issue(p);
    console.log(`HTTP-01 issuance (key, order, install, HTTPS): ${r.ms} ms`);
    expect(r.csrPem).toContain('BEGIN CERTIFICATE REQUEST');
    expect(r.installed.changed).toBe(true);
    expect(r.installed.certificate.names).toEqual(['app.runbooks.test']);

    const served = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    expect(served).toMatchObject({ authorized: true, serial: r.ordered.certificate.serial, notAfter: r.ordered.certificate.notAfter });
    expect(['TLSv1.2', 'TLSv1.3']).toContain(served.protocol);

    // the key never left the host: 0600 in the proxy's volume, and no .next leftovers
    expect((await proxyExec(`stat -c '%a %n' /etc/nginx/tls/${p.id}.key /etc/nginx/tls/acme-account.key; ls /etc/nginx/tls`)).trim().split('\n')).toEqual(
      expect.arrayContaining([`600 /etc/nginx/tls/${p.id}.key`, '600 /etc/nginx/tls/acme-account.key']),
    );
    expect(await proxyExec('ls /etc/nginx/tls')).not.toMatch(/\.next/);
    expect(await proxyExec('ls -A /var/www/acme/.well-known/acme-challenge 2>/dev/null | wc -l')).toMatch(/^0/);

    // port 80 redirects to HTTPS but keeps the ACME path; HTTPS answers with the security headers
    const plain = await fetchText(`http://127.0.0.1:${PEBBLE_HTTP_PORT}/version`, { headers: { Host: 'app.runbooks.test' } });
    expect(plain).toMatchObject({ status: 301, location: `https://app.runbooks.test:${HTTPS_PORT}/version` });
    expect((await fetchText(`http://127.0.0.1:${PEBBLE_HTTP_PORT}/.well-known/acme-challenge/none`)).status).toBe(404);
    const secure = await new Promise<{ status: number; hsts?: string; body: string }>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: HTTPS_PORT, path: '/version', servername: 'app.runbooks.test', headers: { Host: 'app.runbooks.test' }, ca: require('node:fs').readFileSync(rootFile) }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] as string | undefined, body }));
        })
        .on('error', reject);
    });
    expect(secure).toMatchObject({ status: 200, hsts: 'max-age=63072000', body: expect.stringContaining('v1') });

    // the runbooks' own smoke test through port 80 follows the redirect to HTTPS
    const smoke = await acts.smokeTest({ url: `http://127.0.0.1:${PEBBLE_HTTP_PORT}/version`, expectStatus: 200, expectBody: 'v1', hostHeader: 'app.runbooks.test', attempts: 1 });
    expect(smoke.status).toBe(200);

    // the same chain again: nothing changes
    expect((await acts.installCertificate({ proxy: p.proxies[0], id: p.id, fullchainPem: r.ordered.fullchainPem })).changed).toBe(false);
    expect((await acts.enableHttps({ proxy: p.proxies[0], plan: p })).changed).toBe(false);
  });

  it('DNS-01: a wildcard and its apex, TXT records through RFC 2136, removed afterwards', async () => {
    const p = await plan(`domains: [wild.runbooks.test, "*.wild.runbooks.test"]\nchallenge: dns-01\n${TLS_COMMON}`);
    expect(p.challenge).toBe('dns-01');
    const pre = await acts.certificatePreflight({ plan: p });
    expect(pre.checks.filter((c) => !c.ok)).toEqual([]);
    const r = await issue(p);
    console.log(`DNS-01 wildcard issuance (key, order, install, HTTPS): ${r.ms} ms`);
    expect(r.installed.certificate.names.sort()).toEqual(['*.wild.runbooks.test', 'wild.runbooks.test']);
    const served = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'shop.wild.runbooks.test', caFile: rootFile });
    expect(served).toMatchObject({ authorized: true, serial: r.ordered.certificate.serial });
    const dns = openDnsProvider({ type: 'rfc2136', server: BIND9_ADDRESS, zone: BIND9_ZONE, keyFile: BIND9_TSIG_KEY_FILE });
    expect(await dns.lookup('_acme-challenge.wild.runbooks.test', 'TXT')).toEqual([]);
  });

  it('renewal: a served certificate with a third of its lifetime left is due, the one replacing it is not (the next run is a no-op); the account key is reused', async () => {
    const p = await plan(`domains: [app.runbooks.test]\nchallenge: http-01\n${TLS_COMMON}`);
    const proxy = p.proxies[0];
    const accountKeyBefore = await proxyExec(`sha256sum /etc/nginx/tls/acme-account.key`);
    // a real short-lived certificate from pebble (an order may ask for its validity): 3 days, 2 of them gone
    const { csrPem } = await acts.createCertificateKey({ proxy, id: p.id, domains: p.domains });
    const client = new acme.Client({ directoryUrl: PEBBLE_DIRECTORY_URL, accountKey: await acme.crypto.createPrivateEcdsaKey() });
    await client.createAccount({ termsOfServiceAgreed: true });
    const now = Date.now();
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: 'app.runbooks.test' }], notBefore: new Date(now - 2 * 86_400_000).toISOString(), notAfter: new Date(now + 86_400_000).toISOString() });
    for (const authz of await client.getAuthorizations(order)) {
      const challenge = authz.challenges.find((c) => c.type === 'http-01')!;
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      await proxyExec(`mkdir -p /var/www/acme/.well-known/acme-challenge && printf '%s' '${keyAuthorization}' > /var/www/acme/.well-known/acme-challenge/${(challenge as { token: string }).token}`);
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
    const shortLived = await client.getCertificate(await client.finalizeOrder(order, csrPem));
    await acts.cleanupChallenges({ plan: p });
    await acts.installCertificate({ proxy, id: p.id, fullchainPem: shortLived });
    await acts.enableHttps({ proxy, plan: p });
    const old = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    expect(Date.parse(old.notAfter) - Date.parse(old.notBefore)).toBeLessThanOrEqual(3 * 86_400_000);
    const before = judgeServed(old, p, Date.now());
    expect(before).toMatchObject({ keep: false, reason: expect.stringMatching(/^due for renewal/) });

    const r = await issue(p);
    const served = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    expect(served.serial).toBe(r.ordered.certificate.serial);
    expect(served.serial).not.toBe(old.serial);
    expect(judgeServed(served, p, Date.now())).toMatchObject({ keep: true, reason: expect.stringMatching(/^valid/) }); // the next run changes nothing
    expect(renewalDue(served, Date.now(), p.renewFraction).due).toBe(false);
    expect(await proxyExec(`sha256sum /etc/nginx/tls/acme-account.key`)).toBe(accountKeyBefore);
  });

  it('self-signed (development): key and certificate made on the host, served', async () => {
    const p = await plan(`domains: [app.runbooks.test]\nchallenge: http-01\n${TLS_COMMON}`);
    const self = await acts.selfSignCertificate({ proxy: p.proxies[0], id: p.id, domains: p.domains, days: 1 });
    await acts.enableHttps({ proxy: p.proxies[0], plan: p });
    const served = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test' });
    expect(served).toMatchObject({ serial: self.certificate.serial, authorized: false, names: ['app.runbooks.test'] });
    expect(served.issuer).toBe(`CN=app.runbooks.test`);
    // back to a CA certificate for the next tests
    await issue(p);
  });

  it('the account key may be a secret file on the worker instead; an unreadable one is refused without its content', async () => {
    const keyFile = path.join(tmp, 'acme-account.pem');
    writeFileSync(keyFile, (await acme.crypto.createPrivateEcdsaKey()).toString(), { mode: 0o600 });
    const p = await plan(`domains: [app.runbooks.test]\nchallenge: http-01\n${TLS_COMMON.replace('email: ops@runbooks.test', `email: ops@runbooks.test, accountKeyFile: "${keyFile}"`)}`);
    expect(p.acme.accountKeyFile).toBe(keyFile);
    const r = await issue(p);
    expect(r.installed.changed).toBe(true);
    const missing = { ...p, acme: { ...p.acme, accountKeyFile: path.join(tmp, 'nope.pem') } };
    const err = await acts.orderCertificate({ proxy: p.proxies[0], proxies: p.proxies, plan: missing, csrPem: r.csrPem }).then(
      () => undefined,
      (e: unknown) => e as ApplicationFailure,
    );
    expect(err).toMatchObject({ type: 'AcmeAccountKey', nonRetryable: true, message: expect.stringContaining('nope.pem: ENOENT') });
  });

  it('a refused order (the name points elsewhere) fails non-retryably, leaves no token file, and the served certificate stays', async () => {
    const p = await plan(`domains: [app.runbooks.test]\nchallenge: http-01\n${TLS_COMMON}`);
    const before = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    const bad = await plan(`domains: [elsewhere.runbooks.test]\nchallenge: http-01\n${TLS_COMMON}`);
    const pre = await acts.certificatePreflight({ plan: bad });
    expect(pre.ok).toBe(false);
    expect(pre.checks.find((c) => !c.ok)?.detail).toMatch(/192\.0\.2\.10/);
    const { csrPem } = await acts.createCertificateKey({ proxy: bad.proxies[0], id: `${p.id}-bad`, domains: bad.domains });
    const err = await acts.orderCertificate({ proxy: bad.proxies[0], proxies: bad.proxies, plan: bad, csrPem }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).type).toBe('AcmeRejected');
    expect(await proxyExec('ls -A /var/www/acme/.well-known/acme-challenge 2>/dev/null | wc -l')).toMatch(/^0/);
    const after = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    expect(after.serial).toBe(before.serial);
  });

  it('a failing DNS-01 order (one name outside the zone) leaves no TXT record behind, and the served certificate stays', async () => {
    const before = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    const bad = await plan(`domains: [wild.runbooks.test, "*.wild.runbooks.test", app.outside-the-zone.test]\nchallenge: dns-01\n${TLS_COMMON}`);
    const { csrPem } = await acts.createCertificateKey({ proxy: bad.proxies[0], id: `${bad.id}-bad`, domains: bad.domains });
    const err = await acts.orderCertificate({ proxy: bad.proxies[0], proxies: bad.proxies, plan: bad, csrPem }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    const dns = openDnsProvider({ type: 'rfc2136', server: BIND9_ADDRESS, zone: BIND9_ZONE, keyFile: BIND9_TSIG_KEY_FILE });
    expect(await dns.lookup('_acme-challenge.wild.runbooks.test', 'TXT')).toEqual([]);
    const after = await acts.inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: 'app.runbooks.test', caFile: rootFile });
    expect(after.serial).toBe(before.serial);
  });
});
