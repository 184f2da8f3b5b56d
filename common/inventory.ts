// The inventory: what hosts exist, what apps run where. Parsed and validated here (pure);
// the file itself is read by an activity. Secrets are referenced by path only.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration';
import { NAME_PATTERN, VERSION_PATTERN } from './naming';

const NAME = NAME_PATTERN;
const name = (what: string) =>
  z.string({ error: `${what} must be a string` }).regex(NAME, {
    error: `${what} must be lowercase letters, digits and '-', starting with a letter, at most 30 characters`,
  });
const absolutePath = z
  .string({ error: 'must be a path string' })
  .startsWith('/', { error: 'must be an absolute path' });
const port = z
  .number({ error: 'must be a port number' })
  .int({ error: 'must be a whole number' })
  .min(1, { error: 'must be between 1 and 65535' })
  .max(65535, { error: 'must be between 1 and 65535' });
const positiveInt = z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).positive({ error: 'must be at least 1' });
const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' });
const hostKeyFingerprint = z.string({ error: 'must be a string' }).regex(/^SHA256:[A-Za-z0-9+/]{43}$/, {
  error: 'must be a pinned host key fingerprint "SHA256:<43 base64 chars>", as printed by `ssh-keygen -lf`',
});
const REPOSITORY = '(?:[a-z0-9.-]+(?::\\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*';
// a tag only: a dependency's image is `repository:tag` (the tag is what `runbook update --service` compares)
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
/** A repository without tag, e.g. `127.0.0.1:5000/demo-app`. The version is the tag. */
const imageRepository = z.string({ error: 'must be an image repository' }).regex(new RegExp(`^${REPOSITORY}$`), {
  error: 'must be an image repository without tag or digest, e.g. "registry:5000/app" (the version is the tag)',
});
/** A full image reference with tag, e.g. `127.0.0.1:5000/postgres:15`. */
const imageWithTag = z.string({ error: 'must be an image reference' }).regex(new RegExp(`^${REPOSITORY}:${TAG}$`), {
  error: 'must be an image reference with a tag, e.g. "registry:5000/postgres:15"',
});
const version = z.string({ error: 'must be a string' }).regex(VERSION_PATTERN, {
  error: 'must be a valid image tag (letters, digits, "_", ".", "-")',
});

const sshSchema = z.strictObject({
  address: z.string({ error: 'must be a host name or IP address' }).min(1, { error: 'must not be empty' }),
  port: port.default(22),
  user: z.string().min(1).default('root'),
  keyFile: absolutePath,
  hostKey: hostKeyFingerprint,
});

const hostSchema = z.strictObject({
  /** Address at which the worker reaches ports published on this host (default: ssh.address, or 127.0.0.1). */
  address: z.string().min(1).optional(),
  /** Where this host's containers publish ports (the proxy); overrides the environment's proxy.bindAddress. */
  bindAddress: z.string().min(1).optional(),
  ssh: sshSchema.optional(),
  docker: z.strictObject({ socketPath: absolutePath.default('/var/run/docker.sock') }).default({ socketPath: '/var/run/docker.sock' }),
  minFreeDiskMb: positiveInt.default(1024),
});

const envFileSchema = z.strictObject({
  path: absolutePath,
  required: z.array(envVarName).default([]),
});

/** Files on the host mounted read-only into the container (a password for the `*_FILE` convention). */
const secretFilesSchema = z.array(z.strictObject({ path: absolutePath, target: absolutePath })).default([]);

/**
 * A health check the engine runs in the container (as Compose's \`healthcheck\`): a command (argv, or
 * one string run by the shell), exit 0 is healthy; defaults every 5 s, 5 s per probe, 3 retries, no
 * start period. Without one, the image's own HEALTHCHECK counts, and without that, 2 s running.
 */
const healthCommand = z.union([z.array(z.string().min(1)).min(1, { error: 'must have at least one word' }), z.string().min(1)]);
const probeFields = {
  intervalSeconds: positiveInt.optional(),
  /** One probe's time limit. */
  probeTimeoutSeconds: positiveInt.optional(),
  retries: positiveInt.optional(),
  /** Failures in this time after the start do not count (a database replaying its log). */
  startPeriodSeconds: z.number().int().min(0).optional(),
};

