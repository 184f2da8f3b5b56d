import { readFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { InventoryError, parseInventory } from '../../common/inventory';
import { renderTemplate } from '../../common/template';

const FINGERPRINT = 'SHA256:' + 'A'.repeat(43);

function validInventory(): any {
  return {
    hosts: {
      local: { docker: { socketPath: '/run/docker.sock' } },
      edge: { ssh: { address: '10.0.0.5', user: 'deploy', keyFile: '/keys/id', hostKey: FINGERPRINT } },
    },
    apps: {
      shop: {
        image: 'registry.example.com:5000/shop',
        port: 8080,
        envFile: { path: '/etc/shop/app.env', required: ['DATABASE_URL'] },
        dependencies: [{ name: 'postgres', image: 'postgres:15', volumes: { pgdata: '/var/lib/postgresql/data' } }],
        proxyImage: 'nginx:1.25',
        environments: {
          production: { hosts: ['local', 'edge'], replicas: 2, version: 'v1', proxy: { hostPort: 80 }, approvers: ['alice', 'bob'], minApprovals: 2 },
        },
      },
    },
  };
}

function problemsOf(mutate: (inv: any) => void): string[] {
  const inv = validInventory();
  mutate(inv);
  try {
    parseInventory(stringify(inv));
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return (err as InventoryError).problems;
  }
  throw new Error('expected the inventory to be rejected');
}

describe('inventory', () => {
  it('notify: webhooks with a format, the UI address and a reminder lead; an environment may replace it; never next to the older per-section notify', () => {
    const inv = validInventory();
    inv.apps.shop.notify = { webhooks: [{ urlFile: '/etc/shop/hook' }, { urlFile: '/etc/shop/slack', format: 'slack' }], uiUrl: 'https://temporal.example.com' };
    const parsed = parseInventory(stringify(inv));
    expect(parsed.apps.shop.notify).toEqual({ webhooks: [{ urlFile: '/etc/shop/hook', format: 'json' }, { urlFile: '/etc/shop/slack', format: 'slack' }], uiUrl: 'https://temporal.example.com', remindBefore: '1h' });
    expect(
      problemsOf((i) => {
        i.apps.shop.notify = { webhooks: [{ urlFile: 'hook', format: 'teams' }], remindBefore: 'soon', uiUrl: 'not a url' };
      }),
    ).toEqual([
      expect.stringMatching(/^apps\.shop\.notify\.webhooks\.0\.urlFile: must be an absolute path/),
      expect.stringMatching(/^apps\.shop\.notify\.webhooks\.0\.format: .*"json".*"slack"/),
      expect.stringMatching(/^apps\.shop\.notify\.uiUrl: must be a URL/),
      expect.stringMatching(/^apps\.shop\.notify\.remindBefore: .*soon/),
    ]);
    expect(
      problemsOf((i) => {
        i.apps.shop.environments.production.notify = { webhooks: [{ urlFile: '/etc/shop/hook' }] };
        i.apps.shop.backup = { storage: { type: 'directory', path: '/srv/b' }, databases: [{ name: 'main', dependency: 'postgres', database: 'shop', user: 'shop' }], notify: { webhookUrlFile: '/etc/shop/old' } };
      }),
    ).toEqual([expect.stringMatching(/^apps\.shop\.backup\.notify: remove it .*each would arrive twice.*apps\.shop\.notify\.webhooks/)]);
  });

  it('accepts a valid inventory and fills defaults', () => {
    const inv = parseInventory(stringify(validInventory()));
    expect(inv.hosts.edge.ssh?.port).toBe(22);
    expect(inv.hosts.local.minFreeDiskMb).toBe(1024);
    expect(inv.apps.shop.healthCheck).toEqual({ path: '/health', timeoutSeconds: 90 });
    expect(inv.apps.shop.environments.production.goLiveApproval).toBe(false);
    expect(inv.apps.shop.environments.production.proxy.bindAddress).toBe('127.0.0.1');
  });

  it('accepts the demo inventory once rendered', () => {
    const text = readFileSync(path.join(__dirname, '../../examples/inventory.yaml'), 'utf8');
    const rendered = renderTemplate(text, { DOCKER_SOCK: '/run/d.sock', SSH_PORT: '2222', SSH_KEY: '/k/id', SSH_HOST_FINGERPRINT: FINGERPRINT, DEMO_DIR: '/demo' });
    const inv = parseInventory(rendered);
    expect(Object.keys(inv.apps.demo.environments)).toEqual(['production', 'staging']);
  });

  const cases: [string, (inv: any) => void, RegExp][] = [
    ['not YAML', () => undefined, /./], // replaced below
    ['missing hosts', (inv) => delete inv.hosts, /^hosts: is required$/],
    ['unknown top-level field', (inv) => (inv.servers = {}), /^\(top level\): unknown field\(s\) "servers"$/],
    ['bad host name', (inv) => (inv.hosts.Local_1 = {}), /^hosts\.Local_1: host name must be lowercase/],
    ['bad host key fingerprint', (inv) => (inv.hosts.edge.ssh.hostKey = 'MD5:aa:bb'), /^hosts\.edge\.ssh\.hostKey: must be a pinned host key fingerprint/],
    ['relative key file', (inv) => (inv.hosts.edge.ssh.keyFile = 'keys/id'), /^hosts\.edge\.ssh\.keyFile: must be an absolute path$/],
    ['port out of range', (inv) => (inv.hosts.edge.ssh.port = 70000), /^hosts\.edge\.ssh\.port: must be between 1 and 65535$/],
    ['ssh without address', (inv) => delete inv.hosts.edge.ssh.address, /^hosts\.edge\.ssh\.address: is required$/],
    ['image with a tag', (inv) => (inv.apps.shop.image = 'shop:v1'), /^apps\.shop\.image: must be an image repository without tag/],
    ['proxy image without tag', (inv) => (inv.apps.shop.proxyImage = 'nginx'), /^apps\.shop\.proxyImage: must be an image reference with a tag/],
    ['app port as string', (inv) => (inv.apps.shop.port = '8080'), /^apps\.shop\.port: must be a port number$/],
    ['zero replicas', (inv) => (inv.apps.shop.environments.production.replicas = 0), /^apps\.shop\.environments\.production\.replicas: must be at least 1$/],
    ['unknown host reference', (inv) => (inv.apps.shop.environments.production.hosts = ['local', 'nowhere']), /^apps\.shop\.environments\.production\.hosts\.1: unknown host "nowhere" \(known: local, edge\)$/],
    ['no hosts in environment', (inv) => (inv.apps.shop.environments.production.hosts = []), /^apps\.shop\.environments\.production\.hosts: must list at least one host$/],
    ['more approvals than approvers', (inv) => (inv.apps.shop.environments.production.minApprovals = 3), /^apps\.shop\.environments\.production\.minApprovals: 3 approvals required but only 2 approver\(s\) listed$/],
    ['bad env var name', (inv) => (inv.apps.shop.envFile.required = ['DATABASE-URL']), /^apps\.shop\.envFile\.required\.0: must be an environment variable name$/],
    ['duplicate dependency', (inv) => inv.apps.shop.dependencies.push({ name: 'postgres', image: 'postgres:16' }), /^apps\.shop\.dependencies\.1\.name: "postgres" is used twice$/],
    ['reserved dependency name', (inv) => (inv.apps.shop.dependencies[0].name = 'web'), /^apps\.shop\.dependencies\.0\.name: "web" is reserved$/],
    ['two environments on one port', (inv) => (inv.apps.shop.environments.staging = { hosts: ['local'], proxy: { hostPort: 80 } }), /^apps\.shop\.environments\.staging\.proxy\.hostPort: port 80 on host "local" is already used by shop\/production$/],
    ['invalid version', (inv) => (inv.apps.shop.environments.production.version = 'v1 beta'), /^apps\.shop\.environments\.production\.version: must be a valid image tag/],
    ['unknown app field', (inv) => (inv.apps.shop.replicas = 3), /^apps\.shop: unknown field\(s\) "replicas"$/],
    ['health path without slash', (inv) => (inv.apps.shop.healthCheck = { path: 'health' }), /^apps\.shop\.healthCheck\.path: must start with "\/"$/],
    ['empty migrate command', (inv) => (inv.apps.shop.migrate = { command: [] }), /^apps\.shop\.migrate\.command: must have at least one word$/],
    ['secret file target relative', (inv) => (inv.apps.shop.secretFiles = [{ path: '/s/token', target: 'token' }]), /^apps\.shop\.secretFiles\.0\.target: must be an absolute path$/],
    ['bad domain', (inv) => (inv.apps.shop.environments.production.proxy.domain = 'Shop Example'), /^apps\.shop\.environments\.production\.proxy\.domain: must be a DNS name$/],
  ];

  it('rejects text that is not YAML', () => {
    expect(() => parseInventory('hosts: [unclosed')).toThrow(/not valid YAML/);
  });

  it('rejects a YAML list at the top', () => {
    expect(() => parseInventory('- a\n- b\n')).toThrow(/\(top level\): must be a mapping with "hosts" and "apps"/);
  });

  it.each(cases.slice(1))('rejects %s with a message naming the field', (_name, mutate, expected) => {
    const problems = problemsOf(mutate);
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
    
  });

  it('lists every problem at once', () => {
    const problems = problemsOf((inv) => {
      inv.apps.shop.port = 0;
      inv.apps.shop.environments.production.replicas = -1;
    });
    expect(problems).toHaveLength(2);
  });
});
