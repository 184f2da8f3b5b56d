// The engine socket of an SSH host is forwarded to a unix socket on the worker: in a private
// directory (mkdtemp under the temp directory, mode 0700) of this DockerEngines, removed on close.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerEngines } from '../../activities/docker';
import type { SshPool } from '../../activities/ssh';
import type { HostSpec } from '../../common/types';
import { rejectionOf } from '../helpers/rejection';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-unit-engines-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// connects, never asked to open the remote socket (no API call is made)
const ssh = { connect: async () => undefined, openUnixSocket: async () => Promise.reject(new Error('not in this test')) } as unknown as SshPool;
const host = (name: string): HostSpec => ({ name, dockerSocket: '/var/run/docker.sock', ssh: { address: '10.0.0.1', port: 22, user: 'ops', keyFile: '/k', hostKey: 'SHA256:x' } }) as HostSpec;
const socketOf = async (engines: DockerEngines, h: HostSpec) => ((await engines.engine(h)) as unknown as { modem: { socketPath: string } }).modem.socketPath;

describe('forwarded engine sockets', () => {
  it('live in a fresh private directory (0700, ours) under the parent, removed on close', async () => {
    const parent = path.join(tmp, 'sockets');
    const engines = new DockerEngines(ssh, parent);
    const a = await socketOf(engines, host('a'));
    const b = await socketOf(engines, host('b'));
    const dir = path.dirname(a);
    expect(path.dirname(b)).toBe(dir);
    expect(path.dirname(dir)).toBe(parent);
    expect(path.basename(dir)).toMatch(/^runbook-engines-[A-Za-z0-9]{6}$/);
    const st = lstatSync(dir);
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(process.getuid!());
    expect(lstatSync(a).isSocket()).toBe(true);

    // another instance (another worker process) gets another directory: nothing to predict
    const other = new DockerEngines(ssh, parent);
    expect(path.dirname(await socketOf(other, host('a')))).not.toBe(dir);

    await engines.closeAll();
    await other.closeAll();
    expect(existsSync(dir)).toBe(false);
  });

  it('by default under the system temp directory, not at a name derived from the pid', async () => {
    const engines = new DockerEngines(ssh);
    const dir = path.dirname(await socketOf(engines, host('a')));
    try {
      expect(path.dirname(dir)).toBe(os.tmpdir());
      expect(dir).not.toContain(String(process.pid));
      expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    } finally {
      await engines.closeAll();
    }
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses a parent others can write to (not sticky)', async () => {
    const open = path.join(tmp, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const err = await rejectionOf(new DockerEngines(ssh, open).engine(host('a')));
    expect((err as Error).message).toMatch(/not a safe place for the forwarded Docker sockets/);
  });
});
