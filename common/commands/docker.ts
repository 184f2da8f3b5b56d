// Docker Engine API requests (the bodies dockerode sends), built from a ContainerSpec.
import type { DeclaredHealthCheck, ResourcesConfig } from '../inventory';
import type { ContainerSpec, EngineHealthCheck } from '../types';

/** Body of POST /containers/create. `secretEnv` holds values read from env files at use. */
export function containerCreateBody(spec: ContainerSpec, secretEnv: string[] = []): Record<string, unknown> {
  const exposed: Record<string, object> = {};
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of spec.ports) {
    const key = `${p.containerPort}/tcp`;
    exposed[key] = {};
    (portBindings[key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  }
  const plainEnv = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  return {
    name: spec.name,
    Image: spec.image,
    ...(spec.cmd ? { Cmd: spec.cmd } : {}),
    Env: [...secretEnv, ...plainEnv],
    Labels: spec.labels,
    ExposedPorts: exposed,
    StopTimeout: spec.stopTimeoutSeconds,
    ...(spec.healthCheck ? { Healthcheck: engineHealthcheckBody(spec.healthCheck) } : {}),
    HostConfig: {
      NetworkMode: spec.network,
      PortBindings: portBindings,
      Mounts: [
        ...spec.volumes.map((v) => ({ Type: 'volume', Source: v.name, Target: v.target })),
        ...spec.binds.map((b) => ({ Type: 'bind', Source: b.source, Target: b.target, ReadOnly: b.readOnly })),
      ],
      RestartPolicy: spec.restart ? { Name: 'unless-stopped' } : { Name: 'no' },
      ...(spec.resources?.memoryBytes !== undefined ? { Memory: spec.resources.memoryBytes } : {}),
      ...(spec.resources?.nanoCpus !== undefined ? { NanoCpus: spec.resources.nanoCpus } : {}),
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
    NetworkingConfig: {
      EndpointsConfig: { [spec.network]: { Aliases: spec.aliases } },
    },
  };
}

const NS_PER_SECOND = 1_000_000_000;

/** The create body's \`Healthcheck\` (durations in nanoseconds). */
export function engineHealthcheckBody(h: EngineHealthCheck): Record<string, unknown> {
  return { Test: h.test, Interval: h.intervalSeconds * NS_PER_SECOND, Timeout: h.timeoutSeconds * NS_PER_SECOND, Retries: h.retries, StartPeriod: h.startPeriodSeconds * NS_PER_SECOND };
}

/** A declared health check (inventory) as the engine runs it: argv as CMD, a string through the shell. */
export function engineHealthCheck(declared: DeclaredHealthCheck | undefined): EngineHealthCheck | undefined {
  if (declared?.command === undefined) return undefined;
  return {
    test: typeof declared.command === 'string' ? ['CMD-SHELL', declared.command] : ['CMD', ...declared.command],
    intervalSeconds: declared.intervalSeconds ?? 5,
    timeoutSeconds: declared.probeTimeoutSeconds ?? 5,
    retries: declared.retries ?? 3,
    startPeriodSeconds: declared.startPeriodSeconds ?? 0,
  };
}

const MEMORY_UNITS = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as const;

/** Inventory limits (memory "512m", cpus 0.5) as the engine takes them (bytes, nano-CPUs). */
export function engineResources(r: ResourcesConfig | undefined): ContainerSpec['resources'] {
  if (!r || (r.memory === undefined && r.cpus === undefined)) return undefined;
  const memory = r.memory === undefined ? undefined : /^(\d+(?:\.\d+)?)([kmg])$/.exec(r.memory);
  if (r.memory !== undefined && !memory) throw new Error(`not a memory size: ${JSON.stringify(r.memory)}`);
  return {
    ...(memory ? { memoryBytes: Math.round(Number(memory[1]) * MEMORY_UNITS[memory[2] as keyof typeof MEMORY_UNITS]) } : {}),
    ...(r.cpus !== undefined ? { nanoCpus: Math.round(r.cpus * NS_PER_SECOND) } : {}),
  };
}

export function networkCreateBody(name: string, labels: Record<string, string>): Record<string, unknown> {
  return { Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: labels };
}

export function volumeCreateBody(name: string, labels: Record<string, string>): Record<string, unknown> {
  return { Name: name, Driver: 'local', Labels: labels };
}

/** Label filter for GET /containers/json, e.g. { label: ['runbook.run-id=abc'] }. */
export function labelFilter(labels: Record<string, string>): { label: string[] } {
  return { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
}

/** Splits `registry:5000/repo:tag` into the repository and tag that POST /images/create takes. */
export function splitImageReference(image: string): { repository: string; tag: string } {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon > slash) return { repository: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { repository: image, tag: 'latest' };
}

/** What an existing container differs in from the spec (empty: it is the container we want). */
export function containerDrift(
  spec: ContainerSpec,
  existing: { image: string; labels: Record<string, string> },
): string[] {
  const drift: string[] = [];
  if (existing.image !== spec.image) drift.push(`image is ${existing.image}, want ${spec.image}`);
  for (const key of ['runbook.app', 'runbook.env', 'runbook.role', 'runbook.version']) {
    if (spec.labels[key] !== undefined && existing.labels[key] !== spec.labels[key]) {
      drift.push(`label ${key} is ${existing.labels[key] ?? '(none)'}, want ${spec.labels[key]}`);
    }
  }
  return drift;
}

/** Docker's health log entries, newest last, reduced to what a human needs. */
export function summarizeHealthLog(log: { ExitCode?: number; Output?: string }[] | undefined, max = 5): string[] {
  return (log ?? []).slice(-max).map((e) => `exit ${e.ExitCode ?? '?'}: ${(e.Output ?? '').trim().slice(0, 300)}`);
}

/**
 * Splits Docker's multiplexed stdout/stderr stream (8-byte frame headers; used for logs and exec
 * without a TTY) into text. Bytes that do not look like frames are taken as plain text (TTY mode).
 */
export function demuxDockerStream(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const kind = buf[i];
    if (kind > 2 || buf[i + 1] !== 0 || buf[i + 2] !== 0 || buf[i + 3] !== 0) return { stdout: buf.toString('utf8'), stderr: '' };
    const size = buf.readUInt32BE(i + 4);
    const frame = buf.subarray(i + 8, i + 8 + size);
    (kind === 2 ? err : out).push(frame);
    i += 8 + size;
  }
  if (i < buf.length && out.length === 0 && err.length === 0) return { stdout: buf.toString('utf8'), stderr: '' };
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** The last `n` non-empty lines of a log text. */
export function lastLines(text: string, n: number): string[] {
  return text.split(/\r?\n/).filter((l) => l.trim() !== '').slice(-n);
}
