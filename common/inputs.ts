// What a runbook input may be: one zod schema per runbook, shared by the CLI (checked before a
// start), the workflows (checked before the first command, so malformed JSON typed in the Temporal UI
// fails at once naming the field), the docs (client/input-docs.ts renders docs/inputs.md) and the UI
// (a JSON Schema per input). Pure: bundled into workflows. Defaults are stated in the descriptions
// ("Default: ..." at the end); the workflows apply them, the schemas do not transform the input.
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { parseDuration } from './duration';
import { NAME_PATTERN, VERSION_PATTERN, type RunbookName } from './naming';
import {
  PIN_REASONS,
  type FirstDeployInput,
  type IssueCertificateInput,
  type NightlyBackupInput,
  type RestoreBackupInput,
  type RollingUpdateInput,
} from './types';

/** The longest approval gate wait. */
export const MAX_APPROVAL_TIMEOUT = '30d';

const typeError = (expected: string) => (iss: { input?: unknown }) => (iss.input === undefined ? `is required (${expected})` : `must be ${expected}, got ${JSON.stringify(iss.input) ?? String(iss.input)}`);

const name = (what: string) =>
  z.string({ error: typeError('a name') }).regex(NAME_PATTERN, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid ${what} name (lower-case letters, digits and "-", starting with a letter, at most 30)` });
const bool = () => z.boolean({ error: typeError('true or false') });
const text = () => z.string({ error: typeError('a string') });
const version = () => z.string({ error: typeError('an image tag, e.g. "v2"') }).regex(VERSION_PATTERN, { error: (iss) => `${JSON.stringify(iss.input)} is not an image tag (e.g. "v2")` });

/** A duration ("90s", "15m", "48h", "7d"), checked with parseDuration; `min`/`max` in parseDuration terms. */
const duration = (limits: { positive?: boolean; max?: string } = {}) =>
  z.string({ error: typeError('a duration like "15m" or "7d"') }).superRefine((value, ctx) => {
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a duration (use e.g. "90s", "15m", "48h", "7d")` });
      return;
    }
    if (limits.positive && ms <= 0) ctx.addIssue({ code: 'custom', message: 'must be longer than 0' });
    if (limits.max !== undefined && ms > parseDuration(limits.max)) ctx.addIssue({ code: 'custom', message: `${value} exceeds the maximum of ${limits.max}` });
   })
    .meta({ title: 'duration' });

const int = (min: number) =>
  z
    .number({ error: typeError(`a whole number ≥ ${min}`) })
    .int({ error: `must be a whole number ≥ ${min}` })
    .min(min, { error: `must be a whole number ≥ ${min}` });

const target = {
  app: name('app').describe('The app, as named in the inventory.'),
  env: name('environment').describe('The environment, as named in the inventory.'),
};

const approvalTimeout = () =>
  duration({ max: MAX_APPROVAL_TIMEOUT })
    .optional()
    .describe(`How long an approval gate waits before its safe default (do not proceed); at most ${MAX_APPROVAL_TIMEOUT}. Default: "7d".`);

export const FirstDeployInputSchema = z
  .strictObject({
    ...target,
    version: version().optional().describe("Image tag to deploy. Default: the environment's `version` in the inventory."),
    dryRun: bool().optional().describe('Return the plan and the preflight results; change nothing. Default: false.'),
    goLiveApproval: bool().optional().describe("Stop for approval before the proxy exposes the app. Default: the inventory's goLiveApproval."),
    approvalTimeout: approvalTimeout(),
  })
  .describe('firstDeploy: the first deploy of an app to an environment.');

const canary = z.union([z.literal('none'), z.literal('approve'), z.strictObject({ bake: duration({ positive: true }).describe('How long the canary is watched, e.g. "10m".') })], {
  error: 'must be "none", "approve" or {"bake": "10m"}',
});

