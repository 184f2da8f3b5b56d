import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DockerDemux,
  TailBuffer,
  backupFileName,
  backupSeriesPrefixes,
  backupTimestamp,
  buildManifest,
  listTablesScript,
  manifestFileName,
  manifestIdentityProblem,
  manifestProblems,
  parseBackupFileName,
  parseListTablesOutput,
  parseManifest,
  parseTableChecksumsOutput,
  partialFileName,
  psqlQueryArgv,
  serializeManifest,
  tableChecksumsScript,
  zstdCompressArgv,
  zstdDecompressArgv,
} from '../../common/commands/backup';

const parts = { app: 'shop', env: 'production', database: 'shop' };

describe('backup file names', () => {
  it('names a backup by app, env, database and UTC time, sortable by time', () => {
    expect(backupTimestamp('2025-01-02T03:04:05.678Z')).toBe('20250102T030405Z');
    expect(backupTimestamp('2025-01-02T04:04:05+01:00')).toBe('20250102T030405Z');
    const name = backupFileName(parts, '2025-01-02T03:04:05Z');
    expect(name).toBe('shop-production-shop-20250102T030405Z.sql.zst');
    expect(manifestFileName(name)).toBe('shop-production-shop-20250102T030405Z.manifest.json');
    expect(partialFileName(name)).toBe('shop-production-shop-20250102T030405Z.sql.zst.partial');
    const times = ['2025-12-31T23:59:59Z', '2025-01-02T03:04:05Z', '2026-01-01T00:00:00Z', '2025-02-01T00:00:00Z'];
    const names = times.map((t) => backupFileName(parts, t));
    expect([...names].sort()).toEqual([...times].sort().map((t) => backupFileName(parts, t)));
  });

  it('parses its own names back, and nothing else', () => {
    const name = backupFileName(parts, '2025-01-02T03:04:05Z');
    expect(parseBackupFileName(name, parts)).toEqual({ createdAt: '2025-01-02T03:04:05Z' });
    expect(parseBackupFileName(partialFileName(name), parts)).toBeUndefined();
    expect(parseBackupFileName(manifestFileName(name), parts)).toBeUndefined();
    expect(parseBackupFileName(name, { ...parts, env: 'staging' })).toBeUndefined();
    expect(parseBackupFileName('shop-production-shop-20251302T030405Z.sql.zst', parts)).toBeUndefined(); // month 13
    expect(parseBackupFileName('shop-production-shop-latest.sql.zst', parts)).toBeUndefined();
  });

  it('refuses names that would escape the directory or be ambiguous', () => {
    expect(() => backupFileName({ ...parts, database: '../etc' }, '2025-01-02T03:04:05Z')).toThrow(/database "..\/etc" cannot be part of a backup file name/);
    expect(() => backupFileName({ ...parts, app: 'a/b' }, '2025-01-02T03:04:05Z')).toThrow(/app/);
    expect(() => backupFileName({ ...parts, env: '' }, '2025-01-02T03:04:05Z')).toThrow(/env/);
    const withExtras = { ...parts, host: { name: 'x' }, storageDir: '/b' };
    expect(backupFileName(withExtras, '2025-01-02T03:04:05Z')).toBe('shop-production-shop-20250102T030405Z.sql.zst');
    expect(() => backupFileName(parts, 'yesterday')).toThrow(/invalid backup time/);
    expect(() => manifestFileName('x.sql')).toThrow(/not a backup file name/);
  });
});

