/**
 * The opening handshake as RFC 6455 section 4 defines it, seen from the server: what a valid
 * request carries, the accept value, the offered subprotocols and the Origin. Plain functions
 * of the request and socket; the admission checks (admission.ts), the upgrade handler
 * (websocket.ts) and the Bokeh-side handshake (ws-upstream.ts) use them.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 section 4.2.1: what a valid opening handshake must carry. */
export function handshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return `WebSocket handshakes use GET, not ${req.method}`;
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'the Upgrade header must be "websocket"';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'Sec-WebSocket-Key is missing or malformed';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version must be 13';
  return undefined;
}

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64');
}

/** The Origin header as an origin ("https://host[:port]"), or undefined when it is not one. */
export function originOf(header: string): string | undefined {
  try {
    const url = new URL(header);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

export function subprotocols(req: IncomingMessage): string[] {
  return (req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/** The server's answer that completes a handshake, with what the real server (Bokeh) chose. */
export function switchingProtocols(accept: string, protocol: string | undefined): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\n' +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n` +
    (protocol === undefined ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
    '\r\n'
  );
}

/**
 * A reset must never become an uncaught exception. A module-level function, so the listener's
 * scope holds the socket alone and not the request being handled when it was added.
 */
export function destroyOnError(stream: Duplex): void {
  stream.on('error', () => stream.destroy());
}
