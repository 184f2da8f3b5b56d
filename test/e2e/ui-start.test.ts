// Every runbook worked from the Temporal Web UI alone, as a human without the CLI would: "Start
// Workflow" with the runbook's one JSON input (workflow ID <runbook>/<app>/<env>, a summary typed
// into the form), its summary and current details on the run's page, the pending gate approved or
// rejected with "Send a Signal", the end state on the page. One app on the local engine, worked in
// the order of an operator's week: first deploy (go-live approved) → rolling update (canary
// rejected: rolled back) → nightly backup → restore (approved) → self-signed certificate. And a
// malformed input typed into the form fails the run at once, naming the field. Headless Debian
// chromium (test/helpers/browser.ts); screenshots land in .state/ui-start-*.png. Host ports 18250
// and 18450 and the names uistart-* belong to this file.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import type { Browser, Locator, Page } from 'playwright-core';
import { httpGet } from '../../activities/health';
import { createTlsActivities } from '../../activities/tls';
import type { IssueCertificateResult, RunbookStatus } from '../../common/types';
import { statusQuery } from '../../workflows/lib/definitions';
import type { NightlyBackupResult } from '../../workflows/nightlyBackup';
import type { RestoreBackupResult } from '../../workflows/restoreBackup';
import {
  fillStartWorkflowForm,
  launchBrowser,
  newPage,
  openUiPage,
  retrying,
  runUrl,
  screenshot,
  screenshotOf,
  startWorkflowFormArea,
  startWorkflowUrl,
  STATE_DIR,
  submitStartWorkflowForm,
  watchingNetwork,
  type StartWorkflowForm,
} from '../helpers/browser';
import { e2eSetup, historyText, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const APP = 'uistart';
const ENV = 'production';
const PROXY_PORT = 18250;
const HTTPS_PORT = 18450;
const DOMAIN = 'uistart.runbooks.test';
const APPROVER = 'alice';

/**
 * One app, one environment on the local engine: postgres (for the backup and the restore), two
 * replicas (a canary batch and one more), a proxy with HTTPS for a self-signed certificate (no CA,
 * no DNS: the certificate e2e test covers those).
 */
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
    migrate: { command: [demo-app, migrate], timeoutSeconds: 60 }
    envFile: { path: "\${SECRETS_DIR}/app.env", required: [DATABASE_URL, SECRET_KEY] }
    dependencies:
      - name: postgres
        image: 127.0.0.1:5000/postgres:15
        envFile: { path: "\${SECRETS_DIR}/postgres.env", required: [POSTGRES_PASSWORD] }
        env: { POSTGRES_USER: demo, POSTGRES_DB: demo }
        volumes: { pgdata: /var/lib/postgresql/data }
        healthTimeoutSeconds: 60
    proxyImage: 127.0.0.1:5000/nginx:1
    smokeTest: { path: /version, expectBody: "{{version}}" }
    stopTimeoutSeconds: 5
    backup:
      storage: { type: directory, path: "\${SECRETS_DIR}/backups" }
      databases:
        - { name: main, database: demo, user: demo, passwordFile: "\${SECRETS_DIR}/pg-password", dependency: postgres }
      retention: { daily: 7 }
    environments:
      ${ENV}:
        hosts: [local]
        replicas: 2
        version: v1
        proxy:
          hostPort: ${PROXY_PORT}
          httpsPort: ${HTTPS_PORT}
          tls: { domains: [${DOMAIN}], selfSigned: true }
        approvers: [${APPROVER}]
`;

const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-ui-start-${randomUUID()}`;
let setup: E2eSetup;
let worker: WorkerProcess | undefined;
let connection: Connection;
let client: Client;
let browser: Browser | undefined;
let page: Page;
/** Every run started from the UI, for the secrets scan at the end. */
const runs: { workflowId: string; runId: string }[] = [];

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  const { Volumes } = await docker.listVolumes();
  for (const v of (Volumes ?? []).filter((v) => v.Name.startsWith(`${APP}-`))) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

/** Runs left over by an interrupted earlier test run (e.g. one waiting for approval). */
async function terminateLeftoverRuns(): Promise<void> {
  for await (const wf of client.workflow.list({ query: `RunbookApp = '${APP}' AND ExecutionStatus = 'Running'` })) {
    await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('left over by an earlier test run').catch(() => undefined);
  }
  await client.workflow.getHandle(`lock/${APP}/${ENV}`).terminate('left over by an earlier test run').catch(() => undefined);
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
 * leaves a screenshot, .state/ui-start-failed-<step>-<attempt>.png.
 */
async function uiStep<T>(name: string, attempts: number, fn: (attempt: number) => Promise<T>): Promise<T> {
  return retrying(name, attempts, async (attempt) => {
    try {
      return await fn(attempt);
    } catch (err) {
      await screenshot(page, `start-failed-${name}-${attempt}`).catch(() => undefined);
      throw err;
    }
  });
}

const heading = (workflowId: string): Locator => page.getByRole('heading', { name: workflowId });

/** The run that holds a workflow ID now (undefined when none ever did). */
async function currentRunId(workflowId: string): Promise<string | undefined> {
  return (await client.workflow.getHandle(workflowId).describe().catch(() => undefined))?.runId;
}

/**
 * Starts a run from the UI's Start Workflow form; returns its run ID. Filling is retried like any
 * read; the submit is a write: when it seems to fail, the server is asked whether a new run exists
 * before submitting again (a request that failed in the browser may have reached the server).
 */
async function startFromUi(form: StartWorkflowForm, shot: string): Promise<string> {
  const before = await currentRunId(form.workflowId);
  const runId = await uiStep(`${shot}-start`, 3, async () => {
    const now = await currentRunId(form.workflowId);
    if (now !== before && now !== undefined) return now; // an earlier attempt did start it
    await openUiPage(page, startWorkflowUrl(), page.getByLabel('Workflow ID'));
    await fillStartWorkflowForm(page, form);
    await screenshotOf(startWorkflowFormArea(page), `start-${shot}-form`);
    return submitStartWorkflowForm(page);
  });
  runs.push({ workflowId: form.workflowId, runId });
  const d = await client.workflow.getHandle(form.workflowId, runId).describe();
  expect(d.type).toBe(form.workflowType);
  expect(d.taskQueue).toBe(taskQueue);
  return runId;
}

/** The run's page, User Metadata tab: the summary typed into the form and the workflow's current details (rendered markdown). */
async function userMetadata(workflowId: string, runId: string, summary: string, detailsShow: string): Promise<{ summary: string; details: string }> {
  await openUiPage(page, runUrl(workflowId, runId, 'user-metadata'), heading(workflowId));
  // UI 2.54: summary and current details are each rendered in an iframe of their own.
  const summaryFrame = page.frameLocator('#user-metadata-summary');
  await summaryFrame.getByText(summary).waitFor({ state: 'visible', timeout: 20_000 });
  const detailsFrame = page.frameLocator('#user-metadata-current-details');
  await detailsFrame.getByText(detailsShow).first().waitFor({ state: 'visible', timeout: 20_000 });
  return { summary: await summaryFrame.locator('body').innerText(), details: await detailsFrame.locator('body').innerText() };
}

/**
 * Sends a signal from the run's page: More Actions → Send a Signal, the signal picked from the
 * list the UI reads from the workflow's own definition, its JSON typed in, Submit. If the request
 * fails the dialog stays open with an error: submit again, as a human would (a failed request may
 * still have reached the server: a second decision is logged as ignored, which the callers allow).
 */
async function signalFromUi(workflowId: string, runId: string, signal: string, input: unknown, shot: string): Promise<void> {
  const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
  await uiStep(`${shot}-signal-form`, 3, async () => {
    await openUiPage(page, runUrl(workflowId, runId), heading(workflowId));
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
    await dialog.waitFor({ state: 'visible', timeout: 20_000 });
    await dialog.getByRole('button', { name: /Select a signal|Signal name/ }).click();
    await dialog.getByRole('option', { name: signal, exact: true }).click();
    expect(await dialog.getByTestId('signal-select').inputValue()).toBe(signal);
    // Pretty-printed already: the editor reformats on blur, which would move the Submit button.
    const json = JSON.stringify(input, null, 2);
    const data = dialog.getByRole('textbox', { name: 'Data' });
    await data.fill(json);
    expect(await data.innerText()).toBe(json);
    await dialog.locator('button[type=submit]:enabled', { hasText: 'Submit' }).waitFor({ state: 'visible', timeout: 10_000 });
    await screenshot(page, `start-${shot}-signal`);
  });
  const submitError = dialog.locator('[role=alert]').filter({ hasText: /\S/ });
  await uiStep(`${shot}-signal-submit`, 1, async () => {
    for (let attempt = 1; ; attempt++) {
      const { error, problems } = await watchingNetwork(page, async () => {
        await dialog.getByRole('button', { name: 'Submit' }).click();
        await waitFor('the signal dialog to close or show an error', 20_000, async () => ((await dialog.isVisible()) && !(await submitError.isVisible()) ? undefined : true));
      });
      if (error) throw error;
      if (!(await dialog.isVisible())) break;
      const why = `${await submitError.innerText()}; requests: ${problems.join('; ') || 'none failed'}`;
      if (attempt >= 3) throw new Error(`Send a Signal failed ${attempt} times: ${why}`);
      process.stderr.write(`ui: Send a Signal: attempt ${attempt} failed (${why}), submitting again\n`);
    }
    await page.getByText('Workflow signaled.').first().waitFor({ state: 'visible', timeout: 20_000 });
  });
}

/** Waits for the run to close; returns its result, or the failure it ended with. */
async function outcome<T>(workflowId: string, runId: string): Promise<{ result?: T; failure?: ApplicationFailure }> {
  try {
    return { result: await client.workflow.getHandle(workflowId, runId).result() };
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure) return { failure: err.cause };
    throw err;
  }
}

/** The run's page shows the end state (COMPLETED / FAILED) and, for a failure, its message. */
async function seeEndState(workflowId: string, runId: string, status: 'completed' | 'failed', shows: string | undefined, shot: string): Promise<string> {
  return uiStep(`${shot}-end`, 3, async () => {
    await openUiPage(page, runUrl(workflowId, runId), heading(workflowId));
    await page.getByText(new RegExp(`^${status}$`, 'i')).first().waitFor({ state: 'visible', timeout: 20_000 });
    // The page's "Result" card: the result, or the failure with its message.
    if (shows) await page.getByText(shows).first().waitFor({ state: 'visible', timeout: 20_000 });
    await screenshot(page, `start-${shot}-end`);
    return page.locator('main').innerText();
  });
}

interface GateStep {
  gate: string;
  decision: 'approve' | 'reject';
}

/**
 * Works one runbook from the UI: starts it; if it has a gate, waits until the gate is pending, sees
 * it in the current details and decides it with a signal; then sees the end state. Returns the run.
 */
async function workRunbook<T>(o: { type: string; input: Record<string, unknown>; summary: string; gate?: GateStep; end: 'completed' | 'failed'; endShows?: string }) {
  const workflowId = `${o.type}/${APP}/${ENV}`;
  const runId = await startFromUi({ workflowId, taskQueue, workflowType: o.type, input: o.input, summary: o.summary }, o.type);
  const handle = client.workflow.getHandle(workflowId, runId);
  if (o.gate) {
    const gate = o.gate.gate;
    await waitFor(`the ${gate} gate of ${workflowId} to be pending`, 180_000, async () => {
      const st: RunbookStatus = await handle.query(statusQuery);
      if (st.phase === 'failed' || st.phase === 'succeeded') throw new Error(`${workflowId} ended (${st.phase}) before its ${gate} gate: ${st.error ?? ''}`);
      return st.pendingGates.some((g) => g.gate === gate) ? st : undefined;
    });
    const shown = await uiStep(`${o.type}-gate`, 3, async () => {
      const m = await userMetadata(workflowId, runId, o.summary.replace(/\*\*/g, ''), 'Waiting for approval');
      await screenshot(page, `start-${o.type}-gate`);
      return m;
    });
    expect(shown.summary).toContain(o.summary.replace(/\*\*/g, ''));
    expect(shown.details).toContain('phase: awaiting-approval');
    expect(shown.details).toMatch(new RegExp(`Waiting for approval: ${gate} \\(0/1 approvals; approvers: ${APPROVER};`));
    expect(shown.details).not.toContain('**');
    await signalFromUi(workflowId, runId, o.gate.decision, { gate, by: APPROVER }, o.type);
  }
  const { result, failure } = await outcome<T>(workflowId, runId);
  if (o.end === 'completed' && failure) throw new Error(`${workflowId} failed: ${failure.type}: ${failure.message}\nworker:\n${worker?.output.slice(-3000)}`);
  if (o.end === 'failed') expect(failure).toBeDefined();
  const page_ = await seeEndState(workflowId, runId, o.end, o.endShows, o.type);
  // The workflow's own account of the run, also on the page: its current details, final.
  const final = await uiStep(`${o.type}-final-details`, 3, () => userMetadata(workflowId, runId, o.summary.replace(/\*\*/g, ''), `phase: ${o.end === 'completed' ? 'succeeded' : 'failed'}`));
  const status: RunbookStatus = await handle.query(statusQuery);
  if (o.gate) {
    expect(status.decisions.filter((d) => d.accepted)).toEqual([expect.objectContaining({ gate: o.gate.gate, by: APPROVER, decision: o.gate.decision, via: 'signal' })]);
  }
  return { workflowId, runId, result, failure, status, page: page_, details: final.details };
}

async function webContainers(): Promise<string[]> {
  const web = await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`, 'runbook.role=web'] } });
  return web.map((c) => `${c.Labels['runbook.version']} ${c.State}`).sort();
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  await terminateLeftoverRuns();
  await removeEverything();
  const templateDir = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-ui-start-'));
  const template = path.join(templateDir, 'inventory.yaml');
  writeFileSync(template, INVENTORY_TEMPLATE);
  setup = e2eSetup(template, taskQueue);
  rmSync(templateDir, { recursive: true, force: true });
  const password = /^POSTGRES_PASSWORD=(.*)$/m.exec(readFileSync(path.join(setup.dir, 'postgres.env'), 'utf8'))![1];
  writeFileSync(path.join(setup.dir, 'pg-password'), `${password}\n`, { mode: 0o600 });
  worker = new WorkerProcess(setup.env);
  await worker.start();
  browser = await launchBrowser();
  page = await newPage(browser);
  // Tall enough for the whole Start Workflow form, "More options" open, in one screenshot.
  await page.setViewportSize({ width: 1280, height: 1800 });
  // Failure screenshots of an earlier run would only mislead.
  if (existsSync(STATE_DIR)) for (const f of readdirSync(STATE_DIR)) if (/^ui-start-failed-.*\.png$/.test(f)) rmSync(path.join(STATE_DIR, f));
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await worker?.kill('SIGTERM');
  if (client) await terminateLeftoverRuns().catch(() => undefined);
  await connection?.close();
  await removeEverything();
  if (setup) rmSync(setup.dir, { recursive: true, force: true });
});

it('a malformed input typed into the form fails the run at once, naming the field', async () => {
  const workflowId = `rollingUpdate/${APP}/${ENV}`;
  const runId = await startFromUi({ workflowId, taskQueue, workflowType: 'rollingUpdate', input: { app: APP, env: ENV, version: 'v2', batchSize: 'two' } }, 'malformed');
  const { failure } = await outcome(workflowId, runId);
  expect(failure?.type).toBe('InvalidInput');
  expect(failure?.nonRetryable).toBe(true);
  expect(failure?.message).toBe('invalid input: batchSize: must be a whole number ≥ 1, got "two"');
  // At once: nothing ran, not one activity was scheduled.
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  expect(history.events?.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
  const shown = await seeEndState(workflowId, runId, 'failed', 'invalid input: batchSize: must be a whole number ≥ 1', 'malformed');
  expect(shown).toContain('InvalidInput');
  expect(await webContainers()).toEqual([]);
});

it('firstDeploy started from the UI stops at the go-live gate; approved in the UI, it completes and the proxy serves v1', async () => {
  const run = await workRunbook({
    type: 'firstDeploy',
    input: { app: APP, env: ENV, goLiveApproval: true },
    summary: `First deploy of **${APP}** to ${ENV}, from the Web UI`,
    gate: { gate: 'go-live', decision: 'approve' },
    end: 'completed',
  });
  expect(run.details).toContain('phase: succeeded, step: done');
  expect(await webContainers()).toEqual(['v1 running', 'v1 running']);
  expect(await httpGet(`http://127.0.0.1:${PROXY_PORT}/version`)).toEqual({ status: 200, body: 'v1' });
});

