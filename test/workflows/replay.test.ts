// Replays every recorded history in test/replay/histories against the current workflow code (the same
// bundle the other workflow tests use). A change to a workflow that is not behind patched() makes the
// replay of a run recorded before it fail here: such a run, still open on the server, would be stuck.
// Record a fixture with `npm run build && npm run record-history -- <workflowId> <runId> <short-name>`.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { historyFromJson } from '../../client/history-json';
import * as workflows from '../../workflows';
import { quietRuntime, workflowBundle } from '../helpers/workflow-env';

jest.setTimeout(120_000);

const DIR = path.join(__dirname, '../replay/histories');
const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => {
    const history = historyFromJson(JSON.parse(readFileSync(path.join(DIR, file), 'utf8')));
    const type = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
    if (!type) throw new Error(`${file}: the first event is not WorkflowExecutionStarted`);
    return { file, type, history };
  });

// One replay worker for all fixtures; each fixture's result is kept under its file name.
const results = new Map<string, ReplayResult>();
beforeAll(async () => {
  quietRuntime();
  const replay = Worker.runReplayHistories(
    { workflowBundle: await workflowBundle(), replayName: 'fixtures' },
    fixtures.map((f) => ({ workflowId: f.file, history: f.history })),
  );
  for await (const r of replay) results.set(r.workflowId, r);
});

it('every workflow type the worker registers has a recorded history', () => {
  const recorded = new Set(fixtures.map((f) => f.type));
  expect(Object.keys(workflows).filter((t) => !recorded.has(t))).toEqual([]);
});

const E = temporal.api.enums.v1.EventType;
const CLOSING = new Set([
  E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
  E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
  E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
  E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
  E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
]);
it('every fixture is a closed run, named after its workflow type', () => {
  const wrong = fixtures
    .filter(({ file, type, history }) => !file.startsWith(`${type}-`) || !CLOSING.has(history.events!.at(-1)!.eventType!))
    .map(({ file, type }) => `${file} (${type})`);
  expect(wrong).toEqual([]);
});

it.each(fixtures.map((f) => f.file))('%s replays deterministically against the current code', (file) => {
  const r = results.get(file);
  if (!r) throw new Error(`${file} was not replayed`);
  if (r.error) {
    throw new Error(
      `${file}: replaying the recorded run against the current workflow code failed — a workflow change is not behind patched() ` +
        `(see README, "Contributing: changing a workflow"):\n${r.error.name}: ${r.error.message}`,
    );
  }
});
