// Records one closed run's history as a replay fixture (test/replay/histories/<type>-<name>.json),
// read-only against the server. Usage, after `npm run build`:
//   npm run record-history -- <workflowId> <runId> <short-name> [--secrets PATH ...]
// Refuses a running run, a bad name, and a history holding a private key or a value from a secret
// file (each --secrets file, or every file directly in a --secrets directory but inventories *.yaml).
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { connectionSettings } from './connection';
import { historyToJson } from './history-json';

/** The repository root: the nearest directory up with a package.json (works from client/ and dist/client/). */
function repoRoot(dir = __dirname): string {
  return existsSync(path.join(dir, 'package.json')) || path.dirname(dir) === dir ? dir : repoRoot(path.dirname(dir));
}
export const HISTORIES_DIR = path.join(repoRoot(), 'test/replay/histories');
const FIXTURE_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const MAX_BYTES = 1_000_000;

/** Secret values in `paths` (files, or the files directly in a directory): whole files, each line, each `KEY=value` value (8+ chars), each quoted string of 16+ chars (key files in JSON or bind9 syntax). */
export function secretValues(paths: string[]): string[] {
  const values = new Set<string>();
  const files = paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => !/\.ya?ml$/.test(f))
          .map((f) => path.join(p, f))
      : [p],
  );
  for (const file of files) {
    const st = statSync(file);
    if (!st.isFile() || st.size > 65_536) continue;
    const text = readFileSync(file, 'utf8');
    const candidates = [text.trim()];
    for (const line of text.split('\n')) {
      candidates.push(line.trim(), line.match(/^\s*[A-Za-z_][A-Za-z0-9_]*=(.*)$/)?.[1]?.trim() ?? '');
      for (const m of line.matchAll(/"([^"]{16,})"/g)) candidates.push(m[1]);
    }
    for (const value of candidates) if (value.length >= 8 && !value.startsWith('-----')) values.add(value);
  }
  return [...values];
}

/** What in `json` looks like a secret (empty when clean). Payloads are base64 in the JSON, so both forms are checked. */
export function secretsIn(json: string, secrets: string[]): string[] {
  const decoded = [...json.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1], 'base64').toString('utf8')).join('\n');
  const found: string[] = [];
  if (/PRIVATE KEY/.test(json + decoded)) found.push('a PEM private key');
  for (const s of secrets) if (json.includes(s) || decoded.includes(s)) found.push(`the value of a secret file (${s.slice(0, 3)}…)`);
  return found;
}

export async function recordHistory(opts: { workflowId: string; runId: string; name: string; secrets?: string[]; client: Client }): Promise<{ file: string; bytes: number; events: number }> {
  if (!FIXTURE_NAME.test(opts.name)) throw new Error(`name "${opts.name}" must be lowercase words joined by '-'`);
  const handle = opts.client.workflow.getHandle(opts.workflowId, opts.runId);
  const desc = await handle.describe();
  if (desc.status.name === 'RUNNING') throw new Error(`${opts.workflowId} run ${opts.runId} is still running; record a closed run`);
  const history = await handle.fetchHistory();
  const json = JSON.stringify(historyToJson(history), null, 1) + '\n';
  const leaks = secretsIn(json, secretValues(opts.secrets ?? []));
  if (leaks.length) throw new Error(`not written: the history holds ${leaks.join(', ')}`);
  if (json.length > MAX_BYTES) throw new Error(`not written: ${json.length} bytes (fixtures stay under ${MAX_BYTES}); pick a shorter run`);
  const file = path.join(HISTORIES_DIR, `${desc.type}-${opts.name}.json`);
  mkdirSync(HISTORIES_DIR, { recursive: true });
  writeFileSync(file, json);
  return { file, bytes: json.length, events: history.events?.length ?? 0 };
}

async function main(argv: string[]): Promise<void> {
  const secrets: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--secrets') secrets.push(argv[++i]);
    else positional.push(argv[i]);
  }
  if (positional.length !== 3) throw new Error('usage: record-history <workflowId> <runId> <short-name> [--secrets PATH ...]');
  for (const p of secrets) if (!p || !existsSync(p)) throw new Error(`--secrets ${p}: no such file or directory`);
  const [workflowId, runId, name] = positional;
  const settings = connectionSettings();
  const connection = await Connection.connect({ address: settings.address, ...(settings.tls ? { tls: settings.tls } : {}), ...(settings.apiKey ? { apiKey: settings.apiKey } : {}) });
  try {
    const r = await recordHistory({ workflowId, runId, name, secrets, client: new Client({ connection, namespace: settings.namespace }) });
    console.log(`${path.relative(process.cwd(), r.file)}: ${r.events} events, ${r.bytes} bytes`);
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`record-history: ${(err as Error).message}`);
    process.exit(1);
  });
}
