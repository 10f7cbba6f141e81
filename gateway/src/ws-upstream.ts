/**
 * Bokeh's side of a WebSocket handshake. The gateway opens it before it answers the browser, so
 * that a refusal from Bokeh reaches the browser as an HTTP status rather than a socket that
 * opens and closes at once. The browser's key and subprotocols go to Bokeh as they were offered,
 * and Bokeh's answer is checked the way a client checks it (RFC 6455 section 4.1).
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { upstreamError, type GatewayError } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import { failureOf, refusedForDrain, type ReplicaFailure, type Upstream } from './upstream.js';
import { acceptKey, destroyOnError } from './ws-handshake.js';

/** What Bokeh accepted, for the browser's 101. */
export interface Accepted {
  accept: string;
  protocol: string | undefined;
}

/**
 * How the handshake ends. Made once per relay and passed in, never made per upgrade: a closure
 * made where the upgrade request is in scope would keep that request alive for the session.
 */
export interface BokehSideEvents {
  /** Bokeh accepted; `bokeh` is its socket, `bokehHead` what it sent right after its 101. */
  opened(browser: Duplex, browserHead: Buffer, bokeh: Socket, bokehHead: Buffer, accepted: Accepted, meta: Record<string, unknown>): void;
  /** Bokeh refused, failed or answered wrongly; the browser has not been answered yet. */
  refused(browser: Duplex, error: GatewayError, meta: Record<string, unknown>): void;
}

/**
 * Asked when Bokeh's side failed before the browser was answered, with what the failure says
 * about the replica; returns true when it takes over (it asks another replica), so the browser
 * is not refused yet. Made per upgrade: the handshake's listeners, which hold it, are removed
 * once Bokeh accepts.
 */
export type TryAnother = (error: GatewayError, failure: ReplicaFailure) => boolean;

/** Opens Bokeh's side of the handshake, with the browser's key and subprotocols. */
export function openBokehSide(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  v: ClientView,
  bokehServer: Upstream,
  offered: string[],
  pathAndQuery: string,
  timeoutMs: number,
  meta: Record<string, unknown>,
  on: BokehSideEvents,
  tryAnother?: TryAnother,
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
  const fail = (error: GatewayError, failure: ReplicaFailure) => {
    if (answered) return;
    answered = true;
    socket.off('close', releaseUpstream);
    upstream.destroy();
    if (tryAnother?.(error, failure) === true) return;
    on.refused(socket, error, meta);
  };

  // A timer of our own: ClientRequest.setTimeout leaves a listener on the socket that would keep
  // this request, and the browser's with it, alive for the whole session.
  const timer = setTimeout(() => {
    upstream.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
  }, timeoutMs);
  upstream.once('close', () => clearTimeout(timer));
  upstream.on('error', (err: NodeJS.ErrnoException) => fail(upstreamError(err, bokehServer.origin), failureOf(err)));
  upstream.on('response', (res) => {
    const drains = refusedForDrain(res);
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
      const error: GatewayError = {
        status,
        code: 'BOKEH_REFUSED',
        message: `The Bokeh server refused the WebSocket (${status}${detail ? `: ${detail}` : ''}).`,
      };
      // A draining replica starts no session, so another may take this one.
      fail(error, drains ? { replica: 'draining', retry: true, kind: 'draining' } : { retry: false, kind: 'refused' });
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
      fail(
        { status: 502, code: 'BOKEH_BAD_GATEWAY', message: `The Bokeh server answered the WebSocket handshake with ${wrong}.` },
        { retry: false, kind: 'bad_handshake' },
      );
      return;
    }
    answered = true;
    clearTimeout(timer);
    socket.off('close', releaseUpstream);
    // The handshake's listeners hold the browser's request; the session needs none of it.
    upstream.removeAllListeners();
    upstream.on('error', () => undefined);
    destroyOnError(bokeh);
    on.opened(socket, head, bokeh, bokehHead, { accept: res.headers['sec-websocket-accept']!, protocol }, meta);
  });
  upstream.end();
}
