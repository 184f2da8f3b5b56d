// The DNS cutover's data move: PostgreSQL logical replication between two servers reached by
// address (publication on the old side, subscription on the new one, and the reverse after the
// switch), the app's writes switched off and on, sequences carried over, and the marks,
// reconciliation and export of the rows around T0. The statements are built in
// common/commands/replication.ts; this file only sends them. Passwords are read from their files
// at use; the publisher's is inside the subscription's CONNECTION string, so every error message
// is scrubbed of both endpoints' passwords.
import { spawn, type ChildProcess } from 'node:child_process';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import {
  ADMIN_PGOPTIONS,
  adminSessionSql,
  advanceSequenceSql,
  appWritesSql,
  conninfo,
  countWhereSql,
  copyRowsAfterSql,
  createPublicationSql,
  createSubscriptionSql,
  CsvRecordCounter,
  detachSubscriptionSql,
  dropPublicationSql,
  dropSlotSql,
  dropSubscriptionSql,
  EXPORT_MANIFEST,
  exportFileName,
  exportPrefixProblem,
  hourlyCountsSql,
  hourlyDifferences,
  markFilter,
  markSql,
  MAX_TIME_SERIES_DIFFERENCES,
  parseLag,
  parseTableName,
  pgSchemaDumpArgv,
  psqlCopyOutArgv,
  publicationSql,
  publicationTablesSql,
  quietStatementLogSql,
  rangeChecksumSql,
  replicaIdentityProblem,
  replicationNameProblem,
  sequencesSql,
  sequenceValueSql,
  slotSql,
  storageUnder,
  subscriptionSql,
  subscriptionStateName,
  subscriptionTablesSql,
  tableKeysSql,
  tableReconciliation,
  tablesWithoutReplicaIdentitySql,
  terminateBackendSql,
  terminateRoleSessionsSql,
  walLevelProblem,
  walLevelSql,
  type ExportManifest,
  type ExportManifestFile,
  type HourlyCount,
  type RangeStat,
} from '../common/commands/replication';
import { beginSnapshotSql, checksumSessionSql, displayTableName, listUserTablesSql, pgClientEnv, psqlApplyArgv, RESTORE_BEGIN, RESTORE_COMMIT, type PgConnection, type TableRef } from '../common/commands/sql';
import { TailBuffer } from '../common/commands/backup';
import type { PgEndpoint, ReconciliationReport, RowExport, TableMark, TimeSeriesTable, TimeSeriesDifference } from '../common/cutover';
import { HashTap } from './backup';
import { heartbeat, sleep, whileHeartbeating } from './context';
import { programFailure, scrub } from './pg-clients';
import { describeConnection, postgresFailure, readPassword } from './postgres';
import { SshPool } from './ssh';
import { openStorage, STORAGE_BAD_NAME, type StorageSpec } from './storage';

export interface ReplicationDeps {
  /** For export storage in a directory on a host reached over SSH. */
  ssh?: SshPool;
  connectTimeoutMs?: number;
  /** How often awaitReplicationCaughtUp asks for the lag. */
  pollMs?: number;
  heartbeatMs?: number;
}

type Endpoint = PgEndpoint;

const APP_NAME = 'temporal-runbooks-replication';

export function endpointConnection(ep: Endpoint): PgConnection {
  return { host: ep.address, port: ep.port, user: ep.user, database: ep.database, ...(ep.passwordFile !== undefined ? { passwordFile: ep.passwordFile } : {}) };
}

function describe(ep: Endpoint): string {
  return `${ep.label} (${describeConnection(endpointConnection(ep))})`;
}

function badRequest(message: string, type = 'ReplicationBadRequest'): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

/** The same failure with every secret replaced by *** (the other endpoint's password may be in it). */
function scrubFailure(err: Error, secrets: (string | undefined)[]): Error {
  let message = err.message;
  for (const s of secrets) message = scrub(message, s);
  if (message === err.message) return err;
  if (err instanceof ApplicationFailure) return ApplicationFailure.create({ message, type: err.type ?? undefined, nonRetryable: err.nonRetryable ?? undefined });
  return new Error(message);
}

