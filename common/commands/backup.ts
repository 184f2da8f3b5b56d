// Nightly backups: file names (sortable by time), the zstd argv, the manifest written beside each
// backup (and its validation when read back), the psql argv/script that takes row counts and
// checksums inside the database container, and a streaming demultiplexer for Docker exec output
// that respects backpressure. Pure: no I/O here.
import { Transform, type TransformCallback } from 'node:stream';
import { PIN_REASONS, type BackupPin } from '../types';
import { checksumSessionSql, beginSnapshotSql, dbnameArg, listUserTablesSql, serverVersionSql, tableChecksumSql, displayTableName, type PgConnection, type TableRef, type TableStat } from './sql';

// ---- names ----

export const BACKUP_SUFFIX = '.sql.zst';
export const MANIFEST_SUFFIX = '.manifest.json';
export const PARTIAL_SUFFIX = '.partial';

const PART = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Why app/env/database cannot name a backup file (undefined: fine). */
export function backupNameProblem(parts: { app: string; env: string; database: string }): string | undefined {
  for (const key of ['app', 'env', 'database'] as const) {
    const value = parts[key];
    if (typeof value !== 'string' || !PART.test(value)) {
      return `${key} ${JSON.stringify(value)} cannot be part of a backup file name (letters, digits, _ . -; at most 63, starting with a letter or digit)`;
    }
  }
  return undefined;
}

/** `2025-01-02T03:04:05.678Z` → `20250102T030405Z` (UTC, seconds). Throws on an invalid time. */
export function backupTimestamp(at: Date | string): string {
  const d = typeof at === 'string' ? new Date(at) : at;
  if (Number.isNaN(d.getTime())) throw new Error(`invalid backup time ${JSON.stringify(String(at))}`);
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

type Series = { app: string; env: string; database: string };

/** Joins app, env and database when one of them has a hyphen: never part of a name, so the split is unique. */
export const SERIES_SEPARATOR = '~';

/**
 * True when the plain `<app>-<env>-<db>-` prefix of a series is shared with other series: a part
 * has a hyphen (env `prod` + db `eu-main` and env `prod-eu` + db `main` both give `…-prod-eu-main-`).
 * With no hyphen in any part, the plain prefix is unambiguous (any other series would need the
 * same two hyphens in the same places).
 */
export function seriesPrefixShared(parts: Series): boolean {
  return [parts.app, parts.env, parts.database].some((p) => p.includes('-'));
}

const plainPrefix = (parts: Series) => `${parts.app}-${parts.env}-${parts.database}-`;

/**
 * The prefix of new backups of a series: `<app>-<env>-<db>-` when that is unambiguous (no hyphen in
 * any part: every existing name stays as it was), else `<app>~<env>~<db>-`.
 */
export function backupSeriesPrefix(parts: Series): string {
  return seriesPrefixShared(parts) ? `${parts.app}${SERIES_SEPARATOR}${parts.env}${SERIES_SEPARATOR}${parts.database}-` : plainPrefix(parts);
}

/** Every prefix a backup of the series can have: the current one, and the plain one that backups of a hyphenated series were written with before. */
export function backupSeriesPrefixes(parts: Series): string[] {
  return [...new Set([backupSeriesPrefix(parts), plainPrefix(parts)])];
}

/**
 * `<app>-<env>-<db>-<YYYYMMDDTHHMMSSZ>.sql.zst` (`<app>~<env>~<db>-…` when a part has a hyphen):
 * names of one app/env/db sort by time, and no two series share a name.
 */
export function backupFileName(parts: Series, at: Date | string): string {
  const problem = backupNameProblem(parts);
  if (problem) throw new Error(problem);
  return `${backupSeriesPrefix(parts)}${backupTimestamp(at)}${BACKUP_SUFFIX}`;
}

/** The manifest beside a backup: `x.sql.zst` → `x.manifest.json`. */
export function manifestFileName(backupFile: string): string {
  if (!backupFile.endsWith(BACKUP_SUFFIX)) throw new Error(`not a backup file name: ${backupFile}`);
  return backupFile.slice(0, -BACKUP_SUFFIX.length) + MANIFEST_SUFFIX;
}

/** Where a file is written before it is complete: never mistaken for a finished backup. */
export function partialFileName(finalName: string): string {
  return finalName + PARTIAL_SUFFIX;
}

/**
 * Parses a backup file name of one app/env/db (names of others, partials and manifests: undefined).
 * `shared`: the name is a plain one that other series can have too (a hyphenated part): only its
 * manifest says whose it is.
 */
export function parseBackupFileName(name: string, parts: Series): { createdAt: string; shared?: true } | undefined {
  if (!name.endsWith(BACKUP_SUFFIX)) return undefined;
  for (const prefix of backupSeriesPrefixes(parts)) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(name.slice(prefix.length, -BACKUP_SUFFIX.length));
    if (!m) continue;
    const iso = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
    const d = new Date(iso);
    if (Number.isNaN(d.getTime()) || d.toISOString() !== iso.replace('Z', '.000Z')) continue;
    return prefix === plainPrefix(parts) && seriesPrefixShared(parts) ? { createdAt: iso, shared: true } : { createdAt: iso };
  }
  return undefined;
}

