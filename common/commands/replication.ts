// PostgreSQL logical replication for the DNS cutover: every statement the replication activities
// send, and the pure parsing and comparison around them. Identifiers are quoted with quoteIdent;
// values travel as query parameters ($1) except where PostgreSQL takes none (CONNECTION strings,
// COPY), where quoteLiteral inlines them. Nothing here does I/O.
import { Transform, type TransformCallback } from 'node:stream';
import type { StorageSpec } from '../types';
import type { TableMark, TableReconciliation, TimeSeriesDifference } from '../cutover';
import { dbnameArg, displayTableName, qualifiedName, quoteIdent, quoteLiteral, type PgConnection, type TableRef } from './sql';
import { objectNameProblem } from './storage';

// ---- names ----

/**
 * Why `name` cannot name a publication/subscription (undefined: fine). The subscription's slot on
 * the publisher takes the same name, and slot names are lower-case letters, digits and `_`.
 */
export function replicationNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || !/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    return `replication name ${JSON.stringify(name)} must be 1 to 63 lower-case letters, digits and "_", not starting with a digit (it names the publication, the subscription and the replication slot)`;
  }
  return undefined;
}

/**
 * A table as named in marks and time-series settings back to its parts: `public.items`,
 * `"Billing"."Invoice Lines"` (parts quoted as displayTableName quotes them), or a bare `items`
 * (schema public). Throws on anything else.
 */
export function parseTableName(text: string): TableRef {
  const parts: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === '"') {
      let part = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated quoted name in table ${JSON.stringify(text)}`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i++];
      }
      parts.push(part);
    } else {
      const end = text.indexOf('.', i);
      const part = text.slice(i, end < 0 ? text.length : end);
      if (!part || part.includes('"')) throw new Error(`not a table name: ${JSON.stringify(text)}`);
      parts.push(part);
      i += part.length;
    }
    if (i < text.length) {
      if (text[i] !== '.' || i === text.length - 1) throw new Error(`not a table name: ${JSON.stringify(text)}`);
      i++;
    }
  }
  if (parts.length === 1) return { schema: 'public', name: parts[0] };
  if (parts.length === 2) return { schema: parts[0], name: parts[1] };
  throw new Error(`not a table name (schema.table expected): ${JSON.stringify(text)}`);
}

// ---- our own sessions ----

/**
 * Sent first on every session the activities open. The endpoint's user may be the app role that
 * setAppWrites made read-only in this database (a role-and-database setting every new session of
 * it inherits); the activities themselves must still write (setval, DROP SUBSCRIPTION, ALTER ROLE).
 */
export function adminSessionSql(): string[] {
  return ['SET default_transaction_read_only = off'];
}

// ---- publisher checks ----

export function walLevelSql(): string {
  return "SELECT current_setting('wal_level') AS wal_level";
}

/** What to do when the publisher cannot decode its WAL logically (undefined: fine). */
export function walLevelProblem(walLevel: string, where: string): string | undefined {
  if (walLevel === 'logical') return undefined;
  return `wal_level is ${walLevel} on ${where}; logical replication needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart the server`;
}

/**
 * User tables whose UPDATEs and DELETEs a FOR ALL TABLES publication could not publish: replica
 * identity "default" without a primary key, or "nothing". Columns: schema, name.
 */
export function tablesWithoutReplicaIdentitySql(): string {
  return [
    'SELECT n.nspname AS schema, c.relname AS name',
    'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
    "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
    "  AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (",
    '    SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))',
    'ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"',
  ].join('\n');
}

export function replicaIdentityProblem(tables: TableRef[], where: string): string | undefined {
  if (tables.length === 0) return undefined;
  return `logical replication cannot carry UPDATEs and DELETEs of tables without a primary key or replica identity on ${where}: ${tables.map(displayTableName).join(', ')}; add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or USING INDEX a unique index)`;
}

/** Parameter $1 = name; one row (column all_tables) when the publication exists in this database. */
export function publicationSql(): string {
  return 'SELECT puballtables AS all_tables FROM pg_catalog.pg_publication WHERE pubname = $1';
}

export function createPublicationSql(name: string): string {
  return `CREATE PUBLICATION ${quoteIdent(name)} FOR ALL TABLES`;
}

export function dropPublicationSql(name: string): string {
  return `DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`;
}

/** Tables of a publication: parameter $1 = name; columns schema, name. */
export function publicationTablesSql(): string {
  return 'SELECT schemaname AS schema, tablename AS name FROM pg_catalog.pg_publication_tables WHERE pubname = $1 ORDER BY schemaname COLLATE "C", tablename COLLATE "C"';
}

/**
 * The slot of a subscription on the publisher: parameter $1 = slot name; columns active,
 * active_pid, lag (bytes, text; null before the first confirmation). The lag is measured from the
 * WAL insert position, not pg_current_wal_lsn (the write position): a commit made with
 * synchronous_commit = off is not written yet for up to 3 × wal_writer_delay, and the write
 * position would call the replication caught up without it. When the last record ends exactly on
 * a WAL page boundary, the insert position points past the next page's header while the slot can
 * only confirm the boundary: that header (24 bytes, 40 at a segment start) is no lag.
 */
export function slotSql(): string {
  return [
    'SELECT active, active_pid, (CASE',
    "  WHEN d.diff > 0 AND d.diff <= 40 AND d.confirmed % current_setting('wal_block_size')::numeric = 0 THEN 0",
    '  ELSE d.diff END)::bigint::text AS lag',
    'FROM pg_catalog.pg_replication_slots s,',
    "  LATERAL (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), s.confirmed_flush_lsn) AS diff, pg_catalog.pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0') AS confirmed) AS d",
    'WHERE s.slot_name = $1',
  ].join('\n');
}

/** Drops a slot by name: parameter $1. */
export function dropSlotSql(): string {
  return 'SELECT pg_catalog.pg_drop_replication_slot($1)';
}

/** Ends the walsender holding a slot (parameter $1 = its pid), waiting up to 5 s for it to go. */
export function terminateBackendSql(): string {
  return 'SELECT pg_catalog.pg_terminate_backend($1::int, 5000) AS terminated';
}

// ---- subscriber ----

/**
 * A libpq connection string: every value single-quoted with `\` and `'` escaped, as libpq parses
 * them. It holds the password: it is sent inside CREATE SUBSCRIPTION and must never be logged.
 */
