// The backup side of the inventory and plan, the SQL/argv of restores, schedules and alerts: pure.
import { stringify } from 'yaml';
import { cronProblem } from '../../client/schedule-format';
import { archiveFileName, archiveManifestName, archiveTime, isArchiveOfNight, volumeClearArgv, volumeExtractArgv, volumeTarArgv } from '../../common/commands/backup';
import { configEntryTarget } from '../../activities/archive-restore';
import { tarFiles, untarFiles } from '../../common/commands/tar';
import { redactedUrl, webhookBody } from '../../common/commands/notify';
import {
  databaseExistsQuery,
  exportSnapshotSql,
  pgDumpArgv,
  psqlApplyArgv,
  quoteLiteral,
  renameDatabaseSql,
  terminateSessionsSql,
} from '../../common/commands/sql';
import { InventoryError, parseInventory } from '../../common/inventory';
import { buildBackupPlan, PlanError } from '../../common/plan';

const FINGERPRINT = 'SHA256:' + 'A'.repeat(43);

function inventory(backup: unknown): any {
  return {
    hosts: {
      local: { docker: { socketPath: '/run/docker.sock' } },
      vault: { ssh: { address: '10.0.0.9', user: 'backup', keyFile: '/keys/id', hostKey: FINGERPRINT } },
    },
    apps: {
      shop: {
        image: 'reg:5000/shop',
        port: 8080,
        dependencies: [{ name: 'postgres', image: 'reg:5000/postgres:15' }],
        proxyImage: 'reg:5000/nginx:1',
        ...(backup !== undefined ? { backup } : {}),
        environments: { production: { hosts: ['local'], replicas: 2, proxy: { hostPort: 8080 }, approvers: ['alice'] } },
      },
    },
  };
}

const valid = {
  storage: { type: 'directory', path: '/srv/backups', host: 'vault' },
  databases: [
    { name: 'main', dependency: 'postgres', database: 'shop', user: 'shop', passwordFile: '/etc/shop/pg' },
    { name: 'reports', server: { address: 'db.internal', port: 5433 }, database: 'reports', user: 'ro', passwordFile: '/etc/shop/ro' },
  ],
};

function problemsOf(backup: unknown): string[] {
  try {
    parseInventory(stringify(inventory(backup)));
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return (err as InventoryError).problems;
  }
  throw new Error('expected the inventory to be rejected');
}

