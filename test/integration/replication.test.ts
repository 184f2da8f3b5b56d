// The DNS cutover's data move against two real PostgreSQL 15 servers started by the test: forward
// replication old → new with the initial copy, the switch (old read-only for the app, lag 0,
// sequences), reverse replication new → old, reconciliation, the export of post-T0 rows, and
// removal with the publisher down. Every activity is called twice to show a retry changes nothing.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import { createReplicationActivities } from '../../activities/replication';
import type { PgEndpoint, TableMark, TimeSeriesTable } from '../../common/cutover';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

jest.setTimeout(30_000);

const OLD_PW = "old-S3cret'pw\\x";
const NEW_PW = 'new-S3cret-pw-2';
const APP_PW = 'app-S3cret-pw-3';
const app = { user: 'app', password: APP_PW };
const act = createReplicationActivities({ pollMs: 100, heartbeatMs: 500 });
const timeSeries: TimeSeriesTable[] = [{ table: 'public.readings', keyColumn: 'sensor', timeColumn: 'at' }];

let oldDb: PgCluster;
let newDb: PgCluster;
let physicalOnly: PgCluster;
let tmp: string;
let old: PgEndpoint;
let neu: PgEndpoint;

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function noSecrets(err: Error): void {
  const text = `${err.message}\n${err.stack ?? ''}\n${JSON.stringify(err)}`;
  // the passwords' distinctive parts too: inside a conninfo and an SQL literal they appear escaped
  for (const secret of [OLD_PW, NEW_PW, APP_PW, 'S3cret']) expect(text).not.toContain(secret);
}

const count = async (db: PgCluster, table: string) => Number((await db.query<{ n: string }>('shop', `SELECT count(*) AS n FROM ${table}`))[0].n);

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  [oldDb, newDb, physicalOnly] = await Promise.all([
    startPgCluster({ name: 'old', password: OLD_PW }),
    startPgCluster({ name: 'new', password: NEW_PW }),
    startPgCluster({ name: 'replica-wal', password: NEW_PW, settings: { wal_level: 'replica' } }),
  ]);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'replication-test-'));
  for (const db of [oldDb, newDb]) {
    await db.query('postgres', `CREATE ROLE app LOGIN PASSWORD '${APP_PW}'`);
    await db.query('postgres', 'CREATE DATABASE shop');
  }
  await oldDb.query('shop', `
    CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), note text);
    CREATE TABLE readings (id bigserial PRIMARY KEY, sensor text NOT NULL, at timestamptz NOT NULL, value double precision);
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app;
    ALTER TABLE readings OWNER TO app;
    INSERT INTO items (name, price, note) SELECT 'item ' || i, i * 1.5, CASE WHEN i % 7 = 0 THEN E'line\\nbreak, "quoted"' END FROM generate_series(1, 50) i;
    INSERT INTO readings (sensor, at, value)
      SELECT 's' || (i % 3), timestamptz '2026-11-20 10:00+00' + (i * interval '7 minutes'), i / 3.0 FROM generate_series(1, 60) i;`);
  old = { label: 'old', address: '127.0.0.1', port: oldDb.port, database: 'shop', user: 'admin', passwordFile: oldDb.passwordFile, appRole: 'app' };
  neu = { label: 'new', address: '127.0.0.1', port: newDb.port, database: 'shop', user: 'admin', passwordFile: newDb.passwordFile, appRole: 'app' };
});

