// measureEndpoint against a tiny local HTTP server: 500s, slow answers, timeouts, refused connections, cancellation.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { measureEndpoint } from '../../activities/health';

jest.setTimeout(30_000);

let server: http.Server;
let base: string;
const hosts: string[] = [];
let count = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    if (req.url === '/mixed') {
      count++;
      if (count % 4 === 0) res.writeHead(500).end('boom');
      else if (count % 5 === 0) setTimeout(() => res.writeHead(200).end('slow'), 120);
      else if (count % 7 === 0) res.writeHead(404).end('missing');
      else res.writeHead(200).end('ok');
    } else if (req.url === '/slow') {
      setTimeout(() => res.writeHead(200).end('too late'), 1000);
    } else {
      res.writeHead(200).end('ok');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

it('counts 5xx as errors, 4xx as answers, and measures the latency of the answered ones', async () => {
  hosts.length = 0;
  const t0 = Date.now();
  const sample = await measureEndpoint({ url: `${base}/`, path: 'mixed', hostHeader: 'shop.example.com', durationMs: 1000, intervalMs: 50 });
  const took = Date.now() - t0;
  // one request every 50 ms for 1 s: 20 ticks, fewer when the slow answers (120 ms) skip some
  expect(sample.requests).toBeGreaterThanOrEqual(12);
  expect(sample.requests).toBeLessThanOrEqual(20);
  expect(took).toBeGreaterThanOrEqual(900);
  expect(took).toBeLessThan(3000);
  const expected = { '500': 0, '200': 0, '404': 0 } as Record<string, number>;
  for (let n = 1; n <= sample.requests; n++) expected[n % 4 === 0 ? '500' : n % 7 === 0 && n % 5 !== 0 ? '404' : '200']++;
  expect(sample.statuses).toEqual(Object.fromEntries(Object.entries(expected).filter(([, v]) => v > 0)));
  expect(sample.errors).toBe(expected['500']);
  // most answers are immediate, some (every 5th that is not a 500) take 120 ms
  expect(sample.p50Ms).toBeLessThan(100);
  expect(sample.p95Ms).toBeGreaterThanOrEqual(115);
  expect(Number.isInteger(sample.p50Ms * 10)).toBe(true);
  expect(new Set(hosts)).toEqual(new Set(['shop.example.com']));
  count = 0;
});

it('counts timed-out and refused requests as errors', async () => {
  const slow = await measureEndpoint({ url: base, path: '/slow', durationMs: 300, intervalMs: 100, timeoutMs: 100 });
  expect(slow).toMatchObject({ errors: slow.requests, p50Ms: 0, p95Ms: 0, statuses: { timeout: slow.requests } });
  expect(slow.requests).toBeGreaterThanOrEqual(2);

  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const refused = await measureEndpoint({ url: `http://127.0.0.1:${port}`, path: '/', durationMs: 100, intervalMs: 50 });
  expect(refused).toEqual({ requests: 2, errors: 2, p50Ms: 0, p95Ms: 0, statuses: { failed: 2 } });
});

it('stops at once when cancelled, in a request or between two', async () => {
  for (const path of ['/slow', '/']) {
    const controller = new AbortController();
    const t0 = Date.now();
    setTimeout(() => controller.abort(new Error('cancelled by the test')), 300);
    await expect(measureEndpoint({ url: base, path, durationMs: 10_000, intervalMs: 2000, timeoutMs: 5000 }, { signal: controller.signal })).rejects.toThrow('cancelled by the test');
    expect(Date.now() - t0).toBeLessThan(1500);
  }
});

it('refuses what is not a measurement', async () => {
  await expect(measureEndpoint({ url: base, path: '/', durationMs: 100, intervalMs: 0 })).rejects.toThrow(/not a measurement/);
  await expect(measureEndpoint({ url: 'ftp://x', path: '/', durationMs: 100, intervalMs: 10 })).rejects.toThrow(/not an http/);
});
