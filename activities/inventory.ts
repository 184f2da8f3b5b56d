// Reads the inventory file and resolves the plan: the first activity of every runbook.
import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { DnsInputError } from '../common/commands/dns';
import type { CutoverPlan } from '../common/cutover';
import { buildCutoverPlan } from '../common/cutover-plan';
import type { DnsCutoverInput, UpdateDependencyInput, UpdateFromRegistryInput } from '../common/inputs';
import { InventoryError, parseInventory, type Inventory } from '../common/inventory';
import { buildBackupPlan, buildDependencyUpdatePlan, buildRestoreMigrationPlan, buildDeployPlan, buildHousekeepingPlan, buildMaintenancePlan, buildUpdatePlan, findTarget, hostSpec, PlanError, type HousekeepingPlan, type MaintenancePlan, buildStopPlan, type StopPlan, buildTrackedImagePlan } from '../common/plan';
import type { BackupPlan, DependencyUpdatePlan, DeployPlan, OneOffPlan, FirstDeployInput, FleetContainer, RollingUpdateInput, RunbookTarget, TrackedUpdate, UpdatePlan } from '../common/types';
import { LABEL } from '../common/naming';
import { activityInfoOrUndefined } from './context';
import type { ActivityDeps } from './deps';
import { createDockerActivities, engineFailure } from './docker';

