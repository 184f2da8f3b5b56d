// The RFC 2136 DNS provider against the real bind9 of scripts/bind9.sh (zone runbooks.test on
// 127.0.0.1:5353, updates signed with the TSIG key in BIND9_TSIG_KEY_FILE): TXT challenge records
// set, looked up, made visible and removed, idempotent changes, A/CNAME records, and the failures
// (a key the server refuses, an unreadable key file, no server) with the key never in an error.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Rfc2136Provider, openDnsProvider, type Rfc2136ProviderSpec } from '../../activities/dns/rfc2136';
import { BIND9_ADDRESS, BIND9_TSIG_KEY_FILE, BIND9_ZONE } from '../helpers/paths';
import { rejectionOf } from '../helpers/rejection';

jest.setTimeout(60_000);

const run = randomBytes(4).toString('hex');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runbook-it-dns-'));
const spec: Rfc2136ProviderSpec = { type: 'rfc2136', server: BIND9_ADDRESS, zone: BIND9_ZONE, keyFile: BIND9_TSIG_KEY_FILE, defaultTtl: 30 };
const dns = openDnsProvider(spec);

const APP_CHALLENGE = `_acme-challenge.app.${BIND9_ZONE}`;
const WILD_CHALLENGE = `_acme-challenge.wild.${BIND9_ZONE}`;
/** A name of this run only, for the record kinds other tests do not use. */
const own = (label: string) => `${label}-${run}.${BIND9_ZONE}`;
/** An ACME-like TXT value (base64url of a sha256). */
const token = () => randomBytes(32).toString('base64url');

/** The secret of a tsig-keygen key file. */
function secretOf(keyFile: string): string {
  const m = /secret "([^"]+)"/.exec(readFileSync(keyFile, 'utf8'));
  if (!m) throw new Error(`no secret in ${keyFile}`);
  return m[1];
}
const realSecret = secretOf(BIND9_TSIG_KEY_FILE);

/** Every error message any test saw, checked for key material at the end. */
const messages: string[] = [];
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await rejectionOf(p);
  messages.push(err.message, String(err.stack ?? ''), JSON.stringify((err as ApplicationFailure).details ?? null));
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** What dig (not node) sees at the server: one line per record. */
function dig(name: string, type: string): string[] {
  const [host, port] = BIND9_ADDRESS.split(':');
  const out = execFileSync('dig', [`@${host}`, '-p', port, '+short', '+norecurse', name, type]).toString().trim();
  return out === '' ? [] : out.split('\n');
}

afterAll(async () => {
  // leave the shared challenge names as the zone file has them
  for (const name of [APP_CHALLENGE, WILD_CHALLENGE]) await dns.removeTxt(name).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
});