// The subscriber reports a publisher it cannot use as connection_failure (08006), like an
// outage; these messages say no retry will help.
const PUBLISHER_REJECTS = /password authentication failed|no pg_hba\.conf entry|role "[^"]*" does not exist|database "[^"]*" does not exist|could not translate host name/i;

/** A connected client, with the admin session settings, closed whatever happens; errors scrubbed of `secrets` too. */
async function withSession<T>(ep: Endpoint, what: string, deps: ReplicationDeps, secrets: (string | undefined)[], fn: (client: Client) => Promise<T>): Promise<T> {
  const conn = endpointConnection(ep);
  const password = await readPassword(conn);
  const all = [password, ...secrets];
  const client = new Client({
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database: conn.database,
    ...(password !== undefined ? { password } : {}),
    connectionTimeoutMillis: deps.connectTimeoutMs ?? 10_000,
    application_name: APP_NAME,
  });
  client.on('error', () => undefined); // a server-side disconnect surfaces on the running query
  try {
    await client.connect();
    for (const sql of adminSessionSql()) await client.query(sql);
    return await fn(client);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    // undefined_object: a role (the app role) or a subscription's object that is not there
    if (e?.code === '42704') throw scrubFailure(ApplicationFailure.nonRetryable(`${what} on ${describe(ep)}: ${e.message}`, 'ReplicationBadRequest'), all);
    if (e?.code === '08006' && PUBLISHER_REJECTS.test(e.message ?? '')) {
      throw scrubFailure(ApplicationFailure.nonRetryable(`${what} on ${describe(ep)}: ${e.message}`, 'ReplicationPublisherRejected'), all);
    }
    throw scrubFailure(postgresFailure(conn, `${what} (${ep.label})`, err, password), all);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function tableRefs(client: Client, sql: string, params: unknown[] = []): Promise<TableRef[]> {
  return (await client.query<TableRef>(sql, params)).rows.map((r) => ({ schema: r.schema, name: r.name }));
}

function checkName(name: string): void {
  const problem = replicationNameProblem(name);
  if (problem) throw badRequest(problem);
}

/** pg_dump --schema-only of `from` applied to `to` in one transaction, committed only if pg_dump exited 0. */
async function copySchema(from: Endpoint, to: Endpoint): Promise<void> {
  const fromConn = endpointConnection(from);
  const toConn = endpointConnection(to);
  const [fromPw, toPw] = [await readPassword(fromConn), await readPassword(toConn)];
  const what = `schema copy from ${describe(from)} to ${describe(to)}`;
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };
  const dumpArgv = pgSchemaDumpArgv(fromConn);
  const applyArgv = psqlApplyArgv(toConn);
  const dump = spawn(dumpArgv[0], dumpArgv.slice(1), { env: { ...base, ...pgClientEnv(fromPw, { applicationName: APP_NAME }) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const apply = spawn(applyArgv[0], applyArgv.slice(1), { env: { ...base, ...pgClientEnv(toPw, { applicationName: APP_NAME }), PGOPTIONS: ADMIN_PGOPTIONS }, stdio: ['pipe', 'ignore', 'pipe'] });
  const dumpErr = new TailBuffer();
  const applyErr = new TailBuffer();
  dump.stderr.on('data', (c: Buffer) => dumpErr.write(c));
  apply.stderr.on('data', (c: Buffer) => applyErr.write(c));
  apply.stdin.on('error', () => undefined); // EPIPE when psql stops at an error: its exit code says why
  const exited = (p: ChildProcess, argv0: string) =>
    new Promise<number>((resolve, reject) => {
      p.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? ApplicationFailure.nonRetryable(`${argv0} is not installed on the worker (apt-get install postgresql-client)`, 'PostgresClientMissing') : err));
      p.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1)));
    });
  const dumpExit = exited(dump, 'pg_dump');
  const applyExit = exited(apply, 'psql');
  dumpExit.catch(() => undefined);
  applyExit.catch(() => undefined);
  apply.stdin.write(RESTORE_BEGIN);
  dump.stdout.pipe(apply.stdin, { end: false });
  const dumpCode = await dumpExit.catch((err) => {
    apply.kill('SIGKILL');
    throw err;
  });
  await new Promise<void>((resolve) => (dump.stdout.readableEnded ? resolve() : dump.stdout.once('end', () => resolve())));
  // without the COMMIT, psql's EOF rolls the transaction back: no half-copied schema
  apply.stdin.end(dumpCode === 0 ? RESTORE_COMMIT : undefined);
  const applyCode = await applyExit;
  if (dumpCode !== 0) throw programFailure(`pg_dump --schema-only of ${describe(from)}`, dumpCode, dumpErr.text(), fromPw);
  if (applyCode !== 0) throw programFailure(`${what}: psql`, applyCode, applyErr.text(), toPw);
}

