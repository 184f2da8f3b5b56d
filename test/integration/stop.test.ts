// `runbook stop` on the real engine: every container of an app/env found by label (whatever its
// name and state) stopped and removed, the proxy first and the dependencies last, then its network;
// its volume kept until removed; a volume another container uses is refused and kept.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import Docker from 'dockerode';
import { closeDeps, createActivities, createDeps, type ActivityDeps } from '../../activities';
import { labelsFor } from '../../common/naming';
import { localHost as host } from '../helpers/hosts';
import { DOCKER_SOCK, REGISTRY } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(120_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const tag = randomBytes(4).toString('hex');
const APP = `it-stop-${tag}`;
const ENV = 'production';
const network = `${APP}-${ENV}`;
const volume = `${APP}-${ENV}-data`;
const other = `${APP}-other-user`;
let deps: ActivityDeps;
let acts: ReturnType<typeof createActivities>;

async function container(name: string, role: 'proxy' | 'web' | 'dependency' | 'migrate', start: boolean, binds: string[] = []): Promise<void> {
  const c = await docker.createContainer({
    name,
    Image: `${REGISTRY}/debian:bookworm`,
    Cmd: ['sleep', '600'],
    Labels: labelsFor(APP, ENV, role),
    HostConfig: { NetworkMode: network, Binds: binds },
  });
  if (start) await c.start();
}

beforeAll(async () => {
  deps = createDeps({ inventoryPath: '/nonexistent', socketParent: mkdtempSync(path.join(os.tmpdir(), 'runbook-it-stop-')) });
  acts = createActivities(deps);
  await docker.createNetwork({ Name: network, Labels: labelsFor(APP, ENV, 'dependency') });
  await docker.createVolume({ Name: volume, Labels: labelsFor(APP, ENV, 'dependency') });
  await container(`${APP}-${ENV}-proxy`, 'proxy', true);
  await container(`${APP}-${ENV}-web-1-v2`, 'web', true);
  await container(`${APP}-${ENV}-web-1-v1`, 'web', false); // the previous version, stopped
  await container(`${APP}-${ENV}-migrate-v2`, 'migrate', false);
  await container(`${APP}-${ENV}-postgres`, 'dependency', true, [`${volume}:/data`]);
});

afterAll(async () => {
  await closeDeps(deps);
  for (const c of await docker.listContainers({ all: true, filters: { name: [APP] } })) await docker.getContainer(c.Id).remove({ force: true });
  await docker.getNetwork(network).remove().catch(() => undefined);
  await docker.getVolume(volume).remove().catch(() => undefined);
});

it('removes every container of the app/env, proxy first and dependencies last, then its network; the volume stays', async () => {
  const r = await acts.removeAppContainers({ host, app: APP, env: ENV, timeoutSeconds: 1 });
  expect(r.removed.map((c) => c.role)).toEqual(['proxy', 'web', 'web', 'migrate', 'dependency']);
  expect(r.removed.map((c) => c.name).sort()).toEqual([`${APP}-${ENV}-migrate-v2`, `${APP}-${ENV}-postgres`, `${APP}-${ENV}-proxy`, `${APP}-${ENV}-web-1-v1`, `${APP}-${ENV}-web-1-v2`]);
  expect(r.networks).toEqual([network]);
  expect(await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })).toEqual([]);
  expect((await acts.listVolumes({ host, names: [volume, `${APP}-${ENV}-never-made`] })).existing).toEqual([volume]);
  // again: nothing left to do
  expect(await acts.removeAppContainers({ host, app: APP, env: ENV, timeoutSeconds: 1 })).toEqual({ host: 'local', removed: [], networks: [] });
});

it('a volume another container uses is refused and kept; unused, it is removed; gone, nothing to do', async () => {
  const user = await docker.createContainer({ name: other, Image: `${REGISTRY}/debian:bookworm`, Cmd: ['sleep', '600'], HostConfig: { Binds: [`${volume}:/data`] } });
  const f = (await rejectionOf(acts.removeVolumes({ host, names: [volume] }))) as ApplicationFailure;
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toBe(`volume ${volume} on local is still used by a container; it was kept`);
  await user.remove({ force: true });
  expect(await acts.removeVolumes({ host, names: [volume] })).toEqual({ host: 'local', removed: [volume] });
  expect(await acts.removeVolumes({ host, names: [volume] })).toEqual({ host: 'local', removed: [] });
});
