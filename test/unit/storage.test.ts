// Backup storage: object-name rules, the remote argv (run here through a real sh, as SshPool
// would after quoting), the listing parser and spec validation.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { openStorage, storageSpecProblem, DirectoryStorage, S3Storage, SshDirectoryStorage, type S3StorageSpec, type StorageSpec } from '../../activities/storage';
import { checkObjectName } from '../../activities/storage/types';
import type { SshPool } from '../../activities/ssh';
import { shellQuote } from '../../common/commands/shell';
import {
  ByteCounter,
  REMOTE_NOT_FOUND,
  bucketNameProblem,
  listPrefixProblem,
  objectNameProblem,
  octalMode,
  parseRemoteListing,
  readStreamText,
  remoteCommitArgv,
  remoteExistsArgv,
  remoteListArgv,
  remoteReadArgv,
  remoteRemoveArgv,
  remoteWriteArgv,
  s3Key,
} from '../../common/commands/storage';
import { sshHost } from '../helpers/hosts';

/** Runs argv the way the remote host does: one command line, quoted once, through sh -c. */
const sh = (argv: string[], input?: string) => spawnSync('sh', ['-c', shellQuote(argv)], { input, encoding: 'utf8' });

describe('object names', () => {
  it('accepts plain file names', () => {
    for (const name of ['shop-prod-db-20250102T030405Z.sql.zst', 'a', 'x.manifest.json', 'with space', 'ümlaut', '.hidden']) {
      expect(objectNameProblem(name)).toBeUndefined();
    }
  });
  it.each([
    ['an empty name', '', /non-empty/],
    ['a path', 'a/b', /"\/"/],
    ['an absolute path', '/abs', /"\/"/],
    ['..', '..', /\.\./],
    ['a name with ..', 'a..b', /\.\./],
    ['.', '.', /\.\./],
    ['a NUL', 'nul\0byte', /NUL/],
    ['a partial', 'x.sql.zst.partial', /\.partial/],
    ['201 bytes', 'x'.repeat(201), /longer than 200/],
  ])('rejects %s', (_label, name, why) => {
    expect(objectNameProblem(name)).toMatch(why);
  });
  it('rejects non-strings', () => {
    expect(objectNameProblem(undefined)).toMatch(/non-empty string/);
    expect(objectNameProblem(42)).toMatch(/non-empty string/);
  });
  it('throws a non-retryable StorageBadName', () => {
    const err = (() => {
      try {
        checkObjectName('../etc/passwd');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('StorageBadName');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
  });
  it('checks list prefixes', () => {
    expect(listPrefixProblem('')).toBeUndefined();
    expect(listPrefixProblem('shop-prod-')).toBeUndefined();
    expect(listPrefixProblem('a/')).toMatch(/"\/"/);
  });
  it('formats modes for chmod and refuses others', () => {
    expect(octalMode(0o600)).toBe('600');
    expect(octalMode(0o40)).toBe('040');
    expect(() => octalMode(0o1777)).toThrow(/0o777/);
    expect(() => octalMode(1.5)).toThrow();
  });
  it('checks bucket names and builds keys', () => {
    expect(bucketNameProblem('runbook-backups.eu')).toBeUndefined();
    expect(bucketNameProblem('Upper')).toMatch(/not a valid/);
    expect(bucketNameProblem('ab')).toMatch(/not a valid/);
    expect(bucketNameProblem('a..b')).toMatch(/no "\.\."/);
    expect(bucketNameProblem('10.0.0.1')).toMatch(/IP address/);
    expect(s3Key('backups/shop/', 'x.sql.zst')).toBe('backups/shop/x.sql.zst');
    expect(s3Key('', 'x')).toBe('x');
  });
});

describe('remote argv', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-unit-storage-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('are argv arrays whose paths are positional parameters, never part of the script', () => {
    const tricky = "/srv/it's $(id) `x`";
    for (const argv of [remoteWriteArgv(tricky, `${tricky}/a.partial`), remoteCommitArgv(tricky, `${tricky}/a.partial`, `${tricky}/a`, 3, 0o600), remoteReadArgv(tricky), remoteExistsArgv(tricky), remoteListArgv(tricky)]) {
      expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
      expect(argv[2]).not.toContain(tricky);
      expect(argv).toContain(tricky);
    }
    expect(remoteRemoveArgv('/srv/-x')).toEqual(['rm', '-f', '--', '/srv/-x']);
  });

  it('write makes the directory and a 0600 partial from stdin, without publishing it', () => {
    const target = path.join(dir, "sub dir/it's");
    const partial = path.join(target, 'a.partial');
    const r = sh(remoteWriteArgv(target, partial), 'hello');
    expect(r.status).toBe(0);
    expect(readdirSync(target)).toEqual(['a.partial']);
    expect(readFileSync(partial, 'utf8')).toBe('hello');
    expect(statSync(partial).mode & 0o777).toBe(0o600);
    expect(statSync(target).mode & 0o777).toBe(0o750);
  });

  it('write replaces a stale partial', () => {
    const partial = path.join(dir, 'a.partial');
    writeFileSync(partial, 'stale and longer');
    expect(sh(remoteWriteArgv(dir, partial), 'new').status).toBe(0);
    expect(readFileSync(partial, 'utf8')).toBe('new');
  });

  it('commit checks the size, sets the mode and renames over the final name', () => {
    const partial = path.join(dir, 'a.partial');
    const final = path.join(dir, 'a');
    writeFileSync(final, 'old');
    writeFileSync(partial, 'abcd', { mode: 0o600 });
    const short = sh(remoteCommitArgv(dir, partial, final, 5, 0o640));
    expect(short.status).not.toBe(0);
    expect(short.stderr).toMatch(/has 4 bytes but 5 were sent/);
    expect(readFileSync(final, 'utf8')).toBe('old');
    expect(sh(remoteCommitArgv(dir, partial, final, 4, 0o640)).status).toBe(0);
    expect(readdirSync(dir)).toEqual(['a']);
    expect(readFileSync(final, 'utf8')).toBe('abcd');
    expect(statSync(final).mode & 0o777).toBe(0o640);
  });

  it('read and exists tell a missing file by their exit code', () => {
    writeFileSync(path.join(dir, 'a'), 'data');
    expect(sh(remoteReadArgv(path.join(dir, 'a'))).stdout).toBe('data');
    expect(sh(remoteReadArgv(path.join(dir, 'b'))).status).toBe(REMOTE_NOT_FOUND);
    expect(sh(remoteExistsArgv(path.join(dir, 'a'))).status).toBe(0);
    expect(sh(remoteExistsArgv(dir)).status).toBe(REMOTE_NOT_FOUND);
  });

  it('list prints size and name of regular files; a missing directory lists nothing', () => {
    writeFileSync(path.join(dir, 'b-2'), '22');
    writeFileSync(path.join(dir, 'b-1'), '1');
    writeFileSync(path.join(dir, 'b-3.partial'), '333');
    writeFileSync(path.join(dir, 'a tab\there'), '');
    execFileSync('mkdir', [path.join(dir, 'b-dir')]);
    const r = sh(remoteListArgv(dir));
    expect(r.status).toBe(0);
    expect(parseRemoteListing(r.stdout, 'b-')).toEqual([
      { name: 'b-1', sizeBytes: 1 },
      { name: 'b-2', sizeBytes: 2 },
    ]);
    expect(parseRemoteListing(r.stdout, '').map((o) => o.name)).toEqual(['a tab\there', 'b-1', 'b-2']);
    const missing = sh(remoteListArgv(path.join(dir, 'nope')));
    expect(missing.status).toBe(0);
    expect(missing.stdout).toBe('');
  });

  it('the listing parser refuses what find does not print', () => {
    expect(() => parseRemoteListing('garbage\0', '')).toThrow(/unexpected file listing/);
    expect(parseRemoteListing('', '')).toEqual([]);
    expect(parseRemoteListing('5 new\nline\0', '')).toEqual([{ name: 'new\nline', sizeBytes: 5 }]);
  });
});

describe('streams', () => {
  it('counts bytes passing through', async () => {
    const counter = new ByteCounter();
    const text = await readStreamText(Readable.from([Buffer.from('abc'), Buffer.from('de')]).pipe(counter));
    expect(text).toBe('abcde');
    expect(counter.bytes).toBe(5);
  });
  it('refuses to read a big object as text', async () => {
    await expect(readStreamText(Readable.from([Buffer.alloc(10)]), 5)).rejects.toThrow(/larger than 5 bytes/);
  });
});

describe('storage specs', () => {
  const s3: S3StorageSpec = { type: 's3', bucket: 'backups', prefix: 'shop/prod/', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', accessKeyIdFile: '/etc/runbook/s3-id', secretAccessKeyFile: '/etc/runbook/s3-secret' };
  const pool = {} as SshPool;

  it('accepts good specs and picks the backend', () => {
    const local: StorageSpec = { type: 'directory', path: '/srv/backups' };
    const remote: StorageSpec = { type: 'directory', path: '/srv/backups', host: sshHost('SHA256:x') };
    for (const spec of [local, remote, s3]) expect(storageSpecProblem(spec)).toBeUndefined();
    expect(openStorage(local, { ssh: pool })).toBeInstanceOf(DirectoryStorage);
    expect(openStorage(remote, { ssh: pool })).toBeInstanceOf(SshDirectoryStorage);
    expect(openStorage(remote, { ssh: pool }).description).toBe('/srv/backups on edge');
    expect(openStorage(s3, { ssh: pool })).toBeInstanceOf(S3Storage);
    expect(openStorage(s3, { ssh: pool }).description).toBe('s3://backups/shop/prod/ at http://127.0.0.1:9000');
  });

  it.each<[string, StorageSpec, RegExp]>([
    ['a relative path', { type: 'directory', path: 'relative/dir' }, /absolute path/],
    ['a path with ..', { type: 'directory', path: '/srv/../etc' }, /"\.\."/],
    ['the root directory', { type: 'directory', path: '/' }, /root directory/],
    ['a bad bucket name', { ...s3, bucket: 'Bad_Bucket' }, /valid S3 bucket name/],
    ['a prefix with a leading slash', { ...s3, prefix: '/lead' }, /must not start with "\/"/],
    ['an empty region', { ...s3, region: '' }, /region/],
    ['an ftp endpoint', { ...s3, endpoint: 'ftp://x' }, /http:\/\/ or https:\/\//],
    ['credentials in the endpoint', { ...s3, endpoint: 'http://user:secret@host' }, /must not contain a user or password/],
    ['only one credentials file', { ...s3, secretAccessKeyFile: undefined }, /go together/],
    ['a relative credentials file', { ...s3, accessKeyIdFile: 'rel/id' }, /accessKeyIdFile must be an absolute path/],
    ['an unknown type', { type: 'ftp' } as unknown as StorageSpec, /not "directory" or "s3"/],
  ])('rejects %s', (_label, spec, why) => {
    expect(storageSpecProblem(spec)).toMatch(why);
    let err: unknown;
    try {
      openStorage(spec, { ssh: pool });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('StorageBadSpec');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
  });

  it('never shows endpoint userinfo in a description', () => {
    expect(new S3Storage({ ...s3, endpoint: 'http://user:pw@host:9000/' }).description).toBe('s3://backups/shop/prod/ at http://host:9000');
  });
});
