// nightlyBackup and restoreBackup on the time-skipping server, activities mocked by an in-memory
// backup store: 100 simulated nights leave exactly the GFS set; a failed night alerts and prunes
// nothing; pinned safety and pre-update backups survive the nights until released; the restore is
// gated and refuses what it cannot restore (its recovery path and its pinned safety backup: restore.test.ts).
import { randomUUID } from 'node:crypto';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { backupFileName, buildManifest } from '../../common/commands/backup';
import type { BackupPin, NightlyBackupInput, RestoreBackupInput } from '../../common/types';
import { approveSignal, rejectSignal } from '../../workflows/lib/definitions';
import type { NightlyBackupResult } from '../../workflows/nightlyBackup';
import type { RestoreBackupResult } from '../../workflows/restoreBackup';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { settled, testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure as failureOf } from '../helpers/workflow-env';

jest.setTimeout(180_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const DAY = 86_400_000;
type Req = { app: string; env: string; target: { name: string }; at: string; file: string; files: string[]; pin?: BackupPin };

/** Backups as the storage would hold them; failures injected by the day (YYYY-MM-DD) of the backup. */
class FakeBackupStore {
  readonly backups = new Map<string, { createdAt: string; verified: boolean; pinned?: BackupPin }>();
  /** Archive files by night (ISO time). */
  readonly archives = new Map<string, string[]>();
  failDump = new Set<string>();
  failDrill = new Set<string>();

  activities() {
    return {
      backupDatabase: async (req: Req) => {
        if (this.failDump.has(req.at.slice(0, 10))) throw ApplicationFailure.nonRetryable('pg_dump failed (exit code 1): could not connect', 'PostgresClientRejected');
        const file = backupFileName({ app: req.app, env: req.env, database: req.target.name }, req.at);
        if (!this.backups.has(file)) this.backups.set(file, { createdAt: req.at, verified: false, ...(req.pin ? { pinned: req.pin } : {}) });
        return buildManifest({ app: req.app, env: req.env, database: req.target.name, file, createdAt: req.at, sizeBytes: 1000, sha256: '0'.repeat(64), durationMs: 10, serverVersion: '15.14', tables: [{ table: 'public.t', rows: 3 }] });
      },
      drillRestore: async (req: Req) => {
        const b = this.backups.get(req.file);
        if (!b) throw ApplicationFailure.nonRetryable(`backup ${req.file} is missing`, 'BackupMissing');
        if (this.failDrill.has(b.createdAt.slice(0, 10))) throw ApplicationFailure.nonRetryable(`restore drill of ${req.file}: the restored copy differs from the manifest: table public.t has 2 rows, expected 3 (-1)`, 'BackupDrillFailed');
        b.verified = true;
        return { file: req.file, scratchDatabase: 'scratch_drill', tables: 1, rows: 3, durationMs: 5 };
      },
      listBackups: async () => ({
        backups: [...this.backups.entries()]
          .map(([file, b]) => ({ file, manifest: file.replace('.sql.zst', '.manifest.json'), createdAt: b.createdAt, sizeBytes: 1000, verified: b.verified, ...(b.pinned ? { pinned: b.pinned } : {}) }))
          .sort((a, b) => a.createdAt.localeCompare(b.createdAt)),
        orphans: [],
      }),
      pruneBackups: async (req: Req) => {
        for (const f of req.files) this.backups.delete(f);
        return { removed: req.files, skipped: [] };
      },
      releaseBackupPin: async (req: Req) => {
        const b = this.backups.get(req.file);
        if (!b) return { file: req.file, found: false, released: false };
        const pin = b.pinned;
        delete b.pinned;
        return { file: req.file, found: true, released: pin !== undefined, ...(pin ? { pin } : {}) };
      },
      archiveVolume: async (req: Req & { name: string }) => this.archive(req.at, `${req.app}-${req.env}-volume-${req.name}-${req.at}.tar.zst`),
      archiveConfig: async (req: Req) => this.archive(req.at, `${req.app}-${req.env}-config-${req.at}.tar`),
      pruneArchives: async (req: { nights: string[] }) => {
        const removed = req.nights.flatMap((n) => this.archives.get(n) ?? []);
        for (const n of req.nights) this.archives.delete(n);
        return { removed };
      },
      notify: async () => ({ status: 200 }),
    };
  }

  private async archive(at: string, file: string) {
    this.archives.set(at, [...(this.archives.get(at) ?? []), file]);
    return { kind: 'volume', file, sizeBytes: 10, sha256: '0'.repeat(64), createdAt: at, containsSecrets: true };
  }
}

/** What a restore needs besides the store: the app stops and starts, the databases swap. */
const restoreActivities = {
  inspectFleet: async (req: { host: { name: string } }) => [
    { host: req.host.name, name: `shop-production-web-${req.host.name === 'one' ? 1 : 2}`, replica: req.host.name === 'one' ? 1 : 2, version: 'v1', image: 'reg:5000/shop:v1', state: 'running' },
  ],
  prepareRestore: async () => ({ incoming: 'scratch_restore_main', tables: 1, rows: 3 }),
  stopContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, stopped: req.names }),
  startContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, started: req.names }),
  swapInRestoredDatabase: async () => ({ live: 'shop', previous: 'scratch_previous_main' }),
  swapBackPreviousDatabase: async () => ({ live: 'shop', restoredKeptAs: 'scratch_restore_main' }),
  dropPreviousDatabase: async () => ({ dropped: 'scratch_previous_main' }),
};

