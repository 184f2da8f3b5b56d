import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerCreateBody, containerDrift, demuxDockerStream, engineHealthCheck, engineResources, labelFilter, lastLines, splitImageReference, summarizeHealthLog } from '../../common/commands/docker';
import { missingVariables, parseEnvFile, toDockerEnv } from '../../common/commands/envfile';
import {
  FORWARD_MARKER,
  forwardTarget,
  keptConfigPath,
  MAINTENANCE,
  NGINX_DRAIN_TIMED_OUT,
  NGINX_FORWARD_EXIT,
  NGINX_SWITCH_EXIT,
  nginxForwardArgv,
  nginxMaintenanceArgv,
  nginxSwitchArgv,
  nginxTestAndReloadArgv,
  nginxUnforwardArgv,
  nginxWorkersGoneArgv,
  parseSwitchedWorkers,
  renderForwardConfig,
  renderHttpsServer,
  renderMaintenanceSnippets,
  renderProxyConfig,
  TLS_DIR,
} from '../../common/commands/nginx';
import { fileReadableArgv, freeDiskArgv, parseDfAvailableMb, portIsListening, shellQuote } from '../../common/commands/shell';
import { tarFiles, tarSingleFile } from '../../common/commands/tar';
import type { ContainerSpec } from '../../common/types';

const spec: ContainerSpec = {
  name: 'shop-prod-web-1',
  image: 'reg:5000/shop:v1',
  role: 'web',
  labels: { 'runbook.app': 'shop', 'runbook.env': 'prod', 'runbook.role': 'web', 'runbook.version': 'v1' },
  env: { APP_ENV: 'prod' },
  envFiles: [{ path: '/etc/shop.env', required: ['DB'] }],
  cmd: ['shop', 'serve'],
  network: 'shop-prod',
  aliases: ['web'],
  volumes: [{ name: 'shop-prod-data', target: '/data' }],
  binds: [{ source: '/etc/token', target: '/run/secrets/token', readOnly: true }],
  ports: [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80 }],
  stopTimeoutSeconds: 20,
  restart: true,
};

describe('shell argv', () => {
  it('quotes so that a shell sees exactly the argv', () => {
    const argv = ['printf', '%s\\n', "it's", 'a b', '$HOME', '`id`', '', 'semi;colon', 'x"y'];
    const out = execFileSync('sh', ['-c', shellQuote(argv)]).toString();
    expect(out.split('\n').slice(0, -1)).toEqual(argv.slice(2));
  });
  it('leaves safe words alone and refuses an empty command', () => {
    expect(shellQuote(['df', '-Pk', '--', '/var/lib/docker'])).toBe('df -Pk -- /var/lib/docker');
    expect(() => shellQuote([])).toThrow('empty command');
  });
  it('builds host checks as argv arrays', () => {
    expect(freeDiskArgv('/var/lib/docker')).toEqual(['df', '-Pk', '--', '/var/lib/docker']);
    expect(fileReadableArgv('/etc/x y')).toEqual(['test', '-f', '/etc/x y', '-a', '-r', '/etc/x y']);
  });
  it('parses df output', () => {
    const out = 'Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda         263174212  12345678 83886080      13% /\n';
    expect(parseDfAvailableMb(out)).toBe(81920);
    expect(() => parseDfAvailableMb('garbage')).toThrow(/unexpected df output/);
  });
  it('finds listeners in ss output', () => {
    const ss = 'LISTEN 0 4096 127.0.0.1:7233 0.0.0.0:*\nLISTEN 0 511 *:80 *:*\nLISTEN 0 128 [::1]:5432 [::]:*\n';
    expect(portIsListening(ss, '127.0.0.1', 7233)).toBe(true);
    expect(portIsListening(ss, '127.0.0.1', 80)).toBe(true); // wildcard
    expect(portIsListening(ss, '127.0.0.1', 8080)).toBe(false);
    expect(portIsListening(ss, '::1', 5432)).toBe(true);
  });
});

