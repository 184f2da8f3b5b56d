// createActivities(deps): every activity, each bound to injected dependencies.
import type { ContainerSpec } from '../common/types';
import { createArchiveRestoreActivities } from './archive-restore';
import { createArchiveActivities } from './archives';
import { createBackupActivities } from './backup';
import { createCertificateActivities } from './certificates';
import { whileHeartbeating } from './context';
import type { ActivityDeps } from './deps';
import { createDnsActivities } from './dns';
import { createDockerActivities } from './docker';
import { dockerEnvFrom } from './envfiles';
import { createHealthActivities } from './health';
import { createHousekeepingActivities } from './housekeeping';
import { createInventoryActivities } from './inventory';
import { createKeeperActivities } from './keeper';
import { createLockActivities } from './lock';
import { createNotifyActivities } from './notify';
import { createPreflightActivities } from './preflight';
import { createProxyActivities } from './proxy';
import { createReplicationActivities } from './replication';
import { createTlsActivities } from './tls';

/**
 * What a restore runs while the app is down heartbeats (the workflow gives these a short heartbeat
 * timeout): a worker that dies in the middle is noticed in seconds, not at the 2-minute timeout.
 */
const HEARTBEATING = ['inspectFleet', 'stopContainers', 'startContainers', 'swapInRestoredDatabase', 'swapBackPreviousDatabase', 'volumeUsers'] as const;

export function createActivities(deps: ActivityDeps) {
  const activities = allActivities(deps);
  for (const name of HEARTBEATING) {
    const fn = activities[name] as (...args: unknown[]) => Promise<unknown>;
    (activities as Record<string, unknown>)[name] = (...args: unknown[]) => whileHeartbeating(() => fn(...args));
  }
  return activities;
}

function allActivities(deps: ActivityDeps) {
  const secretEnv = (spec: ContainerSpec) => dockerEnvFrom(spec.envFiles);
  return {
    ...createInventoryActivities(deps),
    ...createPreflightActivities(deps.ssh, deps.engines),
    ...createDockerActivities(deps.engines, secretEnv),
    ...createHealthActivities(deps.engines),
    ...createHousekeepingActivities(deps.engines),
    ...createProxyActivities(deps.engines),
    ...createLockActivities(deps),
    ...createKeeperActivities(deps),
    ...createBackupActivities({ engines: deps.engines, ssh: deps.ssh }),
    ...createArchiveActivities({ engines: deps.engines, ssh: deps.ssh }),
    ...createArchiveRestoreActivities({ engines: deps.engines, ssh: deps.ssh }),
    ...createNotifyActivities(deps),
    ...createTlsActivities(),
    ...createCertificateActivities(deps),
    ...createDnsActivities(),
    ...createReplicationActivities({ ssh: deps.ssh }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export { createDeps, closeDeps, type ActivityDeps } from './deps';
