// Plain-JSON shapes exchanged between client, workflows and activities. No secrets, ever:
// secret material is referenced by file path and read by activities at use.
import type { RetentionPolicy } from './retention';
import type { ContainerRole } from './naming';

/** Every runbook input names what to act on. */
export interface RunbookTarget {
  app: string;
  env: string;
}

export interface FirstDeployInput extends RunbookTarget {
  /** Image tag to deploy; default: the environment's `version` in the inventory. */
  version?: string;
  /** Return the plan and the preflight results; change nothing. */
  dryRun?: boolean;
  /** Stop for approval before the proxy exposes the app; default: the inventory's goLiveApproval. */
  goLiveApproval?: boolean;
  /** How long an approval gate waits before its safe default (do not proceed). Default "7d", at most "30d". */
  approvalTimeout?: string;
}

export interface SshSpec {
  address: string;
  port: number;
  user: string;
  keyFile: string;
  hostKey: string;
}

/** How to reach one host: its engine through the local socket, or through SSH. */
export interface HostSpec {
  name: string;
  /** Where the worker reaches ports published on this host. */
  address: string;
  ssh?: SshSpec;
  dockerSocket: string;
  minFreeDiskMb: number;
  /** Where containers publish ports on this host, when the host says (else the environment's proxy.bindAddress). */
  bindAddress?: string;
}

/** Where a PostgreSQL database lives: in a container on a host (reached by Docker exec) or a server by address. */
export type DatabaseLocation =
  | { kind: 'container'; host: HostSpec; container: string; port: number }
  | { kind: 'server'; address: string; port: number }
  /**
   * A SQLite file on a named volume of one of the app's services: backed up and drilled with sqlite3
   * in a running container of that service on \`host\`; swapped during a restore by a helper container
   * with the volume mounted at \`mountPath\` (the app stopped).
   */
  | { kind: 'sqlite'; host: HostSpec; app: string; env: string; service: string; path: string; volume: string; mountPath: string; helperImage: string };

export interface DatabaseTarget {
  /** Logical name, part of backup file names (the inventory's backup.databases[].name). */
  name: string;
  database: string;
  user: string;
  /** Read at use; never in inputs, results or errors. */
  passwordFile?: string;
  location: DatabaseLocation;
}

export interface EnvFileRef {
  path: string;
  required: string[];
}

