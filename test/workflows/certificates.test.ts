// issueCertificate and renewCertificates on the time-skipping server, activities mocked by a fake
// CA and fake proxies (what each host's HTTPS port serves is whatever was installed and reloaded
// last): the exact ACME order of steps, the no-op, --force, a failed preflight (nothing changed),
// a failed order (challenges still cleaned up, its failure type kept), a verify mismatch, the
// self-signed path; and the acceptance test: renewal ticks every 12 h over 90 simulated days renew
// exactly when a third of the lifetime or less is left, and a failed renewal alerts once and is
// retried by the next tick.
import { randomUUID } from 'node:crypto';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { buildCertificatePlan, certificateTargets } from '../../common/certificate-plan';
import { parseInventory } from '../../common/inventory';
import type { CertificateFacts, CertificatePlan, IssueCertificateInput, IssueCertificateResult, RenewCertificatesResult } from '../../common/types';
import { judgeServed, type Served } from '../../workflows/issueCertificate';
import { FINGERPRINT, mockActivities, type MockActivities } from '../helpers/mock-activities';
import { settled, testWorker, timeSkippingEnv, workflowBundle, workflowFailure } from '../helpers/workflow-env';

jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** An inventory with proxy.tls: production (ACME, two hosts, alerts) and dev (self-signed, one host). */
const TEST_INVENTORY = `
hosts:
  one:
    docker: { socketPath: /run/test.sock }
  two:
    ssh: { address: 10.0.0.2, user: deploy, keyFile: /keys/id, hostKey: "${FINGERPRINT}" }
apps:
  shop:
    image: reg:5000/shop
    port: 8080
    proxyImage: "reg:5000/nginx:1"
    environments:
      production:
        hosts: [one, two]
        version: v1
        proxy:
          hostPort: 8080
          httpsPort: 8443
          domain: shop.example.com
          tls:
            domains: [shop.example.com, www.shop.example.com]
            acme: { email: ops@example.com }
            notify: { webhookUrlFile: /etc/shop/webhook-url }
      dev:
        hosts: [one]
        version: v1
        proxy:
          hostPort: 8081
          httpsPort: 8444
          tls: { domains: [dev.shop.example.com], selfSigned: true, selfSignedDays: 30 }
`;
const inventory = parseInventory(TEST_INVENTORY);

/** What resolveCertificatePlan answers (the real planner over the test inventory). */
function planFor(input: IssueCertificateInput): CertificatePlan {
  return buildCertificatePlan(inventory, input);
}

type Cert = CertificateFacts & { commonName: string; issuerCommonName: string };
type Proxy = { host: { name: string }; httpsAddress: string; httpsPort: number };
const endpoint = (p: { httpsAddress: string; httpsPort: number }) => `${p.httpsAddress}:${p.httpsPort}`;

/**
 * The proxies' HTTPS ports and a CA. An ACME order issues a certificate of `lifetimeMs` from the
 * server's current time, backdated by an hour (as Let's Encrypt does); installCertificate writes it
 * on the host, enableHttps reloads the proxy (unless `staleReload`), after which it is served.
 */
class FakeTls {
  readonly served = new Map<string, Cert>();
  readonly installed = new Map<string, Cert>();
  /** Challenge token files and TXT records present, by host. */
  readonly challenges = new Set<string>();
  readonly events: string[] = [];
  readonly orders: { at: number; host: string; serial?: string; error?: string }[] = [];
  lifetimeMs = 30 * DAY;
  backdateMs = HOUR;
  staleReload = false;
  failedChecks: { check: string; ok: boolean; detail: string }[] = [];
  /** Thrown by the next orders, one each. */
  orderFailures: Error[] = [];
  /** What listCertificateTargets answers (the inventory's: production only unless a test says otherwise). */
  targets = certificateTargets(inventory).filter((t) => t.env === 'production');
  private nextSerial = 0x1000;
  private readonly pems = new Map<string, Cert>();

