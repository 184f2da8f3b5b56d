import type { CalendarSpecDescription, ScheduleDescription } from '@temporalio/client';
import { calendarToCron, cronInWords, cronProblem, durationInWords, formatSchedule, runTimeInWords, timezoneProblem } from '../../client/schedule-format';
import { housekeepingScheduleParts, updatesScheduleParts } from '../../client/schedules';

// What the server returns for `0 2 * * *` (a cron expression is kept as a structured calendar).
const nightly: CalendarSpecDescription = {
  second: [{ start: 0, end: 0, step: 1 }],
  minute: [{ start: 0, end: 0, step: 1 }],
  hour: [{ start: 2, end: 2, step: 1 }],
  dayOfMonth: [{ start: 1, end: 31, step: 1 }],
  month: [{ start: 'JANUARY', end: 'DECEMBER', step: 1 }],
  year: [],
  dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }],
  comment: '',
};

describe('schedule text', () => {
  it('rebuilds the cron line from the calendar the server keeps', () => {
    expect(calendarToCron(nightly)).toBe('0 2 * * *');
    expect(
      calendarToCron({
        ...nightly,
        minute: [{ start: 0, end: 59, step: 15 }],
        hour: [{ start: 0, end: 23, step: 1 }],
        dayOfWeek: [{ start: 'MONDAY', end: 'FRIDAY', step: 1 }],
      }),
    ).toBe('*/15 * * * 1-5');
    expect(calendarToCron({ ...nightly, minute: [{ start: 30, end: 30, step: 1 }], hour: [{ start: 1, end: 1, step: 1 }, { start: 13, end: 13, step: 1 }], month: [{ start: 'MARCH', end: 'MARCH', step: 1 }] })).toBe('30 1,13 * 3 *');
    expect(calendarToCron({ ...nightly, second: [{ start: 30, end: 30, step: 1 }] })).toBe('30 0 2 * * *');
  });

  it('says a cron line in words', () => {
    expect(cronInWords('0 2 * * *')).toBe('0 2 * * * (at 02:00, every day)');
    expect(cronInWords('*/15 * * * 1-5')).toMatch(/^\*\/15 \* \* \* 1-5 \(every 15 minutes.*monday through friday\)$/i);
  });

  it('checks cron lines and time zones before the server sees them', () => {
    expect(cronProblem('0 2 * * *')).toBeUndefined();
    expect(cronProblem('99 2 * * *')).toMatch(/cron "99 2 \* \* \*": .*0-59/);
    expect(cronProblem('0 25 * * *')).toMatch(/0-23/);
    expect(timezoneProblem('Europe/Berlin')).toBeUndefined();
    expect(timezoneProblem('Mars/Olympus')).toMatch(/not an IANA time zone/);
  });

  it('says when the next runs are, in the schedule\'s zone', () => {
    const now = new Date('2026-11-26T13:42:00Z');
    expect(runTimeInWords(new Date('2026-11-27T02:00:00Z'), 'UTC', now)).toBe('Fri 27 Nov 2026 02:00 UTC (in 12 h 18 min)');
    expect(runTimeInWords(new Date('2026-11-27T02:00:00Z'), 'Europe/Berlin', now)).toBe('Fri 27 Nov 2026 03:00 Europe/Berlin (in 12 h 18 min)');
    expect(durationInWords(3 * 86_400_000 + 5 * 3_600_000 + 7 * 60_000)).toBe('3 d 5 h');
    expect(durationInWords(20_000)).toBe('< 1 min');
  });

  it('formats a whole schedule for `runbook schedule show`', () => {
    const now = new Date('2026-11-26T13:42:00Z');
    const d = {
      scheduleId: 'nightlyBackup/demo/production',
      spec: { calendars: [nightly], intervals: [], timezone: 'UTC' },
      policies: { overlap: 'SKIP', catchupWindow: 6 * 3_600_000 },
      state: { paused: false, note: 'created by runbook schedule backup' },
      info: {
        nextActionTimes: [new Date('2026-11-27T02:00:00Z'), new Date('2026-11-28T02:00:00Z'), new Date('2026-11-29T02:00:00Z'), new Date('2026-11-30T02:00:00Z')],
        numActionsTaken: 0,
        numActionsSkippedOverlap: 0,
        numActionsMissedCatchupWindow: 0,
        runningActions: [],
        recentActions: [],
      },
    } as unknown as ScheduleDescription;
    const text = formatSchedule(d, now);
    expect(text).toContain('when:      cron 0 2 * * * (at 02:00, every day), time zone UTC');
    expect(text).toContain('overlap:   SKIP');
    expect(text).toContain('catch-up window 6h');
    expect(text).toContain('next runs: Fri 27 Nov 2026 02:00 UTC (in 12 h 18 min)');
    expect(text).toContain('Sun 29 Nov 2026 02:00 UTC (in 2 d 12 h)');
    expect(text).not.toContain('Mon 30 Nov');
    expect(text).not.toContain('"second"');
  });
});

describe('the housekeeping schedule', () => {
  it('runs housekeeping of the app/env daily after the nightly backup, overlap skip; a bad cron is refused', () => {
    const parts = housekeepingScheduleParts({ app: 'shop', env: 'production', taskQueue: 'runbooks' });
    expect(parts.spec).toEqual({ cronExpressions: ['30 4 * * *'], timezone: 'UTC' });
    expect(parts.action).toMatchObject({ type: 'startWorkflow', workflowType: 'housekeeping', args: [{ app: 'shop', env: 'production' }], workflowId: 'housekeeping/shop/production', taskQueue: 'runbooks' });
    expect(parts.policies).toEqual({ overlap: 'SKIP', catchupWindow: 6 * 3600_000 });
    expect(() => housekeepingScheduleParts({ app: 'shop', env: 'production', taskQueue: 'runbooks', cron: 'every day' })).toThrow(/cron/);
  });
});

describe('the updates schedule', () => {
  it('asks the registry every 15 minutes by default, for the tag given or the version\'s; overlap skip; a bad interval is refused', () => {
    const parts = updatesScheduleParts({ app: 'shop', env: 'production', taskQueue: 'runbooks' });
    expect(parts.spec).toEqual({ intervals: [{ every: 15 * 60_000 }] });
    expect(parts.action).toMatchObject({ type: 'startWorkflow', workflowType: 'updateFromRegistry', args: [{ app: 'shop', env: 'production' }], workflowId: 'updateFromRegistry/shop/production' });
    expect(parts.policies).toEqual({ overlap: 'SKIP', catchupWindow: 15 * 60_000 });
    expect(updatesScheduleParts({ app: 'shop', env: 'production', taskQueue: 'q', tag: 'latest', every: '5m', canary: 'approve' }).action).toMatchObject({ args: [{ app: 'shop', env: 'production', tag: 'latest', canary: 'approve' }] });
    expect(() => updatesScheduleParts({ app: 'shop', env: 'production', taskQueue: 'q', every: '10s' })).toThrow(/--every must be from 1m to 1d/);
  });
});