export async function loadInventory(path: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot read inventory ${path}: ${(err as Error).message}`, 'InvalidInventory');
  }
  try {
    return parseInventory(text);
  } catch (err) {
    if (err instanceof InventoryError) throw ApplicationFailure.nonRetryable(`${path}: ${err.message}`, 'InvalidInventory');
    throw err;
  }
}

/**
 * A failed rollout of \`version\` by the update schedule (its rollingUpdate carries the version in
 * its memo): a broken digest is not rolled out, rolled back and alerted again at every check.
 */
async function failedRollout(deps: ActivityDeps, app: string, env: string, version: string): Promise<TrackedUpdate['failedBefore']> {
  if (!deps.temporal) return undefined;
  const query = `WorkflowType = 'rollingUpdate' AND RunbookApp = '${app}' AND RunbookEnv = '${env}' AND ExecutionStatus = 'Failed'`;
  let seen = 0;
  for await (const wf of deps.temporal.client.workflow.list({ query })) {
    if (wf.memo?.trackedVersion === version) return { workflowId: wf.workflowId, runId: wf.runId, at: (wf.closeTime ?? wf.startTime).toISOString() };
    if (++seen >= 50) break;
  }
  return undefined;
}

/** Runs a plan builder: what it refuses (a PlanError, a DnsInputError) is bad input, not retried. */
async function planOrInvalidInput<T>(build: () => Promise<T>): Promise<T> {
  try {
    return await build();
  } catch (err) {
    if (err instanceof PlanError || err instanceof DnsInputError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInput');
    throw err;
  }
}

export function createInventoryActivities(deps: ActivityDeps) {
  return {
    /** Reads the inventory and returns the fully resolved deploy plan (recorded in history). */
    async resolveDeployPlan(input: FirstDeployInput): Promise<DeployPlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      const runId = activityInfoOrUndefined()?.workflowExecution?.runId ?? 'direct';
      return planOrInvalidInput(async () => {
        // The fleet as it runs (labels): after a rolling update the plan converges on its versioned replicas.
        const { env } = findTarget(inventory, input);
        const docker = createDockerActivities(deps.engines, async () => []);
        // an unreachable host is reported by the preflight, with its reason
        const fleet = (await Promise.all(env.hosts.map((h) => docker.inspectFleet({ host: hostSpec(inventory, h), app: input.app, env: input.env }).catch(() => [])))).flat();
        const plan = buildDeployPlan(inventory, input, runId, fleet);
        return plan;
      });
    },

    /** Reads the inventory and the running fleet (container labels on every host); returns the update plan. */
    async resolveUpdatePlan(input: RollingUpdateInput): Promise<UpdatePlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      const runId = activityInfoOrUndefined()?.workflowExecution?.runId ?? 'direct';
      return planOrInvalidInput(async () => {
        const { env } = findTarget(inventory, input);
        const docker = createDockerActivities(deps.engines, async () => []);
        const fleet: FleetContainer[] = (await Promise.all(env.hosts.map((h) => docker.inspectFleet({ host: hostSpec(inventory, h), app: input.app, env: input.env })))).flat();
        return buildUpdatePlan(inventory, input, fleet, runId);
      });
    },

    /** The backup plan of an app/env: databases, storage, retention, schedule (recorded in history). */
    async resolveBackupPlan(target: RunbookTarget): Promise<BackupPlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      return planOrInvalidInput(async () => buildBackupPlan(inventory, target));
    },

    /** The proxies of an app/env and what they answer in maintenance mode (recorded in history). */
    async resolveMaintenancePlan(target: RunbookTarget): Promise<MaintenancePlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      return planOrInvalidInput(async () => buildMaintenancePlan(inventory, target));
    },

    /** The hosts and volumes of an app/env to stop (recorded in history). */
    /**
     * The update Schedule's question: the digest the registry has for the tracked tag (asked through
     * the first host's engine, with its registry settings and credentials), and whether every
     * running replica already runs it (its image's digests, not its label: a tag deployed by hand
     * at that digest counts as current).
     */
    async resolveTrackedUpdate(input: UpdateFromRegistryInput): Promise<TrackedUpdate> {
      const inventory = await loadInventory(deps.inventoryPath);
      const plan = await planOrInvalidInput(async () => buildTrackedImagePlan(inventory, input));
      const reference = `${plan.repository}:${plan.tag}`;
      let digest: string;
      try {
        const engine = await deps.engines.engine(plan.host);
        digest = (await engine.getImage(reference).distribution()).Descriptor.digest;
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404 || status === 401 || status === 403) throw ApplicationFailure.nonRetryable(`the registry has no ${reference} (or refuses to say: HTTP ${status})`, 'TagNotFound');
        throw engineFailure(plan.host, `ask the registry for ${reference}`, err);
      }
      if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new Error(`the registry answered ${JSON.stringify(digest)} for ${reference}, not a sha256 digest`);
      // by image ID, not by the reference the container was made from: that tag may point elsewhere on the host by now
      const versions = new Set<string>();
      let replicas = 0;
      let current = true;
      for (const host of plan.hosts) {
        const engine = await deps.engines.engine(host);
        const running = await engine.listContainers({ filters: { label: [`${LABEL.app}=${input.app}`, `${LABEL.env}=${input.env}`, `${LABEL.role}=web`], status: ['running'] } });
        replicas += running.length;
        for (const c of running) versions.add(c.Labels[LABEL.version] ?? '');
        for (const imageId of new Set(running.map((c) => c.ImageID))) {
          const digests = await engine.getImage(imageId).inspect().then((i) => i.RepoDigests ?? [], () => [] as string[]);
          if (!digests.includes(`${plan.repository}@${digest}`)) current = false;
        }
      }
      const running = [...versions].sort();
      if (replicas === 0) current = false;
      const version = `${plan.tag}@${digest}`;
      const failedBefore = current ? undefined : await failedRollout(deps, input.app, input.env, version);
      return { app: input.app, env: input.env, repository: plan.repository, tag: plan.tag, digest, version, running, current, ...(failedBefore ? { failedBefore } : {}) };
    },

    async resolveStopPlan(target: RunbookTarget): Promise<StopPlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      return planOrInvalidInput(async () => buildStopPlan(inventory, target));
    },

    /** The migration of the version the app runs, to bring a restored database to its schema (null: the app has none). */
    async resolveRestoreMigration(req: RunbookTarget & { version: string; runTag: string }): Promise<OneOffPlan | null> {
      const inventory = await loadInventory(deps.inventoryPath);
      const runId = activityInfoOrUndefined()?.workflowExecution?.runId ?? 'direct';
      return planOrInvalidInput(async () => buildRestoreMigrationPlan(inventory, req, req.version, runId, req.runTag) ?? null);
    },

    /** The dependency as the inventory declares it, to replace the running one (\`runbook update --service\`). */
    async resolveDependencyUpdatePlan(input: UpdateDependencyInput): Promise<DependencyUpdatePlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      const runId = activityInfoOrUndefined()?.workflowExecution?.runId ?? 'direct';
      return planOrInvalidInput(async () => buildDependencyUpdatePlan(inventory, input, runId));
    },

    /** The image repository and hosts of an app/env for housekeeping (recorded in history). */
    async resolveHousekeepingPlan(target: RunbookTarget): Promise<HousekeepingPlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      return planOrInvalidInput(async () => buildHousekeepingPlan(inventory, target));
    },

    /** The cutover plan: both sides, the zone and records, the databases (recorded in history). */
    async resolveCutoverPlan(input: DnsCutoverInput): Promise<CutoverPlan> {
      const inventory = await loadInventory(deps.inventoryPath);
      return planOrInvalidInput(async () => buildCutoverPlan(inventory, input));
    },
  };
}
