// An app as a set of services (seeds 001 and 004): a frontend, an API behind /api with WebSockets,
// a worker with no port, each with its own command, replicas, volumes and limits.
import { renderHttpsServer, renderForwardConfig, renderProxyConfig, renderRouteMap } from '../../common/commands/nginx';
import { InventoryError, parseInventory } from '../../common/inventory';
import { buildBackupPlan, buildDeployPlan, buildTrackedImagePlan, buildUpdatePlan, hostProxyConfig, slotKey } from '../../common/plan';
import { imageAt, isValidVersion, versionForNames, versionTag } from '../../common/naming';
import type { FleetContainer } from '../../common/types';

const STACK = `
hosts:
  one: { address: 127.0.0.1 }
  two: { address: 10.0.0.2 }
apps:
  tracker:
    image: reg:5000/tracker-frontend
    port: 80
    healthCheck: { path: /, command: [wget, -q, -O-, http://localhost/] }
    resources: { memory: 128m }
    services:
      api:
        image: reg:5000/tracker-backend
        port: 3000
        env: { PATH_PREFIX: /api }
        route: { path: [/api, /socket.io] }
        healthCheck: { command: "curl -fs localhost:3000/api/health", startPeriodSeconds: 10 }
        resources: { memory: 512m, cpus: 0.5 }
        volumes: { uploads: /srv/uploads }
      admin:
        image: reg:5000/tracker-backend
        port: 3001
        route: { path: /, host: admin.example.com }
      worker:
        image: reg:5000/tracker-backend
        command: [node, worker.js]
        replicas: 1
    migrate: { command: [npm, run, migrate], service: api }
    proxyImage: reg:5000/nginx:1
    environments:
      production:
        hosts: [one, two]
        replicas: 2
        version: v1
        proxy: { hostPort: 8080 }
`;

const inventory = parseInventory(STACK);
const target = { app: 'tracker', env: 'production' };

function problems(yaml: string): string[] {
  try {
    parseInventory(yaml);
    return [];
  } catch (err) {
    return (err as InventoryError).problems;
  }
}

