// nginx configuration for the reverse proxy in front of an app's replicas, rendered as text.

export interface ProxyConfigInput {
  app: string;
  env: string;
  /** The main service's servers as `container-name:port` on the app network: every request no route takes. */
  upstreams: string[];
  /** The app's other routed services: requests for a path prefix (and host) go to their servers. */
  routes?: ProxyRoute[];
  serverName?: string;
}

export interface ProxyRoute {
  service: string;
  /** "/api": "/api" and "/api/..." (the path is passed on unchanged). */
  path: string;
  /** Only for this host name (a leading "*." matches one or more labels). */
  host?: string;
  upstreams: string[];
}

/** The nginx variable naming the upstream a request goes to, when the app has routes (set by a map in the proxy's config). */
export const ROUTED_UPSTREAM_VARIABLE = '$runbook_upstream';
/** "upgrade" for a WebSocket handshake, "" otherwise (so other requests reuse kept-alive connections). */
const CONNECTION_VARIABLE = '$runbook_connection';
const CONNECTION_MAP = `# "Connection: upgrade" only for WebSocket handshakes; other requests reuse kept-alive connections
map $http_upgrade ${CONNECTION_VARIABLE} {
    default upgrade;
    '' '';
}`;

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The map from "$host$uri" to the upstream: the routes with a host first, then the longer prefixes
 * (nginx takes the first regex that matches), everything else to the main service.
 */
export function renderRouteMap(app: string, env: string, routes: Pick<ProxyRoute, 'service' | 'path' | 'host'>[]): string {
  const ordered = [...routes].sort((a, b) => Number(b.host !== undefined) - Number(a.host !== undefined) || b.path.length - a.path.length);
  const lines = ordered.map((r) => {
    if (!/^\/[A-Za-z0-9._~\/-]*$/.test(r.path)) throw new Error(`not a route path: ${JSON.stringify(r.path)}`);
    if (r.host !== undefined && !/^(\*\.)?[a-z0-9.-]+$/.test(r.host)) throw new Error(`not a route host: ${JSON.stringify(r.host)}`);
    const host = r.host === undefined ? '[^/]*' : r.host.startsWith('*.') ? `[^/]+\\.${escapeRegex(r.host.slice(2))}` : escapeRegex(r.host);
    const path = r.path.replace(/\/+$/, '');
    return `    ~^${host}${escapeRegex(path)}(/|$) ${serviceUpstreamName(app, env, r.service)};`;
  });
  return `map "$host$uri" ${ROUTED_UPSTREAM_VARIABLE} {
    default ${proxyUpstreamName(app, env)};
${lines.join('\n')}
}`;
}

/** The upstream of one of the app's routed services. */
export const serviceUpstreamName = (app: string, env: string, service: string): string => `${proxyUpstreamName(app, env)}__${service.replace(/[^A-Za-z0-9_]/g, '_')}`;

export const PROXY_CONFIG_PATH = '/etc/nginx/conf.d/default.conf';
/** In the proxy container: the certificates, keys and HTTPS snippets (a named volume on the host). */
export const TLS_DIR = '/etc/nginx/tls';
/** Where HTTP-01 token files go (served on port 80 at /.well-known/acme-challenge/). */
export const ACME_WEBROOT = '/var/www/acme';

/**
 * Maintenance mode: two snippets in the proxy's TLS volume, included by every server block it
 * renders (an empty glob includes nothing). The location one answers 503, the server one turns a
 * 503 into the app's page with Retry-After. The ACME path is not in maintenance.
 */
export const MAINTENANCE = {
  serverGlob: `${TLS_DIR}/*.maintenance-server.conf`,
  locationGlob: `${TLS_DIR}/*.maintenance-location.conf`,
  serverFile: `${TLS_DIR}/runbook.maintenance-server.conf`,
  locationFile: `${TLS_DIR}/runbook.maintenance-location.conf`,
  pageFile: `${TLS_DIR}/maintenance.html`,
} as const;

