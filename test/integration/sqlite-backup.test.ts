// SQLite backups on the real engine (seed 003's app on SQLite): the demo app on a volume with its
// database file, written to while the online backup runs; the backup, its retry, the drill, a
// damaged dump, the restore beside the live file, the swap with the app stopped, the swap back, and
// the removal of the pre-restore copy; and the refusal when no container of the service runs.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { createBackupActivities } from '../../activities/backup';
import { DockerEngines, execInContainer } from '../../activities/docker';
import { SshPool } from '../../activities/ssh';
import { backupFileName, manifestFileName, parseManifest } from '../../common/commands/backup';
import { labelsFor } from '../../common/naming';
import type { DatabaseTarget, StorageSpec } from '../../common/types';
import { localHost } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(180_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const tag = randomBytes(4).toString('hex');
const app = `itsql-${tag}`;
const env = 'test';
const container = `${app}-${env}-web-1`;
const volume = `${app}-${env}-data`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-sqlite-'));
const storage: StorageSpec = { type: 'directory', path: path.join(tmp, 'backups') };
const ssh = new SshPool();
const engines = new DockerEngines(ssh, path.join(tmp, 'sockets'));
const acts = createBackupActivities({ engines, ssh }, { heartbeatMs: 200 });
const target: DatabaseTarget = {
  name: 'main',
  database: '/data/app.db',
  user: '',
  location: { kind: 'sqlite', host: localHost, app, env, service: 'web', path: '/data/app.db', volume, mountPath: '/data', helperImage: `${REGISTRY}/debian:bookworm` },
};
const req = { app, env, target, storage };

async function sqlite(sql: string): Promise<string> {
  const r = await execInContainer(docker, container, ['sqlite3', '-bail', '-noheader', '/data/app.db', sql]);
  if (r.exitCode !== 0) throw new Error(`sqlite3 ${sql}: ${r.stderr}`);
  return r.stdout.trim();
}

beforeAll(async () => {
  await docker.createVolume({ Name: volume, Labels: labelsFor(app, env, 'web') });
  await docker.createContainer({
    name: container,
    Image: `${REGISTRY}/demo-app:v2`,
    Env: ['DATABASE_URL=sqlite:////data/app.db'],
    Labels: labelsFor(app, env, 'web', { 'runbook.version': 'v2' }),
    HostConfig: { Binds: [`${volume}:/data`] },
  });
  await docker.getContainer(container).start();
  const migrated = await execInContainer(docker, container, ['demo-app', 'migrate']);
  expect(migrated.exitCode).toBe(0);
  await sqlite("INSERT INTO items (body) SELECT 'seed-' || value FROM generate_series(1, 500)").catch(async () => {
    // no generate_series in this sqlite3: a recursive CTE
    await sqlite("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO items (body) SELECT 'seed-' || i FROM n");
  });
});

afterAll(async () => {
  await docker.getContainer(container).remove({ force: true }).catch(() => undefined);
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${app}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  await docker.getVolume(volume).remove().catch(() => undefined);
  await engines.closeAll();
  await ssh.closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

let file: string;
let rowsInBackup: number;

it('backs up with the online backup while the app writes: the manifest counts exactly what the dump holds; a retry finds it done', async () => {
  // a writer in the app's container, one transaction per row, during the backup; it waits for a
  // lock as the app does (busy timeout 5 s): the last connection's checkpoint locks the file briefly
  const writer = execInContainer(docker, container, ['sh', '-c', `i=0; while [ $i -lt 200 ]; do sqlite3 -cmd '.timeout 5000' /data/app.db "INSERT INTO items (body) VALUES ('during-$i')" || exit 1; i=$((i+1)); done`]);
  const manifest = await acts.backupDatabase({ ...req, at: '2026-11-27T02:00:00Z' });
  expect((await writer).exitCode).toBe(0);
  file = manifest.file;
  expect(file).toBe(backupFileName({ app, env, database: 'main' }, '2026-11-27T02:00:00Z'));
  expect(manifest.serverVersion).toMatch(/^SQLite 3\.\d+/);
  rowsInBackup = manifest.tables.find((t) => t.table === 'items')!.rows;
  expect(rowsInBackup).toBeGreaterThanOrEqual(500);
  expect(rowsInBackup).toBeLessThanOrEqual(700);
  expect(parseManifest(readFileSync(path.join(tmp, 'backups', manifestFileName(file)), 'utf8')).sha256).toBe(manifest.sha256);
  expect(await acts.backupDatabase({ ...req, at: '2026-11-27T02:00:00Z' })).toEqual(manifest);
  // nothing left in the container
  expect((await execInContainer(docker, container, ['sh', '-c', 'ls /tmp | grep -c scratch_ || true'])).stdout.trim()).toBe('0');
});

it('the drill restores it in the container, checks integrity and rows, and marks it verified', async () => {
  const drill = await acts.drillRestore({ ...req, file, at: '2026-11-27T02:05:00Z' });
  expect(drill).toMatchObject({ file, tables: 1, rows: rowsInBackup });
  expect(parseManifest(readFileSync(path.join(tmp, 'backups', manifestFileName(file)), 'utf8')).verifiedAt).toBe('2026-11-27T02:05:00Z');
});

it('a damaged dump fails the drill, non-retryable, and leaves no scratch file', async () => {
  const copy = await acts.backupDatabase({ ...req, at: '2026-11-27T03:00:00Z' });
  const stored = path.join(tmp, 'backups', copy.file);
  const bytes = readFileSync(stored);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  writeFileSync(stored, bytes);
  const err = await rejectionOf(acts.drillRestore({ ...req, file: copy.file, at: '2026-11-27T03:05:00Z' }));
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect((err as ApplicationFailure).type).toBe('BackupCorrupt');
  expect((err as ApplicationFailure).nonRetryable).toBe(true);
  expect((await execInContainer(docker, container, ['sh', '-c', 'ls /tmp | grep -c scratch_ || true'])).stdout.trim()).toBe('0');
});

it('restores: beside the live file while the app runs, swapped with it stopped; the swap back puts every later write back', async () => {
  const runTag = '2026-11-27T04:00:00Z';
  await sqlite("INSERT INTO items (body) VALUES ('after-the-backup')");
  const prepared = await acts.prepareRestore({ ...req, file, runTag });
  expect(prepared).toMatchObject({ incoming: '/data/scratch_restore_main_2026_11_27t04_00_00z', tables: 1, rows: rowsInBackup });
  await docker.getContainer(container).stop({ t: 5 });
  const swapped = await acts.swapInRestoredDatabase({ target, runTag });
  expect(swapped).toEqual({ live: '/data/app.db', previous: '/data/scratch_previous_main_2026_11_27t04_00_00z' });
  expect(await acts.swapInRestoredDatabase({ target, runTag })).toEqual(swapped); // a retry
  await docker.getContainer(container).start();
  expect(Number(await sqlite('SELECT count(*) FROM items'))).toBe(rowsInBackup);
  expect(await sqlite("SELECT count(*) FROM items WHERE body = 'after-the-backup'")).toBe('0');
  // the restore failed after the swap: the previous file comes back with its last write
  await docker.getContainer(container).stop({ t: 5 });
  expect(await acts.swapBackPreviousDatabase({ target, runTag })).toEqual({ live: '/data/app.db', restoredKeptAs: prepared.incoming, putBack: true });
  expect(await acts.swapBackPreviousDatabase({ target, runTag })).toMatchObject({ putBack: false });
  await docker.getContainer(container).start();
  expect(await sqlite("SELECT count(*) FROM items WHERE body = 'after-the-backup'")).toBe('1');
  // and in again, then the pre-restore copy goes
  await docker.getContainer(container).stop({ t: 5 });
  await acts.swapInRestoredDatabase({ target, runTag });
  await docker.getContainer(container).start();
  expect(Number(await sqlite('SELECT count(*) FROM items'))).toBe(rowsInBackup);
  expect(await acts.dropPreviousDatabase({ target, runTag })).toEqual({ dropped: swapped.previous });
  expect((await execInContainer(docker, container, ['sh', '-c', 'ls /data'])).stdout.split('\n').filter((f) => f.startsWith('scratch_previous'))).toEqual([]);
});

it('with no running container of the service: refused, saying to start the app', async () => {
  await docker.getContainer(container).stop({ t: 5 });
  try {
    const err = await rejectionOf(acts.backupDatabase({ ...req, at: '2026-11-27T05:00:00Z' }));
    expect((err as ApplicationFailure).type).toBe('AppNotRunning');
    expect((err as Error).message).toMatch(/no running container of web \(sqlite3 runs in the app's own container, which has the volume\): start the app first/);
  } finally {
    await docker.getContainer(container).start();
  }
});
