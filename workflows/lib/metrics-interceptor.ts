// Per-runbook metrics recorded by the workflow itself, through the SDK's workflow metricMeter: the
// SDK drops them while replaying, so a run is counted once, when it ends (not again when a worker
// replays its history). Registered by the worker with interceptors.workflowModules; adds no command.
// Only runbook runs are counted: those whose RunbookApp search attribute is set (the runbook frame
// and the CLI set it), not the lock or the backup catalog.
import { ContinueAsNew, isCancellation, metricMeter, workflowInfo, type WorkflowInterceptors } from '@temporalio/workflow';
import { RUN_DURATION_SECONDS, runDurationSeconds, runLabels, RUNS_TOTAL, type RunOutcome } from '../../common/run-metrics';
import { SA_APP, SA_ENV } from '../../common/search-attributes';

function record(outcome: RunOutcome): void {
  const info = workflowInfo();
  const app = info.typedSearchAttributes.get(SA_APP);
  if (app === undefined) return;
  const labels = runLabels(info.workflowType, { app, env: info.typedSearchAttributes.get(SA_ENV) ?? '' }, outcome);
  metricMeter.createCounter(RUNS_TOTAL, undefined, 'Runbook runs that ended, by outcome').add(1, { ...labels });
  metricMeter
    .createHistogram(RUN_DURATION_SECONDS, 'float', 's', 'Runbook run durations, from the run start to its end')
    .record(runDurationSeconds(info.runStartTime.getTime(), Date.now()), { ...labels });
}

export function interceptors(): WorkflowInterceptors {
  return {
    inbound: [
      {
        async execute(input, next) {
          let result: unknown;
          try {
            result = await next(input);
          } catch (err) {
            // a continue-as-new is not an end: the next run is counted when it ends
            if (!(err instanceof ContinueAsNew)) record(isCancellation(err) ? 'cancelled' : 'failed');
            throw err;
          }
          record('succeeded');
          return result;
        },
      },
    ],
  };
}
