// The seed's Rollback Decision Tree (common/cutover.ts), table-tested.
import { decideValidation, snapshotDisagreements, type ValidationRound } from '../../common/cutover';

const baseline = { requests: 100, errors: 0, p50Ms: 10, p95Ms: 20 };
const round = (over: Partial<ValidationRound>): ValidationRound => ({ requests: 100, errors: 0, p50Ms: 10, p95Ms: 20, writesFlowing: true, dataLoss: false, ...over });

describe('decideValidation', () => {
  it.each([
    ['data loss wins over everything', round({ dataLoss: true, errors: 50, p50Ms: 100 }), 'rollback', /^data loss/],
    ['11 % errors roll back', round({ errors: 11 }), 'rollback', /^error rate 11 % over 10 %/],
    ['exactly 10 % errors continue', round({ errors: 10 }), 'continue', /^error rate 10 %/],
    ['every request failed: errors decide, no latency', round({ errors: 100, p50Ms: 0 }), 'rollback', /100 of 100/],
    ['latency 2.5× asks a person', round({ p50Ms: 25 }), 'ask', /2\.5× the 10\.0 ms/],
    ['latency exactly 2× continues', round({ p50Ms: 20 }), 'continue', /median 20\.0 ms/],
    ['no write reached the new database: reported, not rolled back', round({ writesFlowing: false }), 'continue', /no write reached the new database/],
    ['no request at all: nothing to judge', round({ requests: 0, p50Ms: 0 }), 'continue', /error rate 0\.0 %/],
  ])('%s', (_name, r, action, reason) => {
    const d = decideValidation(r, baseline);
    expect(d.action).toBe(action);
    expect(d.reason).toMatch(reason);
  });

  it('a median within the margin of the baseline is not slower, whatever the ratio', () => {
    const fast = { ...baseline, p50Ms: 1.5 };
    expect(decideValidation(round({ p50Ms: 3.6 }), fast, 25).action).toBe('continue');
    expect(decideValidation(round({ p50Ms: 26.6 }), fast, 25)).toEqual({ action: 'ask', reason: expect.stringMatching(/17\.7× the 1\.5 ms/) });
    expect(decideValidation(round({ p50Ms: 25 }), baseline, 25).action).toBe('continue'); // 2.5×, but 15 ms more
    expect(decideValidation(round({ p50Ms: 36 }), baseline, 25).action).toBe('ask');
  });

  it('a baseline without latency never asks', () => {
    expect(decideValidation(round({ p50Ms: 500 }), { ...baseline, p50Ms: 0 }).action).toBe('continue');
  });
});

describe('snapshotDisagreements', () => {
  const rec = (values: string[], ttl = 60) => [{ name: 'www.shop.test', type: 'A' as const, values, ttl }];
  it('agrees when serials and answers match; names each difference otherwise', () => {
    expect(snapshotDisagreements({ zone: 'shop.test', servers: [{ server: 'a', serial: 2, records: rec(['192.0.2.1']) }, { server: 'b', serial: 2, records: rec(['192.0.2.1']) }] })).toEqual([]);
    expect(snapshotDisagreements({ zone: 'shop.test', servers: [{ server: 'a', serial: 3, records: rec(['192.0.2.2']) }, { server: 'b', serial: 2, records: rec(['192.0.2.1']) }] })).toEqual([
      'b serves serial 2, a serves 3',
      'www.shop.test A: a answers 192.0.2.2 ttl 60, b answers 192.0.2.1 ttl 60',
    ]);
    expect(snapshotDisagreements({ zone: 'shop.test', servers: [] })).toEqual(['no authoritative server answered for shop.test']);
  });
});
