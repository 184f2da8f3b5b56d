// The backup activities over an in-memory storage (no database is reached: every case here is
// decided from the storage): whose a backup is, checked on every read (issue 11, defect 5); pins
// in the manifest, listed, honoured by the prune and released (defect 4); heartbeats while a retry
// re-reads a finished dump (defect 6).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createBackupActivities } from '../../activities/backup';
import * as storageModule from '../../activities/storage';
import { StorageNotFound, type BackupStorage, type StoredObject } from '../../activities/storage';
import { backupFileName, buildManifest, manifestFileName, parseManifest, serializeManifest, type BackupManifest } from '../../common/commands/backup';
import type { BackupPin, DatabaseTarget, StorageSpec } from '../../common/types';
import { rejectionOf } from '../helpers/rejection';

/** Objects in memory; getStream can be slowed down (one chunk every `chunkDelayMs`). */
class MemoryStorage implements BackupStorage {
  readonly description = '/srv/backups (in memory)';
  readonly objects = new Map<string, Buffer>();
  chunkBytes = 64 * 1024;
  chunkDelayMs = 0;
  reads: string[] = [];

  async putStream(name: string, source: Readable): Promise<{ sizeBytes: number }> {
    const chunks: Buffer[] = [];
    for await (const c of source) chunks.push(Buffer.from(c));
    this.objects.set(name, Buffer.concat(chunks));
    return { sizeBytes: this.objects.get(name)!.length };
  }
  async putText(name: string, text: string): Promise<void> {
    this.objects.set(name, Buffer.from(text));
  }
  async getStream(name: string): Promise<Readable> {
    const data = this.objects.get(name);
    if (!data) throw new StorageNotFound(this.description, name);
    this.reads.push(name);
    const { chunkBytes, chunkDelayMs } = this;
    return Readable.from(
      (async function* () {
        for (let i = 0; i < data.length; i += chunkBytes) {
          if (chunkDelayMs) await new Promise((r) => setTimeout(r, chunkDelayMs));
          yield data.subarray(i, i + chunkBytes);
        }
      })(),
    );
  }
  async getText(name: string): Promise<string | undefined> {
    return this.objects.get(name)?.toString('utf8');
  }
  async list(prefix: string): Promise<StoredObject[]> {
    return [...this.objects].filter(([n]) => n.startsWith(prefix)).map(([name, b]) => ({ name, sizeBytes: b.length })).sort((x, y) => x.name.localeCompare(y.name));
  }
  async remove(name: string): Promise<void> {
    this.objects.delete(name);
  }
  manifest(file: string): BackupManifest {
    return parseManifest(this.objects.get(manifestFileName(file))!.toString('utf8'));
  }
}

type Series = { app: string; env: string; database: string };
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const storageSpec: StorageSpec = { type: 'directory', path: '/srv/backups' };
/** A database the tests never reach (port 1): everything here is decided from the storage. */
const target = (name: string): DatabaseTarget => ({ name, database: 'shop', user: 'shop', location: { kind: 'server', address: '127.0.0.1', port: 1 } });
const request = (s: Series) => ({ app: s.app, env: s.env, target: target(s.database), storage: storageSpec });

/** A finished backup as backupDatabase and the drill leave it; `file` and `manifestSays` fake the odd cases. */
function putBackup(mem: MemoryStorage, s: Series, at: string, opts: { file?: string; bytes?: number; verified?: boolean; pinned?: BackupPin; manifestSays?: Series } = {}): BackupManifest {
  const file = opts.file ?? backupFileName(s, at);
  const data = Buffer.alloc(opts.bytes ?? 100, `${s.env}/${s.database}@${at}`);
  const manifest = buildManifest({
    ...(opts.manifestSays ?? s),
    file,
    createdAt: at,
    sizeBytes: data.length,
    sha256: sha256(data),
    durationMs: 10,
    serverVersion: '15.14',
    tables: [{ table: 'public.t', rows: 3 }],
    ...(opts.verified !== false ? { verifiedAt: at } : {}),
    ...(opts.pinned ? { pinned: opts.pinned } : {}),
  });
  mem.objects.set(file, data);
  mem.objects.set(manifestFileName(file), Buffer.from(serializeManifest(manifest)));
  return manifest;
}

