// Resolves an inventory + input into the fully explicit deploy plan that is recorded in history.
import { engineHealthCheck, engineResources, splitImageReference } from './commands/docker';
import type { UpdateDependencyInput } from './inputs';
import { PROXY_CONFIG_PATH, renderProxyConfig, TLS_DIR } from './commands/nginx';
import type { BackupConfig, Inventory } from './inventory';
import {
  dependencyContainerName,
  isValidVersion,
  labelsFor,
  LABEL,
  migrateContainerName,
  networkName,
  proxyContainerName,
  proxyTlsVolumeName,
  volumeName,
  webContainerName,
} from './naming';
import type { ApprovalPolicy, BackupPlan, BackupPolicy, ContainerSpec, DatabaseTarget, DependencyPlan, DependencyUpdatePlan, DeployPlan, FirstDeployInput, FleetContainer, HostSpec, OneOffPlan, PreflightRequest, ReplicaPlan, RollingUpdateInput, RunbookTarget, StorageSpec, UpdatePlan } from './types';

/** Bad input: the runbook stops before any side effect. */
export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

export function hostSpec(inventory: Inventory, name: string): HostSpec {
  const host = inventory.hosts[name];
  if (!host) throw new PlanError(`unknown host "${name}"`);
  return {
    name,
    address: host.address ?? host.ssh?.address ?? '127.0.0.1',
    ...(host.ssh ? { ssh: { ...host.ssh } } : {}),
    dockerSocket: host.docker.socketPath,
    minFreeDiskMb: host.minFreeDiskMb,
    ...(host.bindAddress ? { bindAddress: host.bindAddress } : {}),
  };
}

export interface MaintenancePlan {
  app: string;
  env: string;
  proxies: { host: HostSpec; container: string }[];
  maintenance: { retryAfterSeconds: number; pageFile?: string };
}

/** Maintenance mode of an app/env: the proxy on each of its hosts and what they answer. */
export function buildMaintenancePlan(inventory: Inventory, target: RunbookTarget): MaintenancePlan {
  const { app, env } = findTarget(inventory, target);
  return {
    app: target.app,
    env: target.env,
    proxies: env.hosts.map((h) => ({ host: hostSpec(inventory, h), container: proxyContainerName(target.app, target.env) })),
    maintenance: { retryAfterSeconds: app.maintenance.retryAfterSeconds, ...(app.maintenance.pageFile ? { pageFile: app.maintenance.pageFile } : {}) },
  };
}

export function findTarget(inventory: Inventory, target: RunbookTarget) {
  const app = inventory.apps[target.app];
  if (!app) throw new PlanError(`unknown app "${target.app}" (inventory has: ${Object.keys(inventory.apps).join(', ') || 'none'})`);
  const env = app.environments[target.env];
  if (!env) throw new PlanError(`app "${target.app}" has no environment "${target.env}" (it has: ${Object.keys(app.environments).join(', ')})`);
  return { app, env };
}

/** A container of the app's own image (a replica, or the one-off migration). */
export function appContainerSpec(
  app: Inventory['apps'][string],
  o: { app: string; env: string; version: string; name: string; role: 'web' | 'migrate'; labels: Record<string, string>; restart: boolean },
): ContainerSpec {
  const env = app.environments[o.env];
  const { envFile, secretFiles } = appFiles(app, o.env);
  const healthCheck = o.role === 'web' ? engineHealthCheck(app.healthCheck) : undefined;
  const resources = engineResources(env?.resources ?? app.resources);
  return {
    name: o.name,
    image: `${app.image}:${o.version}`,
    role: o.role,
    labels: labelsFor(o.app, o.env, o.role, { [LABEL.version]: o.version, ...o.labels }),
    env: { APP_ENV: o.env },
    envFiles: envFile ? [{ path: envFile.path, required: envFile.required }] : [],
    network: networkName(o.app, o.env),
    aliases: [],
    volumes: [],
    binds: secretBinds(secretFiles),
    ports: [],
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    restart: o.restart,
    ...(healthCheck ? { healthCheck } : {}),
    ...(resources ? { resources } : {}),
  };
}

