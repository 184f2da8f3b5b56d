// Runbook 2: SSL issuance (seed 000 "SSL/HTTPS Configuration"; 001 "SSL Certificate Management").
// Validate input → plan → lock → what each host's proxy serves now: a valid certificate of the
// wanted kind covering the names with more than renewFraction (⅓) of its lifetime left is kept
// (no-op), unless forced → ACME: preflight once for every host to change (nothing changed when it
// fails) → per host: key and CSR made on the host (the key never leaves it) → the ACME order
// (challenges cleaned up afterwards, also when it fails) → install; self-signed: key and
// certificate made on the host → HTTPS server block, `nginx -t`, graceful reload → verify over TLS
// (SNI) that the host serves exactly the installed certificate (serial and expiry).
import { ApplicationFailure, CancellationScope, patched, proxyActivities, sleep, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { judgeServed as judgeServedRule } from '../common/certificate-rules';
import type { CertificateSummary } from '../common/certificates';
import type { CertificateFacts, CertificatePlan, CertificateProxy, IssueCertificateInput, IssueCertificateResult } from '../common/types';
import { IssueCertificateInputSchema, parseInput } from '../common/inputs';
import { rootFailure, withLock } from './lib/steps';
import { errorMessage, Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
/** The whole ACME order (account, challenges, finalize, download): it heartbeats while the CA validates. */
const ordering = proxyActivities<Activities>({ startToCloseTimeout: '15 minutes', heartbeatTimeout: '1 minute', retry });
/**
 * One TLS handshake. Nothing listening is the normal state before the first issuance, so it is not
 * retried for long; the verify step polls on its own (the reload is graceful, new workers take a moment).
 */
// nothing listening on 443 yet (TlsUnreachable) is the usual first-issuance answer: not retried
const probe = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { initialInterval: '1s', backoffCoefficient: 2, maximumAttempts: 3, nonRetryableErrorTypes: ['TlsUnreachable'] } });

/** After the reload: how often and how long the served certificate is checked for the installed one. */
const VERIFY_ATTEMPTS = 5;
const VERIFY_INTERVAL_MS = 2000;

/** What a handshake shows of a served certificate (activities/tls.ts ServedCertificate). */
export type Served = Pick<CertificateSummary, 'serial' | 'names' | 'notBefore' | 'notAfter' | 'issuer' | 'commonName' | 'issuerCommonName'> & { authorized?: boolean; trusted?: boolean; trustError?: string };

export interface Verdict {
  /** The served certificate can stay: valid, covering the names, of the wanted kind, not due. */
  keep: boolean;
  reason: string;
}

/** patched() ID of the trust check in judgeServed. */
export const SERVED_TRUST_PATCH = 'served-certificate-trust';

/**
 * Whether a served certificate can stay (common/certificate-rules.ts judgeServed), for
 * issueCertificate (skip or issue) and renewCertificates (due or not) alike. `requireTrust` is
 * patched(SERVED_TRUST_PATCH): runs recorded before the trust check replay without it.
 */
export function judgeServed(served: Served | undefined, plan: Pick<CertificatePlan, 'domains' | 'mode' | 'renewFraction'>, now: number, staging = false, unreachable?: string, requireTrust = false): Verdict {
  return judgeServedRule(served, plan, now, staging, unreachable, { requireTrust });
}

/** The name a TLS client sends as SNI: the first plain name, or a label under the first wildcard. */
export function probeName(domains: readonly string[]): string {
  return domains.find((d) => !d.startsWith('*.')) ?? `tls-check.${domains[0].slice(2)}`;
}

/** What the host serves on its HTTPS port now; undefined (and why) when nothing answers with a certificate. */
export async function servedOn(plan: CertificatePlan, proxy: CertificateProxy): Promise<{ served?: Served; unreachable?: string }> {
  try {
    const served = await probe.inspectServedCertificate({ address: proxy.httpsAddress, port: proxy.httpsPort, servername: probeName(plan.domains), ...(plan.trustedRootsFile ? { caFile: plan.trustedRootsFile } : {}) });
    return { served };
  } catch (err) {
    // TlsUnreachable (nothing listens yet) or any other failure: nothing usable is served.
    return { unreachable: errorMessage(rootFailure(err)) };
  }
}

