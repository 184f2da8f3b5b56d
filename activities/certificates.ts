// Runbook 2's activities: keys made on the host (only the CSR leaves it), the ACME order through
// acme-client with HTTP-01 token files in the proxy's webroot or DNS-01 TXT records through the DNS
// provider, the install beside the key, the HTTPS server block, and challenge clean-up.
// The account key and the certificate key are never an activity input or result: the account key
// is read from the host into memory for one order only.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { promises as dnsPromises } from 'node:dns';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import { ApplicationFailure } from '@temporalio/common';
import * as acme from 'acme-client';
import { acmeFailureKind, describeCertificate, dnsChallengeRecordName, httpChallengeFilePath } from '../common/certificates';
import { buildCertificatePlan, certificateTargets } from '../common/certificate-plan';
import { commandFailure } from '../common/commands/output';
import { ACME_WEBROOT, PROXY_CONFIG_PATH, ROUTED_UPSTREAM_VARIABLE, nginxSwitchArgv, NGINX_SWITCH_EXIT, nginxTestAndReloadArgv, nginxWorkersGoneArgv, parseSwitchedWorkers, renderHttpsRedirect, renderHttpsServer, tlsFiles } from '../common/commands/nginx';
import { ACCOUNT_KEY_EXIT_MEANING, accountKeyArgv, ACME_ACCOUNT_KEY, ACME_CHALLENGE_DIR, clearChallengeFilesArgv, INSTALL_EXIT, installCertificateArgv, newKeyAndCsrArgv, removeFilesArgv, selfSignedArgv, writeFileArgv } from '../common/commands/tls';
import { PlanError } from '../common/plan';
import type { CertificateFacts, CertificatePlan, CertificateProxy, IssueCertificateInput, RunbookTarget } from '../common/types';
import { heartbeat } from './context';
import type { ActivityDeps } from './deps';
import { openDnsProvider } from './dns/rfc2136';
import { engineFailure, execInContainer, type DockerEngines } from './docker';
import { httpGet } from './health';
import { loadInventory } from './inventory';

const facts = (pem: string): CertificateFacts => {
  const d = describeCertificate(pem);
  return { serial: d.serial, names: d.names, notBefore: d.notBefore, notAfter: d.notAfter, issuer: d.issuer };
};

// ---- acme-client set-up: one shared axios instance for the process ----

/** What the CA answered last in this call (acme-client keeps only problem.detail on its errors). */
const lastAnswer = new AsyncLocalStorage<{ status?: number; retryAfter?: string; problem?: unknown; code?: string }>();
let acmeConfigured = false;
const trustedCaFiles = new Set<string>();

async function configureAcmeClient(caFile?: string): Promise<void> {
  if (!acmeConfigured) {
    acmeConfigured = true;
    const settings = acme.axios.defaults as typeof acme.axios.defaults & { acmeSettings?: { retryMaxAttempts?: number } };
    // Temporal retries (with its backoff); acme-client's own retries would sleep out Retry-After inside the activity
    if (settings.acmeSettings) settings.acmeSettings.retryMaxAttempts = 0;
    acme.axios.defaults.timeout = 30_000;
    acme.axios.interceptors.response.use(
      (resp) => {
        const store = lastAnswer.getStore();
        const data = resp.data as { status?: string; error?: unknown } | undefined;
        if (store && (resp.status >= 400 || data?.status === 'invalid')) {
          store.status = resp.status;
          store.retryAfter = resp.headers?.['retry-after'] as string | undefined;
          store.problem = resp.status >= 400 ? resp.data : data?.error;
        }
        return resp;
      },
      (err: { code?: string; response?: unknown }) => {
        const store = lastAnswer.getStore();
        if (store && !err.response && err.code) store.code = err.code;
        return Promise.reject(err);
      },
    );
  }
  if (caFile && !trustedCaFiles.has(caFile)) {
    trustedCaFiles.add(caFile);
    const extra = await Promise.all([...trustedCaFiles].map((f) => readFile(f, 'utf8')));
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...tls.rootCertificates, ...extra] });
  }
}

/** An ACME failure as Temporal should see it: rate limits and refusals final, the rest retried. */
function acmeFailure(err: unknown, answer: { status?: number; retryAfter?: string; problem?: unknown; code?: string }, what: string): Error {
  if (err instanceof ApplicationFailure) return err;
  const withCapture = Object.assign(err instanceof Error ? err : new Error(String(err)), { acme: answer });
  const f = acmeFailureKind(withCapture);
  if (f.kind === 'rate-limited') return ApplicationFailure.nonRetryable(`${what}: the CA's rate limit: ${f.message}`, 'AcmeRateLimited', { retryAfter: f.retryAfter?.toISOString() });
  if (f.kind === 'bad-request') return ApplicationFailure.nonRetryable(`${what}: the CA refused: ${f.message}`, 'AcmeRejected');
  return ApplicationFailure.retryable(`${what}: ${f.message}`, 'AcmeTransient');
}

