// The real test hosts: the local engine through its socket, and the same engine over SSH.
import { readFileSync } from 'node:fs';
import type { HostSpec } from '../../common/types';
import { DOCKER_SOCK, SSH_HOST_FINGERPRINT_FILE, SSH_KEY, SSH_PORT } from './paths';

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