/**
 * The input's shape, before anything runs (common/inputs.ts). The names themselves (LDH, wildcards,
 * duplicates, what a CA accepts) are checked by the plan step with common/certificates.ts
 * validateDomains, which has no side effect either: that module cannot be bundled into a workflow (node:net).
 */
export function validateCertificateInput(input: IssueCertificateInput): void {
  parseInput(IssueCertificateInputSchema, input, 'issueCertificate');
}

export async function issueCertificate(input: IssueCertificateInput): Promise<IssueCertificateResult> {
  validateCertificateInput(input);
  const rb = new Runbook('issueCertificate', { app: input.app, env: input.env });
  try {
    const plan = await rb.step('plan', () => quick.resolveCertificatePlan(input));
    rb.setPhase('running');
    const hosts = await withLock(rb, plan, () => issue(rb, plan, input));
    rb.finish('succeeded');
    return { app: plan.app, env: plan.env, domains: plan.domains, hosts };
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}

type HostOutcome = IssueCertificateResult['hosts'][number];

async function issue(rb: Runbook, plan: CertificatePlan, input: IssueCertificateInput): Promise<HostOutcome[]> {
  const now = Date.now();
  const found = await rb.step('inspect served certificates', () => Promise.all(plan.proxies.map((p) => servedOn(plan, p))));
  const requireTrust = patched(SERVED_TRUST_PATCH);
  const verdicts = plan.proxies.map((proxy, i) => ({ proxy, served: found[i].served, ...judgeServed(found[i].served, plan, now, input.staging ?? false, found[i].unreachable, requireTrust) }));
  const outcomes = new Map<string, HostOutcome>();
  for (const v of verdicts) {
    if (v.keep && !input.force) outcomes.set(v.proxy.host.name, { host: v.proxy.host.name, outcome: 'unchanged', certificate: facts(v.served!), reason: v.reason });
  }
  const todo = verdicts.filter((v) => !outcomes.has(v.proxy.host.name));
  if (todo.length > 0 && plan.mode === 'acme') {
    // Once for every host: the names must point at them, port 80 must answer through each proxy.
    const report = await rb.step('preflight', () => quick.certificatePreflight({ plan }));
    const failed = report.checks.filter((c) => !c.ok);
    if (!report.ok || failed.length) {
      throw ApplicationFailure.nonRetryable(
        `certificate preflight failed, nothing was changed:\n  - ${failed.map((c) => `${c.check}: ${c.detail}`).join('\n  - ') || 'the preflight reported a failure without a failed check'}`,
        'PreflightFailed',
        report,
      );
    }
  }
  // One host after the other: a failure stops before the next host is touched.
  for (const v of todo) {
    const host = v.proxy.host.name;
    const reason = input.force ? `forced (${v.reason})` : v.reason;
    const stage = { installed: false };
    try {
      const r = await issueOn(rb, plan, v.proxy, stage);
      outcomes.set(host, { host, outcome: 'issued', certificate: r.certificate, reason: `${reason}${r.note ? `; ${r.note}` : ''}` });
    } catch (err) {
      const cause = rootFailure(err);
      const issued = [...outcomes.values()].filter((o) => o.outcome === 'issued').map((o) => o.host);
      const state = stage.installed
        ? `the new certificate is installed on ${host}`
        : `the certificate served on ${host} was not changed`;
      throw ApplicationFailure.create({
        message: `${host}: ${errorMessage(cause)}\n${state}${issued.length ? `; new certificates are served on ${issued.join(', ')}` : ''}`,
        type: cause instanceof ApplicationFailure ? (cause.type ?? 'IssueFailed') : 'IssueFailed',
        nonRetryable: true,
        ...(cause instanceof ApplicationFailure && cause.details?.length ? { details: cause.details } : {}),
      });
    }
  }
  return plan.proxies.map((p) => outcomes.get(p.host.name)!);
}

async function issueOn(rb: Runbook, plan: CertificatePlan, proxy: CertificateProxy, stage: { installed: boolean }): Promise<{ certificate: CertificateFacts; note?: string }> {
  const host = proxy.host.name;
  let certificate: CertificateFacts;
  let note: string | undefined;
  if (plan.mode === 'self-signed') {
    certificate = (await rb.step(`self-sign ${host}`, () => quick.selfSignCertificate({ proxy, id: plan.id, domains: plan.domains, days: plan.selfSignedDays }))).certificate;
    stage.installed = true;
  } else {
    const { csrPem } = await rb.step(`key ${host}`, () => quick.createCertificateKey({ proxy, id: plan.id, domains: plan.domains }));
    let order: { fullchainPem: string; certificate: CertificateFacts };
    try {
      order = await rb.step(`order ${host}`, () => ordering.orderCertificate({ proxy, proxies: plan.proxies, plan, csrPem }));
    } catch (err) {
      // The order's own error is the one to report; a failed cleanup is in its step's record.
      await CancellationScope.nonCancellable(() => cleanup(rb, plan, host)).catch(() => undefined);
      throw err;
    }
    try {
      await CancellationScope.nonCancellable(() => cleanup(rb, plan, host));
    } catch (err) {
      // The certificate is issued: install it anyway (an unused token file or TXT record is harmless; the next run removes it).
      note = `challenge cleanup failed: ${errorMessage(rootFailure(err))}`;
    }
    certificate = (await rb.step(`install ${host}`, () => quick.installCertificate({ proxy, id: plan.id, fullchainPem: order.fullchainPem }))).certificate;
    stage.installed = true;
  }
  await rb.step(`https ${host}`, () => quick.enableHttps({ proxy, plan }));
  await rb.step(`verify ${host}`, () => verifyServed(plan, proxy, certificate));
  return { certificate, ...(note ? { note } : {}) };
}

function cleanup(rb: Runbook, plan: CertificatePlan, host: string) {
  return rb.step(`cleanup challenges ${host}`, () => quick.cleanupChallenges({ plan }));
}

const sameSerial = (a: string, b: string) => a.replace(/:/g, '').replace(/^0+/, '').toUpperCase() === b.replace(/:/g, '').replace(/^0+/, '').toUpperCase();
const sameInstant = (a: string, b: string) => Date.parse(a) === Date.parse(b);

/** A TLS handshake with SNI until the host serves the installed certificate (serial and expiry), or fail with both. */
async function verifyServed(plan: CertificatePlan, proxy: CertificateProxy, installed: CertificateFacts): Promise<{ serial: string; notAfter: string; protocol?: string }> {
  let seen = '';
  for (let attempt = 1; ; attempt++) {
    const { served, unreachable } = await servedOn(plan, proxy);
    if (served && sameSerial(served.serial, installed.serial) && sameInstant(served.notAfter, installed.notAfter)) {
      return { serial: served.serial, notAfter: served.notAfter, ...((served as { protocol?: string }).protocol ? { protocol: (served as { protocol?: string }).protocol } : {}) };
    }
    seen = served ? `serial ${served.serial}, valid until ${served.notAfter} (issuer ${served.issuer})` : `no certificate (${unreachable})`;
    if (attempt >= VERIFY_ATTEMPTS) break;
    await sleep(VERIFY_INTERVAL_MS);
  }
  throw ApplicationFailure.nonRetryable(
    `verify failed: ${proxy.httpsAddress}:${proxy.httpsPort} (SNI ${probeName(plan.domains)}) serves ${seen}; installed: serial ${installed.serial}, valid until ${installed.notAfter}`,
    'VerifyFailed',
  );
}

function facts(s: Served): CertificateFacts {
  return { serial: s.serial, names: s.names, notBefore: s.notBefore, notAfter: s.notAfter, issuer: s.issuer };
}
