// restoreArchive on the time-skipping server, activities mocked: the archive is read through before
// the gate; a volume's users are stopped under maintenance mode, its content archived, the archive
// extracted, the users started health-gated; a failed extraction puts the previous content back;
// a damaged or incomplete archive, an unknown volume or a rejection change nothing; config files
// are restored without stopping anything.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJson } from '../../client/history-json';
import type { StoredArchive } from '../../activities/archive-restore';
import { archiveFileName } from '../../common/commands/backup';
import type { RestoreArchiveInput } from '../../common/inputs';
import { approveSignal, rejectSignal } from '../../workflows/lib/definitions';
import type { RestoreArchiveResult } from '../../workflows/restoreArchive';
import { mockActivities, type MockActivities } from '../helpers/mock-activities';
import { settled, testWorker, timeSkippingEnv, waitForGate, workflowBundle, workflowFailure } from '../helpers/workflow-env';

jest.setTimeout(120_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const parts = { app: 'shop', env: 'production' };
const NIGHT = archiveFileName(parts, 'volume', '2027-01-02T02:00:00Z', 'pgdata');
const OLDER = archiveFileName(parts, 'volume', '2027-01-01T02:00:00Z', 'pgdata');
const HALF = archiveFileName(parts, 'volume', '2027-01-03T02:00:00Z', 'pgdata');
const CONFIG = archiveFileName(parts, 'config', '2027-01-02T02:00:00Z');
const archive = (file: string, complete = true): StoredArchive => ({
  file,
  createdAt: '2027-01-02T02:00:00Z',
  sizeBytes: 100,
  sha256: 'a'.repeat(64),
  complete,
  ...(complete ? {} : { problem: 'it has no manifest (its writing never finished)' }),
});
const DB = 'shop-production-postgres';

function archiveMocks(over: Record<string, (...args: any[]) => Promise<unknown>> = {}) {
  return mockActivities({
    listArchives: async (req: { volume?: string }) => ({ storage: '/srv/backups on the worker', archives: req.volume ? [archive(OLDER), archive(NIGHT), archive(HALF, false)] : [archive(CONFIG)] }),
    verifyVolumeArchive: async () => ({ entries: 12, bytes: 4096 }),
    verifyConfigArchive: async () => ({ entries: 2, bytes: 80 }),
    volumeUsers: async (req: { host: { name: string } }) => ({ host: req.host.name, exists: true, running: [DB], archiving: false }),
    stopContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, stopped: req.names }),
    startContainers: async (req: { host: { name: string }; names: string[] }) => ({ host: req.host.name, started: req.names }),
    archiveVolume: async (req: { at: string; name: string }) => ({ kind: 'volume', ...parts, volume: req.name, file: archiveFileName(parts, 'volume', req.at, req.name), createdAt: req.at, sizeBytes: 90, sha256: 'b'.repeat(64), containsSecrets: true }),
    restoreVolumeArchive: async (req: { sizeBytes: number }) => ({ bytes: req.sizeBytes }),
    restoreConfigArchive: async () => ({ restored: ['/etc/shop.env'], unchanged: ['/etc/shop/pg-password'], keptAs: [{ path: '/etc/shop.env', keptAs: '/etc/shop.env.before-restore-20270102T030000Z' }], skipped: [] }),
    ...over,
  });
}

async function run<T>(mocks: MockActivities, input: Partial<RestoreArchiveInput>, drive: (h: WorkflowHandle) => Promise<T>): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, mocks.activities);
  return worker.runUntil(async () => drive(await env.client.workflow.start('restoreArchive', { taskQueue, workflowId: `restoreArchive/shop/production/${randomUUID()}`, args: [{ ...parts, ...input }] })));
}

/** Approves the gate (two approvers: the inventory's minimum). */
async function approve(h: WorkflowHandle): Promise<void> {
  await waitForGate(h, 'restore');
  await h.signal(approveSignal, { gate: 'restore', by: 'alice' });
  await h.signal(approveSignal, { gate: 'restore', by: 'bob' });
}

const argsOf = <T>(mocks: MockActivities, name: string) => mocks.calls.filter((c) => c.name === name).map((c) => c.args as T);

