// Resolves an inventory + input into the fully explicit deploy plan that is recorded in history.
import { PROXY_CONFIG_PATH, renderProxyConfig } from './commands/nginx';
import type { Inventory } from './inventory';
import {
  dependencyContainerName,
  isValidVersion,
  labelsFor,
  LABEL,
  migrateContainerName,
  networkName,
  proxyContainerName,
  volumeName,
  webContainerName,
} from './naming';
import type { BackupPlan, BackupPolicy, ContainerSpec, DatabaseTarget, DeployPlan, FirstDeployInput, HostSpec, PreflightRequest, ReplicaPlan, RunbookTarget, StorageSpec } from './types';

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
  };
}

export function findTarget(inventory: Inventory, target: RunbookTarget) {
  const app = inventory.apps[target.app];
  if (!app) throw new PlanError(`unknown app "${target.app}" (inventory has: ${Object.keys(inventory.apps).join(', ') || 'none'})`);
  const env = app.environments[target.env];
  if (!env) throw new PlanError(`app "${target.app}" has no environment "${target.env}" (it has: ${Object.keys(app.environments).join(', ')})`);
  return { app, env };
}

export function buildDeployPlan(inventory: Inventory, input: FirstDeployInput, runId: string): DeployPlan {
  const { app: appName, env: envName } = input;
  const { app, env } = findTarget(inventory, input);
  const version = input.version ?? env.version;
  if (!version) throw new PlanError(`no version given and apps.${appName}.environments.${envName}.version is not set`);
  if (!isValidVersion(version)) throw new PlanError(`version "${version}" is not a valid image tag`);

  const hosts = env.hosts.map((h) => hostSpec(inventory, h));
  const primary = hosts[0];
  const network = networkName(appName, envName);
  const image = `${app.image}:${version}`;
  const runLabel = { [LABEL.runId]: runId };
  const appEnvFiles = app.envFile ? [{ path: app.envFile.path, required: app.envFile.required }] : [];

  /** A container of the app's own image (a replica, or the one-off migration). */
  const appContainer = (name: string, role: 'web' | 'migrate', labels: Record<string, string>, restart: boolean): ContainerSpec => ({
    name,
    image,
    role,
    labels: labelsFor(appName, envName, role, { ...runLabel, [LABEL.version]: version, ...labels }),
    env: { APP_ENV: envName },
    envFiles: appEnvFiles,
    network,
    aliases: [],
    volumes: [],
    binds: app.secretFiles.map((s) => ({ source: s.path, target: s.target, readOnly: true })),
    ports: [],
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    restart,
  });

  const dependencies = app.dependencies.map((dep) => ({
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
      network,
      aliases: [dep.name],
      volumes: Object.entries(dep.volumes).map(([vol, target]) => ({ name: volumeName(appName, envName, vol), target })),
      binds: [],
      ports: [],
      stopTimeoutSeconds: app.stopTimeoutSeconds,
      restart: true,
    },
  }));

  const replicas: ReplicaPlan[] = [];
  hosts.forEach((host, h) => {
    for (let r = 0; r < env.replicas; r++) {
      const index = h * env.replicas + r + 1;
      replicas.push({
        host: host.name,
        index,
        container: appContainer(webContainerName(appName, envName, index), 'web', { 'runbook.replica': String(index) }, true),
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
      volumes: [],
      binds: [],
      ports: [{ hostIp: env.proxy.bindAddress, hostPort: env.proxy.hostPort, containerPort: 80 }],
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
    ...(app.migrate
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
    secretFiles: hosts.flatMap((h) => app.secretFiles.map((s) => ({ host: h.name, path: s.path }))),
    portsToCheck: hosts.map((h) => ({
      host: h.name,
      bindAddress: env.proxy.bindAddress,
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
export function buildBackupPlan(inventory: Inventory, target: RunbookTarget): BackupPlan {
  const { app, env } = findTarget(inventory, target);
  const backup = app.backup;
  if (!backup) throw new PlanError(`app "${target.app}" has no backup section in the inventory (apps.${target.app}.backup)`);
  const firstHost = hostSpec(inventory, env.hosts[0]);
  const targets: DatabaseTarget[] = backup.databases.map((db) => ({
    name: db.name,
    database: db.database,
    user: db.user,
    ...(db.passwordFile !== undefined ? { passwordFile: db.passwordFile } : {}),
    location: db.server
      ? { kind: 'server' as const, address: db.server.address, port: db.server.port }
      : { kind: 'container' as const, host: firstHost, container: dependencyContainerName(target.app, target.env, db.dependency!), port: db.port },
  }));
  const s = backup.storage;
  let storage: StorageSpec;
  if (s.type === 'directory') {
    const host = s.host !== undefined ? hostSpec(inventory, s.host) : undefined;
    storage = { type: 'directory', path: s.path, ...(host?.ssh ? { host } : {}) };
  } else {
    storage = {
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
    healthUrl: `http://${env.proxy.bindAddress === '0.0.0.0' ? '127.0.0.1' : env.proxy.bindAddress}:${env.proxy.hostPort}${app.healthCheck.path}`,
    stopTimeoutSeconds: app.stopTimeoutSeconds,
    healthTimeoutSeconds: app.healthCheck.timeoutSeconds,
    approval: { approvers: [...env.approvers], minApprovals: env.minApprovals },
    archives: {
      volumes: backup.archives.volumes.map((v) => ({ host: firstHost, name: v, volume: volumeName(target.app, target.env, v) })),
      ...(backup.archives.config
        ? {
            config: {
              files: [
                ...(app.envFile ? [app.envFile.path] : []),
                ...app.dependencies.flatMap((d) => (d.envFile ? [d.envFile.path] : [])),
                ...app.secretFiles.map((f) => f.path),
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