/** The app's env file and secret files in an environment: the environment's replace the app's. */
export function appFiles(app: Inventory['apps'][string], envName: string): { envFile?: { path: string; required: string[] }; secretFiles: { path: string; target: string }[] } {
  const env = app.environments[envName];
  const envFile = env?.envFile ?? app.envFile;
  return { ...(envFile ? { envFile } : {}), secretFiles: env?.secretFiles ?? app.secretFiles };
}

const secretBinds = (files: { path: string; target: string }[]): ContainerSpec['binds'] => files.map((s) => ({ source: s.path, target: s.target, readOnly: true }));

/** The dependency containers of an app/env (on the environment's first host), as the inventory declares them. */
function dependencyPlans(inventory: Inventory, appName: string, envName: string, primary: HostSpec, runLabel: Record<string, string>): DependencyPlan[] {
  const { app } = findTarget(inventory, { app: appName, env: envName });
  const network = networkName(appName, envName);
  return app.dependencies.map((dep) => {
    const healthCheck = engineHealthCheck(dep.healthCheck);
    const resources = engineResources(dep.resources);
    return {
      name: dep.name,
      host: primary.name,
      healthTimeoutSeconds: dep.healthTimeoutSeconds,
      container: {
        name: dependencyContainerName(appName, envName, dep.name),
        image: dep.image,
        role: 'dependency' as const,
        labels: labelsFor(appName, envName, 'dependency', { ...runLabel, 'runbook.dependency': dep.name }),
        env: dep.env,
        envFiles: dep.envFile ? [{ path: dep.envFile.path, required: dep.envFile.required }] : [],
        ...(dep.command ? { cmd: dep.command } : {}),
        network,
        aliases: [dep.name],
        volumes: Object.entries(dep.volumes).map(([vol, target]) => ({ name: volumeName(appName, envName, vol), target })),
        binds: secretBinds(dep.secretFiles),
        ports: [],
        stopTimeoutSeconds: app.stopTimeoutSeconds,
        restart: true,
        ...(healthCheck ? { healthCheck } : {}),
        ...(resources ? { resources } : {}),
      },
    };
  });
}

/**
 * The first deploy plan. `fleet` is the app/env's web containers as the engines report them (labels):
 * when a rolling update or rollback has moved the replicas to versioned names, the plan converges on
 * that fleet — its containers, its version, no migration (it already serves) — so a deploy of an
 * app/env that runs is a no-op, whatever its containers are named. Another version is refused.
 */