/**
 * Why a manifest read for `file` does not describe a backup of this app/env/database (undefined:
 * it does). Names can be shared (see seriesPrefixShared); the manifest says whose a backup is.
 */
export function manifestIdentityProblem(manifest: Pick<BackupManifest, 'app' | 'env' | 'database' | 'file'>, parts: Series, file: string): string | undefined {
  if (manifest.app !== parts.app || manifest.env !== parts.env || manifest.database !== parts.database) {
    return `its manifest names ${manifest.app}/${manifest.env}/${manifest.database}, not ${parts.app}/${parts.env}/${parts.database}`;
  }
  if (manifest.file !== file) return `its manifest describes ${manifest.file}, not ${file}`;
  return undefined;
}

// ---- archives (named volumes, config files) ----

export const VOLUME_ARCHIVE_SUFFIX = '.tar.zst';
export const CONFIG_ARCHIVE_SUFFIX = '.tar';

/**
 * `<app>-<env>-volume-<name>-<time>.tar.zst` and `<app>-<env>-config-<time>.tar`: the same time as
 * the night's database dumps, so they are kept or pruned with them.
 */
export function archiveFileName(parts: { app: string; env: string }, kind: 'volume' | 'config', at: Date | string, volume?: string): string {
  const series = kind === 'volume' ? `volume-${volume ?? ''}` : 'config';
  const problem = backupNameProblem({ app: parts.app, env: parts.env, database: series });
  if (problem || (kind === 'volume' && !volume)) throw new Error(problem ?? 'a volume archive needs the volume name');
  return `${parts.app}-${parts.env}-${series}-${backupTimestamp(at)}${kind === 'volume' ? VOLUME_ARCHIVE_SUFFIX : CONFIG_ARCHIVE_SUFFIX}`;
}

export function archiveManifestName(file: string): string {
  for (const suffix of [VOLUME_ARCHIVE_SUFFIX, CONFIG_ARCHIVE_SUFFIX]) if (file.endsWith(suffix)) return file.slice(0, -suffix.length) + MANIFEST_SUFFIX;
  throw new Error(`not an archive file name: ${file}`);
}

/** Archives of a night, by the night's timestamp (`20250102T030405Z`), for pruning with its dumps. */
export function isArchiveOfNight(name: string, parts: { app: string; env: string }, timestamp: string): boolean {
  const prefix = `${parts.app}-${parts.env}-`;
  if (!name.startsWith(prefix)) return false;
  const rest = name.slice(prefix.length);
  return [`-${timestamp}${VOLUME_ARCHIVE_SUFFIX}`, `-${timestamp}${CONFIG_ARCHIVE_SUFFIX}`, `-${timestamp}${MANIFEST_SUFFIX}`].some(
    (end) => rest.endsWith(end) && (rest.startsWith('volume-') || rest === `config${end}`),
  );
}

/** tar of the volume mounted read-only at /data, to stdout; numeric owners so a restore keeps them. */
export function volumeTarArgv(): string[] {
  return ['tar', '--create', '--file=-', '--directory=/data', '--numeric-owner', '.'];
}

/** Empties the volume mounted at /data (hidden files too; /data itself stays) before an archive is extracted into it. */
export function volumeClearArgv(): string[] {
  return ['find', '/data', '-mindepth', '1', '-delete'];
}

