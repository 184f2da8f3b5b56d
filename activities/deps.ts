// What activities need from the outside world, injected so tests can supply their own.
import os from 'node:os';
import path from 'node:path';
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
  /** Where each notification's delivery is recorded, so a retried activity never posts it twice. */
  notifyStateDir: string;
  /** The Temporal Web UI's address for links in notifications, when the inventory's notify has none. */
  uiUrl?: string;
}

/** `$RUNBOOK_STATE_DIR` (default ~/.local/state/temporal-runbooks): the worker's own durable state. */
export function workerStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.RUNBOOK_STATE_DIR ?? path.join(os.homedir(), '.local', 'state', 'temporal-runbooks');
}

/** `socketParent`: where the engines' private socket directory is made (default: the system's temp directory). */
export function createDeps(options: { inventoryPath: string; temporal?: ActivityDeps['temporal']; socketParent?: string; stateDir?: string; uiUrl?: string }): ActivityDeps {
  const ssh = new SshPool();
  const uiUrl = options.uiUrl ?? process.env.TEMPORAL_UI_URL;
  return {
    inventoryPath: options.inventoryPath,
    ssh,
    engines: new DockerEngines(ssh, options.socketParent),
    notifyStateDir: path.join(options.stateDir ?? workerStateDir(), 'notifications'),
    ...(uiUrl ? { uiUrl } : {}),
    ...(options.temporal ? { temporal: options.temporal } : {}),
  };
}

export async function closeDeps(deps: ActivityDeps): Promise<void> {
  await deps.engines.closeAll();
  await deps.ssh.closeAll();
}
