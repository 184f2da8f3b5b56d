import { Readable } from 'node:stream';
import {
  adminSessionSql,
  advanceSequenceSql,
  appWritesSql,
  conninfo,
  copyRowsAfterSql,
  createPublicationSql,
  createSubscriptionSql,
  CsvRecordCounter,
  detachSubscriptionSql,
  dropPublicationSql,
  dropSubscriptionSql,
  exportFileName,
  exportPrefixProblem,
  hourlyCountsSql,
  hourlyDifferences,
  markFilter,
  markSql,
  parseLag,
  parseTableName,
  pgSchemaDumpArgv,
  quietStatementLogSql,
  rangeChecksumSql,
  replicaIdentityProblem,
  replicationNameProblem,
  slotSql,
  storageUnder,
  subscriptionStateName,
  tableReconciliation,
  terminateRoleSessionsSql,
  walLevelProblem,
} from '../../common/commands/replication';
import type { TableMark } from '../../common/cutover';

const items = { schema: 'public', name: 'items' };

describe('names', () => {
  it('accepts slot-safe names only', () => {
    expect(replicationNameProblem('cutover_shop')).toBeUndefined();
    expect(replicationNameProblem('Cutover')).toMatch(/lower-case/);
    expect(replicationNameProblem('1abc')).toMatch(/lower-case/);
    expect(replicationNameProblem('a-b')).toMatch(/lower-case/);
    expect(replicationNameProblem('x'.repeat(64))).toMatch(/63/);
    expect(replicationNameProblem(undefined)).toMatch(/replication name/);
  });
  it('parses table names as displayTableName prints them', () => {
    expect(parseTableName('public.items')).toEqual(items);
    expect(parseTableName('items')).toEqual(items);
    expect(parseTableName('"Billing"."Invoice Lines"')).toEqual({ schema: 'Billing', name: 'Invoice Lines' });
    expect(parseTableName('"a.b"."c""d"')).toEqual({ schema: 'a.b', name: 'c"d' });
    expect(() => parseTableName('a.b.c')).toThrow(/schema.table/);
    expect(() => parseTableName('a.')).toThrow(/not a table name/);
    expect(() => parseTableName('"a')).toThrow(/unterminated/);
    expect(() => parseTableName('')).toThrow();
  });
});

describe('publisher and subscriber statements', () => {
  it('says what to set when wal_level is not logical', () => {
    expect(walLevelProblem('logical', 'x')).toBeUndefined();
    expect(walLevelProblem('replica', 'postgres://a@h:5432/shop')).toMatch(/wal_level is replica on postgres:\/\/a@h:5432\/shop.*ALTER SYSTEM SET wal_level = logical.*restart/);
  });
  it('lists the tables without replica identity', () => {
    expect(replicaIdentityProblem([], 'x')).toBeUndefined();
    expect(replicaIdentityProblem([items, { schema: 'public', name: 'Log' }], 'db')).toMatch(/public\.items, public\."Log"; add a primary key, or ALTER TABLE \.\.\. REPLICA IDENTITY FULL/);
  });
  it('quotes names in publications and subscriptions', () => {
    expect(createPublicationSql('cut')).toBe('CREATE PUBLICATION "cut" FOR ALL TABLES');
    expect(dropPublicationSql('cut')).toBe('DROP PUBLICATION IF EXISTS "cut"');
    expect(dropSubscriptionSql('cut')).toBe('DROP SUBSCRIPTION IF EXISTS "cut"');
    expect(detachSubscriptionSql('cut')).toEqual(['ALTER SUBSCRIPTION "cut" DISABLE', 'ALTER SUBSCRIPTION "cut" SET (slot_name = NONE)']);
  });
  it('builds a conninfo libpq parses back, and a CREATE SUBSCRIPTION literal around it', () => {
    const info = conninfo({ host: '10.0.0.5', port: 5432, user: 'repl', dbname: "o'brien", password: "p'w\\x y", connect_timeout: 10, sslmode: undefined });
    expect(info).toBe("host='10.0.0.5' port='5432' user='repl' dbname='o\\'brien' password='p\\'w\\\\x y' connect_timeout='10'");
    expect(() => conninfo({ 'bad key': 'x' })).toThrow(/libpq option/);
    const sql = createSubscriptionSql('cut', "host='h' password='it''s'", true);
    expect(sql).toBe(`CREATE SUBSCRIPTION "cut" CONNECTION 'host=''h'' password=''it''''s''' PUBLICATION "cut" WITH (copy_data = true)`);
    expect(createSubscriptionSql('cut', 'x', false)).toMatch(/copy_data = false/);
  });
  it('measures the lag from the WAL insert position (async commits count), forgiving a page header', () => {
    const sql = slotSql();
    expect(sql).toMatch(/pg_wal_lsn_diff\(pg_catalog\.pg_current_wal_insert_lsn\(\), s\.confirmed_flush_lsn\)/);
    expect(sql).toMatch(/d\.diff <= 40 AND d\.confirmed % current_setting\('wal_block_size'\)::numeric = 0 THEN 0/);
    expect(sql).toMatch(/WHERE s\.slot_name = \$1$/);
  });
  it('keeps the statement with the password out of the server log and pg_stat_statements', () => {
    expect(quietStatementLogSql()).toEqual(["SET log_min_error_statement = 'panic'", "SET log_statement = 'none'", 'SET pg_stat_statements.track_utility = off']);
  });
  it('names sync states and reads lags', () => {
    expect(['i', 'd', 'f', 's', 'r', 'z'].map(subscriptionStateName)).toEqual(['init', 'copying', 'copied', 'synchronized', 'ready', 'z']);
    expect(parseLag('1234')).toBe(1234);
    expect(parseLag('-8')).toBe(0);
    expect(parseLag(null)).toBe(-1);
  });
  it('dumps the schema without owners, publications or subscriptions, password-free', () => {
    expect(pgSchemaDumpArgv({ host: 'h', port: 5, user: 'u', database: 'shop' })).toEqual([
      'pg_dump', '--schema-only', '--no-publications', '--no-subscriptions', '--encoding=UTF8',
      '--host=h', '--port=5', '--username=u', '--dbname=shop', '--no-password',
    ]);
  });
});

