// Health gates: a container's own health check, and HTTP probes as a user would send them.
import http from 'node:http';
import https from 'node:https';
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { bakeVerdict, nextBakeStep, recordRound, resumeBake, type BakeSpec, type BakeVerdict, type ProbeRound } from '../common/bake';
import { isErrorMeasurement, summarizeMeasurements, type MeasuredSample, type Measurement } from '../common/measure';
import type { HostSpec, SmokeTestSpec } from '../common/types';
import { activityInfoOrUndefined, cancellationSignal, heartbeat, sleep } from './context';
import { diagnostics, engineFailure, inspectContainer, type DockerEngines } from './docker';

export interface HttpAnswer {
  status: number;
  body: string;
  location?: string;
}

/**
 * One HTTP(S) GET with an optional Host header; resolves with status and (truncated) body. For
 * HTTPS, `servername` is the SNI and the certificate is not checked: these probes ask whether the
 * app answers through the proxy; the certificate runbook checks certificates.
 */
export function httpGet(url: string, options: { hostHeader?: string; timeoutMs?: number; servername?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const tlsOptions = url.startsWith('https:') ? { rejectUnauthorized: false, ...(options.servername ? { servername: options.servername } : {}) } : {};
    const req = get(url, { headers: options.hostHeader ? { Host: options.hostHeader } : {}, timeout: options.timeoutMs ?? 5000, agent: false, ...tlsOptions }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 65536) chunks.push(c);
        size += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(res.headers.location ? { location: res.headers.location } : {}) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${options.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
  });
}

/**
 * A GET through the proxy as a browser would make it: a redirect to HTTPS (the proxy once a
 * certificate is installed) is followed once, to the same address on the redirect's port, with the
 * redirect's host name as SNI and Host.
 */
export async function proxiedGet(url: string, options: { hostHeader?: string; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  const answer = await httpGet(url, options);
  if (![301, 302, 307, 308].includes(answer.status) || !answer.location?.startsWith('https://')) return answer;
  const target = new URL(answer.location);
  const original = new URL(url);
  const next = `https://${original.hostname}:${target.port || '443'}${target.pathname}${target.search}`;
  return httpGet(next, { ...options, hostHeader: target.host.replace(/:\d+$/, ''), servername: target.hostname });
}

export function smokeTestVerdict(spec: SmokeTestSpec, answer: HttpAnswer): string | undefined {
  if (answer.status !== spec.expectStatus) return `expected HTTP ${spec.expectStatus}, got ${answer.status}`;
  if (spec.expectBody !== undefined && answer.body.trim() !== spec.expectBody.trim()) {
    return `expected body ${JSON.stringify(spec.expectBody)}, got ${JSON.stringify(answer.body.trim().slice(0, 200))}`;
  }
  return undefined;
}

/** One GET of each URL: how many answered 2xx, and the failures. */
export async function probeUrls(req: { urls: string[]; hostHeader?: string; timeoutMs?: number }): Promise<{ ok: number; failed: number; errors: string[] }> {
  const results = await Promise.all(
    req.urls.map((url) =>
      proxiedGet(url, { ...(req.hostHeader ? { hostHeader: req.hostHeader } : {}), timeoutMs: req.timeoutMs ?? 5000 }).then(
        (a) => (a.status >= 200 && a.status < 300 ? undefined : `${url}: HTTP ${a.status}`),
        (err: Error) => `${url}: ${err.message}`,
      ),
    ),
  );
  const errors = results.filter((r): r is string => r !== undefined);
  return { ok: results.length - errors.length, failed: errors.length, errors };
}

export interface BakeRequest extends BakeSpec {
  urls: string[];
  hostHeader?: string;
  /** Per GET (default 5 s). */
  timeoutMs?: number;
}

/** What a bake does I/O with; injectable so a bake can run on a fake probe and clock. */
export interface BakeDeps {
  probe(req: { urls: string[]; hostHeader?: string; timeoutMs?: number }): Promise<ProbeRound>;
  /** A monotonic clock, in ms. */
  now(): number;
  /** Cancellation-aware inside an activity. */
  sleep(ms: number): Promise<void>;
  /** The longest wait between two heartbeats (the interval may be longer than the heartbeat timeout). */
  heartbeatEveryMs: number;
}

const defaultBakeDeps: BakeDeps = {
  probe: probeUrls,
  now: () => performance.now(),
  sleep: (ms) => (activityInfoOrUndefined() ? Context.current().sleep(ms) : sleep(ms)),
  heartbeatEveryMs: 5000,
};

/** The bake loop: the decisions are common/bake.ts's; this probes, waits and heartbeats the progress. */
export async function runBake(req: BakeRequest, deps: BakeDeps, resumeFrom?: unknown): Promise<BakeVerdict> {
  const spec: BakeSpec = { bakeMs: req.bakeMs, intervalMs: req.intervalMs, maxErrorRate: req.maxErrorRate };
  let progress = resumeBake(resumeFrom);
  const resumedAt = progress.elapsedMs;
  const started = deps.now();
  const elapsed = () => resumedAt + (deps.now() - started);
  for (;;) {
    const step = nextBakeStep(progress, elapsed(), spec);
    if (step.kind === 'done') break;
    if (step.kind === 'probe') {
      const round = await deps.probe({ urls: req.urls, ...(req.hostHeader ? { hostHeader: req.hostHeader } : {}), ...(req.timeoutMs ? { timeoutMs: req.timeoutMs } : {}) });
      progress = recordRound(progress, round, elapsed(), spec);
    } else {
      await deps.sleep(Math.min(step.ms, deps.heartbeatEveryMs));
    }
    heartbeat({ ...progress, elapsedMs: elapsed() });
  }
  return bakeVerdict(progress, spec);
}

export interface MeasureRequest {
  /** Where the endpoint is reached, e.g. http://10.0.0.5:80 (a side's proxy). */
  url: string;
  hostHeader?: string;
  /** Appended to `url`, e.g. "/health". */
  path: string;
  /** Requests are sent for this long (at least one)... */
  durationMs: number;
  /** ...one every intervalMs (sequentially: a slow answer delays the next, skipped ticks are not made up). */
  intervalMs: number;
  /** Per request, to the end of the body (default 5 s): longer is a timeout, an error. */
  timeoutMs?: number;
}

/** One GET timed to the end of its body; the answer's status, or `timeout` / `failed`. Cancelled: rejects with the signal's reason. */
export function timedGet(url: string, options: { hostHeader?: string; timeoutMs: number; signal?: AbortSignal }): Promise<Measurement> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(options.signal.reason);
    const secure = url.startsWith('https:');
    const tls = secure ? { rejectUnauthorized: false, ...(options.hostHeader ? { servername: options.hostHeader.replace(/:\d+$/, '') } : {}) } : {};
    let settled = false;
    const finish = (m: Measurement | { cancelled: unknown }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if ('cancelled' in m) reject(m.cancelled);
      else resolve(m);
    };
    const req = (secure ? https : http).request(url, { method: 'GET', headers: options.hostHeader ? { Host: options.hostHeader } : {}, agent: false, ...tls }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => finish({ status: res.statusCode ?? 0, ms: elapsed() }));
      res.on('error', () => finish({ error: 'failed', ms: elapsed() }));
    });
    const timer = setTimeout(() => {
      finish({ error: 'timeout', ms: elapsed() });
      req.destroy();
    }, options.timeoutMs);
    const onAbort = () => {
      finish({ cancelled: options.signal?.reason });
      req.destroy();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', () => finish({ error: 'failed', ms: elapsed() }));
    req.end();
  });
}

