// `runbook backups`: which backups an app/env has. Read by the worker, which holds the storage's
// credentials; a workflow so that the CLI needs nothing but Temporal, and the read is in history.
// Read-only: no lock, no status query, no search attributes (it is not a runbook run on the app).
import { proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { BackupEntry } from '../activities/backup';
import { BackupCatalogInputSchema, parseInput, type BackupCatalogInput } from '../common/inputs';
import { describeStorage } from '../common/types';

const retry: RetryPolicy = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });

export interface BackupCatalog {
  app: string;
  env: string;
  storage: string;
  databases: {
    database: string;
    /** Newest first. */
    backups: BackupEntry[];
    /** Dumps without a manifest or manifests without a dump (a crash's leftovers): never restored from. */
    orphans: string[];
  }[];
}

export async function backupCatalog(input: BackupCatalogInput): Promise<BackupCatalog> {
  const { app, env } = parseInput(BackupCatalogInputSchema, input, 'backupCatalog');
  const plan = await quick.resolveBackupPlan({ app, env });
  const databases: BackupCatalog['databases'] = [];
  for (const target of plan.targets) {
    const listing = await quick.listBackups({ app, env, target, storage: plan.storage });
    databases.push({ database: target.name, backups: [...listing.backups].sort((a, b) => b.createdAt.localeCompare(a.createdAt)), orphans: listing.orphans });
  }
  return { app, env, storage: describeStorage(plan.storage), databases };
}
