/**
 * The gateway in-process with HOST_APP_URL pointed at a small host app of our own (plain HTTP
 * plus a WebSocket that echoes): what reaches it, what stays the gateway's, and the answers
 * when it is down. Bokeh is an address where nothing listens, so anything that reached it would
 * read BOKEH_UNAVAILABLE.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startGateway, type GatewayServer } from './server.js';
import { acceptKey } from './ws-handshake.js';

const KEY = 'host-app-test-key_0123456789abcdefghijklmn';
// alice / wonderland, bcrypt cost 4.
const ALICE = 'alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK';
const ALICE_AUTH = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;

/** What the host app saw of each request. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An unmasked text frame, as a server sends it (payload under 126 bytes). */
const textFrame = (text: string) => Buffer.concat([Buffer.from([0x81, Buffer.byteLength(text)]), Buffer.from(text)]);

/** The text of one small masked client frame. */
function readClientText(frame: Buffer): string {
  const length = frame[1]! & 0x7f;
  const mask = frame.subarray(2, 6);
  return Buffer.from(frame.subarray(6, 6 + length).map((byte, i) => byte ^ mask[i % 4]!)).toString();
}

let hostServer: Server;
let hostPort: number;
let closedPort: number;
const seen: Seen[] = [];
/** The host app's upgraded sockets, which its HTTP server no longer tracks. */
const upgraded = new Set<Socket>();

beforeAll(async () => {
  hostServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`host app: ${req.method} ${req.url}`);
    });
  });
  // Sends the upgrade's forwarded headers first, then echoes each message.
  hostServer.on('upgrade', (req, socket: Socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(req.headers['sec-websocket-key']!)}\r\n\r\n`,
    );
    socket.write(textFrame(JSON.stringify({ url: req.url, for: req.headers['x-forwarded-for'], host: req.headers['x-forwarded-host'] })));
    socket.on('data', (frame: Buffer) => {
      if ((frame[0]! & 0x0f) === 0x1) socket.write(textFrame(`echo: ${readClientText(frame)}`));
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => hostServer.listen(0, '127.0.0.1', resolve));
  hostPort = (hostServer.address() as AddressInfo).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  hostServer.closeAllConnections();
  for (const socket of upgraded) socket.destroy();
  await new Promise<void>((resolve) => hostServer.close(() => resolve()));
});

beforeEach(() => {
  seen.length = 0;
});

async function gatewayFor(hostAppPort: number, env: Record<string, string> = {}): Promise<GatewayServer> {
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: `http://127.0.0.1:${closedPort}`,
    HOST_APP_URL: `http://127.0.0.1:${hostAppPort}`,
    PUBLIC_ORIGINS: 'http://localhost:8000',
    LOG_LEVEL: 'silent',
    BOKEH_SECRET_KEY: KEY,
    ...env,
  });
  return startGateway(config, pino({ level: 'silent' }));
}

/** Opens a WebSocket through the gateway and collects the first `count` messages after sending `send`. */
function socketMessages(url: string, send: string, count: number, headers: Record<string, string> = {}): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers } as unknown as string[]);
    const messages: string[] = [];
    socket.onopen = () => socket.send(send);
    socket.onmessage = (event) => {
      messages.push(String(event.data));
      if (messages.length === count) {
        socket.close();
        resolve(messages);
      }
    };
    socket.onerror = () => reject(new Error('websocket failed'));
  });
}

