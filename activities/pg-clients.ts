// PostgreSQL client programs (pg_dump, psql) as streams, wherever the database is: inside its
// container (Docker exec, so its port need not be published) or on the worker against a server
// reached by address. Backups, restore drills and restores are built on these two runners, and on
// PsqlSession, a psql kept open so several queries (and pg_dump, through an exported snapshot)
// see one consistent view of the data. Passwords travel only in the program's environment.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { DockerDemux, TailBuffer } from '../common/commands/backup';
import { psqlQueryArgv } from '../common/commands/backup';
import { envList, pgClientEnv, type PgConnection } from '../common/commands/sql';
import type { DatabaseTarget, HostSpec } from '../common/types';
import { engineFailure, type DockerEngines } from './docker';
import { readPassword } from './postgres';

/** A running client program: demultiplexed stdout, optional stdin, the tail of stderr, its exit code. */
export interface ClientProgram {
  stdout: Readable;
  stdin?: Writable;
  stderrText(): string;
  /** Resolves once stdout has ended and the program has exited. */
  exitCode(): Promise<number>;
  /** Stops reading and writing; the program sees EOF/EPIPE (a psql transaction without COMMIT rolls back). */
  abort(): void;
}

export interface ClientRunner {
  /** `postgres://user@place/db` for messages. */
  describe(database: string): string;
  /** The connection as the program sees it (inside the container: its loopback). */
  connection(database: string): PgConnection;
  start(argv: string[], env: Record<string, string>, withStdin: boolean): Promise<ClientProgram>;
}

// Client errors that no retry fixes.
const PERMANENT = /password authentication failed|no pg_hba\.conf entry|role "[^"]*" does not exist|database "[^"]*" does not exist|permission denied|fe_sendauth: no password supplied|invalid connection option|server version mismatch|invalid snapshot identifier/i;

export function scrub(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('***') : text;
}

export function lastLines(text: string, n = 10): string {
  return text.split(/\r?\n/).filter((l) => l.trim()).slice(-n).join('\n');
}

/** A failed client program: non-retryable for auth/missing objects/version mismatch, else transient. */
export function programFailure(what: string, exitCode: number, stderr: string, password: string | undefined): Error {
  const text = scrub(lastLines(stderr), password);
  const message = `${what} failed (exit code ${exitCode})${text ? `: ${text}` : ''}`;
  return PERMANENT.test(stderr) ? ApplicationFailure.nonRetryable(message, 'PostgresClientRejected') : new Error(message);
}

async function execExitCode(exec: Docker.Exec): Promise<number> {
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    info = await exec.inspect();
  }
  if (info.Running) throw new Error('the exec did not finish after its output ended');
  return info.ExitCode ?? -1;
}

/** A program run in a container (Docker exec) as a stream: stdout demultiplexed, stdin if asked. */
export async function startInContainer(engines: DockerEngines, host: HostSpec, container: string, argv: string[], env: Record<string, string>, withStdin: boolean): Promise<ClientProgram> {
  let exec: Docker.Exec;
  let raw: NodeJS.ReadWriteStream;
  try {
    const docker = await engines.engine(host);
    exec = await docker.getContainer(container).exec({ Cmd: argv, Env: envList(env), AttachStdin: withStdin, AttachStdout: true, AttachStderr: true, Tty: false });
    raw = (await exec.start({ hijack: true, stdin: withStdin })) as unknown as NodeJS.ReadWriteStream;
  } catch (err) {
    throw engineFailure(host, `${argv[0]} in ${container}`, err);
  }
  const stderr = new TailBuffer();
  const stdout = new PassThrough();
  const reading = pipeline(raw as unknown as Readable, new DockerDemux((c) => stderr.write(c)), stdout);
  reading.catch(() => undefined);
  return {
    stdout,
    stdin: withStdin ? (raw as unknown as Writable) : undefined,
    stderrText: () => stderr.text(),
    async exitCode() {
      await reading;
      return execExitCode(exec);
    },
    abort: () => (raw as unknown as Readable).destroy(),
  };
}

/** Programs run inside the database container; they connect to its loopback. */
export function containerRunner(engines: DockerEngines, target: DatabaseTarget & { location: { kind: 'container' } }): ClientRunner {
  const loc = target.location;
  return {
    describe: (database) => `postgres://${target.user}@${loc.container}(${loc.host.name}):${loc.port}/${database}`,
    connection: (database) => ({ host: '127.0.0.1', port: loc.port, user: target.user, database, passwordFile: target.passwordFile }),
    start: (argv, env, withStdin) => startInContainer(engines, loc.host, loc.container, argv, env, withStdin),
  };
}

