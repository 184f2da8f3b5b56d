// Structural checks of docker-compose.temporal.yml (the real installation), without pulling images:
// pinned images, dependency graph, volumes, loopback-only ports, the worker's environment and
// mounts, the search-attribute registration, no literal secrets. When a compose CLI is installed
// (`docker compose` plugin or Debian's standalone `docker-compose`), `config --quiet` must accept
// the file too; that check is skipped (and says why) when neither is available. Debian's
// `apt-get install -y docker-compose` (bookworm: 1.29.2) validates offline, so CI can install it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { RUNBOOK_SEARCH_ATTRIBUTES } from '../../common/search-attributes';

const ROOT = path.resolve(__dirname, '../..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.temporal.yml');
const RAW = readFileSync(COMPOSE_FILE, 'utf8');
const DUMMY_ENV = { POSTGRES_PASSWORD: 'dummy-not-a-secret' };

type Env = Record<string, string | undefined>;
interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  depends_on?: string[] | Record<string, { condition?: string }>;
  environment?: string[] | Record<string, string | number | boolean | null>;
  volumes?: (string | { type?: string; source?: string; target?: string; read_only?: boolean })[];
  ports?: (string | number | { target?: number; published?: string | number; host_ip?: string })[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
  entrypoint?: string | string[];
  command?: string | string[];
  user?: string;
  group_add?: (string | number)[];
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** Compose variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}. */
function interpolate(text: string, env: Env): string {
  return text.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_m, esc, name, op, arg, bare) => {
    if (esc === '$') return '$';
    const key = (name ?? bare) as string;
    const value = env[key];
    switch (op) {
      case ':-':
        return value ? value : arg;
      case '-':
        return value !== undefined ? value : arg;
      case ':?':
        if (!value) throw new Error(`required variable ${key} is missing: ${arg}`);
        return value;
      case '?':
        if (value === undefined) throw new Error(`required variable ${key} is missing: ${arg}`);
        return value;
      default:
        return value ?? '';
    }
  });
}

function load(env: Env): ComposeFile {
  return parse(interpolate(RAW, env)) as ComposeFile;
}

const raw = parse(RAW) as ComposeFile; // variables as written
const resolved = load(DUMMY_ENV); // variables at their defaults (plus the one required secret)
const services = Object.entries(resolved.services);

function envOf(service: Service | undefined): Record<string, string> {
  const env = service?.environment;
  if (!env) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((line) => [line.split('=')[0], line.includes('=') ? line.slice(line.indexOf('=') + 1) : '']));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

function dependsOn(service: Service): Record<string, string> {
  const deps = service.depends_on;
  if (!deps) return {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [d, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([d, v]) => [d, v?.condition ?? 'service_started']));
}

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}
function mounts(service: Service): Mount[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source ?? '', target: v.target ?? '', readOnly: Boolean(v.read_only) };
    const parts = splitOutsideVars(v);
    if (parts.length === 1) return { source: '', target: parts[0], readOnly: false };
    const mode = parts.length > 2 ? parts[parts.length - 1] : '';
    return { source: parts[0], target: parts[1], readOnly: mode.split(',').includes('ro') };
  });
}
/** Splits on ':' except inside ${...} (whose `:-` / `:?` operators contain colons). */
function splitOutsideVars(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '$' && text[i + 1] === '{') depth += 1;
    else if (c === '}' && depth > 0) depth -= 1;
    if (c === ':' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}
const isBindSource = (source: string) => /^[./~]/.test(source) || source.startsWith('$');

