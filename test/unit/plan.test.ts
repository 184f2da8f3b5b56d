import { formatPlan, formatStatus, stepChanges } from '../../client/format';
import { parseDuration, formatDuration } from '../../common/duration';
import { parseInventory } from '../../common/inventory';
import { buildDeployPlan, preflightRequests } from '../../common/plan';
import type { FleetContainer, RunbookStatus } from '../../common/types';
import { TEST_INVENTORY_YAML } from '../helpers/mock-activities';

const inventory = parseInventory(TEST_INVENTORY_YAML);

describe('deploy plan', () => {
  const plan = buildDeployPlan(inventory, { app: 'shop', env: 'production' }, 'run-1');

  it('names everything deterministically and labels it with the run', () => {
    expect(plan.image).toBe('reg:5000/shop:v1');
    expect(plan.network).toBe('shop-production');
    expect(plan.replicas.map((r) => [r.host, r.container.name])).toEqual([
      ['one', 'shop-production-web-1'],
      ['two', 'shop-production-web-2'],
    ]);
    expect(plan.replicas[0].container.labels).toMatchObject({ 'runbook.app': 'shop', 'runbook.env': 'production', 'runbook.version': 'v1', 'runbook.run-id': 'run-1', 'runbook.role': 'web' });
    expect(plan.dependencies[0].container).toMatchObject({ name: 'shop-production-postgres', aliases: ['postgres'], volumes: [{ name: 'shop-production-pgdata', target: '/var/lib/postgresql/data' }] });
    expect(plan.migrate?.container).toMatchObject({ name: 'shop-production-migrate-v1', cmd: ['shop', 'migrate'], restart: false });
    expect(plan.volumes).toEqual([{ host: 'one', name: 'shop-production-pgdata' }]);
  });

  it('puts one proxy per host in front of that host\'s replicas', () => {
    expect(plan.proxies.map((p) => [p.host, p.url])).toEqual([
      ['one', 'http://127.0.0.1:8080'],
      ['two', 'http://10.0.0.2:8080'],
    ]);
    expect(plan.proxies[0].config).toContain('server shop-production-web-1:8080');
    expect(plan.proxies[0].config).not.toContain('web-2');
    expect(plan.smokeTests[1]).toEqual({ url: 'http://10.0.0.2:8080/version', expectStatus: 200, expectBody: 'v1' });
  });

  it('references secrets by path only', () => {
    expect(plan.envFiles).toEqual([{ path: '/etc/shop.env', required: ['DATABASE_URL'] }]);
    expect(JSON.stringify(plan)).not.toMatch(/PASSWORD=|SECRET_KEY=/);
  });

  it('takes the version from the input over the inventory, and checks it', () => {
    expect(buildDeployPlan(inventory, { app: 'shop', env: 'production', version: 'v2' }, 'r').image).toBe('reg:5000/shop:v2');
    expect(() => buildDeployPlan(inventory, { app: 'shop', env: 'production', version: 'v 2' }, 'r')).toThrow(/version "v 2" is not a valid image tag/);
    expect(() => buildDeployPlan(inventory, { app: 'cart', env: 'production' }, 'r')).toThrow(/unknown app "cart" \(inventory has: shop\)/);
  });

  describe('on a fleet that already runs (read from the engines\' labels)', () => {
    const updated: FleetContainer[] = [
      { host: 'one', name: 'shop-production-web-1-v2', replica: 1, version: 'v2', image: 'reg:5000/shop:v2', state: 'running', previousVersion: 'v1' },
      { host: 'two', name: 'shop-production-web-2-v2', replica: 2, version: 'v2', image: 'reg:5000/shop:v2', state: 'running', previousVersion: 'v1' },
    ];

    it('after a rolling update: converges on the versioned replicas and their version, no migration, the same proxy config', () => {
      const p = buildDeployPlan(inventory, { app: 'shop', env: 'production' }, 'run-2', updated);
      expect(p.version).toBe('v2');
      expect(p.replicas.map((r) => [r.host, r.container.name, r.container.image])).toEqual([
        ['one', 'shop-production-web-1-v2', 'reg:5000/shop:v2'],
        ['two', 'shop-production-web-2-v2', 'reg:5000/shop:v2'],
      ]);
      expect(p.migrate).toBeUndefined();
      expect(p.proxies[0].config).toContain('server shop-production-web-1-v2:8080');
      expect(p.smokeTests[0].expectBody).toBe('v2');
      expect(buildDeployPlan(inventory, { app: 'shop', env: 'production', version: 'v2' }, 'run-2', updated).version).toBe('v2');
    });

    it('refuses another version (that is an update) and a fleet of mixed versions (an interrupted update)', () => {
      expect(() => buildDeployPlan(inventory, { app: 'shop', env: 'production', version: 'v3' }, 'r', updated)).toThrow(/already deployed at v2 \(shop-production-web-1-v2 v2 on one, .*\): change its version with `runbook update shop --env production --version v3`/);
      const mixed = [updated[0], { ...updated[1], name: 'shop-production-web-2-v1', version: 'v1' }];
      expect(() => buildDeployPlan(inventory, { app: 'shop', env: 'production' }, 'r', mixed)).toThrow(/runs mixed versions .*runbook rollback shop --env production --to <version>/);
    });

    it('a fleet of first-deploy names (or stopped containers) plans as before', () => {
      const firstNames: FleetContainer[] = [{ host: 'one', name: 'shop-production-web-1', replica: 1, version: 'v1', image: 'reg:5000/shop:v1', state: 'running' }];
      expect(buildDeployPlan(inventory, { app: 'shop', env: 'production' }, 'run-1', firstNames)).toEqual(plan);
      expect(buildDeployPlan(inventory, { app: 'shop', env: 'production' }, 'run-1', updated.map((c) => ({ ...c, state: 'exited' })))).toEqual(plan);
    });
  });

  it('sends worker-side checks with the first host only', () => {
    const reqs = preflightRequests(plan);
    expect(reqs.map((r) => [r.host.name, r.envFiles.length, r.ports.map((p) => p.port)])).toEqual([
      ['one', 1, [8080]],
      ['two', 0, [8080]],
    ]);
  });

  it('prints a readable plan', () => {
    const text = formatPlan(plan);
    expect(text).toContain('plan: shop v1 → production (image reg:5000/shop:v1)');
    expect(text).toContain('hosts: one (/run/test.sock), two (ssh deploy@10.0.0.2:22)');
    expect(text).toContain('go-live approval: 2 of alice, bob, carol');
  });
});

