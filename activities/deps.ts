// What activities need from the outside world, injected so tests can supply their own.
import type { Client } from '@temporalio/client';
import { DockerEngines } from './docker';
import { SshPool } from './ssh';

export interface ActivityDeps {
  /** Inventory YAML read by the plan activities. */
  inventoryPath: string;
  ssh: SshPool;
  engines: DockerEngines;
  /** For the lock activities (they talk to the lock workflow). */
  temporal?: { client: Client; taskQueue: string };
}

/** `socketParent`: where the engines' private socket directory is made (default: the system's temp directory). */
export function createDeps(options: { inventoryPath: string; temporal?: ActivityDeps['temporal']; socketParent?: string }): ActivityDeps {
  const ssh = new SshPool();
  return { inventoryPath: options.inventoryPath, ssh, engines: new DockerEngines(ssh, options.socketParent), ...(options.temporal ? { temporal: options.temporal } : {}) };
}

export async function closeDeps(deps: ActivityDeps): Promise<void> {
  await deps.engines.closeAll();
  await deps.ssh.closeAll();
}
