/**
 * Bad input, case by case, for both layouts: what is sent, and what a client must get back (a
 * status with a message that says what is wrong, or a WebSocket close code). The test files run
 * every case against a real stack and check after each one that the stack still serves a session.
 *
 * Requests are written byte for byte on a raw socket: HTTP clients would fix up, normalise or
 * refuse to send most of these.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { autoloadUrlFor, modelNamed, tokenFromAutoload } from './bokeh-client.js';
import { FRONT_NAMES, mintToken, openAppPage, PREFIX, request, type FrontName, type Stack } from './stack.js';

/** The front a client talks to: the gateway (bare-dev), or NGINX or Apache over TLS. */
export interface Front {
  layout: 'bare-dev' | FrontName;
  /** http://127.0.0.1:port or https://127.0.0.1:port */
  url: string;
  /** An origin the stack lists in PUBLIC_ORIGINS for this front. */
  origin: string;
  ca?: Buffer;
  stack: Stack;
}

export function frontOf(stack: Stack): Front {
  for (const layout of FRONT_NAMES) {
    const door = stack[layout];
    if (door) return { layout, url: door.https, origin: door.https, ca: door.ca, stack };
  }
  return { layout: 'bare-dev', url: stack.url, origin: stack.url, stack };
}

/** The settings the hostile suites run the stack with, so limits are reached quickly. */
export const HOSTILE_ENVIRONMENT: Record<string, string> = {
  // stream is a real app on the Bokeh server, but not listed: it must be out of reach.
  BOKEH_APPS: 'sliders,ping',
  SESSION_TOKEN_EXPIRATION_S: '10',
  HEADERS_TIMEOUT_MS: '3000',
  REQUEST_TIMEOUT_MS: '5000',
  WS_MAX_MESSAGE_BYTES: '1048576',
  WS_IDLE_TIMEOUT_MS: '10000',
};

export interface RawReply {
  /** Status of the first response, or undefined when the server closed without answering. */
  status: number | undefined;
  body: string;
  /** Milliseconds until the answer was complete or the server hung up. */
  endedAfterMs: number;
}

function open(front: Front): Socket {
  const url = new URL(front.url);
  const options = { host: url.hostname, port: Number(url.port) };
  return url.protocol === 'https:' ? tlsConnect({ ...options, ca: front.ca, servername: 'localhost' }) : tcpConnect(options);
}

/**
 * Writes `chunks` (with `gapMs` between them) and reads until the server closes the connection
 * or `timeoutMs` passes.
 */
