// Durations as runbook inputs: "90s", "15m", "48h", "7d", or milliseconds as a number.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration into milliseconds; throws with a message naming the field on bad input. */
export function parseDuration(value: string | number, field = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
    throw new Error(`${field}: must be a non-negative number of milliseconds, got ${value}`);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!m) throw new Error(`${field}: "${value}" is not a duration (use e.g. "90s", "15m", "48h", "7d")`);
  return Math.round(parseFloat(m[1]) * UNIT_MS[m[2]]);
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