describe('backup file names of series with hyphens (issue 11, defect 5)', () => {
  // env `prod` + db `eu-main` and env `prod-eu` + db `main`: the plain prefix is the same
  const a = { app: 'shop', env: 'prod', database: 'eu-main' };
  const b = { app: 'shop', env: 'prod-eu', database: 'main' };
  const at = '2025-01-02T03:04:05Z';

  it('no two series get the same name; series without a hyphen keep the names they always had', () => {
    expect(backupFileName(a, at)).toBe('shop~prod~eu-main-20250102T030405Z.sql.zst');
    expect(backupFileName(b, at)).toBe('shop~prod-eu~main-20250102T030405Z.sql.zst');
    expect(backupFileName(a, at)).not.toBe(backupFileName(b, at));
    expect(backupFileName({ ...a, app: 'my-shop' }, at)).toBe('my-shop~prod~eu-main-20250102T030405Z.sql.zst');
    expect(backupFileName(parts, at)).toBe('shop-production-shop-20250102T030405Z.sql.zst');
    expect(backupSeriesPrefixes(parts)).toEqual(['shop-production-shop-']);
    expect(backupSeriesPrefixes(a)).toEqual(['shop~prod~eu-main-', 'shop-prod-eu-main-']);
  });

  it('each series parses only its own new names; a plain name written before is shared: only the manifest says whose it is', () => {
    expect(parseBackupFileName(backupFileName(a, at), a)).toEqual({ createdAt: '2025-01-02T03:04:05Z' });
    expect(parseBackupFileName(backupFileName(a, at), b)).toBeUndefined();
    expect(parseBackupFileName(backupFileName(b, at), a)).toBeUndefined();
    const legacy = 'shop-prod-eu-main-20250102T030405Z.sql.zst';
    expect(parseBackupFileName(legacy, a)).toEqual({ createdAt: '2025-01-02T03:04:05Z', shared: true });
    expect(parseBackupFileName(legacy, b)).toEqual({ createdAt: '2025-01-02T03:04:05Z', shared: true });
    expect(parseBackupFileName(manifestFileName(backupFileName(a, at)), a)).toBeUndefined();
  });

  it('a manifest must name the same app, env, database and file', () => {
    const legacy = 'shop-prod-eu-main-20250102T030405Z.sql.zst';
    const m = { ...a, file: legacy };
    expect(manifestIdentityProblem(m, a, legacy)).toBeUndefined();
    expect(manifestIdentityProblem(m, b, legacy)).toBe('its manifest names shop/prod/eu-main, not shop/prod-eu/main');
    expect(manifestIdentityProblem(m, a, backupFileName(a, at))).toBe(`its manifest describes ${legacy}, not shop~prod~eu-main-20250102T030405Z.sql.zst`);
  });
});

describe('zstd argv', () => {
  it('compresses stdin to stdout, decompresses a file to stdout', () => {
    expect(zstdCompressArgv()).toEqual(['zstd', '-q', '-T0', '-3', '-c']);
    expect(zstdCompressArgv(9)).toEqual(['zstd', '-q', '-T0', '-9', '-c']);
    expect(() => zstdCompressArgv(0)).toThrow(/1\.\.19/);
    expect(zstdDecompressArgv('/backups/-x.sql.zst')).toEqual(['zstd', '-d', '-q', '-c', '--', '/backups/-x.sql.zst']);
    expect(zstdDecompressArgv()).toEqual(['zstd', '-d', '-q', '-c']); // stdin
  });
});