/** Extracts the tar on stdin into /data with the archived numeric owners and modes (the helper's users are not the app's). */
export function volumeExtractArgv(): string[] {
  return ['tar', '--extract', '--file=-', '--directory=/data', '--numeric-owner', '--same-owner', '--same-permissions'];
}

/** The archives of one volume (or the config archives, `volume` undefined): the time a name was taken at, or undefined when it is not one of them. */
export function archiveTime(name: string, parts: { app: string; env: string }, volume?: string): string | undefined {
  const series = volume === undefined ? 'config' : `volume-${volume}`;
  const suffix = volume === undefined ? CONFIG_ARCHIVE_SUFFIX : VOLUME_ARCHIVE_SUFFIX;
  const prefix = `${parts.app}-${parts.env}-${series}-`;
  if (!name.startsWith(prefix) || !name.endsWith(suffix)) return undefined;
  const stamp = name.slice(prefix.length, name.length - suffix.length);
  // exactly a timestamp: volume "media" must not take volume "media-old"'s archives
  return /^\d{8}T\d{6}Z$/.test(stamp) ? stamp : undefined;
}

export interface ArchiveManifest {
  kind: 'volume' | 'config';
  app: string;
  env: string;
  /** The volume's name in the inventory (volume archives). */
  volume?: string;
  file: string;
  createdAt: string;
  sizeBytes: number;
  sha256: string;
  /** Paths in the archive (config archives). */
  entries?: string[];
  /** Written with mode 0600: env files and volume data may hold secrets. */
  containsSecrets: boolean;
  /** Why it was taken outside a backup night (the copy a restore takes before replacing the volume). */
  reason?: string;
}

// ---- zstd ----

/** Compresses stdin to stdout: quiet, all cores, level 3 (fast; `-19` is ~10x slower for ~15% less). */
export function zstdCompressArgv(level = 3): string[] {
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new Error(`zstd level must be 1..19 (got ${level})`);
  return ['zstd', '-q', '-T0', `-${level}`, '-c'];
}

/** Decompresses a file (or stdin, `-`) to stdout; a truncated or corrupt file is a non-zero exit. */
export function zstdDecompressArgv(file = '-'): string[] {
  return file === '-' ? ['zstd', '-d', '-q', '-c'] : ['zstd', '-d', '-q', '-c', '--', file];
}

// ---- manifest ----

export interface BackupManifest {
  app: string;
  env: string;
  database: string;
  /** File name of the backup, relative to the manifest's directory. */
  file: string;
  createdAt: string;
  sizeBytes: number;
  sha256: string;
  compression: 'zstd';
  durationMs: number;
  serverVersion: string;
  tables: TableStat[];
  /** Set by the restore drill once the dump restored and matched every table: only then does it count. */
  verifiedAt?: string;
  drillDurationMs?: number;
  /** A safety or pre-update backup: outside the nightly retention until released or `until` has passed. */
  pinned?: BackupPin;
}

