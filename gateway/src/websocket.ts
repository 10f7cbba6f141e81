/**
 * Bokeh's WebSocket (`<prefix>/<app>/ws`). The gateway checks the upgrade (route, handshake,
 * Origin, sign-in, token), opens Bokeh's side first and completes the browser's handshake only
 * when Bokeh has accepted, so a refusal from Bokeh reaches the browser as an HTTP status rather
 * than a socket that opens and closes at once.
 *
 * After the handshake the relay passes frames through unchanged, reading only their headers
 * (frames.ts): no message is reassembled, unmasked or copied, which keeps the relay as cheap as
 * NGINX's. The headers are enough for what the gateway promises: frames are well formed, no
 * message exceeds WS_MAX_MESSAGE_BYTES, silent browsers are closed, and on shutdown every session
 * gets a close frame with 1001. Bokeh's choices pass through as they are: the subprotocols
 * ("bokeh" plus the session token), each frame's type and order (a buffer is a text header frame
 * followed by a binary frame), pings and pongs, and close codes.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { AdmissionPipeline } from './admission.js';
import type { Config } from './config.js';
import { answerOnSocket, upstreamError, type GatewayError } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import { clientCloseFrame, FrameScanner, serverCloseFrame, type ScanResult } from './frames.js';
import type { Upstream, Upstreams } from './upstream.js';
import { acceptKey } from './ws-handshake.js';

/** Close codes of our own, chosen from RFC 6455 and the IANA registry. */
export const CLOSE = {
  /** Gateway shutting down, or the browser went silent: reconnect later. */
  goingAway: 1001,
  /** Bokeh's side dropped without a close frame (restart, crash, network). */
  bokehLost: 1014,
} as const;

/**
 * How much may wait for a slow reader before the relay stops reading from the other side. Not
 * the socket's 16 KiB high-water mark: a single 64 KiB read is over that, and pausing after each
 * one halved the rate of large messages.
 */
const BEHIND_BYTES = 1024 * 1024;
/** After its close frame, how long a peer gets to close the connection before it is cut. */
const CLOSE_GRACE_MS = 5_000;

export interface WebSocketRelay {
  /** The HTTP server's `upgrade` listener. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Refuse new sessions and close open ones with `code`; resolves when all are closed. */
  closeAll(code: number, reason: string, timeoutMs: number): Promise<void>;
  readonly openSessions: number;
  /** Whether closeAll was called: new sessions are refused from then on. */
  readonly shuttingDown: boolean;
}

type Side = 'browser' | 'bokeh';

/**
 * A reset must never become an uncaught exception. A module-level function, so the listener's
 * scope holds the socket alone and not the request being handled when it was added.
 */
function destroyOnError(stream: Duplex): void {
  stream.on('error', () => stream.destroy());
}

/** One direction of a session: frames read from `from`, scanned, written to `to`. */
interface Direction {
  from: Duplex;
  to: Duplex;
  scanner: FrameScanner;
  /** Who reads what this direction writes. */
  toSide: Side;
  /** A close frame went to `to` (passed on or our own): nothing else may follow it. */
  closeSent: boolean;
  /** `to` is ended or destroyed. */
  done: boolean;
}

/** A relayed session: the browser's socket, Bokeh's socket, and the frames between them. */
class Session {
  private readonly up: Direction;
  private readonly down: Direction;
  private readonly opened = Date.now();
  /** The first close frame seen, and whose it was. */
  private closeCode: number | undefined;
  private closedBy: Side | 'gateway' | undefined;
  /** The close frame we still owe each side once its direction reaches a frame boundary. */
  private owed: { browser?: Buffer; bokeh?: Buffer } = {};
  private graceTimer: NodeJS.Timeout | undefined;
  private ended = false;
  /** Set by traffic from the browser; the idle sweep clears it. */
  active = true;
  idleSince = Date.now();
  readonly finished: Promise<void>;
  private finish!: () => void;