describe('services in the inventory', () => {
  it('refuses what cannot be routed or named, saying where', () => {
    const bad = STACK.replace('      worker:\n', '      web:\n        port: 1\n      proxy:\n        port: 2\n      worker:\n')
      .replace('        route: { path: /, host: admin.example.com }', '        route: { path: /api/ }')
      .replace('command: [npm, run, migrate], service: api', 'command: [npm, run, migrate], service: jobs');
    expect(problems(bad)).toEqual(
      expect.arrayContaining([
        'apps.tracker.services.web: "web" is reserved (the main service: image, port and healthCheck of the app itself)',
        'apps.tracker.services.proxy: "proxy" is reserved',
        'apps.tracker.services.admin.route: /api/ is already routed to services.api',
        expect.stringMatching(/^apps\.tracker\.migrate\.service: unknown service "jobs" \(known: web, api, admin, /),
      ]),
    );
    expect(problems(STACK.replace('        command: [node, worker.js]', '        command: [node, worker.js]\n        route: { path: /jobs }'))).toEqual(['apps.tracker.services.worker.route: a routed service needs a port']);
    expect(problems(STACK.replace('        route: { path: /, host: admin.example.com }', '        route: { path: /, host: admin.example.com }\n        hosts: first'))).toEqual([
      'apps.tracker.services.admin.hosts: a routed service runs on every host (each host\'s proxy sends it requests): remove "hosts: first" or the route',
    ]);
    expect(problems(STACK.replace('        route: { path: /, host: admin.example.com }', '        route: { path: / }'))).toEqual([
      'apps.tracker.services.admin.route.path: "/" on every host is the main service\'s; give a longer prefix or a host',
    ]);
    expect(problems(STACK.replace('route: { path: [/api, /socket.io] }', 'route: { path: "api" }')).join('\n')).toMatch(/apps\.tracker\.services\.api\.route\.path: must be a path prefix like "\/api"/);
  });
});

describe('deploy plan of a stack', () => {
  const plan = buildDeployPlan(inventory, target, 'run-1');

  it('runs every service on every host, each with its image, command, settings, volumes, check and limits', () => {
    expect(plan.replicas.map((r) => [r.host, r.service ?? 'web', r.container.name, r.container.image])).toEqual([
      ['one', 'web', 'tracker-production-web-1', 'reg:5000/tracker-frontend:v1'],
      ['one', 'web', 'tracker-production-web-2', 'reg:5000/tracker-frontend:v1'],
      ['two', 'web', 'tracker-production-web-3', 'reg:5000/tracker-frontend:v1'],
      ['two', 'web', 'tracker-production-web-4', 'reg:5000/tracker-frontend:v1'],
      ['one', 'api', 'tracker-production-api-1', 'reg:5000/tracker-backend:v1'],
      ['one', 'api', 'tracker-production-api-2', 'reg:5000/tracker-backend:v1'],
      ['two', 'api', 'tracker-production-api-3', 'reg:5000/tracker-backend:v1'],
      ['two', 'api', 'tracker-production-api-4', 'reg:5000/tracker-backend:v1'],
      ['one', 'admin', 'tracker-production-admin-1', 'reg:5000/tracker-backend:v1'],
      ['one', 'admin', 'tracker-production-admin-2', 'reg:5000/tracker-backend:v1'],
      ['two', 'admin', 'tracker-production-admin-3', 'reg:5000/tracker-backend:v1'],
      ['two', 'admin', 'tracker-production-admin-4', 'reg:5000/tracker-backend:v1'],
      ['one', 'worker', 'tracker-production-worker-1', 'reg:5000/tracker-backend:v1'],
      ['two', 'worker', 'tracker-production-worker-2', 'reg:5000/tracker-backend:v1'],
    ]);
    const web = plan.replicas[0].container;
    expect(web.labels['runbook.service']).toBeUndefined(); // as before services existed: no drift
    expect(web.resources).toEqual({ memoryBytes: 128 * 1024 ** 2 });
    const api = plan.replicas.find((r) => r.service === 'api')!.container;
    expect(api).toMatchObject({
      role: 'web',
      env: { PATH_PREFIX: '/api', APP_ENV: 'production' },
      volumes: [{ name: 'tracker-production-uploads', target: '/srv/uploads' }],
      resources: { memoryBytes: 512 * 1024 ** 2, nanoCpus: 500_000_000 },
      healthCheck: { test: ['CMD-SHELL', 'curl -fs localhost:3000/api/health'], startPeriodSeconds: 10 },
    });
    expect(api.labels).toMatchObject({ 'runbook.service': 'api', 'runbook.replica': '1', 'runbook.role': 'web' });
    const worker = plan.replicas.find((r) => r.service === 'worker')!.container;
    expect(worker.cmd).toEqual(['node', 'worker.js']);
    expect(worker.resources).toEqual({ memoryBytes: 128 * 1024 ** 2 }); // the app's, as the environment sets none
  });

  it('a service placed on the first host only runs there, beside the dependencies', () => {
    const first = parseInventory(STACK.replace('        replicas: 1\n', '        replicas: 1\n        hosts: first\n'));
    expect(buildDeployPlan(first, target, 'r').replicas.filter((r) => r.service === 'worker').map((r) => [r.host, r.container.name])).toEqual([['one', 'tracker-production-worker-1']]);
  });

  it('pulls each image once per host, makes the volumes on every host, migrates with the named service\'s image', () => {
    expect(plan.pulls).toEqual([
      { host: 'one', image: 'reg:5000/tracker-frontend:v1' },
      { host: 'one', image: 'reg:5000/tracker-backend:v1' },
      { host: 'two', image: 'reg:5000/tracker-frontend:v1' },
      { host: 'two', image: 'reg:5000/tracker-backend:v1' },
    ]);
    expect(plan.volumes).toEqual([
      { host: 'one', name: 'tracker-production-uploads' },
      { host: 'two', name: 'tracker-production-uploads' },
    ]);
    expect(plan.migrate?.container).toMatchObject({ name: 'tracker-production-migrate-v1', image: 'reg:5000/tracker-backend:v1', cmd: ['npm', 'run', 'migrate'], volumes: [{ name: 'tracker-production-uploads', target: '/srv/uploads' }] });
  });

  it('routes each host\'s proxy to that host\'s replicas: /api and the admin host to theirs, the rest to web, WebSockets upgraded', () => {
    const config = plan.proxies[1].config;
    expect(config).toContain('upstream tracker_production {\n    server tracker-production-web-3:80 max_fails=3 fail_timeout=2s;\n    server tracker-production-web-4:80');
    expect(config).toContain('upstream tracker_production__api {\n    server tracker-production-api-3:3000 max_fails=3 fail_timeout=2s;\n    server tracker-production-api-4:3000');
    expect(config).toContain('upstream tracker_production__admin {\n    server tracker-production-admin-3:3001');
    expect(config.match(/upstream tracker_production__api /g)).toHaveLength(1); // one upstream, two paths
    expect(config).toContain('~^[^/]*/socket\\.io(/|$) tracker_production__api;');
    expect(config).not.toMatch(/worker|-1:|-2:/);
    expect(config).toContain('proxy_pass http://$runbook_upstream;');
    expect(config).toContain('proxy_set_header Upgrade $http_upgrade;');
    expect(config).toContain('proxy_set_header Connection $runbook_connection;');
  });

  it('the backup plan stops every service\'s replicas', () => {
    const withBackup = parseInventory(STACK.replace('    proxyImage:', '    backup:\n      storage: { type: directory, path: /srv/backups }\n      databases: [{ name: main, database: app, user: app, server: { address: 10.0.0.9 } }]\n    proxyImage:'));
    expect(buildBackupPlan(withBackup, target).web.map((w) => [w.host.name, w.containers])).toEqual([
      ['one', ['tracker-production-web-1', 'tracker-production-web-2', 'tracker-production-api-1', 'tracker-production-api-2', 'tracker-production-admin-1', 'tracker-production-admin-2', 'tracker-production-worker-1']],
      ['two', ['tracker-production-web-3', 'tracker-production-web-4', 'tracker-production-api-3', 'tracker-production-api-4', 'tracker-production-admin-3', 'tracker-production-admin-4', 'tracker-production-worker-2']],
    ]);
  });
});

describe('rolling update plan of a stack', () => {
  const fleet: FleetContainer[] = buildDeployPlan(inventory, target, 'run-1').replicas.map((r) => ({
    host: r.host,
    name: r.container.name,
    replica: r.index,
    ...(r.service ? { service: r.service } : {}),
    version: 'v1',
    image: r.container.image,
    state: 'running',
  }));
  const plan = buildUpdatePlan(inventory, { ...target, version: 'v2' }, fleet, 'run-2');

  it('has a slot per replica of every service, grouped in units: one replica of each service of a host and ordinal', () => {
    expect(plan.slots.map((s) => [slotKey(s), s.unit ?? s.index, s.current?.name, s.next.name])).toEqual([
      ['1', 1, 'tracker-production-web-1', 'tracker-production-web-1-v2'],
      ['api/1', 1, 'tracker-production-api-1', 'tracker-production-api-1-v2'],
      ['admin/1', 1, 'tracker-production-admin-1', 'tracker-production-admin-1-v2'],
      ['worker/1', 1, 'tracker-production-worker-1', 'tracker-production-worker-1-v2'],
      ['2', 2, 'tracker-production-web-2', 'tracker-production-web-2-v2'],
      ['api/2', 2, 'tracker-production-api-2', 'tracker-production-api-2-v2'],
      ['admin/2', 2, 'tracker-production-admin-2', 'tracker-production-admin-2-v2'],
      ['3', 3, 'tracker-production-web-3', 'tracker-production-web-3-v2'],
      ['api/3', 3, 'tracker-production-api-3', 'tracker-production-api-3-v2'],
      ['admin/3', 3, 'tracker-production-admin-3', 'tracker-production-admin-3-v2'],
      ['worker/2', 3, 'tracker-production-worker-2', 'tracker-production-worker-2-v2'],
      ['4', 4, 'tracker-production-web-4', 'tracker-production-web-4-v2'],
      ['api/4', 4, 'tracker-production-api-4', 'tracker-production-api-4-v2'],
      ['admin/4', 4, 'tracker-production-admin-4', 'tracker-production-admin-4-v2'],
    ]);
    expect(plan.images).toEqual(['reg:5000/tracker-frontend:v2', 'reg:5000/tracker-backend:v2']);
    expect(plan.migrate?.container.image).toBe('reg:5000/tracker-backend:v2');
    expect(plan.unchanged).toBe(false);
    expect(plan.strays).toEqual([]);
    expect(plan.slots.find((s) => s.service === 'worker')!.rollback).toMatchObject({ name: 'tracker-production-worker-1-v1', cmd: ['node', 'worker.js'] });
  });

  it('renders a host\'s proxy from the containers serving each slot now', () => {
    const live: Record<string, string> = { '3': 'tracker-production-web-3-v2', '4': 'tracker-production-web-4', 'api/3': 'tracker-production-api-3-v2', 'api/4': 'tracker-production-api-4', 'admin/3': 'a3', 'admin/4': 'a4', 'worker/2': 'w2' };
    const config = hostProxyConfig(plan, 'two', live);
    expect(config).toContain('server tracker-production-web-3-v2:80');
    expect(config).toContain('server tracker-production-api-3-v2:3000');
    expect(config).toContain('server a4:3001');
    expect(config).not.toContain('w2');
  });

  it('tells the main service\'s replicas from the others\' with the same number', () => {
    const mixed = fleet.map((c) => (c.service === 'api' && c.replica === 1 ? { ...c, version: 'v0' } : c));
    expect(() => buildUpdatePlan(inventory, { ...target, version: 'v2' }, mixed, 'r')).toThrow(/runs mixed versions \(.*tracker-production-api-1 v0/);
    const gone = fleet.filter((c) => !(c.service === 'worker' && c.replica === 2));
    expect(buildUpdatePlan(inventory, { ...target, version: 'v2' }, gone, 'r').slots.find((s) => slotKey(s) === 'worker/2')?.current).toBeUndefined();
  });
});

describe('the proxy\'s routes', () => {
  it('tries host routes first, then the longest prefix; the path is matched whole, regex characters escaped', () => {
    expect(
      renderRouteMap('app', 'prod', [
        { service: 'api', path: '/api' },
        { service: 'v2', path: '/api/v2.1/' },
        { service: 'admin', path: '/', host: '*.admin.example.com' },
      ]),
    ).toBe(`map "$host$uri" $runbook_upstream {
    default app_prod;
    ~^[^/]+\\.admin\\.example\\.com(/|$) app_prod__admin;
    ~^[^/]*/api/v2\\.1(/|$) app_prod__v2;
    ~^[^/]*/api(/|$) app_prod__api;
}`);
    expect(() => renderRouteMap('app', 'prod', [{ service: 'x', path: '/a b' }])).toThrow(/not a route path/);
  });

  it('a single-service app keeps one upstream, defines the route map (for HTTPS blocks: every request to it), and passes WebSocket upgrades', () => {
    const config = renderProxyConfig({ app: 'a', env: 'p', upstreams: ['a-p-web-1:8080'] });
    expect(config).toContain('map "$host$uri" $runbook_upstream {\n    default a_p;\n');
    expect(config).toContain('proxy_pass http://a_p;');
    expect(config).toContain('map $http_upgrade $runbook_connection');
    expect(() => renderProxyConfig({ app: 'a', env: 'p', upstreams: ['w:1'], routes: [{ service: 'api', path: '/api', upstreams: [] }] })).toThrow(/has no upstream/);
  });

  it('HTTPS follows the route map when the app has routes; a forward config sends every route to the other side', () => {
    expect(renderHttpsServer({ app: 'a', env: 'p', id: 'a-p', domains: ['a.example.com'], routed: true })).toContain('proxy_pass http://$runbook_upstream;');
    const plain = renderHttpsServer({ app: 'a', env: 'p', id: 'a-p', domains: ['a.example.com'] });
    expect(plain).toContain('proxy_pass http://a_p;');
    expect(plain).toContain('map $http_upgrade $runbook_tls_a_p_connection {');
    expect(renderForwardConfig({ app: 'a', env: 'p', to: 'http://10.0.0.9:80' })).toContain('map $host $runbook_upstream {\n    default a_p;\n}');
  });
});

describe('versions pinned to a digest (the update Schedule\'s)', () => {
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  it('are valid versions; images are pulled by digest; names carry the tag and 12 hex digits; the app reports the tag', () => {
    expect(isValidVersion(`latest@${digest}`)).toBe(true);
    expect(isValidVersion('latest@sha256:short')).toBe(false);
    expect(imageAt('reg:5000/shop', `latest@${digest}`)).toBe(`reg:5000/shop@${digest}`);
    expect(imageAt('reg:5000/shop', 'v2')).toBe('reg:5000/shop:v2');
    expect(versionForNames(`latest@${digest}`)).toBe('latest-0123456789ab');
    expect(versionTag(`latest@${digest}`)).toBe('latest');
    // one repository for every service: one digest pins them all
    const one = parseInventory(STACK.replaceAll('reg:5000/tracker-backend', 'reg:5000/tracker-frontend'));
    const fleet: FleetContainer[] = buildDeployPlan(one, target, 'r').replicas.map((r) => ({ host: r.host, name: r.container.name, replica: r.index, ...(r.service ? { service: r.service } : {}), version: 'v1', image: r.container.image, state: 'running' }));
    const plan = buildUpdatePlan(one, { ...target, version: `latest@${digest}` }, fleet, 'r');
    expect(plan.slots[0].next).toMatchObject({ name: 'tracker-production-web-1-latest-0123456789ab', image: `reg:5000/tracker-frontend@${digest}` });
    expect(plan.slots[0].next.labels['runbook.version']).toBe(`latest@${digest}`);
    expect(plan.migrate?.container.name).toBe('tracker-production-migrate-latest-0123456789ab');
    expect(() => buildTrackedImagePlan(inventory, target)).toThrow(/services run images of 2 repositories .*: one digest cannot pin them all/);
    expect(() => buildUpdatePlan(inventory, { ...target, version: `latest@${digest}` }, fleet, 'r')).toThrow(/pins one digest, but tracker's services run images of 2 repositories/);
  });
});
