// bench/cutover's figures from the writer's records: the freeze, the backlog, the write checks.
import { ackGaps, backlogMs, checkWrites, median, type Write } from '../../bench/cutover-figures';

const write = (ref: string, o: Partial<Write> = {}): Write => ({ ref, table: 'items', scheduledAt: 0, attempts: [], ...o });

describe('ackGaps', () => {
  it('takes the longest gap overlapping the switch as the freeze, and the longest gap away from it as the noise', () => {
    const acks = [0, 5, 1000, 2000, 2005, 2500, 2510, 6000, 6040, 6045];
    const g = ackGaps([...acks].reverse(), 2300, 3000, 7000);
    expect(g.freeze).toEqual({ ms: 3490, from: 2510, to: 6000 });
    // 5 → 1000 ends ≥ 1 s before the switch, 6000 → 6040 starts ≥ 1 s after it; 1000 → 2000 is too close to count
    expect(g.otherMaxGapMs).toBe(995);
  });

  it('counts a gap that began before the switch and ended after it', () => {
    expect(ackGaps([100, 200, 900], 300, 600, 1000).freeze).toEqual({ ms: 700, from: 200, to: 900 });
  });

  it('runs the freeze to the end when nothing was acknowledged after the switch', () => {
    expect(ackGaps([100, 200, 350], 300, 600, 5000).freeze).toEqual({ ms: 4650, from: 350, to: 5000 });
    expect(ackGaps([], 300, 600, 5000).freeze).toEqual({ ms: 4700, from: 300, to: 5000 });
  });
});

describe('backlogMs', () => {
  it('is flip → the last acknowledgement of a write due before the flip', () => {
    const writes = [
      write('a', { scheduledAt: 10, ackAt: 20 }),
      write('b', { scheduledAt: 50, ackAt: 1300 }),
      write('c', { scheduledAt: 60, ackAt: 1100 }),
      write('d', { scheduledAt: 1001, ackAt: 1900 }), // issued after the flip
    ];
    expect(backlogMs(writes, 1000)).toBe(300);
    expect(backlogMs([write('a', { scheduledAt: 10, ackAt: 20 })], 1000)).toBe(0);
  });
});

describe('checkWrites', () => {
  const ok = (side: 'old' | 'new', at = 0) => ({ at, side, ms: 1, outcome: 'ok' });
  it('finds lost, duplicated and phantom writes, ambiguous commits and sequence conflicts', () => {
    const writes: Write[] = [
      write('w0', { ackAt: 1, ackSide: 'old', id: '100', attempts: [ok('old')] }),
      write('w1', { ackAt: 2, ackSide: 'old', id: '101', attempts: [ok('old')] }), // lost
      write('w2', { table: 'events', ackAt: 3, ackSide: 'new', id: '500', attempts: [{ at: 0, side: 'old', ms: 1, outcome: '25006', phase: 'insert' }, ok('new')] }),
      write('w3', { ackAt: 4, ackSide: 'new', id: '102', attempts: [{ at: 0, side: 'old', ms: 1, outcome: 'Connection terminated', phase: 'commit' }, ok('new')] }), // duplicated, and id ≤ max at the switch
      write('w4', { attempts: [{ at: 0, side: 'old', ms: 1, outcome: '57P01', phase: 'commit' }] }), // never acknowledged, yet there
      write('w5', { attempts: [{ at: 0, side: 'new', ms: 1, outcome: '23505', phase: 'insert' }] }),
    ];
    const onNew = new Map([['w0', 1], ['w2', 1], ['w3', 2], ['w4', 1]]);
    expect(checkWrites(writes, onNew, { items: 102n, events: 499n })).toEqual({
      acked: 4,
      unacked: 2,
      lost: 1,
      duplicated: 1,
      phantoms: 1,
      ambiguousCommits: 2,
      uniqueViolations: 1,
      sequenceConflicts: 1,
      failedAttempts: { '25006 (insert)': 1, 'Connection terminated (commit)': 1, '57P01 (commit)': 1, '23505 (insert)': 1 },
    });
  });
});

it('median', () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 2, 3])).toBe(2.5);
});
