// `runbook watch`: follows a runbook until it ends. On a terminal the view is redrawn in place every
// second (phase, steps with their durations, a running step's time ticking, the pending gate with who
// may approve and the exact command); elsewhere (pipes, CI, tests) each change is printed as a line.
// The rendering is pure (status + now → lines); only `watch` talks to Temporal and the terminal.
import * as readline from 'node:readline';
import type { FirstDeployResult, PendingGate, RunbookPhase, RunbookStatus, StepRecord } from '../common/types';
import type { RestoreArchiveResult } from '../workflows/restoreArchive';
import type { RestoreBackupResult } from '../workflows/restoreBackup';
import { formatStatus, formatStep, humanDuration, stepChanges } from './format';
import { failureText, type RunbookClient } from './runbooks';

/** A phase as the watcher saw it begin (the status carries only the current phase). */
export interface PhaseSeen {
  phase: RunbookPhase;
  since: Date;
  /** False when the watch began after this phase did: its time is then "at least". */
  sinceKnown: boolean;
}

export interface WatchFrame {
  workflowId: string;
  status: RunbookStatus;
  now: Date;
  /** The phases seen so far, oldest first; the last one is the current phase. */
  phases?: PhaseSeen[];
  /** The frame's height limit (the terminal's rows): older finished steps are folded into one line. */
  maxLines?: number;
}

