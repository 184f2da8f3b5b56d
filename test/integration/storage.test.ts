// One behaviour suite for every backup storage backend, against the real thing: a directory on
// this machine, a directory on the test sshd's host (the same machine, reached over SSH, so the
// test can look at the files), and S3 on the local moto server (scripts/s3.sh; a bucket per run).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { StorageNotFound, openStorage, type BackupStorage, type S3StorageSpec, type StorageSpec } from '../../activities/storage';
import { SshPool } from '../../activities/ssh';
import { sshHost } from '../helpers/hosts';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(180_000);

const S3_ENDPOINT = process.env.S3_ENDPOINT ?? 'http://127.0.0.1:9000';
const REGION = 'us-east-1';
const MiB = 1024 * 1024;
const BIG_MB = 50;

const run = randomBytes(4).toString('hex');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-storage-'));
const pool = new SshPool();
const deps = { ssh: pool };

// Secret-looking credentials (moto accepts any): they must never show up in an error message.
const ACCESS_KEY_ID = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
const SECRET_ACCESS_KEY = randomBytes(30).toString('base64');
const idFile = path.join(tmp, 's3-access-key-id');
const secretFile = path.join(tmp, 's3-secret-access-key');
writeFileSync(idFile, `${ACCESS_KEY_ID}\n`, { mode: 0o600 });
writeFileSync(secretFile, `${SECRET_ACCESS_KEY}\n`, { mode: 0o600 });
const bucket = `it-storage-${run}`;
const s3Prefix = `backups/shop/prod-${run}/`;
const s3Spec: S3StorageSpec = { type: 's3', bucket, prefix: s3Prefix, region: REGION, endpoint: S3_ENDPOINT, accessKeyIdFile: idFile, secretAccessKeyFile: secretFile };
const admin = new S3Client({ region: REGION, endpoint: S3_ENDPOINT, forcePathStyle: true, credentials: { accessKeyId: 'admin', secretAccessKey: 'admin' } });

/** Every error message any test saw, checked for the credentials at the end. */
const messages: string[] = [];
async function failureOf(p: Promise<unknown>): Promise<Error> {
  const err = await rejectionOf(p);
  messages.push(err.message, String(err.stack ?? ''));
  return err;
}

/**
 * `mb` MiB of random bytes, made as read (backpressure decides the pace); its sha256 at the end.
 * Each MiB is a view into one 2 MiB random pool at a random offset: the test itself allocates
 * next to nothing, so RSS growth measures what the storage holds.
 */
function randomSource(mb: number, failAfterMb?: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  const pool = randomBytes(2 * MiB);
  async function* chunks() {
    for (let i = 0; i < mb; i++) {
      if (failAfterMb !== undefined && i === failAfterMb) throw new Error('the source broke half-way');
      const offset = randomBytes(4).readUInt32BE() % MiB;
      const chunk = pool.subarray(offset, offset + MiB);
      hash.update(chunk);
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), sha256: () => hash.digest('hex') };
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Peak RSS growth while `fn` runs (sampled every 10 ms). */
async function rssGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; growthMb: number }> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growthMb: (peak - base) / MiB };
  } finally {
    clearInterval(timer);
  }
}

interface Backend {
  label: string;
  spec: () => StorageSpec;
  /** Names in the backend that are leftovers of unfinished writes (partial files, multipart uploads). */
  leftovers: () => Promise<string[]>;
  /** Puts a stray object that looks like an unfinished write, bypassing the storage. */
  putStrayPartial: (name: string) => Promise<void>;
  /** File mode of an object (directory kinds only). */
  modeOf?: (name: string) => number;
}

const localDir = path.join(tmp, 'local', 'backups'); // not there yet: the first write creates it
const sshDir = path.join(tmp, 'remote', 'backups');

function directoryBackend(label: string, dir: string, spec: () => StorageSpec): Backend {
  const files = () => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  return {
    label,
    spec,
    leftovers: async () => files().filter((f) => f.endsWith('.partial')),
    putStrayPartial: async (name) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `${name}.partial`), 'unfinished');
    },
    modeOf: (name) => statSync(path.join(dir, name)).mode & 0o777,
  };
}

const backends: Backend[] = [
  directoryBackend('directory on the worker', localDir, () => ({ type: 'directory', path: localDir })),
  directoryBackend('directory over SSH', sshDir, () => ({ type: 'directory', path: sshDir, host: sshHost() })),
  {
    label: 'S3 (moto)',
    spec: () => s3Spec,
    leftovers: async () => ((await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key ?? '?'),
    putStrayPartial: async (name) => {
      await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `${s3Prefix}${name}.partial`, Body: 'unfinished' }));
    },
  },
];

