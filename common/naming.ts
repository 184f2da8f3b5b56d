// Deterministic names: a retried or replayed step finds what an earlier attempt made.

/** App, environment, host and volume names: safe in container names and workflow IDs. */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,29}$/;
/**
 * A version: an image tag (\`v2\`), or a tag pinned to the digest the registry gave for it
 * (\`latest@sha256:<64 hex>\`: what the update Schedule rolls out, so a tag moved later is not).
 */
export const VERSION_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[a-f0-9]{64})?$/;
export const isValidVersion = (v: string): boolean => VERSION_PATTERN.test(v);
/** The tag of a version (what the app reports as its version). */
export const versionTag = (v: string): string => v.split('@')[0];
/** The digest a version is pinned to, if any. */
export const versionDigest = (v: string): string | undefined => (v.includes('@') ? v.slice(v.indexOf('@') + 1) : undefined);
/** The version in container names: the tag, and the digest's first 12 hex digits when pinned. */
export const versionForNames = (v: string): string => {
  const digest = versionDigest(v);
  return digest ? `${versionTag(v)}-${digest.slice('sha256:'.length, 'sha256:'.length + 12)}` : v;
};
/** The image of a repository at a version: \`repo:tag\`, or \`repo@sha256:…\` when pinned (the engine pulls that digest). */
export const imageAt = (repository: string, v: string): string => {
  const digest = versionDigest(v);
  return digest ? `${repository}@${digest}` : `${repository}:${v}`;
};

export const LABEL = {
  managed: 'runbook.managed',
  app: 'runbook.app',
  env: 'runbook.env',
  role: 'runbook.role',
  version: 'runbook.version',
  runId: 'runbook.run-id',
  /** The app's service a replica belongs to; absent: the main one (web). */
  service: 'runbook.service',
} as const;

export type ContainerRole = 'web' | 'dependency' | 'proxy' | 'migrate';

export const RUNBOOKS = ['firstDeploy', 'rollingUpdate', 'issueCertificate', 'renewCertificates', 'dnsCutover', 'nightlyBackup', 'restoreBackup', 'restoreArchive', 'maintenanceMode', 'stopApp', 'housekeeping', 'updateDependency', 'updateFromRegistry'] as const;
export type RunbookName = (typeof RUNBOOKS)[number];

export const TASK_QUEUE = 'runbooks';

export const prefix = (app: string, env: string): string => `${app}-${env}`;
export const networkName = (app: string, env: string): string => prefix(app, env);
export const volumeName = (app: string, env: string, volume: string): string => `${prefix(app, env)}-${volume}`;
/** Replica \`n\` of one of the app's services (\`web\`: the main one): \`<app>-<env>-<service>-<n>\`. */
export const replicaContainerName = (app: string, env: string, service: string, n: number): string => `${prefix(app, env)}-${service}-${n}`;
export const webContainerName = (app: string, env: string, n: number): string => replicaContainerName(app, env, 'web', n);
/** The app's main service; its containers carry no \`runbook.service\` label (as before services existed). */
export const MAIN_SERVICE = 'web';
export const dependencyContainerName = (app: string, env: string, dep: string): string => `${prefix(app, env)}-${dep}`;
export const proxyContainerName = (app: string, env: string): string => `${prefix(app, env)}-proxy`;
/** The named volume with the proxy's certificates, keys and HTTPS snippets. */
export const proxyTlsVolumeName = (app: string, env: string): string => `${prefix(app, env)}-proxy-tls`;
export const migrateContainerName = (app: string, env: string, version: string): string => `${prefix(app, env)}-migrate-${versionForNames(version)}`;
/** The container a dependency update keeps stopped until the new one is healthy (the rollback target). */
export const previousDependencyName = (container: string): string => `${container}-previous`;

/** `<runbook>/<app>/<env>`: with conflict policy FAIL, two runs on one target cannot overlap. */
export const runbookWorkflowId = (runbook: RunbookName, app: string, env: string): string => `${runbook}/${app}/${env}`;
/** One lock per app/env, shared by every mutating runbook. */
export const lockWorkflowId = (app: string, env: string): string => `lock/${app}/${env}`;

export function labelsFor(app: string, env: string, role: ContainerRole, extra: Record<string, string> = {}): Record<string, string> {
  return { [LABEL.managed]: 'true', [LABEL.app]: app, [LABEL.env]: env, [LABEL.role]: role, ...extra };
}
