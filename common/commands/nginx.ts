// nginx configuration for the reverse proxy in front of an app's replicas, rendered as text.

export interface ProxyConfigInput {
  app: string;
  env: string;
  /** Upstream servers as `container-name:port` on the app network. */
  upstreams: string[];
  serverName?: string;
}

export const PROXY_CONFIG_PATH = '/etc/nginx/conf.d/default.conf';
/** In the proxy container: the certificates, keys and HTTPS snippets (a named volume on the host). */
export const TLS_DIR = '/etc/nginx/tls';
/** Where HTTP-01 token files go (served on port 80 at /.well-known/acme-challenge/). */
export const ACME_WEBROOT = '/var/www/acme';

export const proxyUpstreamName = (app: string, env: string): string => `${app}_${env}`.replace(/[^A-Za-z0-9_]/g, '_');

export interface HttpsServerInput {
  app: string;
  env: string;
  /** File stem of the certificate and key in TLS_DIR. */
  id: string;
  domains: string[];
}

export const tlsFiles = (id: string) => ({
  certificate: `${TLS_DIR}/${id}.crt`,
  key: `${TLS_DIR}/${id}.key`,
  server: `${TLS_DIR}/${id}.server.conf`,
  redirect: `${TLS_DIR}/${id}.redirect.conf`,
});

/**
 * The HTTPS server block (seed 000 "SSL/HTTPS Configuration"): TLS 1.2/1.3 only, HSTS for two
 * years, the seed's security headers, proxying to the app's upstream like the port-80 block.
 */
export function renderHttpsServer(input: HttpsServerInput): string {
  if (input.domains.length === 0) throw new Error('an HTTPS server needs at least one domain');
  for (const d of input.domains) if (!/^(\*\.)?[a-z0-9.-]+$/.test(d)) throw new Error(`not a domain name: ${JSON.stringify(d)}`);
  if (!/^[a-z0-9-]+$/.test(input.id)) throw new Error(`not a certificate id: ${JSON.stringify(input.id)}`);
  const files = tlsFiles(input.id);
  return `# Managed by temporal-runbooks: HTTPS for ${input.app}/${input.env} (certificate ${input.id}).
server {
    listen 443 ssl http2;
    server_name ${input.domains.join(' ')};

    ssl_certificate ${files.certificate};
    ssl_certificate_key ${files.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:tls_${input.id.replace(/-/g, '_')}:10m;
    ssl_session_timeout 1d;

    add_header Strict-Transport-Security "max-age=63072000" always;
    add_header X-Frame-Options DENY always;
    add_header X-Content-Type-Options nosniff always;
    add_header X-XSS-Protection "1; mode=block" always;

    location / {
        proxy_pass http://${proxyUpstreamName(input.app, input.env)};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_connect_timeout 2s;
    }
}
`;
}

/**
 * Port 80 answers everything but the ACME path (its own location) with a redirect to HTTPS, on
 * `httpsPort` when that is not 443 (the host port the proxy's 443 is published on).
 */
export function renderHttpsRedirect(httpsPort: number): string {
  if (!Number.isInteger(httpsPort) || httpsPort < 1 || httpsPort > 65535) throw new Error(`not a port: ${httpsPort}`);
  const target = httpsPort === 443 ? 'https://$host$request_uri' : `https://$host:${httpsPort}$request_uri`;
  return `# Managed by temporal-runbooks: HTTP → HTTPS (the ACME challenge location is not redirected).
return 301 ${target};
`;
}
export const PROXY_CONFIG_DIR = '/etc/nginx/conf.d';

export function renderProxyConfig(input: ProxyConfigInput): string {
  if (input.upstreams.length === 0) throw new Error('proxy config needs at least one upstream');
  const upstreamName = proxyUpstreamName(input.app, input.env);
  // a replica is taken out after 3 errors for 2 s: one slow accept under load does not empty the pool
  const servers = input.upstreams.map((u) => `    server ${u} max_fails=3 fail_timeout=2s;`).join('\n');
  return `# Managed by temporal-runbooks for ${input.app}/${input.env}. Changes here are overwritten.
# HTTPS, once the certificate runbook has installed a certificate: its server block and the
# redirect live beside the certificate on the host (${TLS_DIR}), so re-rendering this file keeps them.
include ${TLS_DIR}/*.server.conf;

upstream ${upstreamName} {
${servers}
    keepalive 16;
}

server {
    listen 80 default_server;
    server_name ${input.serverName ?? '_'};

    location /.well-known/acme-challenge/ {
        root /var/www/acme;
    }

    location / {
        include ${TLS_DIR}/*.redirect.conf;
        proxy_pass http://${upstreamName};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_connect_timeout 2s;
    }
}
`;
}