export function conninfo(parts: Record<string, string | number | undefined>): string {
  return Object.entries(parts)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => {
      if (!/^[a-z_]+$/.test(k)) throw new Error(`not a libpq option: ${k}`);
      const s = String(v);
      if (s.includes('\0')) throw new Error(`libpq option ${k} contains NUL`);
      return `${k}='${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    })
    .join(' ');
}

/** The subscription in the current database: parameter $1 = name; columns enabled, slot (null: NONE). */
export function subscriptionSql(): string {
  return [
    'SELECT s.subenabled AS enabled, s.subslotname AS slot',
    'FROM pg_catalog.pg_subscription s',
    'WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())',
  ].join('\n');
}

/**
 * CREATE SUBSCRIPTION (it connects to the publisher and makes the slot there). `connect_timeout` in
 * the conninfo bounds the wait on an unreachable publisher.
 */
export function createSubscriptionSql(name: string, connection: string, copyData: boolean): string {
  return `CREATE SUBSCRIPTION ${quoteIdent(name)} CONNECTION ${quoteLiteral(connection)} PUBLICATION ${quoteIdent(name)} WITH (copy_data = ${copyData ? 'true' : 'false'})`;
}

export function dropSubscriptionSql(name: string): string {
  return `DROP SUBSCRIPTION IF EXISTS ${quoteIdent(name)}`;
}

/** Detaches a subscription from its slot so it can be dropped without reaching the publisher. */
export function detachSubscriptionSql(name: string): string[] {
  return [`ALTER SUBSCRIPTION ${quoteIdent(name)} DISABLE`, `ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`];
}

/**
 * Sent before CREATE SUBSCRIPTION, whose text holds the publisher's password: the server log would
 * keep it on an error (log_min_error_statement) or always (log_statement = ddl/all), and
 * pg_stat_statements keeps utility statements' text. Superuser settings: best effort, one by one.
 */
export function quietStatementLogSql(): string[] {
  return ["SET log_min_error_statement = 'panic'", "SET log_statement = 'none'", 'SET pg_stat_statements.track_utility = off'];
}

/** Per-table sync state of a subscription: parameter $1 = name; columns schema, name, state (one letter). */
export function subscriptionTablesSql(): string {
  return [
    'SELECT n.nspname AS schema, c.relname AS name, sr.srsubstate AS state',
    'FROM pg_catalog.pg_subscription_rel sr',
    'JOIN pg_catalog.pg_subscription s ON s.oid = sr.srsubid',
    'JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid',
    'JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
    'WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())',
    'ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"',
  ].join('\n');
}

const SUB_STATES: Record<string, string> = { i: 'init', d: 'copying', f: 'copied', s: 'synchronized', r: 'ready' };

/** pg_subscription_rel.srsubstate in words (i/d/f/s/r); an unknown letter is kept. */
export function subscriptionStateName(letter: string): string {
  return SUB_STATES[letter] ?? letter;
}

/** Lag in bytes from pg_wal_lsn_diff text (null before the slot's first confirmation: unknown, so -1). */
export function parseLag(text: string | null): number {
  if (text === null) return -1;
  return Math.max(0, Number(text));
}

/**
 * pg_dump of the schema only, as it should be recreated on a subscriber: with owners and grants, so
 * that the app's role can use its tables there after the switch (the roles must exist on the new
 * server: a missing one fails the copy, naming it); no publications or subscriptions.
 */
export function pgSchemaDumpArgv(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>): string[] {
  return [
    'pg_dump', '--schema-only', '--no-publications', '--no-subscriptions', '--encoding=UTF8',
    `--host=${conn.host}`, `--port=${conn.port}`, `--username=${conn.user}`, `--dbname=${dbnameArg(conn.database)}`, '--no-password',
  ];
}

// ---- app writes ----

/**
 * The app role's sessions in this database default to read-only transactions (or no longer do).
 * Verified against PostgreSQL 15: the subscription's apply worker keeps applying changes into a
 * database where this is set, even when set for the subscription owner itself (the apply worker
 * writes through the executor's internal entry points, which do not check transaction_read_only).
 * A REVOKE of INSERT/UPDATE/DELETE would have to be undone table by table, and does nothing for a
 * table the app role owns; this is one setting, undone by a RESET. It is a guard against a
 * well-behaved app, not a security boundary: a session can still SET transaction_read_only = off.
 */
export function appWritesSql(role: string, database: string, writable: boolean): string {
  const target = `ALTER ROLE ${quoteIdent(role)} IN DATABASE ${quoteIdent(database)}`;
  return writable ? `${target} RESET default_transaction_read_only` : `${target} SET default_transaction_read_only = on`;
}

/**
 * Ends the role's client sessions on a database (parameters $1 = role, $2 = database) so the next
 * ones pick up the new default. Made read-only: every session, waiting up to 5 s for each to end,
 * so no transaction of theirs can commit afterwards. Made writable: only sessions idle for over a
 * second (a pool's read-only connections, which would otherwise keep refusing writes); a request
 * in progress, or one that has just connected and is about to send its statement (idle for
 * milliseconds), is left alone: its write is refused as read-only at worst, which an app can retry,
 * where a killed connection is an error it cannot tell from a lost commit. Only client backends:
 * never the apply worker or a walsender. Column: terminated.
 */
export function terminateRoleSessionsSql(writable = false): string {
  return [
    'SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid, 5000))::int AS terminated',
    'FROM pg_catalog.pg_stat_activity',
    "WHERE usename = $1 AND datname = $2 AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()",
    ...(writable ? ["AND state = 'idle' AND state_change < pg_catalog.clock_timestamp() - interval '1 second'"] : []),
  ].join('\n');
}

// ---- sequences ----

/** Every user sequence: columns schema, name, value (last_value as text; null when never used). */
export function sequencesSql(): string {
  return [
    'SELECT schemaname AS schema, sequencename AS name, last_value::text AS value',
    'FROM pg_catalog.pg_sequences',
    "WHERE schemaname <> 'information_schema' AND schemaname !~ '^pg_'",
    'ORDER BY schemaname COLLATE "C", sequencename COLLATE "C"',
  ].join('\n');
}

/** One sequence's last value (parameters $1 = schema, $2 = name): column value; no row: no such sequence. */
export function sequenceValueSql(): string {
  return 'SELECT last_value::text AS value FROM pg_catalog.pg_sequences WHERE schemaname = $1 AND sequencename = $2';
}

/**
 * Moves a sequence forward to $1 (bigint as text) unless it is already there or beyond (in its own
 * direction); parameters $2 = schema, $3 = name. Column: value, the sequence's last value after.
 * No row: the sequence does not exist.
 */
export function advanceSequenceSql(seq: TableRef): string {
  return [
    'SELECT (CASE WHEN s.last_value IS NULL',
    '    OR (s.increment_by > 0 AND s.last_value < $1::bigint)',
    '    OR (s.increment_by < 0 AND s.last_value > $1::bigint)',
    `  THEN pg_catalog.setval(${quoteLiteral(qualifiedName(seq))}::regclass, $1::bigint, true)`,
    '  ELSE s.last_value END)::text AS value',
    'FROM pg_catalog.pg_sequences s WHERE s.schemaname = $2 AND s.sequencename = $3',
  ].join('\n');
}

// ---- marks, counts, checksums ----

/**
 * User tables and the column of their primary key when it has exactly one (key null otherwise).
 * Columns: schema, name, key.
 */
export function tableKeysSql(): string {
  return [
    'SELECT n.nspname AS schema, c.relname AS name,',
    '  (SELECT a.attname FROM pg_catalog.pg_index i',
    '    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]',
    '    WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1) AS key',
    'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
    "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
    'ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"',
  ].join('\n');
}

/**
 * The highest key (through the primary key's index: no sort, works for any key type) and the row
 * count. Columns: max_key (text, null when empty), rows. `key` undefined: the count only.
 */
export function markSql(table: TableRef, key: string | undefined): string {
  const t = qualifiedName(table);
  // ORDER BY the qualified column: a bare name would sort by the text output column of that name
  const max = key ? `(SELECT k.${quoteIdent(key)}::text FROM ${t} AS k ORDER BY k.${quoteIdent(key)} DESC LIMIT 1)` : 'NULL::text';
  return `SELECT ${max} AS max_key, (SELECT count(*) FROM ${t}) AS rows`;
}

/**
 * Which rows of a marked table a query covers: `before` = rows that existed at T0 (key ≤ maxKey),
 * `after` = rows written since (key > maxKey). A table with no single-column key cannot tell them
 * apart: `before` is the whole table and `after` is nothing. maxKey null (empty at T0): nothing
 * before, everything after. Returns the WHERE clause (with `$n` for maxKey) and its parameters.
 */
export function markFilter(mark: TableMark, side: 'before' | 'after', param = 1, alias = ''): { where: string; params: string[] } {
  if (!mark.key) return side === 'before' ? { where: 'true', params: [] } : { where: 'false', params: [] };
  if (mark.maxKey === null) return side === 'before' ? { where: 'false', params: [] } : { where: 'true', params: [] };
  const col = `${alias}${quoteIdent(mark.key)}`;
  return { where: `${col} ${side === 'before' ? '<=' : '>'} $${param}`, params: [mark.maxKey] };
}

/**
 * Count and content checksum of the rows a filter selects: the order-independent multiset hash of
 * tableChecksumSql (sum of each row's md5; no sort, no 1 GB string_agg limit). Run after
 * checksumSessionSql() so both servers print rows the same way. Columns: rows, checksum.
 */
export function rangeChecksumSql(table: TableRef, where: string): string {
  return [
    "SELECT count(*) AS rows, md5(concat_ws(':', count(*),",
    "  coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0),",
    "  coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0))) AS checksum",
    `FROM (SELECT md5(t::text) AS h FROM ${qualifiedName(table)} AS t WHERE ${where} OFFSET 0) AS s`,
  ].join('\n');
}

/** Rows per series key per hour (seed 002's time-series reconciliation). Columns: key, hour, rows. */
export function hourlyCountsSql(table: TableRef, keyColumn: string, timeColumn: string, where: string): string {
  return [
    `SELECT coalesce(t.${quoteIdent(keyColumn)}::text, '(null)') AS key,`,
    `  coalesce(pg_catalog.date_trunc('hour', t.${quoteIdent(timeColumn)})::text, '(null)') AS hour, count(*) AS rows`,
    `FROM ${qualifiedName(table)} AS t WHERE ${where}`,
    'GROUP BY 1, 2 ORDER BY 1, 2',
  ].join('\n');
}

export function countWhereSql(table: TableRef, where: string): string {
  return `SELECT count(*) AS rows FROM ${qualifiedName(table)} AS t WHERE ${where}`;
}

/**
 * COPY of the rows written after T0 as CSV with a header, in key order. COPY takes no parameters:
 * maxKey is inlined as a literal (coerced to the key's type by the server).
 */
export function copyRowsAfterSql(table: TableRef, mark: TableMark): string {
  const { where, params } = markFilter(mark, 'after');
  const inlined = params.length ? where.replace('$1', quoteLiteral(params[0])) : where;
  const order = mark.key ? ` ORDER BY ${quoteIdent(mark.key)}` : '';
  return `COPY (SELECT * FROM ${qualifiedName(table)} WHERE ${inlined}${order}) TO STDOUT (FORMAT csv, HEADER)`;
}

/** psql running one COPY ... TO STDOUT (the CSV on its stdout); password only in its environment. */
export function psqlCopyOutArgv(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>, copySql: string): string[] {
  return [
    'psql', '--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', `--command=${copySql}`,
    `--host=${conn.host}`, `--port=${conn.port}`, `--username=${conn.user}`, `--dbname=${dbnameArg(conn.database)}`, '--no-password',
  ];
}

/** PGOPTIONS of our client programs: adminSessionSql's setting, for a psql that cannot send it first. */
export const ADMIN_PGOPTIONS = '-c default_transaction_read_only=off';

// ---- reconciliation ----

export interface RangeStat {
  rows: number;
  checksum: string;
}

export function tableReconciliation(table: string, a: RangeStat, b: RangeStat): TableReconciliation {
  return { table, rows: [a.rows, b.rows], checksums: [a.checksum, b.checksum], equal: a.rows === b.rows && a.checksum === b.checksum };
}

export interface HourlyCount {
  key: string;
  hour: string;
  rows: number;
}

/** Differences of two per-key-per-hour counts (missing on one side: 0), in key and hour order. */
export function hourlyDifferences(table: string, a: HourlyCount[], b: HourlyCount[]): TimeSeriesDifference[] {
  const id = (c: HourlyCount) => `${c.key}\0${c.hour}`;
  const counts = new Map<string, { key: string; hour: string; counts: [number, number] }>();
  for (const [side, list] of [a, b].entries()) {
    for (const c of list) {
      const entry = counts.get(id(c)) ?? { key: c.key, hour: c.hour, counts: [0, 0] as [number, number] };
      entry.counts[side] += c.rows;
      counts.set(id(c), entry);
    }
  }
  return [...counts.values()]
    .filter((e) => e.counts[0] !== e.counts[1])
    .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.hour < y.hour ? -1 : x.hour > y.hour ? 1 : 0))
    .map((e) => ({ table, key: e.key, hour: e.hour, counts: e.counts }));
}

/** At most this many time-series differences in a report (the first ones, in table/key/hour order). */
export const MAX_TIME_SERIES_DIFFERENCES = 100;

// ---- export of the rows written after T0 ----

/** Why `prefix` cannot hold an export (undefined: fine): plain names separated by "/". */
export function exportPrefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== 'string' || prefix === '') return 'export prefix must be a non-empty string';
  for (const part of prefix.split('/')) {
    const problem = objectNameProblem(part);
    if (problem) return `export prefix ${JSON.stringify(prefix)}: ${problem}`;
  }
  return undefined;
}

/**
 * The storage that holds `<prefix>/...`: storage object names are plain names, so the prefix
 * becomes a subdirectory (directory storage) or a longer key prefix (S3).
 */
export function storageUnder(spec: StorageSpec, prefix: string): StorageSpec {
  if (spec.type === 'directory') return { ...spec, path: `${spec.path.replace(/\/+$/, '')}/${prefix}` };
  return { ...spec, prefix: `${spec.prefix}${prefix}/` };
}

/** `public.items.csv`: each part percent-encoded outside [A-Za-z0-9_-], so no "/" and no "..". */
export function exportFileName(table: TableRef): string {
  const enc = (s: string) => Array.from(Buffer.from(s, 'utf8')).map((b) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
  return `${enc(table.schema)}.${enc(table.name)}.csv`;
}

export const EXPORT_MANIFEST = 'manifest.json';

export interface ExportManifestFile {
  table: string;
  file: string;
  /** The key column and the T0 mark the rows are after ('' / null: see TableMark). */
  key: string;
  after: string | null;
  rows: number;
  sizeBytes: number;
  sha256: string;
}

export interface ExportManifest {
  kind: 'rows-after-mark';
  createdAt: string;
  /** `postgres://user@host:port/db` (no password). */
  source: string;
  format: 'csv-header';
  files: ExportManifestFile[];
  rows: number;
}

/**
 * Counts CSV records as they pass (PostgreSQL's CSV: `"` quotes, `""` inside quotes; a newline
 * inside quotes is data). The header is a record too: rows = records - 1.
 */
export class CsvRecordCounter extends Transform {
  records = 0;
  private quoted = false;
  private partial = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 0x22) this.quoted = !this.quoted; // a doubled quote toggles twice: no change
      if (c === 0x0a && !this.quoted) {
        this.records++;
        this.partial = false;
      } else {
        this.partial = true;
      }
    }
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    if (this.partial) this.records++; // a last record without its newline
    done();
  }
}
