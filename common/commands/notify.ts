// Alerts sent to a webhook: the JSON body (Slack-compatible `text`, plus structured fields for
// other receivers) and how a webhook URL is named in messages without leaking it.

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

export function webhookBody(n: Notification): string {
  const icon = n.severity === 'failure' ? ':red_circle:' : n.severity === 'warning' ? ':warning:' : ':information_source:';
  return JSON.stringify({
    text: `${icon} ${n.runbook} ${n.app}/${n.env}: ${n.title}\n${n.details}\n(workflow ${n.workflowId}, run ${n.runId})`,
    ...n,
  });
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
