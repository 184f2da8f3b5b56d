// Backup storage in a directory on the worker's filesystem. A write goes to `<name>.partial`
// (created exclusively, with its final mode before any byte lands), is fsynced, renamed over the
// final name, and the directory entry is fsynced: after a crash a name is either absent or complete.
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import { ByteCounter, DEFAULT_FILE_MODE, DIRECTORY_MODE, PARTIAL_SUFFIX, octalMode, partialFileName, sortByName } from '../../common/commands/storage';
import { StorageNotFound, textOrUndefined, checkListPrefix, checkObjectName, prefixFailure, storageRejected, type BackupStorage, type PutOptions, type StoredObject } from './types';

const PERMISSION = new Set(['EACCES', 'EPERM', 'EROFS']);

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code;

/** Who the worker runs as, for permission messages. */
const runningAs = (): string => (typeof process.getuid === 'function' ? ` (the worker runs as uid ${process.getuid()})` : '');

async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class DirectoryStorage implements BackupStorage {
  readonly description: string;

  constructor(private readonly dir: string) {
    this.description = `${dir} on the worker`;
  }

  async putStream(name: string, source: Readable, options: PutOptions = {}): Promise<{ sizeBytes: number }> {
    checkObjectName(name);
    const mode = options.mode ?? DEFAULT_FILE_MODE;
    octalMode(mode); // validates
    const finalPath = path.join(this.dir, name);
    const partialPath = partialFileName(finalPath);
    const counter = new ByteCounter();
    try {
      await this.ensureDirectory();
      await rm(partialPath, { force: true }); // a stale partial of a crashed attempt
      const fh = await open(partialPath, 'wx', mode);
      try {
        await fh.chmod(mode); // open's mode is masked by the umask; the caller asked for exactly this
        // flush: fsync before the stream closes the handle (a FileHandle stream must own the handle:
        // with autoClose off it keeps a reference that makes fh.close() wait forever).
        await pipeline(source, counter, fh.createWriteStream({ flush: true }), { signal: options.signal });
      } finally {
        await fh.close(); // a no-op once the stream has closed it
      }
      await rename(partialPath, finalPath);
      await fsyncDirectory(this.dir);
      return { sizeBytes: counter.bytes };
    } catch (err) {
      source.destroy(); // the producer (pg_dump, zstd) must not wait on a write that is over
      await rm(partialPath, { force: true }).catch(() => undefined);
      throw this.writeFailure(name, err);
    }
  }

  async putText(name: string, text: string, options?: PutOptions): Promise<void> {
    await this.putStream(name, Readable.from([Buffer.from(text, 'utf8')]), options);
  }

  async getStream(name: string): Promise<Readable> {
    checkObjectName(name);
    const file = path.join(this.dir, name);
    let fh: FileHandle | undefined;
    try {
      fh = await open(file, 'r');
      if (!(await fh.stat()).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOENT' });
    } catch (err) {
      await fh?.close();
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new StorageNotFound(this.description, name);
      throw this.failure(`reading ${name} from`, err);
    }
    return fh.createReadStream();
  }

  async getText(name: string): Promise<string | undefined> {
    return textOrUndefined(() => this.getStream(name));
  }

  async list(prefix: string): Promise<StoredObject[]> {
    checkListPrefix(prefix);
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT') return []; // nothing written yet
      throw this.failure('listing', err);
    }
    const names = entries.filter((e) => e.isFile() && e.name.startsWith(prefix) && !e.name.endsWith(PARTIAL_SUFFIX)).map((e) => e.name);
    const objects: StoredObject[] = [];
    for (const name of names) {
      try {
        objects.push({ name, sizeBytes: (await stat(path.join(this.dir, name))).size });
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw this.failure('listing', err); // removed meanwhile: not listed
      }
    }
    return sortByName(objects);
  }

  async remove(name: string): Promise<void> {
    checkObjectName(name);
    try {
      await rm(path.join(this.dir, name), { force: true });
    } catch (err) {
      throw this.failure(`removing ${name} from`, err);
    }
  }

  private async ensureDirectory(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: DIRECTORY_MODE });
    } catch (err) {
      const code = errno(err);
      if (code && (PERMISSION.has(code) || code === 'EEXIST' || code === 'ENOTDIR')) {
        throw storageRejected(`cannot create the storage directory ${this.dir}: ${code}${PERMISSION.has(code) ? runningAs() : ' (a file is in the way)'}`);
      }
      throw err;
    }
  }

  /** A failed write: says that the partial data is gone; permission problems are not retried. */
  private writeFailure(name: string, err: unknown): Error {
    const what = `writing ${name} to ${this.description} failed, the partial data was removed`;
    if (err instanceof ApplicationFailure) return prefixFailure(what, err);
    const code = errno(err);
    if (code && PERMISSION.has(code)) return storageRejected(`${what}: ${code}${runningAs()}`);
    return new Error(`${what}: ${(err as Error)?.message ?? String(err)}`);
  }

  private failure(what: string, err: unknown): Error {
    const code = errno(err);
    const message = `${what} ${this.description} failed: ${code ?? (err as Error)?.message ?? String(err)}`;
    return code && PERMISSION.has(code) ? storageRejected(message + runningAs()) : new Error(message);
  }
}
