// A throwaway PostgreSQL 15 container on the test engine, published on a free loopback port.
import net from 'node:net';
import type Docker from 'dockerode';
import { REGISTRY } from './paths';

export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Starts the container on a free port in portBase..portBase+99 (another test may take one meanwhile: try the next). */
export async function startPostgresContainer(docker: Docker, o: { name: string; password: string; label: string; portBase: number }): Promise<number> {
  const first = o.portBase + Math.floor(Math.random() * 100);
  for (let i = 0; i < 100; i++) {
    const port = o.portBase + ((first - o.portBase + i) % 100);
    if (!(await portFree(port))) continue;
    await docker.getContainer(o.name).remove({ force: true }).catch(() => undefined);
    const c = await docker.createContainer({
      name: o.name,
      Image: `${REGISTRY}/postgres:15`,
      Env: ['POSTGRES_USER=app', `POSTGRES_PASSWORD=${o.password}`, 'POSTGRES_DB=shop'],
      Labels: { 'runbook.test': o.label },
      ExposedPorts: { '5432/tcp': {} },
      HostConfig: { PortBindings: { '5432/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] } },
    });
    try {
      await c.start();
      return port;
    } catch (err) {
      if (!/port is already allocated|address already in use/i.test((err as Error).message)) throw err;
    }
  }
  throw new Error(`no free port in 127.0.0.1:${o.portBase}-${o.portBase + 99}`);
}

export async function waitContainerHealthy(docker: Docker, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await docker.getContainer(name).inspect();
    if (info.State.Health?.Status === 'healthy') return;
    if (!info.State.Running || Date.now() > deadline) throw new Error(`${name}: ${info.State.Status} ${info.State.Health?.Status ?? ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Records how long each labelled step took (printed by the tests as figures, never asserted). */
export function stopwatch() {
  const timings: Record<string, number> = {};
  const timed = async <T>(label: string, p: Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await p;
    } finally {
      timings[label] = Date.now() - t0;
    }
  };
  return { timings, timed };
}
