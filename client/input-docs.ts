// docs/inputs.md and the generated regions of docs/runbooks/*.md, rendered from the input schemas
// (common/inputs.ts): a table per runbook (field, type, default or required, description), a
// ready-to-paste JSON example with its `temporal workflow start` line, and (inputs.md) the JSON Schema.
// A runbook page is prose written by hand around regions `<!-- inputs:begin <runbook> -->` …
// `<!-- inputs:end -->`; only those are rewritten. test/unit/inputs.test.ts fails when a committed
// file differs, or a runbook with an input schema has no page, so the docs cannot drift.
// Regenerate: `npm run docs:inputs` (or UPDATE_INPUT_DOCS=1 on the unit test).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INPUT_SCHEMAS, inputJsonSchema, type RunbookWithInputSchema } from '../common/inputs';
import { TASK_QUEUE } from '../common/naming';

type JsonSchema = {
  type?: string;
  title?: string;
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  description?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
};

/** A ready-to-paste input per runbook (Temporal UI "Start workflow", `temporal workflow start --input`); checked by the tests. */
export const INPUT_EXAMPLES: Record<RunbookWithInputSchema, Record<string, unknown>> = {
  firstDeploy: { app: 'demo', env: 'production', version: 'v1', goLiveApproval: true, approvalTimeout: '48h' },
  rollingUpdate: { app: 'demo', env: 'production', version: 'v2', batchSize: 1, canary: { bake: '10m' }, drainTimeout: '30s' },
  nightlyBackup: { app: 'demo', env: 'production', pin: { reason: 'safety', window: '30d' } },
  restoreBackup: { app: 'demo', env: 'production', database: 'main', backup: 'latest', keepPreviousFor: '7d' },
  restoreArchive: { app: 'demo', env: 'production', volume: 'uploads', archive: 'latest', approvalTimeout: '24h' },
  issueCertificate: { app: 'demo', env: 'production', domains: ['demo.example.com'], staging: true },
  releasePreviousDatabase: { app: 'demo', env: 'production', database: 'main', runTag: '2026-11-26T14:42:52.219Z', keepFor: '7d' },
  dnsCutover: { app: 'demo', from: 'production', to: 'green', ttlLeadTime: '48h', window: '7d' },
  backupCatalog: { app: 'demo', env: 'production' },
  maintenanceMode: { app: 'demo', env: 'production', on: true, reason: 'database migration, back at 10:00' },
  stopApp: { app: 'demo', env: 'staging' },
  housekeeping: { app: 'demo', env: 'production', dryRun: true },
  updateDependency: { app: 'demo', env: 'production', service: 'postgres', version: '15', approvalTimeout: '24h' },
  updateFromRegistry: { app: 'demo', env: 'production', tag: 'latest', canary: { bake: '2m' } },
};

/** The page under docs/runbooks/ of each runbook with an input schema (helpers share their parent's page). */
export const RUNBOOK_PAGES: Record<RunbookWithInputSchema, string> = {
  firstDeploy: 'firstDeploy.md',
  rollingUpdate: 'rollingUpdate.md',
  nightlyBackup: 'nightlyBackup.md',
  backupCatalog: 'nightlyBackup.md',
  restoreBackup: 'restoreBackup.md',
  releasePreviousDatabase: 'restoreBackup.md',
  restoreArchive: 'restoreArchive.md',
  issueCertificate: 'issueCertificate.md',
  dnsCutover: 'dnsCutover.md',
  maintenanceMode: 'maintenanceMode.md',
  stopApp: 'stopApp.md',
  housekeeping: 'housekeeping.md',
  updateDependency: 'updateDependency.md',
  updateFromRegistry: 'updateFromRegistry.md',
};

/** The workflow ID the CLI and the workers use for a run of the example input. */
export function exampleWorkflowId(runbook: RunbookWithInputSchema, input: Record<string, unknown>): string {
  if (runbook === 'dnsCutover') return `dnsCutover/${input.app}/${input.to}`;
  if (runbook === 'releasePreviousDatabase') return `releasePreviousDatabase/${input.app}/${input.env}/${input.database}/${String(input.runTag).replace(/[-:.]/g, '')}`;
  return `${runbook}/${input.app}/${input.env}`;
}

const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

/** The `temporal workflow start` command line that starts a run with the example input. */
export function temporalStartCommand(runbook: RunbookWithInputSchema): string {
  const input = INPUT_EXAMPLES[runbook];
  return [
    `temporal workflow start --type ${runbook} --task-queue ${TASK_QUEUE} --workflow-id ${exampleWorkflowId(runbook, input)} \\`,
    `  --id-conflict-policy Fail --input ${shellQuote(JSON.stringify(input))}`,
  ].join('\n');
}

const DEFAULT_RE = /\s*Default: (.+?)\.?$/;

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (s.anyOf) return s.anyOf.map(typeOf).join(' | ');
  if (s.type === 'array') return `${s.items ? typeOf(s.items) : 'unknown'}[]`;
  if (s.type === 'object') return `{ ${Object.keys(s.properties ?? {}).join(', ')} }`;
  if (s.title === 'duration') return 'duration';
  return s.type ?? 'unknown';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function rows(schema: JsonSchema, prefix = ''): string[] {
  const out: string[] = [];
  for (const [field, prop] of Object.entries(schema.properties ?? {})) {
    const description = prop.description ?? '';
    const dflt = DEFAULT_RE.exec(description)?.[1];
    const required = schema.required?.includes(field);
    const when = required ? '**required**' : dflt ? dflt : 'optional';
    out.push(`| \`${prefix}${field}\` | ${cell(typeOf(prop))} | ${cell(when)} | ${cell(description.replace(DEFAULT_RE, ''))} |`);
    for (const nested of [prop, ...(prop.anyOf ?? [])]) if (nested.type === 'object') out.push(...rows(nested, `${prefix}${field}.`));
  }
  return out;
}