/** Docker-style memory size: 512m, 1.5g, 64k (binary units). */
const memorySize = z.string({ error: 'must be a size like "512m" or "1g"' }).regex(/^\d+(\.\d+)?[kmg]$/, { error: 'must be a size like "512m" or "1g" (k, m, g: KiB, MiB, GiB)' });

/** Limits the engine enforces on the container (Compose's `deploy.resources.limits`). */
const resourcesSchema = z.strictObject({
  memory: memorySize.optional(),
  cpus: z.number({ error: 'must be a number of CPUs, e.g. 0.5' }).positive({ error: 'must be more than 0' }).optional(),
});

const dependencySchema = z.strictObject({
  name: name('dependency name'),
  image: imageWithTag,
  /** Replaces the image's command, e.g. [redis-server, --appendonly, "yes"]. */
  command: z.array(z.string().min(1)).min(1, { error: 'must have at least one word' }).optional(),
  envFile: envFileSchema.optional(),
  secretFiles: secretFilesSchema,
  /** Non-secret settings only; secrets go in envFile. */
  env: z.record(envVarName, z.string()).default({}),
  volumes: z.record(name('volume name'), absolutePath).default({}),
  healthCheck: z.strictObject({ command: healthCommand, ...probeFields }).optional(),
  healthTimeoutSeconds: positiveInt.default(120),
  resources: resourcesSchema.optional(),
});

const dnsName = z.string().regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, { error: 'must be a DNS name (a wildcard only as the leftmost label: "*.example.com")' });
const hostPortString = z.string().regex(/^[A-Za-z0-9.:-]+:\d{1,5}$/, { error: 'must be "host:port"' });

/** HTTPS on the proxy with a certificate from an ACME CA (or self-signed), renewed on a schedule. */
const tlsSchema = z.strictObject({
  /** The names the certificate covers (default: [proxy.domain]). A wildcard needs the dns-01 challenge. */
  domains: z.array(dnsName).min(1).optional(),
  challenge: z.enum(['http-01', 'dns-01']).default('http-01'),
  acme: z
    .strictObject({
      /** Default: Let's Encrypt's production directory. */
      directoryUrl: z.url().optional(),
      /** Used with --staging. Default: Let's Encrypt's staging directory. */
      stagingDirectoryUrl: z.url().optional(),
      email: z.email().optional(),
      /** CA bundle on the worker to trust for the directory's HTTPS (a private or test CA). */
      caFile: absolutePath.optional(),
      /** The ACME account key as a secret file on the worker (PEM); default: made once on the host and kept there. */
      accountKeyFile: absolutePath.optional(),
    })
    .default({}),
  /** For dns-01: RFC 2136 dynamic updates signed with a TSIG key (a file on the worker). */
  dns: z.strictObject({ type: z.literal('rfc2136'), server: hostPortString, zone: z.string().min(1), keyFile: absolutePath }).optional(),
  /** DNS server the preflight asks where each name points (default: the worker's resolver). */
  resolver: hostPortString.optional(),
  /** PEM roots the served certificate must chain to (default: Node's built-in roots, which trust Let's Encrypt): a private or test CA's issuing root. */
  trustedRootsFile: absolutePath.optional(),
  /** Development: a self-signed certificate made on the host instead of a CA's. */
  selfSigned: z.boolean().default(false),
  selfSignedDays: positiveInt.max(825).default(90),
  /** Renew when at most this fraction of the lifetime is left (certmagic: 1/3; certbot: 30 of 90 days). */
  renewFraction: z.number().gt(0).lt(1).default(1 / 3),
  /** Failed renewals are posted to this webhook (the file holds the URL, a secret). */
  notify: z.strictObject({ webhookUrlFile: absolutePath }).optional(),
});

