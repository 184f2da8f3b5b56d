// How a schedule reads to a person: the cron line it was given, in words, its time zone, its overlap
// policy and its next runs. The server keeps a cron expression as a structured calendar, so the cron
// line is rebuilt from that calendar (what the server will really do), not from what was typed.
import type { CalendarSpecDescription, ScheduleDescription } from '@temporalio/client';
import { CronExpressionParser } from 'cron-parser';
import cronstrue from 'cronstrue';
import { formatDuration } from '../common/duration';

const CRON_SHORTCUTS = /^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/;
const MONTHS = ['JANUARY', 'FEBRUARY', 'MARCH', 'APRIL', 'MAY', 'JUNE', 'JULY', 'AUGUST', 'SEPTEMBER', 'OCTOBER', 'NOVEMBER', 'DECEMBER'];
const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];

/** Five cron fields (minute hour day-of-month month day-of-week), or a @-shortcut: checked before the server sees it. */
export function cronProblem(cron: string, example = '0 2 * * *'): string | undefined {
  const trimmed = cron.trim();
  if (CRON_SHORTCUTS.test(trimmed)) return undefined;
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 5) return `cron "${cron}" must have 5 fields (minute hour day month weekday), e.g. "${example}"`;
  if (!fields.every((f) => /^[0-9*,\-/A-Za-z?]+$/.test(f))) return `cron "${cron}" has characters a cron field cannot have`;
  try {
    CronExpressionParser.parse(trimmed, { tz: 'UTC' });
  } catch (err) {
    return `cron "${cron}": ${(err as Error).message}`;
  }
  return undefined;
}

/** An IANA time zone name (e.g. Europe/Berlin) that this Node knows, or why not. */
export function timezoneProblem(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: timezone });
    return undefined;
  } catch {
    return `time zone "${timezone}" is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)`;
  }
}

type Field = { start: number | string; end: number | string; step: number }[];

function fieldText(ranges: Field, names: string[] | undefined, min: number, max: number): string {
  const num = (v: number | string) => (typeof v === 'number' ? v : names!.indexOf(v) + (names === MONTHS ? 1 : 0));
  if (ranges.length === 0) return '*';
  return ranges
    .map((r) => {
      const start = num(r.start);
      const end = num(r.end);
      const step = r.step > 1 ? `/${r.step}` : '';
      if (start === min && end === max) return `*${step}`;
      if (start === end) return `${start}`;
      return `${start}-${end}${step}`;
    })
    .join(',');
}

/** The cron line of a calendar the server keeps (seconds only when they are not 0; years are not shown). */
export function calendarToCron(c: CalendarSpecDescription): string {
  const fields = [
    fieldText(c.minute, undefined, 0, 59),
    fieldText(c.hour, undefined, 0, 23),
    fieldText(c.dayOfMonth, undefined, 1, 31),
    fieldText(c.month, MONTHS, 1, 12),
    fieldText(c.dayOfWeek, DAYS, 0, 6),
  ];
  const second = fieldText(c.second, undefined, 0, 59);
  return (second === '0' ? fields : [second, ...fields]).join(' ');
}

/** "0 2 * * * (at 02:00, every day)" */
export function cronInWords(cron: string): string {
  try {
    const words = cronstrue.toString(cron, { use24HourTimeFormat: true, verbose: true });
    return `${cron} (${words.charAt(0).toLowerCase()}${words.slice(1)})`;
  } catch {
    return cron;
  }
}

/** "Fri 27 Nov 2026 02:00 UTC (in 12 h 18 min)": a run time in the schedule's zone, and how far off it is. */
export function runTimeInWords(t: Date, timezone: string, now: Date): string {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: timezone,
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(t);
  const p = (type: string) => parts.find((x) => x.type === type)?.value ?? '';
  const ms = t.getTime() - now.getTime();
  const away = ms >= 0 ? `in ${durationInWords(ms)}` : `${durationInWords(-ms)} ago`;
  return `${p('weekday')} ${p('day')} ${p('month')} ${p('year')} ${p('hour')}:${p('minute')} ${timezone} (${away})`;
}

/** "2 d 3 h", "12 h 18 min", "5 min", "< 1 min": the two largest units, rounded to minutes. */
export function durationInWords(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return '< 1 min';
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  const parts = [d ? `${d} d` : '', h ? `${h} h` : '', m ? `${m} min` : ''].filter(Boolean);
  return parts.slice(0, 2).join(' ');
}

/** What `runbook schedule show` prints. */
export function formatSchedule(d: ScheduleDescription, now = new Date()): string {
  const spec = d.spec as { calendars?: CalendarSpecDescription[]; intervals?: { every: number; offset?: number }[]; timezone?: string };
  const timezone = spec.timezone || 'UTC';
  const when = [
    ...(spec.calendars ?? []).map((c) => `cron ${cronInWords(calendarToCron(c))}, time zone ${timezone}`),
    ...(spec.intervals ?? []).map((i) => `every ${formatDuration(i.every)}${i.offset ? ` + ${formatDuration(i.offset)}` : ''} (counted from the Unix epoch, UTC)`),
  ];
  const next = d.info.nextActionTimes.slice(0, 3).map((t) => runTimeInWords(t, timezone, now));
  const lines = [
    `schedule ${d.scheduleId}: ${d.state.paused ? 'PAUSED' : 'active'}${d.state.note ? ` (${d.state.note})` : ''}`,
    ...when.map((w) => `  when:      ${w}`),
    `  overlap:   ${overlapInWords(d.policies.overlap)}; catch-up window ${formatDuration(d.policies.catchupWindow)}`,
    ...(next.length ? next.map((n, i) => `  ${i === 0 ? 'next runs: ' : '           '}${n}`) : ['  next runs: none']),
    `  actions taken: ${d.info.numActionsTaken}, skipped (overlap): ${d.info.numActionsSkippedOverlap}, missed (catch-up window): ${d.info.numActionsMissedCatchupWindow}`,
    `  running: ${d.info.runningActions.map((a) => a.workflow.workflowId).join(', ') || 'none'}`,
    ...d.info.recentActions.slice(-5).map((a) => `  recent: ${a.action.workflow.workflowId} scheduled ${a.scheduledAt.toISOString()}`),
  ];
  return lines.join('\n');
}

function overlapInWords(overlap: string | undefined): string {
  switch (overlap) {
    case 'SKIP':
      return 'SKIP (a run still going when the next is due: the next is skipped)';
    case 'BUFFER_ONE':
      return 'BUFFER_ONE (one run waits for the running one)';
    case 'ALLOW_ALL':
      return 'ALLOW_ALL (runs may overlap)';
    default:
      return overlap ?? 'SKIP';
  }
}