beforeAll(async () => {
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
});

afterAll(async () => {
  await pool.closeAll();
  const listed = await admin.send(new ListObjectsV2Command({ Bucket: bucket })).catch(() => undefined);
  for (const o of listed?.Contents ?? []) await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key })).catch(() => undefined);
  await admin.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
  admin.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

describe.each(backends)('$label', (backend) => {
  let storage: BackupStorage;
  beforeAll(() => {
    storage = openStorage(backend.spec(), deps);
  });

  it(`streams ${BIG_MB} MiB in and out unchanged, with bounded memory`, async () => {
    const source = randomSource(BIG_MB);
    const put = await rssGrowth(() => storage.putStream('big.bin', source.stream));
    expect(put.result).toEqual({ sizeBytes: BIG_MB * MiB });
    const get = await rssGrowth(async () => sha256Of(await storage.getStream('big.bin')));
    expect(get.result).toEqual({ sha256: source.sha256(), bytes: BIG_MB * MiB });
    expect(await storage.list('big')).toEqual([{ name: 'big.bin', sizeBytes: BIG_MB * MiB }]);
    // Buffering the whole object would add >= 50 MiB; streaming stays far below (S3: ~3 parts of 8 MiB).
    console.log(`${backend.label}: RSS growth put ${put.growthMb.toFixed(1)} MiB, get ${get.growthMb.toFixed(1)} MiB`);
    expect(put.growthMb).toBeLessThan(100);
    expect(get.growthMb).toBeLessThan(100);
  });

  it('writes and reads small text objects; a missing one reads as undefined', async () => {
    const text = '{"sha256":"ü…"}\n\n';
    await storage.putText('m.manifest.json', text);
    expect(await storage.getText('m.manifest.json')).toBe(text);
    await storage.putText('m.manifest.json', 'replaced');
    expect(await storage.getText('m.manifest.json')).toBe('replaced');
    await storage.putText('empty', '');
    expect(await storage.getText('empty')).toBe('');
    expect(await storage.getText('no-such-manifest.json')).toBeUndefined();
  });

  it('lists by prefix, sorted by name, without unfinished writes', async () => {
    for (const name of ['p-20250103', 'p-20250101', 'q-20250101', 'p-20250102']) await storage.putText(name, name.repeat(2));
    await backend.putStrayPartial('p-20250104');
    expect(await storage.list('p-')).toEqual([
      { name: 'p-20250101', sizeBytes: 20 },
      { name: 'p-20250102', sizeBytes: 20 },
      { name: 'p-20250103', sizeBytes: 20 },
    ]);
    expect((await storage.list('')).map((o) => o.name)).toEqual(expect.arrayContaining(['p-20250101', 'q-20250101']));
    expect(await storage.list('zzz')).toEqual([]);
  });

  it('removes objects; removing a missing one is fine', async () => {
    await storage.putText('r-1', 'x');
    await storage.remove('r-1');
    expect(await storage.list('r-')).toEqual([]);
    expect(await storage.getText('r-1')).toBeUndefined();
    await storage.remove('r-1');
    await storage.remove('r-never-existed');
  });

  it('a source that fails half-way leaves nothing behind, and the error says so', async () => {
    const before = await backend.leftovers();
    const err = await failureOf(storage.putStream('broken.bin', randomSource(30, 20).stream));
    expect(err.message).toContain('the source broke half-way');
    expect(err.message).toMatch(/partial data was removed|nothing was stored/);
    expect(await storage.list('broken')).toEqual([]);
    expect(await backend.leftovers()).toEqual(before);
    expect(before.filter((l) => l.includes('broken'))).toEqual([]);
  });

  it('an aborted write leaves nothing behind', async () => {
    const controller = new AbortController();
    const source = randomSource(40);
    let seen = 0;
    source.stream.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen >= 12 * MiB) controller.abort();
    });
    const err = await failureOf(storage.putStream('aborted.bin', source.stream, { signal: controller.signal }));
    expect(err.message).toMatch(/abort/i);
    expect(await storage.list('aborted')).toEqual([]);
    expect((await backend.leftovers()).filter((l) => l.includes('aborted'))).toEqual([]);
  });

  it('a missing object is StorageNotFound', async () => {
    const err = await failureOf(storage.getStream('missing.bin'));
    expect(err).toBeInstanceOf(StorageNotFound);
    expect(err.message).toContain('missing.bin');
  });

  it('refuses names that are not plain file names (non-retryable StorageBadName)', async () => {
    for (const call of [() => storage.putText('../escape', 'x'), () => storage.getStream('a/b'), () => storage.remove(''), () => storage.getText('x\0y'), () => storage.list('a/')]) {
      const err = await failureOf(call());
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).type).toBe('StorageBadName');
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
    }
  });

  if (backend.modeOf) {
    const modeOf = backend.modeOf;
    it('honours the file mode (default 0640)', async () => {
      await storage.putText('secret.bin', 'key material', { mode: 0o600 });
      expect(modeOf('secret.bin')).toBe(0o600);
      await storage.putText('plain.bin', 'x');
      expect(modeOf('plain.bin')).toBe(0o640);
      await storage.putText('plain.bin', 'x', { mode: 0o644 }); // an overwrite takes the new mode
      expect(modeOf('plain.bin')).toBe(0o644);
    });

    it('a directory that cannot be created is a clear non-retryable error', async () => {
      const blocker = path.join(tmp, `blocker-${backend.label.replace(/\W+/g, '-')}`);
      writeFileSync(blocker, 'a file where a directory should be');
      const spec = { ...(backend.spec() as Extract<StorageSpec, { type: 'directory' }>), path: path.join(blocker, 'backups') };
      const blocked = openStorage(spec, deps);
      // a big stream too: the sender must not wait forever on a receiver that is gone
      for (const call of [() => blocked.putText('x', 'y'), () => blocked.putStream('big', randomSource(30).stream)]) {
        const err = await failureOf(call());
        expect(err).toBeInstanceOf(ApplicationFailure);
        expect((err as ApplicationFailure).type).toBe('StorageRejected');
        expect((err as ApplicationFailure).nonRetryable).toBe(true);
        expect(err.message).toContain(blocker);
      }
    });
  }
});

