// The real test hosts: the local engine through its socket, and the same engine over SSH.
import { readFileSync } from 'node:fs';
import type { HostSpec } from '../../common/types';
import { DOCKER_SOCK, RUNBOOK_HOME, SSH_HOST_FINGERPRINT_FILE, SSH_KEY, SSH_PORT } from './paths';

export const localHost: HostSpec = { name: 'local', address: '127.0.0.1', dockerSocket: DOCKER_SOCK, minFreeDiskMb: 256 };

export function sshHost(hostKey = readFileSync(SSH_HOST_FINGERPRINT_FILE, 'utf8').trim()): HostSpec {
  return {
    name: 'edge',
    address: '127.0.0.1',
    ssh: { address: '127.0.0.1', port: SSH_PORT, user: 'root', keyFile: SSH_KEY, hostKey },
    dockerSocket: DOCKER_SOCK,
    minFreeDiskMb: 256,
  };
}

/**
 * Host 2 (scripts/host2.sh): a second, independent engine in the network namespace rbhost2, reached
 * over SSH at 10.201.0.2:22 (its own host key; the same client key). Ports its containers publish on
 * 10.201.0.2 (or 0.0.0.0) are reached at 10.201.0.2; it pulls the same 127.0.0.1:5000/... images.
 */
export function host2(hostKey = readFileSync(`${RUNBOOK_HOME}/host2/ssh/host_fingerprint`, 'utf8').trim()): HostSpec {
  return {
    name: 'host2',
    address: '10.201.0.2',
    ssh: { address: '10.201.0.2', port: 22, user: 'root', keyFile: SSH_KEY, hostKey },
    dockerSocket: '/run/temporal-runbooks/docker2.sock',
    minFreeDiskMb: 256,
  };
}