let mem: MemoryStorage;
beforeEach(() => {
  mem = new MemoryStorage();
  jest.spyOn(storageModule, 'openStorage').mockReturnValue(mem);
});
afterEach(() => jest.restoreAllMocks());

const acts = createBackupActivities({ engines: null as never, ssh: null as never }, { heartbeatMs: 20 });

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await rejectionOf(p);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('backup identity: env prod + db eu-main and env prod-eu + db main (issue 11, defect 5)', () => {
  const a = { app: 'shop', env: 'prod', database: 'eu-main' };
  const b = { app: 'shop', env: 'prod-eu', database: 'main' };
  // written before names told the two apart: the same plain name for both series
  const legacyA = 'shop-prod-eu-main-20250101T020000Z.sql.zst';
  const legacyB = 'shop-prod-eu-main-20250102T020000Z.sql.zst';

  beforeEach(() => {
    putBackup(mem, a, '2025-01-01T02:00:00Z', { file: legacyA });
    putBackup(mem, b, '2025-01-02T02:00:00Z', { file: legacyB });
    putBackup(mem, a, '2025-01-03T02:00:00Z');
    putBackup(mem, b, '2025-01-03T02:00:00Z');
  });

  it('a listing holds only the backups whose manifest names the series; the others are reported, never counted', async () => {
    const la = await acts.listBackups(request(a));
    expect(la.backups.map((x) => x.file)).toEqual([legacyA, 'shop~prod~eu-main-20250103T020000Z.sql.zst']);
    expect(la.foreign).toEqual([{ file: legacyB, reason: 'its manifest names shop/prod-eu/main, not shop/prod/eu-main' }]);
    const lb = await acts.listBackups(request(b));
    expect(lb.backups.map((x) => x.file)).toEqual([legacyB, 'shop~prod-eu~main-20250103T020000Z.sql.zst']);
    expect(lb.foreign).toEqual([{ file: legacyA, reason: 'its manifest names shop/prod/eu-main, not shop/prod-eu/main' }]);
    expect([...la.orphans, ...lb.orphans]).toEqual([]);
  });

  it('a shared name whose manifest cannot be read is nobody\'s: not listed, not pruned', async () => {
    mem.objects.set(manifestFileName(legacyA), Buffer.from('{ broken'));
    const la = await acts.listBackups(request(a));
    expect(la.backups.map((x) => x.file)).not.toContain(legacyA);
    expect(la.foreign).toContainEqual({ file: legacyA, reason: 'its manifest cannot be read and other series have the same name' });
    const f = await failure(acts.pruneBackups({ ...request(a), files: [legacyA] }));
    expect(f).toMatchObject({ type: 'BackupIdentityMismatch', nonRetryable: true });
    expect(mem.objects.has(legacyA)).toBe(true);
  });

  it('drill, restore and release refuse a backup whose manifest names another app/env/database, before touching any database', async () => {
    for (const [action, run] of [
      ['drill', () => acts.drillRestore({ ...request(a), file: legacyB, at: '2025-01-04T00:00:00Z' })],
      ['restore', () => acts.prepareRestore({ ...request(a), file: legacyB, runTag: 't' })],
      ['release', () => acts.releaseBackupPin({ ...request(a), file: legacyB })],
    ] as const) {
      const f = await failure(run());
      expect(f.nonRetryable).toBe(true);
      expect(f.type).toBe('BackupIdentityMismatch');
      expect(f.message).toBe(`refusing to ${action} ${legacyB} in /srv/backups (in memory): its manifest names shop/prod-eu/main, not shop/prod/eu-main`);
    }
    // the new names of the other series are not even names of this one
    const g = await failure(acts.drillRestore({ ...request(a), file: 'shop~prod-eu~main-20250103T020000Z.sql.zst', at: '2025-01-04T00:00:00Z' }));
    expect(g).toMatchObject({ type: 'BackupBadRequest', nonRetryable: true });
    expect(g.message).toMatch(/not a backup of shop\/prod\/eu-main/);
  });

  it('a manifest that describes another file is refused too', async () => {
    const file = backupFileName(a, '2025-01-05T02:00:00Z');
    putBackup(mem, a, '2025-01-05T02:00:00Z', { file });
    mem.objects.set(manifestFileName(file), Buffer.from(serializeManifest({ ...mem.manifest(file), file: legacyA })));
    const f = await failure(acts.prepareRestore({ ...request(a), file, runTag: 't' }));
    expect(f.message).toMatch(/its manifest describes shop-prod-eu-main-20250101T020000Z\.sql\.zst, not shop~prod~eu-main-20250105T020000Z\.sql\.zst/);
  });

  it('the prune refuses the whole request when one file belongs to another series: nothing is removed', async () => {
    const before = [...mem.objects.keys()].sort();
    const f = await failure(acts.pruneBackups({ ...request(a), files: [legacyA, legacyB] }));
    expect(f).toMatchObject({ type: 'BackupIdentityMismatch', nonRetryable: true });
    expect(f.message).toMatch(/refusing to prune shop-prod-eu-main-20250102T020000Z\.sql\.zst .*names shop\/prod-eu\/main/);
    expect([...mem.objects.keys()].sort()).toEqual(before);
    // its own legacy backup it prunes
    expect(await acts.pruneBackups({ ...request(a), files: [legacyA] })).toEqual({ removed: [legacyA], skipped: [] });
    expect(mem.objects.has(legacyA) || mem.objects.has(manifestFileName(legacyA))).toBe(false);
    expect(mem.objects.has(legacyB)).toBe(true);
  });

  it('a new backup of each series gets its own name: the second does not mistake the first for a finished retry', async () => {
    const at = '2025-01-03T02:00:00Z';
    // both already exist (from beforeEach): each retry returns its own manifest, never the other's
    const ma = await acts.backupDatabase({ ...request(a), at });
    const mb = await acts.backupDatabase({ ...request(b), at });
    expect([ma.file, ma.env, ma.database]).toEqual(['shop~prod~eu-main-20250103T020000Z.sql.zst', 'prod', 'eu-main']);
    expect([mb.file, mb.env, mb.database]).toEqual(['shop~prod-eu~main-20250103T020000Z.sql.zst', 'prod-eu', 'main']);
  });

  it('a retry that finds another series\' manifest under its name refuses rather than overwrite or adopt it', async () => {
    const at = '2025-01-06T02:00:00Z';
    putBackup(mem, a, at, { manifestSays: b });
    const f = await failure(acts.backupDatabase({ ...request(a), at }));
    expect(f).toMatchObject({ type: 'BackupIdentityMismatch', nonRetryable: true });
    expect(f.message).toMatch(/refusing to overwrite shop~prod~eu-main-20250106T020000Z\.sql\.zst .*names shop\/prod-eu\/main/);
  });
});

