// Where backups live: one interface for a directory (on the worker or on a host over SSH) and for
// S3-compatible object storage. Writes are atomic by name: an object is visible under its final
// name only once complete, so a crash never leaves something that looks like a finished backup.
import type { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { listPrefixProblem, objectNameProblem, readStreamText } from '../../common/commands/storage';

// The specs are plain data shared with workflows and the plan: defined in common/types.ts.
export type { DirectoryStorageSpec, S3StorageSpec, StorageSpec } from '../../common/types';

export interface StoredObject {
  name: string;
  sizeBytes: number;
}

export interface PutOptions {
  /** File mode for directory storage (0o600 for archives that hold secrets); ignored by S3. */
  mode?: number;
  /** Aborts the write; whatever was written is removed. */
  signal?: AbortSignal;
}

export interface BackupStorage {
  /** Where this is, for messages and the manifest (never a secret): `/srv/backups on db1`, `s3://b/p`. */
  readonly description: string;
  /**
   * Streams `source` into `name` (a plain file name, no slashes). Nothing appears under `name`
   * until every byte is stored and flushed; on any failure the partial data is removed and the
   * error says so. Overwrites an existing object of the same name.
   */
  putStream(name: string, source: Readable, options?: PutOptions): Promise<{ sizeBytes: number }>;
  /** A small text object (a manifest), written with the same atomicity. */
  putText(name: string, text: string, options?: PutOptions): Promise<void>;
  /** A stream of the object; a missing object rejects with StorageNotFound. */
  getStream(name: string): Promise<Readable>;
  /** The text of a small object, or undefined when it does not exist. */
  getText(name: string): Promise<string | undefined>;
  /** Objects whose names start with `prefix`, sorted by name; partial writes are not listed. */
  list(prefix: string): Promise<StoredObject[]>;
  /** Removes an object; removing a missing object is not an error. */
  remove(name: string): Promise<void>;
}

/** The object asked for does not exist (a non-retryable condition for callers). */
export class StorageNotFound extends Error {
  constructor(readonly storage: string, readonly objectName: string) {
    super(`${objectName} not found in ${storage}`);
    this.name = 'StorageNotFound';
  }
}

/** Failure types callers can match on (ApplicationFailure.type; StorageNotFound is the class above). */
export const STORAGE_BAD_NAME = 'StorageBadName';
/** The storage refuses for a reason no retry fixes: permission, missing bucket, bad credentials. */
export const STORAGE_REJECTED = 'StorageRejected';
export const STORAGE_BAD_SPEC = 'StorageBadSpec';

/** Throws a non-retryable StorageBadName when `name` is not a plain object name. */
export function checkObjectName(name: string): void {
  const problem = objectNameProblem(name);
  if (problem) throw ApplicationFailure.nonRetryable(problem, STORAGE_BAD_NAME);
}

/** Throws a non-retryable StorageBadName when `prefix` cannot select objects. */
export function checkListPrefix(prefix: string): void {
  const problem = listPrefixProblem(prefix);
  if (problem) throw ApplicationFailure.nonRetryable(problem, STORAGE_BAD_NAME);
}

export function storageRejected(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, STORAGE_REJECTED);
}

/** The same failure (type, retryability) with `message` in front of its own. */
export function prefixFailure(message: string, err: ApplicationFailure): ApplicationFailure {
  return ApplicationFailure.create({ message: `${message}: ${err.message}`, type: err.type ?? undefined, nonRetryable: err.nonRetryable ?? undefined });
}

/** getText for backends whose getStream rejects a missing object with StorageNotFound. */
export async function textOrUndefined(open: () => Promise<Readable>): Promise<string | undefined> {
  try {
    return await readStreamText(await open());
  } catch (err) {
    if (err instanceof StorageNotFound) return undefined;
    throw err;
  }
}
