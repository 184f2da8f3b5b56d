// bench/rolling-update: requests lost during a v1 → v2 update of 3 replicas behind the proxy, the
// runbook (start-before-stop, graceful proxy reload, drain) against the naive "stop then start"
// replacement (what Watchtower and a plain recreate do), under the same constant load, in one run.
// Also the runbook's wall time against the time the replicas themselves need (start-to-healthy +
// SIGTERM-to-exit of each, from the Docker events of that same update). See bench/README.md.
//
//   npm run bench:rolling-update -- [--rate 200] [--port 18250] [--settle 2] [--drain-delay 3s] [--keep-alive]
//
// Figures and ratios only; never a timed test. Results: .state/bench/rolling-update-<time>.json.
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { renderTemplate } from '../common/template';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../test/helpers/paths';
import type { LoadResult } from './rolling-update-load';

const ROOT = path.join(__dirname, '../..');
const APP = 'benchapp';
const ENV = 'production';
const REPLICAS = 3;
const IMAGE = '127.0.0.1:5000/demo-app';
const PROXY = `${APP}-${ENV}-proxy`;
const BAR_RATIO = 1.25;
const MIN_RATE = 200;
/** The control window: the load with no change (the machine's own failures). */
const CONTROL_MS = 10_000;

const INVENTORY = `# bench/rolling-update: one local host, 3 replicas, no dependencies, no migration, no backup section.
hosts:
  local:
    docker: { socketPath: "\${DOCKER_SOCK}" }
    minFreeDiskMb: 256
apps:
  ${APP}:
    image: ${IMAGE}
    port: 8080
    healthCheck: { path: /health, timeoutSeconds: 60 }
    proxyImage: 127.0.0.1:5000/nginx:1
    smokeTest: { path: /version, expectBody: "{{version}}" }
    stopTimeoutSeconds: 10
    environments:
      ${ENV}:
        hosts: [local]
        replicas: ${REPLICAS}
        version: v1
        proxy: { hostPort: \${PORT} }
`;

interface Options {
  rate: number;
  port: number;
  settleS: number;
  drainDelay?: string;
  keepAlive: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rate: MIN_RATE, port: 18250, settleS: 2, keepAlive: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--rate') o.rate = Number(v());
    else if (a === '--port') o.port = Number(v());
    else if (a === '--settle') o.settleS = Number(v());
    else if (a === '--drain-delay') o.drainDelay = v();
    else if (a === '--keep-alive') o.keepAlive = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench:rolling-update -- [--rate 200] [--port 18250] [--settle 2] [--drain-delay <duration>] [--keep-alive]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.rate > 0) || !Number.isInteger(o.port) || !(o.settleS >= 0)) throw new Error('bad --rate/--port/--settle');
  return o;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => (ms / 1000).toFixed(2);
const docker = new Docker({ socketPath: DOCKER_SOCK });

// ------------------------------------------------------------------------------------ Docker --

interface DockerEvent {
  at: number; // epoch ms (from timeNano)
  action: string;
  name: string;
  signal?: string;
  exitCode?: string;
}

/** Records the Docker events of the app's containers (label filter) until stopped. */
async function recordEvents(): Promise<{ events: DockerEvent[]; stop: () => void }> {
  const events: DockerEvent[] = [];
  const stream = (await docker.getEvents({ filters: { type: ['container'], label: [`runbook.app=${APP}`] } } as never)) as unknown as NodeJS.ReadableStream & { destroy?: () => void };
  let buf = '';
  stream.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        const e = JSON.parse(line) as { Action: string; Actor: { Attributes: Record<string, string> }; timeNano: number };
        events.push({ at: e.timeNano / 1e6, action: e.Action, name: e.Actor.Attributes.name, signal: e.Actor.Attributes.signal, exitCode: e.Actor.Attributes.exitCode });
      } catch {
        /* partial or foreign line */
      }
    }
  });
  stream.on('error', () => undefined);
  return { events, stop: () => stream.destroy?.() };
}

async function webContainers(): Promise<Docker.ContainerInfo[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } });
  return list.sort((a, b) => Number(a.Labels['runbook.replica']) - Number(b.Labels['runbook.replica']));
}

async function execIn(container: string, argv: string[]): Promise<{ exitCode: number; output: string }> {
  const exec = await docker.getContainer(container).exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((r) => stream.on('end', r));
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
}

async function waitHealthy(name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await docker.getContainer(name).inspect();
    if (info.State.Health?.Status === 'healthy') return;
    if (Date.now() > deadline) throw new Error(`${name} not healthy after ${timeoutMs} ms (${info.State.Health?.Status ?? info.State.Status})`);
    await sleep(100);
  }
}

/**
 * The naive replacement of one container, as Watchtower does it through the API (and `docker stop;
 * docker rm; docker run` with the same options by hand): stop (SIGTERM, the container's stop
 * timeout), remove, create with the same name, config, labels and network but the new image, start.
 * No health wait.
 */
