// A headless browser for the Web UI tests: playwright-core driving Debian's chromium (installed by
// scripts/install.sh). Nothing is ever downloaded: playwright-core ships no browser, and the
// flags below keep chromium itself off the network (updates, sync, field trials, ...).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Locator, type Page, type Request, type Response } from 'playwright-core';

export const CHROMIUM_PATH = process.env.RUNBOOK_CHROMIUM ?? '/usr/bin/chromium';
export const TEMPORAL_UI_URL = process.env.TEMPORAL_UI_URL ?? 'http://127.0.0.1:8233';
/** Git-ignored; screenshots of the UI tests land here. */
export const STATE_DIR = path.join(__dirname, '../../.state');

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
}

/** A page with a desktop-sized viewport and bounded default waits. */
export async function newPage(browser: Browser, timeoutMs = 30_000): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  context.setDefaultTimeout(timeoutMs);
  context.setDefaultNavigationTimeout(timeoutMs);
  return context.newPage();
}

/** Saves a full-page screenshot to .state/ui-<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(STATE_DIR, { recursive: true });
  const file = path.join(STATE_DIR, `ui-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 30_000 });
  return file;
}

/** Saves a screenshot of one element (clipped to it) to .state/ui-<name>.png and returns its path. */
export async function screenshotOf(element: Locator, name: string): Promise<string> {
  mkdirSync(STATE_DIR, { recursive: true });
  const file = path.join(STATE_DIR, `ui-${name}.png`);
  await element.screenshot({ path: file, timeout: 30_000 });
  return file;
}

/** The UI's address of a workflow's page (the workflow ID is one path segment). */
export function workflowUrl(workflowId: string, namespace = 'default'): string {
  return `${TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** The UI's workflow list filtered by a visibility query. */
export function workflowListUrl(query: string, namespace = 'default'): string {
  return `${TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent(query)}`;
}

/**
 * Records what goes wrong on the network while `fn` runs: server errors and failed requests.
 * Chromium aborts its requests with net::ERR_NETWORK_CHANGED whenever the host's network
 * interfaces change, and the Docker engine adds and removes bridges and veths as containers and
 * networks come and go (ours and any other test's), so a page load can fail for that alone.
 */
export async function watchingNetwork<T>(page: Page, fn: (problems: string[]) => Promise<T>): Promise<{ value?: T; error?: unknown; problems: string[] }> {
  const problems: string[] = [];
  const onResponse = (r: Response): void => {
    if (r.status() >= 500) problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  };
  const onFailed = (r: Request): void => {
    problems.push(`${r.failure()?.errorText ?? 'failed'} ${r.method()} ${r.url()}`);
  };
  page.on('response', onResponse);
  page.on('requestfailed', onFailed);
  try {
    return { value: await fn(problems), problems };
  } catch (error) {
    return { error, problems };
  } finally {
    page.off('response', onResponse);
    page.off('requestfailed', onFailed);
  }
}

function summarize(problems: string[]): string {
  if (problems.length === 0) return '';
  const kinds = new Map<string, number>();
  for (const p of problems) {
    const kind = p.split(' ')[0]!;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return `; requests: ${[...kinds].map(([k, n]) => `${n}× ${k}`).join(', ')} (first: ${problems[0]})`;
}

/**
 * Opens a UI page and waits until `ready` is visible. Throws, saying why, if the UI shows its
 * error page instead ("500 Uh oh. There's an error."), or if requests failed and the page is
 * still not ready `brokenAfterMs` later (the app's scripts failed to load: it stays blank).
 */
export async function openUiPage(page: Page, url: string, ready: Locator, options: { timeoutMs?: number; brokenAfterMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const brokenAfterMs = options.brokenAfterMs ?? 5_000;
  const errorPage = page.getByText("Uh oh. There's an error.");
  const { error, problems } = await watchingNetwork(page, async (problems) => {
    await page.goto(url, { timeout: timeoutMs });
    const deadline = Date.now() + timeoutMs;
    let firstProblemAt: number | undefined;
    for (;;) {
      if (await ready.first().isVisible()) return;
      if (await errorPage.isVisible()) {
        const shown = (await page.locator('body').innerText()).replace(/\s+/g, ' ').trim().slice(0, 120);
        throw new Error(`the UI shows its error page (${shown})`);
      }
      // (net::ERR_ABORTED: requests of the previous page, cancelled by the navigation.)
      if (firstProblemAt === undefined && problems.some((p) => !p.startsWith('net::ERR_ABORTED'))) firstProblemAt = Date.now();
      if (firstProblemAt !== undefined && Date.now() - firstProblemAt > brokenAfterMs) throw new Error(`not ready ${brokenAfterMs} ms after requests failed`);
      if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`);
      await page.waitForTimeout(200);
    }
  });
  if (error) throw new Error(`${url}: ${(error as Error).message.split('\n')[0]}${summarize(problems)}`);
}