const MAINTENANCE_PAGE_URI = '/.runbook-maintenance.html';

export interface MaintenanceInput {
  app: string;
  env: string;
  retryAfterSeconds: number;
  /** Shown in the snippet's comment: why and since when. */
  reason: string;
}

export function renderMaintenanceSnippets(input: MaintenanceInput): { server: string; location: string } {
  if (!Number.isInteger(input.retryAfterSeconds) || input.retryAfterSeconds < 1 || input.retryAfterSeconds > 86_400) {
    throw new Error(`retryAfterSeconds must be a whole number of seconds from 1 to 86400 (got ${input.retryAfterSeconds})`);
  }
  const why = input.reason.replace(/[\r\n]+/g, ' ').slice(0, 200);
  const header = `# Managed by temporal-runbooks: maintenance mode of ${input.app}/${input.env} (${why}).`;
  return {
    // a URI (not a named location): nginx turns the method into GET, so a POST gets the page, not a 405
    server: `${header}
error_page 503 ${MAINTENANCE_PAGE_URI};
location = ${MAINTENANCE_PAGE_URI} {
    internal;
    alias ${MAINTENANCE.pageFile};
    default_type text/html;
    add_header Retry-After ${input.retryAfterSeconds} always;
    add_header Cache-Control "no-store" always;
}
`,
    location: `${header}
return 503;
`,
  };
}

