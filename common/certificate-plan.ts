// The certificate runbook's plan (runbook 2), pure. Apart from common/plan.ts because it uses
// common/certificates.ts (node:crypto), which workflow code must not import.
import { validateDomains } from './certificates';
import { proxyUpstreamName } from './commands/nginx';
import type { Inventory } from './inventory';
import { prefix, proxyContainerName } from './naming';
import { findTarget, hostSpec, PlanError } from './plan';
import type { CertificatePlan, IssueCertificateInput, RunbookTarget } from './types';

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING_DIRECTORY = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** Every app/env whose proxy serves HTTPS with a managed certificate. */
export function certificateTargets(inventory: Inventory): RunbookTarget[] {
  return Object.entries(inventory.apps).flatMap(([app, a]) => Object.entries(a.environments).filter(([, e]) => e.proxy.tls).map(([env]) => ({ app, env })));
}

/** The certificate runbook's plan for an app/env (runbook 2): names, CA, challenge, each host's proxy. */
export function buildCertificatePlan(inventory: Inventory, input: IssueCertificateInput): CertificatePlan {
  const { env } = findTarget(inventory, input);
  const tls = env.proxy.tls;
  if (!tls || env.proxy.httpsPort === undefined) throw new PlanError(`${input.app}/${input.env} has no proxy.tls (and proxy.httpsPort) in the inventory: nothing to issue a certificate for`);
  const domains = input.domains ?? tls.domains ?? (env.proxy.domain ? [env.proxy.domain] : []);
  const problems = validateDomains(domains);
  if (problems.length) throw new PlanError(`domains: ${problems.join('; ')}`);
  const selfSigned = input.selfSigned ?? tls.selfSigned;
  const challenge = domains.some((d) => d.startsWith('*.')) ? 'dns-01' : tls.challenge;
  if (!selfSigned && challenge === 'dns-01' && !tls.dns) throw new PlanError(`${domains.filter((d) => d.startsWith('*.')).join(', ') || 'these names'} need the dns-01 challenge, and proxy.tls.dns is not set`);
  const httpsPort = env.proxy.httpsPort;
  return {
    app: input.app,
    env: input.env,
    id: prefix(input.app, input.env),
    domains,
    mode: selfSigned ? 'self-signed' : 'acme',
    challenge,
    acme: {
      directoryUrl: input.staging ? (tls.acme.stagingDirectoryUrl ?? LETS_ENCRYPT_STAGING_DIRECTORY) : (tls.acme.directoryUrl ?? LETS_ENCRYPT_DIRECTORY),
      ...(tls.acme.email ? { email: tls.acme.email } : {}),
      ...(tls.acme.caFile ? { caFile: tls.acme.caFile } : {}),
      ...(tls.acme.accountKeyFile ? { accountKeyFile: tls.acme.accountKeyFile } : {}),
    },
    ...(tls.dns ? { dns: { ...tls.dns } } : {}),
    ...(tls.resolver ? { resolver: tls.resolver } : {}),
    ...(tls.trustedRootsFile ? { trustedRootsFile: tls.trustedRootsFile } : {}),
    upstream: proxyUpstreamName(input.app, input.env),
    proxies: env.hosts.map((name) => {
      const host = hostSpec(inventory, name);
      return { host, container: proxyContainerName(input.app, input.env), httpUrl: `http://${host.address}:${env.proxy.hostPort}`, httpsAddress: host.address, httpsPort };
    }),
    renewFraction: tls.renewFraction,
    selfSignedDays: tls.selfSignedDays,
    ...(tls.notify ? { notify: { webhookUrlFile: tls.notify.webhookUrlFile } } : {}),
  };
}