export function buildDeployPlan(inventory: Inventory, input: FirstDeployInput, runId: string, fleet: FleetContainer[] = []): DeployPlan {
  const { app: appName, env: envName } = input;
  const { app, env } = findTarget(inventory, input);
  const running = fleet.filter((c) => c.state === 'running');
  const renamed = running.some((c) => c.name !== webContainerName(appName, envName, c.replica));
  let version = input.version ?? env.version;
  if (renamed) {
    const versions = [...new Set(running.map((c) => c.version))];
    const list = running.map((c) => `${c.name} ${c.version} on ${c.host}`).join(', ');
    if (versions.length !== 1) throw new PlanError(`${appName}/${envName} runs mixed versions (${list}): bring it to one version first (runbook rollback ${appName} --env ${envName} --to <version>)`);
    if (input.version !== undefined && input.version !== versions[0]) {
      throw new PlanError(`${appName}/${envName} is already deployed at ${versions[0]} (${list}): change its version with \`runbook update ${appName} --env ${envName} --version ${input.version}\``);
    }
    version = versions[0];
  }
  if (!version) throw new PlanError(`no version given and apps.${appName}.environments.${envName}.version is not set`);
  if (!isValidVersion(version)) throw new PlanError(`version "${version}" is not a valid image tag`);
  /** The container serving replica `index` on `host` now (converging), else the first-deploy name. */
  const replicaName = (host: string, index: number): string => {
    if (!renamed) return webContainerName(appName, envName, index);
    const serving = running.find((c) => c.host === host && c.replica === index && c.version === version);
    return serving?.name ?? versionedWebContainerName(appName, envName, index, version!);
  };

  const hosts = env.hosts.map((h) => hostSpec(inventory, h));
  const primary = hosts[0];
  const network = networkName(appName, envName);
  const image = `${app.image}:${version}`;
  const runLabel = { [LABEL.runId]: runId };
  const files = appFiles(app, envName);
  const appEnvFiles = files.envFile ? [{ path: files.envFile.path, required: files.envFile.required }] : [];

  const appContainer = (name: string, role: 'web' | 'migrate', labels: Record<string, string>, restart: boolean): ContainerSpec =>
    appContainerSpec(app, { app: appName, env: envName, version, name, role, labels: { ...runLabel, ...labels }, restart });

  const dependencies = dependencyPlans(inventory, appName, envName, primary, runLabel);

  const replicas: ReplicaPlan[] = [];
  hosts.forEach((host, h) => {
    for (let r = 0; r < env.replicas; r++) {
      const index = h * env.replicas + r + 1;
      replicas.push({
        host: host.name,
        index,
        container: appContainer(replicaName(host.name, index), 'web', { 'runbook.replica': String(index) }, true),
      });
    }
  });

  const proxies = hosts.map((host) => ({
    host: host.name,
    url: `http://${host.address}:${env.proxy.hostPort}`,
    config: renderProxyConfig({
      app: appName,
      env: envName,
      upstreams: replicas.filter((r) => r.host === host.name).map((r) => `${r.container.name}:${app.port}`),
      serverName: env.proxy.domain,
    }),
    container: {
      name: proxyContainerName(appName, envName),
      image: app.proxyImage,
      role: 'proxy' as const,
      labels: labelsFor(appName, envName, 'proxy', runLabel),
      env: {},
      envFiles: [],
      network,
      aliases: [],
      // certificates and HTTPS snippets survive the proxy container (runbook 2 writes them)
      volumes: [{ name: proxyTlsVolumeName(appName, envName), target: TLS_DIR }],
      binds: [],
      ports: [
        { hostIp: host.bindAddress ?? env.proxy.bindAddress, hostPort: env.proxy.hostPort, containerPort: 80 },
        ...(env.proxy.httpsPort !== undefined ? [{ hostIp: host.bindAddress ?? env.proxy.bindAddress, hostPort: env.proxy.httpsPort, containerPort: 443 }] : []),
      ],
      stopTimeoutSeconds: app.stopTimeoutSeconds,
      restart: true,
    },
  }));

  return {
    app: appName,
    env: envName,
    version,
    image,
    hosts,
    network,
    volumes: dependencies.flatMap((d) => d.container.volumes.map((v) => ({ host: d.host, name: v.name }))),
    dependencies,
    pulls: hosts.map((h) => ({ host: h.name, image })),
    ...(app.migrate && !renamed
      ? {
          migrate: {
            host: primary.name,
            timeoutSeconds: app.migrate.timeoutSeconds,
            container: { ...appContainer(migrateContainerName(appName, envName, version), 'migrate', {}, false), cmd: app.migrate.command },
          },
        }
      : {}),
    replicas,
    healthTimeoutSeconds: app.healthCheck.timeoutSeconds,
    proxies,
    smokeTests: proxies.map((p) => ({
      url: `${p.url}${app.smokeTest.path}`,
      ...(env.proxy.domain ? { hostHeader: env.proxy.domain } : {}),
      expectStatus: app.smokeTest.expectStatus,
      ...(app.smokeTest.expectBody !== undefined ? { expectBody: app.smokeTest.expectBody.replace(/\{\{version\}\}/g, version) } : {}),
    })),
    envFiles: [...appEnvFiles, ...dependencies.flatMap((d) => d.container.envFiles)],
    secretFiles: [
      ...hosts.flatMap((h) => files.secretFiles.map((s) => ({ host: h.name, path: s.path }))),
      ...app.dependencies.flatMap((d) => d.secretFiles.map((s) => ({ host: primary.name, path: s.path }))),
    ],
    portsToCheck: hosts.map((h) => ({
      host: h.name,
      bindAddress: h.bindAddress ?? env.proxy.bindAddress,
      port: env.proxy.hostPort,
      owner: proxyContainerName(appName, envName),
    })),
    ...(env.proxy.domain ? { domain: { name: env.proxy.domain, host: primary.name, address: primary.address } } : {}),
    approvals: { approvers: env.approvers, minApprovals: env.minApprovals },
    goLiveApproval: input.goLiveApproval ?? env.goLiveApproval,
  };
}