/** The page shown when the app has none of its own. */
export function defaultMaintenancePage(app: string): string {
  const name = app.replace(/[^a-z0-9-]/g, '');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${name}: maintenance</title></head>
<body><h1>${name} is down for maintenance</h1><p>It will be back shortly. Please try again in a moment.</p></body></html>
`;
}

// Lists the pids of nginx worker processes (also those already shutting down) on one line.
const LIST_WORKERS = `for p in /proc/[0-9]*; do case "$(tr '\\000' ' ' < "$p/cmdline" 2>/dev/null)" in "nginx: worker process"*) printf '%s ' "\${p#/proc/}";; esac; done`;

/** Exit codes of {@link nginxMaintenanceArgv}'s script besides 0 (switched, tested and reloaded). */
export const NGINX_MAINTENANCE_EXIT = { unchanged: 10, testFailed: 11, reloadFailed: 12, writeFailed: 13, notIncluded: 14 } as const;

const NGINX_MAINTENANCE_SCRIPT = [
  // $1 on|off, $2 server snippet, $3 location snippet, $4 page
  `server_file=${MAINTENANCE.serverFile}; location_file=${MAINTENANCE.locationFile}; page=${MAINTENANCE.pageFile}`,
  'if [ "$1" = on ]; then',
  `  grep -qF '${MAINTENANCE.locationGlob}' ${PROXY_CONFIG_PATH} || { echo "the proxy config does not include the maintenance snippets (rendered before maintenance mode existed: an update or deploy renders it again; or it forwards during a cutover)"; exit ${NGINX_MAINTENANCE_EXIT.notIncluded}; }`,
  `  { printf '%s' "$2" > "$server_file.next" && printf '%s' "$3" > "$location_file.next" && printf '%s' "$4" > "$page.next"; } || exit ${NGINX_MAINTENANCE_EXIT.writeFailed}`,
  '  if cmp -s "$server_file.next" "$server_file" && cmp -s "$location_file.next" "$location_file" && cmp -s "$page.next" "$page"; then',
  `    rm -f "$server_file.next" "$location_file.next" "$page.next"; exit ${NGINX_MAINTENANCE_EXIT.unchanged}`,
  '  fi',
  `  { mv -f "$page.next" "$page" && mv -f "$server_file.next" "$server_file" && mv -f "$location_file.next" "$location_file"; } || exit ${NGINX_MAINTENANCE_EXIT.writeFailed}`,
  'else',
  `  [ -f "$server_file" ] || [ -f "$location_file" ] || exit ${NGINX_MAINTENANCE_EXIT.unchanged}`,
  '  rm -f "$server_file" "$location_file"',
  'fi',
  // nginx still runs the config it had: removing what failed the test is enough
  `if ! nginx -t 2>&1; then rm -f "$server_file" "$location_file"; exit ${NGINX_MAINTENANCE_EXIT.testFailed}; fi`,
  `workers=$(${LIST_WORKERS})`,
  `nginx -s reload 2>&1 || exit ${NGINX_MAINTENANCE_EXIT.reloadFailed}`,
  'echo "workers: $workers"',
].join('\n');

/**
 * One exec that turns maintenance mode on (the page and both snippets written, \`nginx -t\`, graceful
 * reload) or off (the snippets removed, reload). Already in that state: nothing happens (exit 10).
 * Prints \`workers: <pids>\` like {@link nginxSwitchArgv}: until those exit, requests already in
 * flight still go to the app (so the app is stopped only after they drained).
 * A snippet that fails \`nginx -t\` is removed again: the proxy keeps serving the app.
 */
export function nginxMaintenanceArgv(on: boolean, snippets?: { server: string; location: string }, page?: string): string[] {
  if (on && (!snippets || page === undefined)) throw new Error('maintenance on needs the snippets and the page');
  for (const text of [snippets?.server, snippets?.location, page]) if (text?.includes('\0')) throw new Error('maintenance files cannot contain NUL bytes');
  return ['sh', '-c', NGINX_MAINTENANCE_SCRIPT, 'nginx-maintenance', on ? 'on' : 'off', snippets?.server ?? '', snippets?.location ?? '', page ?? ''];
}

export const proxyUpstreamName = (app: string, env: string): string => `${app}_${env}`.replace(/[^A-Za-z0-9_]/g, '_');

export interface HttpsServerInput {
  app: string;
  env: string;
  /** File stem of the certificate and key in TLS_DIR. */
  id: string;
  domains: string[];
  /** The proxy's config defines the route map: requests go where it says (else all to the app's upstream). */
  routed?: boolean;
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
# its own map (included at http level): it works beside a port-80 config of any age
map $http_upgrade $runbook_tls_${input.id.replace(/-/g, '_')}_connection {
    default upgrade;
    '' '';
}

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
    include ${MAINTENANCE.serverGlob};

    location / {
        include ${MAINTENANCE.locationGlob};
        proxy_pass http://${input.routed ? ROUTED_UPSTREAM_VARIABLE : proxyUpstreamName(input.app, input.env)};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $runbook_tls_${input.id.replace(/-/g, '_')}_connection;
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
  const upstream = (name: string, servers: string[]) => `upstream ${name} {
${servers.map((u) => `    server ${u} max_fails=3 fail_timeout=2s;`).join('\n')}
    keepalive 16;
}`;
  const routes = input.routes ?? [];
  for (const r of routes) if (r.upstreams.length === 0) throw new Error(`the route ${r.path} of ${r.service} has no upstream`);
  // one upstream per service, whatever number of paths it is routed
  const services = new Map(routes.map((r) => [r.service, r.upstreams]));
  const upstreams = [upstream(upstreamName, input.upstreams), ...[...services].map(([service, servers]) => upstream(serviceUpstreamName(input.app, input.env, service), servers))];
  return `# Managed by temporal-runbooks for ${input.app}/${input.env}. Changes here are overwritten.
# HTTPS, once the certificate runbook has installed a certificate: its server block and the
# redirect live beside the certificate on the host (${TLS_DIR}), so re-rendering this file keeps them.
include ${TLS_DIR}/*.server.conf;

${upstreams.join('\n\n')}

${renderRouteMap(input.app, input.env, routes)}

${CONNECTION_MAP}

server {
    listen 80 default_server;
    server_name ${input.serverName ?? '_'};
    include ${MAINTENANCE.serverGlob};

    location /.well-known/acme-challenge/ {
        root /var/www/acme;
    }

    location / {
        include ${TLS_DIR}/*.redirect.conf;
        include ${MAINTENANCE.locationGlob};
        proxy_pass http://${routes.length ? ROUTED_UPSTREAM_VARIABLE : upstreamName};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection ${CONNECTION_VARIABLE};
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

/** The script of {@link nginxSwitchArgv}: `$1` the config file, `$2` the new content. */
const NGINX_SWITCH_SCRIPT = [
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
  return ['sh', '-c', NGINX_SWITCH_SCRIPT, 'nginx-switch', configPath, config];
}

