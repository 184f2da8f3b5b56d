// Backup storage: pick the backend for a spec, and check a spec before anything uses it.
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { bucketNameProblem } from '../../common/commands/storage';
import type { SshPool } from '../ssh';
import { DirectoryStorage } from './directory';
import { S3Storage } from './s3';
import { SshDirectoryStorage } from './ssh-directory';
import { STORAGE_BAD_SPEC, type BackupStorage, type StorageSpec } from './types';

export * from './types';
export { DirectoryStorage } from './directory';
export { S3Storage, S3_PART_SIZE, S3_QUEUE_SIZE } from './s3';
export { SshDirectoryStorage } from './ssh-directory';

export interface StorageDeps {
  ssh: SshPool;
}

function absolutePathProblem(value: unknown, what: string): string | undefined {
  if (typeof value !== 'string' || value === '') return `${what} must be a non-empty string`;
  if (value.includes('\0')) return `${what} ${JSON.stringify(value)} contains a NUL character`;
  if (!path.posix.isAbsolute(value)) return `${what} must be an absolute path (got ${JSON.stringify(value)})`;
  if (value.split('/').includes('..')) return `${what} ${JSON.stringify(value)} must not contain ".."`;
  return undefined;
}

function directoryProblem(spec: Extract<StorageSpec, { type: 'directory' }>): string | undefined {
  const problem = absolutePathProblem(spec.path, 'storage path');
  if (problem) return problem;
  if (spec.path.split('/').filter(Boolean).length === 0) return 'storage path must not be the root directory';
  if (spec.host !== undefined && (typeof spec.host !== 'object' || spec.host === null || typeof spec.host.name !== 'string')) return 'storage host must be a host of the inventory';
  return undefined;
}

function s3Problem(spec: Extract<StorageSpec, { type: 's3' }>): string | undefined {
  const bucket = bucketNameProblem(spec.bucket);
  if (bucket) return bucket;
  if (typeof spec.prefix !== 'string') return 'prefix must be a string (\'\' for none)';
  if (spec.prefix.startsWith('/')) return `prefix ${JSON.stringify(spec.prefix)} must not start with "/"`;
  if (spec.prefix.includes('\0') || spec.prefix.split('/').includes('..')) return `prefix ${JSON.stringify(spec.prefix)} must not contain NUL or ".."`;
  if (typeof spec.region !== 'string' || !/^[a-z0-9-]{1,40}$/.test(spec.region)) return `region ${JSON.stringify(spec.region)} is not a region name (e.g. eu-central-1)`;
  if (spec.endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(spec.endpoint);
    } catch {
      return `endpoint ${JSON.stringify(spec.endpoint)} is not a URL`;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `endpoint must be an http:// or https:// URL (got ${url.protocol})`;
    if (url.username || url.password) return 'endpoint must not contain a user or password: use accessKeyIdFile and secretAccessKeyFile';
  }
  if ((spec.accessKeyIdFile === undefined) !== (spec.secretAccessKeyFile === undefined)) return 'accessKeyIdFile and secretAccessKeyFile go together: set both or neither (neither: the default AWS credential chain)';
  for (const key of ['accessKeyIdFile', 'secretAccessKeyFile'] as const) {
    if (spec[key] !== undefined) {
      const problem = absolutePathProblem(spec[key], key);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** Why `spec` cannot be used (undefined: fine). Checks its shape only; nothing is contacted. */
export function storageSpecProblem(spec: StorageSpec): string | undefined {
  if (typeof spec !== 'object' || spec === null) return 'storage must be an object';
  switch (spec.type) {
    case 'directory':
      return directoryProblem(spec);
    case 's3':
      return s3Problem(spec);
    default:
      return `storage type ${JSON.stringify((spec as { type?: unknown }).type)} is not "directory" or "s3"`;
  }
}

/**
 * The storage a spec names. A directory with a host that has `ssh` settings is reached over
 * SSH; without a host (or on a host without `ssh`, i.e. the worker's own machine) it is local.
 * A bad spec is a non-retryable StorageBadSpec.
 */
export function openStorage(spec: StorageSpec, deps: StorageDeps): BackupStorage {
  const problem = storageSpecProblem(spec);
  if (problem) throw ApplicationFailure.nonRetryable(problem, STORAGE_BAD_SPEC);
  if (spec.type === 's3') return new S3Storage(spec);
  if (spec.host?.ssh) return new SshDirectoryStorage(spec.path, spec.host, deps.ssh);
  return new DirectoryStorage(spec.path);
}
