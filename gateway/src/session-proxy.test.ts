/**
 * Page loads against several replicas that drain or die: the gateway in-process, in front of
 * stand-ins that answer as the launcher does (bokeh/launcher/replica.py). The real drain runs in
 * bokeh/tests/test_replica.py and in the integration suite.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startGateway, type GatewayServer } from './server.js';
import { sessionIdFromToken } from './tokens.js';
import { replicaTag, TAG_LENGTH } from './upstream.js';

const KEY = 'session-proxy-test-key_0123456789abcdefghij';

interface FakeReplica {
  server: Server;
  origin: string;
  mode: 'serving' | 'draining';
  /** Session ids of the autoload.js requests it answered. */
  started: string[];
}

async function fakeReplica(host: string, port: number): Promise<FakeReplica> {
  const replica = { mode: 'serving', started: [] } as unknown as FakeReplica;
  replica.server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://replica');
    if (url.pathname === '/bokeh/_replica') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ state: replica.mode, sessions: replica.started.length }));
    }
    if (url.pathname !== '/bokeh/sliders/autoload.js' && url.pathname !== '/bokeh/sliders/metadata') {
      res.statusCode = 404;
      return res.end();
    }
    if (replica.mode === 'draining') {
      res.writeHead(503, { 'retry-after': '5', 'bokeh-replica-state': 'draining', 'content-type': 'application/json' });
      return res.end('{"error": "REPLICA_DRAINING"}');
    }
    if (url.pathname.endsWith('/metadata')) {
      res.setHeader('content-type', 'application/json');
      return res.end('{"url": "/bokeh/sliders", "data": {}}');
    }
    replica.started.push(sessionIdFromToken(url.searchParams.get('bokeh-token')!));
    res.writeHead(200, { 'content-type': 'application/javascript', 'x-served-by': host });
    res.end('// autoload');
  });
  await new Promise<void>((resolve) => replica.server.listen(port, host, resolve));
  replica.origin = `http://${host}:${(replica.server.address() as AddressInfo).port}`;
  return replica;
}

let replicas: FakeReplica[];
let gateway: GatewayServer;
let deadOrigin: string;

beforeAll(async () => {
  const first = await fakeReplica('127.0.0.2', 0);
  const port = Number(new URL(first.origin).port);
  replicas = [first, await fakeReplica('127.0.0.3', port)];
  deadOrigin = `http://127.0.0.4:${port}`;
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: [...replicas.map((replica) => replica.origin), deadOrigin].join(','),
    BOKEH_APPS: 'sliders',
    BOKEH_DISCOVERY_INTERVAL_MS: '60000',
    LOG_LEVEL: 'silent',
    BOKEH_SECRET_KEY: KEY,
  });
  gateway = await startGateway(config, pino({ level: 'silent' }));
  await gateway.upstreams.refresh();
});

afterAll(async () => {
  await gateway.close();
  await Promise.all(replicas.map((replica) => new Promise<void>((resolve) => replica.server.close(() => resolve()))));
});

beforeEach(() => {
  for (const replica of replicas) {
    replica.mode = 'serving';
    replica.started.length = 0;
  }
});

const autoload = () => fetch(`${gateway.url}/bokeh/sliders/autoload.js?bokeh-autoload-element=x`, { headers: { accept: 'application/json' } });
const tagOf = (origin: string) => replicaTag(Buffer.from(KEY), origin);

test('each session starts on the replica its id is tagged for, and the dead one gets none', async () => {
  for (let i = 0; i < 6; i++) expect((await autoload()).status).toBe(200);
  for (const replica of replicas) {
    expect(replica.started.length).toBe(3);
    for (const id of replica.started) expect(id.slice(0, TAG_LENGTH)).toBe(tagOf(replica.origin));
  }
  expect(gateway.upstreams.replicas().map((replica) => replica.state)).toEqual(['serving', 'serving', 'down']);
});

test('a page load that meets a draining replica is sent to another, with an id tagged for that one', async () => {
  // The gateway has not checked since: it still thinks both serve, and learns from the refusal.
  replicas[0]!.mode = 'draining';
  for (let i = 0; i < 6; i++) {
    const res = await autoload();
    expect(res.status).toBe(200);
    expect(res.headers.get('x-served-by')).toBe('127.0.0.3');
    expect(res.headers.get('cache-control')).toBe('no-store');
  }
  expect(replicas[1]!.started).toHaveLength(6);
  for (const id of replicas[1]!.started) expect(id.slice(0, TAG_LENGTH)).toBe(tagOf(replicas[1]!.origin));
  expect(gateway.upstreams.replicas()[0]!.state).toBe('draining');
  await gateway.upstreams.refresh();
});

test('when every replica drains, the page gets a 503 that says so, with Retry-After', async () => {
  for (const replica of replicas) replica.mode = 'draining';
  await gateway.upstreams.refresh();
  const res = await autoload();
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toBe('5');
  expect(await res.json()).toMatchObject({ error: 'BOKEH_UNAVAILABLE', message: expect.stringContaining('shutting down or unreachable') });
  expect(replicas.map((replica) => replica.started.length)).toEqual([0, 0]);
  for (const replica of replicas) replica.mode = 'serving';
  await gateway.upstreams.refresh();
  expect((await autoload()).status).toBe(200);
});

test('/readyz lists every replica with its state, and stays ready while one serves', async () => {
  replicas[1]!.mode = 'draining';
  await gateway.upstreams.refresh();
  const res = await fetch(`${gateway.url}/readyz`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { status: string; apps: Array<{ app: string; ok: boolean }>; replicas: Array<{ url: string; state: string }> };
  expect(body.status).toBe('ready');
  expect(body.apps).toEqual([{ app: 'sliders', ok: true, status: 200 }]);
  expect(body.replicas.map((replica) => [replica.url, replica.state])).toEqual([
    [replicas[0]!.origin, 'serving'],
    [replicas[1]!.origin, 'draining'],
    [deadOrigin, 'down'],
  ]);
  replicas[0]!.mode = 'draining';
  await gateway.upstreams.refresh();
  const none = await fetch(`${gateway.url}/readyz`);
  expect(none.status).toBe(503);
  expect(((await none.json()) as { status: string }).status).toBe('unavailable');
});