/** One preflight request per host; worker-side checks (env files, domain) go with the first host. */
export function preflightRequests(plan: DeployPlan): PreflightRequest[] {
  return plan.hosts.map((host, i) => ({
    host,
    envFiles: i === 0 ? plan.envFiles : [],
    secretFiles: plan.secretFiles.filter((s) => s.host === host.name).map((s) => s.path),
    ports: plan.portsToCheck.filter((p) => p.host === host.name).map(({ bindAddress, port, owner }) => ({ bindAddress, port, owner })),
    ...(i === 0 && plan.domain ? { domain: { name: plan.domain.name, address: plan.domain.address } } : {}),
  }));
}

/** The backup plan of an app/env: databases with their location, storage, retention. The schedule lives in Temporal (`runbook schedule backup`). */
/** Where the app's backups (and a cutover's rollback export) are written. */
export function backupStorageSpec(inventory: Inventory, backup: BackupConfig): StorageSpec {
  const s = backup.storage;
  if (s.type === 'directory') {
    const host = s.host !== undefined ? hostSpec(inventory, s.host) : undefined;
    return { type: 'directory', path: s.path, ...(host?.ssh ? { host } : {}) };
  }
  return {
    type: 's3',
    bucket: s.bucket,
    prefix: s.prefix,
    region: s.region,
    forcePathStyle: s.forcePathStyle,
    ...(s.endpoint !== undefined ? { endpoint: s.endpoint } : {}),
    ...(s.accessKeyIdFile !== undefined ? { accessKeyIdFile: s.accessKeyIdFile } : {}),
    ...(s.secretAccessKeyFile !== undefined ? { secretAccessKeyFile: s.secretAccessKeyFile } : {}),
  };
}

export function buildBackupPlan(inventory: Inventory, target: RunbookTarget): BackupPlan {
  const { app, env } = findTarget(inventory, target);
  const backup = app.backup;
  if (!backup) throw new PlanError(`app "${target.app}" has no backup section in the inventory (apps.${target.app}.backup)`);
  const firstHost = hostSpec(inventory, env.hosts[0]);
  const files = appFiles(app, target.env);
  const targets: DatabaseTarget[] = backup.databases.map((db) => ({
    name: db.name,
    database: db.database,
    user: db.user,
    ...(db.passwordFile !== undefined ? { passwordFile: db.passwordFile } : {}),
    location: db.server
      ? { kind: 'server' as const, address: db.server.address, port: db.server.port }
      : { kind: 'container' as const, host: firstHost, container: dependencyContainerName(target.app, target.env, db.dependency!), port: db.port },
  }));
  const storage = backupStorageSpec(inventory, backup);
  const retention: BackupPolicy = Object.fromEntries(Object.entries(backup.retention).filter(([, v]) => v !== undefined));
  const web = env.hosts.map((h) => ({
    host: hostSpec(inventory, h),
    containers: Array.from({ length: env.replicas }, (_, i) => webContainerName(target.app, target.env, env.hosts.indexOf(h) * env.replicas + i + 1)),
  }));
  return {
    app: target.app,
    env: target.env,
    targets,
    storage,
    retention,
    checksums: backup.checksums,
    ...(backup.notify ? { notify: { webhookUrlFile: backup.notify.webhookUrlFile } } : {}),
    web,
    proxies: env.hosts.map((h) => ({ host: hostSpec(inventory, h), container: proxyContainerName(target.app, target.env) })),
    healthUrl: `http://${env.proxy.bindAddress === '0.0.0.0' ? '127.0.0.1' : env.proxy.bindAddress}:${env.proxy.hostPort}${app.healthCheck.path}`,
    maintenance: { retryAfterSeconds: app.maintenance.retryAfterSeconds, ...(app.maintenance.pageFile ? { pageFile: app.maintenance.pageFile } : {}) },
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    healthTimeoutSeconds: app.healthCheck.timeoutSeconds,
    approval: { approvers: [...env.approvers], minApprovals: env.minApprovals },
    archives: {
      volumes: backup.archives.volumes.map((v) => ({ host: firstHost, name: v, volume: volumeName(target.app, target.env, v) })),
      ...(backup.archives.config
        ? {
            config: {
              files: [
                ...(files.envFile ? [files.envFile.path] : []),
                ...app.dependencies.flatMap((d) => [...(d.envFile ? [d.envFile.path] : []), ...d.secretFiles.map((f) => f.path)]),
                ...files.secretFiles.map((f) => f.path),
                ...backup.archives.extraConfigFiles,
              ],
              proxies: env.hosts.map((h) => ({ host: hostSpec(inventory, h), container: proxyContainerName(target.app, target.env), path: PROXY_CONFIG_PATH })),
            },
          }
        : {}),
      helperImage: backup.helperImage,
    },
  };
}