export const RollingUpdateInputSchema = z
  .strictObject({
    ...target,
    version: version().optional().describe('The target version. Required unless isRollback (a rollback without it goes to the version before the running one).'),
    batchSize: int(1).optional().describe('Replicas replaced at a time, across hosts. Default: 1.'),
    canary: canary.optional().describe('After the first batch: "approve" (a gate), {"bake": "10m"} (health/error-rate watch) or "none". Default: "none".'),
    backup: bool().optional().describe('Take a backup first (a child nightlyBackup, no pruning, pinned). Default: true when the app has a backup section.'),
    approvalTimeout: approvalTimeout(),
    drainTimeout: duration().optional().describe("After a switch, the longest wait for the proxy's previous workers to finish in-flight requests before SIGTERM. Default: \"30s\"."),
    drainDelay: duration().optional().describe('An extra fixed wait after the drain, before SIGTERM (traffic that bypasses the proxy). Default: "0s".'),
    surge: int(0).optional().describe('How many batches beyond the one being switched may boot meanwhile; 0: strictly one batch after the other. Default: all of them.'),
    bakeInterval: duration().optional().describe('Bake: how often the proxies are probed (at least 1s). Default: "5s".'),
    maxErrorRate: z
      .number({ error: typeError('a number in [0, 1)') })
      .min(0, { error: 'must be a number in [0, 1)' })
      .lt(1, { error: 'must be a number in [0, 1)' })
      .optional()
      .describe('Bake: the error rate that fails the canary. Default: 0.01.'),
    isRollback: bool().optional().describe('Set by `runbook rollback`: the update is a rollback (no canary, no backup unless asked). Default: false.'),
  })
  .superRefine((input, ctx) => {
    if (input.version === undefined && !input.isRollback) ctx.addIssue({ code: 'custom', path: ['version'], message: 'is required (an image tag, e.g. "v2") unless isRollback' });
  })
  .describe('rollingUpdate: replace the web containers with another version, batch by batch.');

const pin = z
  .strictObject({
    reason: z.enum(PIN_REASONS, { error: `must be one of ${PIN_REASONS.map((r) => `"${r}"`).join(', ')}` }).describe('Why the backup is kept outside the nightly retention.'),
    window: duration({ positive: true }).optional().describe('How long from the backup until the pin ends by itself. Default: "30d".'),
  }, { error: typeError('an object like {"reason": "pre-update"}') });

export const NightlyBackupInputSchema = z
  .strictObject({
    ...target,
    skipPrune: bool().optional().describe('Skip retention pruning this night (the backup and drill still run). Default: false.'),
    pin: pin.optional().describe('Pin this run\'s backups, e.g. {"reason": "pre-update", "window": "30d"}: retention neither prunes nor counts them until released or until the window ends. Default: no pin.'),
  })
  .describe('nightlyBackup: back up the databases, volumes and config of an app/env, drill-restore, prune.');

export const RestoreBackupInputSchema = z
  .strictObject({
    ...target,
    database: text().optional().describe('The database (its logical name in the inventory). Default: the only one.'),
    backup: text().min(1, { error: 'must be a backup file name or "latest"' }).optional().describe('A backup file name, or "latest" (the newest verified one). Default: "latest".'),
    safetyPinWindow: duration({ positive: true }).optional().describe('How long the safety backup stays pinned (out of the nightly retention) unless released first. Default: "30d".'),
    approvalTimeout: approvalTimeout(),
    keepPrevious: bool().optional().describe('Keep the pre-restore copy of the database until someone drops it by hand (no window). Default: false.'),
    keepPreviousFor: duration().optional().describe('How long the pre-restore copy (every write up to the stop) is kept before it is dropped, unless released earlier. Default: "7d".'),
  })
  .describe('restoreBackup: restore a database from a verified backup (after approval), keeping the previous one.');

export const RestoreArchiveInputSchema = z
  .strictObject({
    ...target,
    volume: name('volume').optional().describe('The volume to restore, as named in the inventory (one of backup.archives.volumes). Its containers are stopped while it is replaced.'),
    config: bool().optional().describe("true: restore the config archive's worker files (env files, secret files) instead; each file it replaces is kept beside it. The app is not stopped."),
    archive: text().min(1, { error: 'must be an archive file name or "latest"' }).optional().describe('An archive file name, or "latest" (the newest complete one). Default: "latest".'),
    approvalTimeout: approvalTimeout(),
  })
  .refine((i) => (i.volume === undefined) !== (i.config !== true), { error: 'say what to restore: either "volume": "<name>" or "config": true', path: ['volume'] })
  .describe('restoreArchive: restore a volume or the config files from the archives a backup night takes (after approval); the current content is archived first and put back if anything fails.');
export type RestoreArchiveInput = z.infer<typeof RestoreArchiveInputSchema>;

