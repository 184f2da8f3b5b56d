// Housekeeping activities and decision against the real local engine, on a throwaway repository made
// from the registry's demo image: v1 and v3 go; v2 (a stopped container uses it), v4 (running) and v5
// (the newest not running) stay; a tag of another repository on v1's image survives; an image in use
// is refused by the engine without force and reported; removal is idempotent. Everything made is removed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import { decideHousekeeping } from '../../common/housekeeping';
import { localHost } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-hk-'));
const suffix = randomBytes(4).toString('hex');
const REPO = `it-hk-${suffix}/app`;
const OTHER = `it-hk-${suffix}/other`;
const LABEL = { 'it.housekeeping': suffix };
const TAGS = ['v1', 'v2', 'v3', 'v4', 'v5'];

let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;
const ids: Record<string, string> = {};

async function container(name: string, tag: string, start: boolean): Promise<void> {
  const c = await docker.createContainer({ name, Image: `${REPO}:${tag}`, Entrypoint: ['sleep', '600'], Cmd: [], Labels: LABEL, HostConfig: { AutoRemove: false } });
  if (start) await c.start();
}

beforeAll(async () => {
  deps = createDeps({ inventoryPath: '/nonexistent', socketParent: path.join(tmp, 'sockets') });
  acts = createActivities(deps);
  // five distinct images, one per version, committed in order (each commit is a new image with its own time)
  const source = await docker.createContainer({ name: `it-hk-${suffix}-source`, Image: `${REGISTRY}/demo-app:v1`, Labels: LABEL });
  try {
    for (const tag of TAGS) {
      const made = (await source.commit({ repo: REPO, tag, changes: `LABEL it.housekeeping.version=${tag}` })) as { Id: string };
      ids[tag] = made.Id;
    }
  } finally {
    await source.remove({ force: true });
  }
  await docker.getImage(ids.v1).tag({ repo: OTHER, tag: 'keep' });
  await container(`it-hk-${suffix}-stopped`, 'v2', false);
  await container(`it-hk-${suffix}-running`, 'v4', true);
});

afterAll(async () => {
  await closeDeps(deps);
  for (const c of await docker.listContainers({ all: true, filters: { label: [`it.housekeeping=${suffix}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const ref of [...TAGS.map((t) => `${REPO}:${t}`), `${OTHER}:keep`]) await docker.getImage(ref).remove({ force: true }).catch(() => undefined);
});

it('removes the old versions and keeps what runs, the newest not running and what a stopped container uses; other repositories untouched', async () => {
  const listing = await acts.listHousekeepingInventory({ host: localHost, repository: REPO });
  expect(listing.images.map((i) => i.id).sort()).toEqual(Object.values(ids).sort());
  // the engine's reference filter may leave the other repository's tag out of the listing: never a reason to remove it
  expect(listing.images.find((i) => i.id === ids.v1)?.references).toContain(`${REPO}:v1`);

  const decision = decideHousekeeping(REPO, listing.images, listing.containers);
  expect(Object.fromEntries(decision.keep.map((k) => [k.tags.join(','), k.reasons]))).toEqual({ v5: ['newest not running'], v4: ['running'], v2: ['in use'] });
  expect(decision.remove.map((r) => r.tags.join(','))).toEqual(['v3', 'v1']);

  const before = await acts.diskUsage({ host: localHost });
  expect(before.disk.images.count).toBeGreaterThanOrEqual(5);
  expect(before.disk.images.size).toBeGreaterThan(0);

  const { removals } = await acts.removeRepositoryImages({ host: localHost, repository: REPO, images: decision.remove.map((r) => ({ id: r.id, references: r.references })) });
  expect(removals).toEqual([
    { id: ids.v3, references: [`${REPO}:v3`], outcome: 'removed', deleted: true },
    // v1's image has another repository's tag: only untagged here
    { id: ids.v1, references: [`${REPO}:v1`], outcome: 'removed', deleted: false },
  ]);
  const after = await acts.listHousekeepingInventory({ host: localHost, repository: REPO });
  expect(after.images.flatMap((i) => i.references).filter((r) => r.startsWith(REPO)).sort()).toEqual([`${REPO}:v2`, `${REPO}:v4`, `${REPO}:v5`]);
  expect((await docker.getImage(`${OTHER}:keep`).inspect()).Id).toBe(ids.v1);

  // a retried removal finds them gone: removed, not an error
  const again = await acts.removeRepositoryImages({ host: localHost, repository: REPO, images: [{ id: ids.v3, references: [`${REPO}:v3`] }] });
  expect(again.removals).toEqual([{ id: ids.v3, references: [`${REPO}:v3`], outcome: 'removed', deleted: false }]);
});

it('an image a container uses is refused by the engine without force and reported in use, not thrown', async () => {
  const { removals } = await acts.removeRepositoryImages({ host: localHost, repository: REPO, images: [{ id: ids.v2, references: [`${REPO}:v2`] }] });
  expect(removals).toEqual([{ id: ids.v2, references: [`${REPO}:v2`], outcome: 'in use', deleted: false, reason: expect.stringMatching(/container .* is using its referenced image/) }]);
  expect((await docker.getImage(`${REPO}:v2`).inspect()).Id).toBe(ids.v2);
});

it('refuses, non-retryably, to remove another repository\'s tag', async () => {
  const err = await acts.removeRepositoryImages({ host: localHost, repository: REPO, images: [{ id: ids.v1, references: [`${OTHER}:keep`] }] }).catch((e: unknown) => e);
  expect(err).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  expect((await docker.getImage(`${OTHER}:keep`).inspect()).Id).toBe(ids.v1);
});
