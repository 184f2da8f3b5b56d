// The runbook worker: polls the task queue, runs workflows (bundled) and activities (with their
// dependencies injected). SIGINT/SIGTERM drain in-flight activities before exit.
// Logs: one JSON object per line on stdout (workers/logging.ts). Metrics: a Prometheus endpoint
// when RUNBOOK_METRICS_ADDRESS is set (workers/metrics.ts, docs/metrics.md).
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { closeDeps, createActivities, createDeps } from '../activities';
import { connectionSettings } from '../client/connection';
import { createWorkerLogger, logSettings } from './logging';
import { MetricsRefresher, metricsSettings, prometheusOptions } from './metrics';

export async function runWorker(): Promise<void> {
  const settings = connectionSettings();
  const inventoryPath = process.env.RUNBOOK_INVENTORY;
  if (!inventoryPath) throw new Error('RUNBOOK_INVENTORY must name the inventory YAML file');
  const metrics = metricsSettings();
  // before any connection: the Runtime is process-wide and made once
  const runtime = Runtime.install({
    logger: createWorkerLogger(logSettings()),
    telemetryOptions: {
      // the SDK core's own logs go through the same logger (same format)
      logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } },
      ...(metrics.bindAddress ? { metrics: { prometheus: prometheusOptions(metrics.bindAddress) } } : {}),
    },
  });
  const logger = runtime.logger;
  const connectOptions = { address: settings.address, ...(settings.tls ? { tls: settings.tls } : {}), ...(settings.apiKey ? { apiKey: settings.apiKey } : {}) };
  const nativeConnection = await NativeConnection.connect(connectOptions);
  const clientConnection = await Connection.connect(connectOptions);
  const client = new Client({ connection: clientConnection, namespace: settings.namespace });
  const deps = createDeps({ inventoryPath: path.resolve(inventoryPath), temporal: { client, taskQueue: settings.taskQueue } });
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities(deps),
    interceptors: { workflowModules: [require.resolve('../workflows/lib/metrics-interceptor')] },
    shutdownGraceTime: '30s',
  });
  const refresher = metrics.bindAddress
    ? new MetricsRefresher({ meter: runtime.metricMeter.withTags({ namespace: settings.namespace, taskQueue: settings.taskQueue }), deps, client, taskQueue: settings.taskQueue, logger, refreshMs: metrics.refreshMs })
    : undefined;
  refresher?.start();
  logger.info(`runbook worker: ${settings.address} namespace=${settings.namespace} queue=${settings.taskQueue} inventory=${inventoryPath}`, {
    address: settings.address,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    inventory: inventoryPath,
    metrics: metrics.bindAddress ? `http://${metrics.bindAddress}/metrics` : 'off',
  });
  try {
    await worker.run();
  } finally {
    await refresher?.stop();
    await closeDeps(deps);
    await clientConnection.close();
    await nativeConnection.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
