// PostgreSQL: every SQL statement and every pg_dump/psql argv the runbooks send, built here.
// Identifiers are always quoted with quoteIdent (pg's escapeIdentifier, after length checks); values
// travel as query parameters ($1), never inside the text, except in psql scripts, where quoteLiteral
// (pg's escapeLiteral) inlines them. Passwords never appear in an argv: they go in PGPASSWORD (pgClientEnv).
import { escapeIdentifier, escapeLiteral } from 'pg';
import { MAX_IDENT_BYTES, SCRATCH_PREFIX } from './scratch';

export { restoreDatabaseNames, SCRATCH_PREFIX, scratchDatabaseName } from './scratch';

/** A table as PostgreSQL names it. */
export interface TableRef {
  schema: string;
  name: string;
}

/** Row count (and optionally the order-independent content checksum) of one table. */
export interface TableStat {
  /** Display name, e.g. `public.users` (parts quoted only when they need it: `"Billing"."Invoice Lines"`). */
  table: string;
  rows: number;
  checksum?: string;
}

export interface TableStats {
  serverVersion: string;
  tables: TableStat[];
}

/** Where a PostgreSQL server is and who we are on it; the password is in a file read at use. */
export interface PgConnection {
  host: string;
  port: number;
  user: string;
  database: string;
  passwordFile?: string;
}

/** Quotes an identifier the way PostgreSQL's quote_ident does when quoting is needed (always, here). */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new Error('empty SQL identifier');
  if (name.includes('\0')) throw new Error('SQL identifier contains a NUL character');
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENT_BYTES) throw new Error(`SQL identifier longer than ${MAX_IDENT_BYTES} bytes: ${JSON.stringify(name)}`);
  return escapeIdentifier(name);
}

/** `"schema"."table"` for use in a statement. */
export function qualifiedName(table: TableRef): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
}

const BARE = /^[a-z_][a-z0-9_]*$/;

/** Human/manifest name: `public.users`; a part that would be ambiguous bare is quoted. */
export function displayTableName(table: TableRef): string {
  const part = (s: string) => (BARE.test(s) ? s : quoteIdent(s));
  return `${part(table.schema)}.${part(table.name)}`;
}

// ---- statements ----

/** Server version: columns `version` (e.g. `15.14 (Debian 15.14-0+deb12u1)`) and `version_num` (150014). */
export function serverVersionSql(): string {
  return "SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS version_num";
}

/**
 * User tables holding data (ordinary tables and partitions; not partitioned parents, views, foreign
 * tables), excluding pg_catalog, information_schema, pg_toast and temporary schemas. Columns: schema, name.
 */
export function listUserTablesSql(): string {
  return [
    'SELECT n.nspname AS schema, c.relname AS name',
    'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
    "WHERE c.relkind = 'r'",
    "  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
    'ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"',
  ].join('\n');
}

/** Exact row count of one table: column `rows` (bigint, as a string from pg). */
export function rowCountSql(table: TableRef): string {
  return `SELECT count(*) AS rows FROM ${qualifiedName(table)}`;
}

/**
 * Exact row count and a content checksum of one table that does not depend on the physical order
 * of the rows: the md5 of each row's text form, read as two 64-bit integers, summed over the table
 * (a multiset hash: adding is commutative, so no sort; memory is constant, one sequential scan).
 * Columns: rows, checksum (32 hex digits). The usual `md5(string_agg(md5(t::text), '' ORDER BY ...))`
 * sorts every row hash and builds one string of 32 bytes per row, which fails past ~33 M rows (text
 * values are limited to 1 GB) and spills the sort to disk long before that.
 * Run it after checksumSessionSql() so the row text does not depend on the session's settings.
 */
export function tableChecksumSql(table: TableRef): string {
  // OFFSET 0 keeps the subquery from being flattened, so each row is turned into text and hashed
  // once (not once per half of the hash): about 40 % less CPU for the same values (bench/backup).
  return [
    'SELECT count(*) AS rows, md5(concat_ws(\':\', count(*),',
    "  coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0),",
    "  coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0))) AS checksum",
    `FROM (SELECT md5(t::text) AS h FROM ${qualifiedName(table)} AS t OFFSET 0) AS s`,
  ].join('\n');
}

