// Durations as runbook inputs: "90s", "15m", "48h", "7d", or milliseconds as a number. Strings are
// parsed by `ms` (pure JS, safe in the workflow bundle), which also reads "1.5h", "2 hours", "1w".
import ms from 'ms';

/** Parses a duration into milliseconds; throws with a message naming the field on bad input. */
export function parseDuration(value: string | number, field = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
    throw new Error(`${field}: must be a non-negative number of milliseconds, got ${value}`);
  }
  const text = value.trim();
  // a unit is required ("48" alone would be 48 ms to ms), and negative durations are refused
  const parsed = /[a-z]$/i.test(text) && !text.startsWith('-') ? ms(text as ms.StringValue) : undefined;
  if (typeof parsed !== 'number' || !Number.isFinite(parsed)) throw new Error(`${field}: "${value}" is not a duration (use e.g. "90s", "15m", "48h", "7d")`);
  return Math.round(parsed);
}

/** The shortest exact form (ms's own formatting rounds, e.g. 90 s to "2m", so it is not used here). */
export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
