import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerCreateBody, containerDrift, demuxDockerStream, labelFilter, lastLines, splitImageReference, summarizeHealthLog } from '../../common/commands/docker';
import { missingVariables, parseEnvFile, toDockerEnv } from '../../common/commands/envfile';
import { NGINX_DRAIN_TIMED_OUT, NGINX_SWITCH_EXIT, nginxSwitchArgv, nginxTestAndReloadArgv, nginxWorkersGoneArgv, parseSwitchedWorkers, renderProxyConfig } from '../../common/commands/nginx';
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
