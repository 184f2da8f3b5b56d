// The worker's metric reading and logging, pure parts: settings, label sets, gauge tracking, log lines.
import type { MetricGauge, MetricTags } from '@temporalio/common';
import type { BackupEntry } from '../../activities/backup';
import { parseInventory } from '../../common/inventory';
import { runDurationSeconds, runLabels } from '../../common/run-metrics';
import { createWorkerLogger, formatLogEntry, logSettings, REDACTED } from '../../workers/logging';
import { backupTargets, certificateSeries, countGatesWaiting, labelKey, metricsSettings, newestVerifiedBackup, probeServername, TrackedGauge } from '../../workers/metrics';

describe('metricsSettings', () => {
  it('is off without RUNBOOK_METRICS_ADDRESS and refreshes every 60 s by default', () => {
    expect(metricsSettings({})).toEqual({ refreshMs: 60_000 });
    expect(metricsSettings({ RUNBOOK_METRICS_ADDRESS: ' ' })).toEqual({ refreshMs: 60_000 });
  });
  it('takes host:port and a duration', () => {
    expect(metricsSettings({ RUNBOOK_METRICS_ADDRESS: '127.0.0.1:9464', RUNBOOK_METRICS_REFRESH: '5s' })).toEqual({ bindAddress: '127.0.0.1:9464', refreshMs: 5000 });
    expect(metricsSettings({ RUNBOOK_METRICS_ADDRESS: '[::1]:9464' }).bindAddress).toBe('[::1]:9464');
  });
  it('refuses what it cannot bind or wait', () => {
    expect(() => metricsSettings({ RUNBOOK_METRICS_ADDRESS: '9464' })).toThrow(/host:port/);
    expect(() => metricsSettings({ RUNBOOK_METRICS_ADDRESS: 'http://127.0.0.1:9464' })).toThrow(/host:port/);
    expect(() => metricsSettings({ RUNBOOK_METRICS_ADDRESS: '127.0.0.1:70000' })).toThrow(/port out of range/);
    expect(() => metricsSettings({ RUNBOOK_METRICS_REFRESH: 'soon' })).toThrow(/at least 1s/);
    expect(() => metricsSettings({ RUNBOOK_METRICS_REFRESH: '10ms' })).toThrow(/at least 1s/);
  });
});

describe('run labels', () => {
  it('names the runbook, target and outcome', () => {
    expect(runLabels('rollingUpdate', { app: 'demo', env: 'production' }, 'succeeded')).toEqual({ runbook: 'rollingUpdate', app: 'demo', env: 'production', outcome: 'succeeded' });
  });
  it('durations are seconds, never negative', () => {
    expect(runDurationSeconds(1_000, 91_500)).toBe(90.5);
    expect(runDurationSeconds(2_000, 1_000)).toBe(0);
  });
});

describe('countGatesWaiting', () => {
  it('counts by runbook/app/env and leaves out runs without the runbook attributes', () => {
    const series = countGatesWaiting([
      { workflowType: 'rollingUpdate', app: 'demo', env: 'production' },
      { workflowType: 'rollingUpdate', app: 'demo', env: 'production' },
      { workflowType: 'restoreBackup', app: 'demo', env: 'staging' },
      { workflowType: 'appLock' },
    ]);
    expect(series).toEqual([
      { labels: { runbook: 'rollingUpdate', app: 'demo', env: 'production' }, value: 2 },
      { labels: { runbook: 'restoreBackup', app: 'demo', env: 'staging' }, value: 1 },
    ]);
  });
});

describe('newestVerifiedBackup', () => {
  const entry = (createdAt: string, verified: boolean): BackupEntry => ({ file: `f-${createdAt}`, manifest: `m-${createdAt}`, createdAt, sizeBytes: 1, verified });
  it('is the newest backup that passed its drill', () => {
    const b = [entry('2026-01-01T02:00:00.000Z', true), entry('2026-01-03T02:00:00.000Z', false), entry('2026-01-02T02:00:00.000Z', true)];
    expect(newestVerifiedBackup(b)?.createdAt).toBe('2026-01-02T02:00:00.000Z');
  });
  it('is none when no backup is verified', () => {
    expect(newestVerifiedBackup([entry('2026-01-03T02:00:00.000Z', false)])).toBeUndefined();
    expect(newestVerifiedBackup([])).toBeUndefined();
  });
});

describe('certificate series', () => {
  it('one per name the served certificate covers, its expiry in seconds', () => {
    expect(certificateSeries({ app: 'demo', env: 'production', host: 'web1' }, { names: ['a.example', 'b.example', 'a.example'], notAfter: '2026-03-01T00:00:00.000Z' })).toEqual([
      { labels: { app: 'demo', env: 'production', host: 'web1', name: 'a.example' }, value: Date.UTC(2026, 2, 1) / 1000 },
      { labels: { app: 'demo', env: 'production', host: 'web1', name: 'b.example' }, value: Date.UTC(2026, 2, 1) / 1000 },
    ]);
    expect(certificateSeries({ app: 'a', env: 'e', host: 'h' }, { names: ['x'], notAfter: 'never' })).toEqual([]);
  });
  it('probes with the first plain name, else under the wildcard', () => {
    expect(probeServername(['*.example.test', 'www.example.test'])).toBe('www.example.test');
    expect(probeServername(['*.example.test'])).toBe('tls-check.example.test');
  });
});

