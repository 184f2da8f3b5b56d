// End-to-end helpers around a deployed demo app: polling, SQL in its postgres container, and a
// steady stream of writes (POST /items) that records every write the app acknowledged.
import http from 'node:http';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { httpGet } from '../../activities/health';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns something truthy, or fails with `what` after the deadline. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false | null>, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(intervalMs);
  }
}

/** SQL in a postgres container as `user` over the local socket (trust); returns psql's unaligned rows. */
export async function psqlIn(docker: Docker, container: string, sql: string, database = 'demo', user = 'demo'): Promise<string> {
  const exec = await docker.getContainer(container).exec({
    Cmd: ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', user, '-d', database, '-c', sql],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c) => (stdout += c));
  err.on('data', (c) => (stderr += c));
  docker.modem.demuxStream(stream, out, err);
  await new Promise((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 50; i++) {
    await sleep(100);
    info = await exec.inspect();
  }
  if (info.ExitCode !== 0) throw new Error(`psql ${JSON.stringify(sql)} failed (exit ${info.ExitCode}): ${stderr}`);
  return stdout.trim();
}

/**
 * One HTTP request on a connection of its own; resolves with the status and body (never rejects).
 * No keep-alive: a request sent on a kept-alive connection just as a reloading proxy's old worker
 * closes it fails in the client, a race of keep-alive itself (RFC 9112 §9.3.1 lets a client retry
 * only idempotent requests), not of what the proxy or the runbook does.
 */
function request(url: string, o: { method?: string; body?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: string; retryAfter?: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: o.method ?? 'GET', agent: false, timeout: o.timeoutMs ?? 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers['retry-after'] ? { retryAfter: String(res.headers['retry-after']) } : {}) }));
      res.on('error', (err) => resolve({ status: 0, body: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 5000} ms`)));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
    req.end(o.body);
  });
}

const postItem = (url: string, body: string, timeoutMs?: number) => request(`${url}/items`, { method: 'POST', body, timeoutMs });

export interface WriteStreamOptions {
  /** Where request `i` goes (default: the URL given). A client with stale DNS always says the old address. */
  target?: (i: number) => string;
  /** Every other request is a read instead of a write: a GET of this path (e.g. /items/count, /version). */
  readPath?: string;
  timeoutMs?: number;
}

/**
 * Writes `perSecond` items through `url` until stopped: every body is unique, and a write counts as
 * acknowledged only on 201 (the app answers after its COMMIT). Bounded by `maxSeconds`. With
 * `readPath`, every other request reads instead; a read counts when it answers 200.
 */
export class WriteStream {
  readonly acked: { body: string; at: number }[] = [];
  readonly refused: { status: number; body: string; at: number; url: string; retryAfter?: string }[] = [];
  readsOk = 0;
  /** The longest any request took to be answered (or to fail). */
  slowestMs = 0;
  private running = true;
  private done: Promise<void>;

  constructor(url: string, perSecond = 100, maxSeconds = 300, readonly tag = `w${Date.now()}`, o: WriteStreamOptions = {}) {
    this.done = (async () => {
      const started = Date.now();
      const inFlight = new Set<Promise<void>>();
      for (let i = 0; this.running && Date.now() - started < maxSeconds * 1000; i++) {
        const body = `${this.tag}-${i}`;
        const to = o.target?.(i) ?? url;
        const read = o.readPath !== undefined && i % 2 === 1;
        const sent = Date.now();
        const p: Promise<void> = (read ? request(`${to}${o.readPath}`, { timeoutMs: o.timeoutMs }) : postItem(to, body, o.timeoutMs)).then((r) => {
          this.slowestMs = Math.max(this.slowestMs, Date.now() - sent);
          if (read && r.status === 200) this.readsOk++;
          else if (!read && r.status === 201) this.acked.push({ body, at: Date.now() });
          else this.refused.push({ status: r.status, body: `${read ? `GET ${o.readPath}` : `POST ${body}`}: ${r.body.slice(0, 200)}`, at: Date.now(), url: to, ...(r.retryAfter ? { retryAfter: r.retryAfter } : {}) });
          inFlight.delete(p);
        });
        inFlight.add(p);
        const next = started + ((i + 1) * 1000) / perSecond;
        await sleep(Math.max(0, next - Date.now()));
      }
      await Promise.all(inFlight);
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** The app's version through a proxy (status 0 when nothing answers). */
export async function servedVersion(proxy: string): Promise<{ status: number; body: string }> {
  return httpGet(`${proxy}/version`).catch((err: Error) => ({ status: 0, body: err.message }));
}

/** The versions a proxy serves, sampled until stopped, consecutive repeats collapsed. */
export class VersionSampler {
  private readonly seen: string[] = [];
  private running = true;
  private readonly done: Promise<void>;
  constructor(proxy: string) {
    this.done = (async () => {
      while (this.running) {
        const r = await servedVersion(proxy);
        const v = r.status === 200 ? r.body : `HTTP ${r.status}`;
        if (this.seen.at(-1) !== v) this.seen.push(v);
        await sleep(50);
      }
    })();
  }
  async stop(): Promise<string[]> {
    this.running = false;
    await this.done;
    return this.seen;
  }
}
