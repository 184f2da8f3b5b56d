// The example inventories (one per seed system) are valid, and plan what their seed guide runs.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseInventory } from '../../common/inventory';
import { buildBackupPlan, buildDeployPlan } from '../../common/plan';
import { renderTemplate } from '../../common/template';

const DIR = path.join(__dirname, '../../examples');
const VARS = {
  DOCKER_SOCK: '/var/run/docker.sock',
  SECRETS_DIR: '/etc/secrets',
  HOST_PORT: '8080',
  STAGING_PORT: '8081',
  HOST2_ADDRESS: '10.0.0.2',
  HOST2_DOCKER_SOCK: '/var/run/docker.sock',
  SSH_KEY: '/root/.ssh/id_ed25519',
  HOST2_FINGERPRINT: `SHA256:${'A'.repeat(43)}`,
};
const examples = readdirSync(DIR).filter((f) => /^\d{3}-.*\.yaml$/.test(f));
const load = (file: string) => parseInventory(renderTemplate(readFileSync(path.join(DIR, file), 'utf8'), VARS));

/** What each deploy plan runs: `<host> <container> <image>` per replica, and the dependencies. */
function runs(file: string, env = 'production'): string[] {
  const inventory = load(file);
  const [app] = Object.keys(inventory.apps);
  const plan = buildDeployPlan(inventory, { app, env }, 'r');
  return [...plan.replicas.map((r) => `${r.host} ${r.container.name} ${r.container.image.replace('127.0.0.1:5000/', '')}`), ...plan.dependencies.map((d) => `${d.host} ${d.container.name} ${d.container.image.replace('127.0.0.1:5000/', '')}`)];
}

it('there is one per seed system', () => {
  expect(examples.map((f) => f.slice(0, 3))).toEqual(['000', '001', '002', '003', '004']);
  for (const f of examples) expect(readFileSync(path.join(DIR, f), 'utf8')).toMatch(new RegExp(`^# Seed ${f.slice(0, 3)} \\(`));
});

it('000 LUStores: one app, PostgreSQL and Redis with AOF, backed up', () => {
  expect(runs('000-lustores.yaml')).toEqual([
    'local lustores-production-web-1 demo-app:v1',
    'local lustores-production-web-2 demo-app:v1',
    'local lustores-production-postgres postgres:15',
    'local lustores-production-redis redis:7.2',
  ]);
  expect(buildBackupPlan(load('000-lustores.yaml'), { app: 'lustores', env: 'production' }).targets.map((t) => t.name)).toEqual(['main']);
});

it('001 Incident Tracker: a frontend and a backend behind one proxy (/api)', () => {
  expect(runs('001-incident-tracker.yaml')).toEqual([
    'local tracker-production-web-1 demo-app:v1',
    'local tracker-production-backend-1 demo-app:v1',
    'local tracker-production-postgres postgres:15',
  ]);
  const inventory = load('001-incident-tracker.yaml');
  const plan = buildDeployPlan(inventory, { app: 'tracker', env: 'production' }, 'r');
  expect(plan.proxies[0].config).toContain('~^[^/]*/api(/|$) tracker_production__backend;');
  expect(plan.migrate?.container.env).toMatchObject({ PATH_PREFIX: '/api' });
});

it("002 Phase 7: the database password as a *_FILE secret, staging's own env file and limits", () => {
  const inventory = load('002-phase7.yaml');
  const production = buildDeployPlan(inventory, { app: 'phase7', env: 'production' }, 'r');
  const staging = buildDeployPlan(inventory, { app: 'phase7', env: 'staging' }, 'r');
  expect(production.replicas[0].container.envFiles).toEqual([{ path: '/etc/secrets/app.env', required: ['DATABASE_URL'] }]);
  expect(staging.replicas[0].container.envFiles).toEqual([{ path: '/etc/secrets/staging.env', required: ['DATABASE_URL', 'EMAIL_ENABLED'] }]);
  expect(staging.replicas[0].container.resources).toEqual({ memoryBytes: 512 * 1024 ** 2, nanoCpus: 500_000_000 });
  const postgres = production.dependencies.find((d) => d.name === 'postgres')!.container;
  expect(postgres.binds).toEqual([{ source: '/etc/secrets/pg-password', target: '/run/secrets/postgres-password', readOnly: true }]);
  expect(JSON.stringify(postgres.env)).not.toMatch(/POSTGRES_PASSWORD"/);
  expect(production.dependencies.every((d) => d.container.resources?.memoryBytes)).toBe(true);
});

it('003 Payload VPS: the app on SQLite with its media on volumes; the database backed up inside its container, the media archived', () => {
  expect(runs('003-payload-vps.yaml')).toEqual(['local payload-production-web-1 demo-app:v1']);
  const inventory = load('003-payload-vps.yaml');
  const plan = buildDeployPlan(inventory, { app: 'payload', env: 'production' }, 'r');
  expect(plan.replicas[0].container.volumes).toEqual([
    { name: 'payload-production-payload-db', target: '/data' },
    { name: 'payload-production-media', target: '/app/public/media' },
  ]);
  expect(plan.migrate?.container.volumes).toEqual(plan.replicas[0].container.volumes); // it migrates the file the app uses
  const backup = buildBackupPlan(inventory, { app: 'payload', env: 'production' });
  expect(backup.targets[0].location).toMatchObject({ kind: 'sqlite', service: 'web', path: '/data/app.db', volume: 'payload-production-payload-db', mountPath: '/data' });
  expect(backup.archives.volumes.map((v) => v.volume)).toEqual(['payload-production-media']);
  expect(backup.web[0].containers).toEqual(['payload-production-web-1']);
});

it('004 NixFlow: frontend, API (/api and /socket.io), a worker on the first host, PostgreSQL and Redis with a password, on two hosts', () => {
  expect(runs('004-nixflow.yaml')).toEqual([
    'local nixflow-production-web-1 demo-app:v1',
    'host2 nixflow-production-web-2 demo-app:v1',
    'local nixflow-production-api-1 demo-app:v1',
    'host2 nixflow-production-api-2 demo-app:v1',
    'local nixflow-production-worker-1 demo-app:v1',
    'local nixflow-production-postgres postgres:15',
    'local nixflow-production-redis redis:7.2',
  ]);
});

it('a SQLite database on a service that runs on several hosts is refused (each host would have its own copy)', () => {
  const yaml = renderTemplate(readFileSync(path.join(DIR, '003-payload-vps.yaml'), 'utf8'), VARS).replace('hosts: [local]', 'hosts: [local, other]').replace('hosts:\n  local:', 'hosts:\n  other: { address: 10.0.0.3 }\n  local:');
  expect(() => parseInventory(yaml)).toThrow(/backup\.sqlite\.0\.service: web runs on several hosts in production: each host would have its own copy of \/data\/app\.db/);
});

it("a version pinned to a digest is refused for an app whose services use several repositories", () => {
  const inventory = load('001-incident-tracker.yaml');
  // 001's services share one repository here; another repository for the backend makes two
  inventory.apps.tracker.services.backend.image = '127.0.0.1:5000/tracker-backend';
  expect(() => buildDeployPlan(inventory, { app: 'tracker', env: 'production', version: `v2@sha256:${'a'.repeat(64)}` }, 'r')).toThrow(/pins one digest, but tracker's services run images of 2 repositories/);
});
