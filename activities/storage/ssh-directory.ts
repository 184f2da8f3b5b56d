// Backup storage in a directory on a host, over the host's one shared SSH connection. The same
// semantics as DirectoryStorage: bytes stream into `<name>.partial` with SSH flow control (a
// slow disk slows the sender; nothing is buffered here), and only an explicit second command
// checks the size, sets the mode, syncs and renames. A dropped connection looks like EOF to the
// remote `cat`, so the write command itself never publishes anything.
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import { TailBuffer } from '../../common/commands/backup';
import {
  ByteCounter,
  DEFAULT_FILE_MODE,
  REMOTE_NOT_FOUND,
  octalMode,
  parseRemoteListing,
  partialFileName,
  readStreamText,
  remoteCommitArgv,
  remoteExistsArgv,
  remoteListArgv,
  remoteReadArgv,
  remoteRemoveArgv,
  remoteWriteArgv,
} from '../../common/commands/storage';
import type { HostSpec, SshSpec } from '../../common/types';
import type { RemoteProcess, SshPool } from '../ssh';
import { STORAGE_BAD_SPEC, StorageNotFound, checkListPrefix, checkObjectName, prefixFailure, storageRejected, type BackupStorage, type PutOptions, type StoredObject } from './types';

// Remote stderr that no retry fixes.
const PERMANENT = /permission denied|read-only file system|operation not permitted|not a directory/i;

/** How long a failed write waits for the remote `cat` to stop before removing its partial. */
const EXIT_WAIT_MS = 10_000;

const lastLines = (text: string, n = 5): string => text.split(/\r?\n/).filter((l) => l.trim()).slice(-n).join('\n');

const exitText = (r: { code: number | null; signal: string | null }): string =>
  r.code !== null ? `exit code ${r.code}` : r.signal ? `signal ${r.signal}` : 'the SSH connection was lost';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Collects a remote process's stderr (tail only: it is for error messages). */
function stderrTail(proc: RemoteProcess): TailBuffer {
  const tail = new TailBuffer(4096);
  proc.stderr.on('data', (c: Buffer) => tail.write(c));
  return tail;
}

/** Passes the remote stdout on, and fails the stream at its end when the command did not exit 0. */
class ExitChecked extends Transform {
  constructor(private readonly exit: Promise<{ code: number | null; signal: string | null }>, private readonly onFailure: (r: { code: number | null; signal: string | null }) => Error) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    this.exit.then((r) => done(r.code === 0 ? null : this.onFailure(r)), done);
  }
}

export class SshDirectoryStorage implements BackupStorage {
  readonly description: string;
  private readonly ssh: SshSpec;

  constructor(private readonly dir: string, host: HostSpec, private readonly pool: SshPool) {
    if (!host.ssh) throw ApplicationFailure.nonRetryable(`host ${host.name} has no ssh settings: directory storage on it cannot be reached`, STORAGE_BAD_SPEC);
    this.ssh = host.ssh;
    this.description = `${dir} on ${host.name}`;
  }

  async putStream(name: string, source: Readable, options: PutOptions = {}): Promise<{ sizeBytes: number }> {
    checkObjectName(name);
    const mode = options.mode ?? DEFAULT_FILE_MODE;
    octalMode(mode); // validates before anything starts
    const finalPath = path.posix.join(this.dir, name);
    const partialPath = partialFileName(finalPath);
    const what = `writing ${name} to ${this.description}`;
    let proc: RemoteProcess | undefined;
    try {
      const remote = (proc = await this.pool.exec(this.ssh, remoteWriteArgv(this.dir, partialPath)));
      const stderr = stderrTail(remote);
      remote.stdout.resume();
      const counter = new ByteCounter();
      const sent = pipeline(source, counter, remote.stdin, { signal: options.signal });
      // The remote side failing (mkdir, disk full) must end the wait even though the sender is stuck on a full window.
      const exited = remote.exit.then((r) => {
        if (r.code !== 0) throw this.remoteFailure('', r, stderr.text());
      });
      sent.catch(() => undefined);
      exited.catch(() => undefined);
      await Promise.all([sent, exited]);
      await this.check(remoteCommitArgv(this.dir, partialPath, finalPath, counter.bytes, mode), 'committing');
      return { sizeBytes: counter.bytes };
    } catch (err) {
      source.destroy(); // the producer must not wait on a write that is over
      if (!proc) throw this.wrap(`${what} failed, nothing was written`, err); // the command never started
      proc.close();
      await withTimeout(proc.exit, EXIT_WAIT_MS); // the remote cat has stopped writing the partial
      const removed = await this.check(remoteRemoveArgv(partialPath), 'removing the partial').then(() => true, () => false);
      throw this.wrap(`${what} failed, ${removed ? 'the partial data was removed' : `the partial file ${partialPath} could not be removed`}`, err);
    }
  }