function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * GETs url+path every intervalMs for durationMs and summarizes (common/measure.ts): errors are
 * failures, timeouts and 5xx; p50/p95 are of the others. Heartbeats its progress at least every
 * second (cancellation arrives with heartbeats); cancelled, it stops at once and rejects with the
 * cancellation. A retried attempt measures again from the start.
 */
export async function measureEndpoint(req: MeasureRequest, options: { signal?: AbortSignal; heartbeatEveryMs?: number } = {}): Promise<MeasuredSample> {
  if (typeof req.url !== 'string' || !/^https?:\/\//.test(req.url)) throw ApplicationFailure.nonRetryable(`measureEndpoint: not an http(s) URL: ${JSON.stringify(req.url)}`, 'InvalidInput');
  if (!(req.intervalMs > 0) || !(req.durationMs >= 0) || !Number.isFinite(req.durationMs) || (req.timeoutMs !== undefined && !(req.timeoutMs > 0))) {
    throw ApplicationFailure.nonRetryable(`measureEndpoint: ${req.durationMs} ms every ${req.intervalMs} ms (timeout ${req.timeoutMs}) is not a measurement`, 'InvalidInput');
  }
  const target = req.url.replace(/\/+$/, '') + (req.path.startsWith('/') ? req.path : `/${req.path}`);
  const timeoutMs = req.timeoutMs ?? 5000;
  const beatEvery = options.heartbeatEveryMs ?? 1000;
  const measurements: Measurement[] = [];
  const started = performance.now();
  const progress = () => ({ url: target, requests: measurements.length, errors: measurements.filter(isErrorMeasurement).length, elapsedMs: Math.round(performance.now() - started) });
  for (let tick = 0; tick === 0 || tick * req.intervalMs < req.durationMs; ) {
    for (let wait = started + tick * req.intervalMs - performance.now(); wait > 0; wait = started + tick * req.intervalMs - performance.now()) {
      await sleepUnlessAborted(Math.min(wait, beatEvery), options.signal);
      heartbeat(progress());
    }
    measurements.push(await timedGet(target, { timeoutMs, ...(req.hostHeader ? { hostHeader: req.hostHeader } : {}), ...(options.signal ? { signal: options.signal } : {}) }));
    heartbeat(progress());
    // the next tick not yet begun (a slow answer skips ticks instead of bunching requests)
    tick = Math.max(tick + 1, Math.ceil((performance.now() - started) / req.intervalMs));
  }
  return summarizeMeasurements(measurements);
}

export function createHealthActivities(engines: DockerEngines, bake: Partial<BakeDeps> = {}) {
  return {
    /** One GET of each URL: how many answered 2xx, and the failures (for bake checks during a canary). */
    probeUrls,

    /**
     * The DNS cutover's baseline and validation rounds: GETs url+path every intervalMs for
     * durationMs; requests, errors (failed, timed out, 5xx), p50/p95 latency, and the count of each answer.
     */
    async measureEndpoint(req: MeasureRequest): Promise<MeasuredSample> {
      const signal = cancellationSignal();
      return measureEndpoint(req, signal ? { signal } : {});
    },

    /**
     * A canary bake in one activity (a loop of probe activities and timers in the workflow would grow
     * its history with the bake): a round of probes through every proxy each interval for the bake
     * time, then the verdict (see common/bake.ts). Heartbeats its progress; a retried attempt resumes
     * from the last heartbeat's details instead of starting the bake over. A failed bake is a verdict
     * (passed: false), not an error: the workflow decides to roll back.
     */
    async bakeCanary(req: BakeRequest): Promise<BakeVerdict> {
      if (!Array.isArray(req.urls) || req.urls.length === 0) throw ApplicationFailure.nonRetryable('bakeCanary: no URL to probe', 'InvalidInput');
      if (!(req.intervalMs > 0) || !(req.bakeMs >= 0) || !Number.isFinite(req.bakeMs)) {
        throw ApplicationFailure.nonRetryable(`bakeCanary: bake ${req.bakeMs} ms every ${req.intervalMs} ms is not a bake`, 'InvalidInput');
      }
      return runBake(req, { ...defaultBakeDeps, ...bake }, activityInfoOrUndefined()?.heartbeatDetails);
    },

    /**
     * Waits until the container reports healthy (or, without a health check, keeps running for a
     * moment). Unhealthy, exited, or still starting at the deadline: non-retryable, with diagnostics.
     */
    async waitHealthy(req: { host: HostSpec; container: string; timeoutSeconds: number; pollMs?: number }): Promise<{ container: string; health: string; seconds: number }> {
      const docker = await engines.engine(req.host).catch((err) => Promise.reject(engineFailure(req.host, 'connect', err)));
      const started = Date.now();
      const deadline = started + req.timeoutSeconds * 1000;
      let runningSince: number | undefined;
      for (;;) {
        const state = await inspectContainer(docker, req.container).catch((err) => Promise.reject(engineFailure(req.host, `inspect ${req.container}`, err)));
        const seconds = Math.round((Date.now() - started) / 100) / 10;
        const fail = async (why: string, type: string) => {
          const diag = await diagnostics(docker, req.container);
          return ApplicationFailure.nonRetryable(`${req.container} on ${req.host.name} ${why} after ${seconds}s\n${diag.text}`, type, diag.details);
        };
        if (!state) throw await fail('does not exist', 'ContainerMissing');
        if (state.status === 'exited' || state.status === 'dead') throw await fail(`stopped (exit code ${state.exitCode})`, 'ContainerExited');
        if (state.health === 'healthy') return { container: req.container, health: 'healthy', seconds };
        if (state.health === 'unhealthy') throw await fail('is unhealthy', 'ContainerUnhealthy');
        if (state.health === undefined && state.status === 'running') {
          runningSince ??= Date.now();
          if (Date.now() - runningSince >= 2000) return { container: req.container, health: 'running (no health check)', seconds };
        }
        if (Date.now() > deadline) throw await fail(`is still ${state.health ?? state.status}`, 'HealthTimeout');
        heartbeat({ container: req.container, status: state.status, health: state.health });
        await sleep(req.pollMs ?? 500);
      }
    },

    /** GETs the URL (through the proxy) until it answers as expected, for up to `attempts` tries. */
    async smokeTest(req: SmokeTestSpec & { attempts?: number; intervalMs?: number }): Promise<{ url: string; status: number; body: string }> {
      const attempts = req.attempts ?? 10;
      let last = '';
      for (let i = 1; i <= attempts; i++) {
        try {
          const answer = await proxiedGet(req.url, req.hostHeader ? { hostHeader: req.hostHeader } : {});
          const problem = smokeTestVerdict(req, answer);
          if (!problem) return { url: req.url, status: answer.status, body: answer.body.trim().slice(0, 200) };
          last = problem;
        } catch (err) {
          last = (err as Error).message;
        }
        heartbeat({ url: req.url, attempt: i, last });
        if (i < attempts) await sleep(req.intervalMs ?? 500);
      }
      throw ApplicationFailure.nonRetryable(`smoke test GET ${req.url}${req.hostHeader ? ` (Host: ${req.hostHeader})` : ''} failed after ${attempts} tries: ${last}`, 'SmokeTestFailed');
    },
  };
}