const ipAddress = z.string().refine((a) => /^\d{1,3}(\.\d{1,3}){3}$/.test(a) || /^[0-9a-f:]+$/i.test(a), { error: 'must be an IPv4 or IPv6 address' });

/** A PostgreSQL database reached by address: what a cutover moves by logical replication. */
const cutoverDatabaseSchema = z.strictObject({
  address: z.string().min(1),
  port: port.default(5432),
  database: z.string().min(1),
  /** Sets replication up: a superuser, or a role with REPLICATION that owns the tables. */
  user: z.string().min(1),
  passwordFile: absolutePath.optional(),
  /** The app's role, made read-only at the switch (default: user). */
  appRole: z.string().min(1).optional(),
  /** How the other side's database server reaches this one (default: address/port). */
  peerAddress: z.string().min(1).optional(),
  peerPort: port.optional(),
});

/** This environment as one side of a DNS cutover (runbook dnsCutover). */
const environmentCutoverSchema = z.strictObject({
  /** What the app's records hold while this environment serves (A for IPv4, AAAA for IPv6). */
  addresses: z.array(ipAddress).min(1, { error: 'must list at least one address' }),
  /** Where the worker reaches this side's proxy for probes (default: http://<first host's address>:<proxy.hostPort>). */
  url: z.url().optional(),
  /** Where the other side's proxies send requests while they forward here, http://host[:port] (default: url). */
  forwardUrl: z.url().optional(),
  database: cutoverDatabaseSchema.optional(),
  /** A scratch database on the same server for `--rehearse`. */
  rehearsalDatabase: cutoverDatabaseSchema.optional(),
});

const dnsZoneSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('rfc2136'),
    zone: z.string().min(1),
    server: hostPortString,
    keyFile: absolutePath,
    /** The authoritative servers to verify at (default: the zone's NS records). */
    nameServers: z.array(hostPortString).min(1).optional(),
  }),
  z.strictObject({
    type: z.literal('route53'),
    zone: z.string().min(1),
    hostedZoneId: z.string().min(1),
    region: z.string().min(1).default('us-east-1'),
    endpoint: z.url().optional(),
    accessKeyIdFile: absolutePath.optional(),
    secretAccessKeyFile: absolutePath.optional(),
  }),
]);

/** The app's DNS cutover settings: the zone, the records moved, the tables reconciled per hour. */
const appCutoverSchema = z.strictObject({
  zone: dnsZoneSchema,
  records: z.array(dnsName).min(1, { error: 'must list at least one record' }),
  /** A record of its own for `--rehearse` (never the live ones). */
  rehearsalRecord: dnsName.optional(),
  timeSeries: z.array(z.strictObject({ table: z.string().min(1), keyColumn: z.string().min(1), timeColumn: z.string().min(1) })).default([]),
});

/**
 * Who is told when a person is needed (a gate opens, its deadline nears, a cutover window closes) or a
 * run fails: webhooks whose URLs are secrets, each in its own file. One POST per event (see activities/notify.ts).
 */