  async putText(name: string, text: string, options?: PutOptions): Promise<void> {
    await this.putStream(name, Readable.from([Buffer.from(text, 'utf8')]), options);
  }

  async getStream(name: string): Promise<Readable> {
    checkObjectName(name);
    const file = path.posix.join(this.dir, name);
    const found = await this.collect(remoteExistsArgv(file));
    if (found.exit.code === REMOTE_NOT_FOUND) throw new StorageNotFound(this.description, name);
    if (found.exit.code !== 0) throw this.remoteFailure(`reading ${name} from`, found.exit, found.stderr);
    const proc = await this.pool.exec(this.ssh, remoteReadArgv(file));
    const stderr = stderrTail(proc);
    const out = new ExitChecked(proc.exit, (r) =>
      r.code === REMOTE_NOT_FOUND ? new StorageNotFound(this.description, name) : this.remoteFailure(`reading ${name} from`, r, stderr.text()),
    );
    // A reader that stops early destroys `out`; the pipeline then closes the channel.
    pipeline(proc.stdout, out).catch(() => proc.close());
    return out;
  }

  async getText(name: string): Promise<string | undefined> {
    checkObjectName(name);
    const r = await this.collect(remoteReadArgv(path.posix.join(this.dir, name)));
    if (r.exit.code === REMOTE_NOT_FOUND) return undefined;
    if (r.exit.code !== 0) throw this.remoteFailure(`reading ${name} from`, r.exit, r.stderr);
    return r.stdout;
  }

  async list(prefix: string): Promise<StoredObject[]> {
    checkListPrefix(prefix);
    const r = await this.collect(remoteListArgv(this.dir));
    if (r.exit.code !== 0) throw this.remoteFailure('listing', r.exit, r.stderr);
    return parseRemoteListing(r.stdout, prefix);
  }

  async remove(name: string): Promise<void> {
    checkObjectName(name);
    await this.check(remoteRemoveArgv(path.posix.join(this.dir, name)), `removing ${name} from`);
  }

  /** Runs argv to its end; stdout as text (bounded), the stderr tail, the exit. */
  private async collect(argv: string[]): Promise<{ stdout: string; stderr: string; exit: { code: number | null; signal: string | null } }> {
    const proc = await this.pool.exec(this.ssh, argv);
    proc.stdin.end(); // these commands read no input
    const stderr = stderrTail(proc);
    const stdout = await readStreamText(proc.stdout).catch((err) => {
      proc.close();
      throw err;
    });
    return { stdout, stderr: stderr.text(), exit: await proc.exit };
  }

  /** Runs argv; anything but exit 0 is a failure naming `what`. */
  private async check(argv: string[], what: string): Promise<void> {
    const r = await this.collect(argv);
    if (r.exit.code !== 0) throw this.remoteFailure(what, r.exit, r.stderr);
  }

  private remoteFailure(what: string, exit: { code: number | null; signal: string | null }, stderr: string): Error {
    const detail = lastLines(stderr);
    const message = `${what ? `${what} ${this.description}: ` : ''}the remote command failed (${exitText(exit)})${detail ? `: ${detail}` : ''}`;
    return PERMANENT.test(stderr) ? storageRejected(message) : new Error(message);
  }

  private wrap(what: string, err: unknown): Error {
    if (err instanceof ApplicationFailure) return prefixFailure(what, err);
    return new Error(`${what}: ${(err as Error)?.message ?? String(err)}`);
  }
}
