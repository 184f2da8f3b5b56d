// Preflight: every check that can fail before anything changes. Reports; never throws on a failed check.
import { access, constants, statfs } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { fileReadableArgv, freeDiskArgv, listeningSocketsArgv, parseDfAvailableMb, portIsListening } from '../common/commands/shell';
import { LABEL } from '../common/naming';
import type { CheckResult, PreflightReport, PreflightRequest } from '../common/types';
import { containersPublishing, type DockerEngines } from './docker';
import { readEnvFile } from './envfiles';
import { sshTarget, type SshPool } from './ssh';

async function check(name: string, fn: () => Promise<string>): Promise<CheckResult> {
  try {
    return { check: name, ok: true, detail: await fn() };
  } catch (err) {
    return { check: name, ok: false, detail: (err as Error).message };
  }
}

/** True when something accepts TCP connections at address:port (a local probe). */
function somethingListens(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address === '0.0.0.0' ? '127.0.0.1' : address, port, timeout: 1000 });
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
}

export function createPreflightActivities(ssh: SshPool, engines: DockerEngines) {
  return {
    async preflightHost(req: PreflightRequest): Promise<PreflightReport> {
      const { host } = req;
      const checks: CheckResult[] = [];
      if (host.ssh) {
        const spec = host.ssh;
        checks.push(await check('ssh', async () => {
          const r = await ssh.run(spec, ['true']);
          if (r.code !== 0) throw new Error(`\`true\` exited ${r.code} on ${sshTarget(spec)}`);
          return `${sshTarget(spec)} reachable, host key matches ${spec.hostKey}`;
        }));
        if (!checks[0].ok) return { host: host.name, ok: false, checks };
      }
      let dockerRoot = '/var/lib/docker';
      const engine = await check('docker', async () => {
        const docker = await engines.engine(host);
        const [version, info] = await Promise.all([docker.version(), docker.info()]);
        dockerRoot = info.DockerRootDir ?? dockerRoot;
        return `engine ${version.Version} (API ${version.ApiVersion}) reachable`;
      });
      checks.push(engine);
      if (!engine.ok) return { host: host.name, ok: false, checks };

      checks.push(await check('disk', async () => {
        let freeMb: number;
        if (host.ssh) {
          const r = await ssh.run(host.ssh, freeDiskArgv(dockerRoot));
          if (r.code !== 0) throw new Error(`df ${dockerRoot} failed: ${r.stderr.trim()}`);
          freeMb = parseDfAvailableMb(r.stdout);
        } else {
          const s = await statfs(dockerRoot).catch(() => statfs('/'));
          freeMb = Math.floor((s.bavail * s.bsize) / 1024 / 1024);
        }
        if (freeMb < host.minFreeDiskMb) throw new Error(`${freeMb} MB free under ${dockerRoot}, need at least ${host.minFreeDiskMb} MB`);
        return `${freeMb} MB free under ${dockerRoot} (need ${host.minFreeDiskMb} MB)`;
      }));

      for (const ref of req.envFiles) {
        checks.push(await check(`env file ${ref.path}`, async () => {
          await readEnvFile(ref);
          return `has ${ref.required.length ? ref.required.join(', ') : 'no required variables'}`;
        }));
      }

      for (const path of req.secretFiles) {
        checks.push(await check(`secret file ${path}`, async () => {
          if (host.ssh) {
            const r = await ssh.run(host.ssh, fileReadableArgv(path));
            if (r.code !== 0) throw new Error(`missing or unreadable on ${host.name}`);
          } else {
            await access(path, constants.R_OK).catch(() => Promise.reject(new Error(`missing or unreadable on ${host.name}`)));
          }
          return 'present';
        }));
      }

      for (const p of req.ports) {
        checks.push(await check(`port ${p.bindAddress}:${p.port}`, async () => {
          const publishers = await containersPublishing(await engines.engine(host), p.port);
          const ours = publishers.find((c) => c.name === p.owner);
          const others = publishers.filter((c) => c.name !== p.owner);
          if (others.length) throw new Error(`published by container(s) ${others.map((c) => c.name).join(', ')}`);
          if (ours) return `already served by ${ours.name} (${ours.labels[LABEL.version] ?? 'ours'})`;
          const busy = host.ssh
            ? await ssh.run(host.ssh, listeningSocketsArgv()).then((r) => portIsListening(r.stdout, p.bindAddress, p.port))
            : await somethingListens(p.bindAddress, p.port);
          if (busy) throw new Error(`another process listens on port ${p.port}`);
          return 'free';
        }));
      }

      if (req.domain) {
        const domain = req.domain;
        checks.push(await check(`domain ${domain.name}`, async () => {
          const addresses = (await lookup(domain.name, { all: true })).map((a) => a.address);
          if (!addresses.includes(domain.address)) throw new Error(`resolves to ${addresses.join(', ') || 'nothing'}, not to ${domain.address}`);
          return `resolves to ${domain.address}`;
        }));
      }
      return { host: host.name, ok: checks.every((c) => c.ok), checks };
    },
  };
}
