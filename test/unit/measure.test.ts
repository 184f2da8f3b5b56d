import { percentile, summarizeMeasurements, type Measurement } from '../../common/measure';

describe('percentile (nearest rank)', () => {
  it('picks the smallest value with at least p % at or below it', () => {
    const values = [50, 10, 40, 20, 30]; // unsorted on purpose
    expect(percentile(values, 50)).toBe(30);
    expect(percentile(values, 95)).toBe(50);
    expect(percentile(values, 20)).toBe(10);
    expect(percentile(values, 100)).toBe(50);
    expect(values).toEqual([50, 10, 40, 20, 30]); // not sorted in place
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 95)).toBe(95);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 50)).toBe(0);
    expect(() => percentile([1], 0)).toThrow(/percentile/);
    expect(() => percentile([1], 101)).toThrow(/percentile/);
  });
});

describe('summarizeMeasurements', () => {
  it('counts failures, timeouts and 5xx as errors; latency of the rest, one decimal', () => {
    const ms: Measurement[] = [
      { status: 200, ms: 10.04 },
      { status: 200, ms: 12.26 },
      { status: 404, ms: 11.5 },
      { status: 500, ms: 1 },
      { status: 503, ms: 2 },
      { error: 'timeout', ms: 1000 },
      { error: 'failed', ms: 0.3 },
    ];
    expect(summarizeMeasurements(ms)).toEqual({
      requests: 7,
      errors: 4,
      p50Ms: 11.5,
      p95Ms: 12.3,
      statuses: { '200': 2, '404': 1, '500': 1, '503': 1, timeout: 1, failed: 1 },
    });
  });

  it('has no latency without a successful request', () => {
    expect(summarizeMeasurements([{ error: 'failed', ms: 3 }])).toEqual({ requests: 1, errors: 1, p50Ms: 0, p95Ms: 0, statuses: { failed: 1 } });
    expect(summarizeMeasurements([])).toEqual({ requests: 0, errors: 0, p50Ms: 0, p95Ms: 0, statuses: {} });
  });
});
