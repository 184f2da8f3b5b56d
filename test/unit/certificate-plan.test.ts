// The certificate runbook's plan and the inventory's proxy.tls section (pure).
import { buildCertificatePlan, certificateTargets, LETS_ENCRYPT_DIRECTORY, LETS_ENCRYPT_STAGING_DIRECTORY } from '../../common/certificate-plan';
import { parseInventory } from '../../common/inventory';

const yaml = (tls: string, extra = 'httpsPort: 8443') => `hosts:
  web1: { address: 10.0.0.5, docker: { socketPath: /run/docker.sock } }
apps:
  shop:
    image: reg:5000/shop
    port: 8080
    healthCheck: { path: /health }
    proxyImage: reg:5000/nginx:1
    environments:
      production:
        hosts: [web1]
        proxy:
          hostPort: 80
          ${extra}
          domain: shop.example.com
          tls: ${tls}
      staging:
        hosts: [web1]
        proxy: { hostPort: 8081 }
`;

describe('certificate plan', () => {
  it("defaults: the proxy domain, HTTP-01, Let's Encrypt, renew at a third", () => {
    const inv = parseInventory(yaml('{}'));
    const plan = buildCertificatePlan(inv, { app: 'shop', env: 'production' });
    expect(plan).toMatchObject({
      id: 'shop-production',
      domains: ['shop.example.com'],
      mode: 'acme',
      challenge: 'http-01',
      acme: { directoryUrl: LETS_ENCRYPT_DIRECTORY },
      upstream: 'shop_production',
      renewFraction: 1 / 3,
      proxies: [{ container: 'shop-production-proxy', httpUrl: 'http://10.0.0.5:80', httpsAddress: '10.0.0.5', httpsPort: 8443 }],
    });
    expect(buildCertificatePlan(inv, { app: 'shop', env: 'production', staging: true }).acme.directoryUrl).toBe(LETS_ENCRYPT_STAGING_DIRECTORY);
    expect(buildCertificatePlan(inv, { app: 'shop', env: 'production', selfSigned: true }).mode).toBe('self-signed');
    expect(certificateTargets(inv)).toEqual([{ app: 'shop', env: 'production' }]);
  });

  it('a wildcard needs dns-01 and a DNS provider', () => {
    expect(() => parseInventory(yaml('{ domains: ["*.example.com"] }'))).toThrow(/can only be validated with dns-01/);
    expect(() => parseInventory(yaml('{ domains: ["*.example.com"], challenge: dns-01 }'))).toThrow(/tls.dns: is required/);
    const inv = parseInventory(yaml('{ domains: [example.com, "*.example.com"], challenge: dns-01, dns: { type: rfc2136, server: "ns1.example.com:53", zone: example.com, keyFile: /etc/runbook/tsig.key } }'));
    expect(buildCertificatePlan(inv, { app: 'shop', env: 'production' })).toMatchObject({ challenge: 'dns-01', dns: { zone: 'example.com', keyFile: '/etc/runbook/tsig.key' } });
  });

  it('refuses what cannot work, before any side effect', () => {
    expect(() => parseInventory(yaml('{}', ''))).toThrow(/proxy.httpsPort: is required with proxy.tls/);
    const inv = parseInventory(yaml('{}'));
    expect(() => buildCertificatePlan(inv, { app: 'shop', env: 'staging' })).toThrow(/no proxy.tls/);
    expect(() => buildCertificatePlan(inv, { app: 'shop', env: 'production', domains: ['bad_name.example.com'] })).toThrow(/domains:/);
    expect(() => buildCertificatePlan(inv, { app: 'shop', env: 'production', domains: ['*.example.com'] })).toThrow(/dns-01/);
  });
});