function inputTable(schema: JsonSchema): string[] {
  return ['| Field | Type | Default | Description |', '| --- | --- | --- | --- |', ...rows(schema)];
}

/** What a page's region holds for one runbook: the input table, the example and how to start it. */
export function renderInputRegion(runbook: RunbookWithInputSchema): string {
  const input = INPUT_EXAMPLES[runbook];
  return [
    '<!-- Generated from common/inputs.ts by client/input-docs.ts (npm run docs:inputs): edit the schema, not this region. -->',
    '',
    ...inputTable(inputJsonSchema(runbook) as JsonSchema),
    '',
    `Example input, ready to paste into the Temporal UI (Start Workflow: workflow type \`${runbook}\`, task queue \`${TASK_QUEUE}\`, workflow ID \`${exampleWorkflowId(runbook, input)}\`):`,
    '',
    '```json',
    JSON.stringify(input, null, 2),
    '```',
    '',
    'or with the `temporal` CLI:',
    '',
    '```sh',
    temporalStartCommand(runbook),
    '```',
  ].join('\n');
}

const REGION_RE = /<!-- inputs:begin (\S+) -->\n[\s\S]*?<!-- inputs:end -->/g;

/** The runbooks whose input regions a page has, in order. */
export function pageRegions(page: string): string[] {
  return [...page.matchAll(REGION_RE)].map((m) => m[1]);
}

/** The page with every input region rendered afresh from the schemas; the prose around them is kept. */
export function renderRunbookPage(page: string): string {
  return page.replace(REGION_RE, (_, runbook: string) => {
    if (!(runbook in INPUT_SCHEMAS)) throw new Error(`<!-- inputs:begin ${runbook} -->: no input schema is named "${runbook}" (known: ${Object.keys(INPUT_SCHEMAS).join(', ')})`);
    return `<!-- inputs:begin ${runbook} -->\n${renderInputRegion(runbook as RunbookWithInputSchema)}\n<!-- inputs:end -->`;
  });
}

/** The whole of docs/inputs.md. */
export function renderInputDocs(): string {
  const parts: string[] = [
    '# Runbook inputs',
    '',
    '<!-- Generated by client/input-docs.ts from the zod schemas in common/inputs.ts; do not edit by hand. -->',
    '',
    'What each runbook accepts, from the one schema per input shared by the CLI (checked before a start),',
    'the workflows (checked before the first command: malformed JSON typed in the Temporal UI fails at once,',
    'naming every bad field) and these docs. Unknown fields are refused. Durations are strings like `"90s"`,',
    '`"15m"`, `"48h"`, `"7d"`; names are lower-case letters, digits and `-`, starting with a letter, at most 30.',
    'A bad input fails with a non-retryable `InvalidInput`, e.g.',
    '`invalid input: canary.bake: "10x" is not a duration (use e.g. "90s", "15m", "48h", "7d"); foo: is not an option`.',
    '',
    'What each runbook does, its gates and who approves them, what a failure leaves behind and how to roll back:',
    '',
    ...[...new Set(Object.values(RUNBOOK_PAGES))].map((page) => {
      const runbooks = (Object.keys(RUNBOOK_PAGES) as RunbookWithInputSchema[]).filter((r) => RUNBOOK_PAGES[r] === page);
      return `- [${runbooks.join(', ')}](runbooks/${page})`;
    }),
    '',
  ];
  for (const runbook of Object.keys(INPUT_SCHEMAS) as RunbookWithInputSchema[]) {
    const schema = inputJsonSchema(runbook) as JsonSchema;
    parts.push(
      `## ${runbook}`,
      '',
      (schema.description ?? '').replace(/^\w+: /, '').replace(/^./, (c) => c.toUpperCase()),
      '',
      ...inputTable(schema),
      '',
      'Example input:',
      '',
      '```json',
      JSON.stringify(INPUT_EXAMPLES[runbook]),
      '```',
      '',
      '<details><summary>JSON Schema</summary>',
      '',
      '```json',
      JSON.stringify(schema, null, 2),
      '```',
      '',
      '</details>',
      '',
    );
  }
  return parts.join('\n');
}

/** Writes docs/inputs.md and rewrites the input regions of every page under docs/runbooks/. */
export function writeInputDocs(docsDir: string): string[] {
  const written: string[] = [];
  const write = (file: string, text: string) => {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return;
    fs.writeFileSync(file, text);
    written.push(file);
  };
  write(path.join(docsDir, 'inputs.md'), renderInputDocs());
  for (const page of new Set(Object.values(RUNBOOK_PAGES))) {
    const file = path.join(docsDir, 'runbooks', page);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: write the page (prose) with its <!-- inputs:begin <runbook> --> … <!-- inputs:end --> regions`);
    write(file, renderRunbookPage(fs.readFileSync(file, 'utf8')));
  }
  return written;
}

if (require.main === module) {
  const written = writeInputDocs(path.resolve(process.argv[2] ?? 'docs'));
  console.log(written.length ? `rewrote ${written.join(', ')}` : 'docs are up to date');
}
