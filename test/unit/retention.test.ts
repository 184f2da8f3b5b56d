import { applyRetention, isoWeekKey, validateRetentionPolicy, type BackupRecord } from '../../common/retention';

// Nightly backups at 02:00 UTC from 2026-08-20 to 2027-01-07, with gaps: the job did not run on
// 2026-11-30 (a month's last day), 2026-12-20..27 (a whole ISO week) and 2027-01-02..03.
const GAPS = new Set(['2026-11-30', '2026-12-20', '2026-12-21', '2026-12-22', '2026-12-23', '2026-12-24', '2026-12-25', '2026-12-26', '2026-12-27', '2027-01-02', '2027-01-03']);
function calendar(): BackupRecord[] {
  const out: BackupRecord[] = [];
  for (let t = Date.UTC(2026, 7, 20, 2); t <= Date.UTC(2027, 0, 7, 2); t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    if (!GAPS.has(day)) out.push({ id: day, time: new Date(t).toISOString(), verified: true });
  }
  return out;
}
const NOW = new Date('2027-01-07T03:00:00Z');
const kept = (backups: BackupRecord[], policy: Parameters<typeof applyRetention>[1]) => applyRetention(backups, policy, NOW).keep.map((k) => k.id);

describe('retention (restic forget semantics)', () => {
  const backups = calendar();

  it('simulates at least 120 nights', () => {
    expect(backups.length).toBe(130);
  });

  it('knows ISO weeks across the year boundary (2026 has 53)', () => {
    expect(isoWeekKey(new Date('2027-01-01T02:00:00Z'))).toBe('2026-W53');
    expect(isoWeekKey(new Date('2027-01-04T02:00:00Z'))).toBe('2027-W01');
    expect(isoWeekKey(new Date('2026-12-28T02:00:00Z'))).toBe('2026-W53');
    expect(isoWeekKey(new Date('2025-12-29T02:00:00Z'))).toBe('2026-W01');
  });

  it('keeps 7 daily, 4 weekly, 3 monthly: the newest of each of the last N buckets that have a backup', () => {
    expect(kept(backups, { daily: 7, weekly: 4, monthly: 3 })).toEqual([
      '2027-01-07', // daily, weekly 2027-W01, monthly 2027-01, newest verified
      '2027-01-06',
      '2027-01-05',
      '2027-01-04',
      '2027-01-01', // daily, weekly 2026-W53 (Jan 2-3 missing)
      '2026-12-31', // daily, monthly 2026-12
      '2026-12-30', // the 7th day that has a backup
      '2026-12-19', // weekly 2026-W51 (2026-W52 has no backup, so it does not count)
      '2026-12-13', // weekly 2026-W50
      '2026-11-29', // monthly 2026-11 (the 30th is missing)
    ]);
    const decision = applyRetention(backups, { daily: 7, weekly: 4, monthly: 3 }, NOW);
    expect(decision.keep[0].reasons).toEqual(['daily 2027-01-07', 'weekly 2027-W01', 'monthly 2027-01', 'newest verified']);
    expect(decision.prune).toHaveLength(120);
    expect(decision.prune[0]).toEqual({ id: '2026-12-29', reason: 'outside every retention rule' });
  });

  it('keeps by age with keepDays, and the N newest with last', () => {
    expect(kept(backups, { keepDays: 10 })).toEqual(['2027-01-07', '2027-01-06', '2027-01-05', '2027-01-04', '2027-01-01', '2026-12-31', '2026-12-30', '2026-12-29']);
    expect(kept(backups, { last: 3 })).toEqual(['2027-01-07', '2027-01-06', '2027-01-05']);
    expect(kept(backups, { yearly: 5 })).toEqual(['2027-01-07', '2026-12-31']);
  });

  it('counts only verified backups; keeps the newest verified and newer unverified ones, prunes older unverified', () => {
    const withFailures = backups.map((b) => (b.id === '2027-01-07' || b.id === '2026-12-31' || b.id === '2026-11-15' ? { ...b, verified: false } : b));
    const decision = applyRetention(withFailures, { daily: 7, weekly: 4, monthly: 3 }, NOW);
    expect(decision.keep.map((k) => k.id)).toEqual([
      '2027-01-07', // unverified but newer than the newest verified: kept for investigation
      '2027-01-06',
      '2027-01-05',
      '2027-01-04',
      '2027-01-01',
      '2026-12-30', // monthly 2026-12 now falls to the 30th
      '2026-12-29',
      '2026-12-28', // the 7th verified day
      '2026-12-19',
      '2026-12-13',
      '2026-11-29',
    ]);
    expect(decision.keep[0].reasons).toEqual(['unverified, newer than the newest verified backup']);
    expect(decision.prune).toEqual(expect.arrayContaining([{ id: '2026-12-31', reason: 'never verified' }, { id: '2026-11-15', reason: 'never verified' }]));
  });

  it('never prunes the newest verified backup, even with a tiny policy', () => {
    const old = [{ id: 'a', time: '2026-01-01T02:00:00Z', verified: true }];
    expect(applyRetention(old, { keepDays: 1 }, NOW).keep).toEqual([{ id: 'a', reasons: ['newest verified'] }]);
  });

  it('rejects policies that keep nothing or name unknown rules', () => {
    expect(validateRetentionPolicy({})).toEqual(['a retention policy must keep something (e.g. daily: 7)']);
    expect(validateRetentionPolicy({ daily: -1, hourly: 2 } as never)).toEqual(['daily: must be a whole number ≥ 0', 'unknown retention rule "hourly"', 'a retention policy must keep something (e.g. daily: 7)']);
    expect(() => applyRetention([], { daily: 0 }, NOW)).toThrow(/must keep something/);
  });
});
