// dnsCutover on the time-skipping server, activities mocked by a small model of the world: two
// authoritative servers, two databases with replication and app-write flags, two proxies. The
// production durations are used (48 h lead time, 7-day window): time skipping runs a week in seconds.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { historyToJson } from '../../client/history-json';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, type Duration } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { CutoverStatus, DnsCutoverResult, DnsRecordSet, DnsSnapshot, PgEndpoint, TableMark, ValidationSample } from '../../common/cutover';
import { buildCutoverPlan } from '../../common/cutover-plan';
import type { DnsCutoverInput } from '../../common/inputs';
import { parseInventory } from '../../common/inventory';
import type { LockAnswer } from '../../common/types';
import { approveSignal, cutoverStatusQuery, extendWindowSignal, rejectSignal, requestRollbackSignal, statusQuery } from '../../workflows/lib/definitions';
import { testWorker, timeSkippingEnv, workflowBundle } from '../helpers/workflow-env';

jest.setTimeout(240_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
  await workflowBundle();
});
afterAll(async () => {
  await env?.teardown();
});

const INVENTORY = parseInventory(`
hosts:
  blue: { docker: { socketPath: /run/blue.sock } }
  green: { docker: { socketPath: /run/green.sock } }
apps:
  shop:
    image: reg:5000/shop
    port: 8080
    proxyImage: "reg:5000/nginx:1"
    backup:
      storage: { type: directory, path: /srv/backups }
      databases: [{ name: main, server: { address: 10.0.0.1 }, database: shop, user: shop }]
    cutover:
      zone: { type: rfc2136, zone: shop.test, server: "10.0.0.53:53", keyFile: /etc/tsig.key }
      records: [www.shop.test]
      rehearsalRecord: rehearsal.shop.test
    environments:
      blue:
        hosts: [blue]
        proxy: { hostPort: 80 }
        approvers: [alice, bob]
        cutover:
          addresses: [192.0.2.1]
          url: http://10.0.0.1:80
          database: { address: 10.0.0.1, database: shop, user: postgres, appRole: shop }
          rehearsalDatabase: { address: 10.0.0.1, database: shop_rehearsal, user: postgres, appRole: shop }
      green:
        hosts: [green]
        proxy: { hostPort: 80 }
        approvers: [alice, bob]
        cutover:
          addresses: [192.0.2.2]
          url: http://10.0.0.2:80
          database: { address: 10.0.0.2, database: shop, user: postgres, appRole: shop }
          rehearsalDatabase: { address: 10.0.0.2, database: shop_rehearsal, user: postgres, appRole: shop }
`);

const OLD_URL = 'http://10.0.0.1:80';
const NEW_URL = 'http://10.0.0.2:80';
const SERVERS = ['10.0.0.53:53', '10.0.0.54:53'];

/** The world the activities act on. */
class World {
  records = new Map<string, { values: string[]; ttl: number }>([
    ['www.shop.test A', { values: ['192.0.2.1'], ttl: 3600 }],
    ['rehearsal.shop.test A', { values: ['192.0.2.1'], ttl: 300 }],
  ]);
  serial = 1;
  dnsChanges: DnsRecordSet[][] = [];
  /** Databases by address: whether the app may write, rows (ids), replications in. */
  db: Record<string, { writable: boolean; rows: number[] }> = { '10.0.0.1': { writable: true, rows: [1, 2, 3] }, '10.0.0.2': { writable: true, rows: [] } };
  replications = new Map<string, { from: string; to: string }>();
  forwarding = new Map<string, string>();
  calls: { name: string; args: unknown }[] = [];
  /** What the probes of a URL see (after the switch, the new side). */
  sample: (url: string) => ValidationSample = () => ({ requests: 100, errors: 0, p50Ms: 10, p95Ms: 20 });
  failFlip = false;
  /** Opening the new database commits, then the activity fails for good (its answer is lost). */
  failOpenNew = false;
  stopped: string[] = [];