describe('restoreArchive of a volume', () => {
  it('reads the newest complete archive through before the gate; then maintenance on, stop, archive the current content, extract, start, health, maintenance off', async () => {
    const mocks = archiveMocks();
    const { result, history } = await run(mocks, { volume: 'pgdata' }, async (h) => {
      const st = await waitForGate(h, 'restore');
      expect(st.pendingGates[0].description).toContain(`from ${NIGHT}`);
      expect(st.pendingGates[0].description).toContain('12 entries, 4096 bytes');
      expect(mocks.names()).toEqual(['resolveBackupPlan', 'listArchives', 'verifyVolumeArchive', 'volumeUsers']);
      await approve(h);
      return { result: (await settled(h)) as RestoreArchiveResult, history: await h.fetchHistory() };
    });
    expect(mocks.names().slice(4)).toEqual([
      'acquireLock', 'volumeUsers', 'proxyMaintenance', 'proxyMaintenance', 'stopContainers', 'archiveVolume', 'restoreVolumeArchive',
      'startContainers', 'reloadProxy', 'reloadProxy', 'waitHealthy', 'proxyMaintenance', 'proxyMaintenance', 'smokeTest', 'releaseLock',
    ]);
    expect(argsOf<{ names: string[] }>(mocks, 'stopContainers')[0].names).toEqual([DB]);
    const copy = argsOf<{ reason: string; volume: string }>(mocks, 'archiveVolume')[0];
    expect(copy).toMatchObject({ volume: 'shop-production-pgdata', reason: expect.stringContaining(`content before the restore of ${NIGHT}`) });
    expect(argsOf<{ file: string; volume: string; sha256: string }>(mocks, 'restoreVolumeArchive')[0]).toMatchObject({ file: NIGHT, volume: 'shop-production-pgdata', sha256: 'a'.repeat(64) });
    expect(result).toMatchObject({ restored: NIGHT, entries: 12, bytes: 4096, volume: { name: 'pgdata', host: 'one', stopped: [DB], previousArchive: expect.stringMatching(/^shop-production-volume-pgdata-\d{8}T\d{6}Z\.tar\.zst$/) } });
    if (process.env.RECORD_RESTORE_ARCHIVE_HISTORIES === '1') writeFileSync(path.join(__dirname, '../replay/histories/restoreArchive-volume-restored.json'), JSON.stringify(historyToJson(history), null, 1) + '\n');
  });

  it('a named archive is restored; an incomplete one is refused before the gate, nothing changed', async () => {
    const mocks = archiveMocks();
    await run(mocks, { volume: 'pgdata', archive: OLDER }, async (h) => {
      await approve(h);
      await settled(h);
    });
    expect(argsOf<{ file: string }>(mocks, 'restoreVolumeArchive')[0].file).toBe(OLDER);

    const refused = archiveMocks();
    const failure = await run(refused, { volume: 'pgdata', archive: HALF }, (h) => workflowFailure(settled(h)));
    expect(failure).toMatchObject({ type: 'ArchiveIncomplete', message: expect.stringContaining('it has no manifest') });
    expect(refused.names()).toEqual(['resolveBackupPlan', 'listArchives']);
  });

  it('"latest" is the newest night\'s archive, never a copy an earlier restore took (shown with its reason when named)', async () => {
    const COPY = archiveFileName(parts, 'volume', '2027-01-04T10:00:00Z', 'pgdata');
    const listed = async () => ({ storage: 'here', archives: [archive(NIGHT), { ...archive(COPY), reason: 'content before the restore of x by restoreArchive/shop/production' }] });
    const mocks = archiveMocks({ listArchives: listed });
    await run(mocks, { volume: 'pgdata' }, async (h) => {
      expect((await waitForGate(h, 'restore')).pendingGates[0].description).toContain(`from ${NIGHT}`);
      await h.signal(rejectSignal, { gate: 'restore', by: 'alice' });
      await workflowFailure(settled(h));
    });
    const named = archiveMocks({ listArchives: listed });
    await run(named, { volume: 'pgdata', archive: COPY }, async (h) => {
      expect((await waitForGate(h, 'restore')).pendingGates[0].description).toContain(`from ${COPY} (taken 2027-01-02T02:00:00Z: content before the restore of x`);
      await h.signal(rejectSignal, { gate: 'restore', by: 'alice' });
      await workflowFailure(settled(h));
    });
  });

  it('a volume that does not exist is refused before the gate', async () => {
    const mocks = archiveMocks({ volumeUsers: async () => ({ host: 'one', exists: false, running: [], archiving: false }) });
    const failure = await run(mocks, { volume: 'pgdata' }, (h) => workflowFailure(settled(h)));
    expect(failure).toMatchObject({ type: 'VolumeMissing', message: expect.stringContaining('deploy shop/production first') });
    expect(mocks.called('acquireLock')).toBe(0);
  });

  it('a volume the app does not archive is refused, naming the ones it does', async () => {
    const mocks = archiveMocks();
    const failure = await run(mocks, { volume: 'uploads' }, (h) => workflowFailure(settled(h)));
    expect(failure).toMatchObject({ type: 'InvalidInput', message: expect.stringContaining('does not archive a volume "uploads" (backup.archives.volumes: pgdata)') });
    expect(mocks.names()).toEqual(['resolveBackupPlan']);
  });

  it('a damaged archive fails its read-through: no gate, nothing stopped', async () => {
    const mocks = archiveMocks({
      verifyVolumeArchive: async () => {
        throw ApplicationFailure.nonRetryable(`archive ${NIGHT} is damaged: sha256 c…, the manifest says a…`, 'ArchiveCorrupt');
      },
    });
    const failure = await run(mocks, { volume: 'pgdata' }, (h) => workflowFailure(settled(h)));
    expect(failure).toMatchObject({ type: 'ArchiveCorrupt' });
    expect(mocks.called('acquireLock')).toBe(0);
    expect(mocks.called('stopContainers')).toBe(0);
  });

  it('rejected: nothing is changed', async () => {
    const mocks = archiveMocks();
    const failure = await run(mocks, { volume: 'pgdata' }, async (h) => {
      await waitForGate(h, 'restore');
      await h.signal(rejectSignal, { gate: 'restore', by: 'alice' });
      return workflowFailure(settled(h));
    });
    expect(failure).toMatchObject({ type: 'NotApproved', message: expect.stringContaining('nothing was changed') });
    expect(mocks.called('stopContainers')).toBe(0);
  });

  it('an extraction that fails puts the previous content back from its archive and starts the containers again', async () => {
    const mocks = archiveMocks({
      restoreVolumeArchive: async (req: { file: string; sizeBytes: number }) => {
        if (req.file === NIGHT) throw ApplicationFailure.nonRetryable('tar: ./base/1/1259: Cannot write: No space left on device', 'VolumeRestoreFailed');
        return { bytes: req.sizeBytes };
      },
    });
    const failure = await run(mocks, { volume: 'pgdata' }, async (h) => {
      await approve(h);
      return workflowFailure(settled(h));
    });
    const restores = argsOf<{ file: string }>(mocks, 'restoreVolumeArchive').map((a) => a.file);
    const copy = argsOf<{ at: string }>(mocks, 'archiveVolume')[0];
    const previous = archiveFileName(parts, 'volume', copy.at, 'pgdata');
    expect(restores).toEqual([NIGHT, previous]);
    // stopped (again: idempotent) before the copy goes back, then started
    expect(mocks.names().filter((n) => ['stopContainers', 'restoreVolumeArchive', 'startContainers'].includes(n))).toEqual(['stopContainers', 'restoreVolumeArchive', 'stopContainers', 'restoreVolumeArchive', 'startContainers']);
    expect(argsOf<{ names: string[] }>(mocks, 'startContainers')[0].names).toEqual([DB]);
    expect(failure).toMatchObject({ type: 'RestoreFailed' });
    expect(failure.message).toContain('No space left on device');
    expect(failure.message).toContain(`the volume's previous content is back (from ${previous})`);
    expect(failure.message).toContain('its containers were started again and are healthy');
    // maintenance mode was turned off once they were healthy
    expect(argsOf<{ on: boolean }>(mocks, 'proxyMaintenance').map((a) => a.on)).toEqual([true, true, false, false]);
    expect(mocks.names().at(-1)).toBe('releaseLock');
  });

  it('an unhealthy container after the restore: stopped again, the previous content put back, started again', async () => {
    let checks = 0;
    const mocks = archiveMocks({
      waitHealthy: async (req: { container: string }) => {
        if (++checks === 1) throw ApplicationFailure.nonRetryable(`${req.container} is unhealthy after 60s`, 'Unhealthy');
        return { container: req.container, health: 'healthy', seconds: 1 };
      },
    });
    const failure = await run(mocks, { volume: 'pgdata' }, async (h) => {
      await approve(h);
      return workflowFailure(settled(h));
    });
    const steps = mocks.names().filter((n) => ['stopContainers', 'restoreVolumeArchive', 'startContainers', 'waitHealthy'].includes(n));
    expect(steps).toEqual(['stopContainers', 'restoreVolumeArchive', 'startContainers', 'waitHealthy', 'stopContainers', 'restoreVolumeArchive', 'startContainers', 'waitHealthy']);
    expect(failure.message).toMatch(/is unhealthy after 60s; the volume's previous content is back .*; its containers were started again and are healthy/);
  });

  it('a copy that cannot be put back: the containers stay stopped and maintenance mode stays on; the error names the copy', async () => {
    const mocks = archiveMocks({
      restoreVolumeArchive: async () => {
        throw ApplicationFailure.nonRetryable('tar: Cannot write: No space left on device', 'VolumeRestoreFailed');
      },
    });
    const failure = await run(mocks, { volume: 'pgdata' }, async (h) => {
      await approve(h);
      return workflowFailure(settled(h));
    });
    expect(mocks.called('restoreVolumeArchive')).toBe(2);
    expect(mocks.called('startContainers')).toBe(0);
    expect(argsOf<{ on: boolean }>(mocks, 'proxyMaintenance').map((a) => a.on)).toEqual([true, true]);
    const copy = archiveFileName(parts, 'volume', argsOf<{ at: string }>(mocks, 'archiveVolume')[0].at, 'pgdata');
    expect(failure.message).toContain(`COULD NOT put the previous content back`);
    expect(failure.message).toContain(`${DB} stay stopped and maintenance mode stays on; its content before the restore is archived as ${copy} (runbook restore shop --env production --volume pgdata --archive ${copy})`);
    expect(mocks.names().at(-1)).toBe('releaseLock');
  });

  it('a failure before the copy was taken leaves the volume as it was and starts the containers again', async () => {
    const mocks = archiveMocks({
      archiveVolume: async () => {
        throw ApplicationFailure.nonRetryable('archive of volume shop-production-pgdata on one: the volume does not exist', 'VolumeMissing');
      },
    });
    const failure = await run(mocks, { volume: 'pgdata' }, async (h) => {
      await approve(h);
      return workflowFailure(settled(h));
    });
    expect(mocks.called('restoreVolumeArchive')).toBe(0);
    expect(failure.message).toContain('the volume was not changed');
    expect(mocks.called('startContainers')).toBe(1);
  });
});

describe('restoreArchive of the config files', () => {
  it('restores the worker files after the gate; nothing is stopped', async () => {
    const mocks = archiveMocks();
    const result = await run(mocks, { config: true }, async (h) => {
      const st = await waitForGate(h, 'restore');
      expect(st.pendingGates[0].description).toContain(`config files of shop/production from ${CONFIG}`);
      await approve(h);
      return (await settled(h)) as RestoreArchiveResult;
    });
    expect(mocks.names()).toEqual(['resolveBackupPlan', 'listArchives', 'verifyConfigArchive', 'acquireLock', 'restoreConfigArchive', 'releaseLock']);
    expect(argsOf<{ volume?: string }>(mocks, 'listArchives')[0].volume).toBeUndefined();
    // only the files the inventory names as config files are written
    expect(argsOf<{ configFiles: string[] }>(mocks, 'restoreConfigArchive')[0].configFiles).toEqual(['/etc/shop.env']);
    expect(result.config).toMatchObject({ restored: ['/etc/shop.env'], keptAs: [{ path: '/etc/shop.env' }] });
  });
});
