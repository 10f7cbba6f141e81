import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from './config.js';
import { checkSessionIdSignature } from './tokens.js';
import { createUpstreams, replicaTag, TAG_LENGTH, type Upstreams } from './upstream.js';

const KEY = 'upstream-test-key_0123456789abcdefghijklmn';

/** A stand-in for one Bokeh replica: its status route (bokeh/launcher/replica.py) and nothing else. */
interface FakeReplica {
  server: Server;
  origin: string;
  status: { state: 'serving' | 'draining'; sessions: number } | 'no status route';
  seen: string[];
}

/** Each replica on its own loopback address (all of 127.0.0.0/8 is local), one port for all. */
async function fakeReplicas(count: number): Promise<FakeReplica[]> {
  const replicas: FakeReplica[] = [];
  let port = 0;
  for (let i = 0; i < count; i++) {
    const replica = { status: { state: 'serving', sessions: 0 }, seen: [] } as unknown as FakeReplica;
    replica.server = createServer((req, res) => {
      replica.seen.push(`${req.method} ${req.url}`);
      if (req.url === '/bokeh/_replica' && replica.status !== 'no status route') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ ...replica.status, connections: 0, sessionsCreated: 0 }));
      }
      res.statusCode = 404;
      res.end('not here');
    });
    const host = `127.0.0.${i + 2}`;
    await new Promise<void>((resolve) => replica.server.listen(port, host, resolve));
    port = (replica.server.address() as AddressInfo).port;
    replica.origin = `http://${host}:${port}`;
    replicas.push(replica);
  }
  return replicas;
}

const gatewayFor = (urls: string[]): Upstreams =>
  createUpstreams(loadConfig({ BOKEH_SECRET_KEY: KEY, BOKEH_URL: urls.join(','), BOKEH_DISCOVERY_INTERVAL_MS: '60000', READINESS_TIMEOUT_MS: '500' }));

let replicas: FakeReplica[];
const open: Upstreams[] = [];
const started = async (urls = replicas.map((replica) => replica.origin)): Promise<Upstreams> => {
  const upstreams = gatewayFor(urls);
  open.push(upstreams);
  await upstreams.start();
  await upstreams.refresh();
  return upstreams;
};

beforeAll(async () => {
  replicas = await fakeReplicas(3);
});
beforeEach(() => {
  for (const replica of replicas) {
    replica.status = { state: 'serving', sessions: 0 };
    replica.seen.length = 0;
  }
});
afterEach(() => {
  for (const upstreams of open.splice(0)) upstreams.close();
});
afterAll(() => Promise.all(replicas.map((replica) => new Promise<void>((resolve) => replica.server.close(() => resolve())))));

const originOf = async (upstreams: Upstreams, sessionId: string) => (await upstreams.forSession(sessionId)).origin;

test('every listed replica is found and asked for its state', async () => {
  const upstreams = await started();
  expect(upstreams.replicas()).toEqual(replicas.map((replica) => ({ url: replica.origin, state: 'serving', sessions: 0 })));
  for (const replica of replicas) expect(replica.seen).toEqual(['GET /bokeh/_replica']);
  expect(upstreams.name).toBe(replicas.map((replica) => replica.origin).join(','));
});

test('a new session goes to the least loaded serving replica, and its id says which', async () => {
  replicas[0]!.status = { state: 'serving', sessions: 5 };
  replicas[1]!.status = { state: 'serving', sessions: 1 };
  replicas[2]!.status = { state: 'serving', sessions: 2 };
  const upstreams = await started();
  const ids = Array.from({ length: 4 }, () => upstreams.newSessionId()!);
  // 1 -> 2 sessions ties with the third replica's 2; the next two fill both to 3.
  const holders = await Promise.all(ids.map((id) => originOf(upstreams, id)));
  expect(holders[0]).toBe(replicas[1]!.origin);
  expect(holders.filter((origin) => origin === replicas[0]!.origin)).toHaveLength(0);
  expect(new Set(holders.slice(1, 3))).toEqual(new Set([replicas[1]!.origin, replicas[2]!.origin]));
  for (const id of ids) {
    // Still a Bokeh session id: 44 characters of [A-Za-z0-9], signed with the key.
    expect(id.split('.')[0]).toMatch(/^[A-Za-z0-9]{44}$/);
    expect(checkSessionIdSignature(id, Buffer.from(KEY))).toBe(true);
  }
  expect(ids[0]!.slice(0, TAG_LENGTH)).toBe(replicaTag(Buffer.from(KEY), replicas[1]!.origin));
});

