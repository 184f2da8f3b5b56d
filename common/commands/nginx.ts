// nginx configuration for the reverse proxy in front of an app's replicas, rendered as text.

export interface ProxyConfigInput {
  app: string;
  env: string;
  /** Upstream servers as `container-name:port` on the app network. */
  upstreams: string[];
  serverName?: string;
}

export const PROXY_CONFIG_PATH = '/etc/nginx/conf.d/default.conf';
export const PROXY_CONFIG_DIR = '/etc/nginx/conf.d';

export function renderProxyConfig(input: ProxyConfigInput): string {
  if (input.upstreams.length === 0) throw new Error('proxy config needs at least one upstream');
  const upstreamName = `${input.app}_${input.env}`.replace(/[^A-Za-z0-9_]/g, '_');
  // a replica is taken out after 3 errors for 2 s: one slow accept under load does not empty the pool
  const servers = input.upstreams.map((u) => `    server ${u} max_fails=3 fail_timeout=2s;`).join('\n');
  return `# Managed by temporal-runbooks for ${input.app}/${input.env}. Changes here are overwritten.
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