describe('pinned backups in the storage (issue 11, defect 4)', () => {
  const s = { app: 'shop', env: 'production', database: 'main' };
  const later = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const earlier = new Date(Date.now() - 86_400_000).toISOString();
  const safety: BackupPin = { reason: 'safety', by: 'restoreBackup/shop/production', until: later };

  it('backupDatabase refuses a malformed pin before anything runs', async () => {
    const f = await failure(acts.backupDatabase({ ...request(s), at: '2025-01-01T14:00:00Z', pin: { reason: 'nightly', by: 'x' } as never }));
    expect(f).toMatchObject({ type: 'BackupBadRequest', nonRetryable: true });
    expect(f.message).toMatch(/pin\.reason: must be one of "safety", "pre-update"/);
  });

  it('a retry that finds the finished backup unpinned pins it; a pinned one keeps its pin', async () => {
    const at = '2025-01-01T14:00:00Z';
    putBackup(mem, s, at, { verified: false });
    const m = await acts.backupDatabase({ ...request(s), at, pin: safety });
    expect(m.pinned).toEqual(safety);
    expect(mem.manifest(m.file).pinned).toEqual(safety);
    expect((await acts.backupDatabase({ ...request(s), at })).pinned).toEqual(safety);
  });

  it('the listing returns the pin; the prune never removes a backup whose pin holds, and removes it once the pin has lapsed', async () => {
    const held = putBackup(mem, s, '2025-01-01T14:00:00Z', { pinned: safety });
    const lapsed = putBackup(mem, s, '2025-01-02T10:00:00Z', { pinned: { reason: 'pre-update', by: 'rollingUpdate/shop/production', until: earlier } });
    const plain = putBackup(mem, s, '2025-01-03T02:00:00Z');
    const listing = await acts.listBackups(request(s));
    expect(listing.backups.map((x) => [x.file, x.pinned])).toEqual([
      [held.file, safety],
      [lapsed.file, { reason: 'pre-update', by: 'rollingUpdate/shop/production', until: earlier }],
      [plain.file, undefined],
    ]);
    const r = await acts.pruneBackups({ ...request(s), files: [held.file, lapsed.file, plain.file] });
    expect(r).toEqual({ removed: [lapsed.file, plain.file], skipped: [{ file: held.file, reason: `pinned: safety by restoreBackup/shop/production until ${later}` }] });
    expect(mem.objects.has(held.file)).toBe(true);
  });

  it('releaseBackupPin clears the pin in the manifest, idempotently; a released backup is pruned like any other', async () => {
    const held = putBackup(mem, s, '2025-01-01T14:00:00Z', { pinned: safety });
    expect(await acts.releaseBackupPin({ ...request(s), file: held.file })).toEqual({ file: held.file, found: true, released: true, pin: safety });
    expect(mem.manifest(held.file).pinned).toBeUndefined();
    expect(mem.manifest(held.file).verifiedAt).toBe('2025-01-01T14:00:00Z'); // the rest of the manifest as it was
    expect(await acts.releaseBackupPin({ ...request(s), file: held.file })).toEqual({ file: held.file, found: true, released: false });
    expect((await acts.listBackups(request(s))).backups[0].pinned).toBeUndefined();
    expect((await acts.pruneBackups({ ...request(s), files: [held.file] })).removed).toEqual([held.file]);
    expect(await acts.releaseBackupPin({ ...request(s), file: held.file })).toEqual({ file: held.file, found: false, released: false });
  });
});

