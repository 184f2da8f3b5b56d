// Human-readable output for the CLI (pure, unit-tested).
import type { CutoverStatus } from '../common/cutover';
import bytes from 'bytes';
import { describePin } from '../activities/backup';
import type { BackupCatalog } from '../workflows/backupCatalog';
import { durationInWords } from './schedule-format';
import type { DeployPlan, PreflightReport, RunbookStatus, StepRecord } from '../common/types';

export function formatStep(s: StepRecord): string {
  const mark = s.state === 'done' ? 'ok  ' : s.state === 'failed' ? 'FAIL' : '... ';
  const took = s.endedAt ? ` (${((Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)}s)` : '';
  return `  [${mark}] ${s.step}${took}${s.state === 'failed' && s.detail ? `\n         ${s.detail.split('\n').join('\n         ')}` : ''}`;
}

export function formatStatus(id: string, st: RunbookStatus): string {
  const lines = [`${id}: ${st.runbook} ${st.app}/${st.env} — ${st.phase}, step "${st.step}"`, ...st.steps.map(formatStep)];
  for (const g of st.pendingGates) {
    lines.push(
      `  WAITING for approval "${g.gate}": ${g.description}`,
      `    ${g.approvedBy.length}/${g.minApprovals} approvals (${g.approvedBy.join(', ') || 'none yet'}); approvers: ${g.approvers.join(', ') || 'anyone'}; deadline ${g.deadline}`,
      `    runbook approve ${id} --gate ${g.gate} --by <name>    |    runbook reject ${id} --gate ${g.gate} --by <name>`,
    );
  }
  if (st.decisions.length) {
    lines.push('  decisions:');
    for (const d of st.decisions) {
      lines.push(`    ${d.at} ${d.by || '?'} ${d.decision} "${d.gate}" via ${d.via}: ${d.accepted ? 'accepted' : `ignored (${d.reason})`}${d.comment ? ` — ${d.comment}` : ''}`);
    }
  }
  if (st.error) lines.push(`  error: ${st.error.split('\n').join('\n         ')}`);
  return lines.join('\n');
}

/** One run on an app/env, for `runbook history` (the audit trail). */
export interface HistoryEntry {
  workflowId: string;
  runId: string;
  runbook: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW. */
  status: string;
  startTime: string;
  closeTime?: string;
  /** Accepted approvals and rejections, as "<gate>: <by> approved" (from the run's decisions log). */
  decisions: string[];
  /** The run's error, or why its details could not be read. */
  detail?: string;
}

/** An entry from a run's listing and its status (undefined when no worker answered the query). */
export function historyEntry(run: { workflowId: string; runId: string; type: string; status: string; startTime: Date; closeTime?: Date }, st: RunbookStatus | undefined, why?: string): HistoryEntry {
  const decisions = (st?.decisions ?? []).filter((d) => d.accepted).map((d) => `${d.gate}: ${d.by} ${d.decision === 'approve' ? 'approved' : 'rejected'}`);
  const detail = st ? st.error?.split('\n')[0] : why;
  return {
    workflowId: run.workflowId,
    runId: run.runId,
    runbook: run.type,
    status: run.status,
    startTime: run.startTime.toISOString(),
    ...(run.closeTime ? { closeTime: run.closeTime.toISOString() } : {}),
    decisions,
    ...(detail ? { detail } : {}),
  };
}

/** A run as `runbook list` shows it. */
export interface ListedRun {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
  startTime: Date;
  step?: string;
  awaiting?: boolean;
}

/** `runbook list`: a table, newest first; a run waiting for a person is marked in its own column. */
export function formatRunList(rows: ListedRun[], now: Date): string {
  if (rows.length === 0) return 'no matching runbooks';
  const table = [['WORKFLOW ID', 'STATUS', 'STEP', 'WAITING', 'STARTED']];
  for (const r of [...rows].sort((a, b) => b.startTime.getTime() - a.startTime.getTime())) {
    table.push([r.workflowId, r.status, r.step ?? '-', r.awaiting ? 'APPROVAL' : '-', `${humanDuration(now.getTime() - r.startTime.getTime())} ago`]);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

/** `runbook backups`: per database, newest first: time, size, verified, pin and why; the storage. */
export function formatBackups(c: BackupCatalog, now: Date): string {
  const lines = [`${c.app}/${c.env}: backups in ${c.storage}`];
  if (c.databases.length === 0) lines.push('  no database is backed up (apps.<app>.backup.databases)');
  for (const db of c.databases) {
    lines.push(`  database ${db.database}: ${db.backups.length} backup${db.backups.length === 1 ? '' : 's'}${db.backups.length ? `, ${formatBytes(db.backups.reduce((n, b) => n + b.sizeBytes, 0))} in all` : ''}`);
    for (const b of db.backups) {
      const pin = b.pinned ? (b.pinned.until && Date.parse(b.pinned.until) <= now.getTime() ? `pin ended ${b.pinned.until}` : describePin(b.pinned)) : '';
      lines.push(`    ${b.createdAt}  ${formatBytes(b.sizeBytes).padStart(9)}  ${b.verified ? 'verified    ' : 'NOT VERIFIED'}  ${b.file}${pin ? `  (${pin})` : ''}`);
    }
    if (db.orphans.length) lines.push(`    left by an interrupted backup, never restored from: ${db.orphans.join(', ')}`);
  }
  return lines.join('\n');
}

/** Bytes for people: 512 B, 1.5 KB, 23.4 MB (powers of 1024, as `bytes` counts). */
export function formatBytes(n: number): string {
  return bytes.format(n, { unitSeparator: ' ', decimalPlaces: 1 }) ?? `${n} B`;
}

/** A run's duration for people: 850 ms, 42 s, then as the schedules say it (3 min, 2 h 10 min, 3 d 4 h). */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 59_500) return `${Math.round(ms / 1000)} s`;
  return durationInWords(ms);
}

