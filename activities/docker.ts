// Docker engines, local or over SSH. For an SSH host the engine socket is forwarded over the one
// persistent SSH connection (streamlocal), so an API call costs a channel, not a handshake.
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import {
  containerCreateBody,
  containerDrift,
  demuxDockerStream,
  lastLines,
  labelFilter,
  networkCreateBody,
  summarizeHealthLog,
  volumeCreateBody,
} from '../common/commands/docker';
import { tarSingleFile } from '../common/commands/tar';
import { LABEL, previousDependencyName, type ContainerRole } from '../common/naming';
import type { ContainerSpec, EnsureResult, FleetContainer, HostSpec } from '../common/types';
import { heartbeat, sleep } from './context';
import { SshPool } from './ssh';

/**
 * Checks that only this user can change what is inside `dir`: a real directory (no symlink), and
 * either ours and writable by us alone, or sticky (like /tmp), where others cannot rename our entries.
 */
async function assertSafeParent(dir: string): Promise<void> {
  const st = await lstat(dir);
  const ours = typeof process.getuid === 'function' ? st.uid === process.getuid() : true;
  const sticky = (st.mode & 0o1000) !== 0;
  if (!st.isDirectory() || !(sticky || (ours && (st.mode & 0o022) === 0))) {
    throw ApplicationFailure.nonRetryable(
      `${dir} is not a safe place for the forwarded Docker sockets (it must be a directory writable only by this user, or sticky like /tmp)`,
      'WorkerMisconfigured',
    );
  }
}

export class DockerEngines {
  private readonly engines = new Map<string, Promise<Docker>>();
  private readonly servers: net.Server[] = [];
  /** This instance's private directory (mkdtemp, 0700) for the forwarded sockets, made at first use. */
  private socketDir?: Promise<string>;

  /** `socketParent`: where the private socket directory is made; default the system's temp directory. */
  constructor(
    private readonly ssh: SshPool,
    private readonly socketParent: string = os.tmpdir(),
  ) {}

  /** The private socket directory: unpredictable, created by this process alone, mode 0700. */
  privateSocketDir(): Promise<string> {
    if (!this.socketDir) {
      const made = (async () => {
        await mkdir(this.socketParent, { recursive: true, mode: 0o700 });
        await assertSafeParent(this.socketParent);
        const dir = await mkdtemp(path.join(this.socketParent, 'runbook-engines-'));
        await chmod(dir, 0o700); // mkdtemp makes it 0700 already: stated, not assumed
        return dir;
      })();
      this.socketDir = made;
      made.catch(() => {
        if (this.socketDir === made) this.socketDir = undefined;
      });
    }
    return this.socketDir;
  }

  engine(host: HostSpec): Promise<Docker> {
    const key = JSON.stringify([host.ssh ?? null, host.dockerSocket]);
    let engine = this.engines.get(key);
    if (!engine) {
      engine = host.ssh ? this.forwarded(host, key) : Promise.resolve(new Docker({ socketPath: host.dockerSocket }));
      this.engines.set(key, engine);
      engine.catch(() => this.engines.delete(key));
    }
    return engine;
  }