/**
 * Session settings that fix the text form of rows (dates, times, floats, intervals, bytea), so a
 * checksum taken on one server compares with one taken on another (the manifest vs the restore drill).
 */
export function checksumSessionSql(): string[] {
  return [
    "SET DateStyle = 'ISO, MDY'",
    "SET IntervalStyle = 'postgres'",
    "SET TimeZone = 'UTC'",
    'SET extra_float_digits = 1',
    "SET bytea_output = 'hex'",
  ];
}

/** One consistent, read-only snapshot for every count and checksum of a stats run. */
export function beginSnapshotSql(): string {
  return 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';
}

/** Does a database exist: parameter $1 = name; one row when it does. */
export function databaseExistsSql(): string {
  return 'SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1';
}

/** A fresh, empty database (template0: nothing copied from template1, encoding chosen freely). */
export function createDatabaseSql(name: string): string {
  return `CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8'`;
}

/** Drops a database, disconnecting its sessions (PostgreSQL 13+); no error when it does not exist. */
export function dropDatabaseSql(name: string): string {
  return `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`;
}

// ---- scratch databases (restore drills) ----

/**
 * Why a name must not be used as a scratch database (undefined: fine). Scratch databases are dropped
 * WITH (FORCE), so only names that say they are scratch are accepted, never the connection's own.
 */
export function scratchNameProblem(name: string, connectionDatabase: string): string | undefined {
  if (!name.startsWith(SCRATCH_PREFIX)) return `scratch database names must start with ${SCRATCH_PREFIX} (got ${JSON.stringify(name)})`;
  if (!/^[a-z0-9_]+$/.test(name)) return `scratch database names are lower-case letters, digits and _ (got ${JSON.stringify(name)})`;
  if (Buffer.byteLength(name) > MAX_IDENT_BYTES) return `scratch database name longer than ${MAX_IDENT_BYTES} bytes: ${name}`;
  if (name === connectionDatabase) return `the scratch database ${name} is the database the connection uses`;
  return undefined;
}

// ---- client programs ----

/**
 * The value of --dbname: libpq treats one containing `=` or starting with postgres:// or postgresql://
 * as a connection string, so such a name is passed as `dbname='...'` (quotes and backslashes escaped).
 */