/** Why `value` is not a pin (undefined: it is one). */
export function pinProblem(value: unknown, field = 'pinned'): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${field}: must be an object like {"reason": "safety", "by": "<workflow id>"}`;
  const pin = value as Record<string, unknown>;
  if (!(PIN_REASONS as readonly unknown[]).includes(pin.reason)) return `${field}.reason: must be one of ${PIN_REASONS.map((r) => `"${r}"`).join(', ')} (got ${JSON.stringify(pin.reason)})`;
  if (typeof pin.by !== 'string' || pin.by === '') return `${field}.by: must be a non-empty string (the workflow that pinned it)`;
  if (pin.until !== undefined && (typeof pin.until !== 'string' || Number.isNaN(Date.parse(pin.until)))) return `${field}.until: must be an ISO 8601 time`;
  return undefined;
}

const normalPin = (pin: BackupPin): BackupPin => ({ reason: pin.reason, by: pin.by, ...(pin.until !== undefined ? { until: pin.until } : {}) });

export function buildManifest(input: Omit<BackupManifest, 'compression'>): BackupManifest {
  const m: BackupManifest = {
    app: input.app,
    env: input.env,
    database: input.database,
    file: input.file,
    createdAt: input.createdAt,
    sizeBytes: input.sizeBytes,
    sha256: input.sha256,
    compression: 'zstd',
    durationMs: input.durationMs,
    serverVersion: input.serverVersion,
    tables: input.tables.map((t) => ({ table: t.table, rows: t.rows, ...(t.checksum !== undefined ? { checksum: t.checksum } : {}) })),
    ...(input.verifiedAt !== undefined ? { verifiedAt: input.verifiedAt } : {}),
    ...(input.drillDurationMs !== undefined ? { drillDurationMs: input.drillDurationMs } : {}),
    ...(input.pinned !== undefined ? { pinned: normalPin(input.pinned) } : {}),
  };
  const problems = manifestProblems(m);
  if (problems.length) throw new Error(`invalid backup manifest: ${problems.join('; ')}`);
  return m;
}

/** Every problem of a manifest read back (empty: valid). */
export function manifestProblems(value: unknown): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return ['a manifest is a JSON object'];
  const m = value as Record<string, unknown>;
  const p: string[] = [];
  const str = (k: string) => {
    if (typeof m[k] !== 'string' || m[k] === '') p.push(`${k}: must be a non-empty string`);
  };
  const count = (k: string) => {
    if (typeof m[k] !== 'number' || !Number.isSafeInteger(m[k]) || (m[k] as number) < 0) p.push(`${k}: must be a non-negative integer`);
  };
  for (const k of ['app', 'env', 'database', 'file', 'createdAt', 'serverVersion']) str(k);
  count('sizeBytes');
  count('durationMs');
  if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) p.push('sha256: must be 64 lower-case hex digits');
  if (m.compression !== 'zstd') p.push(`compression: must be "zstd" (got ${JSON.stringify(m.compression)})`);
  if (typeof m.createdAt === 'string' && (Number.isNaN(Date.parse(m.createdAt)) || !/^\d{4}-\d{2}-\d{2}T/.test(m.createdAt))) p.push('createdAt: must be an ISO 8601 time');
  if (typeof m.file === 'string' && (m.file.includes('/') || m.file.includes('\\') || !m.file.endsWith(BACKUP_SUFFIX))) p.push(`file: must be a plain ${BACKUP_SUFFIX} file name`);
  if (m.verifiedAt !== undefined && (typeof m.verifiedAt !== 'string' || Number.isNaN(Date.parse(m.verifiedAt)))) p.push('verifiedAt: must be an ISO 8601 time');
  if (m.pinned !== undefined) {
    const problem = pinProblem(m.pinned);
    if (problem) p.push(problem);
  }
  if (m.drillDurationMs !== undefined && (typeof m.drillDurationMs !== 'number' || !Number.isSafeInteger(m.drillDurationMs) || m.drillDurationMs < 0)) p.push('drillDurationMs: must be a non-negative integer');
  if (!Array.isArray(m.tables)) p.push('tables: must be an array');
  else {
    m.tables.forEach((t: unknown, i: number) => {
      const r = t as Record<string, unknown>;
      if (typeof t !== 'object' || t === null) return p.push(`tables[${i}]: must be an object`);
      if (typeof r.table !== 'string' || r.table === '') p.push(`tables[${i}].table: must be a non-empty string`);
      if (typeof r.rows !== 'number' || !Number.isSafeInteger(r.rows) || r.rows < 0) p.push(`tables[${i}].rows: must be a non-negative integer`);
      if (r.checksum !== undefined && (typeof r.checksum !== 'string' || !/^[0-9a-f]{32}$/.test(r.checksum))) p.push(`tables[${i}].checksum: must be 32 hex digits`);
      return undefined;
    });
  }
  return p;
}

/** Parses and validates a manifest file's text; throws one error naming every problem. */
export function parseManifest(text: string): BackupManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`backup manifest is not JSON: ${(err as Error).message}`);
  }
  const problems = manifestProblems(value);
  if (problems.length) throw new Error(`invalid backup manifest: ${problems.join('; ')}`);
  return buildManifest(value as BackupManifest); // normalised: unknown keys dropped
}

export function serializeManifest(m: BackupManifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

// ---- table statistics through psql inside the database container ----

/**
 * psql reading a script on stdin and printing results with NUL after every field and row (names
 * cannot contain NUL, so any table name parses back), one read-only transaction, first error = exit 3.
 */
export function psqlQueryArgv(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>): string[] {
  return [
    'psql', '--no-psqlrc', '--quiet', '--no-align', '--tuples-only', '--field-separator-zero', '--record-separator-zero',
    '--set=ON_ERROR_STOP=1', '--file=-',
    `--host=${conn.host}`, `--port=${conn.port}`, `--username=${conn.user}`, `--dbname=${dbnameArg(conn.database)}`, '--no-password',
  ];
}

/** Script 1: server version (2 fields), then every user table (schema, name). */
export function listTablesScript(): string {
  return `${serverVersionSql()};\n${listUserTablesSql()};\n`;
}

/** Script 2: in one snapshot with fixed text settings, rows and checksum (2 fields) of each table in order. */
export function tableChecksumsScript(tables: TableRef[]): string {
  return [...checksumSessionSql(), beginSnapshotSql(), ...tables.map(tableChecksumSql), 'ROLLBACK'].map((s) => `${s};\n`).join('');
}

function nulFields(output: string, per: number, what: string): string[][] {
  const fields = output.split('\0');
  if (fields.pop() !== '') throw new Error(`unexpected psql output for ${what}: not NUL-terminated`);
  if (fields.length % per !== 0) throw new Error(`unexpected psql output for ${what}: ${fields.length} fields, not a multiple of ${per}`);
  const rows: string[][] = [];
  for (let i = 0; i < fields.length; i += per) rows.push(fields.slice(i, i + per));
  return rows;
}

export function parseListTablesOutput(output: string): { serverVersion: string; tables: TableRef[] } {
  const rows = nulFields(output, 2, 'the table list');
  if (rows.length === 0) throw new Error('unexpected psql output for the table list: no server version');
  const [[serverVersion], ...rest] = rows;
  return { serverVersion, tables: rest.map(([schema, name]) => ({ schema, name })) };
}

export function parseTableChecksumsOutput(output: string, tables: TableRef[]): TableStat[] {
  const rows = nulFields(output, 2, 'the table checksums');
  if (rows.length !== tables.length) throw new Error(`unexpected psql output for the table checksums: ${rows.length} rows for ${tables.length} tables`);
  return rows.map(([n, checksum], i) => {
    if (!/^\d+$/.test(n) || !/^[0-9a-f]{32}$/.test(checksum)) throw new Error(`unexpected psql output for ${displayTableName(tables[i])}: ${JSON.stringify([n, checksum])}`);
    return { table: displayTableName(tables[i]), rows: Number(n), checksum };
  });
}

// ---- Docker exec output ----

/**
 * Demultiplexes a Docker attach/exec stream (8-byte frame headers: type, 0, 0, 0, length) as a
 * Transform: stdout frames are pushed on (so `pipeline` applies backpressure all the way to the
 * engine socket, unlike dockerode's demuxStream, which ignores write()'s return value), stderr
 * frames go to `onStderr`. Nothing but a partial header is ever held.
 */
export class DockerDemux extends Transform {
  private header = Buffer.alloc(0);
  private remaining = 0;
  private kind = 0;

  constructor(private readonly onStderr: (chunk: Buffer) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining === 0) {
        const need = 8 - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(i, i + need)]);
        i += Math.min(need, chunk.length - i);
        if (this.header.length < 8) break;
        const kind = this.header[0];
        if (kind > 2 || this.header[1] !== 0 || this.header[2] !== 0 || this.header[3] !== 0) {
          return done(new Error('the Docker exec stream is not multiplexed (a TTY?)'));
        }
        this.kind = kind;
        this.remaining = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - i);
      const payload = chunk.subarray(i, i + take);
      i += take;
      this.remaining -= take;
      if (this.kind === 2) this.onStderr(payload);
      else if (this.kind === 1) this.push(payload);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.header.length > 0 || this.remaining > 0) return done(new Error('the Docker exec stream ended in the middle of a frame'));
    done();
  }
}

/** Keeps the last `max` bytes written (stderr of a long-running process, for error messages). */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max = 16 * 1024) {}
  write(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.max) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}
