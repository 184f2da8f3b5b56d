// The DNS cutover's activities against the two bind9 servers of scripts/bind9.sh (primary
// 127.0.0.1:5353, secondary 127.0.0.2:5353, both named by the zone's NS records): the servers found
// from NS agree; a TTL lowered, then an address flipped, verified at BOTH; a retried apply sends
// nothing; and a third secondary started here (127.0.0.3:5353, never notified, long refresh) keeps
// an old serial, so awaitDnsRecords refuses to call the change done and names it.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createDnsActivities } from '../../activities/dns';
import { snapshotDisagreements, type DnsRecordSet, type Rfc2136ZoneSpec } from '../../common/cutover';
import { BIND9_ADDRESS, BIND9_SECONDARY_ADDRESS, BIND9_TSIG_KEY_FILE, BIND9_ZONE } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(90_000);

const dns = createDnsActivities();
const run = randomBytes(4).toString('hex');
const NAME = `cut-${run}.${BIND9_ZONE}`;
const zone: Rfc2136ZoneSpec = { type: 'rfc2136', zone: BIND9_ZONE, server: BIND9_ADDRESS, keyFile: BIND9_TSIG_KEY_FILE };
const record = (values: string[], ttl: number): DnsRecordSet => ({ name: NAME, type: 'A', values, ttl });
const FAST = { timeoutMs: 30_000, intervalMs: 300 };

const THIRD_IP = '127.0.0.3';
const THIRD = `${THIRD_IP}:5353`;
const [PRIMARY_IP, PRIMARY_PORT] = BIND9_ADDRESS.split(':');
let third: ChildProcess | undefined;
let addedThirdAddress = false;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-dns-auth-'));

function serialAt(server: string): number {
  const [host, port] = server.split(':');
  return Number(execFileSync('dig', [`@${host}`, '-p', port, '+norecurse', '+short', BIND9_ZONE, 'SOA']).toString().trim().split(/\s+/)[2]);
}