afterAll(async () => {
  await Promise.all([oldDb?.remove(), newDb?.remove(), physicalOnly?.remove()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('dnsCutover data move', () => {
  let marks: TableMark[];

  it('refuses a publisher whose wal_level is not logical, saying what to set', async () => {
    const from = { label: 'old', address: '127.0.0.1', port: physicalOnly.port, database: 'postgres', user: 'admin', passwordFile: physicalOnly.passwordFile };
    const err = await rejection(act.startReplication({ from, to: neu, name: 'cut_fwd', copyData: true, copySchema: true }));
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect(err.message).toMatch(/wal_level is replica on old .*ALTER SYSTEM SET wal_level = logical.*restart the server/);
    await physicalOnly.remove();
  });

  it('refuses a publisher with a table that cannot replicate updates, naming it', async () => {
    await oldDb.query('shop', 'CREATE TABLE scratch_log (line text)');
    const err = await rejection(act.startReplication({ from: old, to: neu, name: 'cut_fwd', copyData: true, copySchema: true }));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect(err.message).toMatch(/without a primary key or replica identity.*public\.scratch_log; add a primary key/);
    await oldDb.query('shop', 'DROP TABLE scratch_log');
  });

  it('refuses a target with part of the schema, or none and no schema copy asked', async () => {
    await newDb.query('postgres', 'CREATE DATABASE partial');
    await newDb.query('partial', 'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), note text)');
    const partial = await rejection(act.startReplication({ from: old, to: { ...neu, database: 'partial' }, name: 'cut_partial', copyData: true, copySchema: true }));
    expect((partial as ApplicationFailure).nonRetryable).toBe(true);
    expect(partial.message).toMatch(/has some of the published tables but not public\.readings/);
    const empty = await rejection(act.startReplication({ from: old, to: { ...neu, database: 'postgres' }, name: 'cut_partial', copyData: true, copySchema: false }));
    expect(empty.message).toMatch(/has none of the published tables \(public\.items, public\.readings\): create the schema there or ask for copySchema/);
    expect(await act.removeReplication({ from: old, to: { ...neu, database: 'partial' }, name: 'cut_partial' })).toEqual({ removed: true });
    await newDb.query('postgres', 'DROP DATABASE partial');
  });

  it('copies the schema and the data, and a retry creates nothing', async () => {
    const first = await act.startReplication({ from: old, to: neu, name: 'cut_fwd', copyData: true, copySchema: true });
    expect(first).toEqual({ tables: ['public.items', 'public.readings'], created: true });
    expect(await act.startReplication({ from: old, to: neu, name: 'cut_fwd', copyData: true, copySchema: true })).toEqual({ ...first, created: false });
    const caught = await act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_fwd', timeoutMs: 20_000 });
    expect(caught.lagBytes).toBe(0);
    expect(await count(newDb, 'items')).toBe(50);
    expect(await count(newDb, 'readings')).toBe(60);
    // owners and grants as on the old side: the app can use its tables after the switch
    const owners = "SELECT tablename || ' ' || tableowner AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1";
    expect(await newDb.query('shop', owners)).toEqual(await oldDb.query('shop', owners));
    expect(await newDb.query('shop', owners)).toEqual([{ t: 'items admin' }, { t: 'readings app' }]);
    expect((await newDb.query<{ n: string }>('postgres', "SELECT count(*) AS n FROM pg_subscription WHERE subname = 'cut_fwd'"))[0].n).toBe('1');
    const status = await act.replicationStatus({ from: old, to: neu, name: 'cut_fwd' });
    expect(status).toEqual({ tables: [{ table: 'public.items', state: 'ready' }, { table: 'public.readings', state: 'ready' }], ready: true, lagBytes: expect.any(Number) });
    expect(status.lagBytes).toBeGreaterThanOrEqual(0);
  });

  it('replicates changes, and the lag returns to 0 once writes stop', async () => {
    await oldDb.query('shop', "INSERT INTO items (name) VALUES ('new one'); UPDATE items SET price = 0 WHERE id = 2; DELETE FROM items WHERE id = 3", [], app);
    await oldDb.query('shop', "INSERT INTO readings (sensor, at, value) SELECT 's9', now(), g FROM generate_series(1, 2000) g");
    const caught = await act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_fwd', timeoutMs: 20_000 });
    expect(caught.lagBytes).toBe(0);
    expect(await newDb.query('shop', 'SELECT id, name, price FROM items WHERE id IN (2, 3, 51) ORDER BY id')).toEqual([
      { id: 2, name: 'item 2', price: '0.00' },
      { id: 51, name: 'new one', price: null },
    ]);
    expect(await count(newDb, 'readings')).toBe(2060);

    // a stopped subscriber: still lagging after the timeout, retryably, with the lag
    await newDb.query('shop', 'ALTER SUBSCRIPTION cut_fwd DISABLE');
    await oldDb.query('shop', "UPDATE readings SET value = -1 WHERE id = 1");
    const lagging = await rejection(act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_fwd', timeoutMs: 300 }));
    expect(lagging).toBeInstanceOf(ApplicationFailure);
    expect((lagging as ApplicationFailure).type).toBe('ReplicationLagging');
    expect((lagging as ApplicationFailure).nonRetryable).toBeFalsy();
    expect(lagging.message).toMatch(/has not caught up after \d+ ms: lag [1-9]\d* bytes/);
    await newDb.query('shop', 'ALTER SUBSCRIPTION cut_fwd ENABLE');
    await act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_fwd', timeoutMs: 10_000 });
    expect(await newDb.query('shop', 'SELECT value FROM readings WHERE id = 1')).toEqual([{ value: -1 }]);
  });

  it('a read-only subscriber database refuses the app but still applies replication', async () => {
    const before = new Client({ host: '127.0.0.1', port: newDb.port, database: 'shop', ...app });
    before.on('error', () => undefined);
    await before.connect();
    const r = await act.setAppWrites({ endpoint: neu, writable: false });
    expect(r.terminatedSessions).toBe(1);
    expect(await rejection(before.query('SELECT 1'))).toBeTruthy(); // its session was ended
    await before.end().catch(() => undefined);
    expect(await act.setAppWrites({ endpoint: neu, writable: false })).toEqual({ terminatedSessions: 0 });
    const refused = await rejection(newDb.query('shop', "INSERT INTO items (name) VALUES ('on new')", [], app));
    expect(refused.message).toMatch(/read-only transaction/);
    await oldDb.query('shop', "INSERT INTO items (name) VALUES ('while new is read-only')", [], app);
    await act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_fwd', timeoutMs: 10_000 });
    expect(await newDb.query('shop', 'SELECT id, name FROM items WHERE id > 50 ORDER BY id')).toEqual([{ id: 51, name: 'new one' }, { id: 52, name: 'while new is read-only' }]);
  });

  it('switches: old read-only for the app, caught up, marked, sequences carried, new writable', async () => {
    await act.setAppWrites({ endpoint: old, writable: false });
    expect((await rejection(oldDb.query('shop', "INSERT INTO items (name) VALUES ('late')", [], app))).message).toMatch(/read-only transaction/);
    await act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_fwd', timeoutMs: 10_000 });

    marks = await act.markTables({ endpoint: neu });
    expect(marks).toEqual([
      { table: 'public.items', key: 'id', maxKey: '52', rows: 51 },
      { table: 'public.readings', key: 'id', maxKey: '2060', rows: 2060 },
    ]);
    expect(await act.markTables({ endpoint: old })).toEqual(marks);
    expect(await act.markTables({ endpoint: neu })).toEqual(marks);

    expect(await act.removeReplication({ from: old, to: neu, name: 'cut_fwd' })).toEqual({ removed: true });
    expect(await act.removeReplication({ from: old, to: neu, name: 'cut_fwd' })).toEqual({ removed: false });
    expect(await oldDb.query('shop', "SELECT slot_name FROM pg_replication_slots")).toEqual([]);
    expect(await oldDb.query('shop', 'SELECT pubname FROM pg_publication')).toEqual([]);

    const seqs = await act.copySequences({ from: old, to: neu });
    expect(seqs.sequences).toEqual([{ name: 'public.items_id_seq', value: '52' }, { name: 'public.readings_id_seq', value: '2060' }]);
    expect(await act.copySequences({ from: old, to: neu })).toEqual(seqs);

    // made writable: a pooled session idle for seconds (read-only by default) is ended, a session
    // that has just connected (about to send its statement) is left alone
    const pooled = new Client({ host: '127.0.0.1', port: newDb.port, database: 'shop', ...app });
    pooled.on('error', () => undefined);
    await pooled.connect();
    await new Promise((r) => setTimeout(r, 1500));
    const fresh = new Client({ host: '127.0.0.1', port: newDb.port, database: 'shop', ...app });
    await fresh.connect();
    expect(await act.setAppWrites({ endpoint: neu, writable: true })).toEqual({ terminatedSessions: 1 });
    expect(await rejection(pooled.query('SELECT 1'))).toBeTruthy();
    await pooled.end().catch(() => undefined);
    expect((await rejection(fresh.query("INSERT INTO items (name) VALUES ('refused, not killed')"))).message).toMatch(/read-only transaction/);
    await fresh.end();
    expect(await act.setAppWrites({ endpoint: neu, writable: true })).toEqual({ terminatedSessions: 0 });
    expect(await newDb.query('shop', "INSERT INTO items (name) VALUES ('first on new') RETURNING id", [], app)).toEqual([{ id: 53 }]);
    // never backwards: new is ahead of old now
    expect((await act.copySequences({ from: old, to: neu })).sequences[0]).toEqual({ name: 'public.items_id_seq', value: '53' });
  });

  it('replicates back new → old without copying, into the read-only old database', async () => {
    const rev = { from: neu, to: old, name: 'cut_rev' };
    expect(await act.startReplication({ ...rev, copyData: false, copySchema: false })).toEqual({ tables: ['public.items', 'public.readings'], created: true });
    expect((await act.startReplication({ ...rev, copyData: false, copySchema: false })).created).toBe(false);
    await act.awaitReplicationCaughtUp({ ...rev, timeoutMs: 20_000 });
    // item 53 was written before the subscription existed: not copied (copy_data = false)
    expect(await oldDb.query('shop', 'SELECT id FROM items WHERE id > 52')).toEqual([]);
    await newDb.query('shop', "INSERT INTO items (name, note) VALUES ('after T0', E'two\\nlines'), ('after T0 too', NULL); INSERT INTO readings (sensor, at, value) VALUES ('s1', now(), 1)", [], app);
    await act.awaitReplicationCaughtUp({ ...rev, timeoutMs: 10_000 });
    expect(await oldDb.query('shop', 'SELECT id, name FROM items WHERE id > 52 ORDER BY id')).toEqual([{ id: 54, name: 'after T0' }, { id: 55, name: 'after T0 too' }]);

    expect(await act.countRowsAfter({ endpoint: neu, marks })).toEqual([{ table: 'public.items', rows: 3 }, { table: 'public.readings', rows: 1 }]);
    expect(await act.countRowsAfter({ endpoint: old, marks })).toEqual([{ table: 'public.items', rows: 2 }, { table: 'public.readings', rows: 1 }]);
    expect(await act.countRowsAfter({ endpoint: old, marks })).toEqual([{ table: 'public.items', rows: 2 }, { table: 'public.readings', rows: 1 }]);
  });

  it('reconciles the pre-T0 rows as equal', async () => {
    const report = await act.reconcileTables({ a: old, b: neu, marks, timeSeries });
    expect(report.drift).toBe(false);
    expect(report.timeSeries).toEqual([]);
    expect(report.tables.map((t) => [t.table, t.rows, t.equal])).toEqual([['public.items', [51, 51], true], ['public.readings', [2060, 2060], true]]);
    expect(Date.parse(report.at)).toBeGreaterThan(Date.now() - 60_000);
    const again = await act.reconcileTables({ a: old, b: neu, marks, timeSeries });
    expect(again.tables).toEqual(report.tables);
  });

  it('exports exactly the rows written after the mark, with a manifest', async () => {
    const storage = { type: 'directory' as const, path: path.join(tmp, 'exports') };
    const req = { endpoint: neu, marks, storage, prefix: 'shop/rollback-1' };
    const exported = await act.exportRowsAfter(req);
    expect(exported.manifest).toBe('shop/rollback-1/manifest.json');
    expect(exported.rows).toBe(4);
    expect(exported.files.map((f) => [f.table, f.file, f.rows])).toEqual([
      ['public.items', 'shop/rollback-1/public.items.csv', 3],
      ['public.readings', 'shop/rollback-1/public.readings.csv', 1],
    ]);
    const dir = path.join(tmp, 'exports', 'shop', 'rollback-1');
    expect((await readdir(dir)).sort()).toEqual(['manifest.json', 'public.items.csv', 'public.readings.csv']);
    const csv = await readFile(path.join(dir, 'public.items.csv'), 'utf8');
    expect(csv).toBe('id,name,price,note\n53,first on new,,\n54,after T0,,"two\nlines"\n55,after T0 too,,\n');
    expect(exported.files[0].sha256).toBe(createHash('sha256').update(csv).digest('hex'));
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ kind: 'rows-after-mark', format: 'csv-header', rows: 4, source: `postgres://admin@127.0.0.1:${newDb.port}/shop` });
    expect(manifest.files[0]).toMatchObject({ table: 'public.items', key: 'id', after: '52', rows: 3, sha256: exported.files[0].sha256 });
    const again = await act.exportRowsAfter(req);
    expect(again.files).toEqual(exported.files);
    // a table with nothing new is still listed; an export of a table without a key holds no rows
    const none = await act.exportRowsAfter({ ...req, prefix: 'shop/rollback-2', marks: [{ ...marks[0], maxKey: '1000' }, { ...marks[1], key: '', maxKey: null }] });
    expect(none.files.map((f) => f.rows)).toEqual([0, 0]);
    expect(await readFile(path.join(tmp, 'exports', 'shop', 'rollback-2', 'public.readings.csv'), 'utf8')).toBe('id,sensor,at,value\n');
  });

  it('detects a changed pre-T0 row and a changed hour of a time series', async () => {
    await act.removeReplication({ from: neu, to: old, name: 'cut_rev' });
    await oldDb.query('shop', "UPDATE items SET name = 'changed behind our back' WHERE id = 10");
    await newDb.query('shop', "DELETE FROM readings WHERE id = (SELECT min(id) FROM readings WHERE sensor = 's1')");
    const report = await act.reconcileTables({ a: old, b: neu, marks, timeSeries });
    expect(report.drift).toBe(true);
    const [items, readings] = report.tables;
    expect(items).toMatchObject({ table: 'public.items', rows: [51, 51], equal: false });
    expect(items.checksums[0]).not.toBe(items.checksums[1]);
    expect(readings).toMatchObject({ rows: [2060, 2059], equal: false });
    expect(report.timeSeries).toEqual([{ table: 'public.readings', key: 's1', hour: '2026-11-20 10:00:00+00', counts: [3, 2] }]);
  });

  it('a subscription that cannot reach its publisher fails without any password in the error', async () => {
    const unreachable = { ...old, peerPort: 1 };
    const err = await rejection(act.startReplication({ from: unreachable, to: neu, name: 'cut_bad', copyData: false, copySchema: false }));
    expect(err.message).toMatch(/create subscription cut_bad.*could not connect to the publisher/);
    noSecrets(err);
    expect(await newDb.query('shop', 'SELECT subname FROM pg_subscription')).toEqual([]);
    // nor in the subscriber's server log, which keeps the statement of an error by default
    const log = await readFile(path.join(newDb.dir, 'log', 'server.log'), 'utf8');
    expect(log).toMatch(/could not connect to the publisher/);
    expect(log).not.toContain('old-S3cret');
    // a wrong password for the publisher: refused for good, still no password in the message
    const wrongFile = path.join(tmp, 'wrong-password');
    await writeFile(wrongFile, 'not-the-password\n');
    const bad = await rejection(act.startReplication({ from: { ...old, passwordFile: wrongFile }, to: neu, name: 'cut_bad', copyData: false, copySchema: false }));
    expect(bad.message).toMatch(/password authentication failed/);
    expect((bad as ApplicationFailure).nonRetryable).toBe(true);
    expect(bad.message).not.toContain('not-the-password');
    expect(await act.removeReplication({ from: old, to: neu, name: 'cut_bad' })).toEqual({ removed: true }); // the publication it made
  });

  it('removes a replication whose publisher is down: subscription at once, slot and publication once it is back', async () => {
    // a slot of that name left behind by an attempt that died: dropped, not a failure
    await oldDb.query('shop', "SELECT pg_create_logical_replication_slot('cut_gone', 'pgoutput')");
    expect((await act.startReplication({ from: old, to: neu, name: 'cut_gone', copyData: false, copySchema: false })).created).toBe(true);
    await act.awaitReplicationCaughtUp({ from: old, to: neu, name: 'cut_gone', timeoutMs: 10_000 });
    await oldDb.stop();
    const err = await rejection(act.removeReplication({ from: old, to: neu, name: 'cut_gone' }));
    expect(err.message).toMatch(/subscription cut_gone dropped on new .*the replication slot and publication cut_gone on old .* could not be dropped/);
    expect((err as ApplicationFailure).nonRetryable).toBeFalsy();
    noSecrets(err);
    expect(await newDb.query('shop', 'SELECT subname FROM pg_subscription')).toEqual([]);
    await oldDb.start();
    await until('the slot to be released', async () => (await oldDb.query<{ active: boolean }>('shop', "SELECT active FROM pg_replication_slots WHERE slot_name = 'cut_gone'")).every((s) => !s.active));
    expect(await act.removeReplication({ from: old, to: neu, name: 'cut_gone' })).toEqual({ removed: true });
    expect(await oldDb.query('shop', 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    expect(await oldDb.query('shop', 'SELECT pubname FROM pg_publication')).toEqual([]);
    expect(await act.removeReplication({ from: old, to: neu, name: 'cut_gone' })).toEqual({ removed: false });
  });

  it('refuses for good to change the writes of a role that does not exist', async () => {
    const err = await rejection(act.setAppWrites({ endpoint: { ...old, appRole: 'nobody' }, writable: false }));
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect(err.message).toMatch(/role "nobody" does not exist/);
  });

  it('old writable again lets the app write', async () => {
    await act.setAppWrites({ endpoint: old, writable: true });
    expect(await oldDb.query('shop', "INSERT INTO items (name) VALUES ('back on old') RETURNING name", [], app)).toEqual([{ name: 'back on old' }]);
  });
});