/** Exit codes of {@link nginxSwitchArgv}'s script besides 0 (config placed, tested and reloaded). */
export const NGINX_SWITCH_EXIT = { unchanged: 10, testFailed: 11, reloadFailed: 12, writeFailed: 13 } as const;

// Lists the pids of nginx worker processes (also those already shutting down) on one line.
const LIST_WORKERS = `for p in /proc/[0-9]*; do case "$(tr '\\000' ' ' < "$p/cmdline" 2>/dev/null)" in "nginx: worker process"*) printf '%s ' "\${p#/proc/}";; esac; done`;

/**
 * One exec that switches the proxy to `config`: nothing happens if the file already holds it;
 * otherwise it is written beside the live file, moved into place, checked by `nginx -t` (on
 * failure the previous file is put back and nginx is not touched) and nginx reloads gracefully.
 * Prints `workers: <pids>`, the workers that ran before the reload: they finish their in-flight
 * requests on the old config, and {@link nginxWorkersGoneArgv} waits for them (the drain).
 * The config travels as an argument (no shell interpretation), so any byte but NUL is kept.
 */
export function nginxSwitchArgv(config: string, configPath = PROXY_CONFIG_PATH): string[] {
  if (config.includes('\0')) throw new Error('an nginx config cannot contain NUL bytes');
  const script = [
    'conf=$1; next="$conf.next"; prev="$conf.previous"',
    `printf '%s' "$2" > "$next" || exit ${NGINX_SWITCH_EXIT.writeFailed}`,
    `if [ -f "$conf" ] && cmp -s "$next" "$conf"; then rm -f "$next"; exit ${NGINX_SWITCH_EXIT.unchanged}; fi`,
    'had=0; if [ -f "$conf" ]; then cp -p "$conf" "$prev" && had=1; fi',
    'restore() { if [ $had = 1 ]; then mv -f "$prev" "$conf"; else rm -f "$conf"; fi; }',
    `mv -f "$next" "$conf" || exit ${NGINX_SWITCH_EXIT.writeFailed}`,
    `if ! nginx -t 2>&1; then restore; exit ${NGINX_SWITCH_EXIT.testFailed}; fi`,
    `workers=$(${LIST_WORKERS})`,
    `if ! nginx -s reload 2>&1; then restore; exit ${NGINX_SWITCH_EXIT.reloadFailed}; fi`,
    'rm -f "$prev"',
    'echo "workers: $workers"',
  ].join('\n');
  return ['sh', '-c', script, 'nginx-switch', configPath, config];
}

/** `nginx -t`, then a graceful reload only if the test passed (to load files changed under the same config, e.g. a renewed certificate). */
export const nginxTestAndReloadArgv = (): string[] => ['sh', '-c', `workers=$(${LIST_WORKERS})\nnginx -t 2>&1 && nginx -s reload 2>&1 && echo "workers: $workers"`, 'nginx-reload'];

/** Parses the `workers: <pids>` line printed by {@link nginxSwitchArgv}. */
export function parseSwitchedWorkers(stdout: string): number[] {
  const line = /^workers:(.*)$/m.exec(stdout);
  return line ? line[1].trim().split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0) : [];
}

/** Exit code of {@link nginxWorkersGoneArgv} when some of the workers still run at the timeout. */
export const NGINX_DRAIN_TIMED_OUT = 10;

/**
 * Waits (polling every 50 ms, at most `timeoutSeconds`) until none of `pids` is an nginx worker any
 * more: the workers of the previous config have answered their in-flight requests and exited, so no
 * request can still reach the replicas that config pointed at. Prints `still serving: <pids>` and
 * exits {@link NGINX_DRAIN_TIMED_OUT} when time is up.
 */
export function nginxWorkersGoneArgv(pids: number[], timeoutSeconds: number): string[] {
  for (const p of pids) if (!Number.isInteger(p) || p <= 0) throw new Error(`not a pid: ${p}`);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) throw new Error(`timeoutSeconds must be a whole number ≥ 0, not ${timeoutSeconds}`);
  const script = [
    'end=$(( $(date +%s) + $1 )); shift',
    'while :; do',
    '  left=',
    `  for p in "$@"; do case "$(tr '\\000' ' ' < "/proc/$p/cmdline" 2>/dev/null)" in "nginx: worker process"*) left="$left $p";; esac; done`,
    '  [ -z "$left" ] && exit 0',
    `  if [ "$(date +%s)" -ge "$end" ]; then echo "still serving:$left"; exit ${NGINX_DRAIN_TIMED_OUT}; fi`,
    '  sleep 0.05',
    'done',
  ].join('\n');
  return ['sh', '-c', script, 'nginx-drain', String(timeoutSeconds), ...pids.map(String)];
}