/** The container of replica `index` at `version` during rolling updates: `<app>-<env>-web-<n>-<version>`. */
export const versionedWebContainerName = (app: string, env: string, index: number, version: string): string => `${webContainerName(app, env, index)}-${version}`;

/**
 * The rolling update plan: every replica slot with the container serving it now (from the fleet's
 * labels), the container of the target version and the one to roll back to. The running version
 * must be one version across the fleet (the recorded rollback target), unless this is a rollback.
 */
export function buildUpdatePlan(inventory: Inventory, input: RollingUpdateInput, fleet: FleetContainer[], runId: string): UpdatePlan {
  const { app: appName, env: envName } = input;
  const { app, env } = findTarget(inventory, input);
  const hosts = env.hosts.map((h) => hostSpec(inventory, h));
  const running = fleet.filter((c) => c.state === 'running');
  if (running.length === 0) throw new PlanError(`${appName}/${envName} has no running replica: deploy it first (runbook deploy ${appName} --env ${envName})`);
  let version = input.version;
  if (version === undefined) {
    const previous = [...new Set(running.map((c) => c.previousVersion))];
    if (!input.isRollback || previous.length !== 1 || previous[0] === undefined) {
      throw new PlanError(`no version given${input.isRollback ? ' and the running containers do not record one previous version: say which (--to <version>)' : ''}`);
    }
    version = previous[0];
  }
  if (!isValidVersion(version)) throw new PlanError(`version "${version}" is not a valid image tag`);
  input = { ...input, version };
  const target = version;

  const slots: { index: number; host: string; current?: FleetContainer }[] = [];
  hosts.forEach((host, h) => {
    for (let r = 0; r < env.replicas; r++) {
      const index = h * env.replicas + r + 1;
      // several for one replica (an interrupted run): prefer the one of the target version, else any
      const candidates = running.filter((c) => c.host === host.name && c.replica === index);
      const current = candidates.find((c) => c.version === target) ?? candidates[0];
      slots.push({ index, host: host.name, current });
    }
  });
  const versions = [...new Set(slots.flatMap((s) => (s.current ? [s.current.version] : [])))];
  let fromVersion: string;
  if (versions.length === 1) fromVersion = versions[0];
  else if (input.isRollback) fromVersion = versions.find((v) => v !== target) ?? target;
  else {
    const list = slots.map((s) => `${s.current?.name ?? `replica ${s.index} missing`}${s.current ? ` ${s.current.version}` : ''}`).join(', ');
    throw new PlanError(`${appName}/${envName} runs mixed versions (${list}): bring it to one version first (runbook rollback ${appName} --env ${envName} --to <version>)`);
  }
  const spec = (index: number, version: string, labels: Record<string, string>) =>
    appContainerSpec(app, {
      app: appName,
      env: envName,
      version,
      name: versionedWebContainerName(appName, envName, index, version),
      role: 'web',
      labels: { [LABEL.runId]: runId, 'runbook.replica': String(index), ...labels },
      restart: true,
    });
  const chosen = new Set(slots.flatMap((s) => (s.current ? [`${s.host}/${s.current.name}`] : [])));
  const replicaIndexes = new Set(slots.map((s) => s.index));
  return {
    app: appName,
    env: envName,
    version: target,
    image: `${app.image}:${target}`,
    fromVersion,
    hosts,
    slots: slots.map((s) => ({
      index: s.index,
      host: s.host,
      ...(s.current ? { current: { name: s.current.name, version: s.current.version } } : {}),
      next: spec(s.index, target, { 'runbook.previous-version': fromVersion }),
      rollback: spec(s.index, fromVersion, s.current?.previousVersion ? { 'runbook.previous-version': s.current.previousVersion } : {}),
    })),
    proxies: hosts.map((h) => ({ host: h.name, container: proxyContainerName(appName, envName), url: `http://${h.address}:${env.proxy.hostPort}` })),
    appPort: app.port,
    ...(env.proxy.domain ? { serverName: env.proxy.domain } : {}),
    healthTimeoutSeconds: app.healthCheck.timeoutSeconds,
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    smokeTest: {
      path: app.smokeTest.path,
      expectStatus: app.smokeTest.expectStatus,
      ...(app.smokeTest.expectBody !== undefined ? { expectBody: app.smokeTest.expectBody } : {}),
      ...(env.proxy.domain ? { hostHeader: env.proxy.domain } : {}),
    },
    healthPath: app.healthCheck.path,
    backup: input.backup ?? (app.backup !== undefined && !input.isRollback),
    ...(app.migrate && !input.isRollback ? { migrate: migrationPlan(app, { app: appName, env: envName }, target, hosts[0].name, runId)! } : {}),
    approvals: { approvers: env.approvers, minApprovals: env.minApprovals },
    unchanged: slots.every((s) => s.current?.version === target) && fleet.every((c) => chosen.has(`${c.host}/${c.name}`)),
    // web containers that are not the current one of a replica, or of a replica that no longer exists
    strays: fleet.filter((c) => !chosen.has(`${c.host}/${c.name}`) || !replicaIndexes.has(c.replica)).map((c) => ({ host: c.host, name: c.name })),
  };
}