/** A third named: a secondary of the zone the primary never NOTIFYs, refreshing only once a day. */
async function startThirdSecondary(): Promise<void> {
  const onLo = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', 'lo']).toString();
  if (!onLo.includes(` ${THIRD_IP}/`)) {
    // named listens only on addresses interfaces have
    execFileSync('ip', ['addr', 'add', `${THIRD_IP}/32`, 'dev', 'lo']);
    addedThirdAddress = true;
  }
  const conf = path.join(tmp, 'named.conf');
  writeFileSync(
    conf,
    `options {
  directory "${tmp}";
  pid-file none;
  lock-file "${tmp}/named.lock";
  session-keyfile "${tmp}/session.key";
  managed-keys-directory "${tmp}";
  listen-on port 5353 { ${THIRD_IP}; };
  listen-on-v6 { none; };
  recursion no;
  notify no;
  transfer-source ${THIRD_IP};
  query-source address ${THIRD_IP};
  dnssec-validation no;
};
controls { };
zone "${BIND9_ZONE}" {
  type secondary;
  primaries { ${PRIMARY_IP} port ${PRIMARY_PORT}; };
  file "${tmp}/zone.db";
  masterfile-format text;
  min-refresh-time 86400;
  max-refresh-time 86400;
};
`,
  );
  // a third named left by an interrupted run of this file would still answer on the same address
  // (pkill exits 1 when there is none)
  if (spawnSync('pkill', ['-f', `^/usr/sbin/named .* -c ${os.tmpdir()}/runbook-it-dns-auth-`]).status === 0) await new Promise((r) => setTimeout(r, 1000));
  third = spawn('/usr/sbin/named', ['-g', '-4', '-n', '1', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  third.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-4000)));
  for (let i = 0; i < 100; i++) {
    try {
      if (serialAt(THIRD) > 0) return;
    } catch {
      // not up or not transferred yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the third named does not serve ${BIND9_ZONE} on ${THIRD}:\n${log}`);
}

afterAll(async () => {
  await dns.applyDnsRecords({ zone, records: [record([], 60)] }).catch(() => undefined);
  if (third && third.exitCode === null) {
    third.kill('SIGTERM');
    await new Promise((r) => third!.once('exit', r));
  }
  if (addedThirdAddress) execFileSync('ip', ['addr', 'del', `${THIRD_IP}/32`, 'dev', 'lo']);
  rmSync(tmp, { recursive: true, force: true });
});

describe('readAuthoritative', () => {
  it('finds both servers from the NS records, and they agree', async () => {
    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.1'], 300)] })).toEqual({ changed: true });
    await dns.awaitDnsRecords({ zone, records: [record(['10.0.0.1'], 300)], ...FAST });
    const snap = await dns.readAuthoritative({ zone, records: [{ name: NAME, type: 'A' }] });
    expect(snap.servers.map((s) => s.server)).toEqual([BIND9_ADDRESS, BIND9_SECONDARY_ADDRESS]);
    expect(snapshotDisagreements(snap)).toEqual([]);
    for (const s of snap.servers) expect(s.records).toEqual([{ name: NAME, type: 'A', values: ['10.0.0.1'], ttl: 300 }]);
  });

  it('names a server that does not answer (retryable)', async () => {
    const err = (await rejectionOf(dns.readAuthoritative({ zone: { ...zone, nameServers: [BIND9_ADDRESS, '127.0.0.1:5399'] }, records: [{ name: NAME, type: 'A' }] }))) as ApplicationFailure;
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain('127.0.0.1:5399');
  });
});

describe('applyDnsRecords and awaitDnsRecords', () => {
  it('lowers the TTL to 60 (same address) and sees it at both servers', async () => {
    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.1'], 60)] })).toEqual({ changed: true });
    const snap = await dns.awaitDnsRecords({ zone, records: [record(['10.0.0.1'], 60)], ...FAST });
    expect(snap.servers).toHaveLength(2);
    for (const s of snap.servers) expect(s.records[0]).toMatchObject({ values: ['10.0.0.1'], ttl: 60 });
    expect(new Set(snap.servers.map((s) => s.serial)).size).toBe(1);
  });

  it('flips the address and verifies it at both servers', async () => {
    await dns.applyDnsRecords({ zone, records: [record(['10.0.0.2'], 60)] });
    const snap = await dns.awaitDnsRecords({ zone, records: [record(['10.0.0.2'], 60)], ...FAST });
    for (const s of snap.servers) expect(s.records[0]).toMatchObject({ values: ['10.0.0.2'], ttl: 60 });
  });

  it('a retried apply sends no change (the serial stays)', async () => {
    const before = serialAt(BIND9_ADDRESS);
    expect(await dns.applyDnsRecords({ zone, records: [record(['10.0.0.2'], 60)] })).toEqual({ changed: false });
    expect(serialAt(BIND9_ADDRESS)).toBe(before);
  });

  it('refuses while a secondary serves an old serial, naming it', async () => {
    await startThirdSecondary();
    const servers = [BIND9_ADDRESS, BIND9_SECONDARY_ADDRESS, THIRD];
    const withThird: Rfc2136ZoneSpec = { ...zone, nameServers: servers };
    await dns.awaitDnsRecords({ zone: withThird, records: [record(['10.0.0.2'], 60)], ...FAST });
    const oldSerial = serialAt(THIRD);

    await dns.applyDnsRecords({ zone: withThird, records: [record(['10.0.0.3'], 60)] });
    // the zone's own two servers have the change (a transfer takes a while on a busy machine)
    await dns.awaitDnsRecords({ zone, records: [record(['10.0.0.3'], 60)], ...FAST });
    const err = (await rejectionOf(dns.awaitDnsRecords({ zone: withThird, records: [record(['10.0.0.3'], 60)], timeoutMs: 4000, intervalMs: 300 }))) as ApplicationFailure;
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.type).toBe('DnsNotConverged');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain(`${THIRD} serves serial ${oldSerial}`);
    expect(err.message).toContain(`${THIRD} answers ${NAME} A 10.0.0.2 ttl 60, wanted 10.0.0.3 ttl 60`);
    // the other two are not lagging
    expect(err.message).not.toContain(`${BIND9_SECONDARY_ADDRESS} answers`);
  });
});
