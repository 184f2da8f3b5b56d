// firstDeploy on the time-skipping server with mocked activities: approvals (approve, reject,
// timeout, M-of-N, unlisted approver), the lock, refusal of a second run, cleanup on failure.
import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FirstDeployInput, FirstDeployResult } from '../../common/types';
import { SA_APP, SA_AWAITING_APPROVAL, SA_ENV, SA_STEP } from '../../common/search-attributes';
import { approveSignal, decideUpdate, rejectSignal, statusQuery } from '../../workflows/lib/definitions';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure } from '../helpers/workflow-env';

const failureOf = (handle: WorkflowHandle) => workflowFailure(handle.result());

jest.setTimeout(60_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

async function run<T>(mocks: MockActivities, fn: (start: (input: FirstDeployInput) => Promise<WorkflowHandle>) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(
    fn((input) =>
      env.client.workflow.start('firstDeploy', {
        taskQueue,
        workflowId: `firstDeploy/${input.app}/${input.env}/${randomUUID()}`,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
      }),
    ),
  );
}



const production: FirstDeployInput = { app: 'shop', env: 'production' };

describe('firstDeploy approvals', () => {
  it('proceeds when the go-live gate is approved by 2 of 3 approvers; duplicates and strangers are logged and ignored', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const handle = await start(production);
      const pending = await waitForGate(handle, 'go-live');
      expect(pending.phase).toBe('awaiting-approval');
      expect(pending.pendingGates[0]).toMatchObject({ approvers: ['alice', 'bob', 'carol'], minApprovals: 2, approvedBy: [] });
      expect(mocks.called('configureProxy')).toBe(0); // not exposed before approval
      const attrs = (await handle.describe()).typedSearchAttributes;
      expect([attrs.get(SA_APP), attrs.get(SA_ENV), attrs.get(SA_STEP), attrs.get(SA_AWAITING_APPROVAL)]).toEqual(['shop', 'production', 'approval:go-live', true]);

      await handle.signal(approveSignal, { gate: 'go-live', by: 'alice', comment: 'looks good' });
      await handle.signal(approveSignal, { gate: 'go-live', by: 'alice' }); // duplicate
      await handle.signal(approveSignal, { gate: 'go-live', by: 'mallory' }); // not an approver
      await handle.signal(approveSignal, { gate: 'canary', by: 'bob' }); // no such gate
      const afterOne = await handle.query(statusQuery);
      expect(afterOne.pendingGates[0].approvedBy).toEqual(['alice']);

      await handle.signal(approveSignal, { gate: 'go-live', by: 'bob' });
      const result = (await handle.result()) as FirstDeployResult;
      expect(result.unchanged).toBe(false);
      expect(mocks.called('configureProxy')).toBe(2);

      const st = await handle.query(statusQuery);
      expect(st.phase).toBe('succeeded');
      expect(st.pendingGates).toEqual([]);
      expect((await handle.describe()).typedSearchAttributes.get(SA_AWAITING_APPROVAL)).toBe(false);
      expect(st.decisions.map((d) => [d.by, d.gate, d.accepted, d.reason ?? ''])).toEqual([
        ['alice', 'go-live', true, ''],
        ['alice', 'go-live', false, '"alice" already approved gate "go-live"'],
        ['mallory', 'go-live', false, '"mallory" is not an approver of gate "go-live" (approvers: alice, bob, carol)'],
        ['bob', 'canary', false, 'no pending gate "canary" (pending: go-live)'],
        ['bob', 'go-live', true, ''],
      ]);
      expect(st.decisions[0].comment).toBe('looks good');
    });
  });

  it('stops and cleans up when the gate is rejected; one reject decides', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const handle = await start(production);
      await waitForGate(handle, 'go-live');
      await handle.signal(approveSignal, { gate: 'go-live', by: 'alice' });
      await handle.signal(rejectSignal, { gate: 'go-live', by: 'carol', comment: 'error rate on staging' });
      const failure = await failureOf(handle);
      expect(failure.type).toBe('ApprovalRejected');
      expect(failure.message).toMatch(/go-live rejected by carol/);
      expect(failure.message).toMatch(/cleanup: removed container shop-production-web-1/);
      expect(mocks.called('configureProxy')).toBe(0);
      expect(mocks.called('removeRunResources')).toBe(2);
      expect(mocks.called('releaseLock')).toBe(1);
      const st = await handle.query(statusQuery);
      expect(st.phase).toBe('failed');
      expect(st.decisions.filter((d) => d.accepted).map((d) => d.by)).toEqual(['alice', 'carol']);
    });
  });

  it('takes the safe default (do not proceed) when nobody decides within the timeout', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const handle = await start(production); // default timeout: 7 days, skipped by the test server
      const failure = await failureOf(handle);
      expect(failure.type).toBe('ApprovalTimedOut');
      expect(failure.message).toMatch(/approval timed out \(safe default: do not proceed\)/);
      expect(mocks.called('configureProxy')).toBe(0);
      expect(mocks.called('removeRunResources')).toBe(2);
    });
  });

  it('answers an update at once: accepted, or refused with the reason', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const handle = await start({ ...production, approvalTimeout: '1h' });
      await waitForGate(handle, 'go-live');
      await expect(handle.executeUpdate(decideUpdate, { args: [{ gate: 'go-live', by: 'mallory', decision: 'approve' }] })).rejects.toThrow(WorkflowUpdateFailedError);
      const accepted = await handle.executeUpdate(decideUpdate, { args: [{ gate: 'go-live', by: 'alice', decision: 'approve' }] });
      expect(accepted).toMatchObject({ accepted: true, by: 'alice', via: 'update' });
      const again = handle.executeUpdate(decideUpdate, { args: [{ gate: 'go-live', by: 'alice', decision: 'approve' }] });
      await expect(again).rejects.toThrow(WorkflowUpdateFailedError);
      await handle.executeUpdate(decideUpdate, { args: [{ gate: 'go-live', by: 'bob', decision: 'approve' }] });
      await handle.result();
    });
  });

  it('rejects a bad approval timeout before doing anything', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const failure = await failureOf(await start({ ...production, approvalTimeout: '45d' }));
      expect(failure.type).toBe('InvalidInput');
      expect(failure.message).toMatch(/exceeds the maximum of 30d/);
      expect(mocks.calls).toEqual([]);
    });
  });
});