export const IssueCertificateInputSchema = z
  .strictObject({
    ...target,
    domains: z
      .array(
        z.string({ error: typeError('a name') }).refine((d) => d.length > 0 && d.length <= 253 && !/\s/.test(d), { error: (iss) => `${JSON.stringify(iss.input)} is not a name` }),
        { error: typeError('a list of names, e.g. ["example.com", "www.example.com"]') },
      )
      .min(1, { error: 'must be a non-empty list of names, e.g. ["example.com", "www.example.com"]' })
      .max(100, { error: 'at most 100 names in one certificate' })
      .optional()
      .describe("Names to cover. Default: the inventory's proxy.tls.domains, or proxy.domain."),
    staging: bool().optional().describe("Use the CA's staging directory (test certificates, generous rate limits). Default: false."),
    selfSigned: bool().optional().describe('A self-signed certificate made on the host (development); no CA involved. Default: false.'),
    force: bool().optional().describe('Issue even when the served certificate covers the names with more than a third of its lifetime left. Default: false.'),
    reason: text().max(1000, { error: 'must be a string of at most 1000 characters' }).optional().describe('Set by renewCertificates: why this run was started. Default: none.'),
  })
  .superRefine((input, ctx) => {
    if (input.selfSigned && input.staging) ctx.addIssue({ code: 'custom', path: ['selfSigned'], message: 'excludes "staging" (a self-signed certificate involves no CA)' });
  })
  .describe('issueCertificate: issue (or renew) the TLS certificate of an app/env and install it in its proxies.');

export const ReleasePreviousDatabaseInputSchema = z
  .strictObject({
    ...target,
    database: text().min(1, { error: 'must be the logical name of a database' }).describe('The database (its logical name in the inventory) that was restored.'),
    runTag: text().min(1, { error: 'must be the restore\'s run tag' }).describe('The restore\'s run tag (part of the kept database\'s name).'),
    keepFor: duration().describe('How long the pre-restore database is kept before it is dropped, unless released earlier (restoreBackup passes its keepPreviousFor, default "7d").'),
  })
  .describe('releasePreviousDatabase: keeps the database as it was before a restore, then drops it (started by restoreBackup).');
export type ReleasePreviousDatabaseInput = z.infer<typeof ReleasePreviousDatabaseInputSchema>;