export function dbnameArg(database: string): string {
  if (!database.includes('=') && !/^postgres(ql)?:\/\//.test(database)) return database;
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function connectionArgs(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>): string[] {
  return [`--host=${conn.host}`, `--port=${conn.port}`, `--username=${conn.user}`, `--dbname=${dbnameArg(conn.database)}`, '--no-password'];
}

/**
 * pg_dump of one database as plain SQL on stdout, restorable anywhere by psql: no ownership or grants
 * (the restore target's roles differ), UTF8. --no-password: fail at once rather than prompt.
 */
export function pgDumpArgv(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>, options: { snapshot?: string } = {}): string[] {
  if (options.snapshot !== undefined && !/^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i.test(options.snapshot)) throw new Error(`not a snapshot id: ${JSON.stringify(options.snapshot)}`);
  return [
    'pg_dump', '--format=plain', '--no-owner', '--no-privileges', '--encoding=UTF8',
    ...(options.snapshot !== undefined ? [`--snapshot=${options.snapshot}`] : []),
    ...connectionArgs(conn),
  ];
}

/**
 * psql applying a dump read from stdin inside a transaction the caller controls: the caller sends
 * BEGIN first and COMMIT only once the whole input checked out (size, sha256, decompressor exit 0);
 * without the COMMIT, EOF ends psql and the server rolls the transaction back. --single-transaction
 * would commit at EOF, whatever the input was. Output: discarded by the caller.
 */
export function psqlApplyArgv(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>): string[] {
  return ['psql', '--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--file=-', ...connectionArgs(conn)];
}

/** The statement a dump restore starts with (see psqlApplyArgv). */
export const RESTORE_BEGIN = 'BEGIN;\n';
/** The statement that commits a checked restore. */
export const RESTORE_COMMIT = 'COMMIT;\n';

/** Starts the read-only snapshot that pg_dump --snapshot shares: one row, the snapshot id. */
export function exportSnapshotSql(): string {
  return `${beginSnapshotSql()};\n${checksumSessionSql().map((s) => `${s};`).join('\n')}\nSELECT pg_catalog.pg_export_snapshot();`;
}

/** Ends other sessions on a database (before a rename); returns nothing useful. */
export function terminateSessionsSql(database: string): string {
  return `SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity WHERE datname = ${quoteLiteral(database)} AND pid <> pg_catalog.pg_backend_pid();`;
}

export function renameDatabaseSql(from: string, to: string): string {
  return `ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)};`;
}

/** A string literal (' doubled; with a backslash, an E'' literal with \\ doubled, as pg quotes them). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('a literal cannot contain NUL');
  return escapeLiteral(value).trimStart();
}

/** Does a database exist, as a psql query with the name inlined (psql has no bind parameters): one row "1" or none. */
export function databaseExistsQuery(name: string): string {
  return `SELECT 1 FROM pg_catalog.pg_database WHERE datname = ${quoteLiteral(name)};`;
}

/**
 * psql restoring a plain dump read from stdin, all or nothing: --single-transaction only applies to
 * -c/-f, hence --file=- (stdin); ON_ERROR_STOP turns the first error into exit code 3 and a rollback.
 * --no-psqlrc: no user settings; --quiet: no echo of every command tag.
 */
export function psqlRestoreArgv(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>): string[] {
  return ['psql', '--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--single-transaction', '--file=-', ...connectionArgs(conn)];
}

/**
 * Environment of a pg_dump/psql process: the password (never on the command line, where `ps` and
 * `docker inspect` would show it), a connect timeout, and an application name seen in pg_stat_activity.
 */
export function pgClientEnv(password: string | undefined, options: { connectTimeoutSeconds?: number; applicationName?: string } = {}): Record<string, string> {
  return {
    ...(password !== undefined ? { PGPASSWORD: password } : {}),
    PGCONNECT_TIMEOUT: String(options.connectTimeoutSeconds ?? 10),
    PGAPPNAME: options.applicationName ?? 'temporal-runbooks',
  };
}

/** `KEY=value` list (what the Docker exec API takes as Env). */
export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

// ---- comparison ----

/**
 * Differences between the stats in a manifest (expected) and those of a restored copy (actual), in
 * words a human acts on; empty when they match. Checksums are compared when both sides have one.
 */
export function compareTableStats(expected: Pick<TableStats, 'tables'>, actual: Pick<TableStats, 'tables'>): string[] {
  const want = new Map(expected.tables.map((t) => [t.table, t]));
  const got = new Map(actual.tables.map((t) => [t.table, t]));
  const names = [...new Set([...want.keys(), ...got.keys()])].sort();
  const diffs: string[] = [];
  for (const name of names) {
    const w = want.get(name);
    const g = got.get(name);
    if (!g) {
      diffs.push(`table ${name} is missing (expected ${w!.rows} rows)`);
    } else if (!w) {
      diffs.push(`table ${name} is not expected (found with ${g.rows} rows)`);
    } else if (w.rows !== g.rows) {
      diffs.push(`table ${name} has ${g.rows} rows, expected ${w.rows} (${g.rows > w.rows ? '+' : ''}${g.rows - w.rows})`);
    } else if (w.checksum !== undefined && g.checksum !== undefined && w.checksum !== g.checksum) {
      diffs.push(`table ${name} has the expected ${w.rows} rows but different content (checksum ${g.checksum}, expected ${w.checksum})`);
    }
  }
  return diffs;
}