export function raw(front: Front, chunks: (string | Buffer)[], { gapMs = 0, timeoutMs = 10_000 } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = open(front);
    const started = Date.now();
    const received: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(received).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: status ? Number(status[1]) : undefined, body: text.slice(text.indexOf('\r\n\r\n') + 4), endedAfterMs: Date.now() - started });
    };
    const timer = setTimeout(() => reject(new Error(`the server kept the connection open for ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      // A proxy may keep the connection open after a complete answer (keep-alive): stop there.
      const text = Buffer.concat(received).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (end !== -1 && length && Buffer.byteLength(text.slice(end + 4), 'latin1') >= Number(length[1])) finish();
    });
    socket.on('close', finish);
    socket.on('error', () => finish());
    socket.once(new URL(front.url).protocol === 'https:' ? 'secureConnect' : 'connect', async () => {
      for (const [index, chunk] of chunks.entries()) {
        if (index > 0 && gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
        if (done || socket.destroyed) return;
        socket.write(chunk);
      }
    });
  });
}

function hostOf(front: Front): string {
  return new URL(front.url).host;
}

/** A GET with `headers`, on a connection the server should close after answering. */
export function get(front: Front, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawReply> {
  const lines = [
    `${method} ${target} HTTP/1.1`,
    `Host: ${hostOf(front)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return raw(front, [`${lines.join('\r\n')}\r\n\r\n`]);
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A WebSocket opening handshake as a browser sends it, with `changes` applied (undefined removes). */
export function upgrade(front: Front, target: string, changes: Record<string, string | undefined> = {}, method = 'GET'): Promise<RawReply> {
  const headers: Record<string, string | undefined> = {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': WS_KEY,
    'Sec-WebSocket-Version': '13',
    Origin: front.origin,
    ...changes,
  };
  const lines = [
    `${method} ${target} HTTP/1.1`,
    `Host: ${hostOf(front)}`,
    ...Object.entries(headers).flatMap(([name, value]) => (value === undefined ? [] : [`${name}: ${value}`])),
  ];
  return raw(front, [`${lines.join('\r\n')}\r\n\r\n`]);
}

/** A fresh token from autoload.js through the front, the way BokehJS gets one. */
export async function pageToken(front: Front, app = 'ping'): Promise<string> {
  const reply = await request(autoloadUrlFor(front.url, PREFIX, app), front.ca ? { ca: front.ca } : {});
  if (reply.status !== 200) throw new Error(`autoload.js answered ${reply.status}: ${reply.body.slice(0, 200)}`);
  return tokenFromAutoload(reply.body);
}

/** What the user would notice: a page, its session and a round trip through the server. */
export async function servesSession(front: Front): Promise<void> {
  const { client, doc } = await openAppPage(front.url, 'ping', front.ca);
  try {
    const ping = modelNamed(doc, 'ping');
    client.setProperty(ping.id, 'value', 42);
    await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes('pong 42'));
  } finally {
    await client.close();
  }
}

/** How the server closed an open WebSocket. */
export interface Closed {
  code: number;
  reason: string;
}

/** A real session's WebSocket, opened the way BokehJS opens it, and how the server will close it. */
async function openSocket(front: Front): Promise<{ socket: WebSocket; closed: Promise<Closed> }> {
  const token = await pageToken(front);
  const socket = new WebSocket(`${front.url.replace(/^http/, 'ws')}${PREFIX}/ping/ws`, ['bokeh', token], {
    origin: front.origin,
    ...(front.ca ? { ca: front.ca } : {}),
  });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  const closed = new Promise<Closed>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return { socket, closed };
}

/** Sends one message larger than the stack's limit on an open session. */
export async function oversizedMessage(front: Front, bytes: number): Promise<Closed> {
  const { socket, closed } = await openSocket(front);
  socket.send('x'.repeat(bytes));
  return closed;
}

/** Writes `bytes` on an open session's connection as they are, bypassing the client's framing. */
export async function rawFrame(front: Front, bytes: number[]): Promise<Closed> {
  const { socket, closed } = await openSocket(front);
  (socket as unknown as { _socket: Socket })._socket.write(Buffer.from(bytes));
  return closed;
}

/** Opens a session and sends nothing at all. */
export async function silentSocket(front: Front): Promise<Closed> {
  return (await openSocket(front)).closed;
}

/** A masked client frame: FIN, `rsv` bits and `opcode` in the first byte. */
function maskedFrame(first: number, payload: string): number[] {
  const mask = [0x12, 0x34, 0x56, 0x78];
  return [first, 0x80 | payload.length, ...mask, ...Buffer.from(payload).map((byte, i) => byte ^ mask[i % 4]!)];
}

export type Expectation =
  /** An HTTP answer with this status (one of these), whose body says `message`. */
  | { status: number | number[]; message?: RegExp }
  /** The server hangs up within `withinMs`, with one of `status` or without an answer. */
  | { closed: 'any'; withinMs: number; status: number[] }
  /** An open WebSocket closed by the server with this code, and a reason that says why. */
  | { closeCode: number; reason?: RegExp };

export interface HostileCase {
  name: string;
  run(front: Front): Promise<RawReply | Closed>;
  expect: Expectation;
  /** When NGINX answers first in the nginx layout, it may answer differently. */
  nginx?: Expectation;
  /** When Apache answers first in the apache layout, it may answer differently. */
  apache?: Expectation;
}

const ws = (app = 'ping') => `${PREFIX}/${app}/ws`;
const protocols = (...values: string[]) => values.join(', ');
const b64 = (text: string) => Buffer.from(text).toString('base64url');

function tamperedExpiry(token: string): string {
  const [body, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as { session_expiry: number };
  claims.session_expiry += 86_400;
  return `${b64(JSON.stringify(claims))}.${signature}`;
}

const hourAgo = () => Math.floor(Date.now() / 1000) - 3600;
const autoload = (app: string, query = '') => `${PREFIX}/${app}/autoload.js?bokeh-autoload-element=x${query}`;

export const HOSTILE_CASES: HostileCase[] = [
  // --- Session tokens and ids at the WebSocket -----------------------------------------------
  {
    name: 'WebSocket with a token that is not a token',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', 'not-a-token') }),
    expect: { status: 403, message: /session token is malformed/ },
  },
  {
    name: 'WebSocket with a token signed by another key',
    run: (f) =>
      upgrade(f, ws(), {
        'Sec-WebSocket-Protocol': protocols('bokeh', mintToken({ ...f.stack, secretKey: Buffer.from('another-deployments-key-0123456789abcdef') })),
      }),
    expect: { status: 403, message: /not signed with this deployment's key/ },
  },
  {
    name: 'WebSocket with a tampered token (expiry pushed back)',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', tamperedExpiry(mintToken(f.stack))) }),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'WebSocket with an expired token',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack, { now: hourAgo() })) }),
    expect: { status: 403, message: /expired; reload the page/ },
  },
  {
    name: 'WebSocket with an unsigned token',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack).split('.')[0]!) }),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'WebSocket with a signed token around an unsigned session id',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack, { sessionId: 'U'.repeat(44) })) }),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'WebSocket with a token whose payload inflates to megabytes',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack, { extraPayload: { pad: 'a'.repeat(6 * 1024 * 1024) } })) }),
    expect: { status: 403, message: /malformed/ },
  },
  // --- Session tokens and ids on the HTTP requests that create sessions ----------------------
  {
    name: 'autoload.js with a forged bokeh-token',
    run: (f) => get(f, autoload('ping', `&bokeh-token=${b64('{"session_id": "x"}')}.forged`)),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'autoload.js with an expired bokeh-token (a stale tab)',
    run: (f) => get(f, autoload('ping', `&bokeh-token=${mintToken(f.stack, { now: hourAgo() })}`)),
    expect: { status: 403, message: /expired; reload the page/ },
  },
  {
    name: 'autoload.js with an unsigned bokeh-session-id',
    run: (f) => get(f, autoload('ping', `&bokeh-session-id=${'S'.repeat(44)}`)),
    expect: { status: 403, message: /session id is not signed/ },
  },
  {
    name: 'app page with a forged Bokeh-Session-Id header',
    run: (f) => get(f, `${PREFIX}/ping`, { 'Bokeh-Session-Id': `${'S'.repeat(44)}.forged` }),
    expect: { status: 403, message: /session id is not signed/ },
  },
  {
    name: 'autoload.js with both a token and a session id',
    run: (f) => get(f, autoload('ping', `&bokeh-token=${mintToken(f.stack)}&bokeh-session-id=x`)),
    expect: { status: 400, message: /at most one of bokeh-token, bokeh-session-id/ },
  },
  // --- Cross-site WebSockets -------------------------------------------------------------------
  {
    name: 'WebSocket from another site',
    run: async (f) => upgrade(f, ws(), { Origin: 'https://evil.example', 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 403, message: /add that origin to PUBLIC_ORIGINS/ },
  },
  {
    name: 'WebSocket from an opaque origin ("null")',
    run: async (f) => upgrade(f, ws(), { Origin: 'null', 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 403, message: /PUBLIC_ORIGINS/ },
  },
  {
    name: 'WebSocket from the same host on another port',
    run: async (f) =>
      upgrade(f, ws(), { Origin: `${new URL(f.origin).protocol}//127.0.0.1:1`, 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 403, message: /PUBLIC_ORIGINS/ },
  },
  // --- Subprotocols ----------------------------------------------------------------------------
  { name: 'WebSocket without subprotocols', run: (f) => upgrade(f, ws()), expect: { status: 400, message: /exactly two subprotocols/ } },
  {
    name: 'WebSocket offering only "bokeh"',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': 'bokeh' }),
    expect: { status: 400, message: /exactly two subprotocols/ },
  },
  {
    name: 'WebSocket offering "bokeh" twice',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': 'bokeh, bokeh' }),
    expect: { status: 403, message: /malformed/ },
  },
  {
    name: 'WebSocket with the token before "bokeh"',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols(mintToken(f.stack), 'bokeh') }),
    expect: { status: 400, message: /"bokeh" and then the session token/ },
  },
  {
    name: 'WebSocket with a third subprotocol',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack), 'chat') }),
    expect: { status: 400, message: /exactly two/ },
  },
  {
    name: 'WebSocket with garbage subprotocols',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': ',,, ;;; ' }),
    expect: { status: 400, message: /exactly two/ },
  },
  // --- Malformed upgrades ----------------------------------------------------------------------
  {
    name: 'WebSocket version 8',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Version': '8', 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 400, message: /Sec-WebSocket-Version must be 13/ },
  },
  {
    name: 'WebSocket without a key',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Key': undefined, 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 400, message: /Sec-WebSocket-Key/ },
  },
  {
    name: 'WebSocket with a malformed key',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Key': 'short', 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 400, message: /Sec-WebSocket-Key/ },
  },
  {
    name: 'Upgrade to something other than WebSocket',
    run: (f) => upgrade(f, ws(), { Upgrade: 'h2c', 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 400, message: /Upgrade header must be "websocket"/ },
  },
  {
    name: 'WebSocket handshake with POST',
    run: (f) => upgrade(f, ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }, 'POST'),
    expect: { status: 400, message: /use GET/ },
  },
  {
    name: 'WebSocket to an app that does not exist',
    run: (f) => upgrade(f, ws('nope'), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 404, message: /no app named "nope"/ },
  },
  {
    name: 'WebSocket to a Bokeh app that is not listed',
    run: (f) => upgrade(f, ws('stream'), { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 404, message: /no app named "stream"/ },
  },
  {
    name: 'WebSocket upgrade on a path that is not a socket',
    run: (f) => upgrade(f, `${PREFIX}/ping/autoload.js`, { 'Sec-WebSocket-Protocol': protocols('bokeh', mintToken(f.stack)) }),
    expect: { status: 404, message: /only at \/bokeh\/<app>\/ws/ },
  },
  { name: 'plain GET on the WebSocket endpoint', run: (f) => get(f, ws()), expect: { status: 426, message: /connect to it with a WebSocket client/ } },
  // --- Sizes -----------------------------------------------------------------------------------
  {
    name: 'request headers over 64 KB',
    run: (f) => get(f, `${PREFIX}/ping`, { Cookie: `big=${'x'.repeat(70 * 1024)}` }),
    expect: { status: 431, message: /exceed 64 KB/ },
    nginx: { status: 400 },
    // Apache refuses it first too: LimitRequestFieldSize is 32 KB, and its answer is a 400.
    apache: { status: 400 },
  },
  {
    name: 'a request target of 100 KB',
    run: (f) => get(f, `${PREFIX}/ping?${'q'.repeat(100 * 1024)}`),
    expect: { status: 431 },
    nginx: { status: 414 },
    // LimitRequestLine is 32 KB in Apache.
    apache: { status: 414 },
  },
  {
    name: 'a WebSocket message over WS_MAX_MESSAGE_BYTES',
    run: (f) => oversizedMessage(f, 1024 * 1024 + 1),
    expect: { closeCode: 1009, reason: /WS_MAX_MESSAGE_BYTES \(1048576 bytes\)/ },
  },
  // --- WebSocket frames --------------------------------------------------------------------------
  { name: 'an unmasked frame from a client', run: (f) => rawFrame(f, [0x81, 0x02, 0x68, 0x69]), expect: { closeCode: 1002, reason: /must be masked/ } },
  {
    name: 'a compressed frame when no compression was negotiated',
    run: (f) => rawFrame(f, maskedFrame(0xc1, 'hi')),
    expect: { closeCode: 1002, reason: /Reserved frame bits/ },
  },
  { name: 'a frame with an unknown opcode', run: (f) => rawFrame(f, maskedFrame(0x83, 'hi')), expect: { closeCode: 1002, reason: /opcode 3/ } },
  { name: 'a fragmented ping', run: (f) => rawFrame(f, maskedFrame(0x09, 'hi')), expect: { closeCode: 1002, reason: /Control frames/ } },
  {
    name: 'a WebSocket that sends nothing for WS_IDLE_TIMEOUT_MS',
    run: (f) => silentSocket(f),
    expect: { closeCode: 1001, reason: /No traffic for 10 s; reload the page/ },
  },
  {
    name: 'a request body on a Bokeh route',
    run: (f) => raw(f, [`GET ${PREFIX}/ping HTTP/1.1\r\nHost: ${hostOf(f)}\r\nConnection: close\r\nContent-Length: 2097152\r\n\r\n`, 'x'.repeat(64 * 1024)]),
    expect: { status: 413, message: /take no request body/ },
    // NGINX refuses it first: client_max_body_size is 1 MB.
    nginx: { status: 413 },
    // Apache too, from the declared Content-Length (its rule in apache/conf/proxy.conf).
    apache: { status: 413 },
  },
  // --- Paths -----------------------------------------------------------------------------------
  {
    name: 'dot-dot segments under the prefix',
    run: (f) => get(f, `${PREFIX}/static/../../app/serve.py`),
    expect: { status: 400, message: /dot segments/ },
    nginx: { status: [400, 404] },
  },
  {
    name: 'percent-encoded dot-dot segments',
    run: (f) => get(f, `${PREFIX}/static/%2e%2e/%2e%2e/app/serve.py`),
    expect: { status: 400, message: /dot segments/ },
  },
  { name: 'percent-encoded slashes', run: (f) => get(f, `${PREFIX}/static/..%2f..%2fapp%2fserve.py`), expect: { status: 400, message: /encoded slashes/ } },
  { name: 'backslashes', run: (f) => get(f, `${PREFIX}/static/%5c..%5capp%5cserve.py`), expect: { status: 400, message: /encoded slashes or backslashes/ } },
  {
    name: 'an encoded NUL byte',
    run: (f) => get(f, `${PREFIX}/static/js/bokeh.min.js%00.png`),
    expect: { status: 400, message: /control characters/ },
    nginx: { status: 400 },
    // Apache's core refuses a NUL in the decoded path itself, with a 404, before any proxying.
    apache: { status: 404 },
  },
  { name: 'double percent-encoding', run: (f) => get(f, `${PREFIX}/static/%252e%252e/serve.py`), expect: { status: 400, message: /double percent-encoding/ } },
  { name: 'empty path segments', run: (f) => get(f, `${PREFIX}//ping`), expect: { status: 400, message: /empty path segments/ } },
  { name: "Bokeh's own index of every app", run: (f) => get(f, `${PREFIX}/`), expect: { status: 404, message: /index is not served/ } },
  { name: 'an app that does not exist', run: (f) => get(f, `${PREFIX}/secret-app`), expect: { status: 404, message: /no app named "secret-app"/ } },
  { name: 'a Bokeh app that is not listed in BOKEH_APPS', run: (f) => get(f, autoload('stream')), expect: { status: 404, message: /no app named "stream"/ } },
  // --- Methods and malformed HTTP --------------------------------------------------------------
  { name: 'DELETE on an app', run: (f) => get(f, `${PREFIX}/ping`, {}, 'DELETE'), expect: { status: 405, message: /DELETE is not allowed here/ } },
  { name: 'TRACE on a static file', run: (f) => get(f, `${PREFIX}/static/js/bokeh.min.js`, {}, 'TRACE'), expect: { status: 405 } },
  { name: 'a method that does not exist', run: (f) => get(f, `${PREFIX}/ping`, {}, 'BREW'), expect: { status: [400, 405] } },
  { name: 'a request line that is not HTTP', run: (f) => raw(f, ['HELLO WORLD\r\n\r\n']), expect: { status: 400 } },
  {
    name: 'Content-Length and Transfer-Encoding together (request smuggling)',
    run: (f) =>
      raw(f, [`GET ${PREFIX}/ping HTTP/1.1\r\nHost: ${hostOf(f)}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`]),
    expect: { status: 400 },
    // Apache takes the other way RFC 9112 (section 6.3) allows: Transfer-Encoding wins, it drops
    // Content-Length and closes the connection after answering. The gateway gets one unambiguous
    // request with an empty body (the page), and nothing is left over to smuggle.
    apache: { status: 200 },
  },
  {
    name: 'a header with a control character',
    run: (f) => raw(f, [`GET ${PREFIX}/ping HTTP/1.1\r\nHost: ${hostOf(f)}\r\nX-Bad: a\u0001b\r\nConnection: close\r\n\r\n`]),
    expect: { status: 400 },
  },
  { name: 'HTTP/1.1 without a Host header', run: (f) => raw(f, [`GET ${PREFIX}/ping HTTP/1.1\r\nConnection: close\r\n\r\n`]), expect: { status: 400 } },
  // --- Slow clients ----------------------------------------------------------------------------
  {
    name: 'slowloris: headers dripped one line every second',
    run: (f) =>
      raw(f, [`GET ${PREFIX}/ping HTTP/1.1\r\nHost: ${hostOf(f)}\r\n`, ...Array.from({ length: 40 }, (_, i) => `X-Drip-${i}: ${i}\r\n`)], {
        gapMs: 1_000,
        timeoutMs: 30_000,
      }),
    // HEADERS_TIMEOUT_MS is 3 s in this stack; Node checks it every second.
    expect: { closed: 'any', withinMs: 6_000, status: [408] },
    // NGINX's client_header_timeout is 15 s; it closes without an answer. The gateway never
    // sees the request.
    nginx: { closed: 'any', withinMs: 20_000, status: [400, 408] },
    // Apache's RequestReadTimeout for headers is 15 s too; it answers 408.
    apache: { closed: 'any', withinMs: 20_000, status: [408] },
  },
];