it('rollingUpdate to v2 with a canary gate; rejected in the UI, it fails naming who rejected, every replica back on v1', async () => {
  const run = await workRunbook({
    type: 'rollingUpdate',
    input: { app: APP, env: ENV, version: 'v2', canary: 'approve', backup: false },
    summary: `Update **${APP}** ${ENV} to v2, canary first`,
    gate: { gate: 'canary', decision: 'reject' },
    end: 'failed',
    endShows: `canary rejected by ${APPROVER}`,
  });
  expect(run.failure?.type).toBe('CanaryRejected');
  expect(run.failure?.message).toMatch(/^canary rejected by alice\nrolled back 1 replica\(s\) on local to v1/);
  expect(run.details).toContain(`Error: canary rejected by ${APPROVER}`);
  expect(await webContainers()).toEqual(['v1 running', 'v1 running']);
  expect(await httpGet(`http://127.0.0.1:${PROXY_PORT}/version`)).toEqual({ status: 200, body: 'v1' });
});

let backupFile: string;

it('nightlyBackup started from the UI (no gate) completes with a verified backup', async () => {
  const run = await workRunbook<NightlyBackupResult>({
    type: 'nightlyBackup',
    input: { app: APP, env: ENV },
    summary: `Backup of **${APP}** ${ENV}, from the Web UI`,
    end: 'completed',
  });
  expect(run.result?.backups).toHaveLength(1);
  backupFile = run.result!.backups[0].file;
  // The result card on the page names the backup.
  expect(run.page).toContain(backupFile);
});