  /** A certificate already served by every host of production (e.g. left by an earlier run). */
  serve(plan: CertificatePlan, cert: Cert): void {
    for (const p of plan.proxies) {
      this.served.set(endpoint(p), cert);
      this.installed.set(endpoint(p), cert);
    }
  }

  caCertificate(names: string[], notBefore: number, lifetimeMs = this.lifetimeMs): Cert {
    const serial = (this.nextSerial++).toString(16).toUpperCase();
    return { serial, names, notBefore: new Date(notBefore).toISOString(), notAfter: new Date(notBefore + lifetimeMs).toISOString(), issuer: 'CN=Fake Intermediate CA', commonName: names[0], issuerCommonName: 'Fake Intermediate CA' };
  }

  activities() {
    const now = () => env.currentTimeMs();
    return {
      resolveCertificatePlan: async (input: IssueCertificateInput) => {
        this.events.push('plan');
        try {
          return planFor(input);
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
        }
      },
      listCertificateTargets: async () => this.targets,
      inspectServedCertificate: async (req: { address: string; port: number; servername: string }) => {
        const host = req.address === '127.0.0.1' ? 'one' : 'two';
        this.events.push(`inspect ${host}`);
        const c = this.served.get(`${req.address}:${req.port}`);
        if (!c) throw ApplicationFailure.create({ message: `${req.address}:${req.port} (SNI ${req.servername}): connection refused`, type: 'TlsUnreachable' });
        return { ...c, fingerprint256: 'AA:BB', address: req.address, port: req.port, servername: req.servername, protocol: 'TLSv1.3', authorized: true, trusted: true };
      },
      certificatePreflight: async () => {
        this.events.push('preflight');
        const checks = [{ check: 'dns shop.example.com', ok: true, detail: 'resolves to 127.0.0.1, 10.0.0.2' }, ...this.failedChecks];
        return { ok: checks.every((c) => c.ok), checks };
      },
      createCertificateKey: async (req: { proxy: Proxy; id: string }) => {
        this.events.push(`key ${req.proxy.host.name}`);
        return { csrPem: `-----BEGIN CERTIFICATE REQUEST-----\n${req.id}@${req.proxy.host.name}\n-----END CERTIFICATE REQUEST-----\n` };
      },
      orderCertificate: async (req: { proxy: Proxy; proxies: Proxy[]; plan: CertificatePlan; csrPem: string }) => {
        const at = await now();
        this.events.push(`order ${req.proxy.host.name}`);
        for (const p of req.proxies) for (const d of req.plan.domains) this.challenges.add(`${p.host.name}:/.well-known/acme-challenge/${d}`);
        const failure = this.orderFailures.shift();
        if (failure) {
          this.orders.push({ at, host: req.proxy.host.name, error: failure.message });
          throw failure;
        }
        const cert = this.caCertificate(req.plan.domains, at - this.backdateMs);
        this.orders.push({ at, host: req.proxy.host.name, serial: cert.serial });
        const fullchainPem = `-----BEGIN CERTIFICATE-----\nFAKE ${cert.serial}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nFAKE CA\n-----END CERTIFICATE-----\n`;
        this.pems.set(fullchainPem, cert);
        return { fullchainPem, certificate: facts(cert) };
      },
      cleanupChallenges: async () => {
        this.events.push('cleanup');
        const removedFiles = this.challenges.size;
        this.challenges.clear();
        return { removedFiles, removedRecords: 0 };
      },
      installCertificate: async (req: { proxy: Proxy; fullchainPem: string }) => {
        this.events.push(`install ${req.proxy.host.name}`);
        const cert = this.pems.get(req.fullchainPem)!;
        this.installed.set(endpoint(req.proxy), cert);
        return { certificate: facts(cert), changed: true };
      },
      selfSignCertificate: async (req: { proxy: Proxy; domains: string[]; days: number }) => {
        this.events.push(`self-sign ${req.proxy.host.name}`);
        const at = await now();
        const cert: Cert = { ...this.caCertificate(req.domains, at, req.days * DAY), issuer: `CN=${req.domains[0]}`, issuerCommonName: req.domains[0] };
        this.installed.set(endpoint(req.proxy), cert);
        return { certificate: facts(cert) };
      },
      enableHttps: async (req: { proxy: Proxy }) => {
        this.events.push(`https ${req.proxy.host.name}`);
        if (!this.staleReload) this.served.set(endpoint(req.proxy), this.installed.get(endpoint(req.proxy))!);
        return { changed: true };
      },
      notify: async () => ({ status: 200 }),
    };
  }
}

