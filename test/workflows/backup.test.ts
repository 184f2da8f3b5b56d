// nightlyBackup and restoreBackup on the time-skipping server, activities mocked by an in-memory
// backup store: 100 simulated nights leave exactly the GFS set; a failed night alerts and prunes
// nothing; the restore is gated and refuses what it cannot restore (its recovery path: restore.test.ts).
import { randomUUID } from 'node:crypto';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { backupFileName, buildManifest } from '../../common/commands/backup';
import type { NightlyBackupInput, RestoreBackupInput } from '../../common/types';
import { rejectSignal } from '../../workflows/lib/definitions';
import type { NightlyBackupResult } from '../../workflows/nightlyBackup';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure as failureOf } from '../helpers/workflow-env';

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
type Req = { app: string; env: string; target: { name: string }; at: string; file: string; files: string[] };

/** Backups as the storage would hold them; failures injected by the day (YYYY-MM-DD) of the backup. */
class FakeBackupStore {
  readonly backups = new Map<string, { createdAt: string; verified: boolean }>();
  /** Archive files by night (ISO time). */
  readonly archives = new Map<string, string[]>();
  failDump = new Set<string>();
  failDrill = new Set<string>();

  activities() {
    return {
      backupDatabase: async (req: Req) => {
        if (this.failDump.has(req.at.slice(0, 10))) throw ApplicationFailure.nonRetryable('pg_dump failed (exit code 1): could not connect', 'PostgresClientRejected');
        const file = backupFileName({ app: req.app, env: req.env, database: req.target.name }, req.at);
        if (!this.backups.has(file)) this.backups.set(file, { createdAt: req.at, verified: false });
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
          .map(([file, b]) => ({ file, manifest: file.replace('.sql.zst', '.manifest.json'), createdAt: b.createdAt, sizeBytes: 1000, verified: b.verified }))
          .sort((a, b) => a.createdAt.localeCompare(b.createdAt)),
        orphans: [],
      }),
      pruneBackups: async (req: Req) => {
        for (const f of req.files) this.backups.delete(f);
        return { removed: req.files };
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

async function withWorker<T>(mocks: MockActivities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(fn(taskQueue));
}


/**
 * The run's outcome without time skipping. The environment's client unlocks time skipping while it
 * awaits a result, and the test server then jumps to its next timer (years ahead when nothing else
 * is scheduled) in the middle of the night's run; a plain client on the same connection does not.
 */
async function settled(handle: WorkflowHandle): Promise<unknown> {
  while ((await handle.describe()).status.name === 'RUNNING') await new Promise((r) => setTimeout(r, 10));
  return handle.result();
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
      const none = await failureOf(env.client.workflow.execute('nightlyBackup', { taskQueue, workflowId: `nb-${randomUUID()}`, args: [{ app: 'nope', env: 'production' }] }));
      expect(none.message).toMatch(/unknown app "nope"/);
    });
    expect(mocks.calls.map((c) => c.name)).toEqual(['resolveBackupPlan']);
  });
});

describe('restoreBackup', () => {
  function restoreMocks(over: Record<string, (...args: any[]) => Promise<unknown>> = {}) {
    const store = new FakeBackupStore();
    store.backups.set('shop-production-main-20270101T020000Z.sql.zst', { createdAt: '2027-01-01T02:00:00Z', verified: true });
    store.backups.set('shop-production-main-20270102T020000Z.sql.zst', { createdAt: '2027-01-02T02:00:00Z', verified: true });
    store.backups.set('shop-production-main-20270103T020000Z.sql.zst', { createdAt: '2027-01-03T02:00:00Z', verified: false });
    return mockActivities({
      ...store.activities(),
      prepareRestore: async () => ({ incoming: 'scratch_restore_main', tables: 1, rows: 3 }),
      stopContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, stopped: req.names }),
      startContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, started: req.names }),
      swapInRestoredDatabase: async () => ({ live: 'shop', previous: 'scratch_previous_main' }),
      swapBackPreviousDatabase: async () => ({ live: 'shop', restoredKeptAs: 'scratch_restore_main' }),
      dropPreviousDatabase: async () => ({ dropped: 'scratch_previous_main' }),
      ...over,
    });
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
    expect(mocks.calls.map((c) => c.name).filter((n) => destructive.includes(n))).toEqual([]);
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
    expect(mocks.calls.map((c) => c.name).filter((n) => destructive.includes(n))).toEqual([]);
  });
});