/** Programs run on the worker against a server reached by address (postgresql-client installed there). */
export function serverRunner(target: DatabaseTarget & { location: { kind: 'server' } }): ClientRunner {
  const loc = target.location;
  return {
    describe: (database) => `postgres://${target.user}@${loc.address}:${loc.port}/${database}`,
    connection: (database) => ({ host: loc.address, port: loc.port, user: target.user, database, passwordFile: target.passwordFile }),
    async start(argv, env, withStdin) {
      const child = spawn(argv[0], argv.slice(1), {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...env },
        stdio: [withStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      const stderr = new TailBuffer();
      child.stderr!.on('data', (c: Buffer) => stderr.write(c));
      const exited = new Promise<number>((resolve, reject) => {
        child.once('error', (err: NodeJS.ErrnoException) =>
          reject(err.code === 'ENOENT' ? ApplicationFailure.nonRetryable(`${argv[0]} is not installed on the worker (apt-get install postgresql-client)`, 'PostgresClientMissing') : err),
        );
        child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1)));
      });
      exited.catch(() => undefined);
      child.stdin?.on('error', () => undefined); // EPIPE when the program quits early: its exit code tells why
      return {
        stdout: child.stdout!,
        stdin: child.stdin ?? undefined,
        stderrText: () => stderr.text(),
        exitCode: () => exited,
        abort: () => child.kill('SIGKILL'),
      };
    },
  };
}

export function clientRunner(engines: DockerEngines, target: DatabaseTarget): ClientRunner {
  return target.location.kind === 'container'
    ? containerRunner(engines, target as DatabaseTarget & { location: { kind: 'container' } })
    : serverRunner(target as DatabaseTarget & { location: { kind: 'server' } });
}

/** The program's environment for a target: password from its file (read at use), app name, timeout. */
export async function clientEnv(target: DatabaseTarget, applicationName: string): Promise<{ env: Record<string, string>; password: string | undefined }> {
  const password = await readPassword({ host: '', port: 0, user: target.user, database: target.database, passwordFile: target.passwordFile });
  return { env: pgClientEnv(password, { applicationName }), password };
}

/**
 * A psql process kept open: `query()` sends SQL and returns its rows (NUL-separated output, so any
 * value parses back), ended by a random sentinel row. The first SQL error ends psql (ON_ERROR_STOP)
 * and rejects the pending query with psql's message.
 */
export class PsqlSession {
  private buffer = '';
  private waiting: { marker: string; resolve: (text: string) => void; reject: (err: Error) => void } | undefined;
  private ended = false;
  private readonly token = `__runbook_${randomBytes(6).toString('hex')}`;
  private seq = 0;

  private constructor(
    private readonly program: ClientProgram,
    private readonly what: string,
    private readonly password: string | undefined,
  ) {
    program.stdout.setEncoding('utf8');
    program.stdout.on('data', (text: string) => {
      this.buffer += text;
      this.check();
    });
    program.stdout.on('end', () => {
      this.ended = true;
      this.check();
    });
    program.stdout.on('error', () => {
      this.ended = true;
      this.check();
    });
  }

  static async open(runner: ClientRunner, database: string, env: Record<string, string>, password: string | undefined, what: string): Promise<PsqlSession> {
    const program = await runner.start(psqlQueryArgv(runner.connection(database)), env, true);
    const where = runner.describe(database);
    return new PsqlSession(program, what.includes(where) ? what : `${what} (${where})`, password);
  }

  private check(): void {
    const w = this.waiting;
    if (!w) return;
    const at = this.buffer.indexOf(w.marker);
    if (at >= 0) {
      const text = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + w.marker.length);
      this.waiting = undefined;
      w.resolve(text);
    } else if (this.ended) {
      this.waiting = undefined;
      void this.program.exitCode().then(
        (code) => w.reject(programFailure(this.what, code, this.program.stderrText(), this.password)),
        (err) => w.reject(err as Error),
      );
    }
  }

  /** Runs SQL (one or more statements ending in `;`); returns the rows of its output, `fieldsPerRow` each. */
  query(sql: string, fieldsPerRow: number): Promise<string[][]> {
    if (this.waiting) throw new Error('PsqlSession.query: one query at a time');
    const marker = `${this.token}_${++this.seq}\0`;
    const result = new Promise<string>((resolve, reject) => {
      this.waiting = { marker, resolve, reject };
    });
    this.program.stdin!.write(`${sql}\nSELECT '${marker.slice(0, -1)}';\n`);
    this.check();
    return result.then((text) => splitRows(text, fieldsPerRow, this.what));
  }

  /** Ends psql (stdin EOF: an open transaction is rolled back unless `sql` commits it). */
  async close(sql = ''): Promise<void> {
    this.program.stdin!.end(sql ? `${sql}\n` : undefined);
    const code = await this.program.exitCode();
    if (code !== 0) throw programFailure(this.what, code, this.program.stderrText(), this.password);
  }

  abort(): void {
    this.program.abort();
  }
}

function splitRows(text: string, per: number, what: string): string[][] {
  if (text === '') return [];
  const fields = text.split('\0');
  if (fields.pop() !== '' || fields.length % per !== 0) throw new Error(`unexpected psql output from ${what}`);
  const rows: string[][] = [];
  for (let i = 0; i < fields.length; i += per) rows.push(fields.slice(i, i + per));
  return rows;
}
