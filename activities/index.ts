// createActivities(deps): every activity, each bound to injected dependencies.
import type { ContainerSpec } from '../common/types';
import { createArchiveActivities } from './archives';
import { createBackupActivities } from './backup';
import { createCertificateActivities } from './certificates';
import type { ActivityDeps } from './deps';
import { createDockerActivities } from './docker';
import { dockerEnvFrom } from './envfiles';
import { createHealthActivities } from './health';
import { createInventoryActivities } from './inventory';
import { createLockActivities } from './lock';
import { createNotifyActivities } from './notify';
import { createPreflightActivities } from './preflight';
import { createProxyActivities } from './proxy';
import { createTlsActivities } from './tls';

export function createActivities(deps: ActivityDeps) {
  const secretEnv = (spec: ContainerSpec) => dockerEnvFrom(spec.envFiles);
  return {
    ...createInventoryActivities(deps),
    ...createPreflightActivities(deps.ssh, deps.engines),
    ...createDockerActivities(deps.engines, secretEnv),
    ...createHealthActivities(deps.engines),
    ...createProxyActivities(deps.engines),
    ...createLockActivities(deps),
    ...createBackupActivities({ engines: deps.engines, ssh: deps.ssh }),
    ...createArchiveActivities({ engines: deps.engines, ssh: deps.ssh }),
    ...createNotifyActivities(),
    ...createTlsActivities(),
    ...createCertificateActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export { createDeps, closeDeps, type ActivityDeps } from './deps';
