import {
  checksumSessionSql,
  compareTableStats,
  createDatabaseSql,
  dbnameArg,
  displayTableName,
  dropDatabaseSql,
  envList,
  listUserTablesSql,
  pgClientEnv,
  pgDumpArgv,
  psqlRestoreArgv,
  qualifiedName,
  quoteIdent,
  rowCountSql,
  scratchDatabaseName,
  scratchNameProblem,
  serverVersionSql,
  tableChecksumSql,
} from '../../common/commands/sql';
import { describeConnection, postgresFailure } from '../../activities/postgres';
import { ApplicationFailure } from '@temporalio/common';

const conn = { host: 'db.internal', port: 5432, user: 'backup', database: 'shop' };

describe('identifiers', () => {
  it('quotes identifiers, doubling embedded quotes', () => {
    expect(quoteIdent('users')).toBe('"users"');
    expect(quoteIdent('Invoice Lines')).toBe('"Invoice Lines"');
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(quoteIdent('x"; DROP TABLE users; --')).toBe('"x""; DROP TABLE users; --"');
    expect(quoteIdent('überweisung')).toBe('"überweisung"');
  });
  it('refuses what PostgreSQL cannot name', () => {
    expect(() => quoteIdent('')).toThrow('empty SQL identifier');
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/);
    expect(() => quoteIdent('x'.repeat(64))).toThrow(/longer than 63 bytes/);
    expect(quoteIdent('x'.repeat(63))).toBe(`"${'x'.repeat(63)}"`);
    expect(() => quoteIdent('é'.repeat(32))).toThrow(/longer than 63 bytes/); // 64 bytes in UTF-8
  });
  it('qualifies and displays table names', () => {
    expect(qualifiedName({ schema: 'public', name: 'users' })).toBe('"public"."users"');
    expect(qualifiedName({ schema: 'Billing', name: 'Invoice "Lines"' })).toBe('"Billing"."Invoice ""Lines"""');
    expect(displayTableName({ schema: 'public', name: 'users' })).toBe('public.users');
    expect(displayTableName({ schema: 'Billing', name: 'Invoice Lines' })).toBe('"Billing"."Invoice Lines"');
    expect(displayTableName({ schema: 'a.b', name: 'c' })).not.toBe(displayTableName({ schema: 'a', name: 'b.c' }));
  });
});

describe('statements', () => {
  it('lists user tables from the catalog, excluding system schemas and non-data relations', () => {
    const sql = listUserTablesSql();
    expect(sql).toMatch(/FROM pg_catalog\.pg_class c JOIN pg_catalog\.pg_namespace n/);
    expect(sql).toMatch(/c\.relkind = 'r'/);
    expect(sql).toMatch(/n\.nspname <> 'information_schema' AND n\.nspname !~ '\^pg_'/);
    expect(sql).toMatch(/ORDER BY/);
  });
  it('counts and checksums one table through its quoted name', () => {
    const t = { schema: 'Billing', name: 'Invoice Lines' };
    expect(rowCountSql(t)).toBe('SELECT count(*) AS rows FROM "Billing"."Invoice Lines"');
    const sql = tableChecksumSql(t);
    expect(sql).toContain('FROM "Billing"."Invoice Lines" AS t');
    expect(sql).toContain('SELECT md5(t::text) AS h FROM "Billing"."Invoice Lines" AS t OFFSET 0'); // one hash per row
    expect(sql).toContain("sum(('x' || substr(h, 1, 16))::bit(64)::bigint)");
    expect(sql).toContain("sum(('x' || substr(h, 17, 16))::bit(64)::bigint)");
    expect(sql).not.toMatch(/ORDER BY|string_agg/); // no sort, no 1 GB string
  });
  it('fixes the settings that change the text form of rows', () => {
    expect(checksumSessionSql()).toEqual([
      "SET DateStyle = 'ISO, MDY'",
      "SET IntervalStyle = 'postgres'",
      "SET TimeZone = 'UTC'",
      'SET extra_float_digits = 1',
      "SET bytea_output = 'hex'",
    ]);
  });
  it('reads the server version', () => {
    expect(serverVersionSql()).toContain("current_setting('server_version')");
  });
  it('creates and drops databases by quoted name', () => {
    expect(createDatabaseSql('scratch_x')).toBe(`CREATE DATABASE "scratch_x" TEMPLATE template0 ENCODING 'UTF8'`);
    expect(dropDatabaseSql('scratch_x')).toBe('DROP DATABASE IF EXISTS "scratch_x" WITH (FORCE)');
    expect(dropDatabaseSql('a"; DROP DATABASE prod; --')).toBe('DROP DATABASE IF EXISTS "a""; DROP DATABASE prod; --" WITH (FORCE)');
  });
});

describe('scratch databases', () => {
  it('builds scratch names', () => {
    expect(scratchDatabaseName('shop', 'production', '2025-01-01T02:00:00Z')).toBe('scratch_shop_production_2025_01_01t02_00_00z');
    expect(scratchDatabaseName('x'.repeat(100))).toHaveLength(63);
    expect(() => scratchDatabaseName('--', '')).toThrow(/non-empty part/);
  });
  it('accepts only scratch names, never the connection database', () => {
    expect(scratchNameProblem('scratch_shop_1', 'shop')).toBeUndefined();
    expect(scratchNameProblem('shop', 'postgres')).toMatch(/must start with scratch_/);
    expect(scratchNameProblem('scratch_Shop', 'shop')).toMatch(/lower-case/);
    expect(scratchNameProblem('scratch_a', 'scratch_a')).toMatch(/is the database the connection uses/);
    expect(scratchNameProblem('scratch_' + 'a'.repeat(60), 'x')).toMatch(/longer than 63/);
  });
});

