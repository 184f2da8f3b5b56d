// What runbooks post to people: the events (a gate opened, a deadline near, a run failed), their
// JSON bodies for a generic webhook and for Slack-compatible incoming webhooks, the key that makes
// each event unique, and how a webhook URL is named in messages without leaking it.

export interface Notification {
  severity: 'failure' | 'warning' | 'info';
  runbook: string;
  app: string;
  env: string;
  /** One line: what happened. */
  title: string;
  /** Details: the error, what was left as it was. */
  details: string;
  workflowId: string;
  runId: string;
  at: string;
}

/** Older alerts (backup.notify, proxy.tls.notify, cutover drift): Slack's `text` plus the fields. */
export function webhookBody(n: Notification): string {
  return JSON.stringify({ text: `${severityIcon(n.severity)} ${n.runbook} ${n.app}/${n.env}: ${n.title}\n${n.details}\n(workflow ${n.workflowId}, run ${n.runId})`, ...n });
}

/** What happened, as the workflow knows it (deterministic: no link, no config, no secrets). */
export type RunbookEvent =
  | { kind: 'gate-opened'; gate: string; description: string; approvers: string[]; minApprovals: number; deadline: string }
  | { kind: 'gate-deadline'; gate: string; description: string; approvers: string[]; minApprovals: number; approvedBy: string[]; deadline: string }
  | { kind: 'window-open'; description: string; deadline: string }
  | { kind: 'window-closing'; description: string; deadline: string }
  | { kind: 'failed'; error: string; title?: string };

export type NotifyFormat = 'json' | 'slack';

/** One event of one run, as sent: the event plus who it concerns and where to look. */
export interface RunbookNotification {
  /** Unique per event of a run: receivers may drop repeats by it (also sent as Idempotency-Key). */
  eventId: string;
  runbook: string;
  app: string;
  env: string;
  workflowId: string;
  runId: string;
  /** The run's page in the Temporal Web UI, when the UI's address is configured. */
  link?: string;
  event: RunbookEvent;
}

/** Stable per run and event: the gate's name tells two gates of one run apart. */
export function eventId(workflowId: string, runId: string, event: RunbookEvent): string {
  // an extended cutover window closes again later: one reminder per deadline
  const which = 'gate' in event ? `${event.kind}/${event.gate}` : event.kind === 'window-closing' ? `${event.kind}/${event.deadline}` : event.kind;
  return `${workflowId}/${runId}/${which}`;
}

export function workflowLink(uiUrl: string, namespace: string, workflowId: string, runId: string): string {
  return `${uiUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}

export function severityOf(event: RunbookEvent): Notification['severity'] {
  if (event.kind === 'failed') return 'failure';
  if (event.kind === 'gate-deadline' || event.kind === 'window-closing') return 'warning';
  return 'info';
}

function who(approvers: string[], minApprovals: number): string {
  const list = approvers.length ? approvers.join(', ') : 'anyone';
  return minApprovals > 1 ? `${minApprovals} of ${list}` : list;
}

/** One line: what happened and what is asked. */
export function notificationTitle(n: RunbookNotification): string {
  const e = n.event;
  const target = `${n.runbook} ${n.app}/${n.env}`;
  switch (e.kind) {
    case 'gate-opened':
      return `${target} waits for approval of gate "${e.gate}" (may approve: ${who(e.approvers, e.minApprovals)}; until ${e.deadline})`;
    case 'gate-deadline':
      return `${target}: gate "${e.gate}" times out at ${e.deadline} (${e.approvedBy.length}/${e.minApprovals} approvals; may approve: ${who(e.approvers, e.minApprovals)}); no answer means do not proceed`;
    case 'window-open':
      return `${target}: ${e.description} (until ${e.deadline})`;
    case 'window-closing':
      return `${target}: ${e.description} (at ${e.deadline})`;
    case 'failed':
      return `${target} failed${e.title ? `: ${e.title}` : ''}`;
  }
}

function detailsOf(e: RunbookEvent): string {
  if (e.kind === 'failed') return e.error;
  return e.description;
}

/** How to approve from the CLI; the UI's "Send a Signal" takes the same JSON. */
export function approveHint(n: RunbookNotification): string | undefined {
  if (n.event.kind !== 'gate-opened' && n.event.kind !== 'gate-deadline') return undefined;
  return `runbook approve ${n.workflowId} --gate ${n.event.gate} --by <you>   (or signal "approve" with {"gate":"${n.event.gate}","by":"<you>"})`;
}

/** The request body for a receiver of the given format. */
export function notificationBody(format: NotifyFormat, n: RunbookNotification): string {
  const title = notificationTitle(n);
  const details = detailsOf(n.event);
  const hint = approveHint(n);
  if (format === 'slack') {
    // Slack incoming webhooks: `text` is the fallback; the blocks carry the same in mrkdwn.
    const link = n.link ? `<${n.link}|${escapeSlack(n.workflowId)}>` : escapeSlack(n.workflowId);
    const lines = [`${severityIcon(severityOf(n.event))} *${escapeSlack(title)}*`, escapeSlack(details), hint ? `\`${escapeSlack(hint)}\`` : '', `workflow ${link}`].filter(Boolean);
    return JSON.stringify({ text: `${title}\n${details}`, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n').slice(0, 3000) } }] });
  }
  return JSON.stringify({ ...n, severity: severityOf(n.event), title, details, ...(hint ? { approve: hint } : {}) });
}

function severityIcon(severity: Notification['severity']): string {
  return severity === 'failure' ? ':red_circle:' : severity === 'warning' ? ':warning:' : ':information_source:';
}

/** Slack's three control characters in mrkdwn. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** `https://hooks.example.com/…`: scheme and host only (the path of a webhook URL is its secret). */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return '(not a URL)';
  }
}