/** The proxy config of one host, from the container now serving each of its replicas. */
export function hostProxyConfig(plan: UpdatePlan, host: string, live: Record<number, string>): string {
  return renderProxyConfig({
    app: plan.app,
    env: plan.env,
    upstreams: plan.slots.filter((s) => s.host === host && live[s.index] !== undefined).map((s) => `${live[s.index]}:${plan.appPort}`),
    ...(plan.serverName ? { serverName: plan.serverName } : {}),
  });
}


export interface HousekeepingPlan {
  app: string;
  env: string;
  /** The app's image repository (apps.<app>.image); its tags are the versions. */
  repository: string;
  hosts: HostSpec[];
}

/** Housekeeping of an app/env: its image repository and the hosts of the environment. */
export function buildHousekeepingPlan(inventory: Inventory, target: RunbookTarget): HousekeepingPlan {
  const { app, env } = findTarget(inventory, target);
  return { app: target.app, env: target.env, repository: app.image, hosts: env.hosts.map((h) => hostSpec(inventory, h)) };
}

export interface StopPlan {
  app: string;
  env: string;
  hosts: HostSpec[];
  /** The named volumes of the app/env on each host: kept, unless removing them is asked for and approved. */
  volumes: { host: string; name: string }[];
  stopTimeoutSeconds: number;
  approvals: ApprovalPolicy;
}