describe('inventory: backup section', () => {
  it('resolves into a plan: container and server databases, SSH storage, the default GFS policy', () => {
    const plan = buildBackupPlan(parseInventory(stringify(inventory(valid))), { app: 'shop', env: 'production' });
    expect(plan.targets).toEqual([
      { name: 'main', database: 'shop', user: 'shop', passwordFile: '/etc/shop/pg', location: { kind: 'container', host: expect.objectContaining({ name: 'local' }), container: 'shop-production-postgres', port: 5432 } },
      { name: 'reports', database: 'reports', user: 'ro', passwordFile: '/etc/shop/ro', location: { kind: 'server', address: 'db.internal', port: 5433 } },
    ]);
    expect(plan.storage).toEqual({ type: 'directory', path: '/srv/backups', host: expect.objectContaining({ name: 'vault', ssh: expect.objectContaining({ address: '10.0.0.9' }) }) });
    expect(plan.retention).toEqual({ daily: 7, weekly: 4, monthly: 3 });
    expect(plan.checksums).toBe(false); // counts by default; content checksums cost a second read of every table
    expect(plan.web).toEqual([{ host: expect.objectContaining({ name: 'local' }), containers: ['shop-production-web-1', 'shop-production-web-2'] }]);
    expect(plan.approval).toEqual({ approvers: ['alice'], minApprovals: 1 });
    expect(JSON.stringify(plan)).not.toMatch(/password"/i); // paths only
  });

  it('S3 storage with credentials by file, keep-days retention', () => {
    const plan = buildBackupPlan(
      parseInventory(stringify(inventory({ ...valid, storage: { type: 's3', bucket: 'shop-backups', prefix: 'nightly/', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, accessKeyIdFile: '/etc/k', secretAccessKeyFile: '/etc/s' }, retention: { keepDays: 30 } }))),
      { app: 'shop', env: 'production' },
    );
    expect(plan.storage).toEqual({ type: 's3', bucket: 'shop-backups', prefix: 'nightly/', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, accessKeyIdFile: '/etc/k', secretAccessKeyFile: '/etc/s' });
    expect(plan.retention).toEqual({ keepDays: 30 });
  });

  it('an app without a backup section has no backup plan', () => {
    expect(() => buildBackupPlan(parseInventory(stringify(inventory(undefined))), { app: 'shop', env: 'production' })).toThrow(PlanError);
  });

  it.each([
    ['both a container and a server', { ...valid, databases: [{ ...valid.databases[0], server: { address: 'x' } }] }, /databases\.0: needs exactly one of "dependency" \(a container\) or "server"/],
    ['neither', { ...valid, databases: [{ name: 'main', database: 'shop', user: 'shop' }] }, /databases\.0: needs exactly one of/],
    ['an unknown dependency', { ...valid, databases: [{ ...valid.databases[0], dependency: 'redis' }] }, /databases\.0\.dependency: unknown dependency "redis" \(known: postgres\)/],
    ['a name used twice', { ...valid, databases: [valid.databases[0], valid.databases[0]] }, /databases\.1\.name: "main" is used twice/],
    ['an unknown storage host', { ...valid, storage: { type: 'directory', path: '/srv', host: 'nas' } }, /backup\.storage\.host: unknown host "nas"/],
    ['a relative storage path', { ...valid, storage: { type: 'directory', path: 'backups' } }, /backup\.storage\.path: must be an absolute path/],
    ['a bad bucket name', { ...valid, storage: { type: 's3', bucket: 'Shop_Backups' } }, /backup\.storage\.bucket: must be an S3 bucket name/],
    ['an unknown storage type', { ...valid, storage: { type: 'ftp', path: '/x' } }, /backup\.storage\.type/],
    ['a policy that keeps nothing', { ...valid, retention: { daily: 0 } }, /backup\.retention: must keep something/],
    ['an unknown retention rule', { ...valid, retention: { hourly: 24 } }, /backup\.retention: unknown field\(s\) "hourly"/],
    ['no databases', { ...valid, databases: [] }, /backup: must list at least one database \(databases: PostgreSQL, sqlite: SQLite files\)/],
    ['an archive of an undeclared volume', { ...valid, archives: { volumes: ['cache'] } }, /backup\.archives\.volumes\.0: unknown volume "cache" \(the app and its dependencies declare: none\)/],
    ['a SQLite file on no volume', { ...valid, sqlite: [{ name: 'files', path: '/srv/app.db' }] }, /backup\.sqlite\.0\.path: \/srv\/app\.db is on none of the service's volumes \(it has none\): the database would not outlive its container/],
    ['a SQLite file of an unknown service', { ...valid, sqlite: [{ name: 'files', service: 'cms', path: '/data/app.db' }] }, /backup\.sqlite\.0\.service: unknown service "cms" \(known: web\)/],
    ['a SQLite name used by a database', { ...valid, sqlite: [{ name: 'main', path: '/data/app.db' }] }, /backup\.databases\.0\.name: "main" is used twice|backup\.sqlite\.0\.name/],
    ['a relative webhook URL file', { ...valid, notify: { webhookUrlFile: 'url.txt' } }, /backup\.notify\.webhookUrlFile: must be an absolute path/],
  ])('rejects %s, naming the path', (_what, backup, pattern) => {
    const problems = problemsOf(backup);
    expect(problems.join('\n')).toMatch(pattern);
    for (const p of problems) expect(p).toMatch(/^apps\.shop\.backup/);
  });
});

describe('archive names', () => {
  it('share the night of the dumps and are recognised by night only', () => {
    const vol = archiveFileName({ app: 'shop', env: 'production' }, 'volume', '2027-01-02T02:00:00.123Z', 'pgdata');
    const cfg = archiveFileName({ app: 'shop', env: 'production' }, 'config', '2027-01-02T02:00:00Z');
    expect([vol, cfg]).toEqual(['shop-production-volume-pgdata-20270102T020000Z.tar.zst', 'shop-production-config-20270102T020000Z.tar']);
    expect(archiveManifestName(vol)).toBe('shop-production-volume-pgdata-20270102T020000Z.manifest.json');
    expect(archiveManifestName(cfg)).toBe('shop-production-config-20270102T020000Z.manifest.json');
    const night = '20270102T020000Z';
    for (const n of [vol, cfg, archiveManifestName(vol), archiveManifestName(cfg)]) expect(isArchiveOfNight(n, { app: 'shop', env: 'production' }, night)).toBe(true);
    for (const n of ['shop-production-main-20270102T020000Z.sql.zst', 'shop-production-main-20270102T020000Z.manifest.json', 'shop-staging-config-20270102T020000Z.tar', 'shop-production-config-20270103T020000Z.tar']) {
      expect(isArchiveOfNight(n, { app: 'shop', env: 'production' }, night)).toBe(false);
    }
    expect(() => archiveFileName({ app: 'shop', env: 'production' }, 'volume', '2027-01-02T02:00:00Z', '../x')).toThrow(/cannot be part of a backup file name/);
    expect(volumeTarArgv()).toEqual(['tar', '--create', '--file=-', '--directory=/data', '--numeric-owner', '.']);
  });

  it('a restore finds the archives of one volume (not of a volume whose name starts the same) or the config archives, by time', () => {
    const parts = { app: 'shop', env: 'production' };
    expect(archiveTime('shop-production-volume-media-20270102T020000Z.tar.zst', parts, 'media')).toBe('20270102T020000Z');
    expect(archiveTime('shop-production-volume-media-old-20270102T020000Z.tar.zst', parts, 'media')).toBeUndefined();
    expect(archiveTime('shop-production-volume-media-20270102T020000Z.manifest.json', parts, 'media')).toBeUndefined();
    expect(archiveTime('shop-staging-volume-media-20270102T020000Z.tar.zst', parts, 'media')).toBeUndefined();
    expect(archiveTime('shop-production-config-20270102T020000Z.tar', parts)).toBe('20270102T020000Z');
    expect(archiveTime('shop-production-config-20270102T020000Z.tar', parts, 'config')).toBeUndefined();
    expect(archiveTime('shop-production-volume-media-20270102T020000Z.tar.zst', parts)).toBeUndefined();
  });

  it('a volume restore empties /data (hidden files too) and extracts with the archived numeric owners and modes', () => {
    expect(volumeClearArgv()).toEqual(['find', '/data', '-mindepth', '1', '-delete']);
    expect(volumeExtractArgv()).toEqual(['tar', '--extract', '--file=-', '--directory=/data', '--numeric-owner', '--same-owner', '--same-permissions']);
  });

  it("a config restore writes back only the files the inventory names, never a proxy's config or a path with ..", async () => {
    const named = ['/etc/shop/app.env', '/proxy/odd/but/named.env'];
    expect(configEntryTarget('etc/shop/app.env', named)).toEqual({ path: '/etc/shop/app.env' });
    expect(configEntryTarget('proxy/odd/but/named.env', named)).toEqual({ path: '/proxy/odd/but/named.env' });
    expect(configEntryTarget('proxy/one/etc/nginx/conf.d/default.conf', named)).toEqual({ skip: expect.stringContaining("a proxy's config") });
    // an archive's names come from storage: only the files the inventory names now are written
    expect(configEntryTarget('root/.ssh/authorized_keys', named)).toEqual({ skip: 'not one of the config files the inventory names now' });
    expect(configEntryTarget('etc/../root/.ssh/authorized_keys', [...named, '/etc/../root/.ssh/authorized_keys'])).toEqual({ skip: 'not one of the config files the inventory names now' });
    const files = await untarFiles(await tarFiles([{ name: 'etc/app.env', body: 'K=v\n', mode: 0o600 }, { name: 'etc/secret', body: Buffer.from([0, 1, 2]), mode: 0o640 }]));
    expect(files).toEqual([{ name: 'etc/app.env', mode: 0o600, body: Buffer.from('K=v\n') }, { name: 'etc/secret', mode: 0o640, body: Buffer.from([0, 1, 2]) }]);
  });
});

describe('restore and snapshot SQL', () => {
  const conn = { host: '127.0.0.1', port: 5432, user: 'app', database: 'shop' };
  it('pg_dump shares an exported snapshot; a bad snapshot id is refused', () => {
    expect(pgDumpArgv(conn, { snapshot: '00000003-0000001B-1' })).toContain('--snapshot=00000003-0000001B-1');
    expect(() => pgDumpArgv(conn, { snapshot: "x'; DROP" })).toThrow(/not a snapshot id/);
    expect(exportSnapshotSql()).toMatch(/^BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;[\s\S]*SET TimeZone = 'UTC';[\s\S]*SELECT pg_catalog\.pg_export_snapshot\(\);$/);
  });

  it('the restore psql leaves the transaction to the caller (no --single-transaction, which commits at EOF)', () => {
    const argv = psqlApplyArgv(conn);
    expect(argv).toContain('--set=ON_ERROR_STOP=1');
    expect(argv).toContain('--file=-');
    expect(argv).not.toContain('--single-transaction');
  });

  it('quotes names and literals for the swap', () => {
    expect(quoteLiteral("o'brien")).toBe("'o''brien'");
    expect(() => quoteLiteral('a\0b')).toThrow();
    expect(quoteLiteral('a\\b')).toBe("E'a\\\\b'"); // a backslash: an E'' literal, the backslash doubled
    expect(renameDatabaseSql('shop', 'scratch_previous_main')).toBe('ALTER DATABASE "shop" RENAME TO "scratch_previous_main";');
    expect(renameDatabaseSql('My DB', 'x')).toBe('ALTER DATABASE "My DB" RENAME TO "x";');
    expect(terminateSessionsSql("it's")).toContain("WHERE datname = 'it''s' AND pid <> pg_catalog.pg_backend_pid()");
    expect(databaseExistsQuery('shop')).toBe("SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'shop';");
  });
});

describe('schedules and alerts', () => {
  it('checks cron expressions before the server sees them', () => {
    expect(cronProblem('0 2 * * *')).toBeUndefined();
    expect(cronProblem('30 1 * * 1-5')).toBeUndefined();
    expect(cronProblem('@daily')).toBeUndefined();
    expect(cronProblem('0 2 * *')).toMatch(/must have 5 fields/);
    expect(cronProblem('0 2 * * * *')).toMatch(/must have 5 fields/);
    expect(cronProblem('0 2 * * $(rm)')).toMatch(/characters/);
  });

  it('webhook bodies carry a text line and the fields; URLs are shown without their secret path', () => {
    const body = JSON.parse(webhookBody({ severity: 'failure', runbook: 'nightlyBackup', app: 'shop', env: 'production', title: 'backup failed', details: 'x', workflowId: 'w', runId: 'r', at: '2027-01-01T02:00:00Z' }));
    expect(body.text).toBe(':red_circle: nightlyBackup shop/production: backup failed\nx\n(workflow w, run r)');
    expect(body.severity).toBe('failure');
    expect(redactedUrl('https://hooks.slack.com/services/T0/B0/secret')).toBe('https://hooks.slack.com/…');
    expect(redactedUrl('not a url')).toBe('(not a URL)');
  });
});
