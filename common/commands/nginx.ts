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

export const nginxTestArgv = (): string[] => ['nginx', '-t'];
export const nginxReloadArgv = (): string[] => ['nginx', '-s', 'reload'];
