// Housekeeping of an app's images on one host: which tags of the app's repository go, which stay and
// why. Pure: bundled into the workflow, which decides from what the activities listed.
import { splitImageReference } from './commands/docker';

/** An image carrying at least one tag of the repository (as the engine lists it). */
export interface RepositoryImage {
  id: string;
  /** The image's `repository:tag` references as listed (an engine's reference filter may leave out other repositories'). */
  references: string[];
  /** Unix seconds. */
  created: number;
  size: number;
}

/** A container on the host, of any app and in any state. */
export interface HostContainer {
  name: string;
  imageId: string;
  state: string;
  labels: Record<string, string>;
}

/**
 * Why an image stays: `in use` (a container of any state uses it), `running` (a running version),
 * `previous` (the rollback target recorded on the running containers), `newest not running`
 * (the newest version not running: the previous one, or one about to be rolled out).
 */
export type KeepReason = 'in use' | 'running' | 'previous' | 'newest not running';

export interface KeptImage {
  id: string;
  tags: string[];
  reasons: KeepReason[];
  /** The containers using it. */
  containers: string[];
}

export interface ImageToRemove {
  id: string;
  tags: string[];
  /** The references removed, this repository's only: an image tagged elsewhere too is only untagged. */
  references: string[];
  size: number;
}

export interface HousekeepingDecision {
  repository: string;
  keep: KeptImage[];
  remove: ImageToRemove[];
}

/** This repository's tags among the references (`127.0.0.1:5000/demo-app:v1` → `v1`). */
export function repositoryTags(repository: string, references: string[]): string[] {
  return references.filter((r) => !r.includes('@') && splitImageReference(r).repository === repository).map((r) => splitImageReference(r).tag);
}

/** This repository's digests among the references (`127.0.0.1:5000/demo-app@sha256:ab…` → `@sha256:ab…`). */
export function repositoryDigests(repository: string, references: string[]): string[] {
  return references.filter((r) => r.startsWith(`${repository}@sha256:`)).map((r) => r.slice(repository.length));
}

/**
 * What names an image of the repository: its tags, or, for an image pulled by digest (a version
 * `<tag>@sha256:…` the update Schedule rolled out), its digests (`@sha256:…`).
 */
export function repositoryVersions(repository: string, references: string[]): string[] {
  const tags = repositoryTags(repository, references);
  return tags.length ? tags : repositoryDigests(repository, references);
}

/** The reference that removes one of {@link repositoryVersions}' names. */
export const versionReference = (repository: string, name: string): string => (name.startsWith('@') ? `${repository}${name}` : `${repository}:${name}`);

/**
 * Keeps every image used by a container (running or stopped), the running versions, the previous
 * version recorded on the running containers (`runbook.previous-version`) and the newest version not
 * running; removes the repository's other tags. Images of other repositories are never considered.
 */