test('two gateways with the same key route every session alike, with no shared store', async () => {
  const first = await started();
  const second = await started([...replicas.map((replica) => replica.origin)].reverse());
  for (let i = 0; i < 12; i++) {
    const id = first.newSessionId()!;
    expect(await originOf(second, id)).toBe(await originOf(first, id));
  }
});

test('a draining replica keeps its sessions and gets no new ones', async () => {
  const upstreams = await started();
  const pinned = upstreams.newSessionId()!;
  const holder = await originOf(upstreams, pinned);
  const draining = replicas.find((replica) => replica.origin === holder)!;
  draining.status = { state: 'draining', sessions: 1 };
  upstreams.report(await upstreams.forSession(pinned), 'draining');
  expect(upstreams.replicas().find((replica) => replica.url === holder)?.state).toBe('draining');
  expect(await originOf(upstreams, pinned)).toBe(holder);
  for (let i = 0; i < 10; i++) expect(await originOf(upstreams, upstreams.newSessionId()!)).not.toBe(holder);
  expect(upstreams.any().origin).not.toBe(holder);
});

test("a dead replica's sessions go where rendezvous hashing says, the same for every gateway", async () => {
  const first = await started();
  const second = await started();
  const ids = Array.from({ length: 9 }, () => first.newSessionId()!);
  const dead = replicas[0]!.origin;
  const orphans = (await Promise.all(ids.map(async (id) => ((await originOf(first, id)) === dead ? id : undefined)))).filter((id) => id !== undefined);
  expect(orphans.length).toBeGreaterThan(0);
  for (const upstreams of [first, second]) upstreams.report(await upstreams.forSession(orphans[0]!), 'down');
  for (const id of orphans) {
    const heir = await originOf(first, id);
    expect(heir).not.toBe(dead);
    expect(await originOf(second, id)).toBe(heir);
    // Every reconnect lands on the same heir.
    expect(await originOf(first, id)).toBe(heir);
  }
});

test('a replica that does not answer is down and gets no new sessions', async () => {
  const gone = `http://127.0.0.9:${new URL(replicas[0]!.origin).port}`;
  const upstreams = await started([replicas[0]!.origin, gone]);
  expect(upstreams.replicas().map((replica) => replica.state)).toEqual(['serving', 'down']);
  for (let i = 0; i < 5; i++) expect(await originOf(upstreams, upstreams.newSessionId()!)).toBe(replicas[0]!.origin);
});

test('a Bokeh without the status route counts as serving', async () => {
  replicas[2]!.status = 'no status route';
  const upstreams = await started([replicas[2]!.origin]);
  expect(upstreams.replicas()).toEqual([{ url: replicas[2]!.origin, state: 'serving', sessions: 0 }]);
});

test('with no live replica, every choice is the configured URL, so its failure names it', async () => {
  const gone = `http://127.0.0.9:${new URL(replicas[0]!.origin).port}`;
  const upstreams = await started([gone]);
  expect(upstreams.replicas()).toEqual([{ url: gone, state: 'down', sessions: 0 }]);
  expect(upstreams.any().origin).toBe(gone);
  expect(await originOf(upstreams, upstreams.newSessionId()!)).toBe(gone);
});

test("requests go to the replica's address over its keep-alive pool", async () => {
  const upstreams = await started([replicas[0]!.origin]);
  const upstream = upstreams.any();
  replicas[0]!.seen.length = 0;
  for (const path of ['/bokeh/ping/metadata', '/bokeh/static/js/bokeh.min.js?v=1']) {
    await new Promise<void>((resolve, reject) => {
      const req = upstream.request(path, { headers: { accept: 'text/plain' } });
      req.on('response', (res) => res.resume().on('end', resolve));
      req.on('error', reject);
      req.end();
    });
  }
  expect(replicas[0]!.seen).toEqual(['GET /bokeh/ping/metadata', 'GET /bokeh/static/js/bokeh.min.js?v=1']);
  // Both requests, and the status check before them, shared one connection.
  expect(Object.values(upstream.agent.freeSockets).flat()).toHaveLength(1);
});