describe('manifest', () => {
  const input = {
    ...parts,
    file: 'shop-production-shop-20250102T030405Z.sql.zst',
    createdAt: '2025-01-02T03:04:05.000Z',
    sizeBytes: 1234,
    sha256: 'a'.repeat(64),
    durationMs: 900,
    serverVersion: '15.14 (Debian 15.14-0+deb12u1)',
    tables: [
      { table: 'public.users', rows: 3, checksum: '0123456789abcdef0123456789abcdef' },
      { table: '"Billing"."Invoice Lines"', rows: 0 },
    ],
  };

  it('builds, serialises and parses back to the same value', () => {
    const m = buildManifest(input);
    expect(m).toEqual({ ...input, compression: 'zstd' });
    expect(parseManifest(serializeManifest(m))).toEqual(m);
    expect(Object.keys(JSON.parse(serializeManifest(m)))).toEqual(['app', 'env', 'database', 'file', 'createdAt', 'sizeBytes', 'sha256', 'compression', 'durationMs', 'serverVersion', 'tables']);
  });

  it('keeps a pin (reason, by, until) and checks it', () => {
    const pinned = buildManifest({ ...input, pinned: { reason: 'safety', by: 'restoreBackup/shop/production', until: '2025-02-01T03:04:05.000Z' } });
    expect(parseManifest(serializeManifest(pinned)).pinned).toEqual({ reason: 'safety', by: 'restoreBackup/shop/production', until: '2025-02-01T03:04:05.000Z' });
    expect(parseManifest(serializeManifest(buildManifest({ ...input, pinned: { reason: 'pre-update', by: 'rollingUpdate/shop/production' } }))).pinned).toEqual({ reason: 'pre-update', by: 'rollingUpdate/shop/production' });
    expect(manifestProblems({ ...pinned, pinned: { reason: 'nightly', by: 'x' } })).toEqual(['pinned.reason: must be one of "safety", "pre-update" (got "nightly")']);
    expect(manifestProblems({ ...pinned, pinned: { reason: 'safety', by: '' } })).toEqual(['pinned.by: must be a non-empty string (the workflow that pinned it)']);
    expect(manifestProblems({ ...pinned, pinned: { reason: 'safety', by: 'x', until: 'later' } })).toEqual(['pinned.until: must be an ISO 8601 time']);
    expect(manifestProblems({ ...pinned, pinned: true })).toEqual(['pinned: must be an object like {"reason": "safety", "by": "<workflow id>"}']);
  });

  it('drops unknown keys when parsing', () => {
    const text = JSON.stringify({ ...buildManifest(input), extra: 1 });
    expect(parseManifest(text)).not.toHaveProperty('extra');
  });

  it('names every problem of a bad manifest', () => {
    expect(() => parseManifest('{')).toThrow(/not JSON/);
    expect(manifestProblems([])).toEqual(['a manifest is a JSON object']);
    const bad = { ...buildManifest(input), sizeBytes: -1, sha256: 'XYZ', compression: 'gzip', file: '../x.sql.zst', createdAt: 'soon', tables: [{ table: '', rows: 1.5, checksum: 'nope' }] };
    expect(manifestProblems(bad)).toEqual([
      'sizeBytes: must be a non-negative integer',
      'sha256: must be 64 lower-case hex digits',
      'compression: must be "zstd" (got "gzip")',
      'createdAt: must be an ISO 8601 time',
      'file: must be a plain .sql.zst file name',
      'tables[0].table: must be a non-empty string',
      'tables[0].rows: must be a non-negative integer',
      'tables[0].checksum: must be 32 hex digits',
    ]);
    const { sha256: _drop, ...missing } = buildManifest(input);
    expect(() => parseManifest(JSON.stringify(missing))).toThrow('invalid backup manifest: sha256: must be 64 lower-case hex digits');
    expect(() => buildManifest({ ...input, sizeBytes: NaN })).toThrow(/sizeBytes/);
  });
});

