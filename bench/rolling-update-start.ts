// `runbook update` with a drain delay, for bench/rolling-update --drain-delay: the CLI has no flag for
// the workflow's `drainDelay` input, so this does what `runbook update <app> --env E --version V
// --no-backup` does (same client, same watch loop, a process of its own like the CLI) with it set.
//   node dist/bench/rolling-update-start.js <app> <env> <version> <drainDelay>
import { watch } from '../client/cli';
import { RunbookClient } from '../client/runbooks';

async function main(): Promise<number> {
  const [app, env, version, drainDelay] = process.argv.slice(2);
  if (!app || !env || !version || !drainDelay) throw new Error('usage: rolling-update-start <app> <env> <version> <drainDelay>');
  const rc = await RunbookClient.connect();
  try {
    const handle = await rc.startRollingUpdate({ app, env, version, batchSize: 1, backup: false, drainDelay });
    console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId}) drainDelay=${drainDelay}`);
    return await watch(rc, handle.workflowId);
  } finally {
    await rc.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
