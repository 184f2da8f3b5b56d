// What a notification says, per format: pure builders in common/commands/notify.ts.
import { eventId, notificationBody, notificationTitle, workflowLink, type RunbookEvent, type RunbookNotification } from '../../common/commands/notify';

const base: Omit<RunbookNotification, 'event' | 'eventId'> = {
  runbook: 'rollingUpdate',
  app: 'shop',
  env: 'production',
  workflowId: 'rollingUpdate/shop/production',
  runId: 'r1',
  link: 'https://ui.example.com/namespaces/default/workflows/rollingUpdate%2Fshop%2Fproduction/r1/history',
};

describe('notifications', () => {
  it('event ids: per run and event; a gate by name; a window reminder by its deadline', () => {
    const gate: RunbookEvent = { kind: 'gate-opened', gate: 'canary', description: 'd', approvers: [], minApprovals: 1, deadline: 'x' };
    expect(eventId('w', 'r', gate)).toBe('w/r/gate-opened/canary');
    expect(eventId('w', 'r', { kind: 'failed', error: 'e' })).toBe('w/r/failed');
    expect(eventId('w', 'r', { kind: 'window-closing', description: 'd', deadline: '2027-01-08T00:00:00.000Z' })).toBe('w/r/window-closing/2027-01-08T00:00:00.000Z');
    expect(workflowLink('https://ui.example.com/', 'prod ns', 'a/b', 'r')).toBe('https://ui.example.com/namespaces/prod%20ns/workflows/a%2Fb/r/history');
  });

  it('titles say what is asked and of whom', () => {
    const n = (event: RunbookNotification['event']): RunbookNotification => ({ ...base, eventId: 'id', event });
    expect(notificationTitle(n({ kind: 'gate-opened', gate: 'canary', description: 'd', approvers: [], minApprovals: 1, deadline: 'T' }))).toBe(
      'rollingUpdate shop/production waits for approval of gate "canary" (may approve: anyone; until T)',
    );
    expect(notificationTitle(n({ kind: 'gate-deadline', gate: 'canary', description: 'd', approvers: ['a', 'b', 'c'], minApprovals: 2, approvedBy: ['a'], deadline: 'T' }))).toBe(
      'rollingUpdate shop/production: gate "canary" times out at T (1/2 approvals; may approve: 2 of a, b, c); no answer means do not proceed',
    );
    expect(notificationTitle(n({ kind: 'failed', error: 'e', title: 'no backup was pruned' }))).toBe('rollingUpdate shop/production failed: no backup was pruned');
  });

  it('json: the event and its fields; slack: text plus one mrkdwn block with the link, escaped', () => {
    const n: RunbookNotification = { ...base, eventId: 'id', event: { kind: 'failed', error: 'health check of <web-1> & web-2 failed' } };
    expect(JSON.parse(notificationBody('json', n))).toEqual({ ...n, severity: 'failure', title: 'rollingUpdate shop/production failed', details: 'health check of <web-1> & web-2 failed' });
    const slack = JSON.parse(notificationBody('slack', n));
    expect(slack.text).toBe('rollingUpdate shop/production failed\nhealth check of <web-1> & web-2 failed');
    expect(slack.blocks).toEqual([
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `:red_circle: *rollingUpdate shop/production failed*\nhealth check of &lt;web-1&gt; &amp; web-2 failed\nworkflow <${base.link}|rollingUpdate/shop/production>` },
      },
    ]);
  });
});
