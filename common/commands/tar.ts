// ustar archives built in memory (small files only): one file for PUT /containers/{id}/archive,
// or several for the config archive of a backup night.

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

export function tarSingleFile(name: string, content: string | Buffer, mode = 0o644, mtimeSeconds = 0): Buffer {
  return Buffer.concat([tarEntry(name, content, mode, mtimeSeconds), TAR_END]);
}

/** Two zero blocks: the end of an archive. */
export const TAR_END = Buffer.alloc(1024, 0);

/** One regular-file entry (header, content, padding to 512); concatenate entries, then TAR_END. */
export function tarEntry(name: string, content: string | Buffer, mode = 0o644, mtimeSeconds = 0): Buffer {
  const body = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write(octal(mode, 8), 100, 8, 'ascii');
  header.write(octal(0, 8), 108, 8, 'ascii'); // uid
  header.write(octal(0, 8), 116, 8, 'ascii'); // gid
  header.write(octal(body.length, 12), 124, 12, 'ascii');
  header.write(octal(mtimeSeconds, 12), 136, 12, 'ascii');
  header.fill(' ', 148, 156); // checksum is computed with this field as spaces
  header.write('0', 156, 1, 'ascii'); // regular file
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512, 0);
  return Buffer.concat([header, body, padding]);
}