/**
 * Runs a read-only UI step up to `attempts` times: a human would "Try a refresh" too. Every
 * attempt is bounded by its own waits; failures before the last are reported on stderr.
 */
export async function retrying<T>(what: string, attempts: number, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts) throw err;
      process.stderr.write(`ui: ${what}: attempt ${attempt}/${attempts} failed, retrying: ${(err as Error).message.split('\n')[0]}\n`);
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

/** The UI's Start Workflow form (UI 2.54: offered unless the UI's StartWorkflowDisabled is set; the dev server leaves it off). */
export function startWorkflowUrl(namespace = 'default'): string {
  return `${TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(namespace)}/workflows/start-workflow`;
}

export interface StartWorkflowForm {
  workflowId: string;
  taskQueue: string;
  workflowType: string;
  /** The one JSON payload, typed into the Data editor. */
  input: unknown;
  /** Markdown typed into "More options" → User Metadata → Summary. */
  summary?: string;
}

/**
 * Fills the Start Workflow form (opened with startWorkflowUrl) as a human does, without submitting:
 * workflow ID, task queue (then waits until the UI shows a worker polling it: a start on a queue
 * nobody serves would just sit there), workflow type, the JSON input and, under "More options", the
 * summary. Throws if a field does not hold what was typed.
 */
export async function fillStartWorkflowForm(page: Page, form: StartWorkflowForm): Promise<void> {
  await page.getByLabel('Workflow ID').fill(form.workflowId);
  const queue = page.getByLabel('Task Queue');
  await queue.fill(form.taskQueue);
  // The UI describes the queue when the field loses focus.
  await queue.blur();
  await page.getByText('Task Queue is Active').waitFor({ state: 'visible', timeout: 20_000 });
  await page.getByLabel('Workflow Type').fill(form.workflowType);
  // The editor pretty-prints the JSON when it loses focus, which moves everything below it: type
  // it already pretty-printed so that nothing moves under the next click.
  const json = JSON.stringify(form.input, null, 2);
  const data = page.getByRole('textbox', { name: 'Data' });
  await data.fill(json);
  if ((await data.innerText()) !== json) throw new Error(`the Data editor holds ${JSON.stringify(await data.innerText())}, not the typed input`);
  if (form.summary !== undefined) {
    await page.getByRole('button', { name: 'More options' }).click();
    // UI 2.54: Summary and Details are two markdown editors (CodeMirror) under "User Metadata",
    // their labels not tied to them; the summary is the first.
    const summary = page.locator('.cm-content[data-language=markdown]').first();
    await summary.fill(form.summary);
    if ((await summary.innerText()) !== form.summary) throw new Error(`the Summary editor holds ${JSON.stringify(await summary.innerText())}, not the typed summary`);
  }
  for (const [label, value] of [['Workflow ID', form.workflowId], ['Task Queue', form.taskQueue], ['Workflow Type', form.workflowType]]) {
    const held = await page.getByLabel(label!).inputValue();
    if (held !== value) throw new Error(`the ${label} field holds ${JSON.stringify(held)}, not ${JSON.stringify(value)}`);
  }
}

/** The Start Workflow page's heading and form, for a screenshot of the filled form. */
export function startWorkflowFormArea(page: Page): Locator {
  return page.locator('div:has(> h1[data-testid=start-workflow])');
}

/**
 * Clicks "Start Workflow" on the filled form; returns the new run's ID, read from the link of the
 * "Workflow started successfully" toast. Throws with what the UI said when no run was started
 * (the form stays filled: submitting again is what a human would do).
 */
export async function submitStartWorkflowForm(page: Page, timeoutMs = 20_000): Promise<string> {
  const started = page.getByRole('link', { name: 'Workflow started successfully' });
  const { error, problems } = await watchingNetwork(page, async () => {
    await page.getByRole('button', { name: 'Start Workflow' }).click();
    await started.waitFor({ state: 'visible', timeout: timeoutMs });
  });
  if (error) {
    const toasts = (await page.locator('[data-testid^=toast]').allInnerTexts().catch(() => [])).map((t) => t.replace(/\s+/g, ' ').trim()).filter(Boolean);
    throw new Error(`Start Workflow: no run started (${toasts.join('; ') || (error as Error).message.split('\n')[0]})${summarize(problems)}`);
  }
  // /namespaces/<ns>/workflows/<workflow ID>/<run ID>/<tab>
  const href = (await started.getAttribute('href')) ?? '';
  const runId = decodeURIComponent(href.split('/').filter(Boolean).slice(-2)[0] ?? '');
  if (!/^[0-9a-f-]{36}$/.test(runId)) throw new Error(`Start Workflow: no run ID in the toast's link ${JSON.stringify(href)}`);
  return runId;
}

/** The UI's address of one run's page, on one of its tabs. */
export function runUrl(workflowId: string, runId: string, tab: 'timeline' | 'history' | 'user-metadata' = 'timeline', namespace = 'default'): string {
  return `${workflowUrl(workflowId, namespace)}/${encodeURIComponent(runId)}/${tab}`;
}