describe('backupTargets', () => {
  it('every environment of every app with a backup section', () => {
    const inventory = parseInventory(`
hosts:
  local: { docker: { socketPath: /run/docker.sock } }
apps:
  with-backup:
    image: r/a
    proxyImage: nginx:1
    port: 8080
    backup:
      storage: { type: directory, path: /backups }
      databases: [{ name: main, database: demo, user: demo, server: { address: 127.0.0.1, port: 5432 } }]
    environments:
      production: { hosts: [local], replicas: 1, version: v1, proxy: { hostPort: 18000 } }
      staging: { hosts: [local], replicas: 1, version: v1, proxy: { hostPort: 18001 } }
  without:
    image: r/b
    proxyImage: nginx:1
    port: 8080
    environments:
      production: { hosts: [local], replicas: 1, version: v1, proxy: { hostPort: 18002 } }
`);
    expect(backupTargets(inventory)).toEqual([
      { app: 'with-backup', env: 'production' },
      { app: 'with-backup', env: 'staging' },
    ]);
  });
});

describe('TrackedGauge', () => {
  function fakeGauge(): { gauge: MetricGauge; values: Map<string, number> } {
    const values = new Map<string, number>();
    const gauge = { name: 'g', kind: 'gauge', valueType: 'int', set: (v: number, tags?: MetricTags) => values.set(labelKey((tags ?? {}) as Record<string, string>), v), withTags: () => gauge } as unknown as MetricGauge;
    return { gauge, values };
  }
  it('a count that went away is set to 0', () => {
    const { gauge, values } = fakeGauge();
    const t = new TrackedGauge(gauge, true);
    t.update([{ labels: { app: 'a', env: 'e' }, value: 2 }]);
    expect(t.update([])).toEqual([{ app: 'a', env: 'e' }]);
    expect(values.get(labelKey({ env: 'e', app: 'a' }))).toBe(0);
  });
  it('a timestamp that went away keeps its last value', () => {
    const { gauge, values } = fakeGauge();
    const t = new TrackedGauge(gauge, false);
    t.update([{ labels: { app: 'a' }, value: 1_700_000_000 }]);
    expect(t.update([])).toEqual([]);
    expect(values.get(labelKey({ app: 'a' }))).toBe(1_700_000_000);
  });
});

describe('worker logs', () => {
  const entry = { level: 'INFO' as const, message: 'Activity completed', timestampNanos: 1_767_225_600_123_000_000n, meta: { workflowId: 'rollingUpdate/demo/production', runId: 'r1', activityType: 'pullImage', durationMs: 12 } };
  it('one JSON object per line: time, level, message, then the SDK metadata', () => {
    expect(JSON.parse(formatLogEntry(entry, 'json'))).toEqual({
      time: '2026-01-01T00:00:00.123Z',
      level: 'INFO',
      message: 'Activity completed',
      workflowId: 'rollingUpdate/demo/production',
      runId: 'r1',
      activityType: 'pullImage',
      durationMs: 12,
    });
    expect(formatLogEntry(entry, 'json')).not.toContain('\n');
  });
  it('a metadata key cannot replace the fixed ones; errors keep name and message; bigints are strings', () => {
    const line = JSON.parse(formatLogEntry({ ...entry, meta: { message: 'other', level: 'DEBUG', error: new TypeError('boom'), n: 5n } }, 'json'));
    expect(line.message).toBe('Activity completed');
    expect(line.level).toBe('INFO');
    expect(line.error).toMatchObject({ name: 'TypeError', message: 'boom' });
    expect(line.n).toBe('5');
  });
  it('values under secret-named keys are redacted, at any depth', () => {
    const line = JSON.parse(formatLogEntry({ ...entry, meta: { connection: { apiKey: 'k-123', address: 'a:7233' }, password: 'hunter2', tokens: ['t'], empty: '' } }, 'json'));
    expect(line.connection).toEqual({ apiKey: REDACTED, address: 'a:7233' });
    expect(line.password).toBe(REDACTED);
    expect(line.tokens).toBe(REDACTED);
    expect(JSON.stringify(line)).not.toMatch(/k-123|hunter2/);
  });
  it('text for a terminal', () => {
    expect(formatLogEntry(entry, 'text')).toBe('2026-01-01T00:00:00.123Z [INFO] Activity completed {"workflowId":"rollingUpdate/demo/production","runId":"r1","activityType":"pullImage","durationMs":12}');
    expect(formatLogEntry({ ...entry, meta: undefined }, 'text')).toBe('2026-01-01T00:00:00.123Z [INFO] Activity completed');
  });
  it('settings: json and INFO by default; the logger drops lines below its level', () => {
    expect(logSettings({})).toEqual({ format: 'json', level: 'INFO' });
    expect(logSettings({ RUNBOOK_LOG_FORMAT: 'TEXT', RUNBOOK_LOG_LEVEL: 'debug' })).toEqual({ format: 'text', level: 'DEBUG' });
    expect(() => logSettings({ RUNBOOK_LOG_FORMAT: 'xml' })).toThrow(/json or text/);
    expect(() => logSettings({ RUNBOOK_LOG_LEVEL: 'LOUD' })).toThrow(/RUNBOOK_LOG_LEVEL/);
    const lines: string[] = [];
    const logger = createWorkerLogger({ format: 'json', level: 'WARN' }, (l) => lines.push(l));
    logger.info('quiet');
    logger.warn('heard', { workflowId: 'w' });
    expect(lines.map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ level: 'WARN', message: 'heard', workflowId: 'w' })]);
    expect(lines[0].endsWith('\n')).toBe(true);
  });
});
