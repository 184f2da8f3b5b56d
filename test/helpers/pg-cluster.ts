// A throwaway PostgreSQL 15 server for integration tests: initdb into a temporary directory as the
// postgres user (the server refuses to run as root), scram-sha-256 with a password file,
// wal_level = logical, listening on 127.0.0.1 on a free port with its own socket directory.
import { execFile } from 'node:child_process';
import { appendFile, chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';

const run = promisify(execFile);
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PgCluster {
  dir: string;
  port: number;
  superuser: string;
  password: string;
  /** Holds `password` (readable by the worker, i.e. the test). */
  passwordFile: string;
  /** Runs SQL as the superuser (or `as`) on a database; returns the rows. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(database: string, sql: string, params?: unknown[], as?: { user: string; password: string }): Promise<T[]>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the server and removes its directory. */
  remove(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function asPostgres(argv: string[]): Promise<string> {
  const { stdout } = await run('runuser', ['-u', 'postgres', '--', ...argv], { env: { PATH: SYSTEM_PATH, LANG: 'C.UTF-8' } });
  return stdout;
}

/** `hostsAllowed`: CIDRs besides loopback that may log in with a password (containers on a Docker network). */
export async function startPgCluster(o: { name: string; password: string; superuser?: string; settings?: Record<string, string>; hostsAllowed?: string[] }): Promise<PgCluster> {
  const superuser = o.superuser ?? 'admin';
  const dir = await mkdtemp(path.join(os.tmpdir(), `pg-cluster-${o.name}-`));
  try {
    return await setUp(dir, o, superuser);
  } catch (err) {
    await run('/usr/sbin/runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', path.join(dir, 'data'), '-m', 'immediate', 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function setUp(dir: string, o: { name: string; password: string; settings?: Record<string, string>; hostsAllowed?: string[] }, superuser: string): Promise<PgCluster> {
  await chmod(dir, 0o755);
  const { uid, gid } = await run('id', ['-u', 'postgres'], { env: { PATH: SYSTEM_PATH } }).then(async (u) => ({ uid: Number(u.stdout), gid: Number((await run('id', ['-g', 'postgres'], { env: { PATH: SYSTEM_PATH } })).stdout) }));
  const data = path.join(dir, 'data');
  const sockets = path.join(dir, 'sock');
  const passwordFile = path.join(dir, 'password');
  await writeFile(passwordFile, `${o.password}\n`, { mode: 0o600 });
  await chown(passwordFile, uid, gid); // initdb (as postgres) reads it; the test (root) too
  await run('install', ['-d', '-o', 'postgres', '-g', 'postgres', '-m', '700', data, sockets, path.join(dir, 'log')]);
  await asPostgres([`${PG_BIN}/initdb`, '-D', data, '-U', superuser, `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
  let port = 0;
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${sockets}'`,
    wal_level: 'logical',
    max_wal_senders: '10',
    max_replication_slots: '10',
    // tests restart apply workers often: do not wait the default 5 s between attempts
    wal_retrieve_retry_interval: "'200ms'",
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: "'32MB'",
    ...o.settings,
  };
  const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n');
  await writeFile(path.join(data, 'postgresql.auto.conf'), `${conf}\n`);
  await run('chown', ['postgres:postgres', path.join(data, 'postgresql.auto.conf')]);
  if (o.hostsAllowed?.length) {
    await appendFile(path.join(data, 'pg_hba.conf'), o.hostsAllowed.map((cidr) => `host all all ${cidr} scram-sha-256\n`).join(''));
  }

  const cluster: PgCluster = {
    dir,
    get port() {
      return port;
    },
    superuser,
    password: o.password,
    passwordFile,
    async query(database, sql, params = [], as) {
      const client = new Client({ host: '127.0.0.1', port, database, user: as?.user ?? superuser, password: as?.password ?? o.password });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async start() {
      for (let attempt = 0; ; attempt++) {
        if (!port) port = await freePort();
        try {
          await asPostgres([`${PG_BIN}/pg_ctl`, '-D', data, '-l', path.join(dir, 'log', 'server.log'), '-w', '-t', '30', '-o', `-p ${port}`, 'start']);
          return;
        } catch (err) {
          if (attempt >= 3) throw err;
          port = 0; // taken meanwhile: another free port
        }
      }
    },
    async stop() {
      await asPostgres([`${PG_BIN}/pg_ctl`, '-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
    async remove() {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