function facts(c: Cert): CertificateFacts {
  return { serial: c.serial, names: c.names, notBefore: c.notBefore, notAfter: c.notAfter, issuer: c.issuer };
}

function rateLimited(): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    'rate limited by the CA, retry after 2031-01-08T16:00:00.000Z: too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2031-01-08 16:00:00 UTC',
    'AcmeRateLimited',
  );
}

async function withWorker<T>(mocks: MockActivities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(fn(taskQueue));
}

function issue(fake: FakeTls, input: Partial<IssueCertificateInput> = {}): { mocks: MockActivities; run: Promise<IssueCertificateResult> } {
  const mocks = mockActivities(fake.activities());
  // a plain client: the time-skipping one may let the clock jump mid-run (to the lock workflow's timer)
  const run = withWorker(mocks, (taskQueue) =>
    new Client({ connection: env.connection }).workflow.execute('issueCertificate', { taskQueue, workflowId: `issueCertificate/shop/production/${randomUUID()}`, args: [{ app: 'shop', env: 'production', ...input }] }),
  ) as Promise<IssueCertificateResult>;
  return { mocks, run };
}

/** The served certificates at `fraction` of their lifetime left (now: the server's time). */
async function serveAged(fake: FakeTls, remainingFraction: number, plan = planFor({ app: 'shop', env: 'production' })): Promise<Cert> {
  const now = await env.currentTimeMs();
  const cert = fake.caCertificate(plan.domains, now - (1 - remainingFraction) * fake.lifetimeMs);
  fake.serve(plan, cert);
  return cert;
}

const CHANGES = ['preflight', 'key', 'order', 'install', 'self-sign', 'https', 'cleanup'];
const changes = (events: string[]) => events.filter((e) => CHANGES.includes(e.split(' ')[0]));

