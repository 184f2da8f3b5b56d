// Runbook 1: first deploy of an app (seeds 000 "Production Deployment", 001 bootstrap, 003 deploy.sh,
// 004 Quick Start). Plan → preflight → networks/volumes → dependencies (health-gated) → pull →
// migrations → replicas (health-gated) → optional go-live approval → proxy → smoke test.
import { ActivityFailure, ApplicationFailure, CancellationScope, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { labelsFor, LABEL, NAME_PATTERN } from '../common/naming';
import { preflightRequests } from '../common/plan';
import type { DeployPlan, FirstDeployInput, FirstDeployResult, HostSpec, PreflightReport } from '../common/types';
import { approvalTimeoutMs, errorMessage, Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
/** Activities that wait (pulls, health gates, migrations) heartbeat, so a dead worker is noticed in 30 s. */
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });

/** Checks the input's shape before anything runs; the inventory checks the rest in the plan step. */
export function validateTarget(input: FirstDeployInput): void {
  const problems: string[] = [];
  if (!input || typeof input !== 'object') throw ApplicationFailure.nonRetryable('input must be a JSON object like {"app": "demo", "env": "production"}', 'InvalidInput');
  for (const field of ['app', 'env'] as const) {
    if (typeof input[field] !== 'string') problems.push(`"${field}" is required (a string)`);
    else if (!NAME_PATTERN.test(input[field])) problems.push(`"${field}": "${input[field]}" is not a valid name`);
  }
  if (input.version !== undefined && typeof input.version !== 'string') problems.push('"version" must be a string');
  if (input.dryRun !== undefined && typeof input.dryRun !== 'boolean') problems.push('"dryRun" must be true or false');
  if (input.goLiveApproval !== undefined && typeof input.goLiveApproval !== 'boolean') problems.push('"goLiveApproval" must be true or false');
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid input: ${problems.join('; ')}`, 'InvalidInput');
  approvalTimeoutMs(input.approvalTimeout); // throws on a bad duration
}

export async function firstDeploy(input: FirstDeployInput): Promise<FirstDeployResult> {
  validateTarget(input);
  const rb = new Runbook('firstDeploy', { app: input.app, env: input.env });
  try {
    const plan = await rb.step('plan', () => quick.resolveDeployPlan(input));
    rb.setPhase('preflight');
    const preflight = await rb.step('preflight', () => Promise.all(preflightRequests(plan).map((req) => quick.preflightHost(req))));
    if (input.dryRun) {
      rb.finish('succeeded');
      return { app: plan.app, env: plan.env, version: plan.version, dryRun: true, plan, preflight, containers: [], unchanged: true };
    }
    assertPreflight(preflight);
    rb.setPhase('running');
    const result = await withLock(rb, plan, () => deploy(rb, plan, input));
    rb.finish('succeeded');
    return { ...result, preflight };
  } catch (err) {
    rb.finish('failed', err);
    throw rootFailure(err);
  }
}

/** The failure a human should read: an activity's own ApplicationFailure rather than its wrapper. */
export function rootFailure(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return err;
}

function assertPreflight(reports: PreflightReport[]): void {
  const failed = reports.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => `${r.host}: ${c.check}: ${c.detail}`));
  if (failed.length) {
    throw ApplicationFailure.nonRetryable(`preflight failed, nothing was changed:\n  - ${failed.join('\n  - ')}`, 'PreflightFailed', reports);
  }
}

/** Holds the app/env lock for the duration of `fn`; refuses at once if another runbook holds it. */
export async function withLock<T>(rb: Runbook, target: { app: string; env: string }, fn: () => Promise<T>): Promise<T> {
  const { workflowId, runId } = workflowInfo();
  const answer = await rb.step('lock', () => quick.acquireLock({ app: target.app, env: target.env, holder: { workflowId, runId, runbook: rb.name } }));
  if (!answer.acquired) {
    const h = answer.holder;
    throw ApplicationFailure.nonRetryable(`${target.app}/${target.env} is locked by ${h.runbook} (${h.workflowId}, run ${h.runId}) since ${h.since}; nothing was changed`, 'Locked', h);
  }
  try {
    return await fn();
  } finally {
    await CancellationScope.nonCancellable(() => quick.releaseLock({ app: target.app, env: target.env, workflowId, runId }));
  }
}

async function deploy(rb: Runbook, plan: DeployPlan, input: FirstDeployInput): Promise<Omit<FirstDeployResult, 'preflight'>> {
  const hosts = new Map(plan.hosts.map((h) => [h.name, h]));
  const host = (name: string): HostSpec => hosts.get(name)!;
  const { runId } = workflowInfo();
  const containers: FirstDeployResult['containers'] = [];
  let changed = false;

  try {
    await rb.step('networks and volumes', async () => {
      const labels = labelsFor(plan.app, plan.env, 'dependency', { [LABEL.runId]: runId });
      const nets = await Promise.all(plan.hosts.map((h) => quick.ensureNetwork({ host: h, name: plan.network, labels })));
      const vols = await Promise.all(plan.volumes.map((v) => quick.ensureVolume({ host: host(v.host), name: v.name, labels })));
      changed ||= [...nets, ...vols].some((r) => r.created);
    });

    for (const dep of plan.dependencies) {
      await rb.step(`dependency ${dep.name}`, async () => {
        const r = await waiting.ensureContainer.executeWithOptions({ summary: `start ${dep.container.name} on ${dep.host}` }, [{ host: host(dep.host), spec: dep.container }]);
        containers.push({ name: r.name, host: dep.host, id: r.id, created: r.created });
        changed ||= r.created;
        await waiting.waitHealthy({ host: host(dep.host), container: dep.container.name, timeoutSeconds: dep.healthTimeoutSeconds });
      });
    }

    await rb.step('pull', () => Promise.all(plan.pulls.map((p) => waiting.pullImage({ host: host(p.host), image: p.image }))));

    const migrate = plan.migrate;
    if (migrate) {
      await rb.step('migrations', async () => {
        const r = await waiting.runOneOff({ host: host(migrate.host), spec: migrate.container, timeoutSeconds: migrate.timeoutSeconds });
        changed ||= !r.alreadyDone;
      });
    }

    await rb.step('replicas', async () => {
      const started = await Promise.all(
        plan.replicas.map((r) => waiting.ensureContainer.executeWithOptions({ summary: `start ${r.container.name} on ${r.host}` }, [{ host: host(r.host), spec: r.container }])),
      );
      started.forEach((r, i) => containers.push({ name: r.name, host: plan.replicas[i].host, id: r.id, created: r.created }));
      changed ||= started.some((r) => r.created);
    });

    await rb.step('health', () =>
      Promise.all(plan.replicas.map((r) => waiting.waitHealthy({ host: host(r.host), container: r.container.name, timeoutSeconds: plan.healthTimeoutSeconds }))),
    );

    if (plan.goLiveApproval && changed) {
      const gate = await rb.gate('go-live', `Expose ${plan.app} ${plan.version} (${plan.env}) through the proxy`, plan.approvals, input.approvalTimeout);
      if (gate.outcome !== 'approved') {
        throw ApplicationFailure.nonRetryable(
          `go-live ${gate.outcome === 'rejected' ? `rejected by ${gate.by.join(', ')}` : 'approval timed out (safe default: do not proceed)'}`,
          gate.outcome === 'rejected' ? 'ApprovalRejected' : 'ApprovalTimedOut',
        );
      }
    }

    await rb.step('proxy', async () => {
      for (const p of plan.proxies) {
        const r = await waiting.ensureContainer.executeWithOptions({ summary: `start ${p.container.name} on ${p.host}` }, [{ host: host(p.host), spec: p.container }]);
        containers.push({ name: r.name, host: p.host, id: r.id, created: r.created });
        const configured = await quick.configureProxy({ host: host(p.host), container: p.container.name, config: p.config });
        changed ||= r.created || configured.changed;
      }
    });

    await rb.step('smoke test', () => Promise.all(plan.smokeTests.map((t) => waiting.smokeTest(t))));
    return { app: plan.app, env: plan.env, version: plan.version, dryRun: false, plan, containers, unchanged: !changed };
  } catch (err) {
    rb.setPhase('cleaning-up');
    const cleanup = await CancellationScope.nonCancellable(() => removeWhatThisRunCreated(plan, runId));
    throw failureWithCleanup(err, cleanup);
  }
}

async function removeWhatThisRunCreated(plan: DeployPlan, runId: string): Promise<string> {
  try {
    const results = await Promise.all(plan.hosts.map((h) => quick.removeRunResources({ host: h, app: plan.app, env: plan.env, runId })));
    const removed = results.flatMap((r) => [...r.removedContainers.map((c) => `container ${c}`), ...r.removedNetworks.map((n) => `network ${n}`)]);
    const kept = plan.volumes.map((v) => v.name);
    return `cleanup: ${removed.length ? `removed ${removed.join(', ')}` : 'this run had created nothing'}${kept.length ? `; volumes kept: ${kept.join(', ')}` : ''}`;
  } catch (err) {
    return `cleanup FAILED, containers of run ${runId} may remain (label runbook.run-id=${runId}): ${errorMessage(err)}`;
  }
}

function failureWithCleanup(err: unknown, cleanup: string): ApplicationFailure {
  const cause = (err as { cause?: unknown }).cause ?? err;
  const app = cause instanceof ApplicationFailure ? cause : undefined;
  return ApplicationFailure.create({
    message: `${errorMessage(err)}\n${cleanup}`,
    type: app?.type ?? 'DeployFailed',
    nonRetryable: true,
    details: app?.details ? [...app.details, { cleanup }] : [{ cleanup }],
  });
}
