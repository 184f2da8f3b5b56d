// Connection settings the Temporal way: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
// TEMPORAL_TLS / TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH / TEMPORAL_TLS_SERVER_CA_CERT_PATH.
import { readFileSync } from 'node:fs';
import { TASK_QUEUE } from '../common/naming';

export interface ConnectionSettings {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer } | true;
  taskQueue: string;
}

export function connectionSettings(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const certPath = env.TEMPORAL_TLS_CLIENT_CERT_PATH;
  const keyPath = env.TEMPORAL_TLS_CLIENT_KEY_PATH;
  const caPath = env.TEMPORAL_TLS_SERVER_CA_CERT_PATH;
  if (Boolean(certPath) !== Boolean(keyPath)) throw new Error('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together');
  const wantsTls = env.TEMPORAL_TLS === 'true' || env.TEMPORAL_TLS === '1' || Boolean(certPath || caPath || env.TEMPORAL_API_KEY);
  const tls = wantsTls
    ? certPath || caPath
      ? {
          ...(certPath && keyPath ? { clientCertPair: { crt: readFileSync(certPath), key: readFileSync(keyPath) } } : {}),
          ...(caPath ? { serverRootCACertificate: readFileSync(caPath) } : {}),
        }
      : (true as const)
    : undefined;
  return {
    address: env.TEMPORAL_ADDRESS || '127.0.0.1:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    ...(env.TEMPORAL_API_KEY ? { apiKey: env.TEMPORAL_API_KEY } : {}),
    ...(tls ? { tls } : {}),
    taskQueue: env.RUNBOOK_TASK_QUEUE || TASK_QUEUE,
  };
}
