// PostgreSQL through `pg`: table statistics for backup manifests and restore drills, scratch
// databases. The password is read from its file at use; it is never returned and never in an error.
import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import {
  beginSnapshotSql,
  checksumSessionSql,
  compareTableStats,
  createDatabaseSql,
  databaseExistsSql,
  displayTableName,
  dropDatabaseSql,
  listUserTablesSql,
  rowCountSql,
  scratchNameProblem,
  serverVersionSql,
  tableChecksumSql,
  type PgConnection,
  type TableRef,
  type TableStat,
  type TableStats,
} from '../common/commands/sql';
import { heartbeat } from './context';

export { compareTableStats, type PgConnection, type TableStats };

/** `postgres://user@host:port/db`: how a connection is named in messages (no password, ever). */
export function describeConnection(conn: Pick<PgConnection, 'host' | 'port' | 'user' | 'database'>): string {
  return `postgres://${conn.user}@${conn.host}:${conn.port}/${conn.database}`;
}

/** The password from its file (one trailing newline dropped); unreadable or empty: non-retryable. */
export async function readPassword(conn: PgConnection): Promise<string | undefined> {
  if (conn.passwordFile === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(conn.passwordFile, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `cannot read the password file ${conn.passwordFile} for ${describeConnection(conn)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      'PostgresPasswordFile',
    );
  }
  const password = text.replace(/\r?\n$/, '');
  if (!password) throw ApplicationFailure.nonRetryable(`the password file ${conn.passwordFile} for ${describeConnection(conn)} is empty`, 'PostgresPasswordFile');
  return password;
}

// SQLSTATEs that no retry can fix: authentication, unknown database or role, missing privilege,
// bad SQL/object names. Everything else (connection refused/reset, server starting or shutting
// down, too many connections, timeouts) is transient and retried.
const NON_RETRYABLE: Record<string, string> = {
  '28P01': 'PostgresAuthFailed', // invalid_password
  '28000': 'PostgresAuthFailed', // invalid_authorization_specification (no pg_hba entry, unknown role)
  '3D000': 'PostgresDatabaseMissing', // invalid_catalog_name
  '42501': 'PostgresPermissionDenied', // insufficient_privilege
  '42P01': 'PostgresBadRequest', // undefined_table
  '42601': 'PostgresBadRequest', // syntax_error
  '0A000': 'PostgresBadRequest', // feature_not_supported (e.g. DROP ... WITH (FORCE) before 13)
};

function scrub(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('***') : text;
}

/** Turns a pg/socket error into an actionable failure without the password in it. */
export function postgresFailure(conn: PgConnection, what: string, err: unknown, password?: string): Error {
  if (err instanceof ApplicationFailure) return err;
  const e = err as { code?: string; message?: string };
  const message = scrub(`${what} on ${describeConnection(conn)}: ${e?.message ?? String(err)}${e?.code ? ` (${e.code})` : ''}`, password);
  const type = e?.code ? NON_RETRYABLE[e.code] : undefined;
  if (type) return ApplicationFailure.nonRetryable(message, type);
  return new Error(message);
}

export interface PostgresOptions {
  connectTimeoutMs?: number;
  applicationName?: string;
  /** How often a long query (a checksum of a big table) heartbeats. */
  heartbeatMs?: number;
}

/** Runs `fn` with a connected client, closing it whatever happens; errors become postgresFailure. */
export async function withClient<T>(conn: PgConnection, what: string, options: PostgresOptions, fn: (client: Client) => Promise<T>): Promise<T> {
  const password = await readPassword(conn);
  const client = new Client({
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database: conn.database,
    ...(password !== undefined ? { password } : {}),
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'temporal-runbooks',
  });
  client.on('error', () => undefined); // a server-side disconnect surfaces on the running query
  try {
    await client.connect();
    return await fn(client);
  } catch (err) {
    throw postgresFailure(conn, what, err, password);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Heartbeats every `ms` while `p` runs (a single query on a big table can take minutes). */
async function heartbeating<T>(ms: number, details: unknown, p: Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat(details), ms);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

/** Counts (and optionally checksums) every user table in one read-only snapshot. */
export async function tableStats(conn: PgConnection, opts: { checksums: boolean }, options: PostgresOptions = {}): Promise<TableStats> {
  return withClient(conn, 'table statistics', options, async (client) => {
    const version = await client.query<{ version: string }>(serverVersionSql());
    await client.query(beginSnapshotSql());
    try {
      if (opts.checksums) for (const sql of checksumSessionSql()) await client.query(sql);
      const list = await client.query<TableRef>(listUserTablesSql());
      const tables: TableStat[] = [];
      for (const [i, ref] of list.rows.entries()) {
        const table = displayTableName(ref);
        const progress = { table, done: i, of: list.rows.length };
        heartbeat(progress);
        if (opts.checksums) {
          const r = await heartbeating(options.heartbeatMs ?? 5000, progress, client.query<{ rows: string; checksum: string }>(tableChecksumSql(ref)));
          tables.push({ table, rows: Number(r.rows[0].rows), checksum: r.rows[0].checksum });
        } else {
          const r = await heartbeating(options.heartbeatMs ?? 5000, progress, client.query<{ rows: string }>(rowCountSql(ref)));
          tables.push({ table, rows: Number(r.rows[0].rows) });
        }
      }
      return { serverVersion: version.rows[0].version, tables };
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
    }
  });
}

function checkScratchName(conn: PgConnection, name: string): void {
  const problem = scratchNameProblem(name, conn.database);
  if (problem) throw ApplicationFailure.nonRetryable(`${problem} (server ${describeConnection(conn)})`, 'ScratchDatabaseName');
}

/** Creates an empty scratch database unless it exists (`created` says which). */
export async function createScratchDatabase(conn: PgConnection, name: string, options: PostgresOptions = {}): Promise<{ name: string; created: boolean }> {
  checkScratchName(conn, name);
  return withClient(conn, `create scratch database ${name}`, options, async (client) => {
    if ((await client.query(databaseExistsSql(), [name])).rowCount) return { name, created: false };
    try {
      await client.query(createDatabaseSql(name));
      return { name, created: true };
    } catch (err) {
      if ((err as { code?: string }).code === '42P04') return { name, created: false }; // created concurrently by a retry
      throw err;
    }
  });
}

/** Drops a scratch database, disconnecting whoever uses it; `dropped: false` when it was not there. */
export async function dropScratchDatabase(conn: PgConnection, name: string, options: PostgresOptions = {}): Promise<{ name: string; dropped: boolean }> {
  checkScratchName(conn, name);
  return withClient(conn, `drop scratch database ${name}`, options, async (client) => {
    const existed = Boolean((await client.query(databaseExistsSql(), [name])).rowCount);
    await client.query(dropDatabaseSql(name));
    return { name, dropped: existed };
  });
}

export function createPostgresActivities(options: PostgresOptions = {}) {
  return {
    /** Server version and, for every user table, its exact row count and (optionally) content checksum. */
    async tableStats(conn: PgConnection, opts: { checksums: boolean }): Promise<TableStats> {
      return tableStats(conn, opts, options);
    },

    async createScratchDatabase(conn: PgConnection, name: string): Promise<{ name: string; created: boolean }> {
      return createScratchDatabase(conn, name, options);
    },

    async dropScratchDatabase(conn: PgConnection, name: string): Promise<{ name: string; dropped: boolean }> {
      return dropScratchDatabase(conn, name, options);
    },

    /** Differences between a manifest's stats and a restored copy's, in human terms (empty: equal). */
    async compareTableStats(expected: Pick<TableStats, 'tables'>, actual: Pick<TableStats, 'tables'>): Promise<string[]> {
      return compareTableStats(expected, actual);
    },
  };
}