const notifySchema = z.strictObject({
  webhooks: z
    .array(
      z.strictObject({
        urlFile: absolutePath,
        /** "slack": Slack-compatible incoming-webhook body (text + blocks); "json": the event's fields. */
        format: z.enum(['json', 'slack']).default('json'),
      }),
    )
    .min(1, { error: 'must list at least one webhook' }),
  /** The Temporal Web UI's address, for the link to the run (e.g. "https://temporal.example.com"). */
  uiUrl: z.url({ error: 'must be a URL' }).optional(),
  /** How long before an approval deadline or the end of a cutover window a reminder is sent. */
  remindBefore: z
    .string()
    .default('1h')
    .superRefine((value, ctx) => {
      try {
        parseDuration(value, 'remindBefore');
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
});

const environmentSchema = z.strictObject({
  hosts: z.array(name('host name')).min(1, { error: 'must list at least one host' }),
  /** Replicas per host. */
  replicas: positiveInt.default(1),
  version: version.optional(),
  proxy: z.strictObject({
    hostPort: port,
    bindAddress: z.string().default('127.0.0.1'),
    domain: z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, { error: 'must be a DNS name' }).optional(),
    /** Host port published for the proxy's port 443 (HTTPS, once a certificate is installed). */
    httpsPort: port.optional(),
    tls: tlsSchema.optional(),
  }),
  approvers: z.array(z.string().min(1)).default([]),
  minApprovals: positiveInt.default(1),
  goLiveApproval: z.boolean().default(false),
  cutover: environmentCutoverSchema.optional(),
  /** Replaces the app's `notify` for this environment. */
  notify: notifySchema.optional(),
  /** Replace the app's, for this environment (staging and production differ: 002 Pattern 1). */
  envFile: envFileSchema.optional(),
  secretFiles: secretFilesSchema.optional(),
  resources: resourcesSchema.optional(),
});

const nonNegativeInt = z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).min(0, { error: 'must be 0 or more' });

const backupDatabaseSchema = z
  .strictObject({
    /** Logical name in backup file names. */
    name: name('database name'),
    database: z.string().min(1),
    user: z.string().min(1),
    passwordFile: absolutePath.optional(),
    /** The dependency container it runs in (on the environment's first host)... */
    dependency: name('dependency name').optional(),
    /** ...or a server the worker reaches by address. */
    server: z.strictObject({ address: z.string().min(1), port: port.default(5432) }).optional(),
    /** Port inside the container. */
    port: port.default(5432),
  })
  .refine((d) => (d.dependency === undefined) !== (d.server === undefined), { error: 'needs exactly one of "dependency" (a container) or "server" (an address)' });

const backupStorageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('directory'),
    path: absolutePath,
    /** A host of the inventory (over SSH); absent: the worker's own filesystem. */
    host: name('host name').optional(),
  }),
  z.strictObject({
    type: z.literal('s3'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name' }),
    prefix: z.string().regex(/^([^/].*\/)?$/, { error: 'must be empty or end with "/" (and not start with one)' }).default(''),
    region: z.string().min(1).default('us-east-1'),
    endpoint: z.url({ error: 'must be a URL' }).optional(),
    forcePathStyle: z.boolean().default(false),
    accessKeyIdFile: absolutePath.optional(),
    secretAccessKeyFile: absolutePath.optional(),
  }),
]);

const retentionSchema = z
  .strictObject({
    daily: nonNegativeInt.optional(),
    weekly: nonNegativeInt.optional(),
    monthly: nonNegativeInt.optional(),
    yearly: nonNegativeInt.optional(),
    last: nonNegativeInt.optional(),
    keepDays: nonNegativeInt.optional(),
  })
  .refine((r) => Object.values(r).some((v) => v !== undefined && v > 0), { error: 'must keep something: set at least one of daily, weekly, monthly, yearly, last, keepDays' });

/** A SQLite database of the app (seed 003): a file on a named volume of one of its services. */
const backupSqliteSchema = z.strictObject({
  /** Logical name in backup file names. */
  name: name('database name'),
  /** The service whose containers have it (default: the main one, web); its image needs sqlite3. */
  service: name('service name').default('web'),
  /** The file in the container, on one of the service's volumes, e.g. /data/app.db. */
  path: absolutePath.regex(/^\/[A-Za-z0-9._/-]+$/, { error: 'must be a path of letters, digits, ".", "_", "-" and "/"' }),
});