/** Elapsed time, short and steady while it ticks: 0.4s, 42s, 3m 05s, 2h 03m, 3d 04h. */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad(h % 24)}h`;
}

const MARK: Record<StepRecord['state'], string> = { done: 'ok  ', failed: 'FAIL', running: '... ' };

/** One step: done and failed steps with their duration, a running one with the time since it began. */
export function stepLine(s: StepRecord, now: Date, width: number): string[] {
  const started = Date.parse(s.startedAt);
  const took = s.endedAt ? formatElapsed(Date.parse(s.endedAt) - started) : `${formatElapsed(now.getTime() - started)} so far`;
  const lines = [`  [${MARK[s.state]}] ${s.step.padEnd(width)}  ${took}`];
  if (s.state === 'failed' && s.detail) lines.push(...s.detail.split('\n').map((l) => `         ${l}`));
  return lines;
}

/** The pending gate: what it is for, who may approve, approvals so far, the deadline and the commands. */
export function gateLines(workflowId: string, g: PendingGate, now: Date): string[] {
  const left = Date.parse(g.deadline) - now.getTime();
  return [
    `  WAITING for approval "${g.gate}": ${g.description}`,
    `    who may approve: ${g.approvers.join(', ') || 'anyone'}; approvals ${g.approvedBy.length}/${g.minApprovals}${g.approvedBy.length ? ` (${g.approvedBy.join(', ')})` : ''}`,
    `    deadline: ${g.deadline} (${left > 0 ? `in ${humanDuration(left)}` : 'passed'}; then it does not proceed)`,
    `    approve: runbook approve ${workflowId} --gate ${g.gate} --by <name>`,
    `    reject:  runbook reject ${workflowId} --gate ${g.gate} --by <name>`,
  ];
}

/** The live view of a run at `now`: header, phases, steps, pending gates, notes and error. */
export function renderWatch({ workflowId, status: st, now, phases = [], maxLines }: WatchFrame): string[] {
  const first = st.steps[0] ? Date.parse(st.steps[0].startedAt) : undefined;
  const header = `${workflowId}: ${st.runbook} ${st.app}/${st.env} — ${st.phase}${first !== undefined ? `, ${formatElapsed(now.getTime() - first)} since the first step` : ''}`;
  const seen = phases.map((p, i) => `${p.phase} ${p.sinceKnown ? '' : '≥'}${formatElapsed((phases[i + 1]?.since ?? now).getTime() - p.since.getTime())}${i === phases.length - 1 ? ' (now)' : ''}`);
  const head = [header, ...(seen.length > 1 ? [`  phases: ${seen.join(' → ')}`] : [])];
  const width = Math.min(40, Math.max(0, ...st.steps.map((s) => s.step.length)));
  const tail = [
    ...st.pendingGates.flatMap((g) => gateLines(workflowId, g, now)),
    ...(st.notes ?? []).map((n) => `  note: ${n}`),
    ...(st.error ?? '').split('\n').filter(Boolean).map((l, i) => (i ? `         ${l}` : `  error: ${l}`)),
  ];
  const steps = st.steps.map((s) => stepLine(s, now, width));
  // Fold the oldest finished steps when the frame is taller than the terminal (lines above the top cannot be redrawn).
  let folded = 0;
  const height = () => head.length + tail.length + (folded ? 1 : 0) + steps.slice(folded).reduce((n, l) => n + l.length, 0);
  while (maxLines !== undefined && height() > maxLines && folded < steps.length && st.steps[folded].state === 'done') folded++;
  return [...head, ...(folded ? [`  … ${folded} earlier step${folded === 1 ? '' : 's'} done`] : []), ...steps.slice(folded).flat(), ...tail];
}

/** What is printed once the run has ended; with the exit code (0 only on success). */
export function outcomeLines(workflowId: string, outcome: { ok: true; result: unknown } | { ok: false; error: unknown }): { lines: string[]; code: number } {
  if (!outcome.ok) return { lines: [`${workflowId}: FAILED`, ...failureText(outcome.error).split('\n').map((l) => `  ${l}`)], code: 1 };
  const lines = [`${workflowId}: succeeded`];
  const r = outcome.result as Partial<FirstDeployResult> | undefined;
  if (r && r.unchanged !== undefined && !r.dryRun) lines.push(r.unchanged ? '  nothing to change: already deployed as planned' : `  deployed ${r.app} ${r.version} to ${r.env}`);
  const restored = outcome.result as Partial<RestoreBackupResult> | undefined;
  if (restored?.restored && restored.previousDatabase) {
    lines.push(`  restored ${restored.restored}; safety backup ${restored.safetyBackup} (pinned); app down ${restored.appDownSeconds} s`);
    lines.push(
      ...(restored.previousReleasedBy
        ? [
            `  the database as it was before (every write up to the stop) is kept as ${restored.previousDatabase} for ${restored.previousReleasedBy.keepFor}`,
            `  drop it sooner: runbook restore ${restored.app} --env ${restored.env} --release   (${restored.previousReleasedBy.workflowId})`,
          ]
        : [`  the database as it was before is kept as ${restored.previousDatabase} until dropped by hand`]),
    );
  }
  const archive = outcome.result as Partial<RestoreArchiveResult> | undefined;
  if (archive?.restored && archive.volume) {
    const v = archive.volume;
    lines.push(`  restored volume ${v.name} on ${v.host} from ${archive.restored} (${archive.entries} entries, ${archive.bytes} bytes); ${v.stopped.length ? `${v.stopped.join(', ')} down ${v.downSeconds} s` : 'no container was using it'}`);
    lines.push(`  its content before the restore is archived as ${v.previousArchive}: runbook restore ${archive.app} --env ${archive.env} --volume ${v.name} --archive ${v.previousArchive} goes back`);
  }
  if (archive?.restored && archive.config) {
    const c = archive.config;
    lines.push(`  restored ${c.restored.length} config file(s) from ${archive.restored}, ${c.unchanged.length} already as archived`);
    lines.push(...c.keptAs.map((k) => `  ${k.path}: the file it replaced is kept as ${k.keptAs}`));
    lines.push(...c.skipped.map((k) => `  not restored: ${k.name} (${k.reason})`));
  }
  return { lines, code: 0 };
}

/** Line by line: each new or changed step, and the pending gates whenever they change. */
export class ChangePrinter {
  private shown: StepRecord[] = [];
  private gatesShown = '';
  constructor(
    private readonly workflowId: string,
    private readonly print: (line: string) => void,
  ) {}

  show(st: RunbookStatus): void {
    for (const s of stepChanges(this.shown, st.steps)) this.print(formatStep(s));
    this.shown = st.steps;
    const gates = JSON.stringify(st.pendingGates);
    if (gates !== this.gatesShown && st.pendingGates.length) this.print(formatStatus(this.workflowId, { ...st, steps: [], decisions: [] }).split('\n').slice(1).join('\n'));
    this.gatesShown = gates;
  }
}

/** Redraws a block of lines in place on a terminal; the last frame stays on screen. */
export class InPlaceView {
  private height = 0;
  constructor(private readonly out: NodeJS.WriteStream) {}

  draw(lines: string[]): void {
    // A line wider than the terminal would wrap and break the count of lines to move up over.
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const fitted = lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
    if (this.height) {
      readline.moveCursor(this.out, 0, -this.height);
      readline.cursorTo(this.out, 0);
      readline.clearScreenDown(this.out);
    }
    this.out.write(`${fitted.join('\n')}\n`);
    this.height = fitted.length;
  }
}

/** Waits for `p` or `ms`, whichever comes first, and leaves no timer behind (a pending one would hold the process up to `ms` after the end). */
async function untilOrTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long one status query may take before the view goes on with the last answer. */
const QUERY_WAIT_MS = 3000;

export interface WatchOptions {
  print?: (line: string) => void;
  /** Redraw in place; default: when stdout is a terminal. */
  live?: boolean;
  out?: NodeJS.WriteStream;
}

/** Follows a runbook until it ends. Returns the exit code: 0 only on success. */
export async function watch(rc: RunbookClient, workflowId: string, options: WatchOptions = {}): Promise<number> {
  const out = options.out ?? process.stdout;
  const print = options.print ?? console.log;
  const live = options.live ?? out.isTTY === true;
  let outcome: { ok: true; result: unknown } | { ok: false; error: unknown } | undefined;
  const ended = rc
    .handle(workflowId)
    .result()
    .then(
      (result) => (outcome = { ok: true, result }),
      (error) => (outcome = { ok: false, error }),
    );
  const printer = new ChangePrinter(workflowId, print);
  const view = new InPlaceView(out);
  const phases: PhaseSeen[] = [];
  let last: RunbookStatus | undefined;
  const refresh = async () => {
    // No answer (no worker yet, a query timeout): keep the last status; a live view still ticks.
    // A query waits for a worker; bounded, so the clock ticks and an ended run's watch ends without one.
    last = await rc.client.withAbortSignal(AbortSignal.timeout(QUERY_WAIT_MS), () => rc.status(workflowId)).catch(() => last);
    if (!last) return;
    if (phases.at(-1)?.phase !== last.phase) {
      // Seen from the run's first step: the first phase began with it; otherwise it began earlier, unseen.
      const fromStart = phases.length === 0 && last.steps.length <= 1 && last.steps[0] !== undefined;
      phases.push({ phase: last.phase, since: fromStart ? new Date(last.steps[0].startedAt) : new Date(), sinceKnown: phases.length > 0 || fromStart });
    }
    if (live) view.draw(renderWatch({ workflowId, status: last, now: new Date(), phases, maxLines: out.rows ? out.rows - 1 : undefined }));
    else printer.show(last);
  };
  while (!outcome) {
    await refresh();
    await untilOrTimeout(ended, 1000);
  }
  await refresh();
  const { lines, code } = outcomeLines(workflowId, outcome);
  print(lines.join('\n'));
  return code;
}