export interface PortBinding {
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** Everything needed to create one container; built by the plan, sent by the Docker adapter. */
export interface ContainerSpec {
  name: string;
  image: string;
  role: ContainerRole;
  labels: Record<string, string>;
  /** Non-secret variables. */
  env: Record<string, string>;
  /** Read by the activity at use; their values never leave the worker except into the engine. */
  envFiles: EnvFileRef[];
  cmd?: string[];
  network: string;
  aliases: string[];
  volumes: { name: string; target: string }[];
  binds: { source: string; target: string; readOnly: boolean }[];
  ports: PortBinding[];
  stopTimeoutSeconds: number;
  restart: boolean;
  /** A health check the engine runs (declared in the inventory); else the image's own. */
  healthCheck?: EngineHealthCheck;
  /** Limits the engine enforces. */
  resources?: { memoryBytes?: number; nanoCpus?: number };
}

/** Docker's health check: `test` is ["CMD", ...argv] or ["CMD-SHELL", "command"]. */
export interface EngineHealthCheck {
  test: string[];
  intervalSeconds: number;
  timeoutSeconds: number;
  retries: number;
  startPeriodSeconds: number;
}

export interface DependencyPlan {
  name: string;
  host: string;
  container: ContainerSpec;
  healthTimeoutSeconds: number;
}

/** `runbook update --service`: one dependency's container replaced by the inventory's image. */
export interface DependencyUpdatePlan {
  app: string;
  env: string;
  service: string;
  host: HostSpec;
  /** The container as it should run (the inventory's image, command, volumes, health check). */
  dependency: DependencyPlan;
  /** A backup database lives in it: an approval gate and, by default, a backup first. */
  database: boolean;
  backup: boolean;
  stopTimeoutSeconds: number;
  approvals: ApprovalPolicy;
}

export interface ReplicaPlan {
  host: string;
  index: number;
  /** The app's service (absent: the main one, web). */
  service?: string;
  container: ContainerSpec;
}

export interface ProxyPlan {
  host: string;
  container: ContainerSpec;
  /** Rendered nginx configuration (no secrets). */
  config: string;
  /** http://address:port of the proxy as the worker reaches it. */
  url: string;
}

export interface SmokeTestSpec {
  url: string;
  hostHeader?: string;
  expectStatus: number;
  expectBody?: string;
}

export interface ApprovalPolicy {
  approvers: string[];
  minApprovals: number;
}

export interface DeployPlan {
  app: string;
  env: string;
  version: string;
  image: string;
  hosts: HostSpec[];
  network: string;
  volumes: { host: string; name: string }[];
  dependencies: DependencyPlan[];
  pulls: { host: string; image: string }[];
  migrate?: OneOffPlan;
  replicas: ReplicaPlan[];
  healthTimeoutSeconds: number;
  proxies: ProxyPlan[];
  smokeTests: SmokeTestSpec[];
  envFiles: EnvFileRef[];
  secretFiles: { host: string; path: string }[];
  portsToCheck: { host: string; bindAddress: string; port: number; owner: string }[];
  domain?: { name: string; host: string; address: string };
  approvals: ApprovalPolicy;
  goLiveApproval: boolean;
}

export interface CheckResult {
  check: string;
  ok: boolean;
  detail: string;
}

export interface PreflightReport {
  host: string;
  ok: boolean;
  checks: CheckResult[];
}

export interface EnsureResult {
  name: string;
  id: string;
  created: boolean;
}

export interface FirstDeployResult {
  app: string;
  env: string;
  version: string;
  dryRun: boolean;
  plan: DeployPlan;
  preflight: PreflightReport[];
  containers: { name: string; host: string; id: string; created: boolean }[];
  /** True when the run found everything already in place and changed nothing. */
  unchanged: boolean;
}

// ---- approvals and status (the shared runbook mechanisms) ----

export interface ApprovalDecisionInput {
  gate: string;
  by: string;
  comment?: string;
}

export type DecisionKind = 'approve' | 'reject';

export interface DecisionRecord extends ApprovalDecisionInput {
  decision: DecisionKind;
  at: string;
  accepted: boolean;
  /** Why an ignored decision was ignored. */
  reason?: string;
  via: 'signal' | 'update';
}

export interface PendingGate {
  gate: string;
  description: string;
  approvers: string[];
  minApprovals: number;
  approvedBy: string[];
  deadline: string;
}

export type GateOutcome = 'approved' | 'rejected' | 'timed-out';

export interface GateResult {
  gate: string;
  outcome: GateOutcome;
  by: string[];
}

export type RunbookPhase = 'planning' | 'preflight' | 'running' | 'awaiting-approval' | 'cleaning-up' | 'rolling-back' | 'succeeded' | 'failed';

export interface StepRecord {
  step: string;
  state: 'running' | 'done' | 'failed';
  startedAt: string;
  endedAt?: string;
  detail?: string;
}

export interface RunbookStatus {
  runbook: string;
  app: string;
  env: string;
  phase: RunbookPhase;
  step: string;
  steps: StepRecord[];
  pendingGates: PendingGate[];
  decisions: DecisionRecord[];
  error?: string;
  /** What an operator must know that is not the outcome (e.g. a lock that could not be released). */
  notes?: string[];
}

export interface LockHolder {
  workflowId: string;
  runId: string;
  runbook: string;
  since: string;
}

export type LockAnswer = { acquired: true; holder: LockHolder } | { acquired: false; holder: LockHolder };

export interface PreflightRequest {
  host: HostSpec;
  /** Checked on the worker (where they are read). */
  envFiles: EnvFileRef[];
  /** Must exist on the host (bind-mounted read-only). */
  secretFiles: string[];
  ports: { bindAddress: string; port: number; owner: string }[];
  domain?: { name: string; address: string };
}

// ---- backups ----

/** A directory on the worker's filesystem (`host` absent) or on a host reached over SSH. */
export interface DirectoryStorageSpec {
  type: 'directory';
  path: string;
  host?: HostSpec;
}

/** An S3-compatible bucket; credentials are read from files at use (never in inputs). */
export interface S3StorageSpec {
  type: 's3';
  bucket: string;
  /** Key prefix without a leading slash, e.g. `backups/shop/production/` ('' for none). */
  prefix: string;
  region: string;
  /** For S3-compatible servers (MinIO, Ceph, a local test server); absent means AWS. */
  endpoint?: string;
  forcePathStyle?: boolean;
  accessKeyIdFile?: string;
  secretAccessKeyFile?: string;
}

export type StorageSpec = DirectoryStorageSpec | S3StorageSpec;

/** Where backups live, for people (no credentials: they are files read at use). */
export function describeStorage(s: StorageSpec): string {
  if (s.type === 's3') return `s3://${s.bucket}/${s.prefix}${s.endpoint ? ` at ${s.endpoint}` : ''}`;
  return s.host ? `${s.path} on ${s.host.name}` : `${s.path} on the worker`;
}

/** GFS retention, with restic's `forget` semantics (common/retention.ts). */
export type BackupPolicy = RetentionPolicy;

/** Everything a backup night or a restore needs, resolved from the inventory (recorded in history). */
export interface BackupPlan {
  app: string;
  env: string;
  targets: DatabaseTarget[];
  storage: StorageSpec;
  retention: BackupPolicy;
  checksums: boolean;
  notify?: { webhookUrlFile: string };
  /** The app's web containers (stopped during a restore) and where they run. */
  web: { host: HostSpec; containers: string[] }[];
  /** The proxy of each host: reloaded after a restart, so it resolves the containers' new addresses. */
  proxies?: { host: HostSpec; container: string }[];
  /** Where the app is health-checked after a restore. */
  healthUrl?: string;
  /** What the proxies answer while a restore has the app stopped (absent in plans made before it existed). */
  maintenance?: { retryAfterSeconds: number; pageFile?: string };
  stopTimeoutSeconds: number;
  healthTimeoutSeconds: number;
  /** Who approves a restore (the environment's approvers). */
  approval: ApprovalPolicy;
  archives: {
    volumes: { host: HostSpec; name: string; volume: string }[];
    /** Worker-side files and proxy containers whose config goes in the night's config archive. */
    config?: { files: string[]; proxies: { host: HostSpec; container: string; path: string }[] };
    helperImage: string;
  };
}

export interface NightlyBackupInput extends RunbookTarget {
  /** Skip retention pruning this night (the backup and drill still run). */
  skipPrune?: boolean;
  /**
   * Pin this run's backups (a pre-update or safety backup): nightly retention neither prunes them
   * nor counts them, until released or until `window` (default "30d") has passed.
   */
  pin?: BackupPinRequest;
}

// ---- pinned backups ----

/** Why a backup is kept outside the nightly retention. */
export const PIN_REASONS = ['safety', 'pre-update'] as const;
export type PinReason = (typeof PIN_REASONS)[number];
/** How long a pin holds when nobody releases it first. */
export const DEFAULT_PIN_WINDOW = '30d';

/** A pin as the manifest records it (and listBackups returns it). */
export interface BackupPin {
  reason: PinReason;
  /** The workflow ID of the run that took it (the restore, the rolling update). */
  by: string;
  /** ISO time the pin ends by itself (absent: held until released). */
  until?: string;
}

/** A pin as a runbook input asks for it; `by` and `until` are filled in by the workflow. */
export interface BackupPinRequest {
  reason: PinReason;
  /** Duration ("30d", "72h") from the backup until the pin ends by itself. Default "30d". */
  window?: string;
}

export interface RestoreBackupInput extends RunbookTarget {
  /** The database (its logical name in the inventory); default: the only one. */
  database?: string;
  /** A backup file name, or "latest" (the newest verified one). Default "latest". */
  backup?: string;
  /** How long the safety backup stays pinned (out of the nightly retention) unless released first. Default "30d". */
  safetyPinWindow?: string;
  approvalTimeout?: string;
  /** Keep the pre-restore copy of the database until someone drops it by hand (no window). */
  keepPrevious?: boolean;
  /** How long the pre-restore copy (every write up to the stop) is kept before it is dropped, unless released earlier; default 7d. */
  keepPreviousFor?: string;
}

// ---- rolling update ----

/** A web container found on a host (the fleet as it runs, read from labels). */
export interface FleetContainer {
  host: string;
  name: string;
  replica: number;
  /** The app's service (label runbook.service; absent: the main one, web). */
  service?: string;
  version: string;
  image: string;
  state: string;
  /** The version this one replaced (label runbook.previous-version): the default rollback target. */
  previousVersion?: string;
}

export type CanaryMode = 'none' | 'approve' | { bake: string };

export interface RollingUpdateInput extends RunbookTarget {
  /** The target version; a rollback without it goes to the version before the running one (label runbook.previous-version). */
  version?: string;
  /** Replicas replaced at a time, across hosts (default 1). */
  batchSize?: number;
  /** After the first batch: "approve" (a gate), { bake: "10m" } (health/error-rate watch), or "none" (default). */
  canary?: CanaryMode;
  /** Take a backup first (a child nightlyBackup, no pruning). Default: true when the app has a backup section. */
  backup?: boolean;
  approvalTimeout?: string;
  /**
   * After a switch, the longest wait for the proxy's previous workers to answer their in-flight
   * requests before the old containers get SIGTERM anyway. Default "30s" (usually milliseconds).
   */
  drainTimeout?: string;
  /** An extra fixed wait after that drain, before SIGTERM (traffic that bypasses the proxy). Default "0s". */
  drainDelay?: string;
  /**
   * How many batches beyond the one being switched may boot (start and pass their health gate)
   * meanwhile. Default: all of them (the way Kamal boots every host at once); 0: strictly one batch
   * after the other. At most (surge + 1) × batch new containers run beside the old ones at a time.
   */
  surge?: number;
  /** Bake: how often the proxies are probed (default "5s") and the error rate that fails it (default 0.01). */
  bakeInterval?: string;
  maxErrorRate?: number;
  /** Set by `runbook rollback`: the update is a rollback (no canary, no backup unless asked). */
  isRollback?: boolean;
}

export interface SlotPlan {
  index: number;
  host: string;
  /** The app's service (absent: the main one, web; then the slot's key is its index). */
  service?: string;
  /** The batch unit it is replaced with: the main replica of the same host and ordinal (absent: its index). */
  unit?: number;
  /** The container serving this replica now (undefined: the replica is missing and is created). */
  current?: { name: string; version: string };
  /** The container of the target version. */
  next: ContainerSpec;
  /** The container of the recorded version, if the slot must be rolled back. */
  rollback: ContainerSpec;
}

/** A container that runs once to completion (a migration) on one host. */
export interface OneOffPlan {
  host: string;
  container: ContainerSpec;
  timeoutSeconds: number;
}

export interface UpdatePlan {
  app: string;
  env: string;
  version: string;
  image: string;
  /** Every image of the release when the app has several services (absent: \`image\` only). */
  images?: string[];
  /** The version running before the update (the rollback target), read from the containers' labels. */
  fromVersion: string;
  hosts: HostSpec[];
  slots: SlotPlan[];
  proxies: { host: string; container: string; url: string }[];
  appPort: number;
  /** The routed services besides the main one: the proxy sends them their prefix. */
  routes?: { service: string; path: string; host?: string; port: number }[];
  serverName?: string;
  healthTimeoutSeconds: number;
  stopTimeoutSeconds: number;
  smokeTest: { path: string; expectStatus: number; expectBody?: string; hostHeader?: string };
  healthPath: string;
  backup: boolean;
  /**
   * The new version's migration (apps.<app>.migrate), run once after the backup and before any new
   * replica starts; none for a rollback (the schema stays expanded: see docs/migrations.md).
   */
  migrate?: OneOffPlan;
  approvals: ApprovalPolicy;
  /** Every replica already runs the version: nothing to do. */
  unchanged: boolean;
  /** Web containers found that are not the current one of any replica (left by an interrupted run); removed at the end. */
  strays: { host: string; name: string }[];
}

export interface RollingUpdateResult {
  app: string;
  env: string;
  version: string;
  fromVersion: string;
  unchanged: boolean;
  replicas: { host: string; index: number; service?: string; container: string }[];
}

// ---------------------------------------------------------------- certificates (runbook 2) --

export type ChallengeKind = 'http-01' | 'dns-01';

/** The DNS provider that answers DNS-01 challenges (activities/dns/rfc2136.ts). */
export interface DnsProviderSettings {
  type: 'rfc2136';
  /** The zone's primary, "host:port". */
  server: string;
  zone: string;
  /** TSIG key file on the worker (a path; the key itself never travels). */
  keyFile: string;
}

export interface IssueCertificateInput extends RunbookTarget {
  /** Names to cover (default: the inventory's proxy.tls.domains, or proxy.domain). */
  domains?: string[];
  /** The CA's staging directory (test certificates, generous rate limits). */
  staging?: boolean;
  /** A self-signed certificate made on the host (development); no CA involved. */
  selfSigned?: boolean;
  /** Issue even when the served certificate covers the names with more than a third of its lifetime left. */
  force?: boolean;
  /** Set by renewCertificates: why this run was started. */
  reason?: string;
}

/** Where one host's proxy serves, as the certificate runbook needs it. */
export interface CertificateProxy {
  host: HostSpec;
  container: string;
  /** http://<address>:<hostPort> — port 80 of the proxy. */
  httpUrl: string;
  /** Where a TLS client reaches the proxy's port 443. */
  httpsAddress: string;
  httpsPort: number;
}

export interface CertificatePlan {
  app: string;
  env: string;
  /** File stem on the host: /etc/nginx/tls/<id>.crt, .key, .server.conf, .redirect.conf. */
  id: string;
  domains: string[];
  /** PEM roots the served certificate must chain to; absent: the worker's built-in roots. */
  trustedRootsFile?: string;
  mode: 'acme' | 'self-signed';
  challenge: ChallengeKind;
  acme: {
    directoryUrl: string;
    email?: string;
    /** CA bundle (on the worker) to trust for the directory's HTTPS, e.g. a test CA. */
    caFile?: string;
    /** The account key as a secret file on the worker (a path; read at use); default: kept on the host. */
    accountKeyFile?: string;
  };
  dns?: DnsProviderSettings;
  /** DNS server ("host:port") the preflight asks whether each name points at the host; default: the system's resolver. */
  resolver?: string;
  /** nginx upstream name of the app (the HTTPS server block proxies to it). */
  upstream: string;
  proxies: CertificateProxy[];
  /** Renew when the remaining lifetime is at most this fraction of the whole (default 1/3). */
  renewFraction: number;
  /** Days of a self-signed certificate. */
  selfSignedDays: number;
  notify?: { webhookUrlFile: string };
}

/** A certificate as served or issued (public data only). */
export interface CertificateFacts {
  serial: string;
  names: string[];
  notBefore: string;
  notAfter: string;
  issuer: string;
}

export interface IssueCertificateResult {
  app: string;
  env: string;
  domains: string[];
  hosts: { host: string; outcome: 'issued' | 'unchanged'; certificate: CertificateFacts; reason: string }[];
}

export interface RenewCertificatesResult {
  checked: { app: string; env: string; host: string; notAfter?: string; due: boolean; reason: string }[];
  renewed: { app: string; env: string; workflowId: string }[];
  failed: { app: string; env: string; error: string }[];
}

/** The update Schedule's answer: the tracked tag's digest in the registry, what runs, and whether it is that digest. */
export interface TrackedUpdate {
  app: string;
  env: string;
  repository: string;
  tag: string;
  digest: string;
  /** `<tag>@<digest>`: the version a rollout goes to. */
  version: string;
  /** The versions the running replicas carry (labels). */
  running: string[];
  /** Every running replica's image has that digest: nothing to do. */
  current: boolean;
  /** A rollout to this version already failed (and was rolled back): not tried again until the tag moves. */
  failedBefore?: { workflowId: string; runId: string; at: string };
}