async function subscriptionRow(client: Client, name: string): Promise<{ enabled: boolean; slot: string | null } | undefined> {
  return (await client.query<{ enabled: boolean; slot: string | null }>(subscriptionSql(), [name])).rows[0];
}

// ---- per-table stats in one snapshot ----

async function inSnapshot<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  await client.query(beginSnapshotSql());
  try {
    for (const sql of checksumSessionSql()) await client.query(sql);
    return await fn();
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

function markRef(mark: TableMark): TableRef {
  try {
    return parseTableName(mark.table);
  } catch (err) {
    throw badRequest(`mark of ${JSON.stringify(mark.table)}: ${(err as Error).message}`);
  }
}

interface SideStats {
  tables: RangeStat[];
  hourly: HourlyCount[][];
}

async function sideStats(client: Client, marks: TableMark[], series: { ts: TimeSeriesTable; ref: TableRef; mark?: TableMark }[]): Promise<SideStats> {
  return inSnapshot(client, async () => {
    const tables: RangeStat[] = [];
    for (const mark of marks) {
      heartbeat({ phase: 'checksum', table: mark.table });
      const { where, params } = markFilter(mark, 'before', 1, 't.');
      const r = await client.query<{ rows: string; checksum: string }>(rangeChecksumSql(markRef(mark), where), params);
      tables.push({ rows: Number(r.rows[0].rows), checksum: r.rows[0].checksum });
    }
    const hourly: HourlyCount[][] = [];
    for (const s of series) {
      heartbeat({ phase: 'hourly counts', table: s.ts.table });
      // without a mark the whole table is compared (a table unknown at T0)
      const { where, params } = s.mark ? markFilter(s.mark, 'before', 1, 't.') : { where: 'true', params: [] };
      const r = await client.query<{ key: string; hour: string; rows: string }>(hourlyCountsSql(s.ref, s.ts.keyColumn, s.ts.timeColumn, where), params);
      hourly.push(r.rows.map((x) => ({ key: x.key, hour: x.hour, rows: Number(x.rows) })));
    }
    return { tables, hourly };
  });
}

/** Runs a psql COPY ... TO STDOUT and returns its stdout (the password only in its environment). */
function copyOut(ep: Endpoint, password: string | undefined, sql: string) {
  const conn = endpointConnection(ep);
  const argv = psqlCopyOutArgv(conn, sql);
  const child = spawn(argv[0], argv.slice(1), {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...pgClientEnv(password, { applicationName: APP_NAME }), PGOPTIONS: ADMIN_PGOPTIONS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = new TailBuffer();
  child.stderr.on('data', (c: Buffer) => stderr.write(c));
  const exit = new Promise<number>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? ApplicationFailure.nonRetryable('psql is not installed on the worker (apt-get install postgresql-client)', 'PostgresClientMissing') : err));
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1)));
  });
  exit.catch(() => undefined);
  return { stdout: child.stdout, exit, stderr, kill: () => child.kill('SIGKILL') };
}