describe('TXT challenge records', () => {
  it('sets, looks up, waits for and removes a TXT record', async () => {
    const value = token();
    await dns.setTxt(APP_CHALLENGE, [value]);
    const seen = await dns.waitForRecord(APP_CHALLENGE, 'TXT', [value], 10_000);
    expect(seen.values).toEqual([value]);
    expect(await dns.lookup(APP_CHALLENGE, 'TXT')).toEqual([value]);
    expect(dig(APP_CHALLENGE, 'TXT')).toEqual([`"${value}"`]);

    await dns.removeTxt(APP_CHALLENGE, value);
    await dns.waitForRecord(APP_CHALLENGE, 'TXT', [], 10_000, { match: 'exact' });
    expect(await dns.lookup(APP_CHALLENGE, 'TXT')).toEqual([]);
    // the name's own records are untouched
    expect(await dns.lookup(`app.${BIND9_ZONE}`, 'A')).toEqual(['127.0.0.1']);
  });

  it("sets a wildcard's challenge: two values at once (wildcard + apex) on _acme-challenge.wild", async () => {
    // *.wild.runbooks.test and wild.runbooks.test both validate at _acme-challenge.wild.runbooks.test
    const [forWildcard, forApex] = [token(), token()];
    await dns.setTxt(WILD_CHALLENGE, [forWildcard, forApex], 60);
    await dns.waitForRecord(WILD_CHALLENGE, 'TXT', [forWildcard, forApex], 10_000, { match: 'exact' });
    expect((await dns.lookup(WILD_CHALLENGE, 'TXT')).sort()).toEqual([forWildcard, forApex].sort());
    // the wildcard A record still answers for other names below wild.
    expect(await dns.lookup(`x-${run}.wild.${BIND9_ZONE}`, 'A')).toEqual(['127.0.0.1']);

    // one removed, the other kept
    await dns.removeTxt(WILD_CHALLENGE, forWildcard);
    expect(await dns.lookup(WILD_CHALLENGE, 'TXT')).toEqual([forApex]);
    await dns.removeTxt(WILD_CHALLENGE);
    expect(await dns.lookup(WILD_CHALLENGE, 'TXT')).toEqual([]);
  });

  it('is idempotent: the same TXT set twice is one record, removing an absent one succeeds', async () => {
    const value = token();
    await dns.setTxt(APP_CHALLENGE, [value]);
    await dns.setTxt(APP_CHALLENGE, [value]);
    expect(await dns.lookup(APP_CHALLENGE, 'TXT')).toEqual([value]);
    expect(dig(APP_CHALLENGE, 'TXT')).toHaveLength(1);

    // addTxt keeps the others (concurrent orders on one name) and adds a value once
    const other = token();
    await dns.addTxt(APP_CHALLENGE, other);
    await dns.addTxt(APP_CHALLENGE, other);
    expect((await dns.lookup(APP_CHALLENGE, 'TXT')).sort()).toEqual([value, other].sort());

    // setTxt replaces the whole set
    await dns.setTxt(APP_CHALLENGE, [other]);
    expect(await dns.lookup(APP_CHALLENGE, 'TXT')).toEqual([other]);

    await dns.removeTxt(APP_CHALLENGE, other);
    await dns.removeTxt(APP_CHALLENGE, other);
    await dns.removeTxt(APP_CHALLENGE);
    await dns.removeTxt(own('never-set'));
    expect(await dns.lookup(APP_CHALLENGE, 'TXT')).toEqual([]);
  });

  it('keeps TXT values exactly: quotes, backslashes, semicolons, UTF-8, long values', async () => {
    const name = own('_txt');
    const values = ['say "hi"; \\o/ $ORIGIN (x) @', 'k'.repeat(300), '', 'café ✓', `${'é'.repeat(200)}`];
    await dns.setTxt(name, values);
    expect((await dns.lookup(name, 'TXT')).sort()).toEqual([...values].sort());
    await dns.removeTxt(name);
  });

  it('times out retryably when a value does not show up', async () => {
    const err = await failureOf(dns.waitForRecord(APP_CHALLENGE, 'TXT', ['never-there'], 1_200, { intervalMs: 300 }));
    expect(err.type).toBe('DnsRecordNotVisible');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain(`TXT ${APP_CHALLENGE}`);
    expect(err.message).toContain(BIND9_ADDRESS);
  });
});