describe('docker request bodies', () => {
  it('builds a container create body from a spec', () => {
    const body = containerCreateBody(spec, ['DB=secret']) as any;
    expect(body.name).toBe('shop-prod-web-1');
    expect(body.Image).toBe('reg:5000/shop:v1');
    expect(body.Cmd).toEqual(['shop', 'serve']);
    expect(body.Env).toEqual(['DB=secret', 'APP_ENV=prod']);
    expect(body.Labels['runbook.version']).toBe('v1');
    expect(body.StopTimeout).toBe(20);
    expect(body.ExposedPorts).toEqual({ '80/tcp': {} });
    expect(body.HostConfig.PortBindings).toEqual({ '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }] });
    expect(body.HostConfig.Mounts).toEqual([
      { Type: 'volume', Source: 'shop-prod-data', Target: '/data' },
      { Type: 'bind', Source: '/etc/token', Target: '/run/secrets/token', ReadOnly: true },
    ]);
    expect(body.HostConfig.RestartPolicy).toEqual({ Name: 'unless-stopped' });
    expect(body.NetworkingConfig.EndpointsConfig['shop-prod'].Aliases).toEqual(['web']);
  });
  it('omits Cmd when the image default is wanted', () => {
    const { cmd: _cmd, ...noCmd } = spec;
    expect('Cmd' in containerCreateBody(noCmd)).toBe(false);
  });

  it('a declared health check and limits: Healthcheck in nanoseconds, Memory in bytes, NanoCpus', () => {
    const healthCheck = engineHealthCheck({ command: 'redis-cli ping', intervalSeconds: 2, startPeriodSeconds: 30 })!;
    expect(healthCheck).toEqual({ test: ['CMD-SHELL', 'redis-cli ping'], intervalSeconds: 2, timeoutSeconds: 5, retries: 3, startPeriodSeconds: 30 });
    expect(engineHealthCheck({ command: ['pg_isready', '-q'] })!.test).toEqual(['CMD', 'pg_isready', '-q']);
    expect(engineHealthCheck(undefined)).toBeUndefined();
    expect(engineResources({ memory: '1.5g', cpus: 0.25 })).toEqual({ memoryBytes: 1610612736, nanoCpus: 250_000_000 });
    expect(engineResources({ memory: '64k' })).toEqual({ memoryBytes: 65536 });
    expect(engineResources({})).toBeUndefined();
    const body = containerCreateBody({ ...spec, healthCheck, resources: { memoryBytes: 536870912, nanoCpus: 500_000_000 } }) as any;
    expect(body.Healthcheck).toEqual({ Test: ['CMD-SHELL', 'redis-cli ping'], Interval: 2e9, Timeout: 5e9, Retries: 3, StartPeriod: 30e9 });
    expect([body.HostConfig.Memory, body.HostConfig.NanoCpus]).toEqual([536870912, 500_000_000]);
    const plain = containerCreateBody(spec) as any;
    expect(['Healthcheck' in plain, 'Memory' in plain.HostConfig, 'NanoCpus' in plain.HostConfig]).toEqual([false, false, false]);
  });
  it('detects drift of an existing container', () => {
    expect(containerDrift(spec, { image: spec.image, labels: { ...spec.labels, 'runbook.run-id': 'other' } })).toEqual([]);
    expect(containerDrift(spec, { image: 'reg:5000/shop:v0', labels: { ...spec.labels, 'runbook.version': 'v0' } })).toEqual([
      'image is reg:5000/shop:v0, want reg:5000/shop:v1',
      'label runbook.version is v0, want v1',
    ]);
  });
  it('splits image references', () => {
    expect(splitImageReference('127.0.0.1:5000/demo-app:v2')).toEqual({ repository: '127.0.0.1:5000/demo-app', tag: 'v2' });
    expect(splitImageReference('127.0.0.1:5000/demo-app')).toEqual({ repository: '127.0.0.1:5000/demo-app', tag: 'latest' });
  });
  it('builds label filters', () => {
    expect(labelFilter({ 'runbook.app': 'shop', 'runbook.run-id': 'r1' })).toEqual({ label: ['runbook.app=shop', 'runbook.run-id=r1'] });
  });
  it('demultiplexes log streams', () => {
    const frame = (kind: number, text: string) => {
      const body = Buffer.from(text);
      const h = Buffer.alloc(8);
      h[0] = kind;
      h.writeUInt32BE(body.length, 4);
      return Buffer.concat([h, body]);
    };
    expect(demuxDockerStream(Buffer.concat([frame(1, 'out1\n'), frame(2, 'err1\n'), frame(1, 'out2\n')]))).toEqual({ stdout: 'out1\nout2\n', stderr: 'err1\n' });
    expect(demuxDockerStream(Buffer.from('plain tty text\n'))).toEqual({ stdout: 'plain tty text\n', stderr: '' });
  });
  it('keeps the last lines and the health log', () => {
    expect(lastLines('a\n\nb\nc\n', 2)).toEqual(['b', 'c']);
    expect(summarizeHealthLog([{ ExitCode: 1, Output: 'refused\n' }, { ExitCode: 0, Output: 'ok' }], 1)).toEqual(['exit 0: ok']);
  });
});

describe('env files', () => {
  it('parses KEY=VALUE lines, comments, export and quotes', () => {
    const vars = parseEnvFile('# comment\nexport DB="postgres://u:p@db/x"\nEMPTY=\nKEY=\'a b\'\nnot a line\n');
    expect([...vars.keys()]).toEqual(['DB', 'EMPTY', 'KEY']);
    expect(vars.get('KEY')).toBe('a b');
    expect(missingVariables(vars, ['DB', 'EMPTY', 'OTHER'])).toEqual(['EMPTY', 'OTHER']);
    expect(toDockerEnv(new Map([['A', '1']]))).toEqual(['A=1']);
  });
  it('reads dotenv forms: inline comments, multi-line quoted values; skips names a shell cannot use', () => {
    const vars = parseEnvFile('A=1 # note\nCERT="line1\nline2"\nbad.name=x\nB=\'#not a comment\'\n');
    expect(Object.fromEntries(vars)).toEqual({ A: '1', CERT: 'line1\nline2', B: '#not a comment' });
  });
});

describe('nginx', () => {
  it('renders an upstream over the replicas and keeps the ACME path', () => {
    const conf = renderProxyConfig({ app: 'shop', env: 'prod', upstreams: ['shop-prod-web-1:8080', 'shop-prod-web-2:8080'], serverName: 'shop.example.com' });
    expect(conf).toContain('upstream shop_prod {');
    expect(conf).toContain('server shop-prod-web-1:8080 max_fails=3 fail_timeout=2s;');
    expect(conf).toContain('server shop-prod-web-2:8080');
    expect(conf).toContain('server_name shop.example.com;');
    expect(conf).toContain('location /.well-known/acme-challenge/');
    expect(conf).toContain('proxy_pass http://shop_prod;');
    expect(() => renderProxyConfig({ app: 'a', env: 'b', upstreams: [] })).toThrow(/at least one upstream/);
  });
});

describe('nginx forward config', () => {
  const conf = renderForwardConfig({ app: 'shop', env: 'prod', to: 'http://10.0.0.7:80', serverName: 'shop.example.com' });
  const normal = renderProxyConfig({ app: 'shop', env: 'prod', upstreams: ['shop-prod-web-1:8080'], serverName: 'shop.example.com' });

  it('keeps the normal skeleton: HTTPS snippets, the ACME path, the upstream name the HTTPS block uses', () => {
    expect(conf.split('\n')[0]).toBe(`${FORWARD_MARKER} to 10.0.0.7:80`);
    for (const line of ['include /etc/nginx/tls/*.server.conf;', 'listen 80 default_server;', 'server_name shop.example.com;', 'location /.well-known/acme-challenge/ {', 'root /var/www/acme;', 'include /etc/nginx/tls/*.redirect.conf;', 'upstream shop_prod {', 'proxy_pass http://shop_prod;']) {
      expect(normal).toContain(line);
      expect(conf).toContain(line);
    }
    expect(conf).toContain('server 10.0.0.7:80 max_fails=0;');
    expect(conf).not.toContain('shop-prod-web-1');
  });

  it('passes Host and the forwarding headers on, upgrades WebSockets, never retries a request', () => {
    expect(conf).toContain('proxy_set_header Host $host;');
    expect(conf).toContain('proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;');
    expect(conf).toContain('proxy_set_header X-Forwarded-Proto $scheme;');
    expect(conf).toContain('proxy_http_version 1.1;');
    expect(conf).toContain('proxy_set_header Upgrade $http_upgrade;');
    expect(conf).toMatch(/map \$http_upgrade \$runbook_forward_connection \{\n\s+default upgrade;\n\s+'' '';\n\s*\}/);
    expect(conf).toContain('proxy_set_header Connection $runbook_forward_connection;');
    expect(conf).toContain('proxy_next_upstream off;');
    expect(conf).toMatch(/proxy_connect_timeout \d+s;/);
    expect(conf).toMatch(/proxy_read_timeout \d+s;/);
    expect(conf).not.toContain('http_502');
  });

  it('takes http://host[:port] only', () => {
    expect(forwardTarget('http://10.0.0.7')).toBe('10.0.0.7:80');
    expect(forwardTarget('http://new.example.com:8080/')).toBe('new.example.com:8080');
    expect(forwardTarget('http://[2001:db8::7]:81')).toBe('[2001:db8::7]:81');
    expect(() => forwardTarget('https://10.0.0.7')).toThrow(/http:\/\//);
    expect(() => forwardTarget('http://10.0.0.7/app')).toThrow(/host\[:port\] only/);
    expect(() => forwardTarget('http://u:p@10.0.0.7')).toThrow(/host\[:port\] only/);
    expect(() => forwardTarget('10.0.0.7:80')).toThrow();
    expect(() => renderForwardConfig({ app: 'a', env: 'b', to: 'http://x', serverName: 'a; evil' })).toThrow(/server_name/);
    expect(renderForwardConfig({ app: 'a', env: 'b', to: 'http://x' })).toContain('server_name _;');
  });
});

describe('nginx switch and drain scripts (run by sh, with a stand-in nginx on PATH)', () => {
  let dir: string;
  const run = (argv: string[], env: Record<string, string> = {}) =>
    spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, NGINX_LOG: `${dir}/nginx.log`, ...env } });
  const calls = () => (existsSync(`${dir}/nginx.log`) ? readFileSync(`${dir}/nginx.log`, 'utf8').trim().split('\n') : []);
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nginx-switch-'));
    mkdirSync(`${dir}/bin`);
    // `nginx -t` fails when the config says so; every call is logged
    writeFileSync(`${dir}/bin/nginx`, '#!/bin/sh\necho "$*" >> "$NGINX_LOG"\nif [ "$1" = -t ] && grep -q broken "$CONF"; then echo "emerg: broken" >&2; exit 1; fi\nexit 0\n', { mode: 0o755 });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes, tests, reloads; the same config again changes nothing', () => {
    const conf = `${dir}/default.conf`;
    const config = 'upstream a { server x:8080; }\n# $host %s `id` \'quoted\'\n';
    const first = run(nginxSwitchArgv(config, conf), { CONF: conf });
    expect(first.status).toBe(0);
    expect(readFileSync(conf, 'utf8')).toBe(config); // byte for byte, nothing interpreted
    expect(calls()).toEqual(['-t', '-s reload']);
    expect(first.stdout).toMatch(/^workers:/m);
    expect(run(nginxSwitchArgv(config, conf), { CONF: conf }).status).toBe(NGINX_SWITCH_EXIT.unchanged);
    expect(calls()).toEqual(['-t', '-s reload']);
    expect(readdirSync(dir).sort()).toEqual(['bin', 'default.conf', 'nginx.log']);
  });

  it('puts the previous config back when nginx -t rejects the new one, and never reloads', () => {
    const conf = `${dir}/default.conf`;
    writeFileSync(conf, 'good\n');
    const r = run(nginxSwitchArgv('broken\n', conf), { CONF: conf });
    expect(r.status).toBe(NGINX_SWITCH_EXIT.testFailed);
    expect(r.stdout + r.stderr).toContain('emerg: broken');
    expect(readFileSync(conf, 'utf8')).toBe('good\n');
    expect(calls()).toEqual(['-t']);
    expect(readdirSync(dir).sort()).toEqual(['bin', 'default.conf', 'nginx.log']);
  });

  it('reloads only after nginx -t passed', () => {
    expect(run(nginxTestAndReloadArgv(), { CONF: `${dir}/none` }).status).toBe(0);
    expect(calls()).toEqual(['-t', '-s reload']);
    writeFileSync(`${dir}/bad.conf`, 'broken');
    expect(run(nginxTestAndReloadArgv(), { CONF: `${dir}/bad.conf` }).status).not.toBe(0);
    expect(calls()).toEqual(['-t', '-s reload', '-t']);
  });

  it('reads the workers from the switch output', () => {
    expect(parseSwitchedWorkers('nginx: configuration file ok\nworkers: 31 32 \n')).toEqual([31, 32]);
    expect(parseSwitchedWorkers('workers: \n')).toEqual([]);
    expect(() => nginxSwitchArgv('a\0b')).toThrow(/NUL/);
  });

  it('waits until the old workers have exited, or reports who still serves', () => {
    const worker = (seconds: number) => spawn('bash', ['-c', `exec -a "nginx: worker process" sleep ${seconds}`], { stdio: 'ignore' });
    const quick = worker(0.4);
    const t0 = Date.now();
    expect(run(nginxWorkersGoneArgv([quick.pid!], 10)).status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(9000);
    const slow = worker(30);
    try {
      const r = run(nginxWorkersGoneArgv([slow.pid!], 0));
      expect(r.status).toBe(NGINX_DRAIN_TIMED_OUT);
      expect(r.stdout.trim()).toBe(`still serving: ${slow.pid}`);
    } finally {
      slow.kill();
    }
    expect(run(nginxWorkersGoneArgv([], 0)).status).toBe(0);
    expect(() => nginxWorkersGoneArgv([0], 1)).toThrow(/not a pid/);
    expect(() => nginxWorkersGoneArgv([1], 1.5)).toThrow(/whole number/);
  });

  describe('forward and unforward', () => {
    const forward = (to: string) => renderForwardConfig({ app: 'shop', env: 'prod', to });
    const files = () => readdirSync(dir).filter((f) => f !== 'bin' && f !== 'nginx.log').sort();

    it('keeps the own config once, switches, and a retry or a new target never overwrites the copy', () => {
      const conf = `${dir}/default.conf`;
      const own = 'upstream shop_prod { server web:8080; }\n\n';
      writeFileSync(conf, own);
      const first = run(nginxForwardArgv(forward('http://10.0.0.7'), conf), { CONF: conf });
      expect(first.status).toBe(0);
      expect(first.stdout).toMatch(/^workers:/m);
      expect(readFileSync(conf, 'utf8')).toBe(forward('http://10.0.0.7'));
      expect(readFileSync(keptConfigPath(conf), 'utf8')).toBe(own);
      expect(calls()).toEqual(['-t', '-s reload']);
      expect(run(nginxForwardArgv(forward('http://10.0.0.7'), conf), { CONF: conf }).status).toBe(NGINX_SWITCH_EXIT.unchanged);
      expect(calls()).toEqual(['-t', '-s reload']);
      expect(run(nginxForwardArgv(forward('http://10.0.0.8'), conf), { CONF: conf }).status).toBe(0);
      expect(readFileSync(conf, 'utf8')).toBe(forward('http://10.0.0.8'));
      expect(readFileSync(keptConfigPath(conf), 'utf8')).toBe(own);
      expect(files()).toEqual(['default.conf', 'default.conf.before-forward']);

      const back = run(nginxUnforwardArgv(conf), { CONF: conf });
      expect(back.status).toBe(0);
      expect(readFileSync(conf, 'utf8')).toBe(own); // byte for byte, trailing newlines too
      expect(files()).toEqual(['default.conf']);
      expect(calls()).toEqual(['-t', '-s reload', '-t', '-s reload', '-t', '-s reload']);
      expect(run(nginxUnforwardArgv(conf), { CONF: conf }).status).toBe(NGINX_FORWARD_EXIT.nothingKept);
      expect(calls()).toHaveLength(6);
    });

    it('unforward after a lost answer: the own config is live already, the copy is removed', () => {
      const conf = `${dir}/default.conf`;
      writeFileSync(conf, 'own\n');
      writeFileSync(keptConfigPath(conf), 'own\n');
      expect(run(nginxUnforwardArgv(conf), { CONF: conf }).status).toBe(NGINX_SWITCH_EXIT.unchanged);
      expect(files()).toEqual(['default.conf']);
      expect(calls()).toEqual([]);
    });

    it('a forward config that nginx -t rejects leaves the proxy as it was, without a copy', () => {
      const conf = `${dir}/default.conf`;
      writeFileSync(conf, 'own\n');
      const r = run(nginxForwardArgv(`${FORWARD_MARKER}\nbroken\n`, conf), { CONF: conf });
      expect(r.status).toBe(NGINX_SWITCH_EXIT.testFailed);
      expect(readFileSync(conf, 'utf8')).toBe('own\n');
      expect(files()).toEqual(['default.conf']);
      expect(calls()).toEqual(['-t']);
    });

    it('a kept config that nginx -t rejects stays kept, the forward stays live', () => {
      const conf = `${dir}/default.conf`;
      writeFileSync(conf, forward('http://10.0.0.7'));
      writeFileSync(keptConfigPath(conf), 'broken\n');
      expect(run(nginxUnforwardArgv(conf), { CONF: conf }).status).toBe(NGINX_SWITCH_EXIT.testFailed);
      expect(readFileSync(conf, 'utf8')).toBe(forward('http://10.0.0.7'));
      expect(readFileSync(keptConfigPath(conf), 'utf8')).toBe('broken\n');
    });

    it('refuses to keep a forward config as the own one, or nothing', () => {
      const conf = `${dir}/default.conf`;
      expect(run(nginxForwardArgv(forward('http://10.0.0.7'), conf), { CONF: conf }).status).toBe(NGINX_FORWARD_EXIT.noConfig);
      writeFileSync(conf, forward('http://10.0.0.7'));
      const r = run(nginxForwardArgv(forward('http://10.0.0.8'), conf), { CONF: conf });
      expect(r.status).toBe(NGINX_FORWARD_EXIT.forwardWithoutKept);
      expect(r.stdout).toMatch(/already forwards/);
      expect(readFileSync(conf, 'utf8')).toBe(forward('http://10.0.0.7'));
      expect(files()).toEqual(['default.conf']);
      expect(calls()).toEqual([]);
      expect(() => nginxForwardArgv('server {}')).toThrow(/not a forward config/);
    });
  });
});

