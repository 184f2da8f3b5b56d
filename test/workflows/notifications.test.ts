// Notifications from the workflows (time-skipping server, mocked activities): a gate that opens is
// told once with who may approve and its deadline; a gate still open an hour before its deadline is
// told again; a failed run is told with its error; no webhook configured means no reminder timer; a
// notification that cannot be sent never fails the run.
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { RunbookEventRequest } from '../../activities/notify';
import type { FirstDeployInput } from '../../common/types';
import { approveSignal, statusQuery } from '../../workflows/lib/definitions';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure } from '../helpers/workflow-env';

jest.setTimeout(60_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

async function run<T>(mocks: MockActivities, fn: (handle: WorkflowHandle) => Promise<T>, input: FirstDeployInput = { app: 'shop', env: 'production' }): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(async () => fn(await env.client.workflow.start('firstDeploy', { taskQueue, workflowId: `firstDeploy/shop/production/${randomUUID()}`, args: [input] })));
}

const told = (mocks: MockActivities) => mocks.calls.filter((c) => c.name === 'notifyRunbookEvent').map((c) => c.args as RunbookEventRequest);

it('a gate that opens is told once, with who may approve and its deadline; approved in time, no reminder', async () => {
  const mocks = mockActivities();
  await run(mocks, async (handle) => {
    const st = await waitForGate(handle, 'go-live');
    await handle.signal(approveSignal, { gate: 'go-live', by: 'alice' });
    await handle.signal(approveSignal, { gate: 'go-live', by: 'bob' });
    await handle.result();
    const events = told(mocks);
    expect(events).toHaveLength(1);
    expect(events[0]).toEqual({
      runbook: 'firstDeploy',
      app: 'shop',
      env: 'production',
      event: {
        kind: 'gate-opened',
        gate: 'go-live',
        description: st.pendingGates[0].description,
        approvers: ['alice', 'bob', 'carol'],
        minApprovals: 2,
        deadline: st.pendingGates[0].deadline,
      },
    });
  });
});

it('a gate still open an hour before its deadline is told again; its timeout fails the run, which is told with the error', async () => {
  const mocks = mockActivities();
  await run(
    mocks,
    async (handle) => {
      await waitForGate(handle, 'go-live');
      await handle.signal(approveSignal, { gate: 'go-live', by: 'carol' });
      const failure = await workflowFailure(handle.result()); // time skips to the deadline
      expect(failure.message).toMatch(/go-live approval timed out/);
      const events = told(mocks).map((r) => r.event);
      expect(events.map((e) => e.kind)).toEqual(['gate-opened', 'gate-deadline', 'failed']);
      const reminder = events[1] as Extract<(typeof events)[number], { kind: 'gate-deadline' }>;
      expect(reminder).toMatchObject({ gate: 'go-live', approvedBy: ['carol'], minApprovals: 2 });
      expect(events[2]).toMatchObject({ kind: 'failed', error: expect.stringMatching(/go-live approval timed out/) });
    },
    { app: 'shop', env: 'production', approvalTimeout: '3h' },
  );
});

it('with no webhook configured nothing waits for a reminder; the decision alone ends the gate', async () => {
  const mocks = mockActivities({ notifyRunbookEvent: async () => ({ webhooks: 0, sent: 0, alreadySent: 0, unconfirmed: 0 }) });
  await run(
    mocks,
    async (handle) => {
      await waitForGate(handle, 'go-live');
      await workflowFailure(handle.result());
      expect(told(mocks).map((r) => r.event.kind)).toEqual(['gate-opened', 'failed']);
    },
    { app: 'shop', env: 'production', approvalTimeout: '3h' },
  );
});

it('a notification that cannot be sent is noted in the status and the run goes on', async () => {
  const mocks = mockActivities({
    notifyRunbookEvent: async () => {
      throw ApplicationFailure.nonRetryable('webhook http://127.0.0.1:9/… refused the notification: HTTP 403', 'NotifyRejected');
    },
  });
  await run(mocks, async (handle) => {
    await waitForGate(handle, 'go-live', 30_000);
    for (let i = 0; i < 200 && !(await handle.query(statusQuery)).notes?.length; i++) await new Promise((r) => setTimeout(r, 50));
    await handle.signal(approveSignal, { gate: 'go-live', by: 'alice' });
    await handle.signal(approveSignal, { gate: 'go-live', by: 'bob' });
    await handle.result();
    const st = await handle.query(statusQuery);
    expect(st.phase).toBe('succeeded');
    expect(st.notes?.join('\n')).toMatch(/the "gate-opened" notification could not be sent: .*refused the notification: HTTP 403/);
  });
});

it('a decided gate does not wait for its notification: a POST still being retried is cancelled', async () => {
  let attempts = 0;
  const mocks = mockActivities({
    notifyRunbookEvent: async () => {
      attempts++;
      throw new Error('webhook http://127.0.0.1:9/… answered HTTP 503'); // retryable: the receiver is down
    },
  });
  await run(mocks, async (handle) => {
    await waitForGate(handle, 'go-live');
    await handle.signal(approveSignal, { gate: 'go-live', by: 'alice' });
    await handle.signal(approveSignal, { gate: 'go-live', by: 'bob' });
    await handle.result();
    const st = await handle.query(statusQuery);
    expect(st.phase).toBe('succeeded');
    // cancelled once the gate was decided: neither all 8 attempts nor a "could not be sent" note
    expect(attempts).toBeLessThan(8);
    expect(st.notes ?? []).toEqual([]);
  });
});
