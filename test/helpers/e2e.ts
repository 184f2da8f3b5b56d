// End-to-end plumbing: a rendered inventory with fresh secrets, a real worker process on its own
// task queue, the CLI as a user runs it, and history scanning.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { renderTemplate } from '../../common/template';
import { DOCKER_SOCK, SSH_HOST_FINGERPRINT_FILE, SSH_KEY, SSH_PORT, TEMPORAL_ADDRESS } from './paths';

const ROOT = path.join(__dirname, '../..');

export interface E2eSetup {
  dir: string;
  inventoryPath: string;
  secrets: string[];
  env: NodeJS.ProcessEnv;
}

/** Renders an inventory template with fresh secret files (mode 0600). */
export function e2eSetup(template: string, taskQueue: string): E2eSetup {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-'));
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const secretKey = `sk-${randomBytes(12).toString('hex')}`;
  const token = `tok-${randomBytes(12).toString('hex')}`;
  writeFileSync(path.join(dir, 'postgres.env'), `POSTGRES_PASSWORD=${password}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'app.env'), `DATABASE_URL=postgres://demo:${password}@postgres:5432/demo\nSECRET_KEY=${secretKey}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'api-token'), `${token}\n`, { mode: 0o600 });
  const inventoryPath = path.join(dir, 'inventory.yaml');
  writeFileSync(
    inventoryPath,
    renderTemplate(readFileSync(template, 'utf8'), {
      DOCKER_SOCK,
      SSH_PORT: String(SSH_PORT),
      SSH_KEY,
      SSH_HOST_FINGERPRINT: readFileSync(SSH_HOST_FINGERPRINT_FILE, 'utf8').trim(),
      SECRETS_DIR: dir,
    }),
  );
  const sshPrivateKeyBody = readFileSync(SSH_KEY, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'))[1] ?? '';
  return {
    dir,
    inventoryPath,
    secrets: [password, secretKey, token, sshPrivateKeyBody].filter(Boolean),
    env: { ...process.env, TEMPORAL_ADDRESS, RUNBOOK_TASK_QUEUE: taskQueue, RUNBOOK_INVENTORY: inventoryPath },
  };
}

export class WorkerProcess {
  private child?: ChildProcess;
  output = '';

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/workers/main.js')], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (c) => (this.output += c));
    child.stderr!.on('data', (c) => (this.output += c));
    const deadline = Date.now() + 30_000;
    while (!this.output.includes('runbook worker:')) {
      if (child.exitCode !== null) throw new Error(`worker exited: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`worker did not start: ${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILL: no graceful shutdown, in-flight activities are lost. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 240_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'dist/client/cli.js'), ...args], { env, timeout: timeoutMs, maxBuffer: 10 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

/** Every string and payload byte of a workflow's history, decoded to text. */
export async function historyText(client: Client, workflowId: string, runId?: string): Promise<string> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const parts: string[] = [];
  const visit = (v: unknown): void => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(history);
  return parts.join('\n');
}
