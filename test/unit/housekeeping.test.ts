// Housekeeping decisions (common/housekeeping.ts): which tags of an app's repository go and why the
// others stay; and the disk report read from the engine's df answer.
import { formatHousekeeping } from '../../client/housekeeping-format';
import { decideHousekeeping, repositoryDigests, repositoryTags, repositoryVersions, summarizeDiskUsage, type HostContainer, type RepositoryImage } from '../../common/housekeeping';

const REPO = 'reg:5000/shop';
/** v1 oldest … v5 newest, one image each. */
const img = (tag: string, created: number, extra: string[] = []): RepositoryImage => ({ id: `sha256:${tag}`, references: [`${REPO}:${tag}`, ...extra], created, size: 1000 * created });
const V = { v1: img('v1', 1), v2: img('v2', 2), v3: img('v3', 3), v4: img('v4', 4), v5: img('v5', 5) };
const ctr = (name: string, tag: string, state = 'running', labels: Record<string, string> = {}): HostContainer => ({ name, imageId: `sha256:${tag}`, state, labels });

type Case = [string, RepositoryImage[], HostContainer[], { keep: Record<string, string[]>; remove: string[] }];
const CASES: Case[] = [
  ['nothing on the host: nothing to do', [], [], { keep: {}, remove: [] }],
  ['one running version and nothing else', [V.v1], [ctr('web-1', 'v1')], { keep: { v1: ['running'] }, remove: [] }],
  [
    'running v3, newest not running v2: v1 goes',
    [V.v1, V.v2, V.v3],
    [ctr('web-1', 'v3'), ctr('web-2', 'v3')],
    { keep: { v3: ['running'], v2: ['newest not running'] }, remove: ['v1'] },
  ],
  [
    'running v3, a newer v4 not running yet: v4 is the newest not running; v1, v2 go',
    [V.v4, V.v1, V.v3, V.v2],
    [ctr('web-1', 'v3')],
    { keep: { v4: ['newest not running'], v3: ['running'] }, remove: ['v2', 'v1'] },
  ],
  [
    'an image of a stopped container stays, whatever its age',
    [V.v1, V.v2, V.v3, V.v4],
    [ctr('web-1', 'v3'), ctr('shop-production-migrate-v1', 'v1', 'exited')],
    { keep: { v4: ['newest not running'], v3: ['running'], v1: ['in use'] }, remove: ['v2'] },
  ],
  [
    'the previous version recorded on the running containers stays beside the newest not running',
    [V.v1, V.v2, V.v3, V.v4, V.v5],
    [ctr('web-1', 'v4', 'running', { 'runbook.previous-version': 'v2' })],
    { keep: { v5: ['newest not running'], v4: ['running'], v2: ['previous'] }, remove: ['v3', 'v1'] },
  ],
  [
    'a previous-version label on a container of another image (another app on the host) says nothing about this repository',
    [V.v1, V.v2, V.v3],
    [ctr('web-1', 'v3'), { name: 'other-web-1', imageId: 'sha256:other', state: 'running', labels: { 'runbook.previous-version': 'v1' } }],
    { keep: { v3: ['running'], v2: ['newest not running'] }, remove: ['v1'] },
  ],
  [
    'two versions running (mid update): both stay, and the newest of the rest',
    [V.v1, V.v2, V.v3, V.v4],
    [ctr('web-1', 'v3'), ctr('web-2', 'v4'), ctr('web-3', 'v4', 'created')],
    { keep: { v4: ['running'], v3: ['running'], v2: ['newest not running'] }, remove: ['v1'] },
  ],
  [
    'nothing runs: only the newest stays',
    [V.v1, V.v2, V.v3],
    [],
    { keep: { v3: ['newest not running'] }, remove: ['v2', 'v1'] },
  ],
  [
    'a container of another app using one of these images keeps it',
    [V.v1, V.v2, V.v3],
    [ctr('web-1', 'v3'), ctr('other-app-tool', 'v1', 'running')],
    { keep: { v3: ['running'], v2: ['newest not running'], v1: ['running'] }, remove: [] },
  ],
  [
    'containers of other images change nothing',
    [V.v1, V.v2, V.v3],
    [ctr('web-1', 'v3'), { name: 'db', imageId: 'sha256:postgres', state: 'running', labels: {} }],
    { keep: { v3: ['running'], v2: ['newest not running'] }, remove: ['v1'] },
  ],
];

it.each(CASES)('%s', (_name, images, containers, want) => {
  const d = decideHousekeeping(REPO, images, containers);
  expect(Object.fromEntries(d.keep.map((k) => [k.tags.join(','), k.reasons]))).toEqual(want.keep);
  expect(d.remove.map((r) => r.tags.join(','))).toEqual(want.remove);
  // kept or removed, never both, never lost
  expect(d.keep.length + d.remove.length).toBe(images.length);
});

it('removes this repository\'s references only: an image also tagged elsewhere is only untagged here', () => {
  const shared = img('v1', 1, ['other:5000/tool:stable', `${REPO}:old`]);
  const d = decideHousekeeping(REPO, [shared, V.v2, V.v3], [ctr('web-1', 'v3')]);
  expect(d.remove).toEqual([{ id: 'sha256:v1', tags: ['old', 'v1'], references: [`${REPO}:old`, `${REPO}:v1`], size: 1000 }]);
});

