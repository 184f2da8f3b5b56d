// The per-runbook metrics interceptor (workflows/lib/metrics-interceptor.ts): one count and one
// duration per runbook run as it ends, by outcome, nothing for runs that are not runbooks; and the
// recorded histories still replay with it (it adds no command). Metrics go to the SDK's buffer here.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, makeTelemetryFilterString, MetricsBuffer, Runtime, Worker, type BufferedMetricUpdate } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { historyFromJson } from '../../client/history-json';
import { RUN_DURATION_SECONDS, RUNS_TOTAL } from '../../common/run-metrics';
import { RUNBOOK_SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import { TEMPORAL_TEST_SERVER_PATH } from '../helpers/paths';
import type { MetricsProbeInput } from './fixtures/metrics-probe';

jest.setTimeout(180_000);

const INTERCEPTOR = require.resolve('../../workflows/lib/metrics-interceptor');
const buffer = new MetricsBuffer();
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) }, metrics: { buffer } } });
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER_PATH } } });
  const { KEYWORD, BOOL } = { KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, BOOL: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL };
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(RUNBOOK_SEARCH_ATTRIBUTES.map((k) => [k.name, k.type === 'BOOL' ? BOOL : KEYWORD])),
  });
});

afterAll(async () => {
  await env?.teardown();
});

function runbookUpdates(updates: BufferedMetricUpdate[]): { name: string; value: number; labels: Record<string, unknown> }[] {
  return updates
    .filter((u) => u.metric.name === RUNS_TOTAL || u.metric.name === RUN_DURATION_SECONDS)
    .map((u) => ({ name: u.metric.name, value: u.value, labels: { ...u.attributes } }))
    .sort((a, b) => `${a.name}${a.labels.outcome}`.localeCompare(`${b.name}${b.labels.outcome}`));
}

it('counts each runbook run once as it ends, with its duration, by outcome; a run without the runbook attributes is not counted', async () => {
  const taskQueue = `metrics-${randomUUID()}`;
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/metrics-probe'), workflowInterceptorModules: [INTERCEPTOR], logger: new DefaultLogger('ERROR') });
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle });
  const target = { app: 'demo', env: 'production' };
  const run = (input: MetricsProbeInput) => env.client.workflow.execute('metricsProbe', { taskQueue, workflowId: `probe-${randomUUID()}`, args: [input] }).catch(() => 'ended');
  await worker.runUntil(async () => {
    await run({ target, end: 'succeed' });
    await run({ target, end: 'fail' });
    await run({ target, end: 'cancel' });
    await run({ end: 'succeed' });
  });
  const seen = runbookUpdates([...buffer.retrieveUpdates()]);
  const common = { runbook: 'metricsProbe', app: 'demo', env: 'production', workflowType: 'metricsProbe', namespace: 'default', taskQueue };
  expect(seen.filter((s) => s.name === RUNS_TOTAL)).toEqual(
    ['cancelled', 'failed', 'succeeded'].map((outcome) => ({ name: RUNS_TOTAL, value: 1, labels: { ...common, outcome } })),
  );
  const durations = seen.filter((s) => s.name === RUN_DURATION_SECONDS);
  expect(durations.map((d) => d.labels)).toEqual(['cancelled', 'failed', 'succeeded'].map((outcome) => ({ ...common, outcome })));
  // workflow time: the 90 s sleep (skipped by the test server) is in every duration
  for (const d of durations) expect(d.value).toBeGreaterThanOrEqual(90);
});

it('the recorded histories replay with the interceptor registered, and record nothing while replaying', async () => {
  const dir = path.join(__dirname, '../replay/histories');
  const histories = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({ workflowId: file, history: historyFromJson(JSON.parse(readFileSync(path.join(dir, file), 'utf8'))) }));
  expect(histories.length).toBeGreaterThan(0);
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), workflowInterceptorModules: [INTERCEPTOR], logger: new DefaultLogger('ERROR') });
  [...buffer.retrieveUpdates()];
  const failed: string[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'metrics' }, histories)) {
    if (r.error) failed.push(`${r.workflowId}: ${r.error.message}`);
  }
  expect(failed).toEqual([]);
  expect(runbookUpdates([...buffer.retrieveUpdates()])).toEqual([]);
});