// ---- forwarding to the other side (DNS cutover) ----

export interface ForwardConfigInput {
  /** App and env of the proxy: the HTTPS snippets in TLS_DIR proxy to the upstream named after them. */
  app: string;
  env: string;
  /** The other side's public address, `http://host[:port]` (no path). */
  to: string;
  serverName?: string;
}

/** First line of every forward config: how the forward scripts know a live config is one. */
export const FORWARD_MARKER = '# temporal-runbooks: forward';

/** The `host:port` of a forward target, or an error saying what is wrong with it. */
export function forwardTarget(to: string): string {
  let url: URL;
  try {
    url = new URL(to);
  } catch {
    throw new Error(`not a URL to forward to: ${JSON.stringify(to)}`);
  }
  if (url.protocol !== 'http:') throw new Error(`forwarding goes to an http:// address, not ${JSON.stringify(to)}`);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new Error(`a forward target is http://host[:port] only, not ${JSON.stringify(to)}`);
  }
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/.test(url.hostname)) throw new Error(`not a host to forward to: ${JSON.stringify(url.hostname)}`);
  return `${url.hostname}:${url.port || '80'}`;
}

/**
 * The proxy's config while it forwards every request to the other side (clients that still hold
 * the old DNS answer reach the side that now serves). The same skeleton as {@link renderProxyConfig}:
 * the HTTPS snippets stay included, the ACME path is still answered here, and the upstream keeps
 * its name (the HTTPS server block proxies to it) but holds only the other side. Host is passed
 * on as the client sent it, WebSockets are upgraded, and a request is never sent twice: with
 * `proxy_next_upstream off` and one server that is never marked down, a failure is the client's 502.
 */
export function renderForwardConfig(input: ForwardConfigInput): string {
  const target = forwardTarget(input.to);
  if (input.serverName !== undefined && !/^[A-Za-z0-9.*_-]+( [A-Za-z0-9.*_-]+)*$/.test(input.serverName)) {
    throw new Error(`not a server_name: ${JSON.stringify(input.serverName)}`);
  }
  const upstreamName = proxyUpstreamName(input.app, input.env);
  return `${FORWARD_MARKER} to ${target}
# Managed by temporal-runbooks for ${input.app}/${input.env}: this proxy forwards every request to
# the other side of a DNS cutover (${input.to}). Its own config is kept beside this file and put back
# when the forward is undone.
include ${TLS_DIR}/*.server.conf;

# "Connection: upgrade" only for WebSocket handshakes; other requests reuse kept-alive connections
map $http_upgrade $runbook_forward_connection {
    default upgrade;
    '' '';
}

# HTTPS blocks of an app with routed services pick their upstream from this variable: all go there now
map $host ${ROUTED_UPSTREAM_VARIABLE} {
    default ${upstreamName};
}

upstream ${upstreamName} {
    # the only server: never marked down, so a failed request is answered 502 and the next one tried again
    server ${target} max_fails=0;
    keepalive 16;
}

server {
    listen 80 default_server;
    server_name ${input.serverName ?? '_'};

    location /.well-known/acme-challenge/ {
        root ${ACME_WEBROOT};
    }

    location / {
        include ${TLS_DIR}/*.redirect.conf;
        proxy_pass http://${upstreamName};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $runbook_forward_connection;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # a request that failed or timed out is not sent again (a POST must never run twice)
        proxy_next_upstream off;
        proxy_connect_timeout 5s;
        proxy_send_timeout 60s;
        # also how long an idle WebSocket stays open
        proxy_read_timeout 300s;
    }
}
`;
}

