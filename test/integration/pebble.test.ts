// The ACME test server of scripts/pebble.sh, end to end with the bind9 of scripts/bind9.sh: its
// HTTPS listeners trust our own CA (PEBBLE_TLS_CA), and it resolves names through bind9 (names
// under runbooks.test exist nowhere else): a DNS-01 order for a wildcard and its apex with the
// TXT records set by the RFC 2136 provider, an HTTP-01 order validated on PEBBLE_HTTP_PORT, and an
// order asking for its own validity (notBefore/notAfter). Issued chains verify against the root
// pebble made at its start (management API /roots/0).
import { randomBytes, X509Certificate } from 'node:crypto';
import { promises as systemDns } from 'node:dns';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as acme from 'acme-client';
import { openDnsProvider } from '../../activities/dns/rfc2136';
import { BIND9_ADDRESS, BIND9_TSIG_KEY_FILE, BIND9_ZONE, PEBBLE_CERT_VALIDITY_SECONDS, PEBBLE_DIRECTORY_URL, PEBBLE_HTTP_PORT, PEBBLE_MANAGEMENT_URL, PEBBLE_TLS_CA } from '../helpers/paths';

jest.setTimeout(120_000);

const run = randomBytes(4).toString('hex');
const pebbleCa = readFileSync(PEBBLE_TLS_CA);
const agent = new https.Agent({ ca: pebbleCa });
// acme-client talks through its own axios instance: trust pebble's CA there (this process only)
acme.axios.defaults.httpsAgent = agent;
const dns = openDnsProvider({ type: 'rfc2136', server: BIND9_ADDRESS, zone: BIND9_ZONE, keyFile: BIND9_TSIG_KEY_FILE });

