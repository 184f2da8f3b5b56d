import { applyRetention, isoWeekKey, pinHoldsAt, validateRetentionPolicy, type BackupRecord } from '../../common/retention';

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

describe('pinned backups (safety, pre-update): their own class', () => {
  const nightly = calendar();
  const GFS = { daily: 7, weekly: 4, monthly: 3 };
  const pin = (reason: string, until?: string) => ({ reason, by: `${reason === 'safety' ? 'restoreBackup' : 'rollingUpdate'}/shop/production`, ...(until ? { until } : {}) });
  const HOLDS = '2027-02-01T00:00:00Z';
  const LAPSED = '2027-01-07T02:30:00Z'; // before NOW
  // pinned backups at the times that would take a slot if they counted: the newest of a day in
  // the daily window, of the week 2026-W52 that has no nightly, of the month 2026-12, and an old one
  const pinned = (until: string | undefined, verified = true): BackupRecord[] => [
    { id: 'safety-0105', time: '2027-01-05T14:00:00Z', verified, pinned: pin('safety', until) },
    { id: 'update-1223', time: '2026-12-23T10:00:00Z', verified, pinned: pin('pre-update', until) },
    { id: 'update-1231', time: '2026-12-31T10:00:00Z', verified, pinned: pin('pre-update', until) },
    { id: 'safety-0910', time: '2026-09-10T14:00:00Z', verified, pinned: pin('safety', until) },
  ];
  const NIGHTLY_KEPT = ['2027-01-07', '2027-01-06', '2027-01-05', '2027-01-04', '2027-01-01', '2026-12-31', '2026-12-30', '2026-12-19', '2026-12-13', '2026-11-29'];
  const decide = (extra: BackupRecord[]) => applyRetention([...nightly, ...extra], GFS, NOW);
  const keptIds = (extra: BackupRecord[]) => decide(extra).keep.map((k) => k.id).sort();

  it.each([
    ['a pin with a window that has not ended', HOLDS],
    ['a pin without a window (held until released)', undefined],
  ])('%s: always kept, and takes no slot: the nightly set is exactly what it is without them', (_name, until) => {
    expect(keptIds(pinned(until))).toEqual([...NIGHTLY_KEPT, 'safety-0105', 'update-1223', 'update-1231', 'safety-0910'].sort());
    const d = decide(pinned(until));
    expect(d.prune).toHaveLength(120); // the same nightly backups pruned as without any pin
    expect(d.keep.find((k) => k.id === 'safety-0105')?.reasons).toEqual([`pinned: safety by restoreBackup/shop/production${until ? ` until ${until}` : ''}`]);
    expect(d.keep.find((k) => k.id === '2026-12-31')?.reasons).toEqual(['daily 2026-12-31', 'monthly 2026-12']); // not displaced by update-1231
  });

  it('a pin whose window has passed counts as released: the backup is kept or pruned by the policy like any other', () => {
    const d = decide(pinned(LAPSED));
    const reasons = Object.fromEntries(d.keep.map((k) => [k.id, k.reasons]));
    // now the newest of their day, week and month, they take those slots from the nightly backups
    expect(reasons['safety-0105']).toEqual(['daily 2027-01-05']);
    expect(reasons['update-1231']).toEqual(['daily 2026-12-31', 'monthly 2026-12']);
    expect(reasons['update-1223']).toEqual(['weekly 2026-W52']);
    expect(d.prune).toEqual(expect.arrayContaining([
      { id: '2027-01-05', reason: 'outside every retention rule' },
      { id: '2026-12-31', reason: 'outside every retention rule' },
      { id: '2026-12-13', reason: 'outside every retention rule' }, // W52 now has a backup: W50 is the 5th week
      { id: 'safety-0910', reason: 'outside every retention rule' },
    ]));
  });

  it.each([
    // [case, pinned record, kept?, reason]
    ['held, unverified (its drill failed): kept while pinned', { verified: false, until: HOLDS }, true, 'pinned: safety by restoreBackup/shop/production until 2027-02-01T00:00:00Z'],
    ['lapsed, unverified, older than the newest verified: pruned', { verified: false, until: LAPSED }, false, 'never verified'],
    ['lapsed one second ago: pruned by the policy', { verified: true, until: '2027-01-07T02:59:59Z' }, false, 'outside every retention rule'],
    ['ends one second from now: still kept', { verified: true, until: '2027-01-07T03:00:01Z' }, true, 'pinned: safety by restoreBackup/shop/production until 2027-01-07T03:00:01Z'],
  ])('an old safety backup, %s', (_name, { verified, until }, kept, reason) => {
    const b: BackupRecord = { id: 'safety', time: '2026-10-10T14:00:00Z', verified, pinned: pin('safety', until) };
    const d = decide([b]);
    if (kept) expect(d.keep.find((k) => k.id === 'safety')).toEqual({ id: 'safety', reasons: [reason] });
    else expect(d.prune.find((p) => p.id === 'safety')).toEqual({ id: 'safety', reason });
  });

  it('the newest verified backup of the series is a nightly one: a newer pinned backup does not stand in for it', () => {
    const only: BackupRecord[] = [
      { id: 'night', time: '2026-06-01T02:00:00Z', verified: true },
      { id: 'safety', time: '2027-01-06T14:00:00Z', verified: true, pinned: pin('safety', HOLDS) },
    ];
    expect(applyRetention(only, { keepDays: 1 }, NOW).keep).toEqual([
      { id: 'safety', reasons: ['pinned: safety by restoreBackup/shop/production until 2027-02-01T00:00:00Z'] },
      { id: 'night', reasons: ['newest verified'] },
    ]);
  });

  it('pinHoldsAt: no pin, a pin without until, before and after until', () => {
    expect(pinHoldsAt(undefined, NOW)).toBe(false);
    expect(pinHoldsAt({ reason: 'safety' }, NOW)).toBe(true);
    expect(pinHoldsAt({ reason: 'safety', until: '2027-01-07T03:00:01Z' }, NOW)).toBe(true);
    expect(pinHoldsAt({ reason: 'safety', until: '2027-01-07T03:00:00Z' }, NOW)).toBe(false);
  });
});