/** `runbook history`: newest first, one block per run. */
export function formatHistory(app: string, env: string, entries: HistoryEntry[], now: Date): string {
  if (entries.length === 0) return `no runbook has run on ${app}/${env}`;
  const lines = [`${app}/${env}: ${entries.length} run${entries.length === 1 ? '' : 's'}, newest first`];
  for (const e of entries) {
    const took = e.closeTime ? humanDuration(Date.parse(e.closeTime) - Date.parse(e.startTime)) : `running for ${humanDuration(now.getTime() - Date.parse(e.startTime))}`;
    lines.push(`${e.startTime}  ${e.runbook.padEnd(18)} ${e.status.padEnd(10)} ${took}`);
    lines.push(`    ${e.workflowId} (run ${e.runId})`);
    if (e.decisions.length) lines.push(`    ${e.decisions.join('; ')}`);
    if (e.detail) lines.push(`    ${e.detail}`);
  }
  return lines.join('\n');
}

export function formatPreflight(reports: PreflightReport[]): string {
  return reports
    .map((r) => [`host ${r.host}: ${r.ok ? 'ready' : 'NOT READY'}`, ...r.checks.map((c) => `  [${c.ok ? 'ok  ' : 'FAIL'}] ${c.check}: ${c.detail}`)].join('\n'))
    .join('\n');
}

export function formatPlan(plan: DeployPlan): string {
  const lines = [
    `plan: ${plan.app} ${plan.version} → ${plan.env} (image ${plan.image})`,
    `  hosts: ${plan.hosts.map((h) => `${h.name} (${h.ssh ? `ssh ${h.ssh.user}@${h.ssh.address}:${h.ssh.port}` : h.dockerSocket})`).join(', ')}`,
    `  network: ${plan.network}${plan.volumes.length ? `; volumes: ${plan.volumes.map((v) => v.name).join(', ')}` : ''}`,
    ...plan.dependencies.map((d) => `  dependency: ${d.container.name} (${d.container.image}) on ${d.host}, health-gated`),
    ...(plan.migrate ? [`  migrations: ${plan.migrate.container.name}: ${(plan.migrate.container.cmd ?? []).join(' ')}`] : []),
    ...plan.replicas.map((r) => `  replica: ${r.container.name} on ${r.host}`),
    ...plan.proxies.map((p) => `  proxy: ${p.container.name} on ${p.host} at ${p.url}`),
    ...plan.smokeTests.map((t) => `  smoke test: GET ${t.url}${t.hostHeader ? ` (Host: ${t.hostHeader})` : ''} → ${t.expectStatus}${t.expectBody !== undefined ? ` "${t.expectBody}"` : ''}`),
    ...(plan.goLiveApproval ? [`  go-live approval: ${plan.approvals.minApprovals} of ${plan.approvals.approvers.join(', ') || 'anyone'}`] : []),
  ];
  return lines.join('\n');
}

/** The step lines that are new or changed since the last print (for `watch`). */
export function stepChanges(previous: StepRecord[], current: StepRecord[]): StepRecord[] {
  return current.filter((s, i) => {
    const p = previous[i];
    return !p || p.step !== s.step || p.state !== s.state;
  });
}

/** The cutover's own status: stage, T0, window, replication, validation rounds, reconciliations. */
export function formatCutoverStatus(c: CutoverStatus): string {
  const lines = [`  cutover stage: ${c.stage}`];
  if (c.switchNotBefore && !c.t0) lines.push(`  switch not before: ${c.switchNotBefore}`);
  if (c.t0) lines.push(`  T0: ${c.t0}${c.writeFreezeMs !== undefined ? ` (writes frozen ${c.writeFreezeMs} ms)` : ''}`);
  if (c.windowEndsAt) lines.push(`  rollback window until: ${c.windowEndsAt}`);
  if (c.replication) lines.push(`  replication ${c.replication.direction}: ${c.replication.ready ? 'ready' : 'initial copy'}, lag ${c.replication.lagBytes} bytes (at ${c.replication.at})`);
  if (c.baseline) lines.push(`  baseline: median ${c.baseline.p50Ms} ms, p95 ${c.baseline.p95Ms} ms, ${c.baseline.errors}/${c.baseline.requests} errors`);
  for (const r of c.rounds.slice(-3)) lines.push(`  validation ${r.at}: ${r.decision.action} — ${r.decision.reason}`);
  const last = c.reconciliations.at(-1);
  if (last) lines.push(`  reconciled ${c.reconciliations.length}× (last ${last.at}): ${last.drift ? `DRIFT — ${last.differences.join('; ')}` : 'no drift'}`);
  if (c.rollbackRequest) lines.push(`  rollback requested by ${c.rollbackRequest.by} at ${c.rollbackRequest.at}${c.rollbackRequest.reason ? `: ${c.rollbackRequest.reason}` : ''}`);
  return lines.join('\n');
}