describe('a retried backup re-reads the finished dump with heartbeats (issue 11, defect 6)', () => {
  it('heartbeats all along the re-read of a slow dump, never leaving the heartbeat window', async () => {
    const s = { app: 'shop', env: 'production', database: 'main' };
    const at = '2025-01-01T02:00:00Z';
    const manifest = putBackup(mem, s, at, { bytes: 12 * 64 * 1024 });
    mem.chunkDelayMs = 50; // 12 chunks: the re-read takes ~600 ms, 30x the heartbeat interval
    const env = new MockActivityEnvironment();
    const beats: { details: any }[] = [];
    env.on('heartbeat', (details) => beats.push({ details }));
    const result = await env.run(acts.backupDatabase, { ...request(s), at });
    expect(result).toEqual(manifest); // the finished backup, no new dump (the database is unreachable)
    expect(mem.reads).toEqual([manifest.file]);
    const verifying = beats.filter((b) => b.details?.phase === 'verify stored dump');
    expect(verifying.length).toBeGreaterThanOrEqual(2);
    expect(verifying.at(-1)!.details).toMatchObject({ file: manifest.file, of: manifest.sizeBytes });
    // heartbeats while the dump is being read (not only before or after it), with the progress so far:
    // before the fix the first heartbeat came after the whole re-read
    expect(verifying.some((b) => b.details.bytes > 0 && b.details.bytes < manifest.sizeBytes)).toBe(true);
  });
});