  constructor(
    readonly browser: Duplex,
    readonly bokeh: Socket,
    maxMessageBytes: number,
    readonly meta: Record<string, unknown>,
    private readonly log: Logger,
    onEnd: (session: Session) => void,
  ) {
    this.finished = new Promise((resolve) => (this.finish = resolve));
    this.up = { from: browser, to: bokeh, scanner: new FrameScanner(true, maxMessageBytes), toSide: 'bokeh', closeSent: false, done: false };
    this.down = { from: bokeh, to: browser, scanner: new FrameScanner(false, maxMessageBytes), toSide: 'browser', closeSent: false, done: false };
    for (const dir of [this.up, this.down]) {
      const opposite = dir === this.up ? this.down : this.up;
      dir.from.on('data', (chunk: Buffer) => {
        if (dir === this.up) this.active = true;
        this.deliver(dir, dir.scanner.scan(chunk));
      });
      dir.from.on('end', () => this.sourceEnded(dir));
      dir.from.on('close', () => {
        this.sourceEnded(dir);
        // Nothing can be written to a closed socket any more.
        opposite.done = true;
        if (this.browser.destroyed && this.bokeh.destroyed && !this.ended) {
          this.ended = true;
          clearTimeout(this.graceTimer);
          onEnd(this);
          log.info({ ...meta, code: this.closeCode, by: this.closedBy, durationMs: Date.now() - this.opened }, 'websocket closed');
          this.finish();
        }
      });
    }
    browser.on('error', (err) => log.info({ ...meta, err: err.message }, 'websocket browser error'));
    bokeh.on('error', (err) => log.warn({ ...meta, err: err.message }, 'websocket bokeh error'));
  }

  /** Starts relaying, with whatever either side sent right after its handshake. */
  start(browserHead: Buffer, bokehHead: Buffer): void {
    if (bokehHead.length > 0) this.deliver(this.down, this.down.scanner.scan(bokehHead));
    if (browserHead.length > 0) this.deliver(this.up, this.up.scanner.scan(browserHead));
  }

  private deliver(dir: Direction, result: ScanResult): void {
    if (result.forward !== undefined && !dir.done) {
      dir.to.write(result.forward);
      if (dir.to.writableLength > BEHIND_BYTES && !dir.from.isPaused()) {
        // The reader is behind: stop reading from the writer until it has caught up.
        dir.from.pause();
        dir.to.once('drain', () => dir.from.resume());
      }
    }
    if (result.closed !== undefined) {
      dir.closeSent = true;
      this.noteClose(result.closed.code, dir === this.up ? 'browser' : 'bokeh');
    }
    if (result.held) this.payOwed(dir);
    if (result.violation !== undefined) {
      const { code, reason } = result.violation;
      const sender = dir === this.up ? 'browser' : 'bokeh';
      this.log.info({ ...this.meta, code, reason, sender }, 'websocket protocol violation');
      this.close(code, sender === 'browser' ? reason : `Bokeh sent a frame the gateway refuses: ${reason}`);
    }
  }

  private noteClose(code: number | undefined, by: Side | 'gateway'): void {
    if (this.closedBy !== undefined) return;
    this.closeCode = code;
    this.closedBy = by;
  }

  /** Sends both sides a close frame of our own (each at its next frame boundary) and ends. */
  close(code: number, reason: string): void {
    this.noteClose(code, 'gateway');
    this.owe(this.down, serverCloseFrame(code, reason));
    this.owe(this.up, clientCloseFrame(code, reason));
    this.cutLater();
  }

  private owe(dir: Direction, frame: Buffer): void {
    if (dir.closeSent || dir.done) return;
    this.owed[dir.toSide] = frame;
    if (dir.scanner.hold()) this.payOwed(dir);
  }

  private payOwed(dir: Direction): void {
    const frame = this.owed[dir.toSide];
    if (frame === undefined || dir.done) return;
    this.owed[dir.toSide] = undefined;
    dir.closeSent = true;
    dir.done = true;
    dir.to.end(frame);
  }