describe('table statistics through psql', () => {
  it('psql prints NUL-separated fields, reads the script from stdin, never takes a password', () => {
    const argv = psqlQueryArgv({ host: '127.0.0.1', port: 5432, user: 'app', database: 'shop' });
    expect(argv).toEqual(expect.arrayContaining(['psql', '--field-separator-zero', '--record-separator-zero', '--tuples-only', '--no-align', '--set=ON_ERROR_STOP=1', '--file=-', '--no-password', '--dbname=shop']));
    expect(argv.join(' ')).not.toMatch(/password=/i);
  });

  it('scripts: version + tables, then checksums in one read-only snapshot with fixed settings', () => {
    expect(listTablesScript()).toMatch(/server_version.*;\nSELECT n\.nspname AS schema/s);
    const script = tableChecksumsScript([{ schema: 'Billing', name: 'Invoice Lines' }]);
    expect(script).toMatch(/^SET DateStyle = 'ISO, MDY';\n/);
    expect(script).toContain('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n');
    expect(script).toContain('FROM (SELECT md5(t::text) AS h FROM "Billing"."Invoice Lines" AS t OFFSET 0) AS s;\n');
    expect(script.endsWith('ROLLBACK;\n')).toBe(true);
  });

  it('parses the outputs, names with any character included', () => {
    const listed = parseListTablesOutput('15.14 (Debian)\x00150014\x00Billing\x00Invoice Lines\x00public\x00users\x00');
    expect(listed).toEqual({ serverVersion: '15.14 (Debian)', tables: [{ schema: 'Billing', name: 'Invoice Lines' }, { schema: 'public', name: 'users' }] });
    const stats = parseTableChecksumsOutput(`503\x00${'a'.repeat(32)}\x000\x00${'b'.repeat(32)}\x00`, listed.tables);
    expect(stats).toEqual([
      { table: '"Billing"."Invoice Lines"', rows: 503, checksum: 'a'.repeat(32) },
      { table: 'public.users', rows: 0, checksum: 'b'.repeat(32) },
    ]);
    expect(() => parseListTablesOutput('')).toThrow(/no server version/);
    expect(() => parseListTablesOutput('15\x00150014')).toThrow(/not NUL-terminated/);
    expect(() => parseListTablesOutput('15\x00')).toThrow(/not a multiple of 2/);
    expect(() => parseTableChecksumsOutput(`1\x00${'a'.repeat(32)}\x00`, listed.tables)).toThrow(/1 rows for 2 tables/);
    expect(() => parseTableChecksumsOutput(`x\x00y\x00z\x00w\x00`, listed.tables)).toThrow(/Invoice Lines/);
  });
});

function frame(kind: number, payload: string | Buffer): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const h = Buffer.alloc(8);
  h[0] = kind;
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
}

async function demux(chunks: Buffer[]): Promise<{ out: string; err: string }> {
  const err: Buffer[] = [];
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), new DockerDemux((c) => err.push(c)), new PassThrough().on('data', (c: Buffer) => out.push(c)));
  return { out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
}

describe('DockerDemux', () => {
  const stream = Buffer.concat([frame(1, 'hello '), frame(2, 'warning: x\n'), frame(1, 'world'), frame(1, ''), frame(2, 'bye\n'), frame(1, '!')]);

  it('splits stdout from stderr however the stream is chunked', async () => {
    expect(await demux([stream])).toEqual({ out: 'hello world!', err: 'warning: x\nbye\n' });
    for (const size of [1, 3, 7, 8, 9, 13]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      expect(await demux(chunks)).toEqual({ out: 'hello world!', err: 'warning: x\nbye\n' });
    }
  });

  it('passes binary payloads through untouched', async () => {
    const bin = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
    const out: Buffer[] = [];
    await pipeline(Readable.from([frame(1, bin)]), new DockerDemux(() => undefined), new PassThrough().on('data', (c: Buffer) => out.push(c)));
    expect(Buffer.concat(out).equals(bin)).toBe(true);
  });

  it('fails on a stream that is not multiplexed, or ends inside a frame', async () => {
    await expect(demux([Buffer.from('plain text output')])).rejects.toThrow(/not multiplexed/);
    await expect(demux([frame(1, 'abcdef').subarray(0, 10)])).rejects.toThrow(/middle of a frame/);
    await expect(demux([Buffer.from([1, 0, 0])])).rejects.toThrow(/middle of a frame/);
  });
});

describe('TailBuffer', () => {
  it('keeps the last bytes only', () => {
    const t = new TailBuffer(10);
    for (let i = 0; i < 100; i++) t.write(Buffer.from(`line ${i}\n`));
    expect(t.text()).toBe('8\nline 99\n');
    expect(t.text().length).toBe(10);
  });
});
