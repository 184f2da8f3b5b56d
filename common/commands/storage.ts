// Backup storage: object-name rules shared by every backend, the argv of each remote command that
// directory storage over SSH runs (quoted once by SshPool), the parser of its listing, and a byte
// counter for streams. Pure: no I/O here.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { PARTIAL_SUFFIX, partialFileName } from './backup';

export { PARTIAL_SUFFIX, partialFileName };

/** Longest object name: directory backends append `.partial`, and file names stop at 255 bytes. */
export const MAX_OBJECT_NAME_BYTES = 200;

/** Why `name` cannot name a stored object (undefined: fine). The same rules for every backend. */
export function objectNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'an object name must be a non-empty string';
  const shown = JSON.stringify(name);
  if (name.includes('\0')) return `object name ${shown} contains a NUL character`;
  if (name.includes('/')) return `object name ${shown} contains "/" (a plain file name is expected)`;
  if (name.includes('..') || name === '.') return `object name ${shown} contains ".." or is "."`;
  if (name.endsWith(PARTIAL_SUFFIX)) return `object name ${shown} ends with ${PARTIAL_SUFFIX}, which marks unfinished writes`;
  if (Buffer.byteLength(name) > MAX_OBJECT_NAME_BYTES) return `object name ${shown} is longer than ${MAX_OBJECT_NAME_BYTES} bytes`;
  return undefined;
}

/** Why `prefix` cannot select objects in `list` ('' lists everything). */
export function listPrefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== 'string') return 'a list prefix must be a string';
  if (prefix.includes('\0') || prefix.includes('/')) return `list prefix ${JSON.stringify(prefix)} contains "/" or NUL`;
  return undefined;
}

/** `0o640` → `'640'` for chmod; throws on anything that is not a permission mode. */
export function octalMode(mode: number): string {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new Error(`file mode must be an integer from 0 to 0o777 (got ${mode})`);
  return mode.toString(8).padStart(3, '0');
}

export const DEFAULT_FILE_MODE = 0o640;
export const DIRECTORY_MODE = 0o750;

// ---- directory storage over SSH: one argv per remote command ----

/** Remote exit code meaning "the object does not exist". */
export const REMOTE_NOT_FOUND = 3;

/**
 * Starts a write: creates the directory (0750), replaces a stale partial, and copies stdin into a
 * fresh partial file (noclobber, umask 077: mode 0600 until the commit sets the final mode, so
 * secrets are never readable by others even half-written). It never renames: a dropped
 * connection ends stdin like a finished upload would, so only `remoteCommitArgv` publishes.
 */
export function remoteWriteArgv(dir: string, partialPath: string): string[] {
  const script = '(umask 027 && mkdir -p -- "$1") && umask 077 && rm -f -- "$2" && set -C && exec cat > "$2"';
  return ['sh', '-c', script, 'sh', dir, partialPath];
}

/**
 * Publishes a partial: checks its size against the bytes sent, sets the mode, flushes it, renames
 * it over the final name and flushes the directory entry.
 */
export function remoteCommitArgv(dir: string, partialPath: string, finalPath: string, sizeBytes: number, mode: number): string[] {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new Error(`invalid size ${sizeBytes}`);
  const script = [
    'set -e',
    'size=$(stat -c %s -- "$2")',
    '[ "$size" = "$4" ] || { echo "the partial file has $size bytes but $4 were sent" >&2; exit 1; }',
    'chmod "$5" -- "$2"',
    'sync -- "$2"',
    'mv -f -- "$2" "$3"',
    'sync -- "$1"',
  ].join('; ');
  return ['sh', '-c', script, 'sh', dir, partialPath, finalPath, String(sizeBytes), octalMode(mode)];
}

/** Removes a file; a missing one is fine. */
export const remoteRemoveArgv = (path: string): string[] => ['rm', '-f', '--', path];

/** Exit REMOTE_NOT_FOUND when `path` is not a regular file; otherwise its bytes on stdout. */
export function remoteReadArgv(path: string): string[] {
  return ['sh', '-c', `[ -f "$1" ] || exit ${REMOTE_NOT_FOUND}; exec cat -- "$1"`, 'sh', path];
}

/** Exit 0 when `path` is a regular file, REMOTE_NOT_FOUND when it is not. */
export function remoteExistsArgv(path: string): string[] {
  return ['sh', '-c', `[ -f "$1" ] || exit ${REMOTE_NOT_FOUND}`, 'sh', path];
}

/**
 * Regular files directly in `dir` as `<size> <name>\0` (NUL-terminated: any file name parses back);
 * a missing directory lists nothing. Filtering by prefix happens in `parseRemoteListing`, so no
 * name is ever a glob.
 */
export function remoteListArgv(dir: string): string[] {
  const script = `[ -e "$1" ] || exit 0; exec find "$1" -mindepth 1 -maxdepth 1 -type f -printf '%s %f\\0'`;
  return ['sh', '-c', script, 'sh', dir];
}

/** Parses `remoteListArgv` output: the finished objects starting with `prefix`, sorted by name. */
export function parseRemoteListing(output: string, prefix: string): { name: string; sizeBytes: number }[] {
  const objects: { name: string; sizeBytes: number }[] = [];
  for (const record of output.split('\0')) {
    if (record === '') continue;
    const m = /^(\d+) (.+)$/s.exec(record);
    if (!m) throw new Error(`unexpected file listing record ${JSON.stringify(record.slice(0, 100))}`);
    const name = m[2];
    if (name.startsWith(prefix) && !name.endsWith(PARTIAL_SUFFIX)) objects.push({ name, sizeBytes: Number(m[1]) });
  }
  return sortByName(objects);
}

/** Sorted by name in code-unit order (the same on every backend, whatever the server returned). */
export function sortByName<T extends { name: string }>(objects: T[]): T[] {
  return objects.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// ---- S3 ----

/** Why `bucket` is not a valid S3 bucket name (the general-purpose bucket rules). */
export function bucketNameProblem(bucket: unknown): string | undefined {
  if (typeof bucket !== 'string') return 'bucket must be a string';
  const shown = JSON.stringify(bucket);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return `bucket ${shown} is not a valid S3 bucket name (3 to 63 lower-case letters, digits, "." and "-", starting and ending with a letter or digit)`;
  if (bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return `bucket ${shown} is not a valid S3 bucket name (no "..", not an IP address)`;
  return undefined;
}

/** The key of `name` under `prefix`. */
export const s3Key = (prefix: string, name: string): string => prefix + name;

// ---- streams ----

/** Counts the bytes passing through (the size of what was stored, whatever the backend reports). */
export class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/** The whole stream as UTF-8 text; rejects beyond `maxBytes` (small objects only, such as manifests). */
export async function readStreamText(stream: Readable, maxBytes = 16 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    size += buf.length;
    if (size > maxBytes) {
      stream.destroy();
      throw new Error(`object is larger than ${maxBytes} bytes; read it as a stream`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}
