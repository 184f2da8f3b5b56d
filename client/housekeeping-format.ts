// What `runbook housekeeping` prints: per host, the images removed and kept (with why), and disk use.
import type { DiskArea, DiskReport } from '../common/housekeeping';
import type { HousekeepingResult } from '../workflows/housekeeping';

/** Bytes as a human reads them (1000-based, like `docker system df`). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[u]}`;
}

const area = (name: string, a: DiskArea, after?: DiskArea) =>
  `    ${name.padEnd(11)} ${formatBytes(a.size)}${after ? ` → ${formatBytes(after.size)}` : ''} (${after?.count ?? a.count}; reclaimable ${formatBytes((after ?? a).reclaimable)})`;

function disk(before: DiskReport, after?: DiskReport): string[] {
  return [
    area('images', before.images, after?.images),
    area('containers', before.containers, after?.containers),
    area('volumes', before.volumes, after?.volumes),
    area('build cache', before.buildCache, after?.buildCache),
  ];
}

export function formatHousekeeping(r: HousekeepingResult): string {
  const lines = [`housekeeping of ${r.app}/${r.env} (${r.repository})${r.dryRun ? ' — dry run, nothing removed' : ''}`];
  for (const h of r.hosts) {
    lines.push(`${h.host}:`);
    const verb = r.dryRun ? 'would remove' : 'removed';
    if (!h.removed.length) lines.push(`  ${verb}: nothing`);
    for (const i of h.removed) lines.push(`  ${verb} ${i.tags.join(', ')} (${formatBytes(i.size)}${!r.dryRun && !i.deleted ? ', untagged only: the image has other tags' : ''})`);
    for (const k of h.kept) {
      const why = [...k.reasons, ...(k.containers.length ? [`used by ${k.containers.join(', ')}`] : []), ...(k.refused ? [`the engine refused: ${k.refused}`] : [])];
      lines.push(`  kept ${k.tags.join(', ')}: ${why.join('; ')}`);
    }
    lines.push(`  disk${h.diskAfter ? ' (before → after)' : ''}:`, ...disk(h.diskBefore, h.diskAfter));
  }
  return lines.join('\n');
}