async function withWorker<T>(mocks: MockActivities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(fn(taskQueue));
}


const night = (i: number, firstNight: number) => new Date(firstNight + i * DAY).toISOString().slice(0, 10);

describe('nightlyBackup', () => {
  it('100 nights with GFS 7 daily / 4 weekly / 3 monthly leave exactly the expected backups; failed nights alert and prune nothing', async () => {
    const store = new FakeBackupStore();
    const mocks = mockActivities(store.activities());
    const firstNight = Date.parse('2027-01-01T02:00:00Z'); // a Friday in ISO week 2026-W53
    // one failed dump and one failed drill, in February
    store.failDump.add('2027-02-10');
    store.failDrill.add('2027-02-19');
    const outcomes: string[] = [];
    const plain = new Client({ connection: env.connection });
    await withWorker(mocks, async (taskQueue) => {
      await env.sleep(firstNight - (await env.currentTimeMs()));
      for (let i = 0; i < 100; i++) {
        const before = mocks.calls.length;
        const day = night(i, firstNight);
        const handle = await plain.workflow.start('nightlyBackup', { taskQueue, workflowId: `nightlyBackup/shop/production-${day}`, args: [{ app: 'shop', env: 'production' } satisfies NightlyBackupInput] });
        const run = settled(handle);
        if (store.failDump.has(day) || store.failDrill.has(day)) {
          const f = await failureOf(run);
          expect(f.type).toBe('BackupNightFailed');
          expect(f.message).toMatch(/nothing was pruned/);
          const names = mocks.calls.slice(before).map((c) => c.name);
          expect(names).not.toContain('pruneBackups');
          expect(names).not.toContain('listBackups');
          const alerts = mocks.calls.slice(before).filter((c) => c.name === 'notify');
          expect(alerts).toHaveLength(1);
          expect(alerts[0].args).toMatchObject({ webhookUrlFile: '/etc/shop/webhook-url', notification: { severity: 'failure', runbook: 'nightlyBackup', app: 'shop', env: 'production' } });
          outcomes.push(`${day} failed`);
        } else {
          const r = (await run) as NightlyBackupResult;
          expect(r.backups).toHaveLength(1);
          expect(r.at.slice(0, 10)).toBe(day);
          expect(mocks.calls.slice(before).filter((c) => c.name === 'notify')).toHaveLength(0);
        }
        await env.sleep(firstNight + (i + 1) * DAY - (await env.currentTimeMs()));
      }
    });
    expect(outcomes).toEqual(['2027-02-10 failed', '2027-02-19 failed']);
    // Computed by hand for the last night, Saturday 2027-04-10:
    //   daily 7:   04-04 … 04-10
    //   weekly 4:  W14 (04-05..04-11) → 04-10, W13 → 04-04 (Sunday), W12 → 03-28, W11 → 03-21
    //   monthly 3: April → 04-10, March → 03-31, February → 02-28
    // The unverified backup of 02-19 went on the next good night ("never verified").
    const expected = ['02-28', '03-21', '03-28', '03-31', '04-04', '04-05', '04-06', '04-07', '04-08', '04-09', '04-10'];
    const kept = [...store.backups.entries()].map(([, b]) => b.createdAt.slice(5, 10)).sort();
    expect(kept).toEqual(expected);
    expect([...store.backups.values()].every((b) => b.verified)).toBe(true);
    // the volume and config archives follow their nights: exactly the kept nights have them, two each
    expect([...store.archives.keys()].map((at) => at.slice(5, 10)).sort()).toEqual(expected);
    expect([...store.archives.values()].every((files) => files.length === 2)).toBe(true);
    expect(mocks.called('backupDatabase')).toBe(100);
    expect(mocks.called('drillRestore')).toBe(99); // no drill after the failed dump
  });

  it('100 nights plus 3 restores and 5 updates: every pinned backup survives retention until released, then goes by the policy', async () => {
    const store = new FakeBackupStore();
    const mocks = mockActivities({ ...store.activities(), ...restoreActivities });
    // after the 100 nights above (2027): the time-skipping server only goes forward
    const firstNight = Date.parse('2028-01-01T02:00:00Z'); // a Saturday; 2028 is a leap year
    expect(await env.currentTimeMs()).toBeLessThan(firstNight);
    // on none of these days is a pinned backup the newest of a bucket the policy keeps at the end:
    // once released, each is pruned (none is a Sunday, a month's last day or in the last 7 days)
    const UPDATES = [10, 31, 45, 60, 75]; // pre-update backups at 10:00 (2028-01-11, 02-01, 02-15, 03-01, 03-16)
    const RESTORES = [20, 51, 84]; // safety backups at 14:00 (2028-01-21, 02-21, 03-25)
    const plain = new Client({ connection: env.connection });
    const pinnedFiles = new Map<string, BackupPin>();
    const runNight = async (taskQueue: string, day: string) => {
      const handle = await plain.workflow.start('nightlyBackup', { taskQueue, workflowId: `nightlyBackup/shop/production-${day}`, args: [{ app: 'shop', env: 'production' } satisfies NightlyBackupInput] });
      return (await settled(handle)) as NightlyBackupResult;
    };
    const sleepUntil = async (t: number) => env.sleep(t - (await env.currentTimeMs()));
    const nightlyKept = () => [...store.backups.entries()].filter(([f]) => !pinnedFiles.has(f)).map(([, b]) => b.createdAt.slice(5, 10)).sort();
    const present = () => [...pinnedFiles.keys()].filter((f) => store.backups.has(f));

    await withWorker(mocks, async (taskQueue) => {
      await sleepUntil(firstNight);
      for (let i = 0; i < 100; i++) {
        await runNight(taskQueue, night(i, firstNight));
        if (UPDATES.includes(i)) {
          // the rolling update's backup: its child nightlyBackup, as rollingUpdate starts it
          await sleepUntil(firstNight + i * DAY + 8 * 3_600_000);
          const handle = await plain.workflow.start('nightlyBackup', {
            taskQueue,
            workflowId: `nightlyBackup/shop/production/before-update-${i}`,
            args: [{ app: 'shop', env: 'production', skipPrune: true, pin: { reason: 'pre-update', window: '120d' } } satisfies NightlyBackupInput],
          });
          const r = (await settled(handle)) as NightlyBackupResult;
          expect(r.pinned).toEqual({ reason: 'pre-update', by: `nightlyBackup/shop/production/before-update-${i}`, until: new Date(Date.parse(r.at) + 120 * DAY).toISOString() });
          pinnedFiles.set(r.backups[0].file, r.pinned!);
        }
        if (RESTORES.includes(i)) {
          await sleepUntil(firstNight + i * DAY + 12 * 3_600_000);
          const handle = await plain.workflow.start('restoreBackup', { taskQueue, workflowId: `restoreBackup/shop/production/${i}`, args: [{ app: 'shop', env: 'production', safetyPinWindow: '200d' } satisfies RestoreBackupInput] });
          await waitForGate(handle, 'restore');
          await handle.signal(approveSignal, { gate: 'restore', by: 'alice' });
          await handle.signal(approveSignal, { gate: 'restore', by: 'bob' });
          const r = (await settled(handle)) as RestoreBackupResult;
          const pin = store.backups.get(r.safetyBackup)!.pinned!;
          expect(pin).toEqual({ reason: 'safety', by: `restoreBackup/shop/production/${i}`, until: new Date(Date.parse(store.backups.get(r.safetyBackup)!.createdAt) + 200 * DAY).toISOString() });
          pinnedFiles.set(r.safetyBackup, pin);
        }
        // every pinned backup is still there after every night, and no prune ever asked for one
        expect(present()).toHaveLength(pinnedFiles.size);
        await sleepUntil(firstNight + (i + 1) * DAY);
      }
      expect(pinnedFiles.size).toBe(8);
      expect([...pinnedFiles.values()].map((p) => p.reason).sort()).toEqual(['pre-update', 'pre-update', 'pre-update', 'pre-update', 'pre-update', 'safety', 'safety', 'safety']);
      const asked = mocks.calls.filter((c) => c.name === 'pruneBackups').flatMap((c) => (c.args as { files: string[] }).files);
      expect(asked.filter((f) => pinnedFiles.has(f))).toEqual([]);
      // and they took no slot: the nightly backups kept are exactly the GFS set of the last night,
      // Sunday 2028-04-09: daily 04-03 … 04-09; weekly W14 → 04-09, W13 → 04-02, W12 → 03-26,
      // W11 → 03-19; monthly April → 04-09, March → 03-31, February → 02-29
      expect(nightlyKept()).toEqual(['02-29', '03-19', '03-26', '03-31', '04-02', '04-03', '04-04', '04-05', '04-06', '04-07', '04-08', '04-09']);

      // released explicitly (the activity, as a restore calls it): the safety backups go the next night
      const safetyFiles = [...pinnedFiles].filter(([, p]) => p.reason === 'safety').map(([f]) => f);
      for (const file of safetyFiles) {
        const released = await mocks.activities.releaseBackupPin!({ app: 'shop', env: 'production', target: { name: 'main' }, storage: { type: 'directory', path: '/srv/backups' }, file } as never);
        expect(released).toMatchObject({ file, found: true, released: true, pin: { reason: 'safety' } });
      }
      const r100 = await runNight(taskQueue, night(100, firstNight)); // Monday 2028-04-10
      expect(r100.pruned).toEqual(expect.arrayContaining(safetyFiles));
      expect(present().map((f) => pinnedFiles.get(f)!.reason)).toEqual(['pre-update', 'pre-update', 'pre-update', 'pre-update', 'pre-update']);
      expect(r100.kept.main.filter((k) => k.includes('pinned'))).toHaveLength(5);
      expect(r100.kept.main.find((k) => k.includes('before-update-10'))).toMatch(/^shop-production-main-20280111T100000Z\.sql\.zst \(pinned: pre-update by nightlyBackup\/shop\/production\/before-update-10 until 2028-05-10T10:00:00\.\d{3}Z\)$/);
      // daily 04-04 … 04-10; weekly W15 → 04-10, W14 → 04-09, W13 → 04-02, W12 → 03-26; monthly 04-10, 03-31, 02-29
      expect(nightlyKept()).toEqual(['02-29', '03-26', '03-31', '04-02', '04-04', '04-05', '04-06', '04-07', '04-08', '04-09', '04-10']);

      // released by their window (120 days): the last lapses 2028-07-14 10:00; the next night prunes them all
      await sleepUntil(Date.parse('2028-07-16T02:00:00Z'));
      const late = await runNight(taskQueue, '2028-07-16');
      expect(present()).toEqual([]);
      expect(late.kept.main.filter((k) => k.includes('pinned'))).toEqual([]);
      // daily 7: 07-16, 04-10 … 04-05; weekly 4: 07-16, 04-10, 04-09, 04-02; monthly 3: 07-16, 04-10, 03-31
      expect(nightlyKept()).toEqual(['03-31', '04-02', '04-05', '04-06', '04-07', '04-08', '04-09', '04-10', '07-16']);
    });
  });

  it('a failed night alerts through the webhook even when the alert itself fails, and still reports the backup error', async () => {
    const store = new FakeBackupStore();
    store.backups.set('shop-production-main-20260101T020000Z.sql.zst', { createdAt: '2026-01-01T02:00:00Z', verified: true });
    const today = new Date(await env.currentTimeMs()).toISOString().slice(0, 10);
    store.failDrill.add(today);
    const mocks = mockActivities({
      ...store.activities(),
      notify: async () => {
        throw ApplicationFailure.nonRetryable('webhook https://hooks.example.com/… refused the notification: HTTP 403', 'NotifyRejected');
      },
    });
    const f = await withWorker(mocks, (taskQueue) =>
      failureOf(env.client.workflow.execute('nightlyBackup', { taskQueue, workflowId: `nightlyBackup/shop/production-${randomUUID()}`, args: [{ app: 'shop', env: 'production' }] })),
    );
    expect(f.type).toBe('BackupNightFailed');
    expect(f.message).toMatch(/main: restore drill of .* differs from the manifest/);
    expect(mocks.called('notify')).toBe(1);
    expect(mocks.called('pruneBackups')).toBe(0);
    expect(store.backups.has('shop-production-main-20260101T020000Z.sql.zst')).toBe(true);
  });

  it('bad input and an app without a backup section fail before any side effect', async () => {
    const mocks = mockActivities();
    await withWorker(mocks, async (taskQueue) => {
      const bad = await failureOf(env.client.workflow.execute('nightlyBackup', { taskQueue, workflowId: `nb-${randomUUID()}`, args: [{ app: 'Shop!', env: 'production' }] }));
      expect(bad.type).toBe('InvalidInput');
      const pin = await failureOf(env.client.workflow.execute('nightlyBackup', { taskQueue, workflowId: `nb-${randomUUID()}`, args: [{ app: 'shop', env: 'production', pin: { reason: 'nightly', window: 'soon' } } as never] }));
      expect(pin.type).toBe('InvalidInput');
      expect(pin.message).toMatch(/pin\.reason: must be one of "safety", "pre-update"; pin\.window: "soon" is not a duration/);
      const none = await failureOf(env.client.workflow.execute('nightlyBackup', { taskQueue, workflowId: `nb-${randomUUID()}`, args: [{ app: 'nope', env: 'production' }] }));
      expect(none.message).toMatch(/unknown app "nope"/);
    });
    expect(mocks.names()).toEqual(['resolveBackupPlan']);
  });
});

