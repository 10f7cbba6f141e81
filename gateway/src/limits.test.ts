/**
 * The per-client limits and the per-replica cap: the limiter on its own, then the gateway
 * in-process in front of a stand-in replica that records what reaches it.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { loadConfig } from './config.js';
import { clientLimits } from './limits.js';
import { createMetrics, noMetrics } from './metrics.js';
import { startGateway, type GatewayServer } from './server.js';

const KEY = 'limits-test-key_0123456789abcdefghijklmnopq';

const configWith = (env: Record<string, string>) => loadConfig({ BOKEH_SECRET_KEY: KEY, ...env });

/** A logger that keeps what it was asked to log at warn. */
function recordingLog(): { log: Logger; warned: Array<Record<string, unknown>> } {
  const warned: Array<Record<string, unknown>> = [];
  const log = { warn: (fields: Record<string, unknown>) => warned.push(fields) } as unknown as Logger;
  return { log, warned };
}

/** The one thing the open-WebSocket count needs of a socket: its 'close' event. */
const fakeSocket = () => new EventEmitter() as unknown as Duplex;

describe('the limiter', () => {
  test('session starts: N per window per address, then 429 with Retry-After and the setting to raise', async () => {
    const { log } = recordingLog();
    const limits = clientLimits(configWith({ RATE_LIMIT_SESSION_STARTS: '3', RATE_LIMIT_WINDOW_S: '30' }), log, noMetrics());
    for (let i = 0; i < 3; i++) expect(await limits.sessionStart('198.51.100.1')).toBeUndefined();
    const refused = await limits.sessionStart('198.51.100.1');
    expect(refused).toMatchObject({ status: 429, code: 'RATE_LIMITED', message: expect.stringContaining('RATE_LIMIT_SESSION_STARTS') });
    const retryAfter = Number(refused!.headers!['Retry-After']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    // Another address has its own count.
    expect(await limits.sessionStart('198.51.100.2')).toBeUndefined();
  });

  test('0 turns a limit off', async () => {
    const limits = clientLimits(
      configWith({ RATE_LIMIT_SESSION_STARTS: '0', RATE_LIMIT_WEBSOCKETS: '0', MAX_WEBSOCKETS_PER_CLIENT: '0' }),
      recordingLog().log,
      noMetrics(),
    );
    for (let i = 0; i < 500; i++) {
      expect(await limits.sessionStart('198.51.100.1')).toBeUndefined();
      expect(await limits.upgrade('198.51.100.1')).toBeUndefined();
      expect(limits.holdWebSocket('198.51.100.1', fakeSocket())).toBeUndefined();
    }
  });

  test('open WebSockets: a cap per address that goes down when a connection closes', () => {
    const limits = clientLimits(configWith({ MAX_WEBSOCKETS_PER_CLIENT: '2' }), recordingLog().log, noMetrics());
    const first = fakeSocket();
    expect(limits.holdWebSocket('198.51.100.1', first)).toBeUndefined();
    expect(limits.holdWebSocket('198.51.100.1', fakeSocket())).toBeUndefined();
    expect(limits.holdWebSocket('198.51.100.1', fakeSocket())).toMatchObject({
      status: 429,
      code: 'TOO_MANY_WEBSOCKETS',
      message: expect.stringContaining('MAX_WEBSOCKETS_PER_CLIENT'),
      headers: { 'Retry-After': expect.stringMatching(/^\d+$/) },
    });
    expect(limits.holdWebSocket('198.51.100.2', fakeSocket())).toBeUndefined();
    expect(limits.openWebSockets('198.51.100.1')).toBe(2);
    first.emit('close');
    expect(limits.openWebSockets('198.51.100.1')).toBe(1);
    expect(limits.holdWebSocket('198.51.100.1', fakeSocket())).toBeUndefined();
  });

  test('a flood of refusals logs once per address and limit per window, and counts each in the metrics', async () => {
    const { log, warned } = recordingLog();
    const metrics = createMetrics();
    const limits = clientLimits(configWith({ RATE_LIMIT_SESSION_STARTS: '1', RATE_LIMIT_WEBSOCKETS: '1' }), log, metrics);
    for (let i = 0; i < 50; i++) {
      await limits.sessionStart('198.51.100.1');
      await limits.upgrade('198.51.100.1');
      await limits.sessionStart('198.51.100.2');
    }
    // Logging happens a tick after the refusal.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warned.map(({ ip, limit }) => `${String(limit)} ${String(ip)}`).sort()).toEqual([
      'session_starts 198.51.100.1',
      'session_starts 198.51.100.2',
      'websocket_upgrades 198.51.100.1',
    ]);
    const { body } = await metrics.render();
    expect(body).toContain('gateway_limit_refusals_total{limit="session_starts"} 98');
    expect(body).toContain('gateway_limit_refusals_total{limit="websocket_upgrades"} 49');
  });
});

