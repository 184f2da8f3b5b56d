// The reverse proxy (nginx in a container): one exec places the rendered config, runs `nginx -t`
// and reloads gracefully; a config that fails `nginx -t` is rolled back and never reloaded. The
// drain then waits for the workers of the previous config to finish their in-flight requests.
// During a DNS cutover a proxy can forward everything to the other side, its own config kept aside.
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { ApplicationFailure } from '@temporalio/common';
import {
  defaultMaintenancePage,
  NGINX_MAINTENANCE_EXIT,
  nginxMaintenanceArgv,
  renderMaintenanceSnippets,
  NGINX_DRAIN_TIMED_OUT,
  NGINX_FORWARD_EXIT,
  NGINX_SWITCH_EXIT,
  nginxForwardArgv,
  nginxSwitchArgv,
  nginxTestAndReloadArgv,
  nginxUnforwardArgv,
  nginxWorkersGoneArgv,
  parseSwitchedWorkers,
  renderForwardConfig,
} from '../common/commands/nginx';
import type { HostSpec } from '../common/types';
import { heartbeat } from './context';
import { engineFailure, execInContainer, type DockerEngines } from './docker';

export interface ProxySwitch {
  changed: boolean;
  /** The nginx workers that served the previous config; they exit once their requests are answered. */
  previousWorkers?: number[];
}

export interface MaintenanceRequest {
  host: HostSpec;
  container: string;
  app: string;
  env: string;
  on: boolean;
  /** Why (kept in the snippet's comment), e.g. "restore of main by restoreBackup/…". */
  reason: string;
  retryAfterSeconds: number;
  /** The app's page (HTML) on the worker; else a plain page naming the app. */
  pageFile?: string;
  /** On: how long to wait for the requests already in flight at the app (default 20 s). */
  drainTimeoutSeconds?: number;
}