async function naiveStopOld(name: string): Promise<Docker.ContainerInspectInfo> {
  const c = docker.getContainer(name);
  const info = await c.inspect();
  await c.stop().catch((err: { statusCode?: number }) => (err.statusCode === 304 ? undefined : Promise.reject(err)));
  await c.remove({ force: true });
  return info;
}

async function naiveStartNew(info: Docker.ContainerInspectInfo, version: string): Promise<void> {
  const name = info.Name.replace(/^\//, '');
  const networkName = info.HostConfig.NetworkMode as string;
  const aliases = (info.NetworkSettings.Networks[networkName]?.Aliases ?? []).filter((a: string) => !info.Id.startsWith(a));
  const created = await docker.createContainer({
    name,
    Image: `${IMAGE}:${version}`,
    Env: info.Config.Env,
    Labels: { ...info.Config.Labels, 'runbook.version': version },
    ExposedPorts: info.Config.ExposedPorts,
    StopTimeout: (info.Config as { StopTimeout?: number }).StopTimeout,
    HostConfig: {
      NetworkMode: networkName,
      PortBindings: info.HostConfig.PortBindings,
      Mounts: info.HostConfig.Mounts,
      RestartPolicy: info.HostConfig.RestartPolicy,
      LogConfig: info.HostConfig.LogConfig,
    },
    NetworkingConfig: { EndpointsConfig: { [networkName]: { Aliases: aliases } } },
  } as Docker.ContainerCreateOptions);
  await created.start();
}

/**
 * TCP accept-queue overflows inside the replicas (TcpExt ListenOverflows / ListenDrops of each
 * container's network namespace, read from the host as /proc/<pid>/net/netstat, no docker exec):
 * connections the app did not accept in time because its listen backlog was full. The kernel drops
 * their SYN or handshake ACK; the client (nginx) waits for retransmissions (1 s, 3 s, 7 s ...) and may
 * get a reset. Sampled every 500 ms; a container's last value is kept after it exits.
 */
class OverflowSampler {
  private readonly samples = new Map<string, { at: number; overflows: number; drops: number }[]>();
  private timer?: NodeJS.Timeout;
  private busy = false;

  start(): void {
    this.timer = setInterval(() => void this.sample(), 500);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const c of await webContainers()) {
        if (c.State !== 'running') continue;
        const info = await docker.getContainer(c.Id).inspect().catch(() => undefined);
        const pid = info?.State.Pid;
        if (!pid) continue;
        let text: string;
        try {
          text = readFileSync(`/proc/${pid}/net/netstat`, 'utf8');
        } catch {
          continue;
        }
        const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
        if (lines.length < 2) continue;
        const keys = lines[0].trim().split(/\s+/);
        const values = lines[1].trim().split(/\s+/);
        const get = (k: string) => Number(values[keys.indexOf(k)]) || 0;
        const name = c.Names[0].replace(/^\//, '');
        const list = this.samples.get(name) ?? [];
        list.push({ at: Date.now(), overflows: get('ListenOverflows'), drops: get('ListenDrops') });
        this.samples.set(name, list);
      }
    } catch {
      /* the engine busy or a container gone: the next sample */
    } finally {
      this.busy = false;
    }
  }

  /** Overflows and drops counted in [from, to], over every container sampled (a new container starts at 0). */
  delta(from: number, to: number): { overflows: number; drops: number } {
    let overflows = 0;
    let drops = 0;
    for (const list of this.samples.values()) {
      const before = [...list].reverse().find((x) => x.at <= from);
      const last = [...list].reverse().find((x) => x.at <= to);
      if (!last || (before === undefined && list[0].at > to)) continue;
      overflows += last.overflows - (before?.overflows ?? 0);
      drops += last.drops - (before?.drops ?? 0);
    }
    return { overflows, drops };
  }
}

/** nginx resolves upstream names at (re)load: after recreating, a naive operator reloads it. */
async function reloadProxy(): Promise<void> {
  const r = await execIn(PROXY, ['nginx', '-s', 'reload']);
  if (r.exitCode !== 0) throw new Error(`nginx -s reload failed in ${PROXY}: ${r.output.trim()}`);
}

interface ProxyLog {
  /** Access-log lines (requests nginx answered) in the window. */
  requests: number;
  /** Requests that took nginx ≥ 1 s ($request_time): slow behind the proxy, not in front of it. */
  slow: number;
  /** Requests nginx sent to more than one replica ($upstream_addr lists several): proxy_next_upstream saved or tried to. */
  retried: number;
  status: Record<string, number>;
  /** Error-log lines by kind ("error: connect() failed (111: Connection refused) while connecting to upstream"). */
  errors: Record<string, number>;
  /** The first error-log lines as logged (at most 100), for the JSON. */
  errorLines: string[];
}