const backupSchema = z.strictObject({
  storage: backupStorageSchema,
  /** PostgreSQL databases. */
  databases: z.array(backupDatabaseSchema).default([]),
  /** SQLite databases (online backup in the app's container). */
  sqlite: z.array(backupSqliteSchema).default([]),
  retention: retentionSchema.default({ daily: 7, weekly: 4, monthly: 3 }),
  /** Content checksums of every table in the manifest and the drill, besides exact row counts (one more read of each table; bench/backup). */
  checksums: z.boolean().default(false),
  /** Archives taken with each night's dumps, kept and pruned with them. */
  archives: z
    .strictObject({
      /** Named volumes (the dependencies', the app services' e.g. uploads; on the first host), archived by a helper container running tar. Not a live database's files: back those up as databases. */
      volumes: z.array(name('volume name')).default([]),
      /** The env files, secret files and proxy config (plus extraConfigFiles), in one tar written with mode 0600. */
      config: z.boolean().default(false),
      extraConfigFiles: z.array(absolutePath).default([]),
    })
    .default({ volumes: [], config: false, extraConfigFiles: [] }),
  /** Image of the helper container that reads volumes (needs tar). */
  helperImage: imageWithTag.default('debian:bookworm-slim'),
  /** Failure alerts: the webhook URL is a secret (Slack-style URLs are credentials), read from a file. */
  notify: z.strictObject({ webhookUrlFile: absolutePath }).optional(),
});

const replicaHealthCheckSchema = z.strictObject({
  /** Probed through the proxy (canary bake, restore); the main service's only. */
  path: z.string().startsWith('/', { error: 'must start with "/"' }).default('/health'),
  /** How long a new replica may take to become healthy. */
  timeoutSeconds: positiveInt.default(90),
  /** Run by the engine in each replica (else the image's HEALTHCHECK, else 2 s running). */
  command: healthCommand.optional(),
  ...probeFields,
});
const oneOffCommand = z.array(z.string().min(1)).min(1, { error: 'must have at least one word' });
/** Named volumes of an app's containers (name → path in the container), one per host, kept across releases. */
const volumesSchema = z.record(name('volume name'), absolutePath).default({});
const routePath = z.string().regex(/^\/([A-Za-z0-9._~-]+\/)*[A-Za-z0-9._~-]*$/, { error: 'must be a path prefix like "/api" (letters, digits, ".", "_", "~", "-")' });

/**
 * Another service of the app (001/004's API beside the frontend, a worker with no port): the app's
 * version is its image's tag too, and a release moves every service. With a route, the proxy sends
 * it the requests for its path prefix (and host); WebSocket upgrades pass through.
 */
const serviceSchema = z.strictObject({
  /** Default: the app's image. */
  image: imageRepository.optional(),
  command: oneOffCommand.optional(),
  /** Where it listens in the container; none for a worker. */
  port: port.optional(),
  /** Per host; default: the environment's replicas. */
  replicas: positiveInt.optional(),
  /** "first": only on the environment's first host, beside the dependencies (a worker on the database's network); default every host. */
  hosts: z.enum(['all', 'first']).default('all'),
  /** Non-secret settings; secrets go in the env file. */
  env: z.record(envVarName, z.string()).default({}),
  volumes: volumesSchema,
  healthCheck: replicaHealthCheckSchema.omit({ path: true }).default({ timeoutSeconds: 90 }),
  resources: resourcesSchema.optional(),
  route: z
    .strictObject({
      /** Requests for this prefix (\`/api\` and \`/api/...\`, the path unchanged), or these (\`[/api, /socket.io]\`), go to this service. */
      path: z.union([routePath, z.array(routePath).min(1, { error: 'must list at least one path' })]),
      /** Only requests for this host name (default: any). */
      host: dnsName.optional(),
    })
    .optional(),
});

