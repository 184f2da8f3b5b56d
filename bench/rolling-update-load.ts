// Load generator of bench/rolling-update, run as a child process (its own event loop, so the bench's
// Docker and CLI work cannot delay the requests). Open loop at a fixed rate: every request is sent on
// schedule on a NEW connection (no keep-alive; --keep-alive: an agent reusing connections), whatever the earlier ones are doing. Every request's
// outcome is counted: 200 with a body is ok; any other status, a connection error or a timeout is failed.
//
// Protocol (IPC): parent sends { cmd: 'start', url, rate, timeoutMs }, later { cmd: 'stop' }; the child
// answers { type: 'started', at } and, once the requests in flight have ended, { type: 'result', ... }.
import http from 'node:http';

export interface LoadSecond {
  /** Second since the start of the load (by send time). */
  second: number;
  sent: number;
  ok: number;
  failed: number;
  /** Bodies of the 200 answers (the versions served), with counts. */
  bodies: Record<string, number>;
}

export interface LoadFailure {
  /** Epoch ms when the request was sent, and its outcome. */
  sentAt: number;
  ms: number;
  what: string;
}

export interface LoadResult {
  startedAt: number;
  stoppedAt: number;
  rate: number;
  sent: number;
  ok: number;
  failed: number;
  /** Failures by kind ("status 502", "ECONNRESET", "timeout" ...). */
  failedBy: Record<string, number>;
  /** The first failures in detail (at most 5000). */
  failures: LoadFailure[];
  /** Successful requests that took ≥ 1 s: how many, and the first 1000 (when sent, how long they took). */
  slowCount: number;
  slow: { sentAt: number; ms: number }[];
  latencyMs: { p50: number; p99: number; max: number };
  /** Highest number of requests in flight at once. */
  maxInFlight: number;
  /** Largest gap between the schedule and the actual send (the generator's own lag). */
  maxLagMs: number;
  perSecond: LoadSecond[];
}

interface StartCmd {
  cmd: 'start';
  url: string;
  rate: number;
  timeoutMs: number;
  /** Reuse connections (an http.Agent with keep-alive) instead of one connection per request. */
  keepAlive?: boolean;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function run(cfg: StartCmd): { stop: () => Promise<LoadResult> } {
  const url = new URL(cfg.url);
  const agent = cfg.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 256 }) : false;
  const headers: Record<string, string> = cfg.keepAlive ? {} : { Connection: 'close' };
  const startedAt = Date.now();
  const t0 = performance.now();
  const seconds: LoadSecond[] = [];
  const failedBy: Record<string, number> = {};
  const failures: LoadFailure[] = [];
  const slow: { sentAt: number; ms: number }[] = [];
  const latencies: number[] = [];
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  let slowCount = 0;
  let maxInFlight = 0;
  let maxLagMs = 0;
  let stopping = false;
  let drained: (() => void) | undefined;

  const bin = (second: number): LoadSecond => (seconds[second] ??= { second, sent: 0, ok: 0, failed: 0, bodies: {} });

  const one = (scheduledAt: number) => {
    const sendAt = performance.now();
    maxLagMs = Math.max(maxLagMs, sendAt - scheduledAt);
    const sentAtEpoch = startedAt + (sendAt - t0);
    const second = Math.floor((sendAt - t0) / 1000);
    bin(second).sent++;
    sent++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let done = false;
    const finish = (outcome: { ok: true; body: string } | { ok: false; what: string }) => {
      if (done) return;
      done = true;
      inFlight--;
      const ms = performance.now() - sendAt;
      latencies.push(ms);
      const b = bin(second);
      if (outcome.ok) {
        ok++;
        b.ok++;
        b.bodies[outcome.body] = (b.bodies[outcome.body] ?? 0) + 1;
        if (ms >= 1000) {
          slowCount++;
          if (slow.length < 1000) slow.push({ sentAt: Math.round(sentAtEpoch), ms: Math.round(ms) });
        }
      } else {
        failed++;
        b.failed++;
        failedBy[outcome.what] = (failedBy[outcome.what] ?? 0) + 1;
        if (failures.length < 5000) failures.push({ sentAt: Math.round(sentAtEpoch), ms: Math.round(ms), what: outcome.what });
      }
      if (stopping && inFlight === 0) drained?.();
    };
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET', agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8').trim().slice(0, 40);
          if (res.statusCode === 200 && body.length > 0) finish({ ok: true, body });
          else finish({ ok: false, what: `status ${res.statusCode}` });
        });
        res.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, what: `response ${err.code ?? err.message}` }));
      },
    );
    req.setTimeout(cfg.timeoutMs, () => {
      finish({ ok: false, what: 'timeout' });
      req.destroy();
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, what: err.code ?? err.message }));
    req.end();
  };

  // Fire whatever is due every millisecond-ish tick: the schedule is t0 + i / rate.
  const interval = 1000 / cfg.rate;
  let next = 0;
  const tick = () => {
    if (stopping) return;
    const now = performance.now();
    while (t0 + next * interval <= now) {
      one(t0 + next * interval);
      next++;
    }
    setTimeout(tick, Math.max(0, Math.min(interval, t0 + next * interval - performance.now())));
  };
  tick();

  return {
    stop: async () => {
      stopping = true;
      const stoppedAt = Date.now();
      if (inFlight > 0) await new Promise<void>((r) => (drained = r));
      latencies.sort((a, b) => a - b);
      const round = (n: number) => Math.round(n * 10) / 10;
      return {
        startedAt,
        stoppedAt,
        rate: cfg.rate,
        sent,
        ok,
        failed,
        failedBy,
        failures,
        slowCount,
        slow,
        latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies[latencies.length - 1] ?? 0) },
        maxInFlight,
        maxLagMs: round(maxLagMs),
        perSecond: Array.from(seconds, (s, i) => s ?? { second: i, sent: 0, ok: 0, failed: 0, bodies: {} }),
      };
    },
  };
}

if (require.main === module) {
  let current: ReturnType<typeof run> | undefined;
  process.on('message', (msg: StartCmd | { cmd: 'stop' }) => {
    if (msg.cmd === 'start') {
      current = run(msg);
      process.send!({ type: 'started', at: Date.now() });
    } else if (msg.cmd === 'stop' && current) {
      void current.stop().then((result) => {
        process.send!({ type: 'result', result }, () => process.exit(0));
      });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
