// The CLI's read commands: `runbook history` (entries from a run's listing and status) and `runbook backups`.
import { formatBackups, formatHistory, formatRunList, historyEntry, humanDuration } from '../../client/format';
import type { RunbookStatus } from '../../common/types';

const status = (over: Partial<RunbookStatus>): RunbookStatus => ({ runbook: 'firstDeploy', app: 'demo', env: 'production', phase: 'succeeded', step: 'done', steps: [], pendingGates: [], decisions: [], ...over });
const run = { workflowId: 'firstDeploy/demo/production', runId: 'r1', type: 'firstDeploy', status: 'COMPLETED', startTime: new Date('2026-11-26T10:00:00Z'), closeTime: new Date('2026-11-26T10:01:05Z') };

describe('historyEntry', () => {
  it('keeps the decisions that counted, not the ignored ones', () => {
    const e = historyEntry(
      run,
      status({
        decisions: [
          { gate: 'go-live', by: 'mallory', decision: 'approve', at: '2026-11-26T10:00:30Z', accepted: false, reason: 'not an approver', via: 'update' },
          { gate: 'go-live', by: 'alice', decision: 'approve', at: '2026-11-26T10:00:40Z', accepted: true, via: 'update' },
        ],
      }),
    );
    expect(e).toEqual({ workflowId: run.workflowId, runId: 'r1', runbook: 'firstDeploy', status: 'COMPLETED', startTime: '2026-11-26T10:00:00.000Z', closeTime: '2026-11-26T10:01:05.000Z', decisions: ['go-live: alice approved'] });
  });

  it("shows a failed run's first error line, a rejection, and says when the details could not be read", () => {
    const failed = historyEntry({ ...run, status: 'FAILED' }, status({ phase: 'failed', error: 'canary rejected\nrolled back to v1', decisions: [{ gate: 'canary', by: 'bob', decision: 'reject', at: 'x', accepted: true, via: 'signal' }] }));
    expect(failed).toMatchObject({ decisions: ['canary: bob rejected'], detail: 'canary rejected' });
    expect(historyEntry(run, undefined, 'details unknown: no worker answered')).toMatchObject({ decisions: [], detail: 'details unknown: no worker answered' });
  });
});

describe('formatHistory', () => {
  it('lists runs newest first with their duration, or how long a running one has run', () => {
    const done = historyEntry(run, status({ decisions: [{ gate: 'go-live', by: 'alice', decision: 'approve', at: 'x', accepted: true, via: 'update' }] }));
    const running = historyEntry({ ...run, workflowId: 'rollingUpdate/demo/production', type: 'rollingUpdate', status: 'RUNNING', startTime: new Date('2026-11-26T11:00:00Z'), closeTime: undefined }, status({ phase: 'running' }));
    expect(formatHistory('demo', 'production', [running, done], new Date('2026-11-26T11:02:10Z'))).toBe(
      [
        'demo/production: 2 runs, newest first',
        '2026-11-26T11:00:00.000Z  rollingUpdate      RUNNING    running for 2 min',
        '    rollingUpdate/demo/production (run r1)',
        '2026-11-26T10:00:00.000Z  firstDeploy        COMPLETED  1 min',
        '    firstDeploy/demo/production (run r1)',
        '    go-live: alice approved',
      ].join('\n'),
    );
    expect(formatHistory('demo', 'staging', [], new Date())).toBe('no runbook has run on demo/staging');
  });

  it.each([
    [850, '850 ms'],
    [42_000, '42 s'],
    [60_000, '1 min'],
    [185_000, '3 min'],
    [7_800_000, '2 h 10 min'],
    [273_600_000, '3 d 4 h'],
  ])('humanDuration(%d) = %s', (ms, text) => expect(humanDuration(ms)).toBe(text));
});

describe('formatBackups', () => {
  it('lists each database newest first with size, verification and pin; orphans apart', () => {
    const text = formatBackups(
      {
        app: 'demo',
        env: 'production',
        storage: '/var/backups on the worker',
        databases: [
          {
            database: 'main',
            backups: [
              { file: 'demo~production~main-2026-11-26T02.dump.zst', manifest: 'm2', createdAt: '2026-11-26T02:00:00Z', sizeBytes: 1536, verified: true, pinned: { reason: 'pre-update', by: 'rollingUpdate/demo/production' } },
              { file: 'demo~production~main-2026-11-25T02.dump.zst', manifest: 'm1', createdAt: '2026-11-25T02:00:00Z', sizeBytes: 512, verified: false, pinned: { reason: 'safety', by: 'restoreBackup/demo/production', until: '2026-11-25T12:00:00Z' } },
            ],
            orphans: ['demo~production~main-2026-11-24T02.dump.zst'],
          },
        ],
      },
      new Date('2026-11-26T12:00:00Z'),
    );
    expect(text).toBe(
      [
        'demo/production: backups in /var/backups on the worker',
        '  database main: 2 backups, 2 KB in all',
        '    2026-11-26T02:00:00Z     1.5 KB  verified      demo~production~main-2026-11-26T02.dump.zst  (pinned: pre-update by rollingUpdate/demo/production)',
        '    2026-11-25T02:00:00Z      512 B  NOT VERIFIED  demo~production~main-2026-11-25T02.dump.zst  (pin ended 2026-11-25T12:00:00Z)',
        '    left by an interrupted backup, never restored from: demo~production~main-2026-11-24T02.dump.zst',
      ].join('\n'),
    );
    expect(formatBackups({ app: 'demo', env: 'staging', storage: 's3://b/p/', databases: [] }, new Date())).toBe('demo/staging: backups in s3://b/p/\n  no database is backed up (apps.<app>.backup.databases)');
  });
});

describe('formatRunList', () => {
  it('is a table, newest first, with the runs waiting for a person marked', () => {
    const now = new Date('2026-11-26T12:00:00Z');
    expect(
      formatRunList(
        [
          { workflowId: 'nightlyBackup/demo/production', runId: 'a', type: 'nightlyBackup', status: 'RUNNING', startTime: new Date('2026-11-26T11:59:50Z'), step: 'backup:main', awaiting: false },
          { workflowId: 'firstDeploy/demo/staging', runId: 'b', type: 'firstDeploy', status: 'RUNNING', startTime: new Date('2026-11-26T11:59:55Z'), step: 'approval:go-live', awaiting: true },
        ],
        now,
      ),
    ).toBe(
      [
        'WORKFLOW ID                    STATUS   STEP              WAITING   STARTED',
        'firstDeploy/demo/staging       RUNNING  approval:go-live  APPROVAL  5 s ago',
        'nightlyBackup/demo/production  RUNNING  backup:main       -         10 s ago',
      ].join('\n'),
    );
    expect(formatRunList([], now)).toBe('no matching runbooks');
  });
});
