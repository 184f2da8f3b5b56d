// SSH to hosts: one persistent connection per host, the host key pinned by fingerprint.
// Commands arrive as argv arrays (built by pure functions) and are quoted once here.
import { createHash } from 'node:crypto';
import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { shellQuote } from '../common/commands/shell';
import type { SshSpec } from '../common/types';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `SHA256:<base64 without padding>`, the form `ssh-keygen -lf` prints. */
export function hostKeyFingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

/** A command running on a host (see SshPool.exec). */
export interface RemoteProcess {
  /** The command's stdin; end() sends EOF. */
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /**
   * Settles when the channel closes (only after stdout and stderr have been read to their end):
   * the exit code, or the signal that ended the command; both null when the connection was lost.
   */
  exit: Promise<{ code: number | null; signal: string | null }>;
  /** Closes the channel now: the command sees EOF on stdin and SIGPIPE on its output. */
  close(): void;
}

export const sshTarget = (s: SshSpec): string => `${s.user}@${s.address}:${s.port}`;

export class SshPool {
  private readonly connections = new Map<string, Promise<NodeSSH>>();
  /** How many SSH handshakes this pool has made (one per host, unless a connection dropped). */
  handshakes = 0;

  /** A connected client for the host, reusing the open connection. */
  async connect(spec: SshSpec): Promise<NodeSSH> {
    const key = JSON.stringify(spec);
    const existing = this.connections.get(key);
    if (existing) {
      const ssh = await existing.catch(() => undefined);
      if (ssh?.isConnected()) return ssh;
      this.connections.delete(key);
    }
    const attempt = this.open(spec);
    this.connections.set(key, attempt);
    attempt.catch(() => this.connections.delete(key));
    return attempt;
  }

  private async open(spec: SshSpec): Promise<NodeSSH> {
    let seenKey: string | undefined;
    const ssh = new NodeSSH();
    this.handshakes++;
    try {
      await ssh.connect({
        host: spec.address,
        port: spec.port,
        username: spec.user,
        privateKeyPath: spec.keyFile,
        readyTimeout: 15_000,
        keepaliveInterval: 10_000,
        hostVerifier: (key: Buffer) => {
          seenKey = hostKeyFingerprint(key);
          return seenKey === spec.hostKey;
        },
      });
    } catch (err) {
      if (seenKey !== undefined && seenKey !== spec.hostKey) {
        throw ApplicationFailure.nonRetryable(
          `host key mismatch for ${sshTarget(spec)}: the server presented ${seenKey} but the inventory pins ${spec.hostKey}; refusing to connect`,
          'HostKeyMismatch',
        );
      }
      const message = (err as Error).message;
      if (/ENOENT|no such file/i.test(message)) {
        throw ApplicationFailure.nonRetryable(`SSH key file ${spec.keyFile} for ${sshTarget(spec)} cannot be read`, 'BadSshKey');
      }
      if (/authentication methods failed/i.test(message)) {
        throw ApplicationFailure.nonRetryable(`SSH authentication to ${sshTarget(spec)} failed with key ${spec.keyFile}`, 'SshAuthFailed');
      }
      throw new Error(`cannot connect to ${sshTarget(spec)}: ${message}`);
    }
    ssh.connection?.on('close', () => this.connections.delete(JSON.stringify(spec)));
    return ssh;
  }

  /** Runs argv on the host. Never throws on a non-zero exit: the caller decides. */
  async run(spec: SshSpec, argv: readonly string[]): Promise<CommandResult> {
    const ssh = await this.connect(spec);
    const r = await ssh.execCommand(shellQuote(argv));
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Starts argv on the host over the shared connection and streams its stdin/stdout/stderr with
   * SSH flow control (nothing is buffered beyond the channel window). Read stdout and stderr to
   * their end, or `exit` never settles. With `stdin`, that stream is piped in (EOF at its end);
   * if it fails, the channel is closed and `exit` rejects with its error (the command may have
   * seen a plain EOF, so the caller must not trust its exit code).
   */
  async exec(spec: SshSpec, argv: readonly string[], options: { stdin?: Readable } = {}): Promise<RemoteProcess> {
    const ssh = await this.connect(spec);
    const command = shellQuote(argv);
    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      ssh.connection!.exec(command, (err, ch) => (err ? reject(new Error(`cannot start ${argv[0]} on ${sshTarget(spec)}: ${err.message}`)) : resolve(ch)));
    });
    let code: number | null = null;
    let signal: string | null = null;
    channel.on('exit', (c: number | null, s?: string) => {
      code = typeof c === 'number' ? c : null;
      signal = s ?? null;
    });
    let stdinError: Error | undefined;
    if (options.stdin) {
      options.stdin.once('error', (err) => (stdinError = err)); // before the channel closes, unlike pipeline's rejection
      pipeline(options.stdin, channel).catch(() => channel.close());
    }
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve, reject) =>
      channel.once('close', () => (stdinError ? reject(stdinError) : resolve({ code, signal }))),
    );
    return { stdin: channel, stdout: channel, stderr: channel.stderr, exit, close: () => channel.close() };
  }

  /** A stream to a unix socket on the host (OpenSSH streamlocal forwarding), over the shared connection. */
  async openUnixSocket(spec: SshSpec, socketPath: string): Promise<Duplex> {
    const ssh = await this.connect(spec);
    return new Promise((resolve, reject) => {
      ssh.connection!.openssh_forwardOutStreamLocal(socketPath, (err, channel) => (err ? reject(err) : resolve(channel)));
    });
  }

  async closeAll(): Promise<void> {
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.dispose()));
  }
}