function get(url: string, opts: https.RequestOptions = { agent }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, opts, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function newClient(): Promise<acme.Client> {
  const client = new acme.Client({ directoryUrl: PEBBLE_DIRECTORY_URL, accountKey: await acme.crypto.createPrivateEcdsaKey(), backoffMin: 200, backoffMax: 1000 });
  await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:it-${run}@example.com`] });
  return client;
}

/** Pebble's issuing root: made anew at every pebble start, so fetched, never cached. */
async function pebbleRoot(): Promise<X509Certificate> {
  const res = await get(`${PEBBLE_MANAGEMENT_URL}/roots/0`);
  expect(res.status).toBe(200);
  return new X509Certificate(res.body);
}

/** The leaf of a PEM chain, after checking every link up to pebble's root. */
async function verifiedLeaf(chainPem: string): Promise<X509Certificate> {
  const certs = acme.crypto.splitPemChain(chainPem).map((pem) => new X509Certificate(pem));
  expect(certs.length).toBeGreaterThanOrEqual(2);
  const root = await pebbleRoot();
  for (let i = 0; i < certs.length; i++) {
    const issuer = certs[i + 1] ?? root;
    expect(certs[i].checkIssued(issuer)).toBe(true);
    expect(certs[i].verify(issuer.publicKey)).toBe(true);
  }
  return certs[0];
}

const sans = (cert: X509Certificate) => (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^DNS:/, '')).sort();
const lifetimeSeconds = (cert: X509Certificate) => (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000;

describe('pebble', () => {
  it('serves its directory over HTTPS with a certificate from our CA', async () => {
    const res = await get(PEBBLE_DIRECTORY_URL);
    expect(res.status).toBe(200);
    const dir = JSON.parse(res.body);
    expect(dir.newNonce).toMatch(/^https:\/\/127\.0\.0\.1:14000\//);
    expect(dir.newOrder).toBeDefined();
    // without our CA the listener is not trusted
    // (node's TLS errors come from another realm than jest's Error: no toBeInstanceOf here)
    const code = await get(PEBBLE_DIRECTORY_URL, {}).then(
      () => 'connected',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(code).toMatch(/CERT|SELF_SIGNED|UNABLE/);
    expect((await pebbleRoot()).subject).toContain('Pebble Root CA');
  });

  it('issues a wildcard + apex certificate over DNS-01, resolving the challenges through bind9', async () => {
    const apex = `p${run}.wild.${BIND9_ZONE}`;
    // the names exist only in bind9: pebble can only have asked it
    await expect(systemDns.lookup(apex)).rejects.toThrow();
    const client = await newClient();
    const [, csr] = await acme.crypto.createCsr({ commonName: apex, altNames: [apex, `*.${apex}`] });
    const challengeName = `_acme-challenge.${apex}`;
    const seen: string[] = [];
    const chain = await client.auto({
      csr,
      termsOfServiceAgreed: true,
      challengePriority: ['dns-01'],
      skipChallengeVerification: true, // acme-client would ask the system resolver
      // the wildcard's and the apex's challenges run at the same time on one name: add, never replace
      challengeCreateFn: async (authz, _challenge, keyAuthorization) => {
        expect(`_acme-challenge.${authz.identifier.value}`).toBe(challengeName);
        seen.push(keyAuthorization);
        await dns.addTxt(challengeName, keyAuthorization, 30);
        await dns.waitForRecord(challengeName, 'TXT', [keyAuthorization], 10_000);
      },
      challengeRemoveFn: async (_authz, _challenge, keyAuthorization) => {
        await dns.removeTxt(challengeName, keyAuthorization);
      },
    });
    expect(seen).toHaveLength(2);
    const leaf = await verifiedLeaf(chain);
    expect(sans(leaf)).toEqual([`*.${apex}`, apex].sort());
    expect(leaf.checkHost(`x.${apex}`)).toBe(`*.${apex}`); // the SAN that matched
    // issued with the configured validity (pebble: notAfter = notBefore + period - 1 s)
    expect(Math.abs(lifetimeSeconds(leaf) - PEBBLE_CERT_VALIDITY_SECONDS)).toBeLessThanOrEqual(2);
    expect(await dns.lookup(challengeName, 'TXT')).toEqual([]);
  });

  it(`validates HTTP-01 on port ${PEBBLE_HTTP_PORT} of the address bind9 gives the name`, async () => {
    const name = `h${run}.wild.${BIND9_ZONE}`;
    const tokens = new Map<string, string>();
    const hosts: string[] = [];
    const server = http.createServer((req, res) => {
      hosts.push(String(req.headers.host));
      const token = /^\/\.well-known\/acme-challenge\/([^/]+)$/.exec(req.url ?? '')?.[1];
      const body = token ? tokens.get(token) : undefined;
      res.writeHead(body ? 200 : 404).end(body ?? 'not found');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on 127.0.0.1:${PEBBLE_HTTP_PORT} (${err.code}): pebble's HTTP-01 port is taken, e.g. by a test's nginx`)),
      );
      server.listen(PEBBLE_HTTP_PORT, '127.0.0.1', () => resolve());
    });
    try {
      expect((server.address() as AddressInfo).port).toBe(PEBBLE_HTTP_PORT);
      const client = await newClient();
      const [, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] });
      const chain = await client.auto({
        csr,
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => void tokens.set(challenge.token, keyAuthorization),
        challengeRemoveFn: async (_authz, challenge) => void tokens.delete(challenge.token),
      });
      expect(sans(await verifiedLeaf(chain))).toEqual([name]);
      expect(hosts).toContain(`${name}:${PEBBLE_HTTP_PORT}`);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('honours an order’s notBefore/notAfter: a certificate with a third of its lifetime left', async () => {
    const name = `v${run}.${BIND9_ZONE}`;
    const client = await newClient();
    const now = Date.now();
    const notBefore = new Date(Math.floor(now / 1000) * 1000 - 2 * 86400_000).toISOString().replace('.000Z', 'Z');
    const notAfter = new Date(Math.floor(now / 1000) * 1000 + 86400_000).toISOString().replace('.000Z', 'Z');
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: name }], notBefore, notAfter });
    const challengeName = `_acme-challenge.${name}`;
    for (const authz of await client.getAuthorizations(order)) {
      const challenge = authz.challenges.find((c) => c.type === 'dns-01');
      if (!challenge) throw new Error('no dns-01 challenge offered');
      const value = await client.getChallengeKeyAuthorization(challenge);
      await dns.setTxt(challengeName, [value]);
      try {
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      } finally {
        await dns.removeTxt(challengeName);
      }
    }
    const [, csr] = await acme.crypto.createCsr({ commonName: name });
    const leaf = await verifiedLeaf(await client.getCertificate(await client.finalizeOrder(order, csr)));
    expect(new Date(leaf.validFrom).toISOString().replace('.000Z', 'Z')).toBe(notBefore);
    expect(new Date(leaf.validTo).toISOString().replace('.000Z', 'Z')).toBe(notAfter);
    expect(lifetimeSeconds(leaf)).toBe(3 * 86400);
  });
});