export function decideHousekeeping(repository: string, images: RepositoryImage[], containers: HostContainer[]): HousekeepingDecision {
  const ours = images
    .map((image) => ({ image, tags: repositoryVersions(repository, image.references).sort(), digests: repositoryDigests(repository, image.references) }))
    .filter((i) => i.tags.length > 0)
    // newest first; equal times by tag, so the decision never depends on the engine's order
    .sort((a, b) => b.image.created - a.image.created || b.tags[0].localeCompare(a.tags[0]));
  const usedBy = new Map<string, string[]>();
  for (const c of containers) usedBy.set(c.imageId, [...(usedBy.get(c.imageId) ?? []), c.name]);
  const running = containers.filter((c) => c.state === 'running');
  const runningIds = new Set(running.map((c) => c.imageId));
  // only containers running this repository's images say which of its versions came before
  const ourIds = new Set(ours.map((i) => i.image.id));
  const previousVersions = new Set(running.filter((c) => ourIds.has(c.imageId)).map((c) => c.labels['runbook.previous-version']).filter((v): v is string => !!v));
  // a previous version pinned to a digest (`<tag>@sha256:…`) is the image with that digest, whatever its tags now
  const previousDigests = new Set([...previousVersions].filter((v) => v.includes('@')).map((v) => v.slice(v.indexOf('@'))));
  const newestNotRunning = ours.find((i) => !runningIds.has(i.image.id));

  const keep: KeptImage[] = [];
  const remove: ImageToRemove[] = [];
  for (const { image, tags, digests } of ours) {
    const reasons: KeepReason[] = [];
    if (runningIds.has(image.id)) reasons.push('running');
    else if (usedBy.has(image.id)) reasons.push('in use');
    if (tags.some((t) => previousVersions.has(t)) || digests.some((d) => previousDigests.has(d))) reasons.push('previous');
    if (image === newestNotRunning?.image) reasons.push('newest not running');
    if (reasons.length) keep.push({ id: image.id, tags, reasons, containers: [...(usedBy.get(image.id) ?? [])].sort() });
    else remove.push({ id: image.id, tags, references: tags.map((t) => versionReference(repository, t)), size: image.size });
  }
  return { repository, keep, remove };
}

export interface DiskArea {
  count: number;
  /** Bytes. */
  size: number;
  /** Bytes freed by removing what nothing uses. */
  reclaimable: number;
}

export interface DiskReport {
  images: DiskArea;
  containers: DiskArea;
  volumes: DiskArea;
  buildCache: DiskArea;
}

/** The engine's `GET /system/df` answer, the fields read here. */
export interface EngineDiskUsage {
  LayersSize?: number;
  Images?: { Size?: number; SharedSize?: number; Containers?: number }[] | null;
  Containers?: { SizeRw?: number; State?: string }[] | null;
  Volumes?: { UsageData?: { Size?: number; RefCount?: number } | null }[] | null;
  BuildCache?: { Size?: number; InUse?: boolean; Shared?: boolean }[] | null;
}

const nonNegative = (n: number | undefined): number => (n !== undefined && n > 0 ? n : 0);

/**
 * Disk use per area as `docker system df` reports it: images (the layers' size; reclaimable: the
 * unshared part of images no container uses), containers (writable layers; reclaimable: not running),
 * volumes (reclaimable: no container refers to them) and the build cache.
 */
export function summarizeDiskUsage(df: EngineDiskUsage): DiskReport {
  const images = df.Images ?? [];
  const containers = df.Containers ?? [];
  const volumes = df.Volumes ?? [];
  const cache = df.BuildCache ?? [];
  const imagesSize = nonNegative(df.LayersSize) || images.reduce((s, i) => s + nonNegative(i.Size) - nonNegative(i.SharedSize), 0);
  const unusedImages = images.filter((i) => nonNegative(i.Containers) === 0).reduce((s, i) => s + nonNegative(i.Size) - nonNegative(i.SharedSize), 0);
  return {
    images: { count: images.length, size: imagesSize, reclaimable: Math.min(unusedImages, imagesSize) },
    containers: {
      count: containers.length,
      size: containers.reduce((s, c) => s + nonNegative(c.SizeRw), 0),
      reclaimable: containers.filter((c) => c.State !== 'running').reduce((s, c) => s + nonNegative(c.SizeRw), 0),
    },
    volumes: {
      count: volumes.length,
      size: volumes.reduce((s, v) => s + nonNegative(v.UsageData?.Size), 0),
      reclaimable: volumes.filter((v) => v.UsageData?.RefCount === 0).reduce((s, v) => s + nonNegative(v.UsageData?.Size), 0),
    },
    buildCache: {
      count: cache.length,
      size: cache.filter((b) => !b.Shared).reduce((s, b) => s + nonNegative(b.Size), 0),
      reclaimable: cache.filter((b) => !b.Shared && !b.InUse).reduce((s, b) => s + nonNegative(b.Size), 0),
    },
  };
}
