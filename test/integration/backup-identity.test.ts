// Backup identity and pins against the local PostgreSQL 15 server (pg_dump/psql on the worker)
// into a directory on the worker: nothing else is needed (no Docker engine, SSH or S3).
// Two series whose plain names collide — env `prod` + db `eu-main` and env `prod-eu` + db `main`
// (issue 11, defect 5) — are backed up at the same second, drilled and listed; a backup written
// under the old shared name is read back only by the series its manifest names; a pinned backup
// survives the prune until released (defect 4).
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import { createBackupActivities } from '../../activities/backup';
import { DockerEngines } from '../../activities/docker';
import { SshPool } from '../../activities/ssh';
import { manifestFileName, parseManifest, serializeManifest } from '../../common/commands/backup';
import type { DatabaseTarget, StorageSpec } from '../../common/types';
import { RUNBOOK_HOME } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(120_000);

const tag = randomBytes(4).toString('hex');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-identity-'));
const dir = path.join(tmp, 'backups');
const storage: StorageSpec = { type: 'directory', path: dir };
const passwordFile = `${RUNBOOK_HOME}/pg-server/password`;
const port = Number(process.env.PG_SERVER_PORT ?? 15432);
const ssh = new SshPool();
const acts = createBackupActivities({ engines: new DockerEngines(ssh, path.join(tmp, 'sockets')), ssh }, { heartbeatMs: 200 });

// two databases on the server, one per series, with different content
const dbA = `it_identity_a_${tag}`;
const dbB = `it_identity_b_${tag}`;
const target = (name: string, database: string): DatabaseTarget => ({ name, database, user: 'runbook', passwordFile, location: { kind: 'server', address: '127.0.0.1', port } });
const A = { app: 'shop', env: 'prod', target: target('eu-main', dbA), storage };
const B = { app: 'shop', env: 'prod-eu', target: target('main', dbB), storage };

async function sql(database: string, text: string): Promise<void> {
  const client = new Client({ host: '127.0.0.1', port, user: 'runbook', database, password: readFileSync(passwordFile, 'utf8').trim() });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  for (const [db, rows] of [[dbA, 10], [dbB, 20]] as const) {
    await sql('postgres', `DROP DATABASE IF EXISTS ${db}`);
    await sql('postgres', `CREATE DATABASE ${db}`);
    await sql(db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, ${rows}) g`);
  }
});

afterAll(async () => {
  for (const db of [dbA, dbB]) await sql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
  await ssh.closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

const failure = async (p: Promise<unknown>) => {
  const err = await rejectionOf(p);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
};

describe('env prod + db eu-main and env prod-eu + db main on one storage', () => {
  const at = '2025-06-01T02:00:00.000Z';
  const legacy = 'shop-prod-eu-main-20250501T020000Z.sql.zst'; // the plain name both series had before

  it('backed up at the same second: two files, each manifest naming its own series and content', async () => {
    const ma = await acts.backupDatabase({ ...A, at });
    const mb = await acts.backupDatabase({ ...B, at });
    expect(ma.file).toBe('shop~prod~eu-main-20250601T020000Z.sql.zst');
    expect(mb.file).toBe('shop~prod-eu~main-20250601T020000Z.sql.zst');
    expect([ma.env, ma.database, ma.tables]).toEqual(['prod', 'eu-main', [{ table: 'public.t', rows: 10 }]]);
    expect([mb.env, mb.database, mb.tables]).toEqual(['prod-eu', 'main', [{ table: 'public.t', rows: 20 }]]);
    await acts.drillRestore({ ...A, file: ma.file, at: '2025-06-01T03:00:00.000Z' });
    await acts.drillRestore({ ...B, file: mb.file, at: '2025-06-01T03:00:00.000Z' });
    expect(readdirSync(dir).sort()).toEqual([manifestFileName(mb.file), mb.file, manifestFileName(ma.file), ma.file].sort());
  });

  it('a backup under the old shared name is listed, drilled and restored by its own series only', async () => {
    // B's backup as it was written before names told the series apart
    const mb = parseManifest(readFileSync(path.join(dir, manifestFileName('shop~prod-eu~main-20250601T020000Z.sql.zst')), 'utf8'));
    copyFileSync(path.join(dir, mb.file), path.join(dir, legacy));
    writeFileSync(path.join(dir, manifestFileName(legacy)), serializeManifest({ ...mb, file: legacy, createdAt: '2025-05-01T02:00:00Z' }));

    const la = await acts.listBackups(A);
    expect(la.backups.map((b) => b.file)).toEqual(['shop~prod~eu-main-20250601T020000Z.sql.zst']);
    expect(la.foreign).toEqual([{ file: legacy, reason: 'its manifest names shop/prod-eu/main, not shop/prod/eu-main' }]);
    const lb = await acts.listBackups(B);
    expect(lb.backups.map((b) => [b.file, b.verified])).toEqual([[legacy, true], ['shop~prod-eu~main-20250601T020000Z.sql.zst', true]]);

    for (const [action, run] of [
      ['drill', () => acts.drillRestore({ ...A, file: legacy, at: '2025-06-02T00:00:00Z' })],
      ['restore', () => acts.prepareRestore({ ...A, file: legacy, runTag: `it-${tag}` })],
      ['prune', () => acts.pruneBackups({ ...A, files: [legacy] })],
    ] as const) {
      const f = await failure(run());
      expect(f).toMatchObject({ type: 'BackupIdentityMismatch', nonRetryable: true });
      expect(f.message).toBe(`refusing to ${action} ${legacy} in ${dir} on the worker: its manifest names shop/prod-eu/main, not shop/prod/eu-main`);
    }
    expect(existsSync(path.join(dir, legacy))).toBe(true);
    // its own series drills it (20 rows: B's data)
    expect(await acts.drillRestore({ ...B, file: legacy, at: '2025-06-02T00:00:00Z' })).toMatchObject({ tables: 1, rows: 20 });
  });

  it('a pinned safety backup survives the prune until released', async () => {
    const pin = { reason: 'safety' as const, by: 'restoreBackup/shop/prod', until: new Date(Date.now() + 86_400_000).toISOString() };
    const m = await acts.backupDatabase({ ...A, at: '2025-06-01T14:00:00.000Z', pin });
    expect(parseManifest(readFileSync(path.join(dir, manifestFileName(m.file)), 'utf8')).pinned).toEqual(pin);
    await acts.drillRestore({ ...A, file: m.file, at: '2025-06-01T15:00:00.000Z' });
    expect((await acts.listBackups(A)).backups.find((b) => b.file === m.file)).toMatchObject({ verified: true, pinned: pin });
    expect(await acts.pruneBackups({ ...A, files: [m.file] })).toEqual({ removed: [], skipped: [{ file: m.file, reason: `pinned: safety by restoreBackup/shop/prod until ${pin.until}` }] });
    expect(await acts.releaseBackupPin({ ...A, file: m.file })).toMatchObject({ found: true, released: true, pin });
    expect(await acts.pruneBackups({ ...A, files: [m.file] })).toEqual({ removed: [m.file], skipped: [] });
    expect(existsSync(path.join(dir, m.file))).toBe(false);
  });
});
