// Backup storage in an S3-compatible bucket. Uploads stream through lib-storage's multipart
// Upload (8 MiB parts, 2 in flight: at most ~3 parts in memory, whatever the backup's size); an
// object appears only when CompleteMultipartUpload (or the single PutObject of a small one)
// succeeds, and a failed or aborted upload is aborted on the server, so it leaves nothing behind.
// Credentials are read from files when the storage is first used and scrubbed from every message.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ApplicationFailure } from '@temporalio/common';
import { ByteCounter, PARTIAL_SUFFIX, s3Key, sortByName } from '../../common/commands/storage';
import { StorageNotFound, textOrUndefined, checkListPrefix, checkObjectName, prefixFailure, storageRejected, type BackupStorage, type PutOptions, type S3StorageSpec, type StoredObject } from './types';

export const S3_PART_SIZE = 8 * 1024 * 1024;
export const S3_QUEUE_SIZE = 2;

/** How long a failed upload waits for lib-storage to finish aborting before aborting again itself. */
const ABORT_WAIT_MS = 60_000;

// Error names that mean the credentials or the bucket policy refuse us: retrying does not help.
const ACCESS_DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AllAccessDisabled', 'Forbidden', 'InvalidToken', 'ExpiredToken', 'AccountProblem', 'InvalidSecurity']);
const WRONG_REGION = new Set(['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException']);

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** `http://user:pw@host:9000/` → `http://host:9000` (a description never carries userinfo). */
function endpointForMessages(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '(invalid endpoint)';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class S3Storage implements BackupStorage {
  readonly description: string;
  private client?: S3Client;
  /** Credential values read so far: removed from every message this storage produces. */
  private secrets: string[] = [];

  constructor(private readonly spec: S3StorageSpec) {
    this.description = `s3://${spec.bucket}/${spec.prefix}${spec.endpoint ? ` at ${endpointForMessages(spec.endpoint)}` : ''}`;
  }

  async putStream(name: string, source: Readable, options: PutOptions = {}): Promise<{ sizeBytes: number }> {
    checkObjectName(name);
    const key = s3Key(this.spec.prefix, name);
    const client = this.s3();
    const counter = new ByteCounter();
    // The signal tears the source down; lib-storage then sees the error and aborts the upload.
    const feeding = pipeline(source, counter, { signal: options.signal });
    const upload = new Upload({ client, params: { Bucket: this.spec.bucket, Key: key, Body: counter }, partSize: S3_PART_SIZE, queueSize: S3_QUEUE_SIZE, leavePartsOnError: false });
    const done = upload.done();
    feeding.catch(() => undefined);
    done.catch(() => undefined);
    try {
      await Promise.all([done, feeding]);
      return { sizeBytes: counter.bytes };
    } catch (err) {
      source.destroy();
      counter.destroy();
      await withTimeout(done, ABORT_WAIT_MS).catch(() => undefined); // lib-storage aborts the multipart upload here
      const aborted = await this.abortMultipart(key, upload.uploadId);
      throw this.failure(`writing ${name} to`, err, aborted ? 'nothing was stored' : `the multipart upload ${upload.uploadId} could not be aborted`);
    }
  }

  async putText(name: string, text: string, options?: PutOptions): Promise<void> {
    await this.putStream(name, Readable.from([Buffer.from(text, 'utf8')]), options);
  }

  async getStream(name: string): Promise<Readable> {
    checkObjectName(name);
    try {
      const r = await this.s3().send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: s3Key(this.spec.prefix, name) }));
      if (!(r.Body instanceof Readable)) throw new Error('the response body is not a stream');
      return r.Body;
    } catch (err) {
      if (this.isMissingObject(err)) throw new StorageNotFound(this.description, name);
      throw this.failure(`reading ${name} from`, err);
    }
  }

  async getText(name: string): Promise<string | undefined> {
    return textOrUndefined(() => this.getStream(name));
  }

  async list(prefix: string): Promise<StoredObject[]> {
    checkListPrefix(prefix);
    const objects: StoredObject[] = [];
    let token: string | undefined;
    try {
      do {
        const r = await this.s3().send(
          // Delimiter: keys further down ("sub/x") are not objects of this storage, as in a directory
          new ListObjectsV2Command({ Bucket: this.spec.bucket, Prefix: s3Key(this.spec.prefix, prefix), Delimiter: '/', ContinuationToken: token }),
        );
        for (const o of r.Contents ?? []) {
          const name = (o.Key ?? '').slice(this.spec.prefix.length);
          if (name && !name.includes('/') && !name.endsWith(PARTIAL_SUFFIX)) objects.push({ name, sizeBytes: o.Size ?? 0 });
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.failure('listing', err);
    }
    return sortByName(objects);
  }

  async remove(name: string): Promise<void> {
    checkObjectName(name);
    try {
      await this.s3().send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key: s3Key(this.spec.prefix, name) }));
    } catch (err) {
      if (this.isMissingObject(err)) return;
      throw this.failure(`removing ${name} from`, err);
    }
  }

  /** The client, made on first use (credentials are read by its provider, not here). */
  private s3(): S3Client {
    if (this.client) return this.client;
    const { spec } = this;
    const config: S3ClientConfig = {
      region: spec.region,
      endpoint: spec.endpoint,
      // S3-compatible servers usually serve buckets by path, not as <bucket>.<host>
      forcePathStyle: spec.forcePathStyle ?? spec.endpoint !== undefined,
      requestHandler: { connectionTimeout: 10_000 },
    };
    // Not every S3-compatible server accepts the CRC32 trailers AWS SDKs now add to every upload.
    if (spec.endpoint) Object.assign(config, { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    if (spec.accessKeyIdFile && spec.secretAccessKeyFile) config.credentials = () => this.readCredentials(spec.accessKeyIdFile!, spec.secretAccessKeyFile!);
    this.client = new S3Client(config);
    return this.client;
  }

  private async readCredentials(idFile: string, secretFile: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
    const [accessKeyId, secretAccessKey] = await Promise.all([readCredentialFile(idFile, 'access key id'), readCredentialFile(secretFile, 'secret access key')]);
    this.secrets = [accessKeyId, secretAccessKey];
    return { accessKeyId, secretAccessKey };
  }

  /** Aborts a multipart upload (again): true when nothing is left on the server. */
  private async abortMultipart(key: string, uploadId: string | undefined): Promise<boolean> {
    if (!uploadId) return true;
    try {
      await this.s3().send(new AbortMultipartUploadCommand({ Bucket: this.spec.bucket, Key: key, UploadId: uploadId }));
      return true;
    } catch (err) {
      return (err as SdkError).name === 'NoSuchUpload'; // already aborted by lib-storage
    }
  }

  private isMissingObject(err: unknown): boolean {
    const e = err as SdkError;
    return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || (e?.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket');
  }

  private scrub(text: string): string {
    return this.secrets.filter((s) => s.length >= 4).reduce((t, s) => t.split(s).join('***'), text);
  }

  /** A failed call: missing bucket, access denied, wrong region → non-retryable; anything else retries. */
  private failure(what: string, err: unknown, outcome?: string): Error {
    const head = `${what} ${this.description} failed${outcome ? ` (${outcome})` : ''}`;
    if (err instanceof ApplicationFailure) {
      const f = prefixFailure(head, err);
      f.message = this.scrub(f.message);
      return f;
    }
    const e = (err ?? {}) as SdkError;
    const name = e.name ?? '';
    const status = e.$metadata?.httpStatusCode;
    const { spec } = this;
    const credentials = spec.accessKeyIdFile ? `the credentials in ${spec.accessKeyIdFile} and ${spec.secretAccessKeyFile}` : 'the credentials of the default AWS chain';
    if (name === 'NoSuchBucket') return storageRejected(`${head}: the bucket ${spec.bucket} does not exist${spec.endpoint ? ` at ${endpointForMessages(spec.endpoint)}` : ''}; create it or fix the bucket name in the inventory`);
    if (name === 'InvalidBucketName') return storageRejected(`${head}: ${JSON.stringify(spec.bucket)} is not a valid bucket name`);
    if (ACCESS_DENIED.has(name) || status === 403) return storageRejected(this.scrub(`${head}: access denied (${name || status}); check ${credentials} and the bucket's policy`));
    if (WRONG_REGION.has(name) || status === 301) return storageRejected(`${head}: the bucket is not in region ${spec.region} (${name || status}); fix the region in the inventory`);
    if (name === 'CredentialsProviderError') return storageRejected(`${head}: no S3 credentials found; set accessKeyIdFile and secretAccessKeyFile in the inventory`);
    const detail = `${name && name !== 'Error' ? `${name}: ` : ''}${e.message ?? String(err)}`;
    return new Error(this.scrub(`${head}: ${detail}`));
  }
}

/** One credential value from a file (trailing newline and spaces removed); never its content in an error. */
async function readCredentialFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw storageRejected(`cannot read the S3 ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'read error'}`);
  }
  const value = text.trim();
  if (!value) throw storageRejected(`the S3 ${what} file ${file} is empty`);
  return value;
}