describe('tar', () => {
  it('builds an archive that tar reads back', async () => {
    const archive = await tarSingleFile('default.conf', 'server {}\n', 0o600, new Date(1_700_000_000_000));
    expect(archive.length % 512).toBe(0);
    const listing = execFileSync('tar', ['-tvf', '-'], { input: archive }).toString();
    expect(listing).toMatch(/^-rw------- .* 10 .*default\.conf/);
    expect(execFileSync('tar', ['-xOf', '-', 'default.conf'], { input: archive }).toString()).toBe('server {}\n');
  });
  it('keeps names longer than 100 bytes and several entries, with their mode and mtime', async () => {
    const long = `proxy/${'h'.repeat(120)}/etc/nginx/conf.d/${'n'.repeat(150)}.conf`;
    const archive = await tarFiles([
      { name: long, body: Buffer.from('a\n'), mode: 0o600, mtime: new Date('2025-05-01T02:00:00.750Z') },
      { name: 'etc/app.env', body: 'K=v\n', mode: 0o600, mtime: new Date('2025-05-01T02:00:00Z') },
    ]);
    const listing = execFileSync('tar', ['-tv', '--full-time', '--numeric-owner', '-f', '-'], { input: archive, env: { ...process.env, TZ: 'UTC' } }).toString().trim().split('\n');
    expect(listing).toHaveLength(2);
    expect(listing[0]).toMatch(new RegExp(`^-rw------- 0/0 +2 2025-05-01 02:00:00 ${long}$`));
    expect(listing[1]).toMatch(/^-rw------- 0\/0 +4 2025-05-01 02:00:00 etc\/app\.env$/);
    expect(execFileSync('tar', ['-xOf', '-', long], { input: archive }).toString()).toBe('a\n');
  });
});

