// SQLite backups (seed 003: an app keeping its database in a file on a named volume): the sqlite3
// commands run in the app's own container, and the scripts that swap files in the volume during a
// restore. The copy is SQLite's online backup (`.backup`: a consistent snapshot while the app
// writes, never a file copy), stored as the SQL `.dump` of that snapshot: the same `.sql.zst`,
// manifest, drill and retention as PostgreSQL's dumps.

/** Paths these commands take: absolute, no spaces or quotes (they go into sqlite3 dot commands). */
const SAFE_PATH = /^\/[A-Za-z0-9._/-]+$/;

function checkPath(path: string): string {
  if (!SAFE_PATH.test(path) || path.split('/').includes('..')) throw new Error(`not a database path these commands take: ${JSON.stringify(path)} (absolute; letters, digits, ".", "_", "-", "/")`);
  return path;
}

/**
 * Waits up to 10 s for the app's write lock instead of failing at once with "database is locked"
 * (sqlite3's default busy timeout is 0; the online backup's steps call the same busy handler).
 */
const BUSY_TIMEOUT = ['-cmd', '.timeout 10000'];

/** One query, its rows one per line, fields separated by "|". */
export const sqliteQueryArgv = (db: string, sql: string): string[] => ['sqlite3', '-bail', '-batch', '-noheader', '-list', ...BUSY_TIMEOUT, checkPath(db), sql];

/** The online backup of `db` into `copy` (consistent while the app writes: the backup API restarts on a concurrent change, or copies under its lock). */
export const sqliteSnapshotArgv = (db: string, copy: string): string[] => ['sqlite3', '-bail', ...BUSY_TIMEOUT, checkPath(db), `.backup '${checkPath(copy)}'`];

/** The snapshot as SQL (BEGIN; CREATE ...; INSERT ...; COMMIT). */
export const sqliteDumpArgv = (copy: string): string[] => ['sqlite3', '-bail', checkPath(copy), '.dump'];

/** Reads a dump on stdin into `db` (a new file); the first error stops it, its transaction is not committed. */
export const sqliteApplyArgv = (db: string): string[] => ['sqlite3', '-bail', '-batch', checkPath(db)];

export const sqliteRemoveArgv = (...paths: string[]): string[] => ['rm', '-f', '--', ...paths.flatMap((p) => [checkPath(p), `${p}-wal`, `${p}-shm`, `${p}-journal`])];

export const SQLITE_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name;";
export const SQLITE_VERSION_SQL = 'SELECT sqlite_version();';
export const SQLITE_INTEGRITY_SQL = 'PRAGMA integrity_check;';

const quoteIdentifier = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** Every table's row count in one row ("3|5"), in the order of `tables`. */
export function sqliteCountsSql(tables: string[]): string {
  if (tables.length === 0) throw new Error('no tables to count');
  return `SELECT ${tables.map((t) => `(SELECT count(*) FROM ${quoteIdentifier(t)})`).join(', ')};`;
}

/** The table names sqlite3 printed, one per line; a name with a line break cannot be told apart. */
export function parseTableNames(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l !== '');
}

export function parseCounts(stdout: string, tables: string[]): { table: string; rows: number }[] {
  const fields = stdout.trim().split('|');
  if (fields.length !== tables.length || fields.some((f) => !/^\d+$/.test(f))) throw new Error(`sqlite3 printed ${JSON.stringify(stdout.trim().slice(0, 200))}, not ${tables.length} row counts`);
  return tables.map((table, i) => ({ table, rows: Number(fields[i]) }));
}

/** The files of a restore beside the live database, in its directory (the volume). */
export function sqliteRestoreFiles(live: string, names: { incoming: string; previous: string }): { live: string; incoming: string; previous: string } {
  checkPath(live);
  const dir = live.slice(0, live.lastIndexOf('/')) || '';
  return { live, incoming: checkPath(`${dir}/${names.incoming}`), previous: checkPath(`${dir}/${names.previous}`) };
}

/** Exit codes of the swap scripts besides 0. */
export const SQLITE_SWAP_EXIT = { noIncoming: 20, nothingToPutBack: 21 } as const;

// A database is its file with the -wal and -shm beside it: they move together.
const MOVE = 'move() { for s in "" -wal -shm; do if [ -e "$1$s" ]; then mv -f "$1$s" "$2$s"; else rm -f "$2$s"; fi; done; }';

/**
 * With the app stopped: live → previous, incoming → live. Idempotent: a retry after a crash finds
 * where it stopped (previous there: the live one is already aside). A missing live database leaves
 * an empty previous file, so the retry knows.
 */
export function sqliteSwapInArgv(files: { live: string; incoming: string; previous: string }): string[] {
  return [
    'sh',
    '-c',
    [
      MOVE,
      'live=$1; incoming=$2; previous=$3',
      'if [ ! -e "$previous" ]; then',
      `  [ -e "$incoming" ] || { echo "the restored database $incoming does not exist: run the restore again"; exit ${SQLITE_SWAP_EXIT.noIncoming}; }`,
      '  if [ -e "$live" ]; then move "$live" "$previous"; else : > "$previous"; fi',
      'fi',
      'if [ -e "$incoming" ]; then move "$incoming" "$live"; fi',
      'sync',
    ].join('\n'),
    'sqlite-swap-in',
    files.live,
    files.incoming,
    files.previous,
  ];
}

/** Undoes the swap: the restored database goes aside as incoming (kept for inspection), previous is live again. */
export function sqliteSwapBackArgv(files: { live: string; incoming: string; previous: string }): string[] {
  return [
    'sh',
    '-c',
    [
      MOVE,
      'live=$1; incoming=$2; previous=$3',
      `[ -e "$previous" ] || exit ${SQLITE_SWAP_EXIT.nothingToPutBack}`,
      'if [ -e "$live" ]; then move "$live" "$incoming"; fi',
      'move "$previous" "$live"',
      'sync',
    ].join('\n'),
    'sqlite-swap-back',
    files.live,
    files.incoming,
    files.previous,
  ];
}