describe('app writes and sessions', () => {
  it('sets and resets the role-in-database default', () => {
    expect(appWritesSql('app', 'shop', false)).toBe('ALTER ROLE "app" IN DATABASE "shop" SET default_transaction_read_only = on');
    expect(appWritesSql('app', 'shop', true)).toBe('ALTER ROLE "app" IN DATABASE "shop" RESET default_transaction_read_only');
    expect(adminSessionSql()).toEqual(['SET default_transaction_read_only = off']);
  });
  it('terminates client backends only, never its own', () => {
    const sql = terminateRoleSessionsSql();
    expect(sql).toMatch(/backend_type = 'client backend'/);
    expect(sql).toMatch(/pid <> pg_catalog\.pg_backend_pid\(\)/);
    expect(sql).toMatch(/usename = \$1 AND datname = \$2/);
    // made read-only: every session (none may commit afterwards); made writable: idle ones only
    expect(sql).not.toMatch(/state/);
    expect(terminateRoleSessionsSql(true)).toMatch(/\nAND state = 'idle' AND state_change < pg_catalog\.clock_timestamp\(\) - interval '1 second'$/);
  });
  it('only ever moves a sequence forward, in its own direction', () => {
    const sql = advanceSequenceSql({ schema: 'public', name: "it's_seq" });
    expect(sql).toMatch(/setval\('"public"\."it''s_seq"'::regclass, \$1::bigint, true\)/);
    expect(sql).toMatch(/increment_by > 0 AND s\.last_value < \$1::bigint/);
    expect(sql).toMatch(/increment_by < 0 AND s\.last_value > \$1::bigint/);
  });
});

