// A human works a runbook from the Temporal Web UI: finds the deploy waiting for approval in the
// workflow list, reads its summary and current details on the workflow's page, and approves it
// with "Send a Signal". Headless Debian chromium driven by playwright-core (test/helpers/browser.ts);
// screenshots land in .state/ui-*.png.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import type { Browser, Locator, Page } from 'playwright-core';
import { httpGet } from '../../activities/health';
import { renderTemplate } from '../../common/template';
import type { RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import { launchBrowser, newPage, openUiPage, retrying, screenshot, STATE_DIR, watchingNetwork, workflowListUrl, workflowUrl } from '../helpers/browser';
import { historyText, runCli, WorkerProcess } from '../helpers/e2e';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(180_000);

const APP = 'uiapp';
const ENV = 'production';
const WORKFLOW_ID = `firstDeploy/${APP}/${ENV}`;
const PROXY_PORT = 18190;

/** One app, one environment on the local engine: no dependencies, no migrations (fast). */
const INVENTORY_TEMPLATE = `
hosts:
  local:
    docker: { socketPath: "\${DOCKER_SOCK}" }
    minFreeDiskMb: 256
apps:
  ${APP}:
    image: 127.0.0.1:5000/demo-app
    port: 8080
    healthCheck: { path: /health, timeoutSeconds: 60 }
    envFile: { path: "\${SECRETS_DIR}/app.env", required: [SECRET_KEY] }
    proxyImage: 127.0.0.1:5000/nginx:1
    smokeTest: { path: /version, expectBody: "{{version}}" }
    stopTimeoutSeconds: 5
    environments:
      ${ENV}:
        hosts: [local]
        replicas: 1
        version: v1
        proxy: { hostPort: ${PROXY_PORT} }
        approvers: [alice]
        goLiveApproval: true
`;

const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-ui-${randomUUID()}`;
const secretKey = `sk-${randomBytes(12).toString('hex')}`;
let secretsDir: string;
let env: NodeJS.ProcessEnv;
let worker: WorkerProcess | undefined;
let connection: Connection;
let client: Client;
let browser: Browser | undefined;
let page: Page;
let runId: string;

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

/** Runs left over by an interrupted earlier test run (e.g. one waiting for approval). */
async function terminateLeftoverRuns(): Promise<void> {
  for (const id of [WORKFLOW_ID, `lock/${APP}/${ENV}`]) {
    await client.workflow.getHandle(id).terminate('left over by an earlier test run').catch(() => undefined);
  }
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Runs a UI step, retried up to `attempts` times when it only reads (a page load can fail for
 * reasons outside the test: see watchingNetwork in test/helpers/browser.ts); every failed attempt
 * leaves a screenshot, .state/ui-failed-<step>-<attempt>.png.
 */
async function uiStep<T>(name: string, attempts: number, fn: () => Promise<T>): Promise<T> {
  return retrying(name, attempts, async (attempt) => {
    try {
      return await fn();
    } catch (err) {
      await screenshot(page, `failed-${name}-${attempt}`).catch(() => undefined);
      throw err;
    }
  });
}

const workflowHeading = (): Locator => page.getByRole('heading', { name: WORKFLOW_ID });

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await terminateLeftoverRuns();
  await removeEverything();
  secretsDir = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-ui-'));
  writeFileSync(path.join(secretsDir, 'app.env'), `SECRET_KEY=${secretKey}\n`, { mode: 0o600 });
  const inventoryPath = path.join(secretsDir, 'inventory.yaml');
  writeFileSync(inventoryPath, renderTemplate(INVENTORY_TEMPLATE, { DOCKER_SOCK, SECRETS_DIR: secretsDir }));
  env = { ...process.env, TEMPORAL_ADDRESS, RUNBOOK_TASK_QUEUE: taskQueue, RUNBOOK_INVENTORY: inventoryPath };
  worker = new WorkerProcess(env);
  await worker.start();
  browser = await launchBrowser();
  page = await newPage(browser);
  // Failure screenshots of an earlier run would only mislead.
  if (existsSync(STATE_DIR)) for (const f of readdirSync(STATE_DIR)) if (/^ui-failed-.*\.png$/.test(f)) rmSync(path.join(STATE_DIR, f));
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await worker?.kill('SIGTERM');
  if (client) await terminateLeftoverRuns();
  await connection?.close();
  await removeEverything();
  if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
});

it('a detached deploy stops at the go-live gate', async () => {
  const started = await runCli(['deploy', APP, '--env', ENV, '--detach'], env);
  expect(started.stderr).toBe('');
  expect(started.code).toBe(0);
  const handle = client.workflow.getHandle(WORKFLOW_ID);
  const status = await waitFor('the go-live gate to be pending', 120_000, async () => {
    const st: RunbookStatus = await handle.query(statusQuery);
    return st.pendingGates.some((g) => g.gate === 'go-live') ? st : undefined;
  });
  expect(status.phase).toBe('awaiting-approval');
  runId = (await handle.describe()).runId;
  // The list page below reads visibility: wait until the search attribute is visible there.
  await waitFor('visibility to list the run as awaiting approval', 30_000, async () => {
    for await (const wf of client.workflow.list({ query: `RunbookAwaitingApproval = true AND WorkflowId = '${WORKFLOW_ID}'` })) {
      if (wf.runId === runId) return true;
    }
    return undefined;
  });
});

it('the workflow list filtered by RunbookAwaitingApproval shows the run', async () => {
  expect(runId).toBeDefined();
  await uiStep('list', 3, async () => {
    // The query is applied as the list's filter...
    await openUiPage(page, workflowListUrl('RunbookAwaitingApproval=true'), page.getByText('RunbookAwaitingApproval = true').first());
    // ...and this run is one of its rows (runs terminated while waiting keep the attribute).
    const row = page.getByRole('row').filter({ hasText: runId });
    await row.waitFor({ state: 'visible', timeout: 20_000 });
    const text = await row.innerText();
    expect(text).toContain(WORKFLOW_ID);
    expect(text).toMatch(/RUNNING/i);
    expect(text).toContain('firstDeploy');
    await screenshot(page, 'list');
  });
});

it('the workflow page shows the summary and the current details (rendered markdown)', async () => {
  await uiStep('details', 3, async () => {
    await openUiPage(page, workflowUrl(WORKFLOW_ID), workflowHeading());
    // The UI redirects to the latest run's page.
    await page.waitForURL((url) => url.pathname.includes(runId), { timeout: 20_000 });
    // UI 2.54: summary and current details live in the "User Metadata" tab, each markdown
    // rendered in its own iframe.
    await page.getByRole('tab', { name: 'User Metadata' }).click();
    await page.waitForURL(/\/user-metadata$/, { timeout: 20_000 });
    const summary = page.frameLocator('#user-metadata-summary');
    await summary.getByText('First deploy of uiapp').waitFor({ state: 'visible', timeout: 20_000 });
    expect(await summary.locator('body').innerText()).toMatch(/First deploy of uiapp .* to production/);
    const details = page.frameLocator('#user-metadata-current-details');
    await details.getByText('Waiting for approval').waitFor({ state: 'visible', timeout: 20_000 });
    // `**go-live**` is rendered as bold text, not shown with its asterisks.
    await details.locator('strong', { hasText: 'go-live' }).waitFor({ state: 'visible', timeout: 20_000 });
    const text = await details.locator('body').innerText();
    expect(text).toContain('phase: awaiting-approval');
    expect(text).toMatch(/Waiting for approval: go-live \(0\/1 approvals; approvers: alice;/);
    expect(text).not.toContain('**');
    await screenshot(page, 'details');
  });
});

it('approving with "Send a Signal" from the UI lets the deploy go live', async () => {
  const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
  await uiStep('signal-form', 3, async () => {
    await openUiPage(page, workflowUrl(WORKFLOW_ID), workflowHeading());
    await page.waitForURL((url) => url.pathname.includes(runId), { timeout: 20_000 });
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
    await dialog.waitFor({ state: 'visible', timeout: 20_000 });
    // The signal names come from the workflow's own definition (the metadata query).
    await dialog.getByRole('button', { name: /Select a signal|Signal name/ }).click();
    await dialog.getByRole('option', { name: 'approve', exact: true }).click();
    expect(await dialog.getByTestId('signal-select').inputValue()).toBe('approve');
    // The UI pretty-prints the JSON when the editor loses focus, which moves the Submit button:
    // type it already pretty-printed so that nothing moves under the click.
    const input = JSON.stringify({ gate: 'go-live', by: 'alice' }, null, 2);
    const data = dialog.getByRole('textbox', { name: 'Data' });
    await data.fill(input);
    expect(await data.innerText()).toBe(input);
    await dialog.locator('button[type=submit]:enabled', { hasText: 'Submit' }).waitFor({ state: 'visible', timeout: 10_000 });
    await screenshot(page, 'signal');
  });
  // Submit. If the request fails the dialog stays open with an error ("An unknown error
  // occurred."): submit again, as a human would. (A failed request may still have reached the
  // server: a second approval is then logged as ignored, which the checks below allow.)
  const submitError = dialog.locator('[role=alert]').filter({ hasText: /\S/ });
  await uiStep('signal-submit', 1, async () => {
    for (let attempt = 1; ; attempt++) {
      const { error, problems } = await watchingNetwork(page, async () => {
        await dialog.getByRole('button', { name: 'Submit' }).click();
        await waitFor('the signal dialog to close or show an error', 20_000, async () =>
          (await dialog.isVisible()) && !(await submitError.isVisible()) ? undefined : true,
        );
      });
      if (error) throw error;
      if (!(await dialog.isVisible())) break;
      const why = `${await submitError.innerText()}; requests: ${problems.join('; ') || 'none failed'}`;
      await screenshot(page, `failed-signal-submit-${attempt}`).catch(() => undefined);
      if (attempt >= 3) throw new Error(`Send a Signal failed ${attempt} times: ${why}`);
      process.stderr.write(`ui: Send a Signal: attempt ${attempt} failed (${why}), submitting again\n`);
    }
    await page.getByText('Workflow signaled.').first().waitFor({ state: 'visible', timeout: 20_000 });
    await screenshot(page, 'signaled');
  });

  const watched = await runCli(['watch', WORKFLOW_ID], env, 150_000);
  expect(watched.stdout).toMatch(/firstDeploy\/uiapp\/production: succeeded/);
  expect(watched.code).toBe(0);
  expect(await httpGet(`http://127.0.0.1:${PROXY_PORT}/version`)).toEqual({ status: 200, body: 'v1' });
  const status: RunbookStatus = await client.workflow.getHandle(WORKFLOW_ID).query(statusQuery);
  expect(status.phase).toBe('succeeded');
  const accepted = status.decisions.filter((d) => d.accepted);
  expect(accepted).toEqual([expect.objectContaining({ gate: 'go-live', by: 'alice', decision: 'approve', via: 'signal' })]);

  await uiStep('completed', 3, async () => {
    await openUiPage(page, workflowUrl(WORKFLOW_ID), workflowHeading());
    await page.waitForURL((url) => url.pathname.includes(runId), { timeout: 20_000 });
    await page.getByText(/^completed$/i).first().waitFor({ state: 'visible', timeout: 20_000 });
    await screenshot(page, 'completed');
  });

  const history = await historyText(client, WORKFLOW_ID, runId);
  expect(history).toContain(APP);
  expect(history.includes(secretKey)).toBe(false);
});
