// Resolves an inventory + input into the fully explicit deploy plan that is recorded in history.
import { engineHealthCheck, engineResources, splitImageReference } from './commands/docker';
import type { UpdateDependencyInput } from './inputs';
import { PROXY_CONFIG_PATH, renderProxyConfig, TLS_DIR, type ProxyConfigInput } from './commands/nginx';
import type { BackupConfig, DeclaredHealthCheck, Inventory, ResourcesConfig } from './inventory';
import {
  dependencyContainerName,
  isValidVersion,
  labelsFor,
  LABEL,
  migrateContainerName,
  networkName,
  proxyContainerName,
  proxyTlsVolumeName,
  imageAt,
  MAIN_SERVICE,
  replicaContainerName,
  versionDigest,
  versionForNames,
  versionTag,
  volumeName,
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

/** One of the app's services as a release runs it: the main one (\`web\`, the app's own fields) or one of \`services\`. */
export interface ServiceView {
  name: string;
  /** The image repository; the app's version is the tag. */
  repository: string;
  command?: string[];
  port?: number;
  /** Per host (default: the environment's). */
  replicas?: number;
  /** Only on the environment's first host. */
  firstHostOnly?: boolean;
  env: Record<string, string>;
  volumes: Record<string, string>;
  healthCheck: DeclaredHealthCheck & { timeoutSeconds: number };
  resources?: ResourcesConfig;
  route?: { paths: string[]; host?: string };
}

type AppConfig = Inventory['apps'][string];

/** The app's services, the main one first. */
export function appServices(app: AppConfig): ServiceView[] {
  const main: ServiceView = {
    name: MAIN_SERVICE,
    repository: app.image,
    ...(app.command ? { command: app.command } : {}),
    port: app.port,
    env: app.env,
    volumes: app.volumes,
    healthCheck: app.healthCheck,
    ...(app.resources ? { resources: app.resources } : {}),
    route: { paths: ['/'] },
  };
  const others = Object.entries(app.services).map(([name, s]): ServiceView => ({
    name,
    repository: s.image ?? app.image,
    ...(s.command ? { command: s.command } : {}),
    ...(s.port !== undefined ? { port: s.port } : {}),
    ...(s.replicas !== undefined ? { replicas: s.replicas } : {}),
    ...(s.hosts === 'first' ? { firstHostOnly: true } : {}),
    env: s.env,
    volumes: s.volumes,
    healthCheck: s.healthCheck,
    ...(s.resources ? { resources: s.resources } : {}),
    ...(s.route ? { route: { paths: typeof s.route.path === 'string' ? [s.route.path] : s.route.path, ...(s.route.host ? { host: s.route.host } : {}) } } : {}),
  }));
  return [main, ...others];
}

function serviceOf(app: AppConfig, name: string = MAIN_SERVICE): ServiceView {
  const service = appServices(app).find((s) => s.name === name);
  if (!service) throw new PlanError(`the app has no service "${name}"`);
  return service;
}

/** A version a release may go to: a valid tag, pinned to a digest only when one repository serves every service. */
function checkReleaseVersion(app: AppConfig, appName: string, version: string): void {
  if (!isValidVersion(version)) throw new PlanError(`version "${version}" is not a valid image tag`);
  const repositories = appRepositories(app);
  if (versionDigest(version) !== undefined && repositories.length > 1) {
    throw new PlanError(`version "${version}" pins one digest, but ${appName}'s services run images of ${repositories.length} repositories (${repositories.join(', ')}): give a tag`);
  }
}

/** The image repositories of the app's services, the main one's first. */
export const appRepositories = (app: AppConfig): string[] => [...new Set(appServices(app).map((s) => s.repository))];

/** Every image a release of \`version\` runs (one per distinct repository). */
export const releaseImages = (app: AppConfig, version: string): string[] => appRepositories(app).map((repository) => imageAt(repository, version));

/** The replica slots of a service in an environment: \`index\` counts across hosts, \`ordinal\` within its host. */
function serviceSlots(service: ServiceView, hosts: string[], envReplicas: number): { host: string; index: number; ordinal: number }[] {
  const perHost = service.replicas ?? envReplicas;
  return (service.firstHostOnly ? hosts.slice(0, 1) : hosts).flatMap((host, h) => Array.from({ length: perHost }, (_, r) => ({ host, index: h * perHost + r + 1, ordinal: r })));
}

/** A container of one of the app's services (a replica, or the one-off migration). */
export function appContainerSpec(
  app: AppConfig,
  o: { app: string; env: string; version: string; name: string; role: 'web' | 'migrate'; labels: Record<string, string>; restart: boolean; service?: string },
): ContainerSpec {
  const env = app.environments[o.env];
  const service = serviceOf(app, o.service);
  const { envFile, secretFiles } = appFiles(app, o.env);
  const healthCheck = o.role === 'web' ? engineHealthCheck(service.healthCheck) : undefined;
  const resources = engineResources(service.name === MAIN_SERVICE ? (env?.resources ?? app.resources) : (service.resources ?? env?.resources ?? app.resources));
  const serviceLabel: Record<string, string> = service.name === MAIN_SERVICE ? {} : { [LABEL.service]: service.name };
  return {
    name: o.name,
    image: imageAt(service.repository, o.version),
    role: o.role,
    labels: labelsFor(o.app, o.env, o.role, { [LABEL.version]: o.version, ...serviceLabel, ...o.labels }),
    env: { ...service.env, APP_ENV: o.env },
    envFiles: envFile ? [{ path: envFile.path, required: envFile.required }] : [],
    ...(service.command && o.role === 'web' ? { cmd: service.command } : {}),
    network: networkName(o.app, o.env),
    aliases: [],
    volumes: Object.entries(service.volumes).map(([vol, target]) => ({ name: volumeName(o.app, o.env, vol), target })),
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
  const serviceName = (c: FleetContainer) => c.service ?? MAIN_SERVICE;
  const renamed = running.some((c) => c.name !== replicaContainerName(appName, envName, serviceName(c), c.replica));
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
  checkReleaseVersion(app, appName, version);
  /** The container serving a replica of a service on `host` now (converging), else the first-deploy name. */
  const replicaName = (service: string, host: string, index: number): string => {
    if (!renamed) return replicaContainerName(appName, envName, service, index);
    const serving = running.find((c) => serviceName(c) === service && c.host === host && c.replica === index && c.version === version);
    return serving?.name ?? versionedReplicaContainerName(appName, envName, service, index, version!);
  };

  const hosts = env.hosts.map((h) => hostSpec(inventory, h));
  const primary = hosts[0];
  const network = networkName(appName, envName);
  const image = imageAt(app.image, version);
  const runLabel = { [LABEL.runId]: runId };
  const files = appFiles(app, envName);
  const appEnvFiles = files.envFile ? [{ path: files.envFile.path, required: files.envFile.required }] : [];
  const services = appServices(app);

  const dependencies = dependencyPlans(inventory, appName, envName, primary, runLabel);

  const replicas: ReplicaPlan[] = services.flatMap((service) =>
    serviceSlots(service, env.hosts, env.replicas).map(({ host, index }) => ({
      host,
      index,
      ...(service.name === MAIN_SERVICE ? {} : { service: service.name }),
      container: appContainerSpec(app, {
        app: appName,
        env: envName,
        version: version!,
        name: replicaName(service.name, host, index),
        role: 'web',
        service: service.name,
        labels: { ...runLabel, 'runbook.replica': String(index) },
        restart: true,
      }),
    })),
  );

  const proxies = hosts.map((host) => ({
    host: host.name,
    url: `http://${host.address}:${env.proxy.hostPort}`,
    config: renderProxyConfig({
      app: appName,
      env: envName,
      ...proxyRoutes(services, (service) => replicas.filter((r) => r.host === host.name && (r.service ?? MAIN_SERVICE) === service).map((r) => r.container.name)),
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
    volumes: [
      ...dependencies.flatMap((d) => d.container.volumes.map((v) => ({ host: d.host, name: v.name }))),
      ...hosts.flatMap((h) => appVolumes(app, appName, envName).map((name) => ({ host: h.name, name }))),
    ],
    dependencies,
    pulls: hosts.flatMap((h) => releaseImages(app, version!).map((image) => ({ host: h.name, image }))),
    ...(app.migrate && !renamed ? { migrate: migrationPlan(app, { app: appName, env: envName }, version, primary.name, runId)! } : {}),
    replicas,
    healthTimeoutSeconds: Math.max(...services.map((s) => s.healthCheck.timeoutSeconds)),
    proxies,
    smokeTests: proxies.map((p) => ({
      url: `${p.url}${app.smokeTest.path}`,
      ...(env.proxy.domain ? { hostHeader: env.proxy.domain } : {}),
      expectStatus: app.smokeTest.expectStatus,
      ...(app.smokeTest.expectBody !== undefined ? { expectBody: app.smokeTest.expectBody.replace(/\{\{version\}\}/g, versionTag(version)) } : {}),
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
  for (const db of backup.sqlite) {
    const service = serviceOf(app, db.service);
    // the volume the file is on (checked by the inventory): the longest mount path that holds it
    const [volume, mountPath] = Object.entries(service.volumes)
      .filter(([, at]) => db.path.startsWith(`${at.replace(/\/$/, '')}/`))
      .sort((a, b) => b[1].length - a[1].length)[0];
    targets.push({
      name: db.name,
      database: db.path,
      user: '',
      location: { kind: 'sqlite', host: firstHost, app: target.app, env: target.env, service: db.service, path: db.path, volume: volumeName(target.app, target.env, volume), mountPath, helperImage: backup.helperImage },
    });
  }
  const storage = backupStorageSpec(inventory, backup);
  const retention: BackupPolicy = Object.fromEntries(Object.entries(backup.retention).filter(([, v]) => v !== undefined));
  const services = appServices(app);
  const web = env.hosts.map((h) => ({
    host: hostSpec(inventory, h),
    containers: services.flatMap((service) =>
      serviceSlots(service, env.hosts, env.replicas)
        .filter((slot) => slot.host === h)
        .map((slot) => replicaContainerName(target.app, target.env, service.name, slot.index)),
    ),
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
    healthTimeoutSeconds: Math.max(...services.map((s) => s.healthCheck.timeoutSeconds)),
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

/** The container of replica `index` at `version` during rolling updates: `<app>-<env>-<service>-<n>-<version>`. */
export const versionedReplicaContainerName = (app: string, env: string, service: string, index: number, version: string): string => `${replicaContainerName(app, env, service, index)}-${versionForNames(version)}`;
export const versionedWebContainerName = (app: string, env: string, index: number, version: string): string => versionedReplicaContainerName(app, env, MAIN_SERVICE, index, version);

/** The named volumes of the app's own services (made on every host of the environment). */
export const appVolumes = (app: AppConfig, appName: string, envName: string): string[] =>
  [...new Set(appServices(app).flatMap((s) => Object.keys(s.volumes)))].map((v) => volumeName(appName, envName, v));

/**
 * The proxy's upstreams from the containers serving each service on one host: the main service's
 * (every request no route takes) and one per routed service. Services without a route get none.
 */
export function proxyRoutes(services: ServiceView[], containersOf: (service: string) => string[]): Pick<ProxyConfigInput, 'upstreams' | 'routes'> {
  const [main, ...others] = services;
  const routes = others
    .filter((s) => s.route !== undefined && s.port !== undefined)
    .flatMap((s) => s.route!.paths.map((path) => ({ service: s.name, path, ...(s.route!.host ? { host: s.route!.host } : {}), upstreams: containersOf(s.name).map((c) => `${c}:${s.port}`) })));
  return { upstreams: containersOf(main.name).map((c) => `${c}:${main.port}`), ...(routes.length ? { routes } : {}) };
}

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
  checkReleaseVersion(app, appName, version);
  input = { ...input, version };
  const target = version;

  const services = appServices(app);
  const serviceName = (c: FleetContainer) => c.service ?? MAIN_SERVICE;
  // a batch takes the same ordinal of every service on a host (the canary is one whole stack)
  const mainPerHost = services[0].replicas ?? env.replicas;
  const slots: { index: number; host: string; service: string; unit: number; current?: FleetContainer }[] = [];
  for (const service of services) {
    for (const { host, index, ordinal } of serviceSlots(service, env.hosts, env.replicas)) {
      // several for one replica (an interrupted run): prefer the one of the target version, else any
      const candidates = running.filter((c) => serviceName(c) === service.name && c.host === host && c.replica === index);
      const current = candidates.find((c) => c.version === target) ?? candidates[0];
      const unit = env.hosts.indexOf(host) * mainPerHost + Math.min(ordinal, mainPerHost - 1) + 1;
      slots.push({ index, host, service: service.name, unit, current });
    }
  }
  // one batch after another, host by host, as before services existed
  slots.sort((x, y) => x.unit - y.unit);
  const versions = [...new Set(slots.flatMap((s) => (s.current ? [s.current.version] : [])))];
  let fromVersion: string;
  if (versions.length === 1) fromVersion = versions[0];
  else if (input.isRollback) fromVersion = versions.find((v) => v !== target) ?? target;
  else {
    const list = slots.map((s) => `${s.current?.name ?? `${s.service} replica ${s.index} missing`}${s.current ? ` ${s.current.version}` : ''}`).join(', ');
    throw new PlanError(`${appName}/${envName} runs mixed versions (${list}): bring it to one version first (runbook rollback ${appName} --env ${envName} --to <version>)`);
  }
  const spec = (service: string, index: number, version: string, labels: Record<string, string>) =>
    appContainerSpec(app, {
      app: appName,
      env: envName,
      version,
      service,
      name: versionedReplicaContainerName(appName, envName, service, index, version),
      role: 'web',
      labels: { [LABEL.runId]: runId, 'runbook.replica': String(index), ...labels },
      restart: true,
    });
  const chosen = new Set(slots.flatMap((s) => (s.current ? [`${s.host}/${s.current.name}`] : [])));
  const replicaKeys = new Set(slots.map((s) => `${s.service}/${s.index}`));
  const routes = proxyRoutes(services, () => []).routes?.map(({ service, path, host }) => ({ service, path, ...(host ? { host } : {}), port: services.find((s) => s.name === service)!.port! }));
  return {
    app: appName,
    env: envName,
    version: target,
    image: imageAt(app.image, target),
    ...(services.length > 1 ? { images: releaseImages(app, target) } : {}),
    fromVersion,
    hosts,
    slots: slots.map((s) => ({
      index: s.index,
      host: s.host,
      ...(s.service === MAIN_SERVICE ? {} : { service: s.service, unit: s.unit }),
      ...(s.current ? { current: { name: s.current.name, version: s.current.version } } : {}),
      next: spec(s.service, s.index, target, { 'runbook.previous-version': fromVersion }),
      rollback: spec(s.service, s.index, fromVersion, s.current?.previousVersion ? { 'runbook.previous-version': s.current.previousVersion } : {}),
    })),
    proxies: hosts.map((h) => ({ host: h.name, container: proxyContainerName(appName, envName), url: `http://${h.address}:${env.proxy.hostPort}` })),
    appPort: app.port,
    ...(routes ? { routes } : {}),
    ...(env.proxy.domain ? { serverName: env.proxy.domain } : {}),
    healthTimeoutSeconds: Math.max(...services.map((s) => s.healthCheck.timeoutSeconds)),
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
    strays: fleet.filter((c) => !chosen.has(`${c.host}/${c.name}`) || !replicaKeys.has(`${serviceName(c)}/${c.replica}`)).map((c) => ({ host: c.host, name: c.name })),
  };
}

/** The proxy config of one host, from the container now serving each of its replicas. */
export function hostProxyConfig(plan: UpdatePlan, host: string, live: Record<string, string>): string {
  const serving = (service: string | undefined) =>
    plan.slots.filter((s) => s.host === host && s.service === service && live[slotKey(s)] !== undefined).map((s) => live[slotKey(s)]);
  return renderProxyConfig({
    app: plan.app,
    env: plan.env,
    upstreams: serving(undefined).map((c) => `${c}:${plan.appPort}`),
    ...(plan.routes?.length
      ? { routes: plan.routes.map((r) => ({ service: r.service, path: r.path, ...(r.host ? { host: r.host } : {}), upstreams: serving(r.service).map((c) => `${c}:${r.port}`) })) }
      : {}),
    ...(plan.serverName ? { serverName: plan.serverName } : {}),
  });
}

/** A slot's key in the workflow's fleet state: the replica number for the main service (as before services existed), `<service>/<n>` for the others. */
export const slotKey = (s: { index: number; service?: string }): string => (s.service === undefined ? String(s.index) : `${s.service}/${s.index}`);


export interface HousekeepingPlan {
  app: string;
  env: string;
  /** The app's image repository (apps.<app>.image); its tags are the versions. */
  repository: string;
  /** Every repository of the app's services, when some service has its own (absent: \`repository\` only). */
  repositories?: string[];
  hosts: HostSpec[];
}

/** Housekeeping of an app/env: its image repository and the hosts of the environment. */
export function buildHousekeepingPlan(inventory: Inventory, target: RunbookTarget): HousekeepingPlan {
  const { app, env } = findTarget(inventory, target);
  const repositories = appRepositories(app);
  return { app: target.app, env: target.env, repository: app.image, ...(repositories.length > 1 ? { repositories } : {}), hosts: env.hosts.map((h) => hostSpec(inventory, h)) };
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
      ...env.hosts.flatMap((h) => appVolumes(app, target.app, target.env).map((name) => ({ host: h, name }))),
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
  const service = app.migrate.service ?? MAIN_SERVICE;
  return {
    host,
    timeoutSeconds: app.migrate.timeoutSeconds,
    container: { ...appContainerSpec(app, { app: target.app, env: target.env, version, name, role: 'migrate', labels: { [LABEL.runId]: runId }, restart: false, service }), cmd: app.migrate.command },
  };
}

/** The migration to run on a restored database, for the version the app runs (none: the app has no migrate). */
export function buildRestoreMigrationPlan(inventory: Inventory, target: RunbookTarget, version: string, runId: string, runTag: string): OneOffPlan | undefined {
  const { app, env } = findTarget(inventory, target);
  if (!isValidVersion(version)) throw new PlanError(`version "${version}" is not a valid image tag`);
  // one container name per restore: a later restore never mistakes this one's exit 0 for its own
  return migrationPlan(app, target, version, env.hosts[0], runId, `-restore-${runTag.replace(/[^0-9]/g, '').slice(0, 14)}`);
}

export interface TrackedImagePlan {
  app: string;
  env: string;
  /** The repository every service of the app runs (the main service's image). */
  repository: string;
  /** The tag followed in the registry. */
  tag: string;
  /** The engine that asks the registry (the environment's first host: its registry settings and credentials). */
  host: HostSpec;
  hosts: HostSpec[];
}

/**
 * What the update Schedule follows: the tag (input, else the tag of the environment's version) of
 * the app's repository. A version pinned to a digest is one digest for one repository: an app whose
 * services run images of several repositories is refused, saying so.
 */
export function buildTrackedImagePlan(inventory: Inventory, input: RunbookTarget & { tag?: string }): TrackedImagePlan {
  const { app, env } = findTarget(inventory, input);
  const repositories = appRepositories(app);
  if (repositories.length > 1) {
    throw new PlanError(`${input.app}'s services run images of ${repositories.length} repositories (${repositories.join(', ')}): one digest cannot pin them all; update it with \`runbook update --version <tag>\``);
  }
  const tag = input.tag ?? (env.version !== undefined ? versionTag(env.version) : undefined);
  if (tag === undefined) throw new PlanError(`no tag to follow: give one (--tag latest) or set apps.${input.app}.environments.${input.env}.version`);
  const hosts = env.hosts.map((h) => hostSpec(inventory, h));
  return { app: input.app, env: input.env, repository: app.image, tag, host: hosts[0], hosts };
}