export function createReplicationActivities(deps: ReplicationDeps = {}) {
  const heartbeatMs = deps.heartbeatMs ?? 2000;
  const ssh = deps.ssh ?? new SshPool();

  async function status(req: { from: Endpoint; to: Endpoint; name: string }) {
    checkName(req.name);
    const fromPw = await readPassword(endpointConnection(req.from));
    const sub = await withSession(req.to, `replication status of ${req.name}`, deps, [fromPw], async (client) => {
      const row = await subscriptionRow(client, req.name);
      if (!row) throw badRequest(`there is no subscription ${req.name} on ${describe(req.to)}: start the replication first`, 'ReplicationMissing');
      const rows = (await client.query<{ schema: string; name: string; state: string }>(subscriptionTablesSql(), [req.name])).rows;
      return { row, tables: rows.map((r) => ({ table: displayTableName(r), state: subscriptionStateName(r.state) })) };
    });
    let lagBytes = -1;
    if (sub.row.slot) {
      const slot = sub.row.slot;
      lagBytes = await withSession(req.from, `replication lag of ${req.name}`, deps, [], async (client) => {
        const r = (await client.query<{ lag: string | null }>(slotSql(), [slot])).rows[0];
        if (!r) throw badRequest(`the replication slot ${slot} of subscription ${req.name} is missing on ${describe(req.from)}: remove the replication and start it again`, 'ReplicationMissing');
        return parseLag(r.lag);
      });
    }
    return { tables: sub.tables, ready: sub.row.enabled && sub.tables.every((t) => t.state === 'ready'), lagBytes };
  }

  return {
    /**
     * Publication FOR ALL TABLES on `from`, the schema on `to` if asked and absent, and the
     * subscription on `to`. `created` is false when the subscription was already there (a retry).
     */
    async startReplication(req: { from: Endpoint; to: Endpoint; name: string; copyData: boolean; copySchema: boolean }): Promise<{ tables: string[]; created: boolean }> {
      checkName(req.name);
      return whileHeartbeating(async () => {
        const fromPw = await readPassword(endpointConnection(req.from));
        const toPw = await readPassword(endpointConnection(req.to));
        const published = await withSession(req.from, `publication ${req.name}`, deps, [toPw], async (client) => {
          const wal = (await client.query<{ wal_level: string }>(walLevelSql())).rows[0].wal_level;
          const walProblem = walLevelProblem(wal, describe(req.from));
          if (walProblem) throw badRequest(walProblem, 'ReplicationNotPossible');
          const idProblem = replicaIdentityProblem(await tableRefs(client, tablesWithoutReplicaIdentitySql()), describe(req.from));
          if (idProblem) throw badRequest(idProblem, 'ReplicationNotPossible');
          const pub = (await client.query<{ all_tables: boolean }>(publicationSql(), [req.name])).rows[0];
          if (pub && !pub.all_tables) throw badRequest(`publication ${req.name} on ${describe(req.from)} exists but is not FOR ALL TABLES: drop it or choose another name`);
          if (!pub) {
            try {
              await client.query(createPublicationSql(req.name));
            } catch (err) {
              if ((err as { code?: string }).code !== '42710') throw err; // made meanwhile by a concurrent attempt
            }
          }
          return tableRefs(client, publicationTablesSql(), [req.name]);
        });
        const tables = published.map(displayTableName);

        const existing = await withSession(req.to, `subscription ${req.name}`, deps, [fromPw], async (client) => {
          if (await subscriptionRow(client, req.name)) return { subscribed: true, present: [] as string[] };
          const present = new Set((await tableRefs(client, listUserTablesSql())).map(displayTableName));
          return { subscribed: false, present: tables.filter((t) => present.has(t)) };
        });
        if (existing.subscribed) return { tables, created: false };

        if (existing.present.length === 0 && tables.length > 0) {
          if (!req.copySchema) throw badRequest(`${describe(req.to)} has none of the published tables (${tables.join(', ')}): create the schema there or ask for copySchema`);
          heartbeat({ phase: 'copy schema' });
          await copySchema(req.from, req.to);
        } else if (existing.present.length < tables.length) {
          const missing = tables.filter((t) => !existing.present.includes(t));
          throw badRequest(`${describe(req.to)} has some of the published tables but not ${missing.join(', ')}: create them there (same columns) or drop the others and copy the schema`);
        }

        // A slot of this name left on `from` without its subscription (an attempt that died after the
        // publisher made the slot) would make CREATE SUBSCRIPTION fail: an inactive one is ours to drop.
        await withSession(req.from, `leftover slot ${req.name}`, deps, [toPw], async (client) => {
          const slot = (await client.query<{ active: boolean }>(slotSql(), [req.name])).rows[0];
          if (slot && slot.active) throw new Error(`replication slot ${req.name} on ${describe(req.from)} is in use but ${describe(req.to)} has no subscription ${req.name}; retrying`);
          if (slot) await client.query(dropSlotSql(), [req.name]);
        });

        const connection = conninfo({
          host: req.from.peerAddress ?? req.from.address,
          port: req.from.peerPort ?? req.from.port,
          dbname: req.from.database,
          user: req.from.user,
          password: fromPw,
          connect_timeout: 10,
          application_name: req.name,
        });
        const created = await withSession(req.to, `create subscription ${req.name}`, deps, [fromPw, connection], async (client) => {
          for (const sql of quietStatementLogSql()) await client.query(sql).catch(() => undefined);
          if (await subscriptionRow(client, req.name)) return false;
          try {
            await client.query(createSubscriptionSql(req.name, connection, req.copyData));
            return true;
          } catch (err) {
            if ((err as { code?: string }).code === '42710' && (await subscriptionRow(client, req.name))) return false;
            throw err;
          }
        });
        return { tables, created };
      }, heartbeatMs);
    },

    /** Sync state per table (init, copying, copied, synchronized, ready), and the slot's lag (-1: not known yet). */
    async replicationStatus(req: { from: Endpoint; to: Endpoint; name: string }): Promise<{ tables: { table: string; state: string }[]; ready: boolean; lagBytes: number }> {
      return status(req);
    },

    /**
     * Waits for every table to be ready and the lag to be 0 (meant for after the writes stopped);
     * a retryable ReplicationLagging failure after timeoutMs says how far behind it still is.
     */
    async awaitReplicationCaughtUp(req: { from: Endpoint; to: Endpoint; name: string; timeoutMs: number }): Promise<{ lagBytes: 0; waitedMs: number }> {
      const started = Date.now();
      for (;;) {
        const s = await status(req);
        heartbeat({ phase: 'await replication', lagBytes: s.lagBytes, ready: s.ready });
        if (s.ready && s.lagBytes === 0) return { lagBytes: 0, waitedMs: Date.now() - started };
        const waited = Date.now() - started;
        if (waited >= req.timeoutMs) {
          const notReady = s.tables.filter((t) => t.state !== 'ready').map((t) => `${t.table} ${t.state}`);
          throw ApplicationFailure.retryable(
            `replication ${req.name} from ${req.from.label} to ${req.to.label} has not caught up after ${waited} ms: lag ${s.lagBytes < 0 ? 'unknown' : `${s.lagBytes} bytes`}${notReady.length ? `; tables not ready: ${notReady.join(', ')}` : ''}`,
            'ReplicationLagging',
            { lagBytes: s.lagBytes },
          );
        }
        await sleep(Math.min(deps.pollMs ?? 500, Math.max(1, req.timeoutMs - waited)));
      }
    },

    /**
     * Drops the subscription on `to` (and with it the slot on `from`), then the publication on
     * `from`. A publisher that cannot be reached: the subscription is detached from its slot and
     * dropped, and the slot (which holds WAL on `from` until dropped) and the publication are
     * dropped directly; while `from` stays unreachable this fails retryably, saying what remains.
     */
    async removeReplication(req: { from: Endpoint; to: Endpoint; name: string }): Promise<{ removed: boolean }> {
      checkName(req.name);
      return whileHeartbeating(async () => {
        const fromPw = await readPassword(endpointConnection(req.from));
        const sub = await withSession(req.to, `drop subscription ${req.name}`, deps, [fromPw], async (client) => {
          const row = await subscriptionRow(client, req.name);
          if (!row) return { existed: false, orphanSlot: undefined as string | undefined };
          try {
            await client.query(dropSubscriptionSql(req.name));
            return { existed: true, orphanSlot: undefined };
          } catch (err) {
            if (!/^08/.test((err as { code?: string }).code ?? '')) throw err;
            for (const sql of detachSubscriptionSql(req.name)) await client.query(sql);
            await client.query(dropSubscriptionSql(req.name));
            return { existed: true, orphanSlot: row.slot ?? undefined };
          }
        });
        const slotName = sub.orphanSlot ?? req.name;
        const fromSide = await withSession(req.from, `drop publication ${req.name}`, deps, [], async (client) => {
          let removed = false;
          // the walsender of a just-dropped subscription may take a moment to let go of the slot
          for (let i = 0; ; i++) {
            const slot = (await client.query<{ active: boolean; active_pid: number | null }>(slotSql(), [slotName])).rows[0];
            if (!slot) break;
            if (slot.active && slot.active_pid !== null) {
              if (i >= 10) throw new Error(`replication slot ${slotName} on ${describe(req.from)} is still in use by pid ${slot.active_pid}`);
              if (i >= 3) await client.query(terminateBackendSql(), [slot.active_pid]);
              await sleep(200);
              continue;
            }
            try {
              await client.query(dropSlotSql(), [slotName]);
              removed = true;
              break;
            } catch (err) {
              const code = (err as { code?: string }).code;
              if (code === '42704') break; // dropped meanwhile
              if (code !== '55006' || i >= 10) throw err; // 55006: became active again; try again
              await sleep(200);
            }
          }
          const pub = (await client.query(publicationSql(), [req.name])).rowCount;
          await client.query(dropPublicationSql(req.name));
          return removed || Boolean(pub);
        }).catch((err: Error) => {
          if (err instanceof ApplicationFailure && err.nonRetryable) throw err;
          throw new Error(`${sub.existed ? `subscription ${req.name} dropped on ${describe(req.to)}, but ` : ''}the replication slot and publication ${req.name} on ${describe(req.from)} could not be dropped (they keep WAL there until they are): ${err.message}`);
        });
        return { removed: sub.existed || fromSide };
      }, heartbeatMs);
    },

    /**
     * The app role's sessions on this database read-only (or writable again): a role-in-database
     * default (see appWritesSql for why this and not REVOKE), and the role's open sessions ended so
     * the next ones pick it up. Replication into the database keeps applying.
     */
    async setAppWrites(req: { endpoint: Endpoint; writable: boolean }): Promise<{ terminatedSessions: number }> {
      const ep = req.endpoint;
      const role = ep.appRole ?? ep.user;
      return whileHeartbeating(() =>
        withSession(ep, `${req.writable ? 'writable' : 'read-only'} for ${role}`, deps, [], async (client) => {
          await client.query(appWritesSql(role, ep.database, req.writable));
          const r = await client.query<{ terminated: number }>(terminateRoleSessionsSql(req.writable), [role, ep.database]);
          return { terminatedSessions: r.rows[0].terminated };
        }), heartbeatMs);
    },

    /**
     * Every sequence's last value on `from` set on `to` (logical replication does not carry them),
     * never moving one backwards. `value` is the sequence's last value on `to` afterwards ('' when
     * neither side has used it yet).
     */
    async copySequences(req: { from: Endpoint; to: Endpoint }): Promise<{ sequences: { name: string; value: string }[] }> {
      const seqs = await withSession(req.from, 'read sequences', deps, [], async (client) => (await client.query<{ schema: string; name: string; value: string | null }>(sequencesSql())).rows);
      return whileHeartbeating(() => withSession(req.to, 'set sequences', deps, [], async (client) => {
        const out: { name: string; value: string }[] = [];
        const missing: string[] = [];
        for (const s of seqs) {
          const name = displayTableName(s);
          if (s.value === null) {
            const here = (await client.query<{ value: string | null }>(sequenceValueSql(), [s.schema, s.name])).rows[0];
            if (!here) missing.push(name);
            else out.push({ name, value: here.value ?? '' });
            continue;
          }
          const r = (await client.query<{ value: string }>(advanceSequenceSql(s), [s.value, s.schema, s.name])).rows[0];
          if (!r) missing.push(name);
          else out.push({ name, value: r.value });
        }
        if (missing.length) throw badRequest(`sequences of ${describe(req.from)} missing on ${describe(req.to)}: ${missing.join(', ')}; create them (copy the schema) first`);
        return { sequences: out };
      }), heartbeatMs);
    },

    /**
     * Where every user table stands (one snapshot): the highest key of its single-column primary
     * key and its row count. A table without such a key cannot tell rows before T0 from rows after:
     * it is listed with key '' and maxKey null, counted only (reconciliation compares it whole).
     */
    async markTables(req: { endpoint: Endpoint }): Promise<TableMark[]> {
      return whileHeartbeating(() => withSession(req.endpoint, 'mark tables', deps, [], async (client) =>
        inSnapshot(client, async () => {
          const tables = (await client.query<{ schema: string; name: string; key: string | null }>(tableKeysSql())).rows;
          const marks: TableMark[] = [];
          for (const t of tables) {
            heartbeat({ phase: 'mark', table: displayTableName(t) });
            const r = (await client.query<{ max_key: string | null; rows: string }>(markSql(t, t.key ?? undefined))).rows[0];
            marks.push({ table: displayTableName(t), key: t.key ?? '', maxKey: r.max_key, rows: Number(r.rows) });
          }
          return marks;
        }),
      ), heartbeatMs);
    },

    /**
     * Rows that existed at T0 (key ≤ maxKey), compared between `a` and `b`: count and content
     * checksum per table, and count per series key per hour for time-series tables. Each side is
     * read in one snapshot; the differences listed are capped at MAX_TIME_SERIES_DIFFERENCES.
     */
    async reconcileTables(req: { a: Endpoint; b: Endpoint; marks: TableMark[]; timeSeries: TimeSeriesTable[] }): Promise<ReconciliationReport> {
      req.marks.forEach(markRef);
      const series = req.timeSeries.map((ts) => {
        let ref: TableRef;
        try {
          ref = parseTableName(ts.table);
        } catch (err) {
          throw badRequest(`time-series table ${JSON.stringify(ts.table)}: ${(err as Error).message}`);
        }
        const mark = req.marks.find((m) => {
          const r = markRef(m);
          return r.schema === ref.schema && r.name === ref.name;
        });
        return { ts, ref, mark };
      });
      return whileHeartbeating(async () => {
        const [a, b] = await Promise.all([
          withSession(req.a, 'reconcile', deps, [], (client) => sideStats(client, req.marks, series)),
          withSession(req.b, 'reconcile', deps, [], (client) => sideStats(client, req.marks, series)),
        ]);
        const tables = req.marks.map((m, i) => tableReconciliation(m.table, a.tables[i], b.tables[i]));
        const all: TimeSeriesDifference[] = series.flatMap((s, i) => hourlyDifferences(displayTableName(s.ref), a.hourly[i], b.hourly[i]));
        return {
          at: new Date().toISOString(),
          tables,
          timeSeries: all.slice(0, MAX_TIME_SERIES_DIFFERENCES),
          drift: all.length > 0 || tables.some((t) => !t.equal),
        };
      }, heartbeatMs);
    },

    /**
     * The rows written after T0 (key > maxKey) of every marked table, as CSV with a header, into
     * `<prefix>/<schema>.<table>.csv` of the storage, then `<prefix>/manifest.json` (written last:
     * it is what makes the export complete). Tables with no new rows, and tables without a key
     * (which cannot tell new rows from old), are listed with 0 rows. A retry rewrites the files.
     */
    async exportRowsAfter(req: { endpoint: Endpoint; marks: TableMark[]; storage: StorageSpec; prefix: string }): Promise<RowExport> {
      const problem = exportPrefixProblem(req.prefix);
      if (problem) throw badRequest(problem, STORAGE_BAD_NAME);
      const refs = req.marks.map(markRef);
      const storage = openStorage(storageUnder(req.storage, req.prefix), { ssh });
      const conn = endpointConnection(req.endpoint);
      const password = await readPassword(conn);
      return whileHeartbeating(async () => {
        const files: ExportManifestFile[] = [];
        for (const [i, mark] of req.marks.entries()) {
          const file = exportFileName(refs[i]);
          heartbeat({ phase: 'export', table: mark.table });
          const copy = copyOut(req.endpoint, password, copyRowsAfterSql(refs[i], mark));
          const counter = new CsvRecordCounter();
          const tap = new HashTap(async () => {
            const code = await copy.exit;
            // the file counts only if psql finished well: checked before storage commits it
            if (code !== 0) throw programFailure(`export of ${mark.table} from ${describe(req.endpoint)}`, code, copy.stderr.text(), password);
          });
          try {
            const put = await storage.putStream(file, copy.stdout.pipe(counter).pipe(tap));
            files.push({ table: mark.table, file: `${req.prefix}/${file}`, key: mark.key, after: mark.maxKey, rows: Math.max(0, counter.records - 1), sizeBytes: put.sizeBytes, sha256: tap.hash.digest('hex') });
          } catch (err) {
            copy.kill();
            throw err instanceof Error ? scrubFailure(err, [password]) : err;
          }
        }
        const manifest: ExportManifest = {
          kind: 'rows-after-mark',
          createdAt: new Date().toISOString(),
          source: describeConnection(conn),
          format: 'csv-header',
          files,
          rows: files.reduce((n, f) => n + f.rows, 0),
        };
        await storage.putText(EXPORT_MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
        return {
          manifest: `${req.prefix}/${EXPORT_MANIFEST}`,
          files: files.map((f) => ({ table: f.table, file: f.file, rows: f.rows, sha256: f.sha256 })),
          rows: manifest.rows,
        };
      }, heartbeatMs);
    },

    /** Rows written after T0 per keyed table (the data-flow check); tables without a key are left out. */
    async countRowsAfter(req: { endpoint: Endpoint; marks: TableMark[] }): Promise<{ table: string; rows: number }[]> {
      const keyed = req.marks.filter((m) => m.key);
      const refs = keyed.map(markRef);
      return whileHeartbeating(() => withSession(req.endpoint, 'count rows after the mark', deps, [], async (client) => {
        const out: { table: string; rows: number }[] = [];
        for (const [i, mark] of keyed.entries()) {
          const { where, params } = markFilter(mark, 'after', 1, 't.');
          const r = await client.query<{ rows: string }>(countWhereSql(refs[i], where), params);
          out.push({ table: mark.table, rows: Number(r.rows[0].rows) });
        }
        return out;
      }), heartbeatMs);
    },
  };
}

export type ReplicationActivities = ReturnType<typeof createReplicationActivities>;