describe('maintenance mode (nginx snippets)', () => {
  it('the location snippet answers 503; the server one serves the page with Retry-After; both in the proxy config', () => {
    const { server, location } = renderMaintenanceSnippets({ app: 'shop', env: 'production', retryAfterSeconds: 45, reason: 'restore of main\nby x' });
    expect(location).toBe('# Managed by temporal-runbooks: maintenance mode of shop/production (restore of main by x).\nreturn 503;\n');
    expect(server).toContain('error_page 503 /.runbook-maintenance.html;');
    expect(server).toContain(`alias ${MAINTENANCE.pageFile};`);
    expect(server).toContain('add_header Retry-After 45 always;');
    const config = renderProxyConfig({ app: 'shop', env: 'production', upstreams: ['shop-production-web-1:8080'] });
    expect(config).toContain(`    include ${MAINTENANCE.serverGlob};\n`);
    expect(config).toContain(`        include ${TLS_DIR}/*.redirect.conf;\n        include ${MAINTENANCE.locationGlob};\n`);
    expect(renderHttpsServer({ app: 'shop', env: 'production', id: 'shop-production', domains: ['shop.example.com'] })).toContain(`include ${MAINTENANCE.locationGlob};`);
    expect(() => renderMaintenanceSnippets({ app: 'shop', env: 'production', retryAfterSeconds: 0, reason: '' })).toThrow(/retryAfterSeconds must be a whole number/);
  });

  it('one exec: on carries the snippets and page as arguments (no shell interpretation); off carries nothing', () => {
    const argv = nginxMaintenanceArgv(true, { server: 'S', location: 'L' }, '<p>$x</p>');
    expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(argv.slice(3)).toEqual(['nginx-maintenance', 'on', 'S', 'L', '<p>$x</p>']);
    expect(nginxMaintenanceArgv(false).slice(3)).toEqual(['nginx-maintenance', 'off', '', '', '']);
    // the workers that served the app before the reload: the activity waits for them to exit
    expect(argv[2]).toMatch(/workers=\$\(.*\)\nnginx -s reload .*\necho "workers: \$workers"$/);
    expect(() => nginxMaintenanceArgv(true)).toThrow(/needs the snippets/);
    expect(() => nginxMaintenanceArgv(true, { server: 'a\0', location: '' }, '')).toThrow(/NUL/);
  });
});