test('every path outside the prefix goes to the host app, with its body and the forwarded headers the gateway computed', async () => {
  const gateway = await gatewayFor(hostPort);
  try {
    const page = await fetch(`${gateway.url}/`, { headers: { 'x-forwarded-for': '198.51.100.7' } });
    expect(await page.text()).toBe('host app: GET /');
    // The gateway's own app pages stepped aside.
    expect(await (await fetch(`${gateway.url}/apps/sliders?x=1`)).text()).toBe('host app: GET /apps/sliders?x=1');
    const form = await fetch(`${gateway.url}/notes`, { method: 'POST', body: 'note=hello', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await form.text()).toBe('host app: POST /notes');
    expect(seen.map(({ method, url, body }) => [method, url, body])).toEqual([
      ['GET', '/', ''],
      ['GET', '/apps/sliders?x=1', ''],
      ['POST', '/notes', 'note=hello'],
    ]);
    // A client's own X-Forwarded-For is replaced (the gateway trusts no proxy here), Host stays as
    // sent, and X-Forwarded-Host names the public origin, since 127.0.0.1:<port> is not listed.
    expect(seen[0]!.headers).toMatchObject({
      host: new URL(gateway.url).host,
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'localhost:8000',
      'x-forwarded-port': '8000',
    });
  } finally {
    await gateway.close();
  }
});

test('the health routes and everything under the prefix stay the gateway and Bokeh’s', async () => {
  const gateway = await gatewayFor(hostPort);
  try {
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    const bokeh = await fetch(`${gateway.url}/bokeh/sliders/autoload.js`, { headers: { accept: 'application/json' } });
    expect(bokeh.status).toBe(503);
    expect(await bokeh.json()).toMatchObject({ error: 'BOKEH_UNAVAILABLE' });
    const unknown = await fetch(`${gateway.url}/bokeh/nope`, { headers: { accept: 'application/json' } });
    expect(await unknown.json()).toMatchObject({ error: 'UNKNOWN_APP' });
    expect(seen).toEqual([]);
  } finally {
    await gateway.close();
  }
});

test('a host app that is down is a 503 page naming it, while the gateway keeps serving', async () => {
  const gateway = await gatewayFor(closedPort);
  try {
    const html = await fetch(`${gateway.url}/dashboard`);
    expect(html.status).toBe(503);
    expect(html.headers.get('retry-after')).toBe('5');
    expect(await html.text()).toContain(`The host app at http://127.0.0.1:${closedPort} refused the connection`);
    const json = await fetch(`${gateway.url}/dashboard`, { headers: { accept: 'application/json' } });
    expect(await json.json()).toMatchObject({ error: 'HOST_APP_UNAVAILABLE', status: 503 });
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  } finally {
    await gateway.close();
  }
});

test("the host app's WebSockets are relayed both ways, with the forwarded headers", async () => {
  const gateway = await gatewayFor(hostPort);
  try {
    const url = `${gateway.url.replace('http', 'ws')}/live?room=1`;
    const [hello, echo] = await socketMessages(url, 'ping', 2, { origin: 'http://localhost:8000' });
    expect(JSON.parse(hello!)).toEqual({ url: '/live?room=1', for: '127.0.0.1', host: 'localhost:8000' });
    expect(echo).toBe('echo: ping');
  } finally {
    await gateway.close();
  }
});

test("the host app's WebSockets pass the same Origin and sign-in checks as Bokeh's", async () => {
  const gateway = await gatewayFor(hostPort, { AUTH_MODE: 'basic', AUTH_BASIC_USERS: ALICE });
  try {
    const url = `${gateway.url.replace('http', 'ws')}/live`;
    await expect(socketMessages(url, 'x', 1, { origin: 'https://evil.example', authorization: ALICE_AUTH })).rejects.toThrow('websocket failed');
    await expect(socketMessages(url, 'x', 1, { origin: 'http://localhost:8000' })).rejects.toThrow('websocket failed');
    expect(await socketMessages(url, 'hi', 2, { origin: 'http://localhost:8000', authorization: ALICE_AUTH })).toHaveLength(2);
    // HTTP asks for sign-in before the host app sees anything.
    const page = await fetch(`${gateway.url}/`);
    expect(page.status).toBe(401);
    expect(page.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(seen).toEqual([]);
    expect((await fetch(`${gateway.url}/`, { headers: { authorization: ALICE_AUTH } })).status).toBe(200);
  } finally {
    await gateway.close();
  }
});

test('a refused or failed host-app upgrade gets a plain HTTP answer with its code', async () => {
  // fetch cannot make upgrades; speak HTTP on a raw socket instead.
  const raw = async (gateway: GatewayServer, extra = ''): Promise<string> => {
    const { connect } = await import('node:net');
    const { port } = new URL(gateway.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          'GET /live HTTP/1.1\r\nHost: localhost:8000\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
            `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`,
        );
      });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
      socket.on('error', reject);
    });
  };
  const down = await gatewayFor(closedPort);
  try {
    const answer = await raw(down);
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toContain('"error":"HOST_APP_UNAVAILABLE"');
  } finally {
    await down.close();
  }
  const up = await gatewayFor(hostPort);
  try {
    const answer = await raw(up, 'Origin: https://evil.example\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain('"error":"ORIGIN_NOT_ALLOWED"');
  } finally {
    await up.close();
  }
});

test("shutdown ends the host app's open WebSockets", async () => {
  const gateway = await gatewayFor(hostPort);
  const socket = new WebSocket(`${gateway.url.replace('http', 'ws')}/live`);
  await new Promise<void>((resolve, reject) => {
    socket.onmessage = () => resolve();
    socket.onerror = () => reject(new Error('websocket failed'));
  });
  const closed = new Promise<void>((resolve) => {
    socket.onclose = () => resolve();
  });
  const started = Date.now();
  await gateway.close();
  await closed;
  expect(Date.now() - started).toBeLessThan(5_000);
});
