/**
 * Who a request really came from and which public address it was sent to, honouring
 * X-Forwarded-* only from trusted proxies. Pages, the HTTP proxy and the WebSocket relay all use
 * this one view, so a browser is never handed an internal host name (bokeh issues #5993, #5830)
 * and a client cannot forge the URLs a page embeds.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import proxyAddr from 'proxy-addr';
import type { Config } from './config.js';

export type TrustFn = (address: string, hop: number) => boolean;

export interface ClientView {
  /** Address of the client (the left-most trusted hop). */
  ip: string;
  /** Scheme the client used: "http" or "https". */
  proto: 'http' | 'https';
  /** Host (and port) the client addressed, as it wrote it. */
  host: string;
  /** The public origin that pages and Bokeh URLs should use for this request. */
  origin: string;
}

export function compileTrust(trust: Config['trustProxy']): TrustFn {
  if (trust === false) return () => false;
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return proxyAddr.compile(trust);
}

function firstValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const first = value?.split(',')[0]?.trim();
  return first === '' ? undefined : first;
}

export function clientView(req: IncomingMessage, trust: TrustFn, publicOrigins: readonly URL[]): ClientView {
  const peer = req.socket.remoteAddress ?? '';
  const fromProxy = trust(peer, 0);
  const encrypted = (req.socket as TLSSocket).encrypted === true;

  const forwardedProto = fromProxy ? firstValue(req.headers['x-forwarded-proto'])?.toLowerCase() : undefined;
  const proto = forwardedProto === 'https' || (forwardedProto === undefined && encrypted) ? 'https' : 'http';
  const host = (fromProxy ? firstValue(req.headers['x-forwarded-host']) : undefined) ?? req.headers.host ?? '';

  return { ip: proxyAddr(req, trust), proto, host, origin: choosePublicOrigin(proto, host, publicOrigins) };
}

/**
 * The request's own origin when it is one of the configured public origins, else the canonical
 * (first) one: a spoofed Host header must not end up in URLs that a page hands to browsers.
 */
export function choosePublicOrigin(proto: string, host: string, publicOrigins: readonly URL[]): string {
  let candidate: string | undefined;
  try {
    candidate = new URL(`${proto}://${host}`).origin;
  } catch {
    candidate = undefined;
  }
  const match = publicOrigins.find((allowed) => allowed.origin === candidate);
  // The schema guarantees at least one origin.
  return (match ?? publicOrigins[0]!).origin;
}
