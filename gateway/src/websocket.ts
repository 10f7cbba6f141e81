/**
 * Bokeh's WebSocket (`<prefix>/<app>/ws`), relayed message for message. The gateway opens the
 * upstream connection first and only then completes the browser's handshake, so a refusal from
 * Bokeh (bad token, wrong origin) reaches the browser as Bokeh's own HTTP status instead of an
 * accepted socket that closes at once.
 *
 * The relay terminates both sockets rather than splicing bytes, which is what lets the gateway
 * enforce a message limit and close every session with 1001 on shutdown. It keeps what Bokeh
 * relies on: the subprotocols ("bokeh" plus the session token) pass through untouched, every
 * message keeps its text/binary type and order (Bokeh sends a buffer as a text header followed
 * by a binary frame), pings and pongs go end to end, and close codes carry over.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Authenticator } from './auth.js';
import type { Config } from './config.js';
import { answerOnSocket, upstreamError, type GatewayError } from './errors.js';
import type { ClientView } from './forwarded.js';
import { forwardedHeaders, underPrefix } from './proxy.js';
import { classifyBokehRequest } from './routes.js';
import { socketRefusal } from './sessions.js';

/** Close codes of our own, chosen from RFC 6455 and the IANA registry. */
export const CLOSE = {
  /** Gateway shutting down: the browser should reconnect later. */
  goingAway: 1001,
  /** Bokeh's side dropped without a close frame (restart, crash, network). */
  bokehLost: 1014,
  /** A close code that may not be sent on the wire arrived; report a generic failure. */
  internalError: 1011,
} as const;

/** Sender backpressure: stop reading from one side while the other has this much queued. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;
const LOW_WATER_BYTES = 1024 * 1024;

export interface WebSocketRelay {
  /** The HTTP server's `upgrade` listener. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Refuse new sessions and close open ones with `code`; resolves when all are closed. */
  closeAll(code: number, reason: string, timeoutMs: number): Promise<void>;
  readonly openSessions: number;
}

/**
 * Bokeh writes each message as several frames, and they usually arrive in one read. Holding a
 * socket's writes until the end of the current tick passes them on in one system call (and one
 * packet) instead of one per frame, which was most of the relay's CPU time.
 */
export function tickBatcher(socket: Duplex): () => void {
  let held = false;
  const flush = () => {
    held = false;
    socket.uncork();
  };
  return () => {
    if (held) return;
    held = true;
    socket.cork();
    process.nextTick(flush);
  };
}

/** RFC 6455 section 4.2.1: what a valid opening handshake must carry. */
function handshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return `WebSocket handshakes use GET, not ${req.method}`;
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'the Upgrade header must be "websocket"';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'Sec-WebSocket-Key is missing or malformed';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version must be 13';
  return undefined;
}