  snapshot(names: { name: string; type: string }[]): DnsSnapshot {
    return {
      zone: 'shop.test',
      servers: SERVERS.map((server) => ({
        server,
        serial: this.serial,
        records: names.map(({ name, type }) => ({ name, type: type as 'A', ...(this.records.get(`${name} ${type}`) ?? { values: [], ttl: 0 }) })),
      })),
    };
  }

  /** Writes the app made on the new side after T0 (the reverse replication carries them to the old). */
  writeOnNew(n: number): void {
    const green = this.db['10.0.0.2'];
    if (!green.writable) throw new Error('new side read-only');
    for (let i = 0; i < n; i++) {
      const id = Math.max(0, ...green.rows) + 1;
      green.rows.push(id);
      for (const r of this.replications.values()) if (r.from === '10.0.0.2') this.db[r.to].rows.push(id);
    }
  }

  activities() {
    const w = this;
    const impl: Record<string, (req: any) => Promise<unknown>> = {
      resolveCutoverPlan: async (input: DnsCutoverInput) => {
        try {
          return buildCutoverPlan(INVENTORY, input);
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
        }
      },
      acquireLock: async (req: { holder: { workflowId: string; runId: string; runbook: string } }): Promise<LockAnswer> => ({ acquired: true, holder: { ...req.holder, since: new Date().toISOString() } }),
      releaseLock: async () => undefined,
      readAuthoritative: async (req: { records: { name: string; type: string }[] }) => w.snapshot(req.records),
      applyDnsRecords: async (req: { records: DnsRecordSet[] }) => {
        const changed = req.records.some((r) => JSON.stringify(w.records.get(`${r.name} ${r.type}`)) !== JSON.stringify({ values: r.values, ttl: r.ttl }));
        if (!changed) return { changed: false };
        for (const r of req.records) w.records.set(`${r.name} ${r.type}`, { values: [...r.values], ttl: r.ttl });
        w.serial++;
        w.dnsChanges.push(req.records);
        return { changed: true };
      },
      awaitDnsRecords: async (req: { records: DnsRecordSet[] }) => {
        if (w.failFlip && req.records.some((r) => r.values.includes('192.0.2.2'))) throw ApplicationFailure.nonRetryable('10.0.0.54:53 still serves serial 1', 'DnsNotConverged');
        return w.snapshot(req.records);
      },
      setAppWrites: async (req: { endpoint: PgEndpoint; writable: boolean }) => {
        w.db[req.endpoint.address].writable = req.writable;
        if (w.failOpenNew && req.writable && req.endpoint.address === '10.0.0.2') throw ApplicationFailure.nonRetryable('connection lost after the RESET', 'Lost');
        return { terminatedSessions: 0 };
      },
      startReplication: async (req: { from: PgEndpoint; to: PgEndpoint; name: string; copyData: boolean }) => {
        if (w.replications.has(req.name)) return { tables: ['public.items'], created: false };
        w.replications.set(req.name, { from: req.from.address, to: req.to.address });
        if (req.copyData) w.db[req.to.address].rows = [...w.db[req.from.address].rows];
        return { tables: ['public.items'], created: true };
      },
      replicationStatus: async () => ({ tables: [{ table: 'public.items', state: 'r' }], ready: true, lagBytes: 0 }),
      awaitReplicationCaughtUp: async () => ({ lagBytes: 0, waitedMs: 5 }),
      removeReplication: async (req: { name: string }) => ({ removed: w.replications.delete(req.name) }),
      copySequences: async () => ({ sequences: [{ name: 'public.items_id_seq', value: '3' }] }),
      markTables: async (req: { endpoint: PgEndpoint }): Promise<TableMark[]> => {
        const rows = w.db[req.endpoint.address].rows;
        return [{ table: 'public.items', key: 'id', maxKey: String(Math.max(...rows)), rows: rows.length }];
      },
      reconcileTables: async (req: { a: PgEndpoint; b: PgEndpoint; marks: TableMark[] }) => {
        const mark = Number(req.marks[0].maxKey);
        const a = w.db[req.a.address].rows.filter((id) => id <= mark).length;
        const b = w.db[req.b.address].rows.filter((id) => id <= mark).length;
        return { at: new Date().toISOString(), tables: [{ table: 'public.items', rows: [a, b], checksums: [`c${a}`, `c${b}`], equal: a === b }], timeSeries: [], drift: a !== b };
      },
      countRowsAfter: async (req: { endpoint: PgEndpoint; marks: TableMark[] }) => [{ table: 'public.items', rows: w.db[req.endpoint.address].rows.filter((id) => id > Number(req.marks[0]?.maxKey ?? Infinity)).length }],
      exportRowsAfter: async (req: { endpoint: PgEndpoint; marks: TableMark[]; prefix: string }) => {
        const rows = w.db[req.endpoint.address].rows.filter((id) => id > Number(req.marks[0].maxKey)).length;
        return { manifest: `${req.prefix}/manifest.json`, files: [{ table: 'public.items', file: `${req.prefix}/public.items.csv`, rows, sha256: '0'.repeat(64) }], rows };
      },
      forwardProxy: async (req: { host: { name: string }; to: string }) => {
        const changed = w.forwarding.get(req.host.name) !== req.to;
        w.forwarding.set(req.host.name, req.to);
        return { changed };
      },
      unforwardProxy: async (req: { host: { name: string } }) => ({ changed: w.forwarding.delete(req.host.name) }),
      measureEndpoint: async (req: { url: string }) => ({ ...w.sample(req.url), statuses: {} }),
      notify: async () => ({ status: 200 }),
      notifyRunbookEvent: async () => ({ webhooks: 1, sent: 1, alreadySent: 0, unconfirmed: 0, remindBeforeMs: 3_600_000 }),
      inspectFleet: async (req: { host: { name: string } }) => [{ host: req.host.name, name: 'shop-blue-web-1', replica: 1, version: 'v1', image: 'reg:5000/shop:v1', state: 'running' }],
      stopContainers: async (req: { host: { name: string }; names: string[] }) => {
        w.stopped.push(...req.names);
        return { host: req.host.name, stopped: req.names };
      },
    };
    return Object.fromEntries(
      Object.entries(impl).map(([name, fn]) => [
        name,
        async (req: unknown) => {
          w.calls.push({ name, args: req });
          return fn(req);
        },
      ]),
    );
  }