export function createProxyActivities(engines: DockerEngines) {
  return {
    /**
     * Maintenance mode on one proxy: on, every request but the ACME path is answered 503 with
     * Retry-After and the app's page (instead of the 502 of a stopped upstream); off, the app again.
     * Idempotent: already so is \`changed: false\`.
     */
    async proxyMaintenance(req: MaintenanceRequest): Promise<{ changed: boolean }> {
      let argv: string[];
      try {
        if (req.on) {
          const page = req.pageFile ? await readFile(req.pageFile, 'utf8') : defaultMaintenancePage(req.app);
          argv = nginxMaintenanceArgv(true, renderMaintenanceSnippets({ app: req.app, env: req.env, retryAfterSeconds: req.retryAfterSeconds, reason: req.reason }), page);
        } else {
          argv = nginxMaintenanceArgv(false);
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw ApplicationFailure.nonRetryable(code ? `cannot read the maintenance page ${req.pageFile}: ${code}` : `maintenance mode: ${(err as Error).message}`, 'InvalidInput');
      }
      try {
        const docker = await engines.engine(req.host);
        const r = await execInContainer(docker, req.container, argv);
        const output = (r.stdout + r.stderr).trim();
        if (r.exitCode === NGINX_MAINTENANCE_EXIT.unchanged) return { changed: false };
        if (r.exitCode === NGINX_MAINTENANCE_EXIT.notIncluded) throw ApplicationFailure.nonRetryable(`${req.container} on ${req.host.name}: ${output}`, 'ProxyMaintenanceUnsupported');
        if (r.exitCode === NGINX_MAINTENANCE_EXIT.testFailed) {
          throw ApplicationFailure.nonRetryable(`nginx -t rejected the maintenance snippets in ${req.container} on ${req.host.name}; they were removed and it serves as before:\n${output}`, 'ProxyConfigInvalid');
        }
        if (r.exitCode !== 0) throw new Error(`maintenance ${req.on ? 'on' : 'off'} in ${req.container} failed (exit ${r.exitCode}): ${output}`);
        // on: the workers of the app's config may still have requests at the app; the caller stops
        // it next, so those are answered first (else they end as 502s)
        if (req.on) await drainWorkers(docker, req.container, parseSwitchedWorkers(r.stdout), req.drainTimeoutSeconds ?? MAINTENANCE_DRAIN_SECONDS);
        return { changed: true };
      } catch (err) {
        throw engineFailure(req.host, `maintenance ${req.on ? 'on' : 'off'} in ${req.container}`, err);
      }
    },

    async configureProxy(req: { host: HostSpec; container: string; config: string }): Promise<ProxySwitch> {
      try {
        const docker = await engines.engine(req.host);
        const r = await execInContainer(docker, req.container, nginxSwitchArgv(req.config));
        const output = (r.stdout + r.stderr).trim();
        if (r.exitCode === NGINX_SWITCH_EXIT.unchanged) return { changed: false };
        if (r.exitCode === NGINX_SWITCH_EXIT.testFailed) {
          throw ApplicationFailure.nonRetryable(`nginx -t rejected the new config in ${req.container} on ${req.host.name}; the previous config was restored:\n${output}`, 'ProxyConfigInvalid');
        }
        if (r.exitCode !== 0) throw new Error(`switching the config of ${req.container} failed (exit ${r.exitCode}); the previous config was restored: ${output}`);
        return { changed: true, previousWorkers: parseSwitchedWorkers(r.stdout) };
      } catch (err) {
        throw engineFailure(req.host, `configure proxy ${req.container}`, err);
      }
    },

    /**
     * Makes the proxy forward every request to the other side of a DNS cutover (`to`, e.g.
     * http://10.0.0.7:80): its own config is kept beside the live file (only if no copy is kept yet,
     * so a retry or a new target never loses it), then the forward config is switched in (`nginx -t`,
     * graceful reload, the previous file back on failure). `app`/`env` name the upstream the HTTPS
     * snippets proxy to. Idempotent: the same forward again is `changed: false`.
     */
    async forwardProxy(req: { host: HostSpec; container: string; to: string; app: string; env: string; serverName?: string }): Promise<ProxySwitch> {
      let config: string;
      try {
        config = renderForwardConfig({ app: req.app, env: req.env, to: req.to, ...(req.serverName ? { serverName: req.serverName } : {}) });
      } catch (err) {
        throw ApplicationFailure.nonRetryable(`forwardProxy: ${(err as Error).message}`, 'InvalidInput');
      }
      try {
        const docker = await engines.engine(req.host);
        const r = await execInContainer(docker, req.container, nginxForwardArgv(config));
        const output = (r.stdout + r.stderr).trim();
        if (r.exitCode === NGINX_SWITCH_EXIT.unchanged) return { changed: false };
        if (r.exitCode === NGINX_FORWARD_EXIT.forwardWithoutKept || r.exitCode === NGINX_FORWARD_EXIT.noConfig) {
          throw ApplicationFailure.nonRetryable(`${req.container} on ${req.host.name} cannot forward: ${output}`, 'ProxyForwardRefused');
        }
        if (r.exitCode === NGINX_SWITCH_EXIT.testFailed) {
          throw ApplicationFailure.nonRetryable(`nginx -t rejected the forward config in ${req.container} on ${req.host.name}; its own config was restored:\n${output}`, 'ProxyConfigInvalid');
        }
        if (r.exitCode !== 0) throw new Error(`switching ${req.container} to forward failed (exit ${r.exitCode}); its own config was restored: ${output}`);
        return { changed: true, previousWorkers: parseSwitchedWorkers(r.stdout) };
      } catch (err) {
        throw engineFailure(req.host, `forward proxy ${req.container} to ${req.to}`, err);
      }
    },

    /**
     * Undoes {@link forwardProxy}: the kept config goes back (same switch) and the copy is removed.
     * Nothing kept: nothing to do (`changed: false`), so a retry or an undo without a forward is fine.
     */
    async unforwardProxy(req: { host: HostSpec; container: string }): Promise<ProxySwitch> {
      try {
        const docker = await engines.engine(req.host);
        const r = await execInContainer(docker, req.container, nginxUnforwardArgv());
        const output = (r.stdout + r.stderr).trim();
        if (r.exitCode === NGINX_FORWARD_EXIT.nothingKept || r.exitCode === NGINX_SWITCH_EXIT.unchanged) return { changed: false };
        if (r.exitCode === NGINX_SWITCH_EXIT.testFailed) {
          throw ApplicationFailure.nonRetryable(`nginx -t rejected the kept config of ${req.container} on ${req.host.name}; it still forwards and the copy is kept:\n${output}`, 'ProxyConfigInvalid');
        }
        if (r.exitCode !== 0) throw new Error(`putting the kept config of ${req.container} back failed (exit ${r.exitCode}): ${output}`);
        return { changed: true, previousWorkers: parseSwitchedWorkers(r.stdout) };
      } catch (err) {
        throw engineFailure(req.host, `unforward proxy ${req.container}`, err);
      }
    },

    /**
     * `nginx -t`, then a graceful reload: nginx resolves its upstreams' names when it loads its
     * config, so after the app's containers restart (new addresses) it must reload to reach them.
     */
    async reloadProxy(req: { host: HostSpec; container: string }): Promise<{ reloaded: boolean }> {
      try {
        const docker = await engines.engine(req.host);
        const r = await execInContainer(docker, req.container, nginxTestAndReloadArgv());
        if (r.exitCode !== 0) throw new Error(`nginx -t / reload in ${req.container} failed (exit ${r.exitCode}): ${(r.stdout + r.stderr).trim().slice(0, 1000)}`);
        return { reloaded: true };
      } catch (err) {
        throw engineFailure(req.host, `reload proxy ${req.container}`, err);
      }
    },

    /**
     * The drain after a switch: waits until the workers that ran the previous config have exited
     * (at most `timeoutSeconds`). Past that it reports who still serves instead of failing: the
     * caller stops the old replicas anyway, and their own graceful shutdown answers what is left.
     */
    async waitProxyDrained(req: { host: HostSpec; container: string; workers: number[]; timeoutSeconds: number }): Promise<{ drained: boolean; stillServing: number[]; waitedMs: number }> {
      try {
        return await drainWorkers(await engines.engine(req.host), req.container, req.workers, req.timeoutSeconds);
      } catch (err) {
        throw engineFailure(req.host, `drain proxy ${req.container}`, err);
      }
    },
  };
}

/** How long maintenance on waits for the requests in flight at the app (a slow request is not waited for past this). */
const MAINTENANCE_DRAIN_SECONDS = 20;

/** Waits until the nginx workers `workers` have exited (at most `timeoutSeconds`), heartbeating. */
async function drainWorkers(docker: Docker, container: string, workers: number[], timeoutSeconds: number): Promise<{ drained: boolean; stillServing: number[]; waitedMs: number }> {
  if (workers.length === 0) return { drained: true, stillServing: [], waitedMs: 0 };
  const started = Date.now();
  const beat = setInterval(() => heartbeat({ draining: container, workers }), 5000);
  try {
    const r = await execInContainer(docker, container, nginxWorkersGoneArgv(workers, timeoutSeconds));
    const waitedMs = Date.now() - started;
    if (r.exitCode === 0) return { drained: true, stillServing: [], waitedMs };
    if (r.exitCode === NGINX_DRAIN_TIMED_OUT) return { drained: false, stillServing: r.stdout.replace(/^still serving:/, '').trim().split(/\s+/).map(Number), waitedMs };
    throw new Error(`waiting for the drain of ${container} failed (exit ${r.exitCode}): ${(r.stdout + r.stderr).trim()}`);
  } finally {
    clearInterval(beat);
  }
}
