// Runbook 1: first deploy of an app (seeds 000 "Production Deployment", 001 bootstrap, 003 deploy.sh,
// 004 Quick Start). Plan → preflight → networks/volumes → dependencies (health-gated) → pull →
// migrations → replicas (health-gated) → optional go-live approval → proxy → smoke test.
import { ApplicationFailure, CancellationScope, patched, proxyActivities, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { labelsFor, LABEL } from '../common/naming';
import { preflightRequests } from '../common/plan';
import type { DeployPlan, FirstDeployInput, FirstDeployResult, HostSpec, PreflightReport } from '../common/types';
import { errorMessage, Runbook } from './lib/runbook';
import { FirstDeployInputSchema, parseInput } from '../common/inputs';
import { allSettled, rootFailure, withLock } from './lib/steps';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
/** Activities that wait (pulls, health gates, migrations) heartbeat, so a dead worker is noticed in 30 s. */
const waiting = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry });

export async function firstDeploy(input: FirstDeployInput): Promise<FirstDeployResult> {
  parseInput(FirstDeployInputSchema, input, 'firstDeploy');
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
    await rb.fail(rootFailure(err));
    throw rootFailure(err);
  }
}

function assertPreflight(reports: PreflightReport[]): void {
  const failed = reports.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => `${r.host}: ${c.check}: ${c.detail}`));
  if (failed.length) {
    throw ApplicationFailure.nonRetryable(`preflight failed, nothing was changed:\n  - ${failed.join('\n  - ')}`, 'PreflightFailed', reports);
  }
}

async function deploy(rb: Runbook, plan: DeployPlan, input: FirstDeployInput): Promise<Omit<FirstDeployResult, 'preflight'>> {
  const hosts = new Map(plan.hosts.map((h) => [h.name, h]));
  const host = (name: string): HostSpec => hosts.get(name)!;
  const { runId } = workflowInfo();
  const containers: FirstDeployResult['containers'] = [];
  let changed = false;
  // A failed parallel step waits for its siblings before the clean-up, so nothing is created after
  // it (runs started before this change keep Promise.all: their recorded order must replay).
  const all: <T>(promises: Promise<T>[]) => Promise<T[]> = patched('deploy-steps-settle-before-cleanup') ? allSettled : (p) => Promise.all(p);

  try {
    await rb.step('networks and volumes', async () => {
      const labels = labelsFor(plan.app, plan.env, 'dependency', { [LABEL.runId]: runId });
      const nets = await all(plan.hosts.map((h) => quick.ensureNetwork({ host: h, name: plan.network, labels })));
      const vols = await all(plan.volumes.map((v) => quick.ensureVolume({ host: host(v.host), name: v.name, labels })));
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

    await rb.step('pull', () => all(plan.pulls.map((p) => waiting.pullImage({ host: host(p.host), image: p.image }))));

    const migrate = plan.migrate;
    if (migrate) {
      await rb.step('migrations', async () => {
        const r = await waiting.runOneOff({ host: host(migrate.host), spec: migrate.container, timeoutSeconds: migrate.timeoutSeconds });
        changed ||= !r.alreadyDone;
      });
    }

    await rb.step('replicas', async () => {
      const started = await all(
        plan.replicas.map((r) => waiting.ensureContainer.executeWithOptions({ summary: `start ${r.container.name} on ${r.host}` }, [{ host: host(r.host), spec: r.container }])),
      );
      started.forEach((r, i) => containers.push({ name: r.name, host: plan.replicas[i].host, id: r.id, created: r.created }));
      changed ||= started.some((r) => r.created);
    });

    await rb.step('health', () =>
      all(plan.replicas.map((r) => waiting.waitHealthy({ host: host(r.host), container: r.container.name, timeoutSeconds: plan.healthTimeoutSeconds }))),
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

    await rb.step('smoke test', () => all(plan.smokeTests.map((t) => waiting.smokeTest(t))));
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