/** What nginx logged (stdout: access log with upstream=$upstream_addr; stderr: error log) in [since, until]. */
async function proxyLog(sinceMs: number, untilMs: number): Promise<ProxyLog> {
  const raw = (await docker.getContainer(PROXY).logs({ stdout: true, stderr: true, timestamps: true, follow: false, since: Math.floor(sinceMs / 1000), until: Math.ceil(untilMs / 1000) + 1 } as never)) as unknown as Buffer;
  const lines: string[] = [];
  for (let i = 0; i + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(i + 4);
    lines.push(...raw.subarray(i + 8, i + 8 + size).toString('utf8').split('\n'));
    i += 8 + size;
  }
  const out: ProxyLog = { requests: 0, slow: 0, retried: 0, status: {}, errors: {}, errorLines: [] };
  for (const line of lines) {
    const sp = line.indexOf(' ');
    const at = Date.parse(line.slice(0, sp));
    if (!(at >= sinceMs && at <= untilMs)) continue;
    const text = line.slice(sp + 1);
    const access = /" (\d{3}) \d+ ".*upstream=(.*) rt=([\d.]+)/.exec(text);
    if (access) {
      out.requests++;
      if (Number(access[3]) >= 1) out.slow++;
      out.status[access[1]] = (out.status[access[1]] ?? 0) + 1;
      if (access[2].includes(',')) out.retried++;
      continue;
    }
    const err = /\[(error|warn|crit|alert|emerg)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$/.exec(text);
    if (err) {
      const kind = `${err[1]}: ${err[2].replace(/upstream: "[^"]*"/, '').trim()}`;
      out.errors[kind] = (out.errors[kind] ?? 0) + 1;
      if (out.errorLines.length < 100) out.errorLines.push(line);
    }
  }
  return out;
}

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

// ------------------------------------------------------------------- worker and CLI processes --
// (test/helpers/e2e.ts does the same from the sources; its paths do not hold from dist/.)

class WorkerProcess {
  private child?: ChildProcess;
  output = '';

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/workers/main.js')], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (c: Buffer) => (this.output = (this.output + c.toString('utf8')).slice(-20_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    while (!this.output.includes('runbook worker:')) {
      if (child.exitCode !== null) throw new Error(`worker exited: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`worker did not start: ${this.output}`);
      await sleep(100);
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await Promise.race([exited, sleep(35_000)]);
  }
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A node script in its own process, as a user runs it (`dist/client/cli.js` = `runbook`). */
function runNodeScript(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 240_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, script), ...args], { env, timeout: timeoutMs, maxBuffer: 10 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: number }).code ?? 1 : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

const runCli = (args: string[], env: NodeJS.ProcessEnv, timeoutMs?: number) => runNodeScript('dist/client/cli.js', args, env, timeoutMs);

// ---------------------------------------------------------------------------------- helpers --

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function versionsServed(url: string, n = 12): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await get(url).catch((e: Error) => ({ status: 0, body: e.message }));
    const k = r.status === 200 ? r.body : `status ${r.status} ${r.body}`;
    seen[k] = (seen[k] ?? 0) + 1;
  }
  return seen;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

class Load {
  private child?: ChildProcess;
  private result?: Promise<LoadResult>;

  async start(url: string, rate: number, keepAlive: boolean): Promise<void> {
    const child = fork(path.join(__dirname, 'rolling-update-load.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    const started = new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`load generator exited (${code})`)));
      this.result = new Promise<LoadResult>((res, rej) => {
        child.on('message', (m: { type: string; result?: LoadResult }) => {
          if (m.type === 'started') resolve();
          if (m.type === 'result') res(m.result!);
        });
        child.once('exit', (code) => rej(new Error(`load generator exited (${code}) before its result`)));
      });
      this.result.catch(() => undefined);
    });
    child.send({ cmd: 'start', url, rate, timeoutMs: 10_000, keepAlive });
    await started;
  }

  async stop(): Promise<LoadResult> {
    this.child!.send({ cmd: 'stop' });
    const r = await this.result!;
    this.child = undefined;
    return r;
  }

  kill(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

interface Variant {
  variant: string;
  /** The replacement itself: CLI start → exit for a runbook, first stop → last reload for the naive ways. */
  wallMs: number;
  startedAt: number;
  endedAt: number;
  load: LoadResult;
  inBar: boolean;
  note?: string;
  proxy?: ProxyLog;
  /** TcpExt ListenOverflows / ListenDrops of the replicas during the load window. */
  listen?: { overflows: number; drops: number };
}

function achievedRate(l: LoadResult): number {
  return (l.ok + l.failed) / ((l.stoppedAt - l.startedAt) / 1000);
}

/** Runs `body` with the load on, `settle` seconds of load before and after it. */
async function underLoad(name: string, o: Options, url: string, body: () => Promise<{ startedAt: number; endedAt: number; note?: string }>, inBar: boolean): Promise<Variant> {
  const load = new Load();
  current.load = load;
  await load.start(url, o.rate, o.keepAlive);
  try {
    await sleep(o.settleS * 1000);
    const { startedAt, endedAt, note } = await body();
    await sleep(o.settleS * 1000);
    const result = await load.stop();
    const proxy = await proxyLog(result.startedAt, result.stoppedAt + 10_000).catch((err: Error) => {
      console.log(`  (could not read the proxy's logs: ${err.message})`);
      return undefined;
    });
    await current.sampler?.sample();
    const listen = current.sampler?.delta(result.startedAt, result.stoppedAt + 1000);
    const v: Variant = { variant: name, wallMs: endedAt - startedAt, startedAt, endedAt, load: result, inBar, ...(note ? { note } : {}), ...(proxy ? { proxy } : {}), ...(listen ? { listen } : {}) };
    console.log(`  ${name}: wall ${secs(v.wallMs)} s, ${result.ok + result.failed} requests, ${result.failed} failed${result.failed ? ` (${Object.entries(result.failedBy).map(([k, n]) => `${n}× ${k}`).join(', ')})` : ''}, ${achievedRate(result).toFixed(1)} req/s`);
    return v;
  } finally {
    load.kill();
    current.load = undefined;
  }
}

