// Where the machine set-up (scripts/) puts things; overridable through the environment.
export const RUNBOOK_HOME = process.env.RUNBOOK_HOME ?? '/var/lib/temporal-runbooks';
export const TEMPORAL_TEST_SERVER_PATH = process.env.TEMPORAL_TEST_SERVER_PATH ?? `${RUNBOOK_HOME}/temporal-bin/bin/temporal-test-server`;
export const TEMPORAL_CLI = process.env.TEMPORAL_CLI ?? `${RUNBOOK_HOME}/temporal-bin/bin/temporal`;
export const TEMPORAL_ADDRESS = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
export const DOCKER_SOCK = process.env.RUNBOOK_DOCKER_SOCK ?? '/run/temporal-runbooks/docker.sock';
export const SSH_PORT = Number(process.env.RUNBOOK_SSH_PORT ?? 2222);
export const SSH_KEY = `${RUNBOOK_HOME}/ssh/id_ed25519`;
export const SSH_HOST_FINGERPRINT_FILE = `${RUNBOOK_HOME}/ssh/host_fingerprint`;
export const REGISTRY = '127.0.0.1:5000';
// Authoritative DNS (scripts/bind9.sh) and the ACME test server (scripts/pebble.sh); see scripts/lib.sh.
export const BIND9_ADDRESS = process.env.BIND9_ADDRESS ?? '127.0.0.1:5353';
export const BIND9_SECONDARY_ADDRESS = process.env.BIND9_SECONDARY_ADDRESS ?? '127.0.0.2:5353';
export const BIND9_ZONE = process.env.BIND9_ZONE ?? 'runbooks.test';
export const BIND9_TSIG_KEY_FILE = process.env.BIND9_TSIG_KEY_FILE ?? `${RUNBOOK_HOME}/bind9/tsig.key`;
export const PEBBLE_DIRECTORY_URL = process.env.PEBBLE_DIRECTORY_URL ?? 'https://127.0.0.1:14000/dir';
export const PEBBLE_MANAGEMENT_URL = process.env.PEBBLE_MANAGEMENT_URL ?? 'https://127.0.0.1:15000';
export const PEBBLE_TLS_CA = process.env.PEBBLE_TLS_CA ?? `${RUNBOOK_HOME}/pebble/ca.pem`;
export const PEBBLE_HTTP_PORT = Number(process.env.PEBBLE_HTTP_PORT ?? 5002);
export const PEBBLE_CERT_VALIDITY_SECONDS = Number(process.env.PEBBLE_CERT_VALIDITY_SECONDS ?? 518400);