const appSchema = z.strictObject({
  /** The main service (\`web\`, every request no other service's route takes): image, port, health check. */
  image: imageRepository,
  port,
  healthCheck: replicaHealthCheckSchema.default({ path: '/health', timeoutSeconds: 90 }),
  command: oneOffCommand.optional(),
  /** Non-secret settings of the main service; secrets go in the env file. */
  env: z.record(envVarName, z.string()).default({}),
  /** The main service's named volumes (an app on SQLite, its uploads), one per host. */
  volumes: volumesSchema,
  /** The app's other services, by name (an API, a worker). */
  services: z.record(name('service name'), serviceSchema).default({}),
  migrate: z.strictObject({ command: oneOffCommand, timeoutSeconds: positiveInt.default(300), /** Whose image runs it (default: the main service, web). */ service: name('service name').optional() }).optional(),
  envFile: envFileSchema.optional(),
  secretFiles: secretFilesSchema,
  dependencies: z.array(dependencySchema).default([]),
  /** Limits of each replica and the migration (an environment may replace them). */
  resources: resourcesSchema.optional(),
  proxyImage: imageWithTag,
  smokeTest: z
    .strictObject({
      path: z.string().startsWith('/', { error: 'must start with "/"' }).default('/'),
      expectStatus: z.number().int().min(100).max(599).default(200),
      /** Expected body; `{{version}}` is replaced by the deployed version. */
      expectBody: z.string().optional(),
    })
    .default({ path: '/', expectStatus: 200 }),
  stopTimeoutSeconds: positiveInt.default(30),
  backup: backupSchema.optional(),
  cutover: appCutoverSchema.optional(),
  /** What the proxies answer while the app is down on purpose (a restore, \`runbook maintenance on\`): 503, Retry-After and this page. */
  maintenance: z
    .strictObject({
      /** The page (HTML) on the worker; default: a plain page naming the app. */
      pageFile: absolutePath.optional(),
      retryAfterSeconds: positiveInt.max(86_400).default(30),
    })
    .default({ retryAfterSeconds: 30 }),
  /** Gates, deadlines and failures of every runbook on this app (an environment may replace it). */
  notify: notifySchema.optional(),
  environments: z.record(name('environment name'), environmentSchema),
});

export const inventorySchema = z.strictObject({
  hosts: z.record(name('host name'), hostSchema),
  apps: z.record(name('app name'), appSchema),
});

export type Inventory = z.infer<typeof inventorySchema>;
export type HostConfig = z.infer<typeof hostSchema>;
export type AppConfig = z.infer<typeof appSchema>;
export type EnvironmentConfig = z.infer<typeof environmentSchema>;
export type DependencyConfig = z.infer<typeof dependencySchema>;
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type BackupConfig = z.infer<typeof backupSchema>;
export type CutoverDatabaseConfig = z.infer<typeof cutoverDatabaseSchema>;
export type NotifyConfig = z.infer<typeof notifySchema>;
export type DeclaredHealthCheck = { command?: z.infer<typeof healthCommand> } & { [K in keyof typeof probeFields]?: number };
export type ResourcesConfig = z.infer<typeof resourcesSchema>;