describe('other records (the DNS cutover)', () => {
  it('sets, switches and removes A records and a CNAME', async () => {
    const name = own('cutover');
    await dns.setRecord(name, 'A', ['10.0.0.1', '10.0.0.2'], 60);
    expect((await dns.lookup(name, 'A')).sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    await dns.setRecord(name, 'A', ['10.0.0.3']);
    await dns.waitForRecord(name, 'A', ['10.0.0.3'], 5_000, { match: 'exact', servers: [BIND9_ADDRESS] });
    await dns.removeRecord(name, 'A');
    expect(await dns.lookup(name, 'A')).toEqual([]);

    const alias = own('alias');
    await dns.setRecord(alias, 'CNAME', [`app.${BIND9_ZONE}`]);
    expect(await dns.lookup(alias, 'CNAME')).toEqual([`app.${BIND9_ZONE}`]);
    await dns.removeRecord(alias, 'CNAME');
    expect(await dns.lookup(alias, 'CNAME')).toEqual([]);
  });

  it('refuses invalid input before sending anything', async () => {
    for (const p of [
      dns.setTxt(`x.example.com`, ['v']),
      dns.setTxt(`${APP_CHALLENGE}\nupdate add evil.${BIND9_ZONE}. 60 A 6.6.6.6`, ['v']),
      dns.setTxt(APP_CHALLENGE, ['v\nsend']),
      dns.setRecord(own('bad'), 'A', ['not-an-ip']),
      dns.lookup('x.example.com', 'A'),
    ]) {
      const err = await failureOf(p);
      expect(err.type).toBe('DnsInvalidInput');
      expect(err.nonRetryable).toBe(true);
    }
    expect(dig(`evil.${BIND9_ZONE}`, 'A')).toEqual([]);
  });
});

describe('failures', () => {
  it('a key the server does not accept is refused, non-retryably, without the key in the error', async () => {
    // same key name, another secret: BADSIG
    const wrongSecretFile = path.join(tmp, 'wrong-secret.key');
    writeFileSync(wrongSecretFile, execFileSync('tsig-keygen', ['-a', 'hmac-sha256', 'runbook-acme']), { mode: 0o600 });
    const err = await failureOf(new Rfc2136Provider({ ...spec, keyFile: wrongSecretFile }).setTxt(APP_CHALLENGE, [token()]));
    expect(err.type).toBe('DnsUpdateRefused');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('BADSIG');
    expect(err.message).toContain(wrongSecretFile);
    expect(err.message).not.toContain(secretOf(wrongSecretFile));

    // a key name the server does not know: BADKEY
    const unknownKeyFile = path.join(tmp, 'unknown.key');
    writeFileSync(unknownKeyFile, execFileSync('tsig-keygen', ['-a', 'hmac-sha256', `stranger-${run}`]), { mode: 0o600 });
    const err2 = await failureOf(new Rfc2136Provider({ ...spec, keyFile: unknownKeyFile }).removeTxt(APP_CHALLENGE));
    expect(err2.type).toBe('DnsUpdateRefused');
    expect(err2.nonRetryable).toBe(true);
    expect(err2.message).toContain('BADKEY');
    expect(err2.message).not.toContain(secretOf(unknownKeyFile));

    expect(await dns.lookup(APP_CHALLENGE, 'TXT')).toEqual([]);
  });

  it('a key file nsupdate cannot parse or read: non-retryable, its content not shown', async () => {
    // nsupdate's parse errors quote the file; a secret-looking token must not reach the error
    const leaky = `leaky-${randomBytes(24).toString('hex')}`;
    const garbled = path.join(tmp, 'garbled.key');
    writeFileSync(garbled, `${leaky}\nsecret "${randomBytes(32).toString('base64')}";\n`, { mode: 0o600 });
    const err = await failureOf(new Rfc2136Provider({ ...spec, keyFile: garbled }).setTxt(APP_CHALLENGE, [token()]));
    expect(err.type).toBe('DnsKeyFileInvalid');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).not.toContain(leaky);

    const missing = await failureOf(new Rfc2136Provider({ ...spec, keyFile: path.join(tmp, 'missing.key') }).setTxt(APP_CHALLENGE, [token()]));
    expect(missing.type).toBe('DnsKeyFileUnreadable');
    expect(missing.nonRetryable).toBe(true);
    expect(missing.message).toContain('ENOENT');
  });

  it('no server there: retryable', async () => {
    const err = await failureOf(new Rfc2136Provider({ ...spec, server: '127.0.0.1:5354', timeoutSeconds: 2 }).setTxt(APP_CHALLENGE, [token()]));
    expect(err.type).toBe('DnsServerUnreachable');
    expect(err.nonRetryable).toBe(false);
  });

  it('no error message carried key material', () => {
    expect(messages.length).toBeGreaterThan(10);
    for (const m of messages) expect(m).not.toContain(realSecret);
  });
});
