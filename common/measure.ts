// Aggregating a measurement of an endpoint (the DNS cutover's baseline and validation rounds): pure.
import type { ValidationSample } from './cutover';

/** One request of a measurement: the HTTP status it got, or why it got none. */
export type Measurement = { status: number; ms: number } | { error: 'timeout' | 'failed'; ms: number };

export interface MeasuredSample extends ValidationSample {
  /** How many requests got each answer: HTTP status codes ("200", "503"), "timeout", "failed". */
  statuses: Record<string, number>;
}

/**
 * The p-th percentile (0 < p ≤ 100) by the nearest-rank method: the smallest value such that at
 * least p % of the values are ≤ it. 0 for no values.
 */
export function percentile(values: number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new Error(`a percentile is in (0, 100], not ${p}`);
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const isErrorMeasurement = (m: Measurement): boolean => !('status' in m) || m.status >= 500;

const oneDecimal = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * Requests, errors (failed, timed out, or 5xx) and the latency of the others (4xx included: the
 * server answered), p50/p95 in ms with one decimal.
 */
export function summarizeMeasurements(measurements: Measurement[]): MeasuredSample {
  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  let errors = 0;
  for (const m of measurements) {
    const key = 'status' in m ? String(m.status) : m.error;
    statuses[key] = (statuses[key] ?? 0) + 1;
    if (isErrorMeasurement(m)) errors++;
    else latencies.push(m.ms);
  }
  return { requests: measurements.length, errors, p50Ms: oneDecimal(percentile(latencies, 50)), p95Ms: oneDecimal(percentile(latencies, 95)), statuses };
}