/** The account key from a secret file on the worker; its content never goes into an error. */
async function readAccountKeyFile(file: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot read the ACME account key file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, 'AcmeAccountKey');
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw ApplicationFailure.nonRetryable(`the ACME account key file ${file} holds no PEM private key`, 'AcmeAccountKey');
  return pem;
}

export function createCertificateActivities(deps: Pick<ActivityDeps, 'inventoryPath' | 'engines'>) {
  const engines: DockerEngines = deps.engines;

  async function exec(proxy: CertificateProxy, argv: string[], what: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    try {
      const docker = await engines.engine(proxy.host);
      return await execInContainer(docker, proxy.container, argv);
    } catch (err) {
      throw engineFailure(proxy.host, `${what} in ${proxy.container}`, err);
    }
  }

  /**
   * The command's stdout, or a failure naming it, the container, the host and the exit code with
   * its (redacted) stderr. `secret`: its stdout may hold a secret, never shown, also not in part.
   */
  async function mustExec(proxy: CertificateProxy, argv: string[], what: string, options: { secret?: boolean; exitMeanings?: Record<number, string> } = {}): Promise<string> {
    const r = await exec(proxy, argv, what);
    if (r.exitCode !== 0) throw new Error(commandFailure(`${what} in ${proxy.container} on ${proxy.host.name}`, r, { secretStdout: options.secret, exitMeanings: options.exitMeanings }));
    return r.stdout;
  }

  async function install(proxy: CertificateProxy, id: string): Promise<{ certificate: CertificateFacts; pem: string }> {
    const r = await exec(proxy, installCertificateArgv(id), 'install the certificate');
    if (r.exitCode === INSTALL_EXIT.keyMismatch) throw ApplicationFailure.nonRetryable(`the new certificate for ${id} does not belong to the key on ${proxy.host.name}: nothing was installed`, 'CertificateKeyMismatch');
    if (r.exitCode !== 0) throw new Error(commandFailure(`installing the certificate ${id} in ${proxy.container} on ${proxy.host.name}`, r));
    return { certificate: facts(r.stdout), pem: r.stdout };
  }

  return {
    async resolveCertificatePlan(input: IssueCertificateInput): Promise<CertificatePlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      try {
        return buildCertificatePlan(inventory, input);
      } catch (err) {
        if (err instanceof PlanError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInput');
        throw err;
      }
    },

    async listCertificateTargets(): Promise<RunbookTarget[]> {
      return certificateTargets(await loadInventory(deps.inventoryPath));
    },

    /**
     * Before any change: every name resolves to a host of the environment (through the configured
     * resolver), and for HTTP-01 each proxy answers on port 80 with a probe file placed in its
     * ACME webroot (so the CA's request will reach the token files).
     */
    async certificatePreflight(req: { plan: CertificatePlan }): Promise<{ ok: boolean; checks: { check: string; ok: boolean; detail: string }[] }> {
      const plan = req.plan;
      const checks: { check: string; ok: boolean; detail: string }[] = [];
      const resolver = new dnsPromises.Resolver({ timeout: 3000, tries: 2 });
      if (plan.resolver) resolver.setServers([plan.resolver]);
      const addresses = new Set(plan.proxies.map((p) => p.host.address));
      for (const domain of plan.domains) {
        const name = domain.startsWith('*.') ? `runbook-check-${randomBytes(3).toString('hex')}.${domain.slice(2)}` : domain;
        try {
          const found = await resolver.resolve4(name);
          const ok = found.some((a) => addresses.has(a));
          checks.push({ check: `${domain} resolves to the host`, ok, detail: `${name} → ${found.join(', ')}${ok ? '' : ` (the hosts are ${[...addresses].join(', ')})`}` });
        } catch (err) {
          checks.push({ check: `${domain} resolves to the host`, ok: false, detail: `${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
        }
      }
      if (plan.mode === 'acme' && plan.challenge === 'http-01') {
        for (const proxy of plan.proxies) {
          const token = `runbook-preflight-${randomBytes(12).toString('hex')}`;
          const path = httpChallengeFilePath(ACME_WEBROOT, token);
          await mustExec(proxy, writeFileArgv(path, token, '0644'), 'place the webroot probe');
          try {
            const answer = await httpGet(`${proxy.httpUrl}/.well-known/acme-challenge/${token}`, { hostHeader: plan.domains.find((d) => !d.startsWith('*.')) ?? plan.domains[0], timeoutMs: 5000 });
            const ok = answer.status === 200 && answer.body.trim() === token;
            checks.push({ check: `port 80 of ${proxy.host.name} serves the ACME webroot`, ok, detail: `GET ${proxy.httpUrl}/.well-known/acme-challenge/… → ${answer.status}${ok ? '' : ` ${answer.body.slice(0, 80)}`}` });
          } catch (err) {
            checks.push({ check: `port 80 of ${proxy.host.name} serves the ACME webroot`, ok: false, detail: `${proxy.httpUrl}: ${(err as Error).message}` });
          } finally {
            await exec(proxy, removeFilesArgv([path]), 'remove the webroot probe').catch(() => undefined);
          }
        }
      }
      return { ok: checks.every((c) => c.ok), checks };
    },

    /** The certificate's key, made on the host (`<id>.key.next`, 0600); only the CSR comes back. */
    async createCertificateKey(req: { proxy: CertificateProxy; id: string; domains: string[] }): Promise<{ csrPem: string }> {
      const csrPem = await mustExec(req.proxy, newKeyAndCsrArgv(req.id, req.domains), 'make the key and CSR');
      if (!csrPem.includes('BEGIN CERTIFICATE REQUEST')) throw new Error(`openssl printed no CSR in ${req.proxy.container}`);
      return { csrPem };
    },

    /**
     * One ACME order for the plan's names: account (key on the host, reused), challenges answered
     * on every proxy (HTTP-01 token files) or in DNS (TXT records, waited for at the zone's primary),
     * finalize with the CSR, download the chain. The challenges are removed again, also on failure.
     */
    async orderCertificate(req: { proxy: CertificateProxy; proxies: CertificateProxy[]; plan: CertificatePlan; csrPem: string }): Promise<{ fullchainPem: string; certificate: CertificateFacts }> {
      const plan = req.plan;
      await configureAcmeClient(plan.acme.caFile);
      const answer: { status?: number; retryAfter?: string; problem?: unknown; code?: string } = {};
      return lastAnswer.run(answer, async () => {
        const accountKey = plan.acme.accountKeyFile ? await readAccountKeyFile(plan.acme.accountKeyFile) : await mustExec(req.proxy, accountKeyArgv(), `read the ACME account key ${ACME_ACCOUNT_KEY}`, { secret: true, exitMeanings: ACCOUNT_KEY_EXIT_MEANING });
        const client = new acme.Client({ directoryUrl: plan.acme.directoryUrl, accountKey });
        const dns = plan.challenge === 'dns-01' ? openDnsProvider({ ...plan.dns!, timeoutSeconds: 10 }) : undefined;
        const files: { proxy: CertificateProxy; path: string }[] = [];
        const records: { name: string; value: string }[] = [];
        const beat = setInterval(() => heartbeat({ order: plan.domains }), 10_000);
        try {
          await client.createAccount({ termsOfServiceAgreed: true, ...(plan.acme.email ? { contact: [`mailto:${plan.acme.email}`] } : {}) });
          const order = await client.createOrder({ identifiers: plan.domains.map((value) => ({ type: 'dns', value })) });
          const authorizations = await client.getAuthorizations(order);
          const pending: acme.Authorization['challenges'][number][] = [];
          for (const authz of authorizations) {
            if (authz.status === 'valid') continue;
            const challenge = authz.challenges.find((c) => c.type === plan.challenge);
            if (!challenge) throw ApplicationFailure.nonRetryable(`the CA offers no ${plan.challenge} challenge for ${authz.identifier.value}`, 'AcmeRejected');
            const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
            if (plan.challenge === 'http-01') {
              const path = httpChallengeFilePath(ACME_WEBROOT, (challenge as { token: string }).token);
              for (const proxy of req.proxies) {
                files.push({ proxy, path });
                await mustExec(proxy, writeFileArgv(path, keyAuthorization, '0644'), 'place the HTTP-01 token');
              }
            } else {
              const name = dnsChallengeRecordName(authz.identifier.value);
              records.push({ name, value: keyAuthorization });
              await dns!.addTxt(name, keyAuthorization, 60);
            }
            pending.push(challenge);
          }
          for (const r of records) await dns!.waitForRecord(r.name, 'TXT', [r.value], 60_000);
          for (const challenge of pending) {
            await client.completeChallenge(challenge);
            await client.waitForValidStatus(challenge);
          }
          const finalized = await client.finalizeOrder(order, req.csrPem);
          const fullchainPem = await client.getCertificate(finalized);
          return { fullchainPem, certificate: facts(fullchainPem) };
        } catch (err) {
          throw acmeFailure(err, answer, `ACME order for ${plan.domains.join(', ')} at ${plan.acme.directoryUrl}`);
        } finally {
          clearInterval(beat);
          for (const f of files) await exec(f.proxy, removeFilesArgv([f.path]), 'remove the HTTP-01 token').catch(() => undefined);
          for (const r of records) await dns!.removeTxt(r.name, r.value).catch(() => undefined);
        }
      });
    },

    /** Development mode: key and self-signed certificate made on the host, then installed. */
    async selfSignCertificate(req: { proxy: CertificateProxy; id: string; domains: string[]; days: number }): Promise<{ certificate: CertificateFacts }> {
      await mustExec(req.proxy, selfSignedArgv(req.id, req.domains, req.days), 'make a self-signed certificate');
      return { certificate: (await install(req.proxy, req.id)).certificate };
    },

    /** The chain next to its key: written as `<id>.crt.next`, checked against the key, renamed into place. */
    async installCertificate(req: { proxy: CertificateProxy; id: string; fullchainPem: string }): Promise<{ certificate: CertificateFacts; changed: boolean }> {
      const files = tlsFiles(req.id);
      const current = await exec(req.proxy, ['cat', files.certificate], 'read the installed certificate');
      if (current.exitCode === 0 && current.stdout.trim() === req.fullchainPem.trim()) return { certificate: facts(req.fullchainPem), changed: false };
      await mustExec(req.proxy, writeFileArgv(`${files.certificate}.next`, req.fullchainPem, '0644'), 'write the certificate');
      return { certificate: (await install(req.proxy, req.id)).certificate, changed: true };
    },

    /** The HTTPS server block and the HTTP → HTTPS redirect, each placed, `nginx -t`-ed and reloaded (a reload also when they were in place already: the certificate may be new). */
    async enableHttps(req: { proxy: CertificateProxy; plan: CertificatePlan }): Promise<{ changed: boolean }> {
      const files = tlsFiles(req.plan.id);
      let changed = false;
      const previousWorkers = new Set<number>();
      // the routes follow the proxy's own config: it defines the route map (every config rendered since
      // services exist does), or it predates it and routes everything to the app's upstream
      const live = await exec(req.proxy, ['cat', PROXY_CONFIG_PATH], 'read the proxy config');
      const routed = live.exitCode === 0 && live.stdout.includes(ROUTED_UPSTREAM_VARIABLE);
      const steps: [string, string][] = [
        [files.server, renderHttpsServer({ app: req.plan.app, env: req.plan.env, id: req.plan.id, domains: req.plan.domains, ...(routed ? { routed: true } : {}) })],
        [files.redirect, renderHttpsRedirect(req.proxy.httpsPort)],
      ];
      for (const [path, config] of steps) {
        const r = await exec(req.proxy, nginxSwitchArgv(config, path), 'switch to HTTPS');
        if (r.exitCode === NGINX_SWITCH_EXIT.unchanged) continue;
        if (r.exitCode === NGINX_SWITCH_EXIT.testFailed) {
          throw ApplicationFailure.nonRetryable(`nginx -t rejected ${path} in ${req.proxy.container} on ${req.proxy.host.name}; the previous file was restored:\n${(r.stdout + r.stderr).trim()}`, 'ProxyConfigInvalid');
        }
        if (r.exitCode !== 0) throw new Error(`switching ${req.proxy.container} to HTTPS failed (exit ${r.exitCode}): ${(r.stdout + r.stderr).trim()}`);
        parseSwitchedWorkers(r.stdout).forEach((w) => previousWorkers.add(w));
        changed = true;
      }
      // unchanged snippets: still reload, so nginx serves the certificate installed just before
      if (!changed) parseSwitchedWorkers(await mustExec(req.proxy, nginxTestAndReloadArgv(), 'reload nginx')).forEach((w) => previousWorkers.add(w));
      // `nginx -s reload` returns before the new workers serve: done when the old ones are gone
      if (previousWorkers.size) await exec(req.proxy, nginxWorkersGoneArgv([...previousWorkers], 10), 'wait for the reload');
      return { changed };
    },

    /** Every HTTP-01 token file on every proxy and every _acme-challenge TXT record of the names (idempotent). */
    async cleanupChallenges(req: { plan: CertificatePlan }): Promise<{ removedFiles: number; removedRecords: number }> {
      let removedFiles = 0;
      for (const proxy of req.plan.proxies) {
        const out = await exec(proxy, clearChallengeFilesArgv(), `clear ${ACME_CHALLENGE_DIR}`);
        if (out.exitCode === 0) removedFiles += Number(out.stdout.trim()) || 0;
      }
      let removedRecords = 0;
      if (req.plan.dns) {
        const dns = openDnsProvider({ ...req.plan.dns, timeoutSeconds: 10 });
        for (const name of [...new Set(req.plan.domains.map(dnsChallengeRecordName))]) {
          const before = await dns.lookup(name, 'TXT').catch(() => []);
          await dns.removeTxt(name);
          removedRecords += before.length;
        }
      }
      return { removedFiles, removedRecords };
    },
  };
}