  private async forwarded(host: HostSpec, key: string): Promise<Docker> {
    const ssh = host.ssh!;
    await this.ssh.connect(ssh); // fail fast (and non-retryably on a wrong host key)
    const socketPath = path.join(await this.privateSocketDir(), `${createHash('sha1').update(key).digest('hex').slice(0, 12)}.sock`);
    const server = net.createServer((local) => {
      this.ssh.openUnixSocket(ssh, host.dockerSocket).then(
        (remote) => {
          local.pipe(remote).pipe(local);
          const end = () => {
            local.destroy();
            remote.destroy();
          };
          local.on('error', end).on('close', end);
          remote.on('error', end).on('close', end);
        },
        () => local.destroy(),
      );
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
    server.unref();
    this.servers.push(server);
    return new Docker({ socketPath });
  }

  /** Stops forwarding and removes the private socket directory. */
  async closeAll(): Promise<void> {
    for (const s of this.servers.splice(0)) s.close(); // not awaited: open forwarded connections would hold it
    this.engines.clear();
    const dir = this.socketDir;
    this.socketDir = undefined;
    const made = await dir?.catch(() => undefined);
    if (made) await rm(made, { recursive: true, force: true });
  }
}

export function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

function hostLabel(host: HostSpec): string {
  return host.ssh ? `${host.name} (ssh ${host.ssh.user}@${host.ssh.address}:${host.ssh.port})` : `${host.name} (${host.dockerSocket})`;
}

/** Turns an engine error into an actionable failure: unreachable engines retry, bad requests do not. */
export function engineFailure(host: HostSpec, what: string, err: unknown): Error {
  if (err instanceof ApplicationFailure) return err;
  const code = statusCode(err);
  const message = `${what} on ${hostLabel(host)}: ${(err as Error)?.message ?? String(err)}`;
  if (code !== undefined && code >= 400 && code < 500 && code !== 408 && code !== 409 && code !== 429) {
    return ApplicationFailure.nonRetryable(message, 'DockerRequestRejected');
  }
  return new Error(message);
}

export async function ensureNetwork(docker: Docker, name: string, labels: Record<string, string>): Promise<EnsureResult> {
  try {
    const info = await docker.getNetwork(name).inspect();
    return { name, id: info.Id, created: false };
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
  }
  try {
    const net = await docker.createNetwork(networkCreateBody(name, labels) as unknown as Docker.NetworkCreateOptions);
    return { name, id: net.id, created: true };
  } catch (err) {
    if (statusCode(err) !== 409) throw err;
    const info = await docker.getNetwork(name).inspect(); // created concurrently by a retry
    return { name, id: info.Id, created: false };
  }
}

export async function ensureVolume(docker: Docker, name: string, labels: Record<string, string>): Promise<EnsureResult> {
  try {
    await docker.getVolume(name).inspect();
    return { name, id: name, created: false };
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
  }
  await docker.createVolume(volumeCreateBody(name, labels) as Docker.VolumeCreateOptions);
  return { name, id: name, created: true };
}

export async function imageExists(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (err) {
    if (statusCode(err) === 404) return false;
    throw err;
  }
}

/** Pulls an image, reporting progress. A tag or repository the registry does not have is non-retryable. */
export async function pullImage(docker: Docker, image: string, onProgress: (status: string) => void = () => {}): Promise<void> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.pull(image);
  } catch (err) {
    const msg = (err as Error).message;
    if (statusCode(err) === 404 || /manifest unknown|not found/i.test(msg)) {
      throw ApplicationFailure.nonRetryable(`image ${image} does not exist in its registry: ${msg.trim()}`, 'ImageNotFound');
    }
    throw err;
  }
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, events: { error?: string }[]) => {
        const failed = err?.message ?? events.find((e) => e.error)?.error;
        if (!failed) return resolve();
        if (/manifest unknown|not found/i.test(failed)) {
          reject(ApplicationFailure.nonRetryable(`image ${image} does not exist in its registry: ${failed}`, 'ImageNotFound'));
        } else reject(new Error(`pull of ${image} failed: ${failed}`));
      },
      (event: { status?: string; progress?: string }) => onProgress(`${event.status ?? ''} ${event.progress ?? ''}`.trim()),
    );
  });
}

export interface ContainerState {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  status: string; // created | running | exited | ...
  health?: string; // starting | healthy | unhealthy
  exitCode: number;
  healthLog: string[];
}

export async function inspectContainer(docker: Docker, name: string): Promise<ContainerState | undefined> {
  try {
    const info = await docker.getContainer(name).inspect();
    return {
      id: info.Id,
      name,
      image: info.Config.Image,
      labels: info.Config.Labels ?? {},
      status: info.State.Status,
      ...(info.State.Health ? { health: info.State.Health.Status } : {}),
      exitCode: info.State.ExitCode,
      healthLog: summarizeHealthLog(info.State.Health?.Log as { ExitCode?: number; Output?: string }[] | undefined),
    };
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    throw err;
  }
}