it('images without a tag of the repository are never considered (a filter that matched too much)', () => {
  const foreign: RepositoryImage = { id: 'sha256:x', references: ['reg:5000/shop-admin:v1', 'reg:5000/shop/extra:v1'], created: 0, size: 1 };
  const d = decideHousekeeping(REPO, [foreign, V.v1, V.v2], [ctr('web-1', 'v2')]);
  expect([...d.keep, ...d.remove].map((i) => i.id)).toEqual(['sha256:v2', 'sha256:v1']);
});

it('the kept images name the containers that use them; equal creation times are ordered by tag', () => {
  const a = { ...img('a', 7) };
  const b = { ...img('b', 7) };
  const d = decideHousekeeping(REPO, [a, b], [ctr('z', 'v9'), { name: 'old-job', imageId: 'sha256:a', state: 'exited', labels: {} }]);
  expect(d.keep).toEqual([
    { id: 'sha256:b', tags: ['b'], reasons: ['newest not running'], containers: [] },
    { id: 'sha256:a', tags: ['a'], reasons: ['in use'], containers: ['old-job'] },
  ]);
});

it('repositoryTags reads tags of references with a registry port, ignoring digests', () => {
  expect(repositoryTags('127.0.0.1:5000/demo-app', ['127.0.0.1:5000/demo-app:v1', '127.0.0.1:5000/demo-app@sha256:abc', '127.0.0.1:5000/demo-app-x:v2'])).toEqual(['v1']);
});

it('summarizes the engine df answer per area with what is reclaimable', () => {
  const report = summarizeDiskUsage({
    LayersSize: 900,
    Images: [
      { Size: 500, SharedSize: 100, Containers: 1 },
      { Size: 400, SharedSize: 100, Containers: 0 },
      { Size: 100, SharedSize: -1, Containers: 0 },
    ],
    Containers: [
      { SizeRw: 10, State: 'running' },
      { SizeRw: 5, State: 'exited' },
    ],
    Volumes: [{ UsageData: { Size: 70, RefCount: 1 } }, { UsageData: { Size: 30, RefCount: 0 } }, { UsageData: null }],
    BuildCache: null,
  });
  expect(report).toEqual({
    images: { count: 3, size: 900, reclaimable: 400 },
    containers: { count: 2, size: 15, reclaimable: 5 },
    volumes: { count: 3, size: 100, reclaimable: 30 },
    buildCache: { count: 0, size: 0, reclaimable: 0 },
  });
});

it('the CLI prints per host what went, what stayed and why, and disk before → after', () => {
  const area = (size: number, reclaimable = 0) => ({ count: 2, size, reclaimable });
  const diskOf = (images: number) => ({ images: area(images, 100), containers: area(10), volumes: area(2_500_000), buildCache: area(0) });
  const text = formatHousekeeping({
    app: 'shop',
    env: 'production',
    repository: REPO,
    dryRun: false,
    hosts: [
      {
        host: 'one',
        removed: [{ id: 'sha256:v1', tags: ['v1'], size: 120_000_000, deleted: true }],
        kept: [
          { id: 'sha256:v3', tags: ['v3'], reasons: ['running'], containers: ['shop-production-web-1'] },
          { id: 'sha256:v2', tags: ['v2'], reasons: ['in use'], containers: [], refused: 'container abc is using its referenced image' },
        ],
        diskBefore: diskOf(1_500_000_000),
        diskAfter: diskOf(1_380_000_000),
      },
    ],
  });
  expect(text.split('\n')).toEqual([
    'housekeeping of shop/production (reg:5000/shop)',
    'one:',
    '  removed v1 (120.0 MB)',
    '  kept v3: running; used by shop-production-web-1',
    '  kept v2: in use; the engine refused: container abc is using its referenced image',
    '  disk (before → after):',
    '    images      1.50 GB → 1.38 GB (2; reclaimable 100 B)',
    '    containers  10 B → 10 B (2; reclaimable 0 B)',
    '    volumes     2.50 MB → 2.50 MB (2; reclaimable 0 B)',
    '    build cache 0 B → 0 B (2; reclaimable 0 B)',
  ]);
});

describe('images pulled by digest (versions `<tag>@sha256:…` the update Schedule rolls out)', () => {
  const digest = (n: string) => `@sha256:${n.repeat(64)}`;
  const pinned = (n: string, created: number): RepositoryImage => ({ id: `sha256:${n}`, references: [`${REPO}${digest(n)}`], created, size: 10 });

  it('are named by their digest; the running one, the previous one (by digest) and the newest not running stay; older ones go by digest', () => {
    const images = [pinned('a', 1), pinned('b', 2), pinned('c', 3), pinned('d', 4)];
    const running = { name: 'web-1', imageId: 'sha256:c', state: 'running', labels: { 'runbook.previous-version': `tracked${digest('a')}` } };
    const d = decideHousekeeping(REPO, images, [running]);
    expect(Object.fromEntries(d.keep.map((k) => [k.tags.join(','), k.reasons]))).toEqual({ [digest('d')]: ['newest not running'], [digest('c')]: ['running'], [digest('a')]: ['previous'] });
    expect(d.remove).toEqual([{ id: 'sha256:b', tags: [digest('b')], references: [`${REPO}${digest('b')}`], size: 10 }]);
  });

  it('a tagged image stays named by its tags (its digests are not removed separately)', () => {
    expect(repositoryVersions(REPO, [`${REPO}:v1`, `${REPO}${digest('e')}`])).toEqual(['v1']);
    expect(repositoryVersions(REPO, [`${REPO}${digest('e')}`, `${REPO}-x${digest('f')}`])).toEqual([digest('e')]);
    expect(repositoryDigests(REPO, [`${REPO}-x${digest('f')}`])).toEqual([]);
  });
});