describe('client argv', () => {
  it('pg_dump: plain SQL to stdout, no owners or grants, never a password', () => {
    expect(pgDumpArgv(conn)).toEqual([
      'pg_dump',
      '--format=plain',
      '--no-owner',
      '--no-privileges',
      '--encoding=UTF8',
      '--host=db.internal',
      '--port=5432',
      '--username=backup',
      '--dbname=shop',
      '--no-password',
    ]);
    expect(pgDumpArgv(conn).join(' ')).not.toMatch(/password=|PGPASSWORD/i);
  });
  it('psql: all-or-nothing restore from stdin', () => {
    const argv = psqlRestoreArgv({ ...conn, database: 'scratch_shop' });
    expect(argv).toEqual([
      'psql',
      '--no-psqlrc',
      '--quiet',
      '--set=ON_ERROR_STOP=1',
      '--single-transaction',
      '--file=-',
      '--host=db.internal',
      '--port=5432',
      '--username=backup',
      '--dbname=scratch_shop',
      '--no-password',
    ]);
  });
  it('keeps values that look like options or connection strings as values', () => {
    const argv = pgDumpArgv({ host: '-h', port: 5432, user: '--help', database: 'host=evil dbname=x' });
    expect(argv).toContain('--host=-h');
    expect(argv).toContain('--username=--help');
    expect(argv).toContain("--dbname=dbname='host=evil dbname=x'");
    expect(dbnameArg("it's\\")).toBe("it's\\"); // no '=': taken literally by libpq
    expect(dbnameArg("a='b'\\")).toBe("dbname='a=\\'b\\'\\\\'");
    expect(dbnameArg('postgresql://evil/x')).toBe("dbname='postgresql://evil/x'");
  });
  it('puts the password in the environment only', () => {
    expect(pgClientEnv('pa ss=word')).toEqual({ PGPASSWORD: 'pa ss=word', PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'temporal-runbooks' });
    expect(pgClientEnv(undefined, { connectTimeoutSeconds: 3, applicationName: 'drill' })).toEqual({ PGCONNECT_TIMEOUT: '3', PGAPPNAME: 'drill' });
    expect(envList({ A: '1', B: 'x=y' })).toEqual(['A=1', 'B=x=y']);
  });
});

describe('compareTableStats', () => {
  const manifest = {
    tables: [
      { table: 'public.orders', rows: 5000, checksum: 'aaa' },
      { table: 'public.users', rows: 1200, checksum: 'bbb' },
      { table: 'public.audit', rows: 0, checksum: 'ccc' },
    ],
  };
  it('is empty when everything matches, in any order', () => {
    expect(compareTableStats(manifest, { tables: [...manifest.tables].reverse() })).toEqual([]);
  });
  it('names every difference in human terms', () => {
    const actual = {
      tables: [
        { table: 'public.orders', rows: 4999, checksum: 'zzz' },
        { table: 'public.users', rows: 1200, checksum: 'bxb' },
        { table: 'public.extra', rows: 3 },
      ],
    };
    expect(compareTableStats(manifest, actual)).toEqual([
      'table public.audit is missing (expected 0 rows)',
      'table public.extra is not expected (found with 3 rows)',
      'table public.orders has 4999 rows, expected 5000 (-1)',
      'table public.users has the expected 1200 rows but different content (checksum bxb, expected bbb)',
    ]);
  });
  it('compares counts only when a side has no checksum', () => {
    const countsOnly = { tables: manifest.tables.map(({ table, rows }) => ({ table, rows })) };
    expect(compareTableStats(countsOnly, manifest)).toEqual([]);
    expect(compareTableStats(manifest, { tables: [...countsOnly.tables.slice(0, 2), { table: 'public.audit', rows: 2 }] })).toEqual([
      'table public.audit has 2 rows, expected 0 (+2)',
    ]);
  });
});

describe('postgres errors', () => {
  const c = { ...conn, passwordFile: '/run/secrets/pg' };
  it('names the connection without a password', () => {
    expect(describeConnection(c)).toBe('postgres://backup@db.internal:5432/shop');
  });
  it('makes bad credentials and missing databases non-retryable, scrubbing the password', () => {
    const f = postgresFailure(c, 'table statistics', Object.assign(new Error('password authentication failed for user "backup" (hunter2)'), { code: '28P01' }), 'hunter2');
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect((f as ApplicationFailure).type).toBe('PostgresAuthFailed');
    expect(f.message).toBe('table statistics on postgres://backup@db.internal:5432/shop: password authentication failed for user "backup" (***) (28P01)');
    const missing = postgresFailure(c, 'x', Object.assign(new Error('database "shop" does not exist'), { code: '3D000' })) as ApplicationFailure;
    expect(missing.type).toBe('PostgresDatabaseMissing');
  });
  it('leaves connection problems retryable', () => {
    const f = postgresFailure(c, 'x', Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' }));
    expect(f).not.toBeInstanceOf(ApplicationFailure);
    expect(f.message).toBe('x on postgres://backup@db.internal:5432/shop: connect ECONNREFUSED 10.0.0.5:5432 (ECONNREFUSED)');
    expect(postgresFailure(c, 'x', Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).not.toBeInstanceOf(ApplicationFailure);
  });
});
