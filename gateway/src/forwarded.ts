/**
 * Who a request really came from and which public address it was sent to, honouring
 * X-Forwarded-* only from trusted proxies. Pages, the HTTP proxy and the WebSocket relay all use
 * this one view, so a browser is never handed an internal host name (bokeh issues #5993, #5830)
 * and a client cannot forge the URLs a page embeds.
 */
import { lookup } from 'node:dns/promises';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import proxyAddr from 'proxy-addr';
import { PROXY_PRESETS, type Config } from './config.js';

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
  /** Whether the peer is a trusted proxy, whose headers speak for the client. */
  viaTrustedProxy: boolean;
}

/** Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * Which peers may speak for the client. Besides Express's forms (hop count, addresses, CIDR
 * ranges, presets) it takes host names such as `nginx`: in compose, a service's address is only
 * known at run time and changes when its container is recreated. Names are looked up again,
 * at most once a second, when a request carrying X-Forwarded-* comes from a peer not yet trusted.
 */
export class ProxyTrust {
  private readonly fixed: TrustFn;
  private readonly names: string[];
  private resolved = new Set<string>();
  private lastLookup = 0;
  private pending: Promise<void> | undefined;

  /** Headers that only a proxy sends; a request carrying one may need fresh name lookups. */
  private readonly proxyHeaders: string[];

  constructor(setting: Config['trustProxy'], extraProxyHeaders: readonly string[] = []) {
    this.proxyHeaders = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', ...extraProxyHeaders.map((name) => name.toLowerCase())];
    if (setting === false) {
      this.fixed = () => false;
      this.names = [];
    } else if (typeof setting === 'number') {
      this.fixed = (_address, hop) => hop < setting;
      this.names = [];
    } else {
      const addresses = setting.filter((entry) => PROXY_PRESETS.has(entry) || isIP(entry.split('/')[0]!) !== 0);
      this.fixed = addresses.length > 0 ? proxyAddr.compile(addresses) : () => false;
      this.names = setting.filter((entry) => !addresses.includes(entry));
    }
  }

  readonly trusts: TrustFn = (address, hop) => this.fixed(address, hop) || this.resolved.has(plainAddress(address));

  /** Makes sure name lookups are fresh enough to judge this request; cheap when they are. */
  async prepare(req: IncomingMessage): Promise<void> {
    if (this.names.length === 0) return;
    const peer = req.socket.remoteAddress ?? '';
    const forwarded = this.proxyHeaders.some((name) => req.headers[name] !== undefined);
    if (!forwarded || this.trusts(peer, 0) || Date.now() - this.lastLookup < 1_000) return;
    this.pending ??= this.lookupNames().finally(() => {
      this.pending = undefined;
    });
    await this.pending;
  }

  private async lookupNames(): Promise<void> {
    this.lastLookup = Date.now();
    const found = await Promise.all(
      this.names.map((name) =>
        lookup(name, { all: true }).then(
          (answers) => answers.map((answer) => answer.address),
          () => [],
        ),
      ),
    );
    this.resolved = new Set(found.flat());
  }
}

function firstValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const first = value?.split(',')[0]?.trim();
  return first === '' ? undefined : first;
}

export function clientView(req: IncomingMessage, trust: TrustFn, publicOrigins: readonly URL[]): ClientView {
  const peer = plainAddress(req.socket.remoteAddress ?? '');
  const fromProxy = trust(peer, 0);
  const encrypted = (req.socket as TLSSocket).encrypted === true;

  const forwardedProto = fromProxy ? firstValue(req.headers['x-forwarded-proto'])?.toLowerCase() : undefined;
  const proto = forwardedProto === 'https' || (forwardedProto === undefined && encrypted) ? 'https' : 'http';
  const host = (fromProxy ? firstValue(req.headers['x-forwarded-host']) : undefined) ?? req.headers.host ?? '';

  return { ip: proxyAddr(req, trust), proto, host, origin: choosePublicOrigin(proto, host, publicOrigins), viaTrustedProxy: fromProxy };
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

/**
 * Headers describing the client, recomputed by the gateway: whatever a client sent itself is
 * replaced, and values from a trusted proxy have already been folded into `view`.
 */
export function forwardedHeaders(req: IncomingMessage, view: ClientView): Record<string, string> {
  const url = new URL(view.origin);
  return {
    'x-forwarded-for': view.ip,
    'x-forwarded-proto': view.proto,
    'x-forwarded-host': url.host,
    'x-forwarded-port': url.port || (view.proto === 'https' ? '443' : '80'),
    'x-real-ip': view.ip,
    ...(req.headers.host === undefined ? {} : { host: req.headers.host }),
  };
}
