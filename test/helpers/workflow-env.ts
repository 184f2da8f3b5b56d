// Time-skipping test server with the workflow bundle built once per test file.
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, makeTelemetryFilterString, Runtime, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { RUNBOOK_SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { TEMPORAL_TEST_SERVER_PATH } from './paths';

let runtimeInstalled = false;

/** The SDK runtime logging errors only (once per test file). */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
  runtimeInstalled = true;
}

export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  // The SDK gives the test server 5 s to come up; a busy 2-core machine sometimes needs longer.
  let env: TestWorkflowEnvironment | undefined;
  for (let attempt = 1; !env; attempt++) {
    try {
      env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER_PATH } } });
    } catch (err) {
      if (attempt >= 3 || !/did not start within/.test((err as Error).message)) throw err;
    }
  }
  const { KEYWORD, BOOL } = { KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, BOOL: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL };
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(RUNBOOK_SEARCH_ATTRIBUTES.map((k) => [k.name, k.type === 'BOOL' ? BOOL : KEYWORD])),
  });
  return env;
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: new DefaultLogger('ERROR') });
  return bundle;
}

export async function testWorker(env: TestWorkflowEnvironment, taskQueue: string, activities: object): Promise<Worker> {
  return Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities });
}

/** Polls the status query until the gate is pending (queries do not skip time). */
export async function waitForGate(handle: WorkflowHandle, gate: string, timeoutMs = 10_000): Promise<RunbookStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await handle.query(statusQuery);
    if (st.pendingGates.some((g) => g.gate === gate) && (await activitiesPickedUp(handle))) return st;
    if (Date.now() > deadline) throw new Error(`gate ${gate} never opened`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const { EventType } = temporal.api.enums.v1;
const ENDED = new Set([EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED]);

/**
 * Every activity the run scheduled has been picked up by the worker (running, or ended). A gate's
 * notification is scheduled as the gate opens; a decision signalled while it is still only scheduled
 * makes the run cancel an activity that never started, and the time-skipping test server then leaves
 * the run's next workflow task hanging (seen in CI: the run never ended). The real server does not.
 */
async function activitiesPickedUp(handle: WorkflowHandle): Promise<boolean> {
  const { events } = await handle.fetchHistory();
  const scheduled = new Set<string>();
  for (const e of events ?? []) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) scheduled.add(String(e.eventId));
    const ended = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
    if (e.eventType != null && ENDED.has(e.eventType) && ended) scheduled.delete(String(ended.scheduledEventId));
  }
  if (scheduled.size === 0) return true;
  const pending = (await handle.describe()).raw.pendingActivities ?? [];
  const started = pending.filter((a) => a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED).length;
  return started >= scheduled.size;
}

/**
 * The run's outcome without time skipping. The environment's client unlocks time skipping while it
 * awaits a result, and the test server then jumps to its next timer (a gate's deadline, a reminder,
 * years ahead when nothing else is scheduled) in the middle of the run, e.g. while the run is still
 * handling a signal; a wait on the run's status does not.
 */
export async function settled(handle: WorkflowHandle): Promise<unknown> {
  while ((await handle.describe()).status.name === 'RUNNING') await new Promise((r) => setTimeout(r, 10));
  return handle.result();
}

/** The ApplicationFailure a run failed with (the test fails if it succeeded or failed otherwise). */
export async function workflowFailure(result: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await result.then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}
