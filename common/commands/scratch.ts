// Scratch database names (restore drills, restores): pure string code with no imports, so a
// workflow can use it (the workflow bundle must not pull in `pg`, which sql.ts uses).

/** NAMEDATALEN - 1: longer names are silently truncated by the server. */
export const MAX_IDENT_BYTES = 63;

export const SCRATCH_PREFIX = 'scratch_';

/** A scratch database name for a restore drill, e.g. scratch_shop_production_20250101t020000. */
export function scratchDatabaseName(...parts: string[]): string {
  const tail = parts
    .map((p) => p.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, ''))
    .filter(Boolean)
    .join('_');
  if (!tail) throw new Error('a scratch database name needs at least one non-empty part');
  return (SCRATCH_PREFIX + tail).slice(0, MAX_IDENT_BYTES).replace(/_+$/, '');
}

/** Names of the databases a restore uses beside the live one (the restored copy, the kept previous one). */
export function restoreDatabaseNames(target: { name: string }, runTag: string): { incoming: string; previous: string } {
  return { incoming: scratchDatabaseName('restore', target.name, runTag), previous: scratchDatabaseName('previous', target.name, runTag) };
}