describe('docker-compose.temporal.yml', () => {
  test('parses and has the expected services', () => {
    expect(Object.keys(resolved.services).sort()).toEqual(
      ['postgresql', 'temporal', 'temporal-schema', 'temporal-search-attributes', 'temporal-ui', 'worker'].sort(),
    );
  });

  test('every service has a pinned image (a tag other than latest, or a digest) or a build', () => {
    for (const [name, service] of services) {
      if (service.build) continue;
      expect({ name, image: service.image }).toEqual({ name, image: expect.any(String) });
      const image = service.image as string;
      if (image.includes('@sha256:')) continue;
      const lastSegment = image.split('/').pop() as string;
      expect({ name, tagged: lastSegment.includes(':') }).toEqual({ name, tagged: true });
      const tag = lastSegment.split(':')[1];
      expect({ name, tag }).toEqual({ name, tag: expect.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/) });
      expect({ name, tag }).not.toEqual({ name, tag: 'latest' });
    }
  });

  test('uses the current Temporal recipe: temporalio/server + admin-tools of the same version, postgres:16, temporalio/ui', () => {
    const s = resolved.services;
    expect(s.temporal.image).toMatch(/^temporalio\/server:\d+\.\d+\.\d+$/);
    const version = (s.temporal.image as string).split(':')[1];
    expect(s['temporal-schema'].image).toBe(`temporalio/admin-tools:${version}`);
    expect(s['temporal-search-attributes'].image).toBe(`temporalio/admin-tools:${version}`);
    expect(s.postgresql.image).toMatch(/^postgres:16(\.|$|-)/);
    expect(s['temporal-ui'].image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    for (const [, service] of services) expect(service.image ?? '').not.toMatch(/auto-setup/);
    expect(envOf(s.temporal)).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql', DB_PORT: '5432' });
    expect(envOf(s['temporal-ui']).TEMPORAL_ADDRESS).toBe('temporal:7233');
  });

  test('depends_on targets exist, conditions are valid and mean something', () => {
    const valid = ['service_started', 'service_healthy', 'service_completed_successfully'];
    for (const [name, service] of services) {
      for (const [target, condition] of Object.entries(dependsOn(service))) {
        expect({ name, target, exists: target in resolved.services }).toEqual({ name, target, exists: true });
        expect(valid).toContain(condition);
        const dep = resolved.services[target];
        if (condition === 'service_healthy') {
          expect({ target, healthcheck: Boolean(dep.healthcheck?.test) && !dep.healthcheck?.disable }).toEqual({ target, healthcheck: true });
        }
        if (condition === 'service_completed_successfully') {
          // A one-shot: never restarted forever, or it would never "complete".
          expect({ target, restart: dep.restart ?? 'no' }).toEqual({ target, restart: expect.stringMatching(/^(no|on-failure(:\d+)?)$/) });
        }
      }
    }
    const d = (name: string) => dependsOn(resolved.services[name]);
    expect(d('temporal-schema')).toEqual({ postgresql: 'service_healthy' });
    expect(d('temporal')).toMatchObject({ 'temporal-schema': 'service_completed_successfully' });
    expect(d('temporal-search-attributes')).toEqual({ temporal: 'service_healthy' });
    expect(d('temporal-ui')).toMatchObject({ temporal: 'service_healthy' });
    expect(d('worker')).toMatchObject({ 'temporal-search-attributes': 'service_completed_successfully' });
  });

  test('the dependency graph has no cycle', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (name: string, trail: string[]) => {
      if (state.get(name) === 'done') return;
      if (state.get(name) === 'visiting') throw new Error(`depends_on cycle: ${[...trail, name].join(' -> ')}`);
      state.set(name, 'visiting');
      for (const dep of Object.keys(dependsOn(resolved.services[name]))) visit(dep, [...trail, name]);
      state.set(name, 'done');
    };
    for (const [name] of services) expect(() => visit(name, [])).not.toThrow();
  });

  test('every named volume used is declared, and Postgres keeps its data in one', () => {
    const declared = Object.keys(resolved.volumes ?? {});
    for (const [name, service] of services) {
      for (const m of mounts(service)) {
        if (!m.source || isBindSource(m.source)) continue;
        expect({ name, volume: m.source, declared: declared.includes(m.source) }).toEqual({ name, volume: m.source, declared: true });
      }
    }
    const data = mounts(resolved.services.postgresql).find((m) => m.target === '/var/lib/postgresql/data');
    expect(data && !isBindSource(data.source) && declared.includes(data.source)).toBe(true);
    expect(resolved.services.postgresql.healthcheck?.test).toBeDefined();
  });

  test('bind-mounted project files exist (scripts, dynamic config, Dockerfile)', () => {
    for (const [name, service] of services) {
      for (const m of mounts(service)) {
        if (!m.source.startsWith('./deploy')) continue;
        expect({ name, source: m.source, exists: existsSync(path.join(ROOT, m.source)) }).toEqual({ name, source: m.source, exists: true });
      }
    }
    const dynamic = envOf(resolved.services.temporal).DYNAMIC_CONFIG_FILE_PATH;
    const dynMount = mounts(resolved.services.temporal).find((m) => dynamic.startsWith(`${m.target}/`));
    expect(dynMount).toBeDefined();
    const dynFile = path.join(ROOT, dynMount!.source, path.relative(dynMount!.target, dynamic));
    expect(existsSync(dynFile)).toBe(true);
    expect(() => parse(readFileSync(dynFile, 'utf8'))).not.toThrow();
    for (const name of ['temporal-schema', 'temporal-search-attributes']) {
      const entry = ([] as string[]).concat(resolved.services[name].entrypoint ?? []).join(' ');
      const script = entry.match(/\/deploy\/(\S+\.sh)/)?.[1];
      expect({ name, script }).toEqual({ name, script: expect.any(String) });
      expect(existsSync(path.join(ROOT, 'deploy/temporal', script!))).toBe(true);
    }
    expect(existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
  });

  test('published ports bind to 127.0.0.1 by default', () => {
    let published = 0;
    for (const [name, service] of services) {
      for (const port of service.ports ?? []) {
        published += 1;
        if (typeof port === 'object') {
          expect({ name, host_ip: port.host_ip }).toEqual({ name, host_ip: '127.0.0.1' });
        } else {
          // HOST_IP:HOST_PORT:CONTAINER_PORT; anything shorter publishes on every interface.
          expect({ name, port: String(port) }).toEqual({ name, port: expect.stringMatching(/^127\.0\.0\.1:\d+:\d+(\/(tcp|udp))?$/) });
        }
      }
    }
    expect(resolved.services['temporal-ui'].ports).toEqual(['127.0.0.1:8080:8080']);
    expect(published).toBeGreaterThan(0);
    expect(resolved.services.postgresql.ports).toBeUndefined();
    expect(resolved.services.worker.ports).toBeUndefined();
  });

  test('the worker is built here and gets its Temporal settings, inventory, Docker socket and SSH keys', () => {
    const worker = resolved.services.worker;
    expect(worker.build).toBeDefined();
    const build = typeof worker.build === 'string' ? { context: worker.build } : worker.build!;
    expect(build.context).toBe('.');
    expect(build.dockerfile ?? 'Dockerfile').toBe('Dockerfile');
    expect(envOf(worker)).toMatchObject({
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_NAMESPACE: 'default',
      RUNBOOK_INVENTORY: '/etc/runbooks/inventory.yaml',
    });
    const rawMounts = mounts(raw.services.worker);
    const inv = rawMounts.find((m) => m.target === '/etc/runbooks');
    expect(inv).toEqual({ source: '${RUNBOOK_INVENTORY_DIR:-./examples}', target: '/etc/runbooks', readOnly: true });
    expect(rawMounts).toContainEqual({ source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false });
    const ssh = rawMounts.find((m) => m.source.includes('RUNBOOK_SSH_DIR'));
    expect(ssh).toEqual({ source: '${RUNBOOK_SSH_DIR:-~/.ssh}', target: expect.stringMatching(/\/\.ssh$/), readOnly: true });
    // Not root: a numeric non-zero uid, plus the Docker socket's group.
    expect(worker.user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(worker.group_add?.length).toBeGreaterThan(0);
    // Scalable: no fixed container name (not in the type: check the raw object).
    expect((raw.services.worker as Record<string, unknown>).container_name).toBeUndefined();
  });

  test('the one-shot registers all four search attributes with their types in namespace default', () => {
    const sa = resolved.services['temporal-search-attributes'];
    const env = envOf(sa);
    expect(env.TEMPORAL_NAMESPACE).toBe('default');
    expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
    const pairs = env.RUNBOOK_SEARCH_ATTRIBUTES.trim().split(/\s+/).map((p) => p.split('='));
    const declared = Object.fromEntries(pairs);
    expect(declared).toEqual({
      RunbookApp: 'Keyword',
      RunbookEnv: 'Keyword',
      RunbookStep: 'Keyword',
      RunbookAwaitingApproval: 'Bool',
    });
    // The same set the workflows upsert (common/search-attributes.ts).
    const fromCode = Object.fromEntries(RUNBOOK_SEARCH_ATTRIBUTES.map((k) => [k.name, String(k.type).toLowerCase()]));
    expect(Object.fromEntries(pairs.map(([n, t]) => [n, t.toLowerCase()]))).toEqual(fromCode);
    // The script it runs creates the namespace if needed and uses the temporal CLI.
    const script = readFileSync(path.join(ROOT, 'deploy/temporal/register-search-attributes.sh'), 'utf8');
    expect(script).toContain('temporal operator search-attribute create');
    expect(script).toContain('temporal operator namespace create');
    expect(script).toMatch(/for pair in \$RUNBOOK_SEARCH_ATTRIBUTES/);
  });

  test('no literal secret: password-like values are ${VAR} references, Postgres password required', () => {
    const secretKey = /(PASSWORD|PWD|SECRET|TOKEN|API_KEY)/i;
    const refOnly = /^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$/;
    let checked = 0;
    for (const [name, service] of Object.entries(raw.services)) {
      for (const [key, value] of Object.entries(envOf(service))) {
        if (!secretKey.test(key)) continue;
        checked += 1;
        expect({ name, key, value }).toEqual({ name, key, value: expect.stringMatching(refOnly) });
        // No default value hidden in the reference either.
        expect({ name, key, value }).not.toEqual({ name, key, value: expect.stringMatching(/^\$\{[A-Za-z0-9_]+:?-/) });
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3);
    expect(envOf(raw.services.postgresql).POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?.+\}$/);
    expect(() => load({})).toThrow(/POSTGRES_PASSWORD/);
    // And nothing that looks like "password: something" outside a reference anywhere in the file.
    for (const line of RAW.split('\n')) {
      if (/^\s*#/.test(line)) continue;
      const m = line.match(/(password|pwd)\s*[:=]\s*(\S+)/i);
      if (m) expect({ line, value: m[2] }).toEqual({ line, value: expect.stringMatching(/^["']?\$\{/) });
    }
  });
});

describe('Dockerfile (worker image)', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  test('multi-stage node:24-bookworm-slim build, production deps only, non-root, runs the worker', () => {
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:24-bookworm-slim/);
    expect(instructions.filter((l) => /^FROM /.test(l)).length).toBeGreaterThanOrEqual(2);
    expect(instructions).toContain('RUN npm run build');
    expect(instructions.some((l) => /^RUN npm ci( |$)/.test(l) && !l.includes('--omit=dev'))).toBe(true);
    expect(instructions.some((l) => /^RUN npm ci .*--omit=dev/.test(l))).toBe(true);
    expect(instructions.some((l) => /^COPY --from=build \/app\/dist /.test(l))).toBe(true);
    const users = instructions.filter((l) => /^USER /.test(l));
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1]).not.toMatch(/^USER (root|0)(:|$)/);
    expect(instructions[instructions.length - 1]).toBe('CMD ["node", "dist/workers/main.js"]');
  });

  test('.dockerignore keeps node_modules, dist, .git and test artifacts out of the context', () => {
    const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', '.git', 'coverage']) expect(ignore).toContain(entry);
  });
});

// ------------------------------------------------------------------ real compose CLI, if any --
function detectComposeCli(): { cmd: string; args: string[] } | string {
  const reasons: string[] = [];
  for (const [cmd, args] of [
    ['docker', ['compose']],
    ['docker-compose', []],
  ] as const) {
    const r = spawnSync(cmd, [...args, 'version'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 0) return { cmd, args: [...args] };
    reasons.push(`\`${[cmd, ...args].join(' ')} version\`: ${r.error ? r.error.message : `exit ${r.status}: ${(r.stderr || r.stdout).trim().split('\n')[0]}`}`);
  }
  return reasons.join('; ');
}

const cli = detectComposeCli();
const describeCli = typeof cli === 'string' ? describe.skip : describe;
if (typeof cli === 'string') {
  console.log(`compose.test: no working compose CLI, skipping \`config --quiet\` checks (${cli})`);
}

describeCli(`compose CLI (${typeof cli === 'string' ? 'absent' : [cli.cmd, ...cli.args].join(' ')})`, () => {
  const run = (env: Env) => {
    const { cmd, args } = cli as { cmd: string; args: string[] };
    const childEnv: Env = { ...process.env, ...env };
    for (const k of ['COMPOSE_FILE', 'COMPOSE_PROFILES', 'POSTGRES_PASSWORD']) if (!(k in env)) delete childEnv[k];
    return spawnSync(cmd, [...args, '-f', COMPOSE_FILE, '--project-directory', ROOT, 'config', '--quiet'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: childEnv as NodeJS.ProcessEnv,
    });
  };

  test('`config --quiet` accepts the file', () => {
    const r = run(DUMMY_ENV);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  });

  test('`config` refuses to run without POSTGRES_PASSWORD', () => {
    const r = run({});
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/POSTGRES_PASSWORD/);
  });
});
