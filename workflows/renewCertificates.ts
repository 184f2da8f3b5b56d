// Certificate renewal, started by a Temporal Schedule every 12 h (`runbook schedule certs`): for each
// app/env with proxy.tls (or the one given), what every host serves is judged by the same rule as
// issueCertificate (a third of the lifetime or less left, names not covered, nothing served, the
// wrong kind → due). Each due target gets an issueCertificate child, one at a time; a failed one is
// alerted through the environment's webhook and the others go on. The run fails at the end when any
// renewal failed (the Schedule's recent actions show it); the next tick simply tries again.
import { ApplicationFailure, ChildWorkflowFailure, executeChild, patched, proxyActivities, type RetryPolicy, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { NAME_PATTERN } from '../common/naming';
import type { CertificatePlan, RenewCertificatesResult } from '../common/types';
import { rootFailure } from './lib/steps';
import { issueCertificate, judgeServed, SERVED_TRUST_PATCH, servedOn } from './issueCertificate';
import { errorMessage, Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
const alerts = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { initialInterval: '5s', maximumAttempts: 5 } });

export interface RenewCertificatesInput {
  /** Only this app (default: every app of the inventory with proxy.tls). */
  app?: string;
  /** Only this environment. */
  env?: string;
}

/** Shown as the app/env of a run over the whole inventory (search attributes, status). */
export const ALL_TARGETS = '*';

export function validateRenewInput(input: RenewCertificatesInput): void {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw ApplicationFailure.nonRetryable('invalid input: must be a JSON object like {} or {"app": "demo", "env": "production"}', 'InvalidInput');
  const problems: string[] = [];
  for (const field of ['app', 'env'] as const) {
    const v = input[field];
    if (v !== undefined && (typeof v !== 'string' || !NAME_PATTERN.test(v))) problems.push(`"${field}": ${JSON.stringify(v)} is not a valid name`);
  }
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid input: ${problems.join('; ')}`, 'InvalidInput');
}

/** A child's own failure (its ApplicationFailure) rather than the ChildWorkflowFailure around it. */
function childCause(err: unknown): unknown {
  return err instanceof ChildWorkflowFailure && err.cause ? err.cause : rootFailure(err);
}

export async function renewCertificates(input: RenewCertificatesInput = {}): Promise<RenewCertificatesResult> {
  validateRenewInput(input);
  const rb = new Runbook('renewCertificates', { app: input.app ?? ALL_TARGETS, env: input.env ?? ALL_TARGETS });
  const result: RenewCertificatesResult = { checked: [], renewed: [], failed: [] };
  try {
    const targets =
      input.app !== undefined && input.env !== undefined
        ? [{ app: input.app, env: input.env }]
        : (await rb.step('plan', () => quick.listCertificateTargets())).filter((t) => (input.app === undefined || t.app === input.app) && (input.env === undefined || t.env === input.env));
    rb.setPhase('running');
    const requireTrust = patched(SERVED_TRUST_PATCH);

    // Check every target first (read-only), then renew the due ones one at a time.
    const due: { plan: CertificatePlan; reason: string; notAfter?: string }[] = [];
    for (const t of targets) {
      try {
        const { plan, found } = await rb.step(`check ${t.app}/${t.env}`, async () => {
          const plan = await quick.resolveCertificatePlan({ app: t.app, env: t.env });
          return { plan, found: await Promise.all(plan.proxies.map((p) => servedOn(plan, p))) };
        });
        const now = Date.now();
        const reasons: string[] = [];
        plan.proxies.forEach((p, i) => {
          const v = judgeServed(found[i].served, plan, now, false, found[i].unreachable, requireTrust);
          const notAfter = found[i].served?.notAfter;
          result.checked.push({ app: t.app, env: t.env, host: p.host.name, ...(notAfter ? { notAfter } : {}), due: !v.keep, reason: v.reason });
          if (!v.keep) reasons.push(`${p.host.name}: ${v.reason}`);
        });
        if (reasons.length) {
          const notAfters = found.map((f) => f.served?.notAfter).filter((n): n is string => n !== undefined).sort();
          due.push({ plan, reason: `renewal: ${reasons.join('; ')}`, ...(notAfters.length ? { notAfter: notAfters[0] } : {}) });
        }
      } catch (err) {
        result.failed.push({ app: t.app, env: t.env, error: `check failed: ${errorMessage(rootFailure(err))}` });
      }
    }

    const { runId } = workflowInfo();
    for (const d of due) {
      const { app, env } = d.plan;
      const workflowId = `issueCertificate/${app}/${env}/renew-${runId}`;
      try {
        await rb.step(`renew ${app}/${env}`, () => executeChild(issueCertificate, { workflowId, args: [{ app, env, reason: d.reason.slice(0, 1000) }] }));
        result.renewed.push({ app, env, workflowId });
      } catch (err) {
        const error = errorMessage(childCause(err));
        result.failed.push({ app, env, error: `${workflowId}: ${error}` });
        if (d.plan.notify) await alert(rb, d.plan, workflowId, error, d.notAfter);
      }
    }

    if (result.failed.length) {
      throw ApplicationFailure.nonRetryable(
        `${result.failed.length} certificate renewal(s) failed (the next run tries again):\n  - ${result.failed.map((f) => `${f.app}/${f.env}: ${f.error}`).join('\n  - ')}`,
        'RenewalFailed',
        result,
      );
    }
    rb.finish('succeeded');
    return result;
  } catch (err) {
    const failure = rootFailure(err);
    rb.finish('failed', failure);
    throw failure;
  }
}

async function alert(rb: Runbook, plan: CertificatePlan, child: string, error: string, notAfter?: string): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  try {
    await rb.step(`alert ${plan.app}/${plan.env}`, () =>
      alerts.notify({
        webhookUrlFile: plan.notify!.webhookUrlFile,
        notification: {
          severity: 'failure',
          runbook: 'renewCertificates',
          app: plan.app,
          env: plan.env,
          title: `certificate renewal failed; ${notAfter ? `the current certificate stays served (valid until ${notAfter})` : 'no certificate is served'}; the next run tries again`,
          details: `${plan.domains.join(', ')}: ${error}\n(renewal run ${child})`.slice(0, 3000),
          workflowId,
          runId,
          at: new Date().toISOString(),
        },
      }),
    );
  } catch {
    // the renewal's failure is reported by the run either way; the alert's own failure is in the history
  }
}
