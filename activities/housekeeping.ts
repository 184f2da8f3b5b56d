// Housekeeping on a host's engine: what the app's repository has there and which containers use it,
// removing tags without force (an image in use stays, reported), and disk use per area.
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { repositoryDigests, repositoryTags, repositoryVersions, summarizeDiskUsage, type DiskReport, type EngineDiskUsage, type HostContainer, type RepositoryImage } from '../common/housekeeping';
import type { HostSpec } from '../common/types';
import { engineFailure, statusCode, type DockerEngines } from './docker';

export interface HousekeepingListing {
  host: string;
  images: RepositoryImage[];
  containers: HostContainer[];
}

export interface ImageRemoval {
  id: string;
  /** The references asked to be removed. */
  references: string[];
  /** removed: every reference is gone (`deleted`: the image itself too, not only untagged); in use: the engine refused. */
  outcome: 'removed' | 'in use';
  deleted: boolean;
  /** The engine's reason when in use. */
  reason?: string;
}

const REFERENCE = /^[a-z0-9][a-z0-9._\-/:]*$/;

function checkRepository(repository: string): void {
  if (!REFERENCE.test(repository) || repository.includes('@')) throw ApplicationFailure.nonRetryable(`"${repository}" is not an image repository`, 'InvalidInput');
}

export function createHousekeepingActivities(engines: DockerEngines) {
  const withEngine = async <T>(host: HostSpec, what: string, fn: (docker: Docker) => Promise<T>): Promise<T> => {
    try {
      return await fn(await engines.engine(host));
    } catch (err) {
      throw engineFailure(host, what, err);
    }
  };

  return {
    /** The repository's images on the host and every container there (any app, any state). Read-only. */
    async listHousekeepingInventory(req: { host: HostSpec; repository: string }): Promise<HousekeepingListing> {
      checkRepository(req.repository);
      return withEngine(req.host, `list the images of ${req.repository}`, async (d) => {
        const images = await d.listImages({ filters: { reference: [req.repository] } });
        const containers = await d.listContainers({ all: true });
        return {
          host: req.host.name,
          // tags and digests: an image pulled by digest (the update Schedule's) has no tag
          images: images
            .map((i) => ({ id: i.Id, references: [...(i.RepoTags ?? []), ...(i.RepoDigests ?? [])].sort(), created: i.Created, size: i.Size }))
            .filter((i) => repositoryVersions(req.repository, i.references).length > 0),
          containers: containers.map((c) => ({ name: (c.Names[0] ?? c.Id).replace(/^\//, ''), imageId: c.ImageID, state: c.State, labels: c.Labels ?? {} })),
        };
      });
    },

    /**
     * Removes the images' references (tags of `repository` only), never forced: an image a container
     * uses is refused by the engine and reported "in use". A reference already gone counts as removed.
     */
    async removeRepositoryImages(req: { host: HostSpec; repository: string; images: { id: string; references: string[] }[] }): Promise<{ host: string; removals: ImageRemoval[] }> {
      checkRepository(req.repository);
      for (const image of req.images) {
        const foreign = image.references.filter((r) => repositoryTags(req.repository, [r]).length + repositoryDigests(req.repository, [r]).length !== 1);
        if (foreign.length || image.references.length === 0) {
          throw ApplicationFailure.nonRetryable(`housekeeping of ${req.repository} may only remove its own tags, not ${JSON.stringify(foreign.length ? foreign : image.references)}`, 'InvalidInput');
        }
      }
      return withEngine(req.host, `remove images of ${req.repository}`, async (d) => {
        const removals: ImageRemoval[] = [];
        for (const image of req.images) {
          let deleted = false;
          let refused: string | undefined;
          for (const reference of image.references) {
            try {
              const answer = (await d.getImage(reference).remove({})) as { Deleted?: string }[] | undefined;
              if (answer?.some((a) => a.Deleted)) deleted = true;
            } catch (err) {
              if (statusCode(err) === 404) continue; // removed by an earlier attempt
              if (statusCode(err) === 409) {
                refused = ((err as { json?: { message?: string } }).json?.message ?? (err as Error).message).trim();
                break;
              }
              throw err;
            }
          }
          removals.push({ id: image.id, references: image.references, outcome: refused ? 'in use' : 'removed', deleted, ...(refused ? { reason: refused } : {}) });
        }
        return { host: req.host.name, removals };
      });
    },

    /** Disk use on the host per area (images, containers, volumes, build cache), with what is reclaimable. */
    async diskUsage(req: { host: HostSpec }): Promise<{ host: string; disk: DiskReport }> {
      return withEngine(req.host, 'read disk usage', async (d) => ({ host: req.host.name, disk: summarizeDiskUsage((await d.df()) as EngineDiskUsage) }));
    },
  };
}
