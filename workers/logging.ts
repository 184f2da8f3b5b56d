// The worker's log: the SDK's Runtime logger (which receives the workflow and activity context
// loggers with their metadata — workflowId, runId, workflowType, activityType, attempt, taskQueue —
// and, forwarded, the SDK core's own logs), written one JSON object per line on stdout, or as
// text for a person at a terminal (RUNBOOK_LOG_FORMAT=text). Values under keys that name a secret
// are replaced: the runbooks never log one, this is the second line of defence.
import type { LogLevel, LogMetadata } from '@temporalio/common';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';

export type LogFormat = 'json' | 'text';

const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
const SECRET_KEY = /password|passwd|secret|token|api[-_]?key|authorization|credential|private[-_]?key|cookie/i;
export const REDACTED = '[redacted]';

/** RUNBOOK_LOG_FORMAT (json, the default, or text) and RUNBOOK_LOG_LEVEL (default INFO). */
export function logSettings(env: NodeJS.ProcessEnv = process.env): { format: LogFormat; level: LogLevel } {
  const format = (env.RUNBOOK_LOG_FORMAT?.trim() || 'json').toLowerCase();
  if (format !== 'json' && format !== 'text') throw new Error(`RUNBOOK_LOG_FORMAT must be json or text, got ${JSON.stringify(env.RUNBOOK_LOG_FORMAT)}`);
  const level = (env.RUNBOOK_LOG_LEVEL?.trim() || 'INFO').toUpperCase() as LogLevel;
  if (!LEVELS.includes(level)) throw new Error(`RUNBOOK_LOG_LEVEL must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(env.RUNBOOK_LOG_LEVEL)}`);
  return { format, level };
}

/** A value fit for JSON: errors as name/message/stack (and their cause), bigints as strings, secret-named keys redacted. */
export function loggable(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[too deep]';
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const e = value as Error & { type?: string; cause?: unknown };
    return {
      name: e.name,
      message: e.message,
      ...(e.type ? { type: e.type } : {}),
      ...(e.stack ? { stack: e.stack } : {}),
      ...(e.cause !== undefined ? { cause: loggable(e.cause, depth + 1) } : {}),
    };
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => loggable(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && v !== undefined && v !== null && v !== '' ? REDACTED : loggable(v, depth + 1)]));
  }
  return value;
}

/** One log line, without its newline: `{"time","level","message",...meta}` or `time [LEVEL] message {meta}`. */
export function formatLogEntry(entry: LogEntry, format: LogFormat): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  const meta = (entry.meta ? loggable(entry.meta) : {}) as LogMetadata;
  if (format === 'text') {
    const rest = Object.keys(meta).length ? ` ${JSON.stringify(meta)}` : '';
    return `${time} [${entry.level}] ${entry.message}${rest}`;
  }
  // the fixed keys first; a meta key of the same name cannot replace them
  const line: Record<string, unknown> = { time, level: entry.level, message: entry.message };
  for (const [k, v] of Object.entries(meta)) if (!(k in line)) line[k] = v;
  return JSON.stringify(line);
}

/** The Runtime logger: every line to stdout. */
export function createWorkerLogger(settings: { format: LogFormat; level: LogLevel }, write: (line: string) => void = (l) => process.stdout.write(l)): DefaultLogger {
  return new DefaultLogger(settings.level, (entry) => write(`${formatLogEntry(entry, settings.format)}\n`));
}
