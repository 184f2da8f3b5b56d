// The runbook input schemas (common/inputs.ts): what they accept, that every bad field is named by
// its path, unknown fields are refused, and docs/inputs.md is exactly what the schemas render.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { INPUT_SCHEMAS, inputJsonSchema, parseInput, type RunbookWithInputSchema } from '../../common/inputs';
import { INPUT_EXAMPLES, pageRegions, renderInputDocs, renderRunbookPage, RUNBOOK_PAGES, temporalStartCommand } from '../../client/input-docs';
import { checkRunbookInput } from '../../client/runbooks';

const RUNBOOKS = Object.keys(INPUT_SCHEMAS) as RunbookWithInputSchema[];
const target = { app: 'shop', env: 'production' };
/** The minimal valid input of each runbook. */
const MINIMAL: Record<RunbookWithInputSchema, Record<string, unknown>> = {
  firstDeploy: target,
  rollingUpdate: { ...target, version: 'v2' },
  nightlyBackup: target,
  restoreBackup: target,
  restoreArchive: { ...target, volume: 'uploads' },
  issueCertificate: target,
  releasePreviousDatabase: { ...target, database: 'main', runTag: '2026-11-26T14:42:52.219Z', keepFor: '7d' },
  dnsCutover: { app: 'shop', from: 'production', to: 'green' },
  backupCatalog: target,
  maintenanceMode: { ...target, on: false },
  stopApp: target,
  housekeeping: target,
  updateDependency: { ...target, service: 'redis' },
  updateFromRegistry: target,
};

function failure(runbook: RunbookWithInputSchema, input: unknown): ApplicationFailure {
  try {
    parseInput(INPUT_SCHEMAS[runbook], input, runbook);
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    return err as ApplicationFailure;
  }
  throw new Error(`${runbook} accepted ${JSON.stringify(input)}`);
}

/** Each runbook's fields with a bad value, and the message expected after `invalid input: `. */
const BAD: [RunbookWithInputSchema, Record<string, unknown>, string][] = [
  ['firstDeploy', { app: 'Shop!' }, 'app: "Shop!" is not a valid app name'],
  ['firstDeploy', { env: 7 }, 'env: must be a name, got 7'],
  ['firstDeploy', { version: 'v 2' }, 'version: "v 2" is not an image tag'],
  ['firstDeploy', { dryRun: 'yes' }, 'dryRun: must be true or false, got "yes"'],
  ['firstDeploy', { goLiveApproval: 1 }, 'goLiveApproval: must be true or false, got 1'],
  ['firstDeploy', { approvalTimeout: 'soon' }, 'approvalTimeout: "soon" is not a duration'],
  ['firstDeploy', { approvalTimeout: '31d' }, 'approvalTimeout: 31d exceeds the maximum of 30d'],
  ['rollingUpdate', { version: undefined }, 'version: is required (an image tag, e.g. "v2") unless isRollback'],
  ['rollingUpdate', { batchSize: 0 }, 'batchSize: must be a whole number ≥ 1'],
  ['rollingUpdate', { batchSize: 1.5 }, 'batchSize: must be a whole number ≥ 1'],
  ['rollingUpdate', { canary: 'maybe' }, 'canary: must be "none", "approve" or {"bake": "10m"}'],
  ['rollingUpdate', { canary: { bake: '10x' } }, 'canary.bake: "10x" is not a duration'],
  ['rollingUpdate', { canary: { bake: '10m', rate: 1 } }, 'canary.rate: is not an option'],
  ['rollingUpdate', { backup: 'no' }, 'backup: must be true or false'],
  ['rollingUpdate', { approvalTimeout: 'a while' }, 'approvalTimeout: "a while" is not a duration'],
  ['rollingUpdate', { drainTimeout: '30' }, 'drainTimeout: "30" is not a duration'],
  ['rollingUpdate', { drainDelay: 5 }, 'drainDelay: must be a duration like "15m" or "7d", got 5'],
  ['rollingUpdate', { surge: -1 }, 'surge: must be a whole number ≥ 0'],
  ['rollingUpdate', { bakeInterval: 'often' }, 'bakeInterval: "often" is not a duration'],
  ['rollingUpdate', { maxErrorRate: 1 }, 'maxErrorRate: must be a number in [0, 1)'],
  ['rollingUpdate', { isRollback: 'true' }, 'isRollback: must be true or false'],
  ['nightlyBackup', { skipPrune: 'yes' }, 'skipPrune: must be true or false'],
  ['nightlyBackup', { pin: 'safety' }, 'pin: must be an object'],
  ['nightlyBackup', { pin: { reason: 'nightly' } }, 'pin.reason: must be one of "safety", "pre-update"'],
  ['nightlyBackup', { pin: { reason: 'safety', window: '0d' } }, 'pin.window: must be longer than 0'],
  ['restoreBackup', { database: 3 }, 'database: must be a string, got 3'],
  ['restoreArchive', { volume: undefined }, 'volume: say what to restore: either "volume": "<name>" or "config": true'],
  ['restoreArchive', { config: true }, 'volume: say what to restore: either "volume": "<name>" or "config": true'],
  ['restoreArchive', { volume: 'Uploads' }, 'volume: "Uploads" is not a valid volume name'],
  ['restoreArchive', { archive: '' }, 'archive: must be an archive file name or "latest"'],
  ['restoreBackup', { backup: '' }, 'backup: must be a backup file name or "latest"'],
  ['restoreBackup', { safetyPinWindow: 'week' }, 'safetyPinWindow: "week" is not a duration'],
  ['restoreBackup', { approvalTimeout: '40d' }, 'approvalTimeout: 40d exceeds the maximum of 30d'],
  ['restoreBackup', { keepPrevious: 'yes' }, 'keepPrevious: must be true or false'],
  ['restoreBackup', { keepPreviousFor: '7 dayz' }, 'keepPreviousFor: "7 dayz" is not a duration'],
  ['issueCertificate', { domains: [] }, 'domains: must be a non-empty list of names'],
  ['issueCertificate', { domains: 'a.example' }, 'domains: must be a list of names'],
  ['issueCertificate', { domains: ['ok.example', 'two words'] }, 'domains[1]: "two words" is not a name'],
  ['issueCertificate', { staging: 'no' }, 'staging: must be true or false'],
  ['issueCertificate', { selfSigned: 1 }, 'selfSigned: must be true or false'],
  ['issueCertificate', { selfSigned: true, staging: true }, 'selfSigned: excludes "staging"'],
  ['issueCertificate', { force: 'yes' }, 'force: must be true or false'],
  ['issueCertificate', { reason: 'x'.repeat(1001) }, 'reason: must be a string of at most 1000 characters'],
  ['releasePreviousDatabase', { database: '' }, 'database: must be the logical name of a database'],
  ['releasePreviousDatabase', { runTag: 5 }, 'runTag: must be a string, got 5'],
  ['releasePreviousDatabase', { keepFor: undefined }, 'keepFor: is required (a duration like "15m" or "7d")'],
  ['releasePreviousDatabase', { keepFor: 'a week' }, 'keepFor: "a week" is not a duration'],
];