/** `runbook <args>` as a user runs it, timed; a non-zero exit is an error. */
const cli = (args: string[], env: NodeJS.ProcessEnv) => runNode('dist/client/cli.js', args, env);

// ---------------------------------------------------------------------------- the baseline --

interface ReplicaTiming {
  replica: number;
  newContainer: string;
  oldContainer: string;
  /** `start` event → `health_status: healthy` event of the new container. */
  startToHealthyMs: number;
  /** `kill` (SIGTERM) event → `die` event of the old container. */
  drainMs: number;
  /** Relative to the CLI start: the new container started, healthy, the proxy reloaded, the old one signalled, exited. */
  timeline: { start: number; healthy: number; reload?: number; kill: number; die: number };
}

function replicaTimings(events: DockerEvent[], fromVersion: string, toVersion: string, t0: number, window: [number, number]): ReplicaTiming[] {
  const inWindow = events.filter((e) => e.at >= window[0] && e.at <= window[1]);
  const first = (name: string, pred: (e: DockerEvent) => boolean) => inWindow.find((e) => e.name === name && pred(e));
  const reloads = inWindow.filter((e) => e.name === PROXY && e.action.startsWith('exec_start') && e.action.includes('nginx -s reload')).map((e) => e.at);
  const out: ReplicaTiming[] = [];
  for (let n = 1; n <= REPLICAS; n++) {
    const newName = `${APP}-${ENV}-web-${n}-${toVersion}`;
    const start = first(newName, (e) => e.action === 'start');
    const healthy = first(newName, (e) => e.action === 'health_status: healthy');
    // the old one: whichever web container of replica n got SIGTERM in the window
    const kill = inWindow.find((e) => e.action === 'kill' && e.signal === '15' && new RegExp(`^${APP}-${ENV}-web-${n}(-${fromVersion})?$`).test(e.name));
    const die = kill && first(kill.name, (e) => e.action === 'die' && e.at >= kill.at);
    if (!start || !healthy || !kill || !die) throw new Error(`replica ${n}: missing Docker events (start ${!!start}, healthy ${!!healthy}, kill ${!!kill}, die ${!!die})`);
    const reload = reloads.find((r) => r >= healthy.at && r <= kill.at);
    out.push({
      replica: n,
      newContainer: newName,
      oldContainer: kill.name,
      startToHealthyMs: Math.round(healthy.at - start.at),
      drainMs: Math.round(die.at - kill.at),
      timeline: {
        start: Math.round(start.at - t0),
        healthy: Math.round(healthy.at - t0),
        ...(reload !== undefined ? { reload: Math.round(reload - t0) } : {}),
        kill: Math.round(kill.at - t0),
        die: Math.round(die.at - t0),
      },
    });
  }
  return out;
}

interface StepTime {
  step: string;
  ms: number;
  startMs: number;
}

async function stepTimes(workflowId: string, env: NodeJS.ProcessEnv, t0: number): Promise<StepTime[]> {
  const r = await runCli(['status', workflowId, '--json'], env, 60_000);
  if (r.code !== 0) return [];
  const st = JSON.parse(r.stdout) as { steps: { step: string; startedAt: string; endedAt?: string }[] };
  return st.steps.map((s) => ({ step: s.step, startMs: Date.parse(s.startedAt) - t0, ms: s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : NaN }));
}

// -------------------------------------------------------------------------------- reporting --

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

/** Where each failure fell: seconds after the variant's start, grouped per second. */
function failureTimeline(v: Variant): string {
  if (v.load.failed === 0) return '';
  const bySecond = new Map<number, Record<string, number>>();
  for (const f of v.load.failures) {
    const s = Math.floor((f.sentAt - v.startedAt) / 1000);
    const m = bySecond.get(s) ?? {};
    m[f.what] = (m[f.what] ?? 0) + 1;
    bySecond.set(s, m);
  }
  const parts = [...bySecond].sort((a, b) => a[0] - b[0]).map(([s, m]) => `${s < 0 ? '−' : '+'}${Math.abs(s)}s: ${Object.entries(m).map(([k, n]) => `${n}× ${k}`).join(', ')}`);
  return `  ${v.variant} failures (by send time relative to its start, − = during the load before it${v.load.failures.length < v.load.failed ? `, first ${v.load.failures.length}` : ''}): ${parts.join('; ')}`;
}

