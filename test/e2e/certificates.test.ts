// Certificates end to end: the dev server, a real worker, the CLI, pebble as the CA, bind9 for the
// names and the DNS-01 records, nginx proxies on the test engine. `runbook cert` over HTTP-01 and
// over DNS-01 (a wildcard), the no-op while the served certificate is good, --force, the renewal
// Schedule created and triggered through the CLI; and no private key in any workflow history.
import { createPrivateKey, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { createTlsActivities } from '../../activities/tls';
import { e2eSetup, historyText, runCli, WorkerProcess, type E2eSetup } from '../helpers/e2e';
import { BIND9_ADDRESS, BIND9_TSIG_KEY_FILE, DOCKER_SOCK, PEBBLE_DIRECTORY_URL, PEBBLE_HTTP_PORT, PEBBLE_MANAGEMENT_URL, PEBBLE_TLS_CA, TEMPORAL_ADDRESS } from '../helpers/paths';

jest.setTimeout(300_000);

const docker = new Docker({ socketPath: DOCKER_SOCK });
const taskQueue = `e2e-cert-${randomUUID()}`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-cert-'));
const rootFile = path.join(tmp, 'pebble-root.pem');
const tlsProbe = createTlsActivities();
const IDS = ['issueCertificate/certapp/production', 'issueCertificate/certapp/wild', 'firstDeploy/certapp/production', 'firstDeploy/certapp/wild', 'lock/certapp/production', 'lock/certapp/wild'];
let setup: E2eSetup;
let worker: WorkerProcess;
let connection: Connection;
let client: Client;
const runs: { workflowId: string; runId?: string }[] = [];
const timings: Record<string, string> = {};

async function removeEverything(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: ['runbook.app=certapp'] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const n of await docker.listNetworks({ filters: { name: ['certapp-'] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  for (const v of ['certapp-production-proxy-tls', 'certapp-wild-proxy-tls']) await docker.getVolume(v).remove().catch(() => undefined);
}

async function proxyFile(env: string, file: string): Promise<string> {
  const exec = await docker.getContainer(`certapp-${env}-proxy`).exec({ Cmd: ['cat', file], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((r) => stream.on('end', r));
  const raw = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let i = 0; i + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(i + 4);
    if (raw[i] === 1) out.push(raw.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return Buffer.concat(out).toString('utf8');
}

const served = (port: number, servername: string) => tlsProbe.inspectServedCertificate({ address: '127.0.0.1', port, servername, caFile: rootFile });

async function timedCli(label: string, args: string[]) {
  const t0 = Date.now();
  const r = await runCli(args, setup.env);
  timings[label] = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const started = /started (\S+) \(run ([0-9a-f-]+)\)/.exec(r.stdout);
  if (started) runs.push({ workflowId: started[1], runId: started[2] });
  return r;
}

beforeAll(async () => {
  connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  client = new Client({ connection });
  for (const id of IDS) await client.workflow.getHandle(id).terminate('left over').catch(() => undefined);
  await client.schedule.getHandle('renewCertificates').delete().catch(() => undefined);
  await removeEverything();
  const root = await new Promise<string>((resolve, reject) => {
    https
      .get(`${PEBBLE_MANAGEMENT_URL}/roots/0`, { ca: readFileSync(PEBBLE_TLS_CA) }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  writeFileSync(rootFile, root);
  const template = path.join(tmp, 'cert-inventory.yaml');
  writeFileSync(
    template,
    readFileSync(path.join(__dirname, 'cert-inventory.yaml'), 'utf8')
      .replaceAll('${PEBBLE_HTTP_PORT}', String(PEBBLE_HTTP_PORT))
      .replaceAll('${PEBBLE_DIRECTORY_URL}', PEBBLE_DIRECTORY_URL)
      .replaceAll('${PEBBLE_TLS_CA}', PEBBLE_TLS_CA)
      .replaceAll('${BIND9_ADDRESS}', BIND9_ADDRESS)
      .replaceAll('${BIND9_TSIG_KEY_FILE}', BIND9_TSIG_KEY_FILE)
      .replaceAll('${PEBBLE_ROOT}', rootFile),
  );
  setup = e2eSetup(template, taskQueue);
  worker = new WorkerProcess(setup.env);
  await worker.start();
  for (const env of ['production', 'wild']) {
    const r = await timedCli(`deploy ${env}`, ['deploy', 'certapp', '--env', env]);
    if (r.code !== 0) throw new Error(`deploy ${env} failed: ${r.stdout}\n${r.stderr}`);
  }
});

afterAll(async () => {
  await worker?.kill('SIGTERM');
  for (const id of IDS) await client?.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await client?.schedule.getHandle('renewCertificates').delete().catch(() => undefined);
  await connection?.close();
  await removeEverything();
  // eslint-disable-next-line no-console
  console.log(`timings: ${JSON.stringify(timings, null, 1)}`);
});

it('runbook cert over HTTP-01: the proxy serves a certificate from the CA, HTTP redirects to HTTPS', async () => {
  const r = await timedCli('cert HTTP-01 (CLI start → exit)', ['cert', 'certapp', '--env', 'production']);
  expect(r.code).toBe(0);
  const cert = await served(18446, 'app.runbooks.test');
  expect(cert).toMatchObject({ authorized: true, names: ['app.runbooks.test'] });
  expect(r.stdout).toContain(cert.serial);
});

it('a second run is a no-op while the served certificate has more than a third of its lifetime left; --force issues anew', async () => {
  const before = await served(18446, 'app.runbooks.test');
  const again = await timedCli('cert no-op', ['cert', 'certapp', '--env', 'production']);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(/unchanged/);
  expect((await served(18446, 'app.runbooks.test')).serial).toBe(before.serial);
  const forced = await timedCli('cert --force', ['cert', 'certapp', '--env', 'production', '--force']);
  expect(forced.code).toBe(0);
  expect((await served(18446, 'app.runbooks.test')).serial).not.toBe(before.serial);
});

it('runbook cert over DNS-01: a wildcard and its apex', async () => {
  const r = await timedCli('cert DNS-01 wildcard (CLI start → exit)', ['cert', 'certapp', '--env', 'wild']);
  expect(r.code).toBe(0);
  const cert = await served(18447, 'shop.wild.runbooks.test');
  expect(cert.authorized).toBe(true);
  expect([...cert.names].sort()).toEqual(['*.wild.runbooks.test', 'wild.runbooks.test']);
});

it('runbook schedule certs creates the renewal Schedule; one triggered run checks both and renews nothing', async () => {
  const created = await runCli(['schedule', 'certs'], setup.env);
  expect(created.code).toBe(0);
  const d = await client.schedule.getHandle('renewCertificates').describe();
  expect(d.spec.intervals?.[0]?.every).toBe(12 * 3600 * 1000);
  const t0 = Date.now();
  const trig = await runCli(['schedule', 'certs', '--trigger'], setup.env);
  expect(trig.code).toBe(0);
  let done: { workflowId: string; runId: string } | undefined;
  for (let i = 0; i < 600 && !done; i++) {
    const desc = await client.schedule.getHandle('renewCertificates').describe();
    const action = desc.info.recentActions.at(-1)?.action;
    if (action) {
      const info = await client.workflow.getHandle(action.workflow.workflowId, action.workflow.firstExecutionRunId).describe();
      if (info.status.name !== 'RUNNING') {
        expect(info.status.name).toBe('COMPLETED');
        done = { workflowId: action.workflow.workflowId, runId: action.workflow.firstExecutionRunId };
      }
    }
    if (!done) await new Promise((r) => setTimeout(r, 200));
  }
  expect(done).toBeDefined();
  timings['scheduled renewal check'] = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  runs.push(done!);
  const result = (await client.workflow.getHandle(done!.workflowId, done!.runId).result()) as { checked: unknown[]; renewed: unknown[]; failed: unknown[] };
  expect(result.renewed).toEqual([]);
  expect(result.failed).toEqual([]);
  expect(result.checked.length).toBe(2);
});

it('no private key (certificate or ACME account) in any workflow history', async () => {
  const keys = [];
  for (const env of ['production', 'wild']) {
    for (const file of [`/etc/nginx/tls/certapp-${env}.key`, '/etc/nginx/tls/acme-account.key']) {
      const pem = await proxyFile(env, file);
      expect(pem).toMatch(/PRIVATE KEY/);
      // the secret is the private scalar; the rest of the PEM (the public point) is also in CSRs and certificates
      const d = Buffer.from(createPrivateKey(pem).export({ format: 'jwk' }).d as string, 'base64url');
      keys.push(d.toString('base64url'), d.toString('base64'), d.toString('hex'), pem.split('\n')[1]);
    }
  }
  const ids = [...new Set([...runs.map((r) => r.workflowId), ...IDS.filter((id) => !id.startsWith('lock'))])];
  let histories = '';
  for (const id of ids) histories += await historyText(client, id).catch(() => '');
  for (const r of runs) if (r.runId) histories += await historyText(client, r.workflowId, r.runId).catch(() => '');
  expect(histories.length).toBeGreaterThan(10_000);
  expect(histories).toContain('BEGIN CERTIFICATE'); // the public chain is there; the keys are not
  for (const line of keys) expect(histories).not.toContain(line);
  for (const secret of setup.secrets) expect(histories).not.toContain(secret);
});
