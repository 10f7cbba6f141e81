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
import { autoloadUrlFor, modelNamed, tokenFromAutoload } from '../../client/bokeh-client.js';
import { FRONT_NAMES, mintToken, openAppPage, PREFIX, request, type FrontName, type Stack } from './stack.js';
import { METHOD_CASES, PATH_CASES, SESSION_AND_UPGRADE_CASES, upgradeHeaders, type Expectation, type Forge, type RequestCase } from './hostile-cases.js';

export { HOSTILE_ENVIRONMENT, type Expectation } from './hostile-cases.js';

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

/** A WebSocket opening handshake as a browser sends it, with `changes` applied (undefined removes). */
export function upgrade(front: Front, target: string, changes: Record<string, string | undefined> = {}, method = 'GET'): Promise<RawReply> {
  const lines = [
    `${method} ${target} HTTP/1.1`,
    `Host: ${hostOf(front)}`,
    ...Object.entries(upgradeHeaders(front.origin, changes)).map(([name, value]) => `${name}: ${value}`),
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

export interface HostileCase {
  name: string;
  run(front: Front): Promise<RawReply | Closed>;
  expect: Expectation;
  /** When NGINX answers first in the nginx layout, it may answer differently. */
  nginx?: Expectation;
  /** When Apache answers first in the apache layout, it may answer differently. */
  apache?: Expectation;
}

/** What a request case needs from the stack behind `front`. */
function forge(front: Front): Forge {
  return {
    token: ({ secretKey, ...options } = {}) => mintToken(secretKey === undefined ? front.stack : { ...front.stack, secretKey }, options),
    origin: front.origin,
  };
}

/** A request case, sent to a real front. */
function sent(item: RequestCase): HostileCase {
  return {
    name: item.name,
    run: (f) => {
      const probe = item.request(forge(f));
      return probe.kind === 'get' ? get(f, probe.target, probe.headers, probe.method) : upgrade(f, probe.target, probe.changes, probe.method);
    },
    expect: item.expect,
    ...(item.nginx ? { nginx: item.nginx } : {}),
    ...(item.apache ? { apache: item.apache } : {}),
  };
}

export const HOSTILE_CASES: HostileCase[] = [
  ...SESSION_AND_UPGRADE_CASES.map(sent),
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
  ...PATH_CASES.map(sent),
  ...METHOD_CASES.map(sent),
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
