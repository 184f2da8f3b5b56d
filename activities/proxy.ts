// The reverse proxy (nginx in a container): place the rendered config, `nginx -t`, graceful reload.
// A config that fails `nginx -t` is rolled back to the previous one and never reloaded.
import { ApplicationFailure } from '@temporalio/common';
import { nginxReloadArgv, nginxTestArgv, PROXY_CONFIG_PATH } from '../common/commands/nginx';
import type { HostSpec } from '../common/types';
import { engineFailure, execInContainer, putFile, type DockerEngines } from './docker';

export function createProxyActivities(engines: DockerEngines) {
  return {
    async configureProxy(req: { host: HostSpec; container: string; config: string }): Promise<{ changed: boolean }> {
      try {
        const docker = await engines.engine(req.host);
        const current = await execInContainer(docker, req.container, ['cat', PROXY_CONFIG_PATH]);
        if (current.exitCode === 0 && current.stdout === req.config) return { changed: false };
        const previous = current.exitCode === 0 ? current.stdout : undefined;
        await putFile(docker, req.container, PROXY_CONFIG_PATH, req.config);
        const test = await execInContainer(docker, req.container, nginxTestArgv());
        if (test.exitCode !== 0) {
          if (previous !== undefined) await putFile(docker, req.container, PROXY_CONFIG_PATH, previous);
          throw ApplicationFailure.nonRetryable(
            `nginx -t rejected the new config in ${req.container} on ${req.host.name}; the previous config was restored:\n${(test.stderr || test.stdout).trim()}`,
            'ProxyConfigInvalid',
          );
        }
        const reload = await execInContainer(docker, req.container, nginxReloadArgv());
        if (reload.exitCode !== 0) throw new Error(`nginx reload failed in ${req.container}: ${(reload.stderr || reload.stdout).trim()}`);
        return { changed: true };
      } catch (err) {
        throw engineFailure(req.host, `configure proxy ${req.container}`, err);
      }
    },
  };
}
