// Tar archives built in memory with tar-stream (small files only): one file for
// PUT /containers/{id}/archive, or several for the config archive of a backup night. Long names
// are written as ustar prefix or pax headers, so there is no 100-byte limit.
import { buffer } from 'node:stream/consumers';
import { extract, pack } from 'tar-stream';

export interface TarFile {
  name: string;
  body: string | Buffer;
  /** Default 0644. */
  mode?: number;
  /** Whole seconds are kept; default the epoch. */
  mtime?: Date;
}

/** A whole archive (entries, then the end-of-archive blocks) of regular files owned by 0:0. */
export async function tarFiles(files: Iterable<TarFile>): Promise<Buffer> {
  const archive = pack();
  for (const f of files) {
    archive.entry({ name: f.name, type: 'file', mode: f.mode ?? 0o644, mtime: f.mtime ?? new Date(0), uid: 0, gid: 0 }, f.body);
  }
  archive.finalize();
  return buffer(archive);
}

export function tarSingleFile(name: string, content: string | Buffer, mode = 0o644, mtime = new Date(0)): Promise<Buffer> {
  return tarFiles([{ name, body: content, mode, mtime }]);
}

/** The regular files of a whole archive held in memory (a config archive), in archive order. */
export async function untarFiles(archive: Buffer): Promise<{ name: string; mode: number; body: Buffer }[]> {
  const reader = extract();
  const files: { name: string; mode: number; body: Buffer }[] = [];
  reader.end(archive);
  for await (const entry of reader) {
    const body = await buffer(entry);
    if (entry.header.type === 'file') files.push({ name: entry.header.name, mode: entry.header.mode ?? 0o600, body });
  }
  return files;
}
