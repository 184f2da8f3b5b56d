// `runbook watch`: the live view rendered from a status and a time (steps with their durations, a
// running step ticking, the pending gate with who may approve and the command), the in-place redraw on
// a terminal, the line-by-line output elsewhere, and what is printed when the run ends.
import { ApplicationFailure } from '@temporalio/common';
import type { PendingGate, RunbookStatus } from '../../common/types';
import { ChangePrinter, formatElapsed, InPlaceView, outcomeLines, renderWatch } from '../../client/watch';

const ID = 'rollingUpdate/demo/production';
const at = (s: string) => `2026-11-26T10:${s}.000Z`;
const gate: PendingGate = {
  gate: 'canary',
  description: 'canary v2 on web-1: approve to continue the rollout',
  approvers: ['alice', 'bob'],
  minApprovals: 2,
  approvedBy: ['alice'],
  deadline: '2026-11-27T10:00:00.000Z',
};
const status = (over: Partial<RunbookStatus> = {}): RunbookStatus => ({
  runbook: 'rollingUpdate',
  app: 'demo',
  env: 'production',
  phase: 'running',
  step: 'batch 1',
  steps: [
    { step: 'plan', state: 'done', startedAt: at('00:00'), endedAt: '2026-11-26T10:00:00.400Z' },
    { step: 'backup', state: 'done', startedAt: at('00:01'), endedAt: at('00:43') },
    { step: 'batch 1', state: 'running', startedAt: at('00:43') },
  ],
  pendingGates: [],
  decisions: [],
  ...over,
});

describe('formatElapsed', () => {
  it.each([
    [400, '0.4s'],
    [9_949, '9.9s'],
    [42_000, '42s'],
    [185_000, '3m 05s'],
    [7_380_000, '2h 03m'],
    [273_600_000, '3d 04h'],
    [-5, '0.0s'],
  ])('%d ms → %s', (ms, text) => expect(formatElapsed(ms)).toBe(text));
});

describe('renderWatch', () => {
  it('shows the phase, done steps with their duration and the running step ticking with the clock', () => {
    const frame = (now: string) => renderWatch({ workflowId: ID, status: status(), now: new Date(at(now)) });
    expect(frame('01:00')).toEqual([
      `${ID}: rollingUpdate demo/production — running, 1m 00s since the first step`,
      '  [ok  ] plan     0.4s',
      '  [ok  ] backup   42s',
      '  [... ] batch 1  17s so far',
    ]);
    expect(frame('02:13').at(-1)).toBe('  [... ] batch 1  1m 30s so far');
  });

  it('shows the pending gate: description, who may approve, approvals M/N, the deadline and the exact commands', () => {
    const lines = renderWatch({
      workflowId: ID,
      status: status({ phase: 'awaiting-approval', steps: [...status().steps.slice(0, 2), { step: 'approval:canary', state: 'running', startedAt: at('01:00') }], pendingGates: [gate] }),
      now: new Date(at('11:00')),
    });
    expect(lines.slice(3)).toEqual([
      '  [... ] approval:canary  10m 00s so far',
      '  WAITING for approval "canary": canary v2 on web-1: approve to continue the rollout',
      '    who may approve: alice, bob; approvals 1/2 (alice)',
      '    deadline: 2026-11-27T10:00:00.000Z (in 23 h 49 min; then it does not proceed)',
      `    approve: runbook approve ${ID} --gate canary --by <name>`,
      `    reject:  runbook reject ${ID} --gate canary --by <name>`,
    ]);
  });

  it('says "anyone" when the gate lists no approvers, and when the deadline has passed', () => {
    const lines = renderWatch({ workflowId: ID, status: status({ pendingGates: [{ ...gate, approvers: [], minApprovals: 1, approvedBy: [] }] }), now: new Date('2026-11-28T00:00:00Z') });
    expect(lines).toContain('    who may approve: anyone; approvals 0/1');
    expect(lines).toContain('    deadline: 2026-11-27T10:00:00.000Z (passed; then it does not proceed)');
  });

  it('shows a failed step with its detail, the notes and the error', () => {
    const lines = renderWatch({
      workflowId: ID,
      status: status({
        phase: 'failed',
        steps: [{ step: 'pull', state: 'failed', startedAt: at('00:00'), endedAt: at('00:05'), detail: 'manifest unknown\nv9 is not in the registry' }],
        notes: ['the lock could not be released'],
        error: 'pull failed\nrolled back',
      }),
      now: new Date(at('00:06')),
    });
    expect(lines.slice(1)).toEqual([
      '  [FAIL] pull  5.0s',
      '         manifest unknown',
      '         v9 is not in the registry',
      '  note: the lock could not be released',
      '  error: pull failed',
      '         rolled back',
    ]);
  });

  it('lists the phases seen with their times; a phase that began before the watch is "at least"', () => {
    const phases = [
      { phase: 'running' as const, since: new Date(at('00:00')), sinceKnown: false },
      { phase: 'awaiting-approval' as const, since: new Date(at('01:00')), sinceKnown: true },
    ];
    expect(renderWatch({ workflowId: ID, status: status(), now: new Date(at('01:30')), phases })[1]).toBe('  phases: running ≥1m 00s → awaiting-approval 30s (now)');
    expect(renderWatch({ workflowId: ID, status: status(), now: new Date(at('01:30')), phases: phases.slice(0, 1) })).toHaveLength(4);
  });

  it('folds the oldest finished steps when the frame is taller than the terminal, never a running one', () => {
    const steps = Array.from({ length: 10 }, (_, i) => ({ step: `batch ${i}`, state: 'done' as const, startedAt: at('00:00'), endedAt: at('00:01') }));
    const lines = renderWatch({ workflowId: ID, status: status({ steps: [...steps, { step: 'verify', state: 'running', startedAt: at('00:01') }] }), now: new Date(at('00:02')), maxLines: 5 });
    expect(lines).toEqual([expect.stringContaining(ID), '  … 8 earlier steps done', '  [ok  ] batch 8  1.0s', '  [ok  ] batch 9  1.0s', '  [... ] verify   1.0s so far']);
    const running = [{ step: 'a', state: 'running' as const, startedAt: at('00:00') }, ...steps];
    expect(renderWatch({ workflowId: ID, status: status({ steps: running }), now: new Date(at('00:02')), maxLines: 5 })).toHaveLength(12);
  });
});