it('restoreBackup started from the UI waits for approval; approved in the UI, it restores that backup and the app serves again', async () => {
  expect(backupFile).toBeDefined();
  const run = await workRunbook<RestoreBackupResult>({
    type: 'restoreBackup',
    input: { app: APP, env: ENV, keepPrevious: true },
    summary: `Restore **${APP}** ${ENV} from the latest backup`,
    gate: { gate: 'restore', decision: 'approve' },
    end: 'completed',
  });
  expect(run.result).toMatchObject({ database: 'main', restored: backupFile, previousKept: true });
  expect(run.page).toContain(backupFile);
  expect(await webContainers()).toEqual(['v1 running', 'v1 running']);
  expect(await httpGet(`http://127.0.0.1:${PROXY_PORT}/version`)).toEqual({ status: 200, body: 'v1' });
});

it('issueCertificate started from the UI (self-signed) completes; the proxy serves that certificate over HTTPS', async () => {
  const run = await workRunbook<IssueCertificateResult>({
    type: 'issueCertificate',
    input: { app: APP, env: ENV, selfSigned: true },
    summary: `Self-signed certificate for **${APP}** ${ENV}`,
    end: 'completed',
  });
  const served = await createTlsActivities().inspectServedCertificate({ address: '127.0.0.1', port: HTTPS_PORT, servername: DOMAIN });
  expect(served.names).toEqual([DOMAIN]);
  expect(served.trusted).toBe(false); // self-signed: no CA vouches for it
  expect(run.result?.hosts).toEqual([expect.objectContaining({ host: 'local', outcome: 'issued', certificate: expect.objectContaining({ serial: served.serial }) })]);
  expect(run.page).toContain(served.serial);
});

it('no secret value appears in the history of any run started from the UI', async () => {
  expect(runs.length).toBe(6);
  for (const run of runs) {
    const text = await historyText(client, run.workflowId, run.runId);
    expect(text).toContain(APP);
    for (const secret of setup.secrets) expect(text.includes(secret)).toBe(false);
  }
});