/**
 * Stopping an app/env: its hosts (its containers are found there by label), the volumes it made (the
 * dependencies' on the first host, where they run; each proxy's TLS volume) and who approves removing them.
 */
export function buildStopPlan(inventory: Inventory, target: RunbookTarget): StopPlan {
  const { app, env } = findTarget(inventory, target);
  const [first] = env.hosts;
  return {
    app: target.app,
    env: target.env,
    hosts: env.hosts.map((h) => hostSpec(inventory, h)),
    volumes: [
      ...app.dependencies.flatMap((d) => Object.keys(d.volumes).map((v) => ({ host: first, name: volumeName(target.app, target.env, v) }))),
      ...env.hosts.map((h) => ({ host: h, name: proxyTlsVolumeName(target.app, target.env) })),
    ],
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    approvals: { approvers: env.approvers, minApprovals: env.minApprovals },
  };
}

/**
 * Replacing one dependency's container with the image the inventory declares (\`runbook update
 * --service\`). The inventory is what runs: a version that is not the inventory's is refused, saying
 * what to change. \`database\`: a backup database lives in it (an approval gate, a backup first).
 */
export function buildDependencyUpdatePlan(inventory: Inventory, input: UpdateDependencyInput, runId: string): DependencyUpdatePlan {
  const { app, env } = findTarget(inventory, input);
  const at = app.dependencies.findIndex((d) => d.name === input.service);
  if (at < 0) throw new PlanError(`app "${input.app}" has no dependency "${input.service}" (it has: ${app.dependencies.map((d) => d.name).join(', ') || 'none'})`);
  const declared = app.dependencies[at].image;
  if (input.version !== undefined && splitImageReference(declared).tag !== input.version) {
    const wanted = `${splitImageReference(declared).repository}:${input.version}`;
    throw new PlanError(`apps.${input.app}.dependencies.${at}.image is ${declared}: set it to ${wanted} first (the inventory is what runs; a deploy would otherwise refuse the container)`);
  }
  const primary = hostSpec(inventory, env.hosts[0]);
  const dependency = dependencyPlans(inventory, input.app, input.env, primary, { [LABEL.runId]: runId })[at];
  const database = (app.backup?.databases ?? []).some((db) => db.dependency === input.service);
  return {
    app: input.app,
    env: input.env,
    service: input.service,
    host: primary,
    dependency,
    database,
    backup: input.backup ?? (database && app.backup !== undefined),
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    approvals: { approvers: env.approvers, minApprovals: env.minApprovals },
  };
}

/**
 * The app's migration (\`apps.<app>.migrate\`) of \`version\` as a one-off container on \`host\`, or
 * undefined when the app has none. \`nameSuffix\` tells apart a second run of the same version's
 * migration (after a restore) from the one its release ran.
 */
export function migrationPlan(app: Inventory['apps'][string], target: RunbookTarget, version: string, host: string, runId: string, nameSuffix = ''): OneOffPlan | undefined {
  if (!app.migrate) return undefined;
  const name = `${migrateContainerName(target.app, target.env, version)}${nameSuffix}`;
  return {
    host,
    timeoutSeconds: app.migrate.timeoutSeconds,
    container: { ...appContainerSpec(app, { app: target.app, env: target.env, version, name, role: 'migrate', labels: { [LABEL.runId]: runId }, restart: false }), cmd: app.migrate.command },
  };
}

/** The migration to run on a restored database, for the version the app runs (none: the app has no migrate). */
export function buildRestoreMigrationPlan(inventory: Inventory, target: RunbookTarget, version: string, runId: string, runTag: string): OneOffPlan | undefined {
  const { app, env } = findTarget(inventory, target);
  if (!isValidVersion(version)) throw new PlanError(`version "${version}" is not a valid image tag`);
  // one container name per restore: a later restore never mistakes this one's exit 0 for its own
  return migrationPlan(app, target, version, env.hosts[0], runId, `-restore-${runTag.replace(/[^0-9]/g, '').slice(0, 14)}`);
}