describe('CLI status output', () => {
  const status: RunbookStatus = {
    runbook: 'firstDeploy',
    app: 'shop',
    env: 'production',
    phase: 'awaiting-approval',
    step: 'approval:go-live',
    steps: [
      { step: 'plan', state: 'done', startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:01.500Z' },
      { step: 'approval:go-live', state: 'running', startedAt: '2026-01-01T00:00:02.000Z' },
    ],
    pendingGates: [{ gate: 'go-live', description: 'Expose shop', approvers: ['alice', 'bob'], minApprovals: 2, approvedBy: ['alice'], deadline: '2026-01-08T00:00:02.000Z' }],
    decisions: [{ gate: 'go-live', by: 'mallory', decision: 'approve', at: '2026-01-01T00:00:03.000Z', accepted: false, reason: 'not an approver', via: 'signal' }],
  };

  it('shows steps, pending gates with the commands to decide, and the decisions log', () => {
    const text = formatStatus('firstDeploy/shop/production', status);
    expect(text).toContain('[ok  ] plan (1.5s)');
    expect(text).toContain('[... ] approval:go-live');
    expect(text).toContain('WAITING for approval "go-live": Expose shop');
    expect(text).toContain('1/2 approvals (alice); approvers: alice, bob');
    expect(text).toContain('runbook approve firstDeploy/shop/production --gate go-live --by <name>');
    expect(text).toContain('mallory approve "go-live" via signal: ignored (not an approver)');
  });

  it('reports only changed steps while watching', () => {
    const before = status.steps.slice(0, 1);
    expect(stepChanges(before, status.steps).map((s) => s.step)).toEqual(['approval:go-live']);
    expect(stepChanges(status.steps, status.steps)).toEqual([]);
  });
});

describe('durations', () => {
  it('parses and formats runbook durations', () => {
    expect(parseDuration('48h')).toBe(172_800_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration(250)).toBe(250);
    expect(() => parseDuration('soon', 'approvalTimeout')).toThrow('approvalTimeout: "soon" is not a duration');
    expect(parseDuration(' 15m ')).toBe(900_000);
    expect(parseDuration('2 hours')).toBe(7_200_000);
    for (const bad of ['', '48', '-5m', '-0s', '5 fortnights', '1e3s', 'x'.repeat(101) + 's']) {
      expect(() => parseDuration(bad, 'bakeTime')).toThrow(`bakeTime: "${bad}" is not a duration`);
    }
    expect(() => parseDuration(-1, 'bakeTime')).toThrow('bakeTime: must be a non-negative number of milliseconds, got -1');
    expect(formatDuration(604_800_000)).toBe('7d');
    expect(formatDuration(90_000)).toBe('90s');
  });
});

describe('declared stacks: dependency commands, secret files, health checks, limits; per-environment files', () => {
  const yaml = TEST_INVENTORY_YAML.replace(
    '      - { name: postgres, image: "reg:5000/postgres:15", volumes: { pgdata: /var/lib/postgresql/data } }',
    `      - { name: postgres, image: "reg:5000/postgres:15", volumes: { pgdata: /var/lib/postgresql/data },
          env: { POSTGRES_PASSWORD_FILE: /run/secrets/pg-password },
          secretFiles: [{ path: /etc/shop/pg-password, target: /run/secrets/pg-password }],
          healthCheck: { command: [pg_isready, -U, shop], startPeriodSeconds: 10 },
          resources: { memory: 1g, cpus: 1.5 } }
      - { name: redis, image: "reg:5000/redis:7", command: [redis-server, --appendonly, "yes"],
          healthCheck: { command: "redis-cli -a \\"$$(cat /run/secrets/redis)\\" ping | grep -q PONG", intervalSeconds: 2, retries: 10 } }`,
  )
    .replace('    port: 8080\n', '    port: 8080\n    healthCheck: { command: [shop, healthcheck], probeTimeoutSeconds: 2 }\n    resources: { memory: 512m, cpus: 0.5 }\n')
    .replace(
      '        minApprovals: 2',
      '        minApprovals: 2\n        envFile: { path: /etc/shop/production.env, required: [DATABASE_URL] }\n        secretFiles: [{ path: /etc/shop/production-key, target: /run/secrets/key }]\n        resources: { memory: 2g }',
    );
  const inv = parseInventory(yaml);
  const plan = buildDeployPlan(inv, { app: 'shop', env: 'production' }, 'run-1');

  it("a dependency's command, secret files (for *_FILE), declared health check and limits go to its container", () => {
    const [pg, redis] = plan.dependencies.map((d) => d.container);
    expect(pg.binds).toEqual([{ source: '/etc/shop/pg-password', target: '/run/secrets/pg-password', readOnly: true }]);
    expect(pg.env).toEqual({ POSTGRES_PASSWORD_FILE: '/run/secrets/pg-password' });
    expect(pg.healthCheck).toEqual({ test: ['CMD', 'pg_isready', '-U', 'shop'], intervalSeconds: 5, timeoutSeconds: 5, retries: 3, startPeriodSeconds: 10 });
    expect(pg.resources).toEqual({ memoryBytes: 1024 ** 3, nanoCpus: 1_500_000_000 });
    expect(redis.cmd).toEqual(['redis-server', '--appendonly', 'yes']);
    expect(redis.healthCheck?.test[0]).toBe('CMD-SHELL');
    expect(redis.resources).toBeUndefined();
    // the preflight checks the dependency's secret file on the host it runs on
    expect(plan.secretFiles).toContainEqual({ host: 'one', path: '/etc/shop/pg-password' });
  });

  it("the environment's env file, secret files and limits replace the app's; the replicas get the declared health check, the migration not", () => {
    const web = plan.replicas[0].container;
    expect(web.envFiles).toEqual([{ path: '/etc/shop/production.env', required: ['DATABASE_URL'] }]);
    expect(web.binds).toEqual([{ source: '/etc/shop/production-key', target: '/run/secrets/key', readOnly: true }]);
    expect(web.resources).toEqual({ memoryBytes: 2 * 1024 ** 3 });
    expect(web.healthCheck).toEqual({ test: ['CMD', 'shop', 'healthcheck'], intervalSeconds: 5, timeoutSeconds: 2, retries: 3, startPeriodSeconds: 0 });
    expect(plan.migrate?.container.envFiles).toEqual(web.envFiles);
    expect(plan.migrate?.container.healthCheck).toBeUndefined();
    expect(plan.envFiles.map((f) => f.path)).toEqual(['/etc/shop/production.env']);
    expect(plan.secretFiles.filter((f) => f.path === '/etc/shop/production-key').map((f) => f.host)).toEqual(['one', 'two']);
    expect(JSON.stringify(plan)).not.toContain('/etc/shop.env');
  });

  it('a size that is not one is refused with the field and the expected form', () => {
    expect(() => parseInventory(yaml.replace('memory: 512m', 'memory: 512MB'))).toThrow(/apps\.shop\.resources\.memory: must be a size like "512m" or "1g"/);
    expect(() => parseInventory(yaml.replace('cpus: 0.5', 'cpus: 0'))).toThrow(/apps\.shop\.resources\.cpus: must be more than 0/);
  });
});