describe('firstDeploy runs', () => {
  it('deploys in order without a gate when the environment has none', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const handle = await start({ app: 'shop', env: 'staging' });
      const result = (await handle.result()) as FirstDeployResult;
      expect(result.version).toBe('v1');
      expect(result.containers.map((c) => c.name)).toEqual(['shop-staging-postgres', 'shop-staging-web-1', 'shop-staging-proxy']);
      const order = mocks.names().filter((n, i, all) => all.indexOf(n) === i);
      expect(order).toEqual(['resolveDeployPlan', 'preflightHost', 'acquireLock', 'ensureNetwork', 'ensureVolume', 'ensureContainer', 'waitHealthy', 'pullImage', 'runOneOff', 'configureProxy', 'smokeTest', 'releaseLock']);
      const st = await handle.query(statusQuery);
      expect(st.steps.map((s) => `${s.step}:${s.state}`)).toEqual([
        'plan:done', 'preflight:done', 'lock:done', 'networks and volumes:done', 'dependency postgres:done', 'pull:done', 'migrations:done', 'replicas:done', 'health:done', 'proxy:done', 'smoke test:done',
      ]);
    });
  });

  it('dry run returns the plan and preflight and changes nothing', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const result = (await (await start({ ...production, dryRun: true })).result()) as FirstDeployResult;
      expect(result.dryRun).toBe(true);
      expect(result.plan.replicas.map((r) => `${r.container.name}@${r.host}`)).toEqual(['shop-production-web-1@one', 'shop-production-web-2@two']);
      expect(result.preflight).toHaveLength(2);
      expect(mocks.names().sort()).toEqual(['preflightHost', 'preflightHost', 'resolveDeployPlan']);
    });
  });

  it('stops before any change when preflight fails, listing every failed check', async () => {
    const mocks = mockActivities({
      preflightHost: async (req: { host: { name: string } }) => ({
        host: req.host.name,
        ok: req.host.name === 'one',
        checks: [{ check: 'disk', ok: req.host.name === 'one', detail: req.host.name === 'one' ? 'ok' : '100 MB free, need 1024 MB' }],
      }),
    });
    await run(mocks, async (start) => {
      const failure = await failureOf(await start(production));
      expect(failure.type).toBe('PreflightFailed');
      expect(failure.message).toContain('two: disk: 100 MB free, need 1024 MB');
      expect(mocks.called('acquireLock') + mocks.called('ensureNetwork')).toBe(0);
    });
  });

  it('rejects invalid input with a clear message before any activity', async () => {
    const mocks = mockActivities();
    await run(mocks, async (start) => {
      const failure = await failureOf(await start({ app: 'Shop!', env: 'production' }));
      expect(failure.type).toBe('InvalidInput');
      expect(failure.message).toMatch(/^invalid input: app: "Shop!" is not a valid app name/);
      // JSON typed in the UI: every bad field named, an unknown one refused, before any activity
      const typed = await failureOf(await start({ app: 'shop', env: 'production', dryRun: 'yes', approvalTimeout: '10x', colour: 'blue' } as never));
      expect(typed.message).toBe('invalid input: dryRun: must be true or false, got "yes"; approvalTimeout: "10x" is not a duration (use e.g. "90s", "15m", "48h", "7d"); colour: is not an option');
      const unknown = await failureOf(await start({ app: 'shop', env: 'qa' }));
      expect(unknown.message).toMatch(/app "shop" has no environment "qa" \(it has: production, staging\)/);
      expect(mocks.names()).toEqual(['resolveDeployPlan']);
    });
  });

  it('refuses to start while another runbook holds the app/env lock, without side effects', async () => {
    const mocks = mockActivities({
      acquireLock: async () => ({ acquired: false, holder: { workflowId: 'rollingUpdate/shop/staging', runId: 'r9', runbook: 'rollingUpdate', since: '2026-11-21T10:00:00.000Z' } }),
    });
    await run(mocks, async (start) => {
      const failure = await failureOf(await start({ app: 'shop', env: 'staging' }));
      expect(failure.type).toBe('Locked');
      expect(failure.message).toMatch(/shop\/staging is locked by rollingUpdate \(rollingUpdate\/shop\/staging, run r9\) since 2026-11-21T10:00:00.000Z; nothing was changed/);
      expect(mocks.called('ensureNetwork')).toBe(0);
      expect(mocks.called('releaseLock')).toBe(0);
    });
  });

  it('refuses a second firstDeploy of the same app/env while one runs', async () => {
    const mocks = mockActivities();
    await run(mocks, async () => {
      const taskQueue = 'unused';
      const options = { taskQueue, workflowId: 'firstDeploy/shop/production', args: [production], workflowIdConflictPolicy: 'FAIL' as const };
      const first = await env.client.workflow.start('firstDeploy', options);
      await expect(env.client.workflow.start('firstDeploy', options)).rejects.toThrow(WorkflowExecutionAlreadyStartedError);
      await first.terminate('test done');
    });
  });

  it('on a failed health gate, removes what the run created and reports diagnostics and cleanup', async () => {
    const mocks = mockActivities({
      waitHealthy: async (req: { container: string }) => {
        if (req.container.includes('-web-')) {
          throw ApplicationFailure.nonRetryable(`${req.container} on one is unhealthy after 4s\nhealth log:\n  exit 1: 503`, 'ContainerUnhealthy', { exitCode: undefined, healthLog: ['exit 1: 503'] });
        }
        return { container: req.container, health: 'healthy', seconds: 1 };
      },
    });
    await run(mocks, async (start) => {
      const failure = await failureOf(await start({ app: 'shop', env: 'staging' }));
      expect(failure.type).toBe('ContainerUnhealthy');
      expect(failure.message).toMatch(/shop-staging-web-1 on one is unhealthy after 4s\nhealth log:\n {2}exit 1: 503\ncleanup: removed container shop-production-web-1; volumes kept: shop-staging-pgdata/);
      expect(mocks.calls.find((c) => c.name === 'removeRunResources')?.args).toMatchObject({ app: 'shop', env: 'staging' });
      expect(mocks.called('configureProxy')).toBe(0);
      expect(mocks.called('releaseLock')).toBe(1);
    });
  });
});