describe('restoreBackup', () => {
  function restoreMocks(over: Record<string, (...args: any[]) => Promise<unknown>> = {}) {
    const store = new FakeBackupStore();
    store.backups.set('shop-production-main-20270101T020000Z.sql.zst', { createdAt: '2027-01-01T02:00:00Z', verified: true });
    store.backups.set('shop-production-main-20270102T020000Z.sql.zst', { createdAt: '2027-01-02T02:00:00Z', verified: true });
    store.backups.set('shop-production-main-20270103T020000Z.sql.zst', { createdAt: '2027-01-03T02:00:00Z', verified: false });
    return mockActivities({ ...store.activities(), ...restoreActivities, ...over });
  }

  async function startRestore(taskQueue: string, input: RestoreBackupInput): Promise<WorkflowHandle> {
    return env.client.workflow.start('restoreBackup', { taskQueue, workflowId: `restoreBackup/shop/production/${randomUUID()}`, args: [input] });
  }


  const destructive = ['acquireLock', 'backupDatabase', 'prepareRestore', 'stopContainers', 'swapInRestoredDatabase', 'startContainers', 'dropPreviousDatabase'];

  it('rejected: nothing is touched', async () => {
    const mocks = restoreMocks();
    const f = await withWorker(mocks, async (taskQueue) => {
      const handle = await startRestore(taskQueue, { app: 'shop', env: 'production', backup: 'shop-production-main-20270101T020000Z.sql.zst' });
      await waitForGate(handle, 'restore');
      await handle.signal(rejectSignal, { gate: 'restore', by: 'carol', comment: 'wrong day' });
      return failureOf(handle.result());
    });
    expect(f.type).toBe('NotApproved');
    expect(f.message).toMatch(/nothing was changed/);
    expect(mocks.names().filter((n) => destructive.includes(n))).toEqual([]);
  });

  it('refuses an unverified or unknown backup, and says which databases exist, before the gate', async () => {
    const mocks = restoreMocks();
    await withWorker(mocks, async (taskQueue) => {
      const unverified = await failureOf((await startRestore(taskQueue, { app: 'shop', env: 'production', backup: 'shop-production-main-20270103T020000Z.sql.zst' })).result());
      expect(unverified.type).toBe('BackupUnverified');
      const unknown = await failureOf((await startRestore(taskQueue, { app: 'shop', env: 'production', backup: 'nope.sql.zst' })).result());
      expect(unknown.message).toMatch(/no backup nope\.sql\.zst .*newest verified: shop-production-main-20270102T020000Z\.sql\.zst/);
      const db = await failureOf((await startRestore(taskQueue, { app: 'shop', env: 'production', database: 'other' })).result());
      expect(db.message).toMatch(/has no database "other" \(it has: main\)/);
    });
    expect(mocks.names().filter((n) => destructive.includes(n))).toEqual([]);
  });
});