describe('runbook input schemas', () => {
  it.each(RUNBOOKS)('%s accepts its minimal input and returns it unchanged (no defaults filled in)', (runbook) => {
    expect(parseInput(INPUT_SCHEMAS[runbook], MINIMAL[runbook], runbook)).toEqual(MINIMAL[runbook]);
  });

  it.each(RUNBOOKS)('%s accepts its documented example', (runbook) => {
    expect(parseInput(INPUT_SCHEMAS[runbook], INPUT_EXAMPLES[runbook], runbook)).toEqual(INPUT_EXAMPLES[runbook]);
  });

  it('a rollback needs no version', () => {
    expect(parseInput(INPUT_SCHEMAS.rollingUpdate, { ...target, isRollback: true }, 'rollingUpdate')).toEqual({ ...target, isRollback: true });
  });

  it.each(BAD)('%s: %j fails naming the field', (runbook, change, expected) => {
    const message = failure(runbook, { ...MINIMAL[runbook], ...change }).message;
    expect(message.startsWith(`invalid input: ${expected}`)).toBe(true);
  });

  it.each(RUNBOOKS)('%s refuses an unknown field, naming it', (runbook) => {
    expect(failure(runbook, { ...MINIMAL[runbook], colour: 'blue' }).message).toBe('invalid input: colour: is not an option');
  });

  it('names every failing field in one message', () => {
    const message = failure('rollingUpdate', { app: 'Shop', version: 'v2', canary: { bake: '10x' }, batchSize: 0, foo: 1 }).message;
    expect(message).toMatch(/^invalid input: app: "Shop" is not a valid app name.*; env: is required \(a name\); batchSize: must be a whole number ≥ 1; canary\.bake: "10x" is not a duration.*; foo: is not an option$/);
  });

  it.each([null, 'shop', [1], 3])('refuses %j: not a JSON object', (input) => {
    expect(failure('firstDeploy', input).message).toBe('invalid input: firstDeploy takes a JSON object like {"app": "demo", "env": "production"}');
  });

  it('the client checks with the same schema before a start', () => {
    expect(() => checkRunbookInput('rollingUpdate', { ...target, version: 'v2', canary: { bake: '10x' } })).toThrow(/^invalid input: canary\.bake: "10x" is not a duration/);
    expect(() => checkRunbookInput('renewCertificates', {})).not.toThrow();
  });

  it('dnsCutover: "to" must differ from "from"; records are DNS names', () => {
    expect(failure('dnsCutover', { app: 'shop', from: 'blue', to: 'blue' }).message).toBe('invalid input: to: must differ from "from"');
    expect(failure('dnsCutover', { app: 'shop', from: 'blue', to: 'green', records: ['not a name'], window: '100d' }).message).toBe(
      'invalid input: records[0]: "not a name" is not a DNS name (e.g. "app.example.com"); window: 100d exceeds the maximum of 90d',
    );
  });

  it.each(RUNBOOKS)('%s has a JSON Schema: a strict object with a description per field', (runbook) => {
    const schema = inputJsonSchema(runbook) as { type: string; additionalProperties: boolean; required: string[]; properties: Record<string, { description?: string }> };
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required.slice(0, 2)).toEqual(runbook === 'dnsCutover' ? ['app', 'from'] : ['app', 'env']);
    for (const [field, prop] of Object.entries(schema.properties)) expect([field, prop.description ?? '']).toEqual([field, expect.stringMatching(/\S/)]);
  });
});