// ------------------------------------------------------------------------------------- main --

const current: { load?: Load; worker?: WorkerProcess; tmp?: string; temporal?: Connection; sampler?: OverflowSampler } = {};

async function terminateLeftovers(client: Client): Promise<void> {
  for (const id of [`firstDeploy/${APP}/${ENV}`, `rollingUpdate/${APP}/${ENV}`, `lock/${APP}/${ENV}`]) {
    await client.workflow.getHandle(id).terminate('left over by bench/rolling-update').catch(() => undefined);
  }
}

async function cleanup(): Promise<void> {
  current.load?.kill();
  current.sampler?.stop();
  await current.worker?.kill('SIGTERM').catch(() => undefined);
  if (current.temporal) {
    await terminateLeftovers(new Client({ connection: current.temporal })).catch(() => undefined);
    await current.temporal.close().catch(() => undefined);
    current.temporal = undefined;
  }
  await removeEverything().catch(() => undefined);
  if (current.tmp) rmSync(current.tmp, { recursive: true, force: true });
  current.tmp = undefined;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const benchStarted = Date.now();
  const loadBefore = os.loadavg();
  const url = `http://127.0.0.1:${o.port}/version`;
  console.log(`bench/rolling-update: ${APP}/${ENV}, ${REPLICAS} replicas, v1 → v2, load ${o.rate} req/s (${o.keepAlive ? 'keep-alive connections' : 'a new connection per request'}) on ${url}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPUs`);

  // --- set-up: fresh state, inventory, worker, first deploy of v1
  await docker.ping().catch((err) => Promise.reject(new Error(`Docker engine at ${DOCKER_SOCK} not reachable (bash scripts/services.sh up): ${err.message}`)));
  current.temporal = await Connection.connect({ address: TEMPORAL_ADDRESS }).catch((err) => Promise.reject(new Error(`Temporal at ${TEMPORAL_ADDRESS} not reachable: ${err.message}`)));
  await terminateLeftovers(new Client({ connection: current.temporal }));
  await removeEverything();
  if (!(await portFree(o.port))) throw new Error(`port 127.0.0.1:${o.port} is in use (--port)`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-rolling-update-'));
  current.tmp = tmp;
  const inventoryPath = path.join(tmp, 'inventory.yaml');
  writeFileSync(inventoryPath, renderTemplate(INVENTORY, { DOCKER_SOCK, PORT: String(o.port) }));
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS, RUNBOOK_TASK_QUEUE: `bench-rolling-update-${randomUUID()}`, RUNBOOK_INVENTORY: inventoryPath };
  const worker = new WorkerProcess(env);
  current.worker = worker;
  await worker.start();
  const t = Date.now();
  await cli(['deploy', APP, '--env', ENV], env);
  console.log(`deployed v1 (${secs(Date.now() - t)} s): ${JSON.stringify(await versionsServed(url))}`);

  const events = await recordEvents();
  current.sampler = new OverflowSampler();
  current.sampler.start();
  const variants: Variant[] = [];
  try {
    // --- 0. control: the same load, nothing changes (what the machine itself drops)
    const control = await underLoad(
      'control: no change',
      o,
      url,
      async () => {
        const startedAt = Date.now();
        await sleep(CONTROL_MS);
        return { startedAt, endedAt: Date.now() };
      },
      false,
    );
    variants.push(control);

    // --- 1. the runbook, v1 → v2 (measured)
    let updateOutput = '';
    const updateArgs = o.drainDelay
      ? { label: `runbook update (drainDelay ${o.drainDelay})`, run: () => runNode('dist/bench/rolling-update-start.js', [APP, ENV, 'v2', o.drainDelay!], env) }
      : { label: 'runbook update', run: () => cli(['update', APP, '--env', ENV, '--version', 'v2', '--no-backup'], env) };
    const update = await underLoad(
      updateArgs.label,
      o,
      url,
      async () => {
        const r = await updateArgs.run();
        updateOutput = r.stdout;
        return { startedAt: r.startedAt, endedAt: r.endedAt };
      },
      true,
    );
    variants.push(update);
    const runbookWall = await workflowWall(new Client({ connection: current.temporal! }), updateOutput);
    const afterUpdate = await webContainers();
    const served = await versionsServed(url);
    const allV2 = afterUpdate.length === REPLICAS && afterUpdate.every((c) => c.State === 'running' && c.Image === `${IMAGE}:v2` && c.Labels['runbook.version'] === 'v2') && Object.keys(served).join() === 'v2';
    console.log(`  after the update: ${afterUpdate.map((c) => `${c.Names[0].slice(1)} ${c.Image.split(':').pop()} ${c.State}`).join(', ')}; proxy serves ${JSON.stringify(served)} → ${allV2 ? 'all 3 replicas run v2' : 'NOT all replicas run v2'}`);
    const timings = replicaTimings(events.events, 'v1', 'v2', update.startedAt, [update.startedAt, update.endedAt]);
    const steps = await stepTimes(`rollingUpdate/${APP}/${ENV}`, env, update.startedAt);

    // --- 2. the runbook back to v1 (an extra runbook sample under load, not in the bar) — also the naive runs' starting point
    variants.push(
      await underLoad(
        'runbook rollback (v2 → v1)',
        o,
        url,
        async () => {
          const r = await cli(['rollback', APP, '--env', ENV, '--to', 'v1'], env);
          return { startedAt: r.startedAt, endedAt: r.endedAt };
        },
        false,
      ),
    );

    // --- 3. naive, one replica after the other (a recreate loop; Watchtower --rolling-restart)
    const names = async () => (await webContainers()).map((c) => c.Names[0].replace(/^\//, ''));
    const fleet = await names();
    if (fleet.length !== REPLICAS) throw new Error(`expected ${REPLICAS} web containers before the naive runs, found ${fleet.join(', ')}`);
    variants.push(
      await underLoad(
        'naive stop → start, one by one',
        o,
        url,
        async () => {
          const startedAt = Date.now();
          for (const name of fleet) {
            const info = await naiveStopOld(name);
            await naiveStartNew(info, 'v2');
            await reloadProxy();
          }
          return { startedAt, endedAt: Date.now(), note: 'per replica: docker stop, rm, run (same name/config, image v2), nginx -s reload; no health wait' };
        },
        true,
      ),
    );
    const naiveServed = await versionsServed(url);
    console.log(`  after the naive run: proxy serves ${JSON.stringify(naiveServed)}`);

    // back to v1, the same way, without load (not measured)
    for (const name of fleet) await naiveStartNew(await naiveStopOld(name), 'v1');
    for (const name of fleet) await waitHealthy(name);
    await reloadProxy();

    // --- 4. naive, all at once (Watchtower's default: stop every stale container, then start them; compose recreate)
    variants.push(
      await underLoad(
        'naive stop all → start all',
        o,
        url,
        async () => {
          const startedAt = Date.now();
          const infos: Docker.ContainerInspectInfo[] = [];
          for (const name of [...fleet].reverse()) infos.push(await naiveStopOld(name));
          for (const info of infos.reverse()) await naiveStartNew(info, 'v2');
          await reloadProxy();
          return { startedAt, endedAt: Date.now(), note: "Watchtower's default order: stop all (reverse), then create+start all, nginx -s reload; no health wait" };
        },
        true,
      ),
    );

    events.stop();
    report(o, variants, timings, steps, runbookWall, { allV2, served, benchStarted, loadBefore, events: events.events.filter((e) => !e.action.startsWith('exec_') || e.name === PROXY) });
  } finally {
    events.stop();
  }
}

/** The update workflow's own start and close times, from Temporal (the run the CLI printed: "started <id> (run <runId>)"). */
async function workflowWall(client: Client, cliOutput: string): Promise<{ startedAt: number; closedAt: number; ms: number }> {
  const m = /started (\S+) \(run ([0-9a-f-]+)\)/.exec(cliOutput);
  if (!m) throw new Error(`no "started <workflow> (run <id>)" line in the update's output:\n${cliOutput}`);
  const d = await client.workflow.getHandle(m[1], m[2]).describe();
  if (!d.closeTime) throw new Error(`${m[1]} (run ${m[2]}) has not closed`);
  return { startedAt: d.startTime.getTime(), closedAt: d.closeTime.getTime(), ms: d.closeTime.getTime() - d.startTime.getTime() };
}

/** Runs a node script like the CLI (its own process), timing it. */
async function runNode(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<CliResult & { startedAt: number; endedAt: number }> {
  const startedAt = Date.now();
  const r = await runNodeScript(script, args, env);
  const endedAt = Date.now();
  if (r.code !== 0) throw new Error(`${script} ${args.join(' ')} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return { ...r, startedAt, endedAt };
}

function report(
  o: Options,
  variants: Variant[],
  timings: ReplicaTiming[],
  steps: StepTime[],
  runbookWall: { startedAt: number; closedAt: number; ms: number },
  extra: { allV2: boolean; served: Record<string, number>; benchStarted: number; loadBefore: number[]; events: DockerEvent[] },
): void {
  const update = variants.find((v) => v.variant.startsWith('runbook update'))!;
  const control = variants.find((v) => v.variant.startsWith('control'));
  const naive = variants.filter((v) => v.variant.startsWith('naive'));
  const sumHealthy = timings.reduce((s, r) => s + r.startToHealthyMs, 0);
  const sumDrain = timings.reduce((s, r) => s + r.drainMs, 0);
  const sum = sumHealthy + sumDrain;
  // The bar is on the runbook's own wall time (the workflow, start → close, as Temporal records it);
  // the CLI's (process start → exit) adds node's start-up and module loading (~0.4 s) and is shown too.
  const ratio = runbookWall.ms / sum;
  const cliRatio = update.wallMs / sum;
  const drainDelayMs = (timings.length ? timings : []).map((r) => (r.timeline.reload !== undefined ? r.timeline.kill - r.timeline.reload : NaN));

  console.log('\nResults');
  console.log(
    table([
      ['variant', 'wall s', 'load s', 'requests', 'failed', 'req/s', 'p50 ms', 'p99 ms', 'max ms', '≥1 s'],
      ...variants.map((v) => [
        v.variant + (v.inBar ? '' : ' *'),
        secs(v.wallMs),
        secs(v.load.stoppedAt - v.load.startedAt),
        String(v.load.ok + v.load.failed),
        String(v.load.failed),
        achievedRate(v.load).toFixed(1),
        v.load.latencyMs.p50.toFixed(1),
        v.load.latencyMs.p99.toFixed(1),
        v.load.latencyMs.max.toFixed(0),
        String(v.load.slowCount),
      ]),
    ]),
  );
  console.log(`  * not in the bars: the control (the same load with nothing changing: what this machine drops by itself) and an extra runbook sample.`);
  console.log(`  "load s": the load ran ${o.settleS} s before and after each replacement; requests/failed count that whole window.`);
  console.log(`  wall: the runbook = \`runbook ${o.drainDelay ? 'update (bench/rolling-update-start, drainDelay ' + o.drainDelay + ')' : 'update'}\` process start → exit 0; naive = first stop → last reload.`);
  console.log('  ≥1 s: successful requests that took a second or more (the open-loop generator waits up to 10 s; a timeout counts as failed).');
  for (const v of variants) {
    const line = failureTimeline(v);
    if (line) console.log(line);
  }
  console.log('\nThe proxy (nginx) in each load window: requests it logged, those it sent to a second replica (proxy_next_upstream), its error log');
  for (const v of variants) {
    if (!v.proxy) continue;
    const errs = Object.entries(v.proxy.errors).sort((a, b) => b[1] - a[1]);
    const overflow = v.listen ? `; in the replicas: ${v.listen.overflows} accept-queue overflows, ${v.listen.drops} listen drops` : '';
    console.log(`  ${v.variant}: ${v.proxy.requests} logged (${Object.entries(v.proxy.status).map(([k, n]) => `${n}× ${k}`).join(', ')}), ${v.proxy.slow} took nginx ≥ 1 s, ${v.proxy.retried} retried on another replica${errs.length ? `; errors: ${errs.map(([k, n]) => `${n}× ${k}`).join('; ')}` : '; no errors'}${overflow}`);
  }

  console.log('\nBaseline: what the replicas themselves need in this run (Docker events of the update)');
  console.log(
    table([
      ['replica', 'start→healthy ms', 'SIGTERM→exit ms', 'started', 'healthy', 'reload', 'SIGTERM', 'exited'],
      ...timings.map((r) => [
        `${r.newContainer} (old ${r.oldContainer})`,
        String(r.startToHealthyMs),
        String(r.drainMs),
        `+${secs(r.timeline.start)}`,
        `+${secs(r.timeline.healthy)}`,
        r.timeline.reload !== undefined ? `+${secs(r.timeline.reload)}` : '-',
        `+${secs(r.timeline.kill)}`,
        `+${secs(r.timeline.die)}`,
      ]),
      ['sum', String(sumHealthy), String(sumDrain), '', '', '', '', ''],
    ]),
  );
  console.log(`  (times after the CLI start; reload = the proxy's \`nginx -s reload\` exec; reload → SIGTERM is the drain (the proxy's previous workers exiting) plus any drainDelay: ${drainDelayMs.map((d) => `${d} ms`).join(', ')})`);
  if (steps.length) console.log(`  runbook steps (ms): ${steps.map((s) => `${s.step} ${Number.isNaN(s.ms) ? '?' : s.ms}`).join(', ')}`);
  const lastEnd = steps.reduce((m, s) => Math.max(m, s.startMs + (Number.isNaN(s.ms) ? 0 : s.ms)), 0);
  const firstStart = steps.length ? Math.min(...steps.map((s) => s.startMs)) : NaN;
  if (steps.length) {
    console.log(`  CLI start → first step ${firstStart} ms; last step ends at ${lastEnd} ms; CLI exit at ${update.wallMs} ms`);
    const cat = (re: RegExp) => steps.filter((s) => re.test(s.step)).reduce((a, s) => a + (Number.isNaN(s.ms) ? 0 : s.ms), 0);
    const start = cat(/: start$/);
    const health = cat(/: health$/);
    const sw = cat(/: switch proxy$/);
    const stop = cat(/: stop old$/);
    const all = cat(/./);
    const between = lastEnd - firstStart - all;
    console.log(
      `  where the ${secs(update.wallMs)} s went: CLI + Temporal before the first step ${secs(firstStart)}, plan/lock/pull/verify/leftovers ${secs(all - start - health - sw - stop)}, ` +
        `create+start new ${secs(start)}, wait healthy ${secs(health)} (Σ start→healthy ${secs(sumHealthy)}), switch proxy ${secs(sw)}, ` +
        `between steps ${secs(between)} (negative: steps overlap), stop+remove old ${secs(stop)} (Σ SIGTERM→exit ${secs(sumDrain)}), after the last step → CLI exit ${secs(update.wallMs - lastEnd)}`,
    );
  }

  if (update.load.failed > 0) {
    const windows = timings.map((r) => [update.startedAt + (r.timeline.reload ?? r.timeline.healthy) - 1000, update.startedAt + r.timeline.die + 1000]);
    const near = update.load.failures.filter((f) => windows.some(([a, b]) => f.sentAt >= a && f.sentAt <= b)).length;
    console.log(`  runbook update failures: ${near} sent within a switch window (a reload −1 s … the old replica's exit +1 s), ${update.load.failures.length - near} outside every switch window`);
  }
  console.log(`\n  baseline sum = Σ start→healthy (${secs(sumHealthy)} s) + Σ SIGTERM→exit (${secs(sumDrain)} s) = ${secs(sum)} s; bar ${BAR_RATIO} × sum = ${secs(BAR_RATIO * sum)} s`);
  console.log(`  update wall (the rollingUpdate workflow, start → close) / sum = ${secs(runbookWall.ms)} / ${secs(sum)} = ${ratio.toFixed(2)}`);
  console.log(`  (the \`runbook update\` process, start → exit: ${secs(update.wallMs)} s, ratio ${cliRatio.toFixed(2)}; the workflow started ${runbookWall.startedAt - update.startedAt} ms after the process and closed ${update.endedAt - runbookWall.closedAt} ms before it exited)`);
  const outOfRotation = timings.reduce((a, r) => a + (r.timeline.reload !== undefined ? r.timeline.die - r.timeline.reload : r.drainMs), 0);
  console.log(
    `  (for context, not the bar: counting each old replica's drain from the proxy switch to its exit — the drain + SIGTERM→exit, ${secs(outOfRotation)} s in all — the sum would be ${secs(sumHealthy + outOfRotation)} s and the ratio ${(update.wallMs / (sumHealthy + outOfRotation)).toFixed(2)})`,
  );

  const verdicts = [
    [`runbook update: ${update.load.failed} failed of ${update.load.ok + update.load.failed} requests (bar: 0)`, update.load.failed === 0],
    [`naive ways: ${naive.map((v) => `${v.variant} ${v.load.failed} failed`).join(', ')} (bar: > 0, the benchmark sees failures)`, naive.some((v) => v.load.failed > 0)],
    [
      `runbook update wall ${secs(runbookWall.ms)} s ≤ ${BAR_RATIO} × sum ${secs(sum)} s = ${secs(BAR_RATIO * sum)} s (ratio ${ratio.toFixed(2)}${ratio > BAR_RATIO ? `; over by ${secs(runbookWall.ms - BAR_RATIO * sum)} s` : ''}; with the CLI process ${cliRatio.toFixed(2)})`,
      ratio <= BAR_RATIO,
    ],
    ...(control && control.load.failed > 0
      ? ([[`control: ${control.load.failed} failed with nothing changing — this machine drops requests by itself now (CPU: load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs); failures of the other variants are not all theirs`, false]] as const)
      : []),
    [`load ≥ ${MIN_RATE} req/s in every variant (${variants.map((v) => achievedRate(v.load).toFixed(0)).join(', ')})`, variants.every((v) => achievedRate(v.load) >= MIN_RATE * 0.99)],
    [`after the update all ${REPLICAS} replicas run v2 (proxy served ${JSON.stringify(extra.served)})`, extra.allV2],
  ] as const;
  console.log('\nVerdicts');
  for (const [text, pass] of verdicts) console.log(`  ${pass ? 'PASS' : 'FAIL'}  ${text}`);

  const loadAfter = os.loadavg();
  console.log(`\nload average at start ${extra.loadBefore.map((l) => l.toFixed(2)).join(' ')}, at end ${loadAfter.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs)`);
  const dir = path.join(ROOT, '.state/bench');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `rolling-update-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        bench: 'rolling-update',
        startedAt: new Date(extra.benchStarted).toISOString(),
        options: o,
        machine: { cpus: os.cpus().length, loadavgStart: extra.loadBefore, loadavgEnd: loadAfter },
        variants,
        baseline: { replicas: timings, sumStartToHealthyMs: sumHealthy, sumDrainMs: sumDrain, sumMs: sum, runbookWallMs: runbookWall.ms, ratio, cliWallMs: update.wallMs, cliRatio, bar: BAR_RATIO },
        steps,
        verdicts: verdicts.map(([text, pass]) => ({ text, pass })),
        dockerEvents: extra.events,
      },
      null,
      2,
    ),
  );
  console.log(`results: ${path.relative(ROOT, file)}`);
}

process.once('SIGINT', () => {
  console.error('\ninterrupted: cleaning up');
  void cleanup().finally(() => process.exit(130));
});

main()
  .then(cleanup)
  .catch(async (err) => {
    console.error(`bench/rolling-update: ${err instanceof Error ? err.message : String(err)}`);
    if (current.worker?.output) console.error(`worker output (tail):\n${current.worker.output.split('\n').slice(-30).join('\n')}`);
    await cleanup();
    process.exit(1);
  });
