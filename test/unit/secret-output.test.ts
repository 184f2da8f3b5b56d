// Defect 9: a command whose stdout may hold a secret (the ACME account key read with `cat`) must
// not put any of that stdout into an error: the failure names the command, the file and the exit code.
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createCertificateActivities } from '../../activities/certificates';
import type { DockerEngines } from '../../activities/docker';
import { commandFailure, redactOutput } from '../../common/commands/output';
import { ACCOUNT_KEY_EXIT, accountKeyArgv, ACME_ACCOUNT_KEY } from '../../common/commands/tls';
import type { CertificatePlan, CertificateProxy, HostSpec } from '../../common/types';
import { rejectionOf } from '../helpers/rejection';

const secretPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const secretBody = secretPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');

/** Everything an error carries that could reach a log, history or the UI. */
const everything = (err: unknown) => {
  const e = err as Error & { details?: unknown; cause?: unknown };
  return [String(e), e.message, e.stack, JSON.stringify(e.details ?? null), JSON.stringify(e.cause ?? null), JSON.stringify(e)].join('\n');
};

/** No 8-character piece of the key's base64 appears. */
function expectNoPartOfSecret(text: string) {
  const compact = text.replace(/\s/g, '');
  for (let i = 0; i + 8 <= secretBody.length; i += 4) expect(compact).not.toContain(secretBody.slice(i, i + 8));
  expect(text).not.toMatch(/PRIVATE KEY/);
}

// ---- a fake engine: every exec answers with the given output and exit code ----

const frame = (kind: 1 | 2, text: string) => {
  const body = Buffer.from(text, 'utf8');
  const head = Buffer.alloc(8);
  head[0] = kind;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
};

function fakeEngines(answer: { stdout: string; stderr: string; exitCode: number }, seen: string[][] = []): DockerEngines {
  const docker = {
    getContainer: () => ({
      exec: async (opts: { Cmd: string[] }) => {
        seen.push(opts.Cmd);
        return {
          start: async () => {
            const s = new PassThrough();
            s.end(Buffer.concat([frame(1, answer.stdout), frame(2, answer.stderr)]));
            return s;
          },
          inspect: async () => ({ Running: false, ExitCode: answer.exitCode }),
        };
      },
    }),
  };
  return { engine: async () => docker } as unknown as DockerEngines;
}

const host = { name: 'web1', dockerSocket: '/var/run/docker.sock' } as HostSpec;
const proxy = { host, container: 'shop-prod-proxy', httpUrl: 'http://127.0.0.1:8080', httpsAddress: '127.0.0.1', httpsPort: 8443 } as CertificateProxy;
const plan = {
  app: 'shop',
  env: 'prod',
  id: 'shop-prod',
  domains: ['shop.example.com'],
  mode: 'acme',
  challenge: 'http-01',
  acme: { directoryUrl: 'https://127.0.0.1:1/dir' },
  proxies: [proxy],
} as unknown as CertificatePlan;

const order = (answer: { stdout: string; stderr: string; exitCode: number }, seen?: string[][]) =>
  createCertificateActivities({ inventoryPath: '/nonexistent', engines: fakeEngines(answer, seen) }).orderCertificate({ proxy, proxies: [proxy], plan, csrPem: '' });

describe('reading the ACME account key on the host', () => {
  it('exit 1 with the key (or part of it) on stdout: the error names the file and the exit code, holds no part of the key', async () => {
    for (const stdout of [secretPem, secretPem.slice(0, 180), secretBody.slice(10, 120)]) {
      const seen: string[][] = [];
      const err = await rejectionOf(order({ stdout, stderr: '', exitCode: 1 }, seen));
      expect(seen[0]).toEqual(accountKeyArgv());
      expect(err.message).toBe(`read the ACME account key ${ACME_ACCOUNT_KEY} in shop-prod-proxy on web1 failed (exit 1)`);
      expectNoPartOfSecret(everything(err));
    }
  });

  it("stderr is shown, with the key's lines and anything key-like redacted", async () => {
    const line = secretPem.split('\n')[1];
    const err = await rejectionOf(order({ stdout: secretPem.slice(0, 150), stderr: `cat: write error: Broken pipe\nwhat came: ${line}\n${secretPem}`, exitCode: ACCOUNT_KEY_EXIT.read }));
    expect(err.message).toMatch(/^read the ACME account key \/etc\/nginx\/tls\/acme-account\.key in shop-prod-proxy on web1 failed \(exit 22: cannot read the key file\): cat: write error: Broken pipe\nwhat came: \[redacted\]/);
    expectNoPartOfSecret(everything(err));
  });
});

describe('commandFailure / redactOutput', () => {
  it('a secret stdout is never shown, not even when stderr is empty', () => {
    expect(commandFailure('read the key', { exitCode: 1, stdout: secretPem, stderr: '' }, { secretStdout: true })).toBe('read the key failed (exit 1)');
    // without the flag, stdout stands in for an empty stderr, still with PEM blocks and key-like runs redacted
    expect(commandFailure('make the CSR', { exitCode: 2, stdout: `oops\n${secretPem}`, stderr: '' })).toBe('make the CSR failed (exit 2): oops\n[redacted]');
  });

  it('redacts cut-off PEM blocks and long base64 runs, keeps the rest, bounds the length', () => {
    expect(redactOutput(`error: ${secretPem.slice(0, 60)}`)).toBe('error: [redacted]');
    expect(redactOutput(`token ${'A'.repeat(64)} end`)).toBe('token [redacted] end');
    expect(redactOutput('nginx: [emerg] unknown directive "x" in /etc/nginx/conf.d/app.conf:3')).toBe('nginx: [emerg] unknown directive "x" in /etc/nginx/conf.d/app.conf:3');
    expect(redactOutput('no such file. '.repeat(50), { max: 13 })).toBe('no such file.…');
  });
});

describe('accountKeyArgv (run with a local sh)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-unit-acctkey-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const run = (file: string) => {
    const [cmd, ...args] = accountKeyArgv(file);
    return spawnSync(cmd, args, { encoding: 'utf8' });
  };

  it('makes the key once (0600) and prints it', () => {
    const file = path.join(tmp, 'tls', 'acme-account.key');
    const first = run(file);
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(run(file).stdout).toBe(first.stdout);
    expect(execFileSync('openssl', ['pkey', '-in', file, '-noout', '-text'], { encoding: 'utf8' })).toMatch(/prime256v1|P-256/);
  });

  it('says by its exit code which step failed', () => {
    const dir = path.join(tmp, 'a-directory');
    mkdirSync(path.join(dir, 'x'), { recursive: true });
    expect(run(dir).status).toBe(ACCOUNT_KEY_EXIT.read); // exists, cannot be read as a file
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'not a directory');
    expect(run(path.join(file, 'tls', 'k.key')).status).toBe(ACCOUNT_KEY_EXIT.directory);
  });
});