  called(name: string): number {
    return this.calls.filter((c) => c.name === name).length;
  }
}

const INPUT: DnsCutoverInput = { app: 'shop', from: 'blue', to: 'green', backup: false };

async function run<T>(world: World, input: Partial<DnsCutoverInput>, drive: (handle: WorkflowHandle) => Promise<T>): Promise<T> {
  const taskQueue = `cutover-${randomUUID()}`;
  const worker = await testWorker(env, taskQueue, world.activities());
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start('dnsCutover', { taskQueue, workflowId: `dnsCutover/shop/green/${randomUUID()}`, args: [{ ...INPUT, ...input }] });
    return drive(handle);
  });
}

/**
 * Queries do not skip time: moves the server's clock forward a step at a time (6 hours by default:
 * each step costs real time, and every gate waits 7 days) until the status query shows what `ok` wants.
 */
async function advanceUntil<S>(handle: WorkflowHandle, read: (h: WorkflowHandle) => Promise<S>, ok: (s: S) => boolean, step: Duration = '6 hours'): Promise<S> {
  for (let i = 0; i < 2000; i++) {
    const s = await read(handle);
    if (ok(s)) return s;
    const described = await handle.describe();
    if (described.status.name !== 'RUNNING') throw new Error(`the run ended (${described.status.name}) before the status matched: ${JSON.stringify(s).slice(0, 800)}`);
    await env.sleep(step);
  }
  throw new Error('status never matched');
}

