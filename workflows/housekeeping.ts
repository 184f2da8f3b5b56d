// `runbook housekeeping`: on every host of an app/env, the images of the app's repository older than
// the running and the previous version are removed (never forced: an image a container uses stays),
// and disk use is reported before and after. Under the app/env lock, so it never races an update
// that is pulling or starting a version; a dry run only reads, without the lock.
import { proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ImageRemoval } from '../activities/housekeeping';
import { decideHousekeeping, type DiskReport, type KeptImage } from '../common/housekeeping';
import { HousekeepingInputSchema, parseInput, type HousekeepingInput } from '../common/inputs';
import type { HousekeepingPlan } from '../common/plan';
import type { HostSpec } from '../common/types';
import { allSettled, rootFailure, withLock } from './lib/steps';
import { Runbook } from './lib/runbook';

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 };
const quick = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry });
// df sizes every volume and removing layers writes to disk: both may take a while on a full host
const slow = proxyActivities<Activities>({ startToCloseTimeout: '10 minutes', retry });

export interface HostHousekeeping {
  host: string;
  /** Removed (or, in a dry run, to be removed): every tag of this repository on the image. */
  removed: { id: string; tags: string[]; size: number; deleted: boolean }[];
  /** Kept, with why: the decision's reasons, or the engine's refusal of a removal ("in use"). */
  kept: (KeptImage & { refused?: string })[];
  diskBefore: DiskReport;
  /** Absent in a dry run. */
  diskAfter?: DiskReport;
}

export interface HousekeepingResult {
  app: string;
  env: string;
  repository: string;
  /** Every repository of the app's services, when they are not all the main one's. */
  repositories?: string[];
  dryRun: boolean;
  hosts: HostHousekeeping[];
}

async function houseKeepHost(host: HostSpec, repositories: string[], dryRun: boolean): Promise<HostHousekeeping> {
  const { disk: diskBefore } = await slow.diskUsage({ host });
  const removed: HostHousekeeping['removed'] = [];
  const kept: HostHousekeeping['kept'] = [];
  // one repository after the other (an app's services may have images of their own)
  for (const repository of repositories) {
    const listing = await quick.listHousekeepingInventory({ host, repository });
    const decision = decideHousekeeping(repository, listing.images, listing.containers);
    if (dryRun) {
      removed.push(...decision.remove.map((r) => ({ id: r.id, tags: r.tags, size: r.size, deleted: false })));
      kept.push(...decision.keep);
      continue;
    }
    let removals: ImageRemoval[] = [];
    if (decision.remove.length) {
      ({ removals } = await slow.removeRepositoryImages({ host, repository, images: decision.remove.map((r) => ({ id: r.id, references: r.references })) }));
    }
    const outcome = new Map(removals.map((r) => [r.id, r]));
    const refused: HostHousekeeping['kept'] = [];
    for (const r of decision.remove) {
      const o = outcome.get(r.id);
      if (o?.outcome === 'in use') refused.push({ id: r.id, tags: r.tags, reasons: ['in use'], containers: [], refused: o.reason ?? 'in use' });
      else removed.push({ id: r.id, tags: r.tags, size: r.size, deleted: o?.deleted ?? false });
    }
    kept.push(...decision.keep, ...refused);
  }
  if (dryRun) return { host: host.name, removed, kept, diskBefore };
  const { disk: diskAfter } = await slow.diskUsage({ host });
  return { host: host.name, removed, kept, diskBefore, diskAfter };
}

export async function housekeeping(input: HousekeepingInput): Promise<HousekeepingResult> {
  const { app, env, dryRun = false } = parseInput(HousekeepingInputSchema, input, 'housekeeping');
  const rb = new Runbook('housekeeping', { app, env });
  try {
    const plan: HousekeepingPlan = await rb.step('plan', () => quick.resolveHousekeepingPlan({ app, env }));
    const clean = () =>
      rb.step(dryRun ? 'housekeeping (dry run)' : 'housekeeping', () => allSettled(plan.hosts.map((h) => houseKeepHost(h, plan.repositories ?? [plan.repository], dryRun))));
    const hosts = dryRun ? await clean() : await withLock(rb, plan, clean);
    rb.finish('succeeded');
    return { app, env, repository: plan.repository, ...(plan.repositories ? { repositories: plan.repositories } : {}), dryRun, hosts };
  } catch (err) {
    const failure = rootFailure(err);
    await rb.fail(failure);
    throw failure;
  }
}
