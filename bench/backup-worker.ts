// The "worker" side of bench/backup: one runbook backup (backupDatabase, as the activity runs it)
// in a process of its own, so its peak RSS is the worker's own. Started by bench/backup.ts:
//   node dist/bench/backup-worker.js '<json WorkerArgs>'
// Prints one JSON line (WorkerResult) on stdout. With `idle: true` it only loads the same modules
// and reports its RSS: the floor the backup's RSS is read against.
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backupDatabase } from '../activities/backup';
import { DockerEngines } from '../activities/docker';
import { SshPool } from '../activities/ssh';
import type { DatabaseTarget } from '../common/types';
import { localHost } from '../test/helpers/hosts';

export interface WorkerArgs {
  idle?: boolean;
  container: string;
  database: string;
  user: string;
  passwordFile: string;
  storageDir: string;
  checksums: boolean;
  /** The backup's time (ISO); part of the file name. */
  at: string;
  zstdLevel?: number;
}

export interface WorkerResult {
  /** backupDatabase from call to return (what a running worker spends), ms. */
  backupMs: number;
  /** From process start to the result (includes node start-up and module loading), ms. */
  processMs: number;
  file?: string;
  sizeBytes?: number;
  tables?: number;
  rows?: number;
  /** process.resourceUsage().maxRSS at the end: this process's peak RSS, KiB. */
  maxRssKiB: number;
  /** Peak RSS (VmHWM) of the worker's child processes (zstd), KiB, sampled every 100 ms. */
  childPeakRssKiB: Record<string, number>;
  /** CPU time of this node process (user + system), ms. */
  cpuMs: number;
}

/** VmHWM of every direct child of this process, kept at its maximum while sampled. */
function childSampler(): { stop(): Record<string, number> } {
  const peaks = new Map<number, { name: string; kib: number }>();
  const sample = () => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${process.pid}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let children: string;
      try {
        children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const pid of children.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          const name = /^Name:\s+(\S+)/m.exec(status)?.[1] ?? String(pid);
          const kib = Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
          const prev = peaks.get(pid);
          if (!prev || kib > prev.kib) peaks.set(pid, { name, kib });
        } catch {
          // exited meanwhile
        }
      }
    }
  };
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      const byName: Record<string, number> = {};
      for (const { name, kib } of peaks.values()) byName[name] = Math.max(byName[name] ?? 0, kib);
      return byName;
    },
  };
}

async function main(): Promise<void> {
  const started = performance.timeOrigin;
  const args = JSON.parse(process.argv[2] ?? '{}') as WorkerArgs;
  const cpu0 = process.cpuUsage();
  if (args.idle) {
    const result: WorkerResult = { backupMs: 0, processMs: Date.now() - started, maxRssKiB: process.resourceUsage().maxRSS, childPeakRssKiB: {}, cpuMs: 0 };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const ssh = new SshPool();
  const engines = new DockerEngines(ssh, path.join(os.tmpdir(), `bench-backup-sockets-${process.pid}`));
  const target: DatabaseTarget = {
    name: 'main',
    database: args.database,
    user: args.user,
    passwordFile: args.passwordFile,
    location: { kind: 'container', host: localHost, container: args.container, port: 5432 },
  };
  const sampler = childSampler();
  const t0 = performance.now();
  const manifest = await backupDatabase(
    { engines, ssh },
    { app: 'bench', env: 'bench', target, storage: { type: 'directory', path: args.storageDir }, at: args.at, checksums: args.checksums },
    args.zstdLevel !== undefined ? { zstdLevel: args.zstdLevel } : {},
  );
  const backupMs = performance.now() - t0;
  const childPeakRssKiB = sampler.stop();
  const cpu = process.cpuUsage(cpu0);
  const result: WorkerResult = {
    backupMs,
    processMs: Date.now() - started,
    file: manifest.file,
    sizeBytes: manifest.sizeBytes,
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((n, t) => n + t.rows, 0),
    maxRssKiB: process.resourceUsage().maxRSS,
    childPeakRssKiB,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
  await engines.closeAll();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`backup-worker: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