export class InventoryError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid inventory:\n  - ${problems.join('\n  - ')}`);
    this.name = 'InventoryError';
  }
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function formatPath(path: PropertyKey[]): string {
  return path.length ? path.map(String).join('.') : '(top level)';
}

/** Parses and validates inventory YAML; throws InventoryError listing every problem with its path. */
export function parseInventory(yamlText: string): Inventory {
  let raw: unknown;
  try {
    raw = parseYaml(yamlText);
  } catch (err) {
    throw new InventoryError([`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InventoryError(['(top level): must be a mapping with "hosts" and "apps"']);
  }
  const result = inventorySchema.safeParse(raw);
  if (!result.success) {
    throw new InventoryError(
      result.error.issues.map((issue) => {
        if (issue.code === 'unrecognized_keys') return `${formatPath(issue.path)}: unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
        if (issue.code === 'invalid_type' && valueAt(raw, issue.path) === undefined) return `${formatPath(issue.path)}: is required`;
        if (issue.code === 'invalid_key') return `${formatPath(issue.path)}: ${issue.issues[0]?.message ?? issue.message}`;
        return `${formatPath(issue.path)}: ${issue.message}`;
      }),
    );
  }
  const inventory = result.data;
  const problems = crossReferenceProblems(inventory);
  if (problems.length) throw new InventoryError(problems);
  return inventory;
}

function crossReferenceProblems(inventory: Inventory): string[] {
  const problems: string[] = [];
  const portsByHost = new Map<string, string>();
  for (const [appName, app] of Object.entries(inventory.apps)) {
    const depNames = new Set<string>();
    app.dependencies.forEach((dep, i) => {
      if (depNames.has(dep.name)) problems.push(`apps.${appName}.dependencies.${i}.name: "${dep.name}" is used twice`);
      if (dep.name === 'web' || dep.name === 'proxy' || dep.name === 'migrate') problems.push(`apps.${appName}.dependencies.${i}.name: "${dep.name}" is reserved`);
      depNames.add(dep.name);
    });
    const routes = new Map<string, string>();
    for (const [svc, service] of Object.entries(app.services)) {
      const at = `apps.${appName}.services.${svc}`;
      if (svc === 'web' || svc === 'proxy' || svc === 'migrate') problems.push(`${at}: "${svc}" is reserved${svc === 'web' ? ' (the main service: image, port and healthCheck of the app itself)' : ''}`);
      if (depNames.has(svc)) problems.push(`${at}: "${svc}" is also a dependency's name`);
      if (service.route) {
        if (service.port === undefined) problems.push(`${at}.route: a routed service needs a port`);
        if (service.hosts === 'first') problems.push(`${at}.hosts: a routed service runs on every host (each host's proxy sends it requests): remove "hosts: first" or the route`);
        for (const path of typeof service.route.path === 'string' ? [service.route.path] : service.route.path) {
          const key = `${service.route.host ?? '*'}${path.replace(/\/$/, '')}`;
          if (path === '/' && service.route.host === undefined) problems.push(`${at}.route.path: "/" on every host is the main service's; give a longer prefix or a host`);
          const other = routes.get(key);
          if (other) problems.push(`${at}.route: ${path} is already routed to ${other === svc ? 'it' : `services.${other}`}`);
          routes.set(key, svc);
        }
      }
    }
    const serviceNames = ['web', ...Object.keys(app.services)];
    for (const dep of app.dependencies) {
      const clash = serviceNames.find((svc) => new RegExp(`^${svc}-\\d+$`).test(dep.name));
      if (clash) problems.push(`apps.${appName}.dependencies: "${dep.name}" would share its container name with a replica of ${clash}`);
    }
    if (app.migrate?.service !== undefined && !serviceNames.includes(app.migrate.service)) {
      problems.push(`apps.${appName}.migrate.service: unknown service "${app.migrate.service}" (known: ${serviceNames.join(', ')})`);
    }
    if (app.backup) {
      const names = new Set<string>();
      if (app.backup.databases.length + app.backup.sqlite.length === 0) problems.push(`apps.${appName}.backup: must list at least one database (databases: PostgreSQL, sqlite: SQLite files)`);
      app.backup.sqlite.forEach((db, i) => {
        const at = `apps.${appName}.backup.sqlite.${i}`;
        if (names.has(db.name)) problems.push(`${at}.name: "${db.name}" is used twice`);
        names.add(db.name);
        const volumes = db.service === 'web' ? app.volumes : app.services[db.service]?.volumes;
        const firstOnly = db.service !== 'web' && app.services[db.service]?.hosts === 'first';
        const spread = Object.entries(app.environments).filter(([, e]) => e.hosts.length > 1 && !firstOnly).map(([n]) => n);
        if (spread.length) problems.push(`${at}.service: ${db.service} runs on several hosts in ${spread.join(', ')}: each host would have its own copy of ${db.path} (give the service "hosts: first", or one host)`);
        if (volumes === undefined) problems.push(`${at}.service: unknown service "${db.service}" (known: ${serviceNames.join(', ')})`);
        else if (!Object.values(volumes).some((target) => db.path.startsWith(`${target.replace(/\/$/, '')}/`))) {
          problems.push(`${at}.path: ${db.path} is on none of the service's volumes (${Object.values(volumes).join(', ') || 'it has none'}): the database would not outlive its container`);
        }
      });
      app.backup.databases.forEach((db, i) => {
        const at = `apps.${appName}.backup.databases.${i}`;
        if (names.has(db.name)) problems.push(`${at}.name: "${db.name}" is used twice`);
        names.add(db.name);
        if (db.dependency !== undefined && !depNames.has(db.dependency)) {
          problems.push(`${at}.dependency: unknown dependency "${db.dependency}" (known: ${[...depNames].join(', ') || 'none'})`);
        }
      });
      const declared = new Set([...app.dependencies.flatMap((d) => Object.keys(d.volumes)), ...Object.keys(app.volumes), ...Object.values(app.services).flatMap((s) => Object.keys(s.volumes))]);
      app.backup.archives.volumes.forEach((v, i) => {
        if (!declared.has(v)) problems.push(`apps.${appName}.backup.archives.volumes.${i}: unknown volume "${v}" (the app and its dependencies declare: ${[...declared].join(', ') || 'none'})`);
      });
      const storage = app.backup.storage;
      if (storage.type === 'directory' && storage.host !== undefined && !inventory.hosts[storage.host]) {
        problems.push(`apps.${appName}.backup.storage.host: unknown host "${storage.host}" (known: ${Object.keys(inventory.hosts).join(', ') || 'none'})`);
      }
    }
    const older = [
      ...(app.backup?.notify ? [`apps.${appName}.backup.notify`] : []),
      ...Object.entries(app.environments).flatMap(([e, env]) => (env.proxy.tls?.notify ? [`apps.${appName}.environments.${e}.proxy.tls.notify`] : [])),
    ];
    const hasNotify = app.notify !== undefined || Object.values(app.environments).some((env) => env.notify !== undefined);
    if (hasNotify && older.length) {
      problems.push(`${older.join(', ')}: remove it (its failures are posted by the app's notify too, so each would arrive twice); move the URL file into apps.${appName}.notify.webhooks`);
    }
    if (Object.keys(app.environments).length === 0) problems.push(`apps.${appName}.environments: must define at least one environment`);
    for (const [envName, env] of Object.entries(app.environments)) {
      const at = `apps.${appName}.environments.${envName}`;
      env.hosts.forEach((host, i) => {
        if (!inventory.hosts[host]) problems.push(`${at}.hosts.${i}: unknown host "${host}" (known: ${Object.keys(inventory.hosts).join(', ') || 'none'})`);
        const key = `${host}:${inventory.hosts[host]?.bindAddress ?? env.proxy.bindAddress}:${env.proxy.hostPort}`;
        const other = portsByHost.get(key);
        if (other) problems.push(`${at}.proxy.hostPort: port ${env.proxy.hostPort} on host "${host}" is already used by ${other}`);
        else portsByHost.set(key, `${appName}/${envName}`);
      });
      if (new Set(env.hosts).size !== env.hosts.length) problems.push(`${at}.hosts: lists a host twice`);
      if (env.approvers.length > 0 && env.minApprovals > env.approvers.length) {
        problems.push(`${at}.minApprovals: ${env.minApprovals} approvals required but only ${env.approvers.length} approver(s) listed`);
      }
      if (`${appName}-${envName}`.length > 40) problems.push(`${at}: "${appName}-${envName}" is too long for container names (40 characters at most)`);
      const tls = env.proxy.tls;
      if (tls) {
        if (env.proxy.httpsPort === undefined) problems.push(`${at}.proxy.httpsPort: is required with proxy.tls (the host port for HTTPS)`);
        const domains = tls.domains ?? (env.proxy.domain ? [env.proxy.domain] : []);
        if (domains.length === 0) problems.push(`${at}.proxy.tls.domains: name the domains (or set proxy.domain)`);
        if (!tls.selfSigned && tls.challenge === 'http-01' && domains.some((d) => d.startsWith('*.'))) {
          problems.push(`${at}.proxy.tls.challenge: a wildcard (${domains.filter((d) => d.startsWith('*.')).join(', ')}) can only be validated with dns-01`);
        }
        if (!tls.selfSigned && tls.challenge === 'dns-01' && !tls.dns) problems.push(`${at}.proxy.tls.dns: is required with the dns-01 challenge`);
      }
      if (env.proxy.httpsPort !== undefined && env.proxy.httpsPort === env.proxy.hostPort) problems.push(`${at}.proxy.httpsPort: must differ from proxy.hostPort`);
    }
  }
  return problems;
}
