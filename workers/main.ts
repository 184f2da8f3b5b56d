// The runbook worker: polls the task queue, runs workflows (bundled) and activities (with their
// dependencies injected). SIGINT/SIGTERM drain in-flight activities before exit.
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { closeDeps, createActivities, createDeps } from '../activities';
import { connectionSettings } from '../client/connection';

export async function runWorker(): Promise<void> {
  const settings = connectionSettings();
  const inventoryPath = process.env.RUNBOOK_INVENTORY;
  if (!inventoryPath) throw new Error('RUNBOOK_INVENTORY must name the inventory YAML file');
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
    shutdownGraceTime: '30s',
  });
  console.log(`runbook worker: ${settings.address} namespace=${settings.namespace} queue=${settings.taskQueue} inventory=${inventoryPath}`);
  try {
    await worker.run();
  } finally {
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