describe('SshPool.exec', () => {
  it('streams stdin to a remote command and its stdout back', async () => {
    const proc = await pool.exec(sshHost().ssh!, ['sh', '-c', 'cat; echo done >&2'], { stdin: Readable.from([Buffer.from('a'), Buffer.from('b')]) });
    const stderr: Buffer[] = [];
    proc.stderr.on('data', (c: Buffer) => stderr.push(c));
    const chunks: Buffer[] = [];
    for await (const c of proc.stdout) chunks.push(c as Buffer);
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    expect(Buffer.concat(chunks).toString()).toBe('ab');
    expect(Buffer.concat(stderr).toString()).toBe('done\n');
  });

  it('rejects exit when the stdin stream fails (the command only saw EOF)', async () => {
    async function* failing() {
      yield Buffer.from('partial');
      throw new Error('stdin broke');
    }
    const proc = await pool.exec(sshHost().ssh!, ['cat'], { stdin: Readable.from(failing()) });
    proc.stdout.resume();
    proc.stderr.resume();
    await expect(proc.exit).rejects.toThrow('stdin broke');
  });
});

describe('S3 failures', () => {
  it('a missing bucket is non-retryable, with a message that says what to do', async () => {
    const storage = openStorage({ ...s3Spec, bucket: `it-storage-missing-${run}` }, deps);
    for (const call of [() => storage.list(''), () => storage.putStream('x', randomSource(20).stream), () => storage.putText('x', 'y'), () => storage.getStream('x'), () => storage.getText('x'), () => storage.remove('x')]) {
      const err = await failureOf(call());
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).type).toBe('StorageRejected');
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
      expect(err.message).toMatch(/the bucket it-storage-missing-\w+ does not exist at http:\/\/127\.0\.0\.1:\d+; create it/);
    }
  });

  it('an unreadable credentials file is non-retryable and names the file', async () => {
    const storage = openStorage({ ...s3Spec, accessKeyIdFile: path.join(tmp, 'no-such-key-file') }, deps);
    const err = await failureOf(storage.list(''));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect(err.message).toContain('no-such-key-file');
  });

  it('a network error stays a retryable plain Error', async () => {
    const storage = openStorage({ ...s3Spec, endpoint: 'http://127.0.0.1:1' }, deps);
    const err = await failureOf(storage.list(''));
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect(err.message).toMatch(/ECONNREFUSED/);
    const put = await failureOf(storage.putStream('x', randomSource(10).stream));
    expect(put).not.toBeInstanceOf(ApplicationFailure);
  });

  it('never puts a credential in an error message', () => {
    expect(messages.length).toBeGreaterThan(20);
    for (const m of messages) {
      expect(m).not.toContain(ACCESS_KEY_ID);
      expect(m).not.toContain(SECRET_ACCESS_KEY);
    }
  });
});