/** The Origin header as an origin ("https://host[:port]"), or undefined when it is not one. */
function originOf(header: string): string | undefined {
  try {
    const url = new URL(header);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

function subprotocols(req: IncomingMessage): string[] {
  return (req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Codes 1005, 1006 and 1015 describe a close but may never be sent; map them to sendable ones. */
export function relayCloseCode(code: number, lost: number): number | undefined {
  if (code === 1005) return undefined;
  if (code === 1006 || code === 1015) return lost;
  if ((code >= 1000 && code <= 1014 && code !== 1004) || (code >= 3000 && code <= 4999)) return code;
  return CLOSE.internalError;
}

/** A close reason is at most 123 bytes on the wire. */
function clampReason(reason: Buffer | string): string {
  const text = reason.toString();
  return Buffer.byteLength(text) <= 123
    ? text
    : Buffer.from(text)
        .subarray(0, 120)
        .toString()
        .replace(/\uFFFD$/, '');
}

export function webSocketRelay(config: Config, view: (req: IncomingMessage) => ClientView, auth: Authenticator, log: Logger): WebSocketRelay {
  const allowedOrigins = new Set(config.publicOrigins.map((origin) => origin.origin));
  const sessions = new Set<{ client: WebSocket; upstream: WebSocket }>();
  let accepting = true;

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: config.wsMaxMessageBytes,
    autoPong: false,
    skipUTF8Validation: true,
    // The protocol Bokeh picked, recorded on the request before the handshake completes.
    handleProtocols: (_offered, req) => (req as IncomingMessage & { bokehProtocol?: string }).bokehProtocol ?? false,
  });

  function pipe(from: WebSocket, to: WebSocket, toSocket: Duplex): void {
    const batch = tickBatcher(toSocket);
    from.on('message', (data: RawData, isBinary: boolean) => {
      if (to.readyState !== WebSocket.OPEN) return;
      batch();
      to.send(data as Buffer, { binary: isBinary }, () => {
        if (from.isPaused && to.bufferedAmount < LOW_WATER_BYTES) from.resume();
      });
      if (to.bufferedAmount > HIGH_WATER_BYTES) from.pause();
    });
    from.on('ping', (data) => to.readyState === WebSocket.OPEN && to.ping(data));
    from.on('pong', (data) => to.readyState === WebSocket.OPEN && to.pong(data));
  }

  function relay(client: WebSocket, upstream: WebSocket, sockets: { client: Duplex; upstream: Duplex }, meta: Record<string, unknown>): void {
    const session = { client, upstream };
    const opened = Date.now();
    sessions.add(session);
    log.info({ ...meta, protocol: client.protocol }, 'websocket opened');
    pipe(client, upstream, sockets.upstream);
    pipe(upstream, client, sockets.client);

    // A browser answers Bokeh's keep-alive pings, so silence means it is gone (or never was one).
    if (config.wsIdleTimeoutMs > 0) {
      const idle = setTimeout(() => {
        log.info({ ...meta, idleMs: config.wsIdleTimeoutMs }, 'websocket idle, closing');
        client.close(CLOSE.goingAway, `No traffic for ${Math.round(config.wsIdleTimeoutMs / 1000)} s; reload the page`);
        upstream.close(CLOSE.goingAway, 'client idle');
      }, config.wsIdleTimeoutMs);
      const active = () => idle.refresh();
      client.on('message', active);
      client.on('pong', active);
      client.on('ping', active);
      client.once('close', () => clearTimeout(idle));
    }

    upstream.on('close', (code, reason) => {
      if (client.readyState === WebSocket.OPEN) {
        const sent = relayCloseCode(code, CLOSE.bokehLost);
        client.close(sent, sent === CLOSE.bokehLost ? 'Lost connection to the Bokeh server; reload the page' : clampReason(reason));
      }
    });
    client.on('close', (code, reason) => {
      sessions.delete(session);
      if (upstream.readyState === WebSocket.OPEN) upstream.close(relayCloseCode(code, CLOSE.goingAway), clampReason(reason));
      log.info({ ...meta, code, durationMs: Date.now() - opened }, 'websocket closed');
    });
    client.on('error', (err) => log.info({ ...meta, err: err.message }, 'websocket client error'));
    upstream.on('error', (err) => log.warn({ ...meta, err: err.message }, 'websocket bokeh error'));
  }

  function refuse(socket: Duplex, error: GatewayError, meta: Record<string, unknown>, headers?: Record<string, string>): void {
    log.info({ ...meta, status: error.status, error: error.code }, 'websocket refused');
    answerOnSocket(socket, error, headers);
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // A reset from the client must never become an uncaught exception.
    socket.on('error', () => socket.destroy());
    // The raw target: a parsed URL would already have resolved "../" segments.
    const [path = '', query] = (req.url ?? '').split(/\?(.*)/s, 2);
    const v = view(req);
    const meta = { path: path.slice(0, 200), ip: v.ip };
    const notHere: GatewayError = { status: 404, code: 'NOT_FOUND', message: `WebSocket connections are served only at ${config.bokehPrefix}/<app>/ws.` };
    if (!underPrefix(path, config.bokehPrefix)) return refuse(socket, notHere, meta);
    const route = classifyBokehRequest('GET', path, config.bokehPrefix, config.apps);
    if (!route.ok) return refuse(socket, route.error, meta);
    if (route.route.kind !== 'websocket') return refuse(socket, notHere, meta);
    const app = route.route.app;

    const problem = handshakeProblem(req);
    if (problem !== undefined) {
      return refuse(socket, { status: 400, code: 'BAD_HANDSHAKE', message: `Invalid WebSocket handshake: ${problem}.` }, meta);
    }
    // Browsers always send Origin; other clients may leave it out (and could write any value).
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(originOf(origin) ?? '')) {
      return refuse(
        socket,
        {
          status: 403,
          code: 'ORIGIN_NOT_ALLOWED',
          message: `WebSocket connections from ${origin.slice(0, 200)} are not allowed. If users open your pages there, add that origin to PUBLIC_ORIGINS.`,
        },
        meta,
      );
    }
    if (!accepting) {
      return refuse(socket, { status: 503, code: 'SHUTTING_DOWN', message: 'The gateway is shutting down; reconnect in a moment.' }, meta);
    }
    auth.authenticate(req, v).then(
      (result) => {
        if (!result.ok) return refuse(socket, result.error, meta, result.headers);
        const refusal = socketRefusal(config, subprotocols(req), result.user);
        if (refusal !== undefined) return refuse(socket, refusal, meta);
        connect(req, socket, head, v, `${path}${query === undefined ? '' : `?${query}`}`, { ...meta, app, user: result.user });
      },
      () => socket.destroy(),
    );
  }

  function connect(req: IncomingMessage, socket: Duplex, head: Buffer, v: ClientView, pathAndQuery: string, meta: Record<string, unknown>): void {
    const target = new URL(pathAndQuery, config.bokehUrl);
    target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:';
    const headers: Record<string, string> = { ...forwardedHeaders(req, v) };
    delete headers.host;
    if (typeof req.headers.cookie === 'string') headers.cookie = req.headers.cookie;
    if (typeof req.headers['user-agent'] === 'string') headers['user-agent'] = req.headers['user-agent'];

    let upstream: WebSocket;
    try {
      upstream = new WebSocket(target, subprotocols(req), {
        headers,
        ...(typeof req.headers.origin === 'string' ? { origin: req.headers.origin } : {}),
        perMessageDeflate: false,
        maxPayload: config.wsMaxMessageBytes,
        autoPong: false,
        skipUTF8Validation: true,
        handshakeTimeout: config.upstreamTimeoutMs,
        followRedirects: false,
      });
    } catch (err) {
      // ws rejects subprotocol lists that are not valid tokens or repeat a value.
      refuse(socket, { status: 400, code: 'BAD_SUBPROTOCOL', message: `Invalid Sec-WebSocket-Protocol: ${(err as Error).message}.` }, meta);
      return;
    }

    // Until the relay owns the browser's socket, losing that socket must release Bokeh's.
    let relayed = false;
    let answered = false;
    const releaseUpstream = () => {
      if (!relayed) upstream.terminate();
    };
    socket.once('close', releaseUpstream);

    let upstreamSocket: Duplex | undefined;
    upstream.once('upgrade', (res) => {
      (req as IncomingMessage & { bokehProtocol?: string }).bokehProtocol = res.headers['sec-websocket-protocol'];
      upstreamSocket = res.socket;
    });
    const onRefused = (_request: unknown, res: IncomingMessage) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 2048) body += chunk;
      });
      res.on('end', () => {
        const detail =
          body
            .replace(/<[^>]*>/g, ' ')
            .replace(/\s+/g, ' ')
            .trim()
            .slice(0, 300) ||
          res.statusMessage ||
          '';
        const status = res.statusCode ?? 502;
        refuse(socket, { status, code: 'BOKEH_REFUSED', message: `The Bokeh server refused the WebSocket (${status}${detail ? `: ${detail}` : ''}).` }, meta);
        upstream.terminate();
      });
    };
    const onFailed = (err: NodeJS.ErrnoException) => {
      if (answered) return;
      answered = true;
      refuse(socket, upstreamError(err, config.bokehUrl.origin), meta);
    };
    upstream.once('unexpected-response', onRefused);
    upstream.on('error', onFailed);
    upstream.once('open', () => {
      answered = true;
      if (!socket.writable) {
        upstream.close(CLOSE.goingAway, 'client went away');
        return;
      }
      wss.handleUpgrade(req, socket, head, (client) => {
        relayed = true;
        relay(client, upstream, { client: socket, upstream: upstreamSocket! }, meta);
        // The relay has its own handlers now. These closures would keep the upgrade request, its
        // headers and `head` alive for the whole session.
        socket.off('close', releaseUpstream);
        upstream.off('unexpected-response', onRefused);
        upstream.off('error', onFailed);
      });
    });
  }

  async function closeAll(code: number, reason: string, timeoutMs: number): Promise<void> {
    accepting = false;
    const open = [...sessions];
    const closed = open.map(
      ({ client, upstream }) =>
        new Promise<void>((resolve) => {
          if (client.readyState === WebSocket.CLOSED) return resolve();
          client.once('close', () => resolve());
          client.close(code, reason);
          if (upstream.readyState === WebSocket.OPEN) upstream.close(code, reason);
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const { client, upstream } of open) {
          client.terminate();
          upstream.terminate();
        }
        resolve();
      }, timeoutMs);
    });
    await Promise.race([Promise.all(closed), deadline]);
    clearTimeout(timer);
  }

  return {
    handleUpgrade,
    closeAll,
    get openSessions() {
      return sessions.size;
    },
  };
}