/** Starts or stops a container; the engine's 304 (already started, already stopped: a retried attempt) is success. */
async function startOrStop(docker: Docker, name: string, action: { stop: number } | 'start'): Promise<void> {
  const c = docker.getContainer(name);
  try {
    await (action === 'start' ? c.start() : c.stop({ t: action.stop }));
  } catch (err) {
    if (statusCode(err) !== 304) throw err;
  }
}

/**
 * Creates the container if it does not exist and starts it if it is not running. An existing
 * container that differs from the spec (another image or version) is never replaced here.
 */
export async function ensureContainer(docker: Docker, spec: ContainerSpec, secretEnv: () => Promise<string[]>): Promise<EnsureResult> {
  let state = await inspectContainer(docker, spec.name);
  let created = false;
  if (state) {
    const drift = containerDrift(spec, state);
    if (drift.length) {
      throw ApplicationFailure.nonRetryable(
        `container ${spec.name} already exists and is not the one this runbook wants (${drift.join('; ')}); ` +
          (spec.role === 'dependency'
            ? `to move it to the image the inventory declares: runbook update ${spec.labels[LABEL.app]} --env ${spec.labels[LABEL.env]} --service ${spec.labels['runbook.dependency']}`
            : `use the rolling update runbook to change a deployed version, or remove the container`),
        'ContainerConflict',
      );
    }
  } else {
    try {
      await docker.createContainer(containerCreateBody(spec, await secretEnv()) as Docker.ContainerCreateOptions);
      created = true;
    } catch (err) {
      if (statusCode(err) !== 409) throw err; // 409: a retried attempt created it already
    }
    state = (await inspectContainer(docker, spec.name))!;
  }
  if (state.status !== 'running') {
    await startOrStop(docker, spec.name, 'start');
  }
  return { name: spec.name, id: state.id, created };
}