describe('judging the served certificate', () => {
  it('judgeServed: a 64-day certificate is kept at 42d 12h of age (21.5 days left) and due at 43 days (21 days ≤ ⅓ left)', () => {
    const plan = { domains: ['shop.example.com'], mode: 'acme' as const, renewFraction: 1 / 3 };
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    const cert: Served = { serial: '01', names: ['shop.example.com'], notBefore: new Date(t0).toISOString(), notAfter: new Date(t0 + 64 * DAY).toISOString(), issuer: 'CN=R10, O=Let\'s Encrypt, C=US', commonName: 'shop.example.com', issuerCommonName: 'R10' };
    expect(judgeServed(cert, plan, t0 + 42 * DAY + 12 * HOUR)).toMatchObject({ keep: true, reason: expect.stringMatching(/^valid: 21d 12h of 64d left/) });
    expect(judgeServed(cert, plan, t0 + 43 * DAY)).toMatchObject({ keep: false, reason: expect.stringMatching(/^due for renewal: 21d of 64d left/) });
    expect(judgeServed(undefined, plan, t0, false, 'connection refused').reason).toBe('no certificate served (connection refused)');
    expect(judgeServed({ ...cert, names: ['other.example.com'] }, plan, t0).reason).toMatch(/does not cover shop\.example\.com/);
    expect(judgeServed(cert, plan, t0 + 65 * DAY).reason).toMatch(/expired/);
    expect(judgeServed({ ...cert, issuer: 'CN=shop.example.com', issuerCommonName: 'shop.example.com' }, plan, t0).reason).toMatch(/self-signed, a CA-issued one is wanted/);
    expect(judgeServed(cert, { ...plan, mode: 'self-signed' }, t0).reason).toMatch(/a self-signed certificate is wanted/);
    const staging = { ...cert, issuer: 'CN=(STAGING) Counterfeit Cashew R10, O=(STAGING) Let\'s Encrypt, C=US' };
    expect(judgeServed(staging, plan, t0).keep).toBe(false);
    expect(judgeServed(staging, plan, t0, true).keep).toBe(true);
  });

  it('judgeServed with the trust check: a CA-issued certificate must chain to the trusted roots; self-signed and staging ones need not', () => {
    const plan = { domains: ['shop.example.com'], mode: 'acme' as const, renewFraction: 1 / 3 };
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    const cert: Served = { serial: '01', names: ['shop.example.com'], notBefore: new Date(t0).toISOString(), notAfter: new Date(t0 + 64 * DAY).toISOString(), issuer: 'CN=R10, O=Let\'s Encrypt, C=US', commonName: 'shop.example.com', issuerCommonName: 'R10' };
    expect(judgeServed({ ...cert, trusted: true }, plan, t0, false, undefined, true).keep).toBe(true);
    expect(judgeServed({ ...cert, trusted: false, trustError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' }, plan, t0, false, undefined, true)).toMatchObject({ keep: false, reason: expect.stringMatching(/^the served certificate is not trusted \(UNABLE_TO_GET_ISSUER_CERT_LOCALLY\)/) });
    expect(judgeServed(cert, plan, t0, false, undefined, true).reason).toMatch(/not trusted \(trust was not checked\)/);
    // runs from before the check (patched) keep judging without it
    expect(judgeServed({ ...cert, trusted: false }, plan, t0).keep).toBe(true);
    const selfSigned = { ...cert, issuer: 'CN=shop.example.com', issuerCommonName: 'shop.example.com', trusted: false };
    expect(judgeServed(selfSigned, { ...plan, mode: 'self-signed' }, t0, false, undefined, true).keep).toBe(true);
    const staging = { ...cert, issuer: 'CN=(STAGING) Counterfeit Cashew R10, O=(STAGING) Let\'s Encrypt, C=US', trusted: false };
    expect(judgeServed(staging, plan, t0, true, undefined, true).keep).toBe(true);
  });
});

describe('issueCertificate', () => {
  it('ACME: preflight, then per host key on the host → order → challenges cleaned → install → HTTPS → verify, under the lock', async () => {
    const fake = new FakeTls();
    await serveAged(fake, 0.2); // due: a fifth of the lifetime left
    const { mocks, run } = issue(fake);
    const r = await run;
    expect(r.domains).toEqual(['shop.example.com', 'www.shop.example.com']);
    expect(r.hosts.map((h) => [h.host, h.outcome])).toEqual([['one', 'issued'], ['two', 'issued']]);
    expect(r.hosts[0].reason).toMatch(/^due for renewal: 6d of 30d left/);
    expect(r.hosts[0].certificate.serial).toBe(fake.served.get('127.0.0.1:8443')!.serial);
    expect(r.hosts[1].certificate.serial).toBe(fake.served.get('10.0.0.2:8443')!.serial);
    expect(r.hosts[0].certificate.serial).not.toBe(r.hosts[1].certificate.serial); // one key, one certificate per host
    expect(fake.events.slice(0, 3).sort()).toEqual(['inspect one', 'inspect two', 'plan']);
    expect(fake.events.slice(3)).toEqual([
      'preflight',
      'key one', 'order one', 'cleanup', 'install one', 'https one', 'inspect one',
      'key two', 'order two', 'cleanup', 'install two', 'https two', 'inspect two',
    ]);
    const names = mocks.names();
    expect(names.indexOf('acquireLock')).toBeLessThan(names.indexOf('inspectServedCertificate'));
    expect(names.at(-1)).toBe('releaseLock');
    expect(fake.challenges.size).toBe(0);
    // the order gets the CSR, never a key; nothing in any activity input looks like a private key
    expect(JSON.stringify(mocks.calls)).not.toMatch(/PRIVATE KEY/);
  });

  it('nothing served yet: issues (the unreachable HTTPS port is "nothing served", not a failure)', async () => {
    const fake = new FakeTls();
    const { run } = issue(fake);
    const r = await run;
    expect(r.hosts.map((h) => h.outcome)).toEqual(['issued', 'issued']);
    expect(r.hosts[0].reason).toMatch(/^no certificate served \(.*connection refused\)/);
  });

  it('a served certificate covering the names with more than a third of its lifetime left: no-op (success), nothing changed', async () => {
    const fake = new FakeTls();
    const cert = await serveAged(fake, 0.4);
    const { mocks, run } = issue(fake);
    const r = await run;
    expect(r.hosts).toEqual([
      { host: 'one', outcome: 'unchanged', certificate: facts(cert), reason: expect.stringMatching(/^valid: 12d of 30d left/) },
      { host: 'two', outcome: 'unchanged', certificate: facts(cert), reason: expect.stringMatching(/^valid: 12d of 30d left/) },
    ]);
    expect(changes(fake.events)).toEqual([]);
    expect(mocks.called('releaseLock')).toBe(1);
  });

  it('--force issues anyway; a host that serves a good certificate beside one that does not gets only what it needs', async () => {
    const fake = new FakeTls();
    const cert = await serveAged(fake, 0.9);
    const forced = await issue(fake, { force: true }).run;
    expect(forced.hosts.map((h) => h.outcome)).toEqual(['issued', 'issued']);
    expect(forced.hosts[0].reason).toMatch(/^forced \(valid: 27d of 30d left/);
    expect(forced.hosts[0].certificate.serial).not.toBe(cert.serial);

    const mixed = new FakeTls();
    await serveAged(mixed, 0.9);
    mixed.served.delete('10.0.0.2:8443');
    const r = await issue(mixed).run;
    expect(r.hosts.map((h) => [h.host, h.outcome])).toEqual([['one', 'unchanged'], ['two', 'issued']]);
    expect(changes(mixed.events)).toEqual(['preflight', 'key two', 'order two', 'cleanup', 'install two', 'https two']);
  });

  it('a failed preflight stops before any change: no key is made, every failed check is listed', async () => {
    const fake = new FakeTls();
    fake.failedChecks = [
      { check: 'dns www.shop.example.com', ok: false, detail: 'resolves to 203.0.113.9, not to 10.0.0.2' },
      { check: 'webroot two', ok: false, detail: 'http://10.0.0.2:8080/.well-known/acme-challenge/probe answered 404' },
    ];
    const { mocks, run } = issue(fake);
    const f = await workflowFailure(run);
    expect(f.type).toBe('PreflightFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/nothing was changed/);
    expect(f.message).toMatch(/dns www\.shop\.example\.com: resolves to 203\.0\.113\.9/);
    expect(f.message).toMatch(/webroot two: .* answered 404/);
    expect(changes(fake.events)).toEqual(['preflight']);
    expect(mocks.called('createCertificateKey')).toBe(0);
    expect(mocks.called('releaseLock')).toBe(1);
  });

  it('a rate-limited order: challenges still cleaned up, non-retryable AcmeRateLimited with the retry-after time, the served certificate untouched', async () => {
    const fake = new FakeTls();
    const old = await serveAged(fake, 0.1);
    fake.orderFailures = [rateLimited()];
    const { mocks, run } = issue(fake);
    const f = await workflowFailure(run);
    expect(f.type).toBe('AcmeRateLimited');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/^one: rate limited by the CA, retry after 2031-01-08T16:00:00\.000Z/);
    expect(f.message).toMatch(/the certificate served on one was not changed/);
    expect(mocks.called('orderCertificate')).toBe(1); // not retried
    expect(changes(fake.events)).toEqual(['preflight', 'key one', 'order one', 'cleanup']);
    expect(fake.challenges.size).toBe(0);
    expect(fake.served.get('127.0.0.1:8443')).toBe(old);
    expect(fake.served.get('10.0.0.2:8443')).toBe(old);
    expect(mocks.called('releaseLock')).toBe(1);
  });

  it('a transient CA error is retried with backoff inside the order step; challenges are cleaned once, after it', async () => {
    const fake = new FakeTls();
    fake.orderFailures = [ApplicationFailure.create({ message: 'no answer from the ACME server (ECONNRESET)', type: 'AcmeTransient' })];
    const { mocks, run } = issue(fake);
    const r = await run;
    expect(r.hosts.map((h) => h.outcome)).toEqual(['issued', 'issued']);
    expect(mocks.called('orderCertificate')).toBe(3); // one: failed + retried, two: once
    expect(changes(fake.events).slice(0, 6)).toEqual(['preflight', 'key one', 'order one', 'order one', 'cleanup', 'install one']);
  });

  it('verify: the host keeps serving another certificate after the reload → VerifyFailed naming both', async () => {
    const fake = new FakeTls();
    const old = await serveAged(fake, 0.1);
    fake.staleReload = true;
    const { run } = issue(fake);
    const f = await workflowFailure(run);
    expect(f.type).toBe('VerifyFailed');
    const installed = fake.installed.get('127.0.0.1:8443')!;
    expect(f.message).toContain(`serves serial ${old.serial}, valid until ${old.notAfter}`);
    expect(f.message).toContain(`installed: serial ${installed.serial}, valid until ${installed.notAfter}`);
    expect(f.message).toMatch(/the new certificate is installed on one/);
    expect(fake.events.filter((e) => e === 'inspect one').length).toBe(1 + 5); // the check, then 5 verify attempts
    expect(fake.events).not.toContain('key two'); // stopped before the next host
  });

  it('self-signed: key and certificate made on the host, HTTPS, verify; no preflight, no CA; the kept certificate must be self-signed', async () => {
    const fake = new FakeTls();
    const mocks = mockActivities(fake.activities());
    const [r, again, converted] = await withWorker(mocks, async (taskQueue) => {
      // a plain client: the time-skipping one would let the clock jump between the runs (to the lock's timer)
      const plain = new Client({ connection: env.connection });
      const run = (input: Partial<IssueCertificateInput>) =>
        plain.workflow.execute('issueCertificate', { taskQueue, workflowId: `issueCertificate/${randomUUID()}`, args: [{ app: 'shop', env: 'dev', ...input }] }) as Promise<IssueCertificateResult>;
      const first = await run({});
      const second = await run({});
      // production asked for self-signed while nothing is served, then the same without: a CA's replaces it
      await run({ env: 'production', selfSigned: true });
      return [first, second, await run({ env: 'production' })];
    });
    expect(r.hosts).toHaveLength(1);
    expect(r.hosts[0]).toMatchObject({ host: 'one', outcome: 'issued', certificate: { issuer: 'CN=dev.shop.example.com', names: ['dev.shop.example.com'] } });
    expect(Date.parse(r.hosts[0].certificate.notAfter) - Date.parse(r.hosts[0].certificate.notBefore)).toBe(30 * DAY);
    expect(again.hosts[0]).toMatchObject({ outcome: 'unchanged', certificate: { serial: r.hosts[0].certificate.serial } });
    expect(converted.hosts.map((h) => h.outcome)).toEqual(['issued', 'issued']);
    expect(converted.hosts[0].reason).toMatch(/self-signed, a CA-issued one is wanted/);
    const devEvents = fake.events.slice(0, fake.events.indexOf('plan', 1));
    expect(changes(devEvents)).toEqual(['self-sign one', 'https one']);
  });

  it('bad input fails before any activity: selfSigned with staging, domains that are not a list of names, a bad app name', async () => {
    const fake = new FakeTls();
    const mocks = mockActivities(fake.activities());
    await withWorker(mocks, async (taskQueue) => {
      const run = (input: unknown) => workflowFailure(env.client.workflow.execute('issueCertificate', { taskQueue, workflowId: `ic-${randomUUID()}`, args: [input as IssueCertificateInput] }));
      const both = await run({ app: 'shop', env: 'production', selfSigned: true, staging: true });
      expect(both.type).toBe('InvalidInput');
      expect(both.message).toMatch(/selfSigned: excludes "staging"/);
      expect((await run({ app: 'shop', env: 'production', domains: [] })).message).toMatch(/domains: must be a non-empty list/);
      expect((await run({ app: 'shop', env: 'production', domains: ['ok.example.com', 'two words'] })).message).toMatch(/domains\[1\]: "two words" is not a name/);
      expect((await run({ app: 'shop', env: 'production', force: 'yes' })).message).toMatch(/force: must be true or false, got "yes"/);
      expect((await run({ app: 'Shop!', env: 'production' })).type).toBe('InvalidInput');
      // an unknown app (or an env without proxy.tls): the plan step refuses, before the lock
      const noTls = await workflowFailure(env.client.workflow.execute('issueCertificate', { taskQueue, workflowId: `ic-${randomUUID()}`, args: [{ app: 'nope', env: 'production' }] }));
      expect(noTls.type).toBe('InvalidInput');
    });
    expect(mocks.names()).toEqual(['resolveCertificatePlan']);
  });
});

/** The run's outcome (see settled), succeeded or failed. */
async function outcomeOf(handle: WorkflowHandle): Promise<{ ok: true; result: RenewCertificatesResult } | { ok: false; failure: ApplicationFailure }> {
  const result = settled(handle);
  return result.then(
    (r) => ({ ok: true as const, result: r as RenewCertificatesResult }),
    async () => ({ ok: false as const, failure: await workflowFailure(result) }),
  );
}

describe('renewCertificates', () => {
  it('ticks every 12 h over 90 days renew exactly when a third of the lifetime or less is left; a failed renewal alerts once and the next tick retries', async () => {
    const fake = new FakeTls(); // 30-day certificates, backdated 1 h
    const mocks = mockActivities(fake.activities());
    const plain = new Client({ connection: env.connection });
    const TICKS = 180; // ticks 0 … 180: 90 days
    const FAIL_AT = 80;
    const issuedAt: number[] = [];
    const childrenAt: number[] = [];
    const failedAt: number[] = [];
    await withWorker(mocks, async (taskQueue) => {
      const t0 = Math.ceil((await env.currentTimeMs()) / DAY) * DAY + DAY; // a midnight UTC ahead
      await env.sleep(t0 - (await env.currentTimeMs()));
      for (let i = 0; i <= TICKS; i++) {
        const tick = t0 + i * 12 * HOUR;
        const orders = fake.orders.length;
        const calls = mocks.calls.length;
        if (i === FAIL_AT) fake.orderFailures = [rateLimited()];
        const handle = await plain.workflow.start('renewCertificates', { taskQueue, workflowId: `renewCertificates-tick-${i}`, args: [{}] });
        const outcome = await outcomeOf(handle);
        const newOrders = fake.orders.slice(orders);
        if (newOrders.some((o) => o.serial)) issuedAt.push(i);
        const children = mocks.calls.slice(calls).filter((c) => c.name === 'resolveCertificatePlan' && (c.args as IssueCertificateInput).reason !== undefined);
        if (children.length) childrenAt.push(i);
        if (outcome.ok) {
          expect(outcome.result.failed).toEqual([]);
          expect(outcome.result.checked.map((c) => c.host)).toEqual(['one', 'two']);
          expect(outcome.result.renewed.length).toBe(children.length);
          if (children.length) {
            expect(outcome.result.renewed[0].workflowId).toMatch(/^issueCertificate\/shop\/production\/renew-[0-9a-f-]{36}$/);
            expect(newOrders.map((o) => o.host)).toEqual(['one', 'two']);
          }
        } else {
          failedAt.push(i);
          expect(outcome.failure.type).toBe('RenewalFailed');
          expect(outcome.failure.message).toMatch(/shop\/production: issueCertificate\/shop\/production\/renew-.*: one: rate limited by the CA, retry after 2031-01-08T16:00:00\.000Z/);
          expect(outcome.failure.message).toMatch(/the next run tries again/);
        }
        // Never less than ~0.3 of the lifetime left at a tick, and nothing ever expires.
        for (const ep of ['127.0.0.1:8443', '10.0.0.2:8443']) {
          const c = fake.served.get(ep)!;
          expect((Date.parse(c.notAfter) - tick) / fake.lifetimeMs).toBeGreaterThan(0.3);
        }
        expect(fake.challenges.size).toBe(0);
        await env.sleep(t0 + (i + 1) * 12 * HOUR - (await env.currentTimeMs()));
      }
      // the certificates issued at day 0, renewed at day 40.5: their lifetimes, from the server's time
      const firstTwo = fake.orders.filter((o) => o.serial && o.host === 'one').slice(0, 3);
      expect(firstTwo.map((o) => Math.floor((o.at - t0) / HOUR))).toEqual([0, 20 * 24, 40 * 24 + 12]);
    });
    // Computed by hand. A certificate issued at tick i (time t) is valid from t − 1 h for 30 days, so
    // a third of its lifetime (10 days) is left at t − 1 h + 20 d: tick i + 39 (19.5 d) is not due,
    // tick i + 40 (20 d) is.
    //   tick   0 (day  0): nothing served → issued
    //   tick  40 (day 20): 10 d − 1 h left ≤ 10 d → issued
    //   tick  80 (day 40): due, the CA rate-limits → failed, alerted once
    //   tick  81 (day 40.5): still due → issued
    //   tick 121 (day 60.5), tick 161 (day 80.5) → issued; tick 201 is beyond day 90
    expect(issuedAt).toEqual([0, 40, 81, 121, 161]);
    expect(childrenAt).toEqual([0, 40, 80, 81, 121, 161]);
    expect(failedAt).toEqual([FAIL_AT]);
    const alerts = mocks.calls.filter((c) => c.name === 'notify');
    expect(alerts).toHaveLength(1);
    expect(alerts[0].args).toMatchObject({
      webhookUrlFile: '/etc/shop/webhook-url',
      notification: { severity: 'failure', runbook: 'renewCertificates', app: 'shop', env: 'production', workflowId: `renewCertificates-tick-${FAIL_AT}` },
    });
    const n = (alerts[0].args as { notification: { title: string; details: string } }).notification;
    expect(n.title).toMatch(/the current certificate stays served \(valid until .*\); the next run tries again/);
    expect(n.details).toMatch(/retry after 2031-01-08T16:00:00\.000Z/);
    expect(mocks.called('orderCertificate')).toBe(2 * 5 + 1);
    expect(mocks.called('acquireLock')).toBe(6);
    expect(mocks.called('releaseLock')).toBe(6);
  });

  it('a single target; an env whose check fails is reported without stopping the others', async () => {
    const fake = new FakeTls();
    fake.targets = [{ app: 'shop', env: 'gone' }, { app: 'shop', env: 'dev' }];
    const mocks = mockActivities(fake.activities());
    const [all, one] = await withWorker(mocks, async (taskQueue) => {
      const plain = new Client({ connection: env.connection });
      const start = (args: object) => plain.workflow.start('renewCertificates', { taskQueue, workflowId: `renew-${randomUUID()}`, args: [args] }).then(outcomeOf);
      return [await start({}), await start({ app: 'shop', env: 'dev' })];
    });
    expect(all.ok).toBe(false);
    if (!all.ok) {
      expect(all.failure.type).toBe('RenewalFailed');
      expect(all.failure.message).toMatch(/shop\/gone: check failed: app "shop" has no environment "gone"/);
    }
    expect(fake.installed.get('127.0.0.1:8444')).toMatchObject({ issuer: 'CN=dev.shop.example.com' }); // dev renewed despite gone
    expect(one.ok && one.result).toMatchObject({ renewed: [], failed: [], checked: [{ app: 'shop', env: 'dev', host: 'one', due: false }] });
    expect(mocks.called('notify')).toBe(0); // dev has no notify; gone has no plan
  });
});