/** Where the forward scripts keep the proxy's own config while it forwards (not matched by `*.conf`). */
export const keptConfigPath = (configPath = PROXY_CONFIG_PATH): string => `${configPath}.before-forward`;

/** Exit codes of the forward scripts besides {@link NGINX_SWITCH_EXIT}'s. */
export const NGINX_FORWARD_EXIT = {
  /** unforward: no config is kept, nothing to put back. */
  nothingKept: 20,
  /** forward: the live config is already a forward config but none is kept (it would be lost). */
  forwardWithoutKept: 21,
  /** forward: there is no live config to keep. */
  noConfig: 22,
} as const;

/**
 * One exec that makes the proxy forward: the live config is copied to {@link keptConfigPath} unless
 * a copy is already there (a retry, or a change of target, never overwrites the proxy's own config
 * with a forward config), then the switch of {@link nginxSwitchArgv} (`nginx -t`, graceful reload,
 * the previous file back on failure). A copy made by this exec is removed again when the switch
 * fails, so a failed forward leaves the proxy as it was.
 */
export function nginxForwardArgv(forwardConfig: string, configPath = PROXY_CONFIG_PATH): string[] {
  if (forwardConfig.includes('\0')) throw new Error('an nginx config cannot contain NUL bytes');
  if (!forwardConfig.startsWith(FORWARD_MARKER)) throw new Error('not a forward config (see renderForwardConfig)');
  const script = [
    `conf=$1; kept="$conf${keptConfigPath('')}"; made=0`,
    'if [ ! -f "$kept" ]; then',
    `  [ -f "$conf" ] || { echo "no config at $conf to keep"; exit ${NGINX_FORWARD_EXIT.noConfig}; }`,
    `  if head -n 1 "$conf" | grep -q '^${FORWARD_MARKER}'; then echo "$conf already forwards and no config is kept at $kept"; exit ${NGINX_FORWARD_EXIT.forwardWithoutKept}; fi`,
    `  cp -p "$conf" "$kept.tmp" && mv -f "$kept.tmp" "$kept" || { rm -f "$kept.tmp"; exit ${NGINX_SWITCH_EXIT.writeFailed}; }`,
    '  made=1',
    'fi',
    'sh -c "$3" nginx-switch "$conf" "$2"; rc=$?',
    `if [ $rc -ne 0 ] && [ $rc -ne ${NGINX_SWITCH_EXIT.unchanged} ] && [ $made = 1 ]; then rm -f "$kept"; fi`,
    'exit $rc',
  ].join('\n');
  return ['sh', '-c', script, 'nginx-forward', configPath, forwardConfig, NGINX_SWITCH_SCRIPT];
}

/**
 * One exec that undoes {@link nginxForwardArgv}: the kept config goes back with the same switch,
 * then the copy is removed (also when the live file already held it: a retry after a lost
 * answer). Exits {@link NGINX_FORWARD_EXIT.nothingKept} when no config is kept.
 */
export function nginxUnforwardArgv(configPath = PROXY_CONFIG_PATH): string[] {
  const script = [
    `conf=$1; kept="$conf${keptConfigPath('')}"`,
    `[ -f "$kept" ] || exit ${NGINX_FORWARD_EXIT.nothingKept}`,
    // the x keeps trailing newlines that command substitution would strip
    `content=$(cat "$kept" && printf x) || exit ${NGINX_SWITCH_EXIT.writeFailed}`,
    'content=${content%x}',
    'sh -c "$2" nginx-switch "$conf" "$content"; rc=$?',
    `if [ $rc -eq 0 ] || [ $rc -eq ${NGINX_SWITCH_EXIT.unchanged} ]; then rm -f "$kept" || exit ${NGINX_SWITCH_EXIT.writeFailed}; fi`,
    'exit $rc',
  ].join('\n');
  return ['sh', '-c', script, 'nginx-unforward', configPath, NGINX_SWITCH_SCRIPT];
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