  /**
   * The side `dir` reads from stopped sending, so `dir`'s reader is finished with too. After a
   * proper close frame that is the end of the close handshake; a side that just dropped is
   * reported to the other with a close frame of our own.
   */
  private sourceEnded(dir: Direction): void {
    if (dir.done) return;
    dir.done = true;
    const bokehLost = dir === this.down;
    if (!dir.closeSent && dir.scanner.hold()) {
      dir.closeSent = true;
      dir.to.write(
        bokehLost
          ? serverCloseFrame(CLOSE.bokehLost, 'Lost connection to the Bokeh server; reload the page')
          : clientCloseFrame(CLOSE.goingAway, 'browser went away'),
      );
      this.noteClose(bokehLost ? CLOSE.bokehLost : 1006, bokehLost ? 'bokeh' : 'browser');
    }
    // Mid-frame there is no clean way out: that frame can never be finished.
    if (dir.closeSent) dir.to.end();
    else dir.to.destroy();
    this.cutLater();
  }

  /** Gives the peers CLOSE_GRACE_MS to finish closing, then cuts both connections. */
  private cutLater(): void {
    this.graceTimer ??= setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
  }

  destroy(): void {
    this.browser.destroy();
    this.bokeh.destroy();
  }
}

export function webSocketRelay(config: Config, upstreams: Upstreams, admission: AdmissionPipeline, log: Logger): WebSocketRelay {
  const sessions = new Set<Session>();
  let accepting = true;

  // A browser answers Bokeh's keep-alive pings, so silence means it is gone (or never was one).
  // One sweep for all sessions costs less than a timer reset on every frame.
  if (config.wsIdleTimeoutMs > 0) {
    const every = Math.min(1_000, config.wsIdleTimeoutMs / 10);
    setInterval(() => {
      const now = Date.now();
      for (const session of sessions) {
        if (session.active) {
          session.active = false;
          session.idleSince = now;
        } else if (now - session.idleSince >= config.wsIdleTimeoutMs) {
          session.idleSince = Infinity;
          log.info({ ...session.meta, idleMs: config.wsIdleTimeoutMs }, 'websocket idle, closing');
          session.close(CLOSE.goingAway, `No traffic for ${Math.round(config.wsIdleTimeoutMs / 1000)} s; reload the page`);
        }
      }
    }, every).unref();
  }

  function refuse(socket: Duplex, error: GatewayError, meta: Record<string, unknown>): void {
    log.info({ ...meta, status: error.status, error: error.code }, 'websocket refused');
    answerOnSocket(socket, error);
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // A reset from the client must never become an uncaught exception.
    destroyOnError(socket);
    admission.admit('upgrade', req).then(
      (result) => {
        const { path, query, view: v, route, user, sessionId, offered } = result.candidate;
        const meta = { path: path.slice(0, 200), ip: v.ip };
        if (!result.ok) return refuse(socket, result.error, meta);
        const upstream = upstreams.forSession(sessionId!);
        connect(req, socket, head, v, upstream, offered!, `${path}${query === undefined ? '' : `?${query}`}`, { ...meta, app: route!.app, user });
      },
      () => socket.destroy(),
    );
  }

  const forget = (session: Session) => sessions.delete(session);

  /**
   * Defined here rather than inside connect(): a closure keeps its whole scope chain alive, and
   * connect's scope holds the upgrade request, which no session needs.
   */
  function relay(browser: Duplex, bokeh: Socket, browserHead: Buffer, bokehHead: Buffer, meta: Record<string, unknown>): void {
    const session = new Session(browser, bokeh, config.wsMaxMessageBytes, meta, log, forget);
    sessions.add(session);
    log.info(meta, 'websocket opened');
    session.start(browserHead, bokehHead);
  }

  /** Bokeh's side of the handshake, with the browser's key and subprotocols. */
  function connect(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    v: ClientView,
    bokehServer: Upstream,
    offered: string[],
    pathAndQuery: string,
    meta: Record<string, unknown>,
  ): void {
    const key = req.headers['sec-websocket-key']!;
    const headers: Record<string, string> = {
      ...forwardedHeaders(req, v),
      host: bokehServer.url.host,
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': key,
      'sec-websocket-protocol': offered.join(', '),
    };
    for (const name of ['origin', 'cookie', 'user-agent'] as const) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }

    let answered = false;
    // Not from the pool: this connection becomes the session's and never returns to it.
    const upstream: ClientRequest = bokehServer.request(pathAndQuery, { method: 'GET', headers, agent: false });
    // Until the relay owns the browser's socket, losing that socket must release Bokeh's.
    const releaseUpstream = () => upstream.destroy();
    socket.once('close', releaseUpstream);
    const fail = (error: GatewayError) => {
      if (answered) return;
      answered = true;
      socket.off('close', releaseUpstream);
      refuse(socket, error, meta);
      upstream.destroy();
    };

    // A timer of our own: ClientRequest.setTimeout leaves a listener on the socket that would keep
    // this request, and the browser's with it, alive for the whole session.
    const timer = setTimeout(() => {
      upstream.destroy(Object.assign(new Error(`no answer within ${config.upstreamTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, config.upstreamTimeoutMs);
    upstream.once('close', () => clearTimeout(timer));
    upstream.on('error', (err: NodeJS.ErrnoException) => fail(upstreamError(err, bokehServer.origin)));
    upstream.on('response', (res) => {
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
        fail({ status, code: 'BOKEH_REFUSED', message: `The Bokeh server refused the WebSocket (${status}${detail ? `: ${detail}` : ''}).` });
      });
    });
    upstream.on('upgrade', (res, bokeh: Socket, bokehHead: Buffer) => {
      const protocol = res.headers['sec-websocket-protocol'];
      const wrong =
        res.headers['sec-websocket-accept'] !== acceptKey(key)
          ? 'a wrong Sec-WebSocket-Accept'
          : protocol !== undefined && !offered.includes(protocol)
            ? `a subprotocol that was not offered (${protocol.slice(0, 50)})`
            : res.headers['sec-websocket-extensions'] !== undefined
              ? 'an extension that was not offered'
              : undefined;
      if (wrong !== undefined) {
        bokeh.destroy();
        fail({ status: 502, code: 'BOKEH_BAD_GATEWAY', message: `The Bokeh server answered the WebSocket handshake with ${wrong}.` });
        return;
      }
      answered = true;
      clearTimeout(timer);
      socket.off('close', releaseUpstream);
      // The handshake's listeners hold the browser's request; the session needs none of it.
      upstream.removeAllListeners();
      upstream.on('error', () => undefined);
      destroyOnError(bokeh);
      if (!socket.writable) {
        bokeh.end(clientCloseFrame(CLOSE.goingAway, 'browser went away'));
        return;
      }
      bokeh.setNoDelay(true);
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\n' +
          'Upgrade: websocket\r\n' +
          'Connection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${res.headers['sec-websocket-accept']}\r\n` +
          (protocol === undefined ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
          '\r\n',
      );
      relay(socket, bokeh, head, bokehHead, { ...meta, protocol });
    });
    upstream.end();
  }

  async function closeAll(code: number, reason: string, timeoutMs: number): Promise<void> {
    accepting = false;
    const open = [...sessions];
    for (const session of open) session.close(code, reason);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const session of open) session.destroy();
        resolve();
      }, timeoutMs);
    });
    await Promise.race([Promise.all(open.map((session) => session.finished)), deadline]);
    clearTimeout(timer);
  }

  return {
    handleUpgrade,
    closeAll,
    get openSessions() {
      return sessions.size;
    },
    get shuttingDown() {
      return !accepting;
    },
  };
}