describe('marks', () => {
  const mark: TableMark = { table: 'public.items', key: 'id', maxKey: '42', rows: 40 };
  it('reads the highest key through the index and counts', () => {
    expect(markSql(items, 'id')).toBe('SELECT (SELECT k."id"::text FROM "public"."items" AS k ORDER BY k."id" DESC LIMIT 1) AS max_key, (SELECT count(*) FROM "public"."items") AS rows');
    expect(markSql(items, undefined)).toMatch(/^SELECT NULL::text AS max_key/);
  });
  it('splits rows at the mark', () => {
    expect(markFilter(mark, 'before')).toEqual({ where: '"id" <= $1', params: ['42'] });
    expect(markFilter(mark, 'after', 2, 't.')).toEqual({ where: 't."id" > $2', params: ['42'] });
    expect(markFilter({ ...mark, maxKey: null }, 'before')).toEqual({ where: 'false', params: [] });
    expect(markFilter({ ...mark, maxKey: null }, 'after')).toEqual({ where: 'true', params: [] });
    expect(markFilter({ ...mark, key: '', maxKey: null }, 'before')).toEqual({ where: 'true', params: [] });
    expect(markFilter({ ...mark, key: '', maxKey: null }, 'after')).toEqual({ where: 'false', params: [] });
  });
  it('checksums and counts a range', () => {
    expect(rangeChecksumSql(items, '"id" <= $1')).toMatch(/FROM \(SELECT md5\(t::text\) AS h FROM "public"\."items" AS t WHERE "id" <= \$1 OFFSET 0\) AS s/);
    expect(hourlyCountsSql({ schema: 'public', name: 'readings' }, 'sensor', 'at', 'true')).toMatch(/date_trunc\('hour', t\."at"\)::text.*\n.*FROM "public"\."readings" AS t WHERE true\nGROUP BY 1, 2/);
  });
  it('copies the rows after the mark with the literal inlined', () => {
    expect(copyRowsAfterSql(items, { ...mark, maxKey: "4'2" })).toBe(`COPY (SELECT * FROM "public"."items" WHERE "id" > '4''2' ORDER BY "id") TO STDOUT (FORMAT csv, HEADER)`);
    expect(copyRowsAfterSql(items, { ...mark, key: '', maxKey: null })).toBe('COPY (SELECT * FROM "public"."items" WHERE false) TO STDOUT (FORMAT csv, HEADER)');
    expect(copyRowsAfterSql(items, { ...mark, maxKey: null })).toMatch(/WHERE true ORDER BY "id"/);
  });
});

describe('reconciliation', () => {
  it('compares counts and checksums', () => {
    expect(tableReconciliation('t', { rows: 2, checksum: 'a' }, { rows: 2, checksum: 'a' }).equal).toBe(true);
    expect(tableReconciliation('t', { rows: 2, checksum: 'a' }, { rows: 2, checksum: 'b' })).toEqual({ table: 't', rows: [2, 2], checksums: ['a', 'b'], equal: false });
  });
  it('lists the hours whose counts differ, missing on one side as 0', () => {
    const a = [{ key: 's1', hour: 'h1', rows: 3 }, { key: 's1', hour: 'h2', rows: 1 }, { key: 's2', hour: 'h1', rows: 5 }];
    const b = [{ key: 's1', hour: 'h1', rows: 3 }, { key: 's2', hour: 'h1', rows: 4 }, { key: 's0', hour: 'h9', rows: 1 }];
    expect(hourlyDifferences('r', a, b)).toEqual([
      { table: 'r', key: 's0', hour: 'h9', counts: [0, 1] },
      { table: 'r', key: 's1', hour: 'h2', counts: [1, 0] },
      { table: 'r', key: 's2', hour: 'h1', counts: [5, 4] },
    ]);
  });
});

describe('exports', () => {
  it('checks prefixes and scopes storage under them', () => {
    expect(exportPrefixProblem('rollback/2026-11-26')).toBeUndefined();
    expect(exportPrefixProblem('')).toMatch(/non-empty/);
    expect(exportPrefixProblem('a//b')).toMatch(/non-empty/);
    expect(exportPrefixProblem('a/../b')).toMatch(/\.\./);
    expect(storageUnder({ type: 'directory', path: '/srv/b/' }, 'x/y')).toEqual({ type: 'directory', path: '/srv/b/x/y' });
    expect(storageUnder({ type: 's3', bucket: 'bk', prefix: 'p/', region: 'eu-1' }, 'x')).toMatchObject({ prefix: 'p/x/' });
  });
  it('names files without "/" or ".."', () => {
    expect(exportFileName(items)).toBe('public.items.csv');
    expect(exportFileName({ schema: 'A b', name: '../x/é' })).toBe('A%20b.%2E%2E%2Fx%2F%C3%A9.csv');
  });
  it('counts CSV records, newlines inside quotes being data', async () => {
    const counter = new CsvRecordCounter();
    const text = 'id,name\n1,"a\nb"\n2,"say ""hi"""\n3,last';
    await new Promise<void>((resolve, reject) => {
      Readable.from([Buffer.from(text.slice(0, 12)), Buffer.from(text.slice(12))]).pipe(counter).on('data', () => undefined).on('end', resolve).on('error', reject);
    });
    expect(counter.records).toBe(4);
  });
});
