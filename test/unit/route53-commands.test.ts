// Route 53's change batch and the reading of its RRsets (common/commands/route53.ts).
import { DnsInputError } from '../../common/commands/dns';
import {
  decodeRoute53Name,
  hostedZoneId,
  parseRoute53TxtValue,
  recordSetFromRoute53,
  route53ChangeBatch,
  route53TxtValue,
  soaSerialFromRoute53,
  type Route53RecordSet,
} from '../../common/commands/route53';

const ZONE = 'example.test';
const current: Route53RecordSet[] = [
  { Name: 'example.test.', Type: 'SOA', TTL: 900, ResourceRecords: [{ Value: 'ns-2048.awsdns-64.com. hostmaster.example.test. 7 7200 900 1209600 86400' }] },
  { Name: 'app.example.test.', Type: 'A', TTL: 300, ResourceRecords: [{ Value: '10.0.0.2' }, { Value: '10.0.0.1' }] },
  { Name: 'www.example.test.', Type: 'CNAME', TTL: 60, ResourceRecords: [{ Value: 'App.example.test.' }] },
  { Name: '\\052.wild.example.test.', Type: 'A', TTL: 60, ResourceRecords: [{ Value: '10.0.0.9' }] },
  { Name: 'alias.example.test.', Type: 'A', AliasTarget: { DNSName: 'x' } },
];

describe('reading RRsets', () => {
  it('normalizes names, values and sorts', () => {
    expect(decodeRoute53Name('\\052.Wild.example.test.')).toBe('*.wild.example.test');
    expect(recordSetFromRoute53(current, 'app.example.test', 'A')).toEqual({ name: 'app.example.test', type: 'A', values: ['10.0.0.1', '10.0.0.2'], ttl: 300 });
    expect(recordSetFromRoute53(current, 'www.example.test.', 'CNAME')).toEqual({ name: 'www.example.test', type: 'CNAME', values: ['app.example.test'], ttl: 60 });
    expect(recordSetFromRoute53(current, '*.wild.example.test', 'A').values).toEqual(['10.0.0.9']);
    expect(recordSetFromRoute53(current, 'none.example.test', 'A')).toEqual({ name: 'none.example.test', type: 'A', values: [], ttl: 0 });
    expect(soaSerialFromRoute53(current, ZONE)).toBe(7);
    // moto's server wraps the value in a Python repr
    expect(soaSerialFromRoute53([{ Name: 'example.test.', Type: 'SOA', TTL: 900, ResourceRecords: [{ Value: "{'Value': 'ns-2048.awsdns-64.com. hostmaster.example.com. 1 7200 900 1209600 86400'}" }] }], ZONE)).toBe(1);
    expect(soaSerialFromRoute53([{ Name: 'example.test.', Type: 'SOA', ResourceRecords: [{ Value: 'garbage' }] }], ZONE)).toBeUndefined();
  });
  it('refuses alias records: not ours to change', () => {
    expect(() => recordSetFromRoute53(current, 'alias.example.test', 'A')).toThrow(/alias or routing-policy/);
  });
  it('quotes and unquotes TXT values', () => {
    expect(route53TxtValue('a "b" \\ c')).toBe('"a \\"b\\" \\\\ c"');
    expect(route53TxtValue('é')).toBe('"\\303\\251"');
    for (const v of ['plain', 'a "b" \\ c', 'é', 'x'.repeat(300)]) expect(parseRoute53TxtValue(route53TxtValue(v))).toBe(v);
    expect(route53TxtValue('x'.repeat(300)).split('" "')).toHaveLength(2);
  });
});

describe('route53ChangeBatch', () => {
  it('sends nothing when every RRset is already exact', () => {
    expect(route53ChangeBatch(ZONE, [{ name: 'app.example.test', type: 'A', values: ['10.0.0.1', '10.0.0.2'], ttl: 300 }, { name: 'www.example.test', type: 'CNAME', values: ['app.example.test'], ttl: 60 }], current)).toEqual([]);
  });
  it('upserts a changed TTL or address, deletes exactly what is there, deletes first', () => {
    const batch = route53ChangeBatch(
      ZONE,
      [
        { name: 'app.example.test', type: 'A', values: ['10.0.0.1', '10.0.0.2'], ttl: 60 },
        { name: 'www.example.test', type: 'CNAME', values: [], ttl: 60 },
        { name: 'www.example.test', type: 'A', values: ['10.0.0.5'], ttl: 60 },
        { name: 'gone.example.test', type: 'A', values: [], ttl: 60 },
      ],
      current,
    );
    expect(batch).toEqual([
      { Action: 'DELETE', ResourceRecordSet: current[2] },
      { Action: 'UPSERT', ResourceRecordSet: { Name: 'app.example.test.', Type: 'A', TTL: 60, ResourceRecords: [{ Value: '10.0.0.1' }, { Value: '10.0.0.2' }] } },
      { Action: 'UPSERT', ResourceRecordSet: { Name: 'www.example.test.', Type: 'A', TTL: 60, ResourceRecords: [{ Value: '10.0.0.5' }] } },
    ]);
  });
  it('writes CNAME targets absolute', () => {
    expect(route53ChangeBatch(ZONE, [{ name: 'n.example.test', type: 'CNAME', values: ['other.test'], ttl: 60 }], [])[0].ResourceRecordSet.ResourceRecords).toEqual([{ Value: 'other.test.' }]);
  });
  it('refuses names outside the zone, duplicates, bad values and TTLs', () => {
    const bad = (w: Parameters<typeof route53ChangeBatch>[1]) => () => route53ChangeBatch(ZONE, w, current);
    expect(bad([{ name: 'app.other.test', type: 'A', values: ['10.0.0.1'], ttl: 60 }])).toThrow(DnsInputError);
    expect(bad([{ name: 'app.example.test', type: 'A', values: ['10.0.0.1'], ttl: 60 }, { name: 'APP.example.test.', type: 'A', values: [], ttl: 60 }])).toThrow(/given twice/);
    expect(bad([{ name: 'app.example.test', type: 'A', values: ['10.0.0.256'], ttl: 60 }])).toThrow(DnsInputError);
    expect(bad([{ name: 'app.example.test', type: 'A', values: ['10.0.0.1'], ttl: 1.5 }])).toThrow(DnsInputError);
  });
});

describe('hostedZoneId', () => {
  it('takes the bare id or the API path, nothing else', () => {
    expect(hostedZoneId('Z0123ABC')).toBe('Z0123ABC');
    expect(hostedZoneId('/hostedzone/Z0123ABC')).toBe('Z0123ABC');
    expect(() => hostedZoneId('../x')).toThrow(DnsInputError);
  });
});
