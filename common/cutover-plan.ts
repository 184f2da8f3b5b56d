// The DNS cutover's plan (pure): the inventory's app/cutover settings and the two environments'
// cutover sides, resolved into what the workflow acts on. Recorded in history by the plan activity.
import { normalizeDnsName } from './commands/dns';
import type { DnsCutoverInput } from './inputs';
import type { CutoverDatabaseConfig, Inventory } from './inventory';
import type { CutoverPlan, CutoverSide, DnsRecordSet, DnsZoneSpec, PgEndpoint } from './cutover';
import { proxyContainerName } from './naming';
import { backupStorageSpec, findTarget, hostSpec, PlanError } from './plan';

/** The TTL the records carry before the cutover when the zone cannot be asked (the plan's guess; the workflow reads the real one). */
const UNKNOWN_TTL = 0;

export function buildCutoverPlan(inventory: Inventory, input: DnsCutoverInput): CutoverPlan {
  const { app } = findTarget(inventory, { app: input.app, env: input.from });
  findTarget(inventory, { app: input.app, env: input.to });
  const settings = app.cutover;
  if (!settings) throw new PlanError(`app "${input.app}" has no cutover section in the inventory (apps.${input.app}.cutover: zone and records)`);
  const rehearsal = input.rehearse === true;
  const from = side(inventory, input.app, input.from, rehearsal);
  const to = side(inventory, input.app, input.to, rehearsal);
  if ((from.database === undefined) !== (to.database === undefined)) {
    const missing = from.database ? input.to : input.from;
    throw new PlanError(`apps.${input.app}.environments.${missing}.cutover.${rehearsal ? 'rehearsalDatabase' : 'database'}: is required when the other side names one (the data moves from one database to the other)`);
  }
  const zone = zoneSpec(settings.zone);
  let names: string[];
  if (rehearsal) {
    if (!settings.rehearsalRecord) throw new PlanError(`apps.${input.app}.cutover.rehearsalRecord: is required for a rehearsal (a record of its own, never a live one)`);
    if (input.records) throw new PlanError('records: a rehearsal moves the rehearsal record only');
    names = [settings.rehearsalRecord];
  } else {
    names = input.records ?? settings.records;
    const unknown = names.filter((n) => !settings.records.includes(n.replace(/\.$/, '')));
    if (unknown.length) throw new PlanError(`records: ${unknown.join(', ')} not in apps.${input.app}.cutover.records (${settings.records.join(', ')})`);
  }
  const records: DnsRecordSet[] = [];
  for (const raw of names) {
    const name = normalizeDnsName(raw, 'record', false);
    const zoneName = normalizeDnsName(zone.zone, 'zone', false);
    if (name !== zoneName && !name.endsWith(`.${zoneName}`)) throw new PlanError(`record ${name} is not in the zone ${zoneName}`);
    for (const type of ['A', 'AAAA'] as const) {
      const values = from.addresses.filter((a) => (type === 'A') === a.includes('.'));
      const toValues = to.addresses.filter((a) => (type === 'A') === a.includes('.'));
      if (values.length || toValues.length) records.push({ name, type, values, ttl: UNKNOWN_TTL });
    }
  }
  const env = app.environments[input.to];
  return {
    app: input.app,
    from,
    to,
    zone,
    records,
    hostHeader: records[0].name,
    healthPath: app.healthCheck.path,
    timeSeries: settings.timeSeries.map((t) => ({ ...t })),
    approval: { approvers: [...env.approvers], minApprovals: env.minApprovals },
    ...(app.backup ? { storage: backupStorageSpec(inventory, app.backup) } : {}),
    backups: app.backup !== undefined && !rehearsal,
    ...(app.backup?.notify ? { notify: { webhookUrlFile: app.backup.notify.webhookUrlFile } } : {}),
    rehearsal,
  };
}

function side(inventory: Inventory, appName: string, envName: string, rehearsal: boolean): CutoverSide {
  const { env } = findTarget(inventory, { app: appName, env: envName });
  const cut = env.cutover;
  if (!cut) throw new PlanError(`apps.${appName}.environments.${envName}.cutover: is required (the addresses its records hold, and its database)`);
  const hosts = env.hosts.map((h) => hostSpec(inventory, h));
  const proxyAddress = env.proxy.bindAddress === '0.0.0.0' ? hosts[0].address : (hosts[0].bindAddress ?? env.proxy.bindAddress);
  const db = rehearsal ? cut.rehearsalDatabase : cut.database;
  const url = (cut.url ?? `http://${proxyAddress}:${env.proxy.hostPort}`).replace(/\/$/, '');
  if (rehearsal && cut.database && !cut.rehearsalDatabase) throw new PlanError(`apps.${appName}.environments.${envName}.cutover.rehearsalDatabase: is required for a rehearsal (a scratch database, never the live one)`);
  return {
    env: envName,
    addresses: [...cut.addresses],
    url,
    forwardUrl: (cut.forwardUrl ?? url).replace(/\/$/, ''),
    proxies: hosts.map((host) => ({ host, container: proxyContainerName(appName, envName) })),
    ...(db ? { database: endpoint(envName, db) } : {}),
  };
}

function endpoint(label: string, db: CutoverDatabaseConfig): PgEndpoint {
  return {
    label,
    address: db.address,
    port: db.port,
    database: db.database,
    user: db.user,
    ...(db.passwordFile !== undefined ? { passwordFile: db.passwordFile } : {}),
    ...(db.appRole !== undefined ? { appRole: db.appRole } : {}),
    ...(db.peerAddress !== undefined ? { peerAddress: db.peerAddress } : {}),
    ...(db.peerPort !== undefined ? { peerPort: db.peerPort } : {}),
  };
}

function zoneSpec(z: NonNullable<Inventory['apps'][string]['cutover']>['zone']): DnsZoneSpec {
  if (z.type === 'rfc2136') return { type: 'rfc2136', zone: z.zone, server: z.server, keyFile: z.keyFile, ...(z.nameServers ? { nameServers: [...z.nameServers] } : {}) };
  return {
    type: 'route53',
    zone: z.zone,
    hostedZoneId: z.hostedZoneId,
    region: z.region,
    ...(z.endpoint !== undefined ? { endpoint: z.endpoint } : {}),
    ...(z.accessKeyIdFile !== undefined ? { accessKeyIdFile: z.accessKeyIdFile } : {}),
    ...(z.secretAccessKeyFile !== undefined ? { secretAccessKeyFile: z.secretAccessKeyFile } : {}),
  };
}
