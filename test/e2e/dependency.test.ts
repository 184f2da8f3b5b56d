// A dependency updated the way the seeds ran Watchtower, with gates: the app is deployed with the
// seeds' Redis (AOF on a volume, a password from a secret file, a declared health check); a key is
// written; the inventory moves Redis to a new image and `runbook update --service redis` replaces
// the container: the key is still there. Then to a broken image: the run fails and rolls back to
// the previous image, with the key. Port 18270 and dpapp-* are this file's.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { renderTemplate } from '../../common/template';
import { execInContainer } from '../../activities/docker';
import { e2eSetup, historyText, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { DOCKER_SOCK, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const APP = 'dpapp';
const ENV = 'production';
const REDIS = `${APP}-${ENV}-redis`;
const docker = new Docker({ socketPath: DOCKER_SOCK });
const password = `rp-${randomBytes(12).toString('hex')}`;
const template = readFileSync(path.join(__dirname, 'dependency-inventory.yaml'), 'utf8');
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;

/** The inventory with Redis at `tag` (the operator's edit before `runbook update --service redis`). */
function declareRedis(tag: string): void {
  writeFileSync(setup.inventoryPath, renderTemplate(template.replaceAll('${REDIS_TAG}', tag), { DOCKER_SOCK, SECRETS_DIR: setup.dir }));
}

async function redisCli(...args: string[]): Promise<string> {
  const r = await execInContainer(docker, REDIS, ['sh', '-c', 'redis-cli -a "$(cat /run/secrets/redis-password)" --no-auth-warning "$@"', 'redis-cli', ...args]);
  if (r.exitCode !== 0) throw new Error(`redis-cli ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout.trim();
}

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`runbook.app=${APP}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: [`${APP}-`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  for (const v of [`${APP}-${ENV}-redisdata`, `${APP}-${ENV}-proxy-tls`]) await docker.getVolume(v).remove().catch(() => undefined);
}

async function cli(args: string[], what: string) {
  const r = await runCli(args, setup.env);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}\nworker:\n${worker.output.slice(-3000)}`);
  return r;
}

const redisImage = async () => (await docker.getContainer(REDIS).inspect()).Config.Image;

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  for (const id of [`updateDependency/${APP}/${ENV}`, `firstDeploy/${APP}/${ENV}`, `lock/${APP}/${ENV}`]) await client.workflow.getHandle(id).terminate('e2e: left over').catch(() => undefined);
  await removeEverything();
  const first = path.join(os.tmpdir(), `dependency-inventory-${process.pid}.yaml`);
  writeFileSync(first, template.replaceAll('${REDIS_TAG}', '7.0'));
  setup = e2eSetup(first, `e2e-dependency-${randomUUID()}`);
  writeFileSync(path.join(setup.dir, 'redis-password'), `${password}\n`, { mode: 0o600 });
  declareRedis('7.0');
  worker = new WorkerProcess(setup.env);
  await worker.start();
});

afterAll(async () => {
  await worker?.kill('SIGTERM');
  await connection?.close();
  await removeEverything();
});

it('deployed with the seeds\' Redis: AOF, the password from a secret file, healthy by its declared check, limited', async () => {
  await cli(['deploy', APP, '--env', ENV], 'deploy');
  const info = await docker.getContainer(REDIS).inspect();
  expect([info.Config.Image, info.State.Health?.Status, info.HostConfig.Memory]).toEqual(['127.0.0.1:5000/redis:7.0', 'healthy', 128 * 1024 ** 2]);
  expect(JSON.stringify(info.Config)).not.toContain(password); // read from the mounted file, not passed in
  expect(await redisCli('CONFIG', 'GET', 'appendonly')).toBe('appendonly\nyes');
  expect(await redisCli('SET', 'written-before', 'kept')).toBe('OK');
});

it('runbook update --service redis: the new image runs, healthy, on the same volume: the key written before is there', async () => {
  declareRedis('7.2');
  const r = await cli(['update', APP, '--env', ENV, '--service', 'redis'], 'update --service redis');
  expect(r.stdout).toContain(`updateDependency/${APP}/${ENV}: succeeded`);
  expect(await redisImage()).toBe('127.0.0.1:5000/redis:7.2');
  expect(await redisCli('GET', 'written-before')).toBe('kept');
  expect(await docker.listContainers({ all: true, filters: { name: [`${REDIS}-previous`] } })).toEqual([]);
  // the inventory is what runs: a deploy finds nothing to change
  const again = await cli(['deploy', APP, '--env', ENV], 'deploy again');
  expect(again.stdout).toMatch(/nothing to change|succeeded/);
  expect(await redisImage()).toBe('127.0.0.1:5000/redis:7.2');
});

it('a broken image is rolled back to the previous one, with the data; the run says so', async () => {
  declareRedis('broken');
  const r = await runCli(['update', APP, '--env', ENV, '--service', 'redis'], setup.env);
  expect(r.code).not.toBe(0);
  const out = r.stdout + r.stderr;
  expect(out).toMatch(new RegExp(`${REDIS} on local (is unhealthy|stopped \\(exit code 1\\))`));
  expect(out).toMatch(/cannot load the data in \/data/);
  expect(out).toMatch(new RegExp(`rolled back: ${REDIS} runs 127\\.0\\.0\\.1:5000/redis:7\\.2 again, on its volumes`));
  expect(await redisImage()).toBe('127.0.0.1:5000/redis:7.2');
  expect((await docker.getContainer(REDIS).inspect()).State.Health?.Status).toBe('healthy');
  expect(await redisCli('GET', 'written-before')).toBe('kept');
  // a version that is not the inventory's is refused before anything
  declareRedis('7.2');
  const refused = await runCli(['update', APP, '--env', ENV, '--service', 'redis', '--version', '8.0'], setup.env);
  expect(refused.code).not.toBe(0);
  expect(refused.stdout + refused.stderr).toMatch(/apps\.dpapp\.dependencies\.0\.image is 127\.0\.0\.1:5000\/redis:7\.2: set it to 127\.0\.0\.1:5000\/redis:8\.0 first/);
});

it('no secret in any history', async () => {
  for (const id of [`updateDependency/${APP}/${ENV}`, `firstDeploy/${APP}/${ENV}`]) {
    const text = await historyText(client, id);
    for (const secret of [password, ...setup.secrets]) expect(text).not.toContain(secret);
  }
});
