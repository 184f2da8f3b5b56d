// The sqlite3 commands and volume scripts of SQLite backups and restores (common/commands/sqlite.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  parseCounts,
  parseTableNames,
  sqliteApplyArgv,
  sqliteCountsSql,
  sqliteDumpArgv,
  sqliteQueryArgv,
  sqliteRemoveArgv,
  sqliteRestoreFiles,
  sqliteSnapshotArgv,
  sqliteSwapBackArgv,
  sqliteSwapInArgv,
  SQLITE_SWAP_EXIT,
} from '../../common/commands/sqlite';

describe('sqlite3 argv', () => {
  it('runs the online backup, the dump, a query and a restore, paths checked', () => {
    expect(sqliteSnapshotArgv('/data/app.db', '/tmp/copy.db')).toEqual(['sqlite3', '-bail', '-cmd', '.timeout 10000', '/data/app.db', ".backup '/tmp/copy.db'"]);
    expect(sqliteDumpArgv('/tmp/copy.db')).toEqual(['sqlite3', '-bail', '/tmp/copy.db', '.dump']);
    expect(sqliteApplyArgv('/data/.x')).toEqual(['sqlite3', '-bail', '-batch', '/data/.x']);
    expect(sqliteQueryArgv('/data/app.db', 'SELECT 1;')).toEqual(['sqlite3', '-bail', '-batch', '-noheader', '-list', '-cmd', '.timeout 10000', '/data/app.db', 'SELECT 1;']);
    expect(sqliteRemoveArgv('/tmp/a.db')).toEqual(['rm', '-f', '--', '/tmp/a.db', '/tmp/a.db-wal', '/tmp/a.db-shm', '/tmp/a.db-journal']);
    for (const bad of ["/data/it's.db", 'data/app.db', '/data/../etc/passwd', '/data/a b.db']) expect(() => sqliteSnapshotArgv(bad, '/tmp/c.db')).toThrow(/not a database path/);
  });

  it('counts every table in one row, names quoted', () => {
    expect(sqliteCountsSql(['items', 'we"ird'])).toBe('SELECT (SELECT count(*) FROM "items"), (SELECT count(*) FROM "we""ird");');
    expect(parseTableNames('items\nuploads\n')).toEqual(['items', 'uploads']);
    expect(parseCounts('3|0\n', ['items', 'uploads'])).toEqual([
      { table: 'items', rows: 3 },
      { table: 'uploads', rows: 0 },
    ]);
    expect(() => parseCounts('3\n', ['items', 'uploads'])).toThrow(/not 2 row counts/);
  });

  it('puts the restore files beside the live database', () => {
    expect(sqliteRestoreFiles('/data/app.db', { incoming: 'scratch_restore_main_1', previous: 'scratch_previous_main_1' })).toEqual({
      live: '/data/app.db',
      incoming: '/data/scratch_restore_main_1',
      previous: '/data/scratch_previous_main_1',
    });
  });
});

describe('the swap scripts (run here with sh, as the helper container runs them)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sqlite-swap-'));
  const files = { live: `${dir}/app.db`, incoming: `${dir}/restored`, previous: `${dir}/previous` };
  const sh = (argv: string[]): number => {
    try {
      execFileSync(argv[0], argv.slice(1), { stdio: 'pipe' });
      return 0;
    } catch (err) {
      return (err as { status: number }).status;
    }
  };
  const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : undefined);

  it('swaps in with the -wal beside it, idempotently, and back', () => {
    writeFileSync(files.live, 'live');
    writeFileSync(`${files.live}-wal`, 'live-wal');
    writeFileSync(files.incoming, 'restored');
    expect(sh(sqliteSwapInArgv(files))).toBe(0);
    expect([read(files.live), read(`${files.live}-wal`), read(files.previous), read(`${files.previous}-wal`), read(files.incoming)]).toEqual(['restored', undefined, 'live', 'live-wal', undefined]);
    expect(sh(sqliteSwapInArgv(files))).toBe(0); // a retry: nothing moves
    expect([read(files.live), read(files.previous)]).toEqual(['restored', 'live']);
    expect(sh(sqliteSwapBackArgv(files))).toBe(0);
    expect([read(files.live), read(`${files.live}-wal`), read(files.incoming), read(files.previous)]).toEqual(['live', 'live-wal', 'restored', undefined]);
    expect(sh(sqliteSwapBackArgv(files))).toBe(SQLITE_SWAP_EXIT.nothingToPutBack);
  });

  it('refuses to swap when the restored file is missing and nothing was moved', () => {
    writeFileSync(files.live, 'live');
    expect(sh(sqliteSwapInArgv({ ...files, incoming: `${dir}/none` }))).toBe(SQLITE_SWAP_EXIT.noIncoming);
    expect(read(files.live)).toBe('live');
  });
});