describe('the gateway in front of a replica', () => {
  let replica: Server;
  let replicaOrigin: string;
  /** What reached the replica: autoload.js requests and upgrade attempts. */
  const seen = { autoload: 0, upgrades: 0 };
  let reportedSessions = 0;
  let gateway: GatewayServer;

  beforeAll(async () => {
    replica = createServer((req, res) => {
      const url = new URL(req.url!, 'http://replica');
      if (url.pathname === '/bokeh/_replica') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ state: 'serving', sessions: reportedSessions }));
      }
      if (url.pathname === '/bokeh/sliders/autoload.js') {
        seen.autoload += 1;
        res.writeHead(200, { 'content-type': 'application/javascript' });
        return res.end('// autoload');
      }
      res.statusCode = 404;
      res.end();
    });
    replica.on('upgrade', (_req, socket: Duplex) => {
      seen.upgrades += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    replicaOrigin = `http://127.0.0.1:${(replica.address() as AddressInfo).port}`;
    gateway = await startGateway(
      loadConfig({
        PORT: '0',
        METRICS_PORT: String(await freePort()),
        LISTEN_ADDRESS: '127.0.0.1',
        BOKEH_URL: replicaOrigin,
        BOKEH_APPS: 'sliders',
        BOKEH_DISCOVERY_INTERVAL_MS: '60000',
        BOKEH_SECRET_KEY: KEY,
        RATE_LIMIT_SESSION_STARTS: '5',
        RATE_LIMIT_WEBSOCKETS: '3',
        MAX_SESSIONS_PER_REPLICA: '20',
      }),
      pino({ level: 'silent' }),
    );
    await gateway.upstreams.refresh();
  });

  afterAll(async () => {
    await gateway.close();
    await new Promise<void>((resolve) => replica.close(() => resolve()));
  });

  const autoload = () => fetch(`${gateway.url}/bokeh/sliders/autoload.js?bokeh-autoload-element=x`, { headers: { accept: 'application/json' } });

  /** A raw upgrade, answered by whoever answers first: the gateway's refusal or the replica. */
  const upgrade = async (): Promise<{ status: number; retryAfter: string | undefined }> => {
    const { request } = await import('node:http');
    return new Promise((resolve, reject) => {
      const req = request(`${gateway.url}/bokeh/sliders/ws`, {
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'sec-websocket-protocol': 'bokeh, x',
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] });
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode!, retryAfter: undefined });
      });
      req.on('error', reject);
      req.end();
    });
  };

  test('page loads past the rate get 429 with Retry-After, and never reach Bokeh', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await autoload();
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(await res.json()).toMatchObject({ error: 'RATE_LIMITED', message: expect.stringContaining('RATE_LIMIT_SESSION_STARTS') });
      } else {
        await res.arrayBuffer();
      }
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(seen.autoload).toBe(5);
  });

  test('upgrades past the rate get 429 before a byte reaches Bokeh', async () => {
    const before = seen.upgrades;
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await upgrade());
    // The first three pass the limits and meet the token check (a bad token: 403), the rest the rate.
    expect(answers.map((answer) => answer.status)).toEqual([403, 403, 403, 429, 429]);
    expect(answers[4]!.retryAfter).toMatch(/^\d+$/);
    expect(seen.upgrades).toBe(before);
  });

  test('/metrics is on its own port only, and counts the refusals and the requests', async () => {
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(404);
    const res = await fetch(gateway.metricsUrl!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const body = await res.text();
    expect(body).toContain('gateway_limit_refusals_total{limit="session_starts"} 3');
    expect(body).toContain('gateway_limit_refusals_total{limit="websocket_upgrades"} 2');
    expect(body).toContain('gateway_http_requests_total{route="autoload",method="GET",status="429"} 3');
    expect(body).toContain(`gateway_sessions_started_total{app="sliders",replica="${replicaOrigin}"} 5`);
    expect(body).toContain(`gateway_bokeh_replica_up{replica="${replicaOrigin}",state="serving"} 1`);
    expect(body).toMatch(/gateway_http_request_duration_seconds_bucket\{le="0.005",route="autoload"\} \d+/);
    expect(body).toContain('gateway_process_cpu_seconds_total');
    expect(body).toContain('gateway_nodejs_eventloop_lag_seconds');
    // No session ids or tokens: every label value is short and from a known set.
    expect(body).not.toMatch(/bokeh-token|[A-Za-z0-9]{44}/);
  });

  test('when every replica is full, page loads get 503 AT_CAPACITY naming the setting, and Bokeh sees none', async () => {
    const capped = await startGateway(
      loadConfig({
        PORT: '0',
        LISTEN_ADDRESS: '127.0.0.1',
        BOKEH_URL: replicaOrigin,
        BOKEH_APPS: 'sliders',
        BOKEH_DISCOVERY_INTERVAL_MS: '60000',
        BOKEH_SECRET_KEY: KEY,
        RATE_LIMIT_SESSION_STARTS: '0',
        MAX_SESSIONS_PER_REPLICA: '20',
      }),
      pino({ level: 'silent' }),
    );
    try {
      reportedSessions = 18;
      await capped.upstreams.refresh();
      const before = seen.autoload;
      const load = () => fetch(`${capped.url}/bokeh/sliders/autoload.js`, { headers: { accept: 'application/json' } });
      // 18 reported plus the 2 this gateway starts fill the replica.
      for (let i = 0; i < 2; i++) expect((await load()).status).toBe(200);
      const res = await load();
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('15');
      expect(await res.json()).toMatchObject({ error: 'AT_CAPACITY', message: expect.stringMatching(/at capacity.*MAX_SESSIONS_PER_REPLICA/) });
      expect(seen.autoload).toBe(before + 2);
      // Room again once the replica reports fewer sessions.
      reportedSessions = 0;
      await capped.upstreams.refresh();
      expect((await load()).status).toBe(200);
    } finally {
      reportedSessions = 0;
      await capped.close();
    }
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