export async function containerLogs(docker: Docker, name: string, tail = 30): Promise<string[]> {
  try {
    const buf = (await docker.getContainer(name).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
    const { stdout, stderr } = demuxDockerStream(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
    return lastLines(`${stdout}\n${stderr}`, tail);
  } catch {
    return [];
  }
}

/** What a human needs to see when a container fails: state, exit code, health log, last log lines. */
export async function diagnostics(docker: Docker, name: string): Promise<{ text: string; details: Record<string, unknown> }> {
  const state = await inspectContainer(docker, name).catch(() => undefined);
  const logs = await containerLogs(docker, name, 20);
  const details = {
    container: name,
    status: state?.status ?? 'missing',
    health: state?.health,
    exitCode: state && state.status === 'exited' ? state.exitCode : undefined,
    healthLog: state?.healthLog ?? [],
    lastLogLines: logs,
  };
  const text = [
    `container ${name}: status ${details.status}${details.health ? `, health ${details.health}` : ''}${details.exitCode !== undefined ? `, exit code ${details.exitCode}` : ''}`,
    ...(details.healthLog.length ? ['health log:', ...details.healthLog.map((l) => `  ${l}`)] : []),
    ...(logs.length ? ['last log lines:', ...logs.map((l) => `  ${l}`)] : []),
  ].join('\n');
  return { text, details };
}

/** Runs a command in a running container; returns exit code and output. */
export async function execInContainer(docker: Docker, name: string, argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const exec = await docker.getContainer(name).exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  const { stdout, stderr } = demuxDockerStream(Buffer.concat(chunks));
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode ?? -1, stdout, stderr };
}

/** Places one file in a container (running or not) through the archive API. */
export async function putFile(docker: Docker, name: string, filePath: string, content: string, mode = 0o644): Promise<void> {
  const dir = path.posix.dirname(filePath);
  const tar = await tarSingleFile(path.posix.basename(filePath), content, mode, new Date());
  await docker.getContainer(name).putArchive(tar, { path: dir });
}

/** Stops (gracefully, within the container's stop timeout) and removes containers matching labels. */
export async function removeContainersByLabels(docker: Docker, labels: Record<string, string>): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: labelFilter(labels) });
  const removed: string[] = [];
  for (const c of list) {
    const name = (c.Names[0] ?? c.Id).replace(/^\//, '');
    const container = docker.getContainer(c.Id);
    try {
      // a container in a restart loop (a dependency that cannot start) is stopped too: the engine refuses to remove it otherwise
      if (c.State === 'running' || c.State === 'restarting') await container.stop().catch((err) => (statusCode(err) === 304 ? undefined : Promise.reject(err)));
      await container.remove({ v: false });
      removed.push(name);
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
  }
  return removed;
}

/** Who stops first: nothing is routed to the app once its proxy is gone, and its databases go last. */
const STOP_ORDER: ContainerRole[] = ['proxy', 'web', 'migrate', 'dependency'];

export async function removeNetworksByLabels(docker: Docker, labels: Record<string, string>): Promise<string[]> {
  const nets = await docker.listNetworks({ filters: labelFilter(labels) });
  const removed: string[] = [];
  for (const n of nets) {
    try {
      await docker.getNetwork(n.Id).remove();
      removed.push(n.Name);
    } catch (err) {
      // 403: still in use by containers this run did not create; it stays.
      if (statusCode(err) !== 404 && statusCode(err) !== 403) throw err;
    }
  }
  return removed;
}

/** Names of containers that publish `port` on the host, with their labels. */
export async function containersPublishing(docker: Docker, port: number): Promise<{ name: string; labels: Record<string, string> }[]> {
  const list = await docker.listContainers({ all: false });
  return list
    .filter((c) => c.Ports.some((p) => p.PublicPort === port))
    .map((c) => ({ name: (c.Names[0] ?? c.Id).replace(/^\//, ''), labels: c.Labels ?? {} }));
}

// ---- activities ----

export interface HostRequest {
  host: HostSpec;
}

export function createDockerActivities(engines: DockerEngines, readSecretEnv: (spec: ContainerSpec) => Promise<string[]>) {
  const withEngine = async <T>(host: HostSpec, what: string, fn: (docker: Docker) => Promise<T>): Promise<T> => {
    try {
      return await fn(await engines.engine(host));
    } catch (err) {
      throw engineFailure(host, what, err);
    }
  };

  return {
    async ensureNetwork(req: HostRequest & { name: string; labels: Record<string, string> }): Promise<EnsureResult> {
      return withEngine(req.host, `ensure network ${req.name}`, (d) => ensureNetwork(d, req.name, req.labels));
    },

    async ensureVolume(req: HostRequest & { name: string; labels: Record<string, string> }): Promise<EnsureResult> {
      return withEngine(req.host, `ensure volume ${req.name}`, (d) => ensureVolume(d, req.name, req.labels));
    },

    async pullImage(req: HostRequest & { image: string }): Promise<{ image: string; id: string }> {
      return withEngine(req.host, `pull ${req.image}`, async (d) => {
        await pullImage(d, req.image, (status) => heartbeat({ image: req.image, status }));
        const info = await d.getImage(req.image).inspect();
        return { image: req.image, id: info.Id };
      });
    },

    /** Creates and starts the container if needed (pulling a missing image first). */
    async ensureContainer(req: HostRequest & { spec: ContainerSpec }): Promise<EnsureResult> {
      return withEngine(req.host, `ensure container ${req.spec.name}`, async (d) => {
        if (!(await imageExists(d, req.spec.image))) await pullImage(d, req.spec.image, (status) => heartbeat({ image: req.spec.image, status }));
        return ensureContainer(d, req.spec, () => readSecretEnv(req.spec));
      });
    },

    /**
     * Runs a one-off container to completion (migrations). A container of the same name that already
     * exited 0 means the work was done by an earlier attempt; a failed one is replaced.
     */
    async runOneOff(req: HostRequest & { spec: ContainerSpec; timeoutSeconds: number }): Promise<{ name: string; exitCode: number; alreadyDone: boolean; lastLogLines: string[] }> {
      return withEngine(req.host, `run ${req.spec.name}`, async (d) => {
        const name = req.spec.name;
        const before = await inspectContainer(d, name);
        if (before?.status === 'exited' && before.exitCode === 0 && containerDrift(req.spec, before).length === 0) {
          return { name, exitCode: 0, alreadyDone: true, lastLogLines: await containerLogs(d, name, 10) };
        }
        if (before && before.status !== 'running') await d.getContainer(name).remove({ v: false });
        if (!before || before.status !== 'running') {
          if (!(await imageExists(d, req.spec.image))) await pullImage(d, req.spec.image);
          await d.createContainer(containerCreateBody(req.spec, await readSecretEnv(req.spec)) as Docker.ContainerCreateOptions);
          await d.getContainer(name).start();
        }
        const deadline = Date.now() + req.timeoutSeconds * 1000;
        let state = await inspectContainer(d, name);
        while (state?.status === 'running' || state?.status === 'created') {
          if (Date.now() > deadline) {
            await d.getContainer(name).stop({ t: 5 }).catch(() => undefined);
            const diag = await diagnostics(d, name);
            throw ApplicationFailure.nonRetryable(`${name} did not finish within ${req.timeoutSeconds}s\n${diag.text}`, 'OneOffTimeout', diag.details);
          }
          heartbeat({ container: name, status: state.status });
          await sleep(500);
          state = await inspectContainer(d, name);
        }
        if (!state) throw new Error(`${name} disappeared while running`);
        if (state.exitCode !== 0) {
          const diag = await diagnostics(d, name);
          throw ApplicationFailure.nonRetryable(`${name} exited with code ${state.exitCode}\n${diag.text}`, 'OneOffFailed', diag.details);
        }
        return { name, exitCode: 0, alreadyDone: false, lastLogLines: await containerLogs(d, name, 10) };
      });
    },

    /** Removes what one run created (containers, then networks) on a host; volumes are kept. */
    /** The app's replicas (every service's) on the host, read from their labels (the fleet as it runs). */
    async inspectFleet(req: HostRequest & { app: string; env: string }): Promise<FleetContainer[]> {
      return withEngine(req.host, `list the web containers of ${req.app}/${req.env}`, async (d) => {
        const list = await d.listContainers({ all: true, filters: labelFilter({ [LABEL.app]: req.app, [LABEL.env]: req.env, [LABEL.role]: 'web' }) });
        return list
          .map((c) => ({
            host: req.host.name,
            name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
            replica: Number(c.Labels['runbook.replica'] ?? 0),
            ...(c.Labels[LABEL.service] ? { service: c.Labels[LABEL.service] } : {}),
            version: c.Labels[LABEL.version] ?? '',
            image: c.Image,
            state: c.State,
            ...(c.Labels['runbook.previous-version'] ? { previousVersion: c.Labels['runbook.previous-version'] } : {}),
          }))
          .sort((a, b) => (a.service ?? '').localeCompare(b.service ?? '') || a.replica - b.replica || a.name.localeCompare(b.name));
      });
    },

    /** The image a container runs (none: it does not exist), and whether a dependency update kept its previous one. */
    async inspectContainerImage(req: HostRequest & { name: string }): Promise<{ image?: string; previousKept: boolean }> {
      return withEngine(req.host, `inspect ${req.name}`, async (d) => {
        const current = await inspectContainer(d, req.name);
        const previous = await inspectContainer(d, previousDependencyName(req.name));
        return { ...(current ? { image: current.image } : {}), previousKept: previous !== undefined };
      });
    },

    /**
     * A dependency's new container in place of the old (\`runbook update --service\`): the old one is
     * renamed \`<name>-previous\`, stopped with its grace period (the data is flushed; one process
     * on the volume at a time) and kept; the new one starts with the name and volumes. Idempotent: a
     * retried attempt finds what the earlier one did. Health is waited for separately.
     */
    async replaceDependency(req: HostRequest & { spec: ContainerSpec; timeoutSeconds: number }): Promise<{ previous?: { name: string; image: string }; created: boolean }> {
      return withEngine(req.host, `replace ${req.spec.name}`, async (d) => {
        const name = req.spec.name;
        const previousName = previousDependencyName(name);
        if (!(await imageExists(d, req.spec.image))) await pullImage(d, req.spec.image, (status) => heartbeat({ image: req.spec.image, status }));
        let current = await inspectContainer(d, name);
        let previous = await inspectContainer(d, previousName);
        if (current && current.image !== req.spec.image) {
          // a previous container of an older update that ended: the running one is what to keep now
          if (previous) await d.getContainer(previousName).remove({ force: true, v: false });
          await d.getContainer(name).rename({ name: previousName });
          previous = { ...current, name: previousName };
          current = undefined;
        }
        if (previous && previous.status === 'running') {
          heartbeat({ stopping: previousName });
          await startOrStop(d, previousName, { stop: req.timeoutSeconds });
        }
        const ensured = await ensureContainer(d, req.spec, () => readSecretEnv(req.spec));
        return { ...(previous ? { previous: { name: previousName, image: previous.image } } : {}), created: ensured.created };
      });
    },

    /**
     * The rollback of {@link replaceDependency}: the new container goes and the kept one gets its
     * name back and starts, on the same volumes. Fails if no previous container is kept.
     */
    async restoreDependency(req: HostRequest & { name: string; timeoutSeconds: number }): Promise<{ image: string }> {
      return withEngine(req.host, `roll back ${req.name}`, async (d) => {
        const previousName = previousDependencyName(req.name);
        const previous = await inspectContainer(d, previousName);
        const current = await inspectContainer(d, req.name);
        if (!previous) {
          if (current) return { image: current.image }; // a retried attempt already put it back
          throw ApplicationFailure.nonRetryable(`neither ${req.name} nor ${previousName} exists on ${req.host.name}: nothing to roll back to`, 'NothingToRollBack');
        }
        if (current) await d.getContainer(req.name).remove({ force: true, v: false });
        await d.getContainer(previousName).rename({ name: req.name });
        await startOrStop(d, req.name, 'start');
        return { image: previous.image };
      });
    },

    /** Removes the named containers (stopping them first, with the grace period); missing ones are fine. */
    async removeContainers(req: HostRequest & { names: string[]; timeoutSeconds: number }): Promise<{ host: string; removed: string[] }> {
      return withEngine(req.host, `remove ${req.names.join(', ')}`, async (d) => {
        const removed: string[] = [];
        for (const name of req.names) {
          const info = await inspectContainer(d, name);
          if (!info) continue;
          if (info.status === 'running') {
            await startOrStop(d, name, { stop: req.timeoutSeconds });
          }
          try {
            await d.getContainer(name).remove({ force: true });
            removed.push(name);
          } catch (err) {
            if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err; // 409: removal already in progress
          }
        }
        return { host: req.host.name, removed };
      });
    },

    /** Stops the named containers gracefully (idempotent); returns those that were running, to start again later. */
    async stopContainers(req: HostRequest & { names: string[]; timeoutSeconds: number }): Promise<{ host: string; stopped: string[] }> {
      return withEngine(req.host, `stop ${req.names.join(', ')}`, async (d) => {
        const stopped: string[] = [];
        for (const name of req.names) {
          const info = await inspectContainer(d, name);
          if (!info || info.status !== 'running') continue;
          await startOrStop(d, name, { stop: req.timeoutSeconds });
          stopped.push(name);
        }
        return { host: req.host.name, stopped };
      });
    },

    /** Starts the named containers unless running (idempotent); a missing one is an error that names it. */
    async startContainers(req: HostRequest & { names: string[] }): Promise<{ host: string; started: string[] }> {
      return withEngine(req.host, `start ${req.names.join(', ')}`, async (d) => {
        const started: string[] = [];
        for (const name of req.names) {
          const info = await inspectContainer(d, name);
          if (!info) throw ApplicationFailure.nonRetryable(`container ${name} does not exist on ${req.host.name}`, 'ContainerMissing');
          if (info.status === 'running') continue;
          await startOrStop(d, name, 'start');
          started.push(name);
        }
        return { host: req.host.name, started };
      });
    },

    /**
     * \`runbook stop\`: every container of the app/env on this host (found by label, whatever its name),
     * stopped with the grace period and removed, the proxy first and the dependencies last; then its
     * networks. Volumes stay. Idempotent: what is gone already is skipped.
     */
    async removeAppContainers(req: HostRequest & { app: string; env: string; timeoutSeconds: number }): Promise<{ host: string; removed: { name: string; role: string }[]; networks: string[] }> {
      return withEngine(req.host, `stop ${req.app}/${req.env}`, async (d) => {
        const removed: { name: string; role: string }[] = [];
        for (const role of STOP_ORDER) {
          const list = await d.listContainers({ all: true, filters: labelFilter({ [LABEL.app]: req.app, [LABEL.env]: req.env, [LABEL.role]: role }) });
          await Promise.all(
            list.map(async (c) => {
              const container = d.getContainer(c.Id);
              try {
                if (c.State === 'running') await container.stop({ t: req.timeoutSeconds }).catch((err) => (statusCode(err) === 304 ? undefined : Promise.reject(err)));
                await container.remove({ v: false });
                removed.push({ name: (c.Names[0] ?? c.Id).replace(/^\//, ''), role });
              } catch (err) {
                if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err; // gone, or being removed by a retried attempt
              }
            }),
          );
        }
        const networks = await removeNetworksByLabels(d, { [LABEL.app]: req.app, [LABEL.env]: req.env });
        return { host: req.host.name, removed, networks };
      });
    },

    /** Which of the named volumes exist on this host. */
    async listVolumes(req: HostRequest & { names: string[] }): Promise<{ host: string; existing: string[] }> {
      return withEngine(req.host, `list volumes`, async (d) => {
        const existing: string[] = [];
        for (const name of req.names) {
          try {
            await d.getVolume(name).inspect();
            existing.push(name);
          } catch (err) {
            if (statusCode(err) !== 404) throw err;
          }
        }
        return { host: req.host.name, existing };
      });
    },

    /** Removes the named volumes (gone already: fine); one still used by a container is refused, naming it. */
    async removeVolumes(req: HostRequest & { names: string[] }): Promise<{ host: string; removed: string[] }> {
      return withEngine(req.host, `remove volumes ${req.names.join(', ')}`, async (d) => {
        const removed: string[] = [];
        for (const name of req.names) {
          try {
            await d.getVolume(name).remove();
            removed.push(name);
          } catch (err) {
            if (statusCode(err) === 404) continue;
            if (statusCode(err) === 409) throw ApplicationFailure.nonRetryable(`volume ${name} on ${req.host.name} is still used by a container; it was kept`, 'VolumeInUse');
            throw err;
          }
        }
        return { host: req.host.name, removed };
      });
    },

    async removeRunResources(req: HostRequest & { app: string; env: string; runId: string }): Promise<{ host: string; removedContainers: string[]; removedNetworks: string[] }> {
      return withEngine(req.host, `clean up run ${req.runId}`, async (d) => {
        const labels = { 'runbook.app': req.app, 'runbook.env': req.env, 'runbook.run-id': req.runId };
        const removedContainers = await removeContainersByLabels(d, labels);
        const removedNetworks = await removeNetworksByLabels(d, labels);
        return { host: req.host.name, removedContainers, removedNetworks };
      });
    },
  };
}
