// Backup retention, with restic's `forget` semantics (calendar buckets, policies OR-ed):
//
//   daily: N    keep the newest backup of each of the last N days that have a backup
//   weekly: N   ... of each of the last N ISO weeks (Monday-Sunday) that have one
//   monthly: N  ... of each of the last N calendar months that have one
//   yearly: N   ... of each of the last N years that have one
//   last: N     keep the N newest backups
//   keepDays: D keep every backup taken less than D days before `now`
//
// Days, weeks and months are UTC. Only verified backups (the restore drill passed) count. Two
// safety rules come on top: the newest verified backup is always kept, and an unverified backup
// newer than it is kept too (evidence to look at); older unverified ones are pruned.
//
// Pinned backups (a restore's safety backup, a rolling update's pre-update backup) are their own
// class: while the pin holds (not released, `until` not passed) they are always kept and never
// take one of the daily/weekly/monthly/... slots, so they neither push a nightly backup out nor
// stand in for one. A released or lapsed pin makes the backup an ordinary one, kept or pruned by
// the policy like any other.
//
// Example: nightly backups, policy { daily: 7, weekly: 4, monthly: 3 }: the 7 newest nights, plus
// the newest backup of each of the 4 newest ISO weeks, plus the newest of each of the 3 newest
// months — about 12 backups kept, the oldest about 3 months old. If the job did not run for a
// week, `daily: 7` still keeps 7 backups (the last 7 days *that have one*), not fewer.

export interface RetentionPolicy {
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  last?: number;
  keepDays?: number;
}

export interface BackupRecord {
  id: string;
  /** ISO 8601 time the backup was taken. */
  time: string;
  verified: boolean;
  /** A safety/pre-update backup; `until` (ISO) ends the pin by itself. */
  pinned?: { reason: string; by?: string; until?: string };
}

/** True while a pin holds at `now` (a pin whose `until` has passed counts as released). */
export function pinHoldsAt(pin: BackupRecord['pinned'], now: Date): boolean {
  return pin !== undefined && (pin.until === undefined || Date.parse(pin.until) > now.getTime());
}

export interface RetentionDecision {
  keep: { id: string; reasons: string[] }[];
  prune: { id: string; reason: string }[];
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

export const dayKey = (d: Date): string => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
export const monthKey = (d: Date): string => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
export const yearKey = (d: Date): string => String(d.getUTCFullYear());

/** ISO 8601 week, e.g. "2027-W01" (the week with the year's first Thursday). */
export function isoWeekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = t.getUTCDay() || 7; // Monday=1 .. Sunday=7
  t.setUTCDate(t.getUTCDate() + 4 - weekday); // the Thursday of this week decides the year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${pad(week)}`;
}

export function validateRetentionPolicy(policy: RetentionPolicy): string[] {
  const problems: string[] = [];
  const rules = ['daily', 'weekly', 'monthly', 'yearly', 'last', 'keepDays'];
  for (const [name, value] of Object.entries(policy)) {
    if (!rules.includes(name)) problems.push(`unknown retention rule "${name}"`);
    else if (value !== undefined && (!Number.isInteger(value) || value < 0)) problems.push(`${name}: must be a whole number ≥ 0`);
  }
  if (!Object.entries(policy).some(([name, v]) => rules.includes(name) && typeof v === 'number' && v > 0)) problems.push('a retention policy must keep something (e.g. daily: 7)');
  return problems;
}

export function applyRetention(backups: readonly BackupRecord[], policy: RetentionPolicy, now: Date): RetentionDecision {
  const problems = validateRetentionPolicy(policy);
  if (problems.length) throw new Error(`invalid retention policy: ${problems.join('; ')}`);
  const newestFirst = [...backups].sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? 1 : -1));
  const reasons = new Map<string, string[]>();
  const keep = (id: string, reason: string) => reasons.set(id, [...(reasons.get(id) ?? []), reason]);
  // pinned backups are kept, and stay out of every rule below: they take no slot
  for (const b of newestFirst) {
    if (!pinHoldsAt(b.pinned, now)) continue;
    const pin = b.pinned!;
    keep(b.id, `pinned: ${pin.reason}${pin.by ? ` by ${pin.by}` : ''}${pin.until ? ` until ${pin.until}` : ''}`);
  }
  const series = newestFirst.filter((b) => !pinHoldsAt(b.pinned, now));
  const verified = series.filter((b) => b.verified);

  const buckets: [keyof RetentionPolicy, (d: Date) => string][] = [
    ['daily', dayKey],
    ['weekly', isoWeekKey],
    ['monthly', monthKey],
    ['yearly', yearKey],
  ];
  for (const [rule, key] of buckets) {
    const limit = policy[rule] ?? 0;
    let lastKey: string | undefined;
    let count = 0;
    for (const b of verified) {
      if (count >= limit) break;
      const k = key(new Date(b.time));
      if (k === lastKey) continue;
      lastKey = k;
      count++;
      keep(b.id, `${rule} ${k}`);
    }
  }
  verified.slice(0, policy.last ?? 0).forEach((b, i) => keep(b.id, `last ${i + 1}`));
  if (policy.keepDays) {
    const since = now.getTime() - policy.keepDays * 86_400_000;
    for (const b of verified) if (Date.parse(b.time) > since) keep(b.id, `within ${policy.keepDays}d`);
  }
  const newestVerified = verified[0];
  if (newestVerified) keep(newestVerified.id, 'newest verified');
  for (const b of series) {
    if (b.verified) continue;
    if (!newestVerified || Date.parse(b.time) > Date.parse(newestVerified.time)) keep(b.id, 'unverified, newer than the newest verified backup');
  }

  return {
    keep: newestFirst.filter((b) => reasons.has(b.id)).map((b) => ({ id: b.id, reasons: reasons.get(b.id)! })),
    prune: newestFirst.filter((b) => !reasons.has(b.id)).map((b) => ({ id: b.id, reason: b.verified ? 'outside every retention rule' : 'never verified' })),
  };
}