const gatePending = (gate: string, step?: Duration) => (handle: WorkflowHandle) => advanceUntil(handle, (h) => h.query(statusQuery), (s) => s.pendingGates.some((g) => g.gate === gate), step);
const waitForStatus = (handle: WorkflowHandle, ok: (s: CutoverStatus) => boolean, step?: Duration) => advanceUntil(handle, (h) => h.query(cutoverStatusQuery), ok, step);

async function approve(handle: WorkflowHandle, gate: string, by = 'alice', step?: Duration): Promise<void> {
  await gatePending(gate, step)(handle);
  await handle.signal(approveSignal, { gate, by });
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => {
      throw new Error('expected the workflow to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

const recordOf = (w: World, name = 'www.shop.test') => w.records.get(`${name} A`);

/** RECORD_CUTOVER_HISTORIES=1: keeps the run's history as a replay fixture (test/replay/histories). */
function record(history: temporal.api.history.v1.IHistory, name: string): void {
  if (process.env.RECORD_CUTOVER_HISTORIES !== '1') return;
  writeFileSync(path.join(__dirname, '../replay/histories', `${name}.json`), JSON.stringify(historyToJson(history), null, 1) + '\n');
}

describe('dnsCutover', () => {
  it('runs the full 7-day cycle: TTL staging, switch, validation, TTL back, reconciliation every 6 h, decommission', async () => {
    const world = new World();
    const { result, history, status } = await run(world, {}, async (handle) => {
      const st = await gatePending('go-no-go')(handle);
      // the gate opens only after the lead time: TTL lowered and verified, replicated, smoke-tested
      expect(recordOf(world)).toEqual({ values: ['192.0.2.1'], ttl: 60 });
      expect(world.replications.size).toBe(1);
      expect(world.db['10.0.0.2']).toEqual({ writable: false, rows: [1, 2, 3] });
      expect(st.pendingGates[0].approvers).toEqual(['alice', 'bob']);
      await handle.signal(approveSignal, { gate: 'go-no-go', by: 'alice' });
      const switched = await waitForStatus(handle, (s) => s.t0 !== undefined, '1 second');
      expect(Date.parse(switched.t0!) - Date.parse(switched.switchNotBefore!)).toBeGreaterThanOrEqual(0);
      world.writeOnNew(5);
      await approve(handle, 'decommission');
      return { result: (await handle.result()) as DnsCutoverResult, history: await handle.fetchHistory(), status: await handle.query(cutoverStatusQuery) };
    });
    expect(result.outcome).toBe('completed');
    expect(result.decommissioned).toBe(true);
    // flipped, then the old TTL back
    expect(recordOf(world)).toEqual({ values: ['192.0.2.2'], ttl: 3600 });
    expect(world.dnsChanges.map((c) => `${c[0].values.join()} ${c[0].ttl}`)).toEqual(['192.0.2.1 60', '192.0.2.2 60', '192.0.2.2 3600']);
    // the switch: old read-only, forward replication replaced by the reverse one, removed at decommission
    expect(world.db['10.0.0.1'].writable).toBe(false);
    expect(world.db['10.0.0.2'].writable).toBe(true);
    expect(world.replications.size).toBe(0);
    expect(world.db['10.0.0.1'].rows).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(world.forwarding.get('blue')).toBe(NEW_URL);
    expect(world.stopped).toEqual(['shop-blue-web-1', 'shop-blue-proxy']);
    // 7 validation rounds (15 m each from T+15m to T+2h), each reconciling; then every 6 h to T+7d (the status keeps the last 28)
    expect(status.rounds.map((r) => r.decision.action)).toEqual(Array(7).fill('continue'));
    expect(world.called('reconcileTables')).toBe(7 + 27);
    expect(status.reconciliations.length).toBe(28);
    expect(status.stageDurations.map((s) => s.stage)).toEqual(['plan', 'ttl-staging', 'replicating', 'preflight', 'go-no-go', 'switching', 'validating', 'window', 'decommission']);
    record(history, 'dnsCutover-full-cycle-decommissioned');
    const events = history.events?.length ?? 0;
    console.log(`dnsCutover full 7-day cycle: ${events} history events`);
    expect(events).toBeLessThan(2000);
  });

  it('go/no-go times out: the TTL goes back, replication is removed, the new database is writable again; nothing else changed', async () => {
    const world = new World();
    const failure = await run(world, { approvalTimeout: '2h' }, (handle) => failureOf(handle.result()));
    expect(failure.type).toBe('NotApproved');
    expect(failure.message).toMatch(/^cutover aborted before the switch: go\/no-go timed-out\. replication old → new removed; records back to www\.shop\.test A 192\.0\.2\.1 ttl 3600, verified at every authoritative server; nothing else was changed$/);
    expect(recordOf(world)).toEqual({ values: ['192.0.2.1'], ttl: 3600 });
    expect(world.replications.size).toBe(0);
    expect(world.db['10.0.0.1'].writable).toBe(true);
    expect(world.db['10.0.0.2'].writable).toBe(true);
    expect(world.called('forwardProxy')).toBe(0);
  });

  it('rolls back by itself when the decision tree sees over 10 % errors: DNS back, old writable, the rows written after T0 exported', async () => {
    const world = new World();
    let switched = false;
    world.sample = (url) => (url === NEW_URL && switched ? { requests: 100, errors: 25, p50Ms: 10, p95Ms: 20 } : { requests: 100, errors: 0, p50Ms: 10, p95Ms: 20 });
    const result = await run(world, {}, async (handle) => {
      await approve(handle, 'go-no-go');
      await waitForStatus(handle, (s) => s.t0 !== undefined, '1 second');
      world.writeOnNew(2);
      switched = true;
      return (await handle.result()) as DnsCutoverResult;
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.rollback?.by).toBe('the decision tree');
    expect(result.rollback?.reason).toMatch(/^validation round 1: error rate 25 % over 10 % \(25 of 100 requests failed\)$/);
    expect(result.rollback?.export?.rows).toBe(2);
    expect(recordOf(world)).toEqual({ values: ['192.0.2.1'], ttl: 3600 });
    expect(world.db['10.0.0.1']).toEqual({ writable: true, rows: [1, 2, 3, 4, 5] });
    expect(world.db['10.0.0.2'].writable).toBe(false);
    expect(world.replications.size).toBe(0);
    expect(world.forwarding.get('green')).toBe(OLD_URL);
    expect(world.forwarding.has('blue')).toBe(false);
  });

  it('a person asks for a rollback on day 3; it waits for the rollback gate, then loses no write', async () => {
    const world = new World();
    const result = await run(world, {}, async (handle) => {
      await approve(handle, 'go-no-go');
      const st = await waitForStatus(handle, (s) => s.t0 !== undefined, '1 second');
      world.writeOnNew(3);
      await env.sleep('3 days');
      await handle.signal(requestRollbackSignal, { by: 'carol', reason: 'payments fail on day 3' });
      await approve(handle, 'rollback', 'bob', '1 second');
      const result = (await handle.result()) as DnsCutoverResult;
      record(await handle.fetchHistory(), 'dnsCutover-rollback-day-3');
      expect(Date.parse((await handle.query(statusQuery)).steps.find((s) => s.step === 'records back')!.startedAt) - Date.parse(st.t0!)).toBeGreaterThan(3 * 86400_000);
      return result;
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.rollback).toMatchObject({ reason: 'payments fail on day 3', by: 'carol (approved by bob)', sequencesCopied: 1 });
    expect(result.rollback?.export?.rows).toBe(3);
    expect(world.db['10.0.0.1']).toEqual({ writable: true, rows: [1, 2, 3, 4, 5, 6] });
    expect(recordOf(world)).toEqual({ values: ['192.0.2.1'], ttl: 3600 });
    // by day 3 the TTL had gone back (T+24h) and the databases were reconciled every 6 h
    expect(world.dnsChanges.map((c) => `${c[0].values.join()} ${c[0].ttl}`)).toEqual(['192.0.2.1 60', '192.0.2.2 60', '192.0.2.2 3600', '192.0.2.1 3600']);
    expect(world.called('reconcileTables')).toBe(7 + 12); // T+6h … T+72h
    // no request is refused: a side's proxy forwards away before its database freezes, the old proxies
    // serve again before the new ones forward back (never two proxies forwarding to each other)
    const sideOf = (address: string) => (address === '10.0.0.1' ? 'blue' : 'green');
    const handovers = world.calls.flatMap(({ name, args }) => {
      const a = args as { host: { name: string }; endpoint: PgEndpoint; writable: boolean };
      if (name === 'forwardProxy') return [`${a.host.name} forwards`];
      if (name === 'unforwardProxy') return [`${a.host.name} serves`];
      if (name === 'setAppWrites') return [`${sideOf(a.endpoint.address)} db ${a.writable ? 'writable' : 'read-only'}`];
      return [];
    });
    expect(handovers).toEqual(['green db read-only', 'blue forwards', 'blue db read-only', 'green db writable', 'blue serves', 'green forwards', 'green db read-only', 'blue db writable']);
  });

  it('the window is extended by an approver (not by anyone else), and the decommission gate waits for its new end; rejected, the old side is kept', async () => {
    const world = new World();
    const { result, status } = await run(world, {}, async (handle) => {
      await approve(handle, 'go-no-go');
      const st = await waitForStatus(handle, (s) => s.t0 !== undefined, '1 second');
      await handle.signal(extendWindowSignal, { by: 'mallory', extendBy: '3d' });
      await handle.signal(extendWindowSignal, { by: 'bob', extendBy: '2d', reason: 'month-end batch' });
      const extended = await waitForStatus(handle, (s) => s.extensions.length === 2);
      expect(Date.parse(extended.windowEndsAt!) - Date.parse(st.t0!)).toBe(9 * 86400_000);
      await gatePending('decommission')(handle);
      const now = Date.parse((await handle.query(statusQuery)).steps.at(-1)!.startedAt);
      expect(now - Date.parse(st.t0!)).toBeGreaterThanOrEqual(9 * 86400_000);
      await handle.signal(rejectSignal, { gate: 'decommission', by: 'alice' });
      return { result: (await handle.result()) as DnsCutoverResult, status: await handle.query(cutoverStatusQuery) };
    });
    expect(status.extensions.map((e) => [e.by, e.accepted, e.why ?? ''])).toEqual([
      ['mallory', false, '"mallory" is not an approver (approvers: alice, bob)'],
      ['bob', true, ''],
    ]);
    expect(result.outcome).toBe('completed');
    expect(result.decommissioned).toBe(false);
    expect(result.notes.join('\n')).toMatch(/decommission rejected: blue is kept as it is/);
    // told: each gate, the window's opening, and one reminder an hour before its (extended) end
    const told = world.calls.filter((c) => c.name === 'notifyRunbookEvent').map((c) => (c.args as { event: { kind: string; gate?: string; deadline?: string } }).event);
    expect(told.map((e) => e.gate ?? e.kind)).toEqual(['go-no-go', 'window-open', 'window-closing', 'decommission']);
    expect(told[2].deadline).toBe(status.windowEndsAt);
    expect(told[1].deadline).toBe(status.windowEndsAt); // the extension came during the validation, before the window opened

    expect(world.stopped).toEqual([]);
    expect(world.replications.size).toBe(1);
  });

  it('a switch that cannot be verified at every authoritative server is rolled back at once and the run fails saying so', async () => {
    const world = new World();
    world.failFlip = true;
    const failure = await run(world, {}, async (handle) => {
      await approve(handle, 'go-no-go');
      return failureOf(handle.result());
    });
    expect(failure.type).toBe('CutoverRolledBack');
    expect(failure.message).toMatch(/^the switch failed: 10\.0\.0\.54:53 still serves serial 1; rolled back to blue: /);
    expect(recordOf(world)).toEqual({ values: ['192.0.2.1'], ttl: 3600 });
    expect(world.db['10.0.0.1'].writable).toBe(true);
    expect(world.replications.size).toBe(0);
    expect(world.forwarding.has('blue')).toBe(false);
  });

  it('an opening of the new database that committed but failed is undone too: the new side ends read-only, the old writable', async () => {
    const world = new World();
    world.failOpenNew = true;
    const failure = await run(world, {}, async (handle) => {
      await approve(handle, 'go-no-go');
      return failureOf(handle.result());
    });
    expect(failure.type).toBe('CutoverRolledBack');
    expect(world.db['10.0.0.2'].writable).toBe(false);
    expect(world.db['10.0.0.1'].writable).toBe(true);
    expect(world.replications.size).toBe(0);
    expect(world.forwarding.get('blue')).toBeUndefined();
  });

  it('a median latency over 2× the baseline asks a person; approved, the validation goes on', async () => {
    const world = new World();
    let switched = false;
    world.sample = (url) => ({ requests: 50, errors: 0, p50Ms: url === NEW_URL && switched ? 45 : 10, p95Ms: 40 });
    const status = await run(world, {}, async (handle) => {
      await approve(handle, 'go-no-go');
      await waitForStatus(handle, (s) => s.t0 !== undefined, '1 second');
      switched = true;
      await approve(handle, 'latency-1', 'bob', '10 minutes');
      switched = false;
      const s = await waitForStatus(handle, (x) => x.stage === 'window', '30 minutes');
      await handle.terminate('test done');
      return s;
    });
    expect(status.rounds[0].decision).toEqual({ action: 'ask', reason: 'median latency 45.0 ms is 4.5× the 10.0 ms measured before the switch (limit 2×)' });
    expect(status.rounds.slice(1).every((r) => r.decision.action === 'continue')).toBe(true);
  });

  it('a rehearsal moves the rehearsal record and databases, rolls back by itself and reports the starting state restored', async () => {
    const world = new World();
    world.db['10.0.0.1'] = { writable: true, rows: [1] }; // the rehearsal databases of the model share the addresses
    const result = await run(world, { rehearse: true, ttlLeadTime: '1h', validationDelay: '1m', validationWindow: '10m', validationRound: '5m', window: '1d' }, async (handle) => (await handle.result()) as DnsCutoverResult);
    expect(result.outcome).toBe('rolled-back');
    expect(result.rollback?.by).toBe('the rehearsal');
    expect(result.rehearsal).toEqual({ restored: true, problems: [] });
    expect(world.dnsChanges.every((c) => c[0].name === 'rehearsal.shop.test')).toBe(true);
    expect(recordOf(world, 'rehearsal.shop.test')).toEqual({ values: ['192.0.2.1'], ttl: 300 });
    expect(world.calls.filter((c) => c.name === 'setAppWrites').every((c) => (c.args as { endpoint: PgEndpoint }).endpoint.database === 'shop_rehearsal')).toBe(true);
    expect(result.stageDurations.map((s) => s.stage)).toEqual(['plan', 'ttl-staging', 'replicating', 'preflight', 'switching', 'validating', 'rolling-back']);
  });

  it('refuses before any change when the records do not point at the old side', async () => {
    const world = new World();
    world.records.set('www.shop.test A', { values: ['192.0.2.2'], ttl: 3600 });
    const failure = await run(world, {}, (handle) => failureOf(handle.result()));
    expect(failure.type).toBe('DnsNotOldSide');
    expect(failure.message).toBe("the records do not point at the old side; nothing was changed: www.shop.test A holds 192.0.2.2 — already the new side's (green); the old side blue has 192.0.2.1");
    expect(world.dnsChanges).toEqual([]);
    expect(world.called('setAppWrites')).toBe(0);
  });
});