const recordName = () =>
  z
    .string({ error: typeError('a DNS name') })
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+\.?$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a DNS name (e.g. "app.example.com")` });

export const DnsCutoverInputSchema = z
  .strictObject({
    app: target.app,
    from: name('environment').describe('The environment that serves now (the old side).'),
    to: name('environment').describe('The environment that takes over (the new side).'),
    records: z
      .array(recordName(), { error: typeError('a list of DNS names') })
      .min(1, { error: 'must name at least one record' })
      .optional()
      .describe("The A/AAAA records moved. Default: the inventory's cutover.records."),
    rehearse: bool().optional().describe("Rehearsal (seed Pitfall 5): the inventory's rehearsal record and databases, no go/no-go gate, and a rollback by itself after validation; reports each phase's duration and whether the rollback restored the starting state. Default: false."),
    lowTtl: int(1).max(86400, { error: 'must be at most 86400' }).optional().describe('The TTL (seconds) the records carry around the switch. Default: 60.'),
    ttlLeadTime: duration().optional().describe('How long before the switch the TTL is lowered; the switch waits at least this plus the old TTL. Default: "48h".'),
    dnsTimeout: duration({ positive: true }).optional().describe('How long a DNS change may take to show at every authoritative server. Default: "15m".'),
    catchUpTimeout: duration({ positive: true }).optional().describe('At the switch, how long replication may take to catch up once writes stop (the write freeze). Default: "5m".'),
    validationDelay: duration().optional().describe('After the switch, when validation starts. Default: "15m".'),
    validationWindow: duration({ positive: true }).optional().describe('After the switch, when validation ends. Default: "2h".'),
    validationRound: duration({ positive: true }).optional().describe('Validation is judged once per round (the decision tree). Default: "15m".'),
    probeInterval: duration({ positive: true }).optional().describe('How often a validation round probes the new side. Default: "5s".'),
    latencyMargin: duration().optional().describe('A median latency within this much of the baseline never counts as slower, whatever the ratio (2 ms against 1 ms is noise, not 2×). Default: "25ms".'),
    ttlRestoreAfter: duration().optional().describe('After the switch, when the records get their old TTL back. Default: "24h".'),
    reconcileEvery: duration({ positive: true }).optional().describe('How often the databases are reconciled inside the window. Default: "6h".'),
    window: duration({ positive: true, max: '90d' }).optional().describe('The rollback window after the switch; then a gate decommissions the old side. Default: "7d".'),
    backup: bool().optional().describe('Back up the old side (a child nightlyBackup, pinned): a fresh verified backup before the go/no-go gate, and a final one at decommission. Default: true when the app has backups.'),
    approvalTimeout: approvalTimeout(),
  })
  .superRefine((input, ctx) => {
    if (input.from === input.to) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must differ from "from"' });
  })
  .describe('dnsCutover: move an app from one environment to another by DNS, with its data, and keep a rollback open for a week.');
export type DnsCutoverInput = z.infer<typeof DnsCutoverInputSchema>;

export const BackupCatalogInputSchema = z
  .strictObject({ ...target })
  .describe('backupCatalog: which backups an app/env has (read-only; `runbook backups`): per database, each backup with its time, size, whether a drill verified it, and its pin.');
export type BackupCatalogInput = z.infer<typeof BackupCatalogInputSchema>;

export const MaintenanceModeInputSchema = z
  .strictObject({
    ...target,
    on: bool().describe('true: every proxy of the app/env answers 503 with Retry-After and the maintenance page (apps.<app>.maintenance); false: the app again.'),
    reason: z.string({ error: typeError('a string') }).max(200).optional().describe('Why, kept in the proxies\' snippet and the run\'s history.'),
  })
  .describe('maintenanceMode: turn maintenance mode on or off on every proxy of an app/env (`runbook maintenance on|off`). Takes the app/env lock: refused while another runbook runs there.');
export type MaintenanceModeInput = z.infer<typeof MaintenanceModeInputSchema>;

export const StopAppInputSchema = z
  .strictObject({
    ...target,
    removeVolumes: bool().optional().describe('Also remove the named volumes (its data), after a "remove-volumes" approval. Default: false (they are kept).'),
    approvalTimeout: approvalTimeout(),
  })
  .describe('stopApp: stop an app/env (`runbook stop`): every container of it on every host, the proxy first, the databases last, and its networks; volumes are kept unless removing them is asked for and approved.');
export type StopAppInput = z.infer<typeof StopAppInputSchema>;

export const UpdateDependencyInputSchema = z
  .strictObject({
    ...target,
    service: z.string().regex(NAME_PATTERN, { error: 'must be a dependency name from the inventory' }).describe('The dependency, as named in the inventory (e.g. "redis").'),
    version: version().optional().describe("The image tag it goes to; must be the inventory's (edit the inventory first). Default: the inventory's."),
    backup: bool().optional().describe('Take a backup first (a child nightlyBackup, pinned). Default: true when a backup database lives in it.'),
    approvalTimeout: approvalTimeout(),
  })
  .describe("updateDependency: replace one dependency's container with the image the inventory declares (`runbook update <app> --service <name>`): its volumes kept, health-gated, an approval gate for a database, rolled back to the old image on failure.");
export type UpdateDependencyInput = z.infer<typeof UpdateDependencyInputSchema>;

/** The schema of each runbook's input, by workflow type (the runbooks that take one). */
export const HousekeepingInputSchema = z
  .strictObject({
    ...target,
    dryRun: bool().optional().describe('true: decide and report (what would be removed, what is kept and why, disk use), remove nothing. Default: false.'),
  })
  .describe("housekeeping: on every host of an app/env, remove the images of the app's repository older than the running and the previous version; never an image a container uses (`runbook housekeeping`). Takes the app/env lock unless dryRun: never races an update.");
export type HousekeepingInput = z.infer<typeof HousekeepingInputSchema>;

export const UpdateFromRegistryInputSchema = z
  .strictObject({
    ...target,
    tag: z
      .string({ error: typeError('an image tag, e.g. "latest"') })
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, { error: (iss) => `${JSON.stringify(iss.input)} is not an image tag (e.g. "latest")` })
      .optional()
      .describe("The tag to follow in the registry. Default: the tag of the environment's `version` in the inventory."),
    batchSize: int(1).optional().describe('The rolling update: replicas replaced at a time. Default: 1.'),
    canary: canary.optional().describe('The rolling update: after the first batch, "approve", {"bake": "10m"} or "none". Default: {"bake": "1m"}: nobody need be awake for a new digest at 03:00, and a bad one is rolled back by itself.'),
    approvalTimeout: approvalTimeout(),
    drainTimeout: duration().optional().describe('The rolling update\'s drain timeout. Default: "30s".'),
  })
  .describe("updateFromRegistry: Watchtower's job with the runbooks' gates (`runbook schedule updates`): ask the registry for the digest of the tracked tag; when it is not what runs, a rollingUpdate to `<tag>@<digest>` (backup first, migration, canary, rollback of the whole fleet on failure, and an alert).");
export type UpdateFromRegistryInput = z.infer<typeof UpdateFromRegistryInputSchema>;

export const INPUT_SCHEMAS = {
  firstDeploy: FirstDeployInputSchema,
  rollingUpdate: RollingUpdateInputSchema,
  nightlyBackup: NightlyBackupInputSchema,
  restoreBackup: RestoreBackupInputSchema,
  restoreArchive: RestoreArchiveInputSchema,
  issueCertificate: IssueCertificateInputSchema,
  releasePreviousDatabase: ReleasePreviousDatabaseInputSchema,
  dnsCutover: DnsCutoverInputSchema,
  backupCatalog: BackupCatalogInputSchema,
  maintenanceMode: MaintenanceModeInputSchema,
  stopApp: StopAppInputSchema,
  housekeeping: HousekeepingInputSchema,
  updateDependency: UpdateDependencyInputSchema,
  updateFromRegistry: UpdateFromRegistryInputSchema,
} as const satisfies Partial<Record<RunbookName | 'releasePreviousDatabase' | 'backupCatalog', z.ZodType>>;
export type RunbookWithInputSchema = keyof typeof INPUT_SCHEMAS;

// One source of truth: the interfaces in common/types.ts must equal what the schemas accept.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameTypes: [
  Same<z.infer<typeof FirstDeployInputSchema>, FirstDeployInput>,
  Same<z.infer<typeof RollingUpdateInputSchema>, RollingUpdateInput>,
  Same<z.infer<typeof NightlyBackupInputSchema>, NightlyBackupInput>,
  Same<z.infer<typeof RestoreBackupInputSchema>, RestoreBackupInput>,
  Same<z.infer<typeof IssueCertificateInputSchema>, IssueCertificateInput>,
] = [true, true, true, true, true];
void sameTypes;

type Issue = z.core.$ZodIssue;

/** Every problem as `<path>: <message>`; a union's problems come from the branch that got furthest. */
export function inputProblems(issues: readonly Issue[], base: PropertyKey[] = []): string[] {
  const out: string[] = [];
  for (const iss of issues) {
    const path = [...base, ...iss.path];
    if (iss.code === 'invalid_union') {
      const deep = iss.errors.filter((branch) => branch.some((b) => b.path.length > 0 || b.code === 'unrecognized_keys'));
      if (deep.length === 1) {
        out.push(...inputProblems(deep[0], path));
        continue;
      }
    }
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) out.push(`${formatPath([...path, key])}: is not an option`);
      continue;
    }
    out.push(`${formatPath(path)}: ${iss.message}`);
  }
  return out;
}

function formatPath(path: PropertyKey[]): string {
  if (path.length === 0) return '(input)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/**
 * The input, checked against its runbook's schema; else a non-retryable InvalidInput naming every
 * failing field: `invalid input: canary.bake: "10x" is not a duration (...); batchSize: ...`.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, runbook: string): z.infer<S> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw ApplicationFailure.nonRetryable(`invalid input: ${runbook} takes a JSON object like {"app": "demo", "env": "production"}`, 'InvalidInput');
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw ApplicationFailure.nonRetryable(`invalid input: ${inputProblems(result.error.issues).join('; ')}`, 'InvalidInput');
}

/** The JSON Schema of a runbook's input (for the UI and the docs). */
export function inputJsonSchema(runbook: RunbookWithInputSchema): Record<string, unknown> {
  return z.toJSONSchema(INPUT_SCHEMAS[runbook]) as Record<string, unknown>;
}