describe('InPlaceView', () => {
  const terminal = (columns = 40) => {
    const written: string[] = [];
    return { written, out: { columns, rows: 24, isTTY: true, write: (s: string) => (written.push(s), true) } as unknown as NodeJS.WriteStream };
  };

  it('draws the first frame as is, then moves up over it and clears before the next', () => {
    const { written, out } = terminal();
    const view = new InPlaceView(out);
    view.draw(['a', 'b']);
    view.draw(['c']);
    expect(written.join('')).toBe('a\nb\n\x1b[2A\x1b[1G\x1b[0Jc\n');
  });

  it('cuts a line wider than the terminal, so no line wraps and the count stays right', () => {
    const { written, out } = terminal(21);
    new InPlaceView(out).draw(['x'.repeat(30)]);
    expect(written.join('')).toBe(`${'x'.repeat(19)}…\n`);
  });
});

describe('ChangePrinter (not a terminal)', () => {
  it('prints each new or changed step once, and the gates when they change', () => {
    const printed: string[] = [];
    const printer = new ChangePrinter(ID, (l) => printed.push(l));
    printer.show(status());
    printer.show(status());
    printer.show(status({ pendingGates: [gate] }));
    expect(printed).toEqual([
      '  [ok  ] plan (0.4s)',
      '  [ok  ] backup (42.0s)',
      '  [... ] batch 1',
      expect.stringMatching(/^ {2}WAITING for approval "canary": .*\n.*1\/2 approvals \(alice\); approvers: alice, bob; deadline 2026-11-27T10:00:00.000Z\n.*runbook approve rollingUpdate\/demo\/production --gate canary --by <name>/),
    ]);
  });
});

describe('outcomeLines', () => {
  it('exit code 0 only on success; a failure shows the cause chain', () => {
    expect(outcomeLines(ID, { ok: true, result: { app: 'demo', env: 'production', version: 'v2', unchanged: false } })).toEqual({ lines: [`${ID}: succeeded`, '  deployed demo v2 to production'], code: 0 });
    expect(outcomeLines(ID, { ok: false, error: ApplicationFailure.nonRetryable('canary rejected by alice') })).toEqual({ lines: [`${ID}: FAILED`, '  canary rejected by alice'], code: 1 });
  });

  it('after a restore, says where the previous database is kept and how to drop it sooner', () => {
    const { lines } = outcomeLines('restoreBackup/demo/production', {
      ok: true,
      result: { app: 'demo', env: 'production', restored: 'main', safetyBackup: 's.dump', appDownSeconds: 4, previousDatabase: 'main_before_x', previousReleasedBy: { keepFor: '7d', workflowId: 'releasePreviousDatabase/x' } },
    });
    expect(lines.slice(1)).toEqual([
      '  restored main; safety backup s.dump (pinned); app down 4 s',
      '  the database as it was before (every write up to the stop) is kept as main_before_x for 7d',
      '  drop it sooner: runbook restore demo --env production --release   (releasePreviousDatabase/x)',
    ]);
  });

  it('after an archive restore, says what was stopped and how to go back; for config, where replaced files are kept', () => {
    const volume = outcomeLines('restoreArchive/demo/production', {
      ok: true,
      result: { app: 'demo', env: 'production', restored: 'n.tar.zst', entries: 5, bytes: 2048, volume: { name: 'uploads', host: 'one', previousArchive: 'p.tar.zst', stopped: ['demo-production-web-1'], downSeconds: 3 } },
    });
    expect(volume.lines.slice(1)).toEqual([
      '  restored volume uploads on one from n.tar.zst (5 entries, 2048 bytes); demo-production-web-1 down 3 s',
      '  its content before the restore is archived as p.tar.zst: runbook restore demo --env production --volume uploads --archive p.tar.zst goes back',
    ]);
    const config = outcomeLines('restoreArchive/demo/production', {
      ok: true,
      result: { app: 'demo', env: 'production', restored: 'c.tar', entries: 2, bytes: 20, config: { restored: ['/etc/a.env'], unchanged: ['/etc/b'], keptAs: [{ path: '/etc/a.env', keptAs: '/etc/a.env.before-restore-x' }], skipped: [{ name: 'proxy/one/x.conf', reason: 'why' }] } },
    });
    expect(config.lines.slice(1)).toEqual([
      '  restored 1 config file(s) from c.tar, 1 already as archived',
      '  /etc/a.env: the file it replaced is kept as /etc/a.env.before-restore-x',
      '  not restored: proxy/one/x.conf (why)',
    ]);
  });
});
