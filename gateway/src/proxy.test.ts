/**
 * The gateway in-process against upstreams that misbehave at the TCP level: one that never
 * answers, and an address where nothing listens. Bokeh itself is exercised by the integration
 * suite; these are the failures it cannot produce on demand.
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startGateway, type GatewayServer } from './server.js';

let silent: Server;
let silentPort: number;
let closedPort: number;

beforeAll(async () => {
  // Accepts connections and reads requests, but never answers.
  silent = createServer((socket) => socket.resume());
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentPort = (silent.address() as AddressInfo).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

async function gatewayFor(port: number): Promise<GatewayServer> {
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: `http://127.0.0.1:${port}`,
    UPSTREAM_TIMEOUT_MS: '1000',
    LOG_LEVEL: 'silent',
    BOKEH_SECRET_KEY: 'proxy-test-key_0123456789abcdefghijklmnop',
  });
  return startGateway(config, pino({ level: 'silent' }));
}

test('an upstream that does not answer in time is a 504 naming it', async () => {
  const gateway = await gatewayFor(silentPort);
  try {
    const started = Date.now();
    const res = await fetch(`${gateway.url}/bokeh/sliders/autoload.js`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({
      error: 'BOKEH_TIMEOUT',
      message: expect.stringContaining(`http://127.0.0.1:${silentPort} did not answer in time`),
    });
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    await gateway.close();
  }
});

test('an upstream that refuses connections is a 503, and the gateway keeps serving', async () => {
  const gateway = await gatewayFor(closedPort);
  try {
    const res = await fetch(`${gateway.url}/bokeh/sliders/`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'BOKEH_UNAVAILABLE', message: expect.stringContaining('[ECONNREFUSED]') });
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(503);
  } finally {
    await gateway.close();
  }
});

test('oversized request headers get a 431 that says what to do, and the gateway keeps serving', async () => {
  const gateway = await gatewayFor(closedPort);
  try {
    const res = await fetch(`${gateway.url}/`, { headers: { cookie: `big=${'x'.repeat(70 * 1024)}` } });
    expect(res.status).toBe(431);
    expect(await res.json()).toMatchObject({ error: 'HEADERS_TOO_LARGE', message: expect.stringContaining('64 KB') });
    const fits = await fetch(`${gateway.url}/`, { headers: { cookie: `big=${'x'.repeat(30 * 1024)}` } });
    expect(fits.status).toBe(200);
  } finally {
    await gateway.close();
  }
});