describe('docs/inputs.md', () => {
  it('is what the schemas render (regenerate: npm run docs:inputs)', () => {
    const file = path.join(__dirname, '../../docs/inputs.md');
    if (process.env.UPDATE_INPUT_DOCS === '1') fs.writeFileSync(file, renderInputDocs());
    expect(fs.readFileSync(file, 'utf8')).toBe(renderInputDocs());
  });
});

describe('docs/runbooks/*.md', () => {
  const dir = path.join(__dirname, '../../docs/runbooks');
  const pages = fs.readdirSync(dir).filter((f) => f.endsWith('.md'));

  it.each(RUNBOOKS)('%s has a page with its input region', (runbook) => {
    const file = path.join(dir, RUNBOOK_PAGES[runbook]);
    expect(fs.existsSync(file)).toBe(true);
    expect(pageRegions(fs.readFileSync(file, 'utf8'))).toContain(runbook);
  });

  it.each(pages)('%s: every input region is what the schemas render (regenerate: npm run docs:inputs)', (page) => {
    const file = path.join(dir, page);
    if (process.env.UPDATE_INPUT_DOCS === '1') fs.writeFileSync(file, renderRunbookPage(fs.readFileSync(file, 'utf8')));
    expect(fs.readFileSync(file, 'utf8')).toBe(renderRunbookPage(fs.readFileSync(file, 'utf8')));
  });

  it('a region is rewritten from the schema and the prose around it kept; an unknown runbook is refused', () => {
    const page = '# Prose\n\n<!-- inputs:begin nightlyBackup -->\nstale table\n<!-- inputs:end -->\n\nMore prose.\n';
    const rendered = renderRunbookPage(page);
    expect(rendered.startsWith('# Prose\n\n<!-- inputs:begin nightlyBackup -->\n')).toBe(true);
    expect(rendered.endsWith('\n<!-- inputs:end -->\n\nMore prose.\n')).toBe(true);
    expect(rendered).not.toContain('stale table');
    expect(rendered).toContain('| `pin.window` | duration | "30d" |');
    expect(rendered).toContain(temporalStartCommand('nightlyBackup'));
    expect(renderRunbookPage(rendered)).toBe(rendered);
    expect(() => renderRunbookPage('<!-- inputs:begin deployEverything -->\n<!-- inputs:end -->')).toThrow(/no input schema is named "deployEverything"/);
  });

  it('the start command is ready to paste: the workflow ID the CLI uses, the example as one shell word', () => {
    expect(temporalStartCommand('rollingUpdate')).toBe(
      'temporal workflow start --type rollingUpdate --task-queue runbooks --workflow-id rollingUpdate/demo/production \\\n' +
        `  --id-conflict-policy Fail --input '${JSON.stringify(INPUT_EXAMPLES.rollingUpdate)}'`,
    );
    expect(temporalStartCommand('dnsCutover')).toContain('--workflow-id dnsCutover/demo/green ');
    expect(temporalStartCommand('releasePreviousDatabase')).toContain('--workflow-id releasePreviousDatabase/demo/production/main/20261126T144252219Z ');
  });
});
