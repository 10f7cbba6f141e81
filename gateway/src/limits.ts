/**
 * Per-client limits: how many sessions one client address may start, and how many WebSockets it
 * may open, per RATE_LIMIT_WINDOW_S, and how many WebSockets it may hold open at once. Every page
 * load and autoload.js makes a Bokeh session that runs the app's code, and Bokeh pays a full
 * garbage collection for each one it discards: without these, one client's flood of page loads
 * stalls Bokeh for everyone.
 *
 * The client is the address the ClientView gives (TRUST_PROXY decides whether X-Forwarded-For is
 * believed), so behind a trusted front every browser is counted on its own. The counts live in
 * this gateway's memory: with several gateway replicas each applies the limits to the clients it
 * sees, which is what a load balancer that spreads one client over them would need anyway.
 *
 * Refusals are logged once per client and limit per window, never once per request, so a flood
 * does not flood the log as well.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from './config.js';
import type { ErrorCode, GatewayError } from './errors.js';
import type { Metrics } from './metrics.js';

/** Which limit refused a request, as metrics and logs name it. */
export type LimitName = 'session_starts' | 'websocket_upgrades' | 'open_websockets' | 'replica_sessions';

export interface ClientLimits {
  /** A session start (page load, autoload.js) from `ip`: undefined when allowed, else the 429. */
  sessionStart(ip: string): Promise<GatewayError | undefined>;
  /** A WebSocket upgrade from `ip`: undefined when allowed, else the 429. */
  upgrade(ip: string): Promise<GatewayError | undefined>;
  /**
   * Counts `socket` as one of `ip`'s open WebSockets until it closes (whether the upgrade is
   * refused later, fails, or the relayed session ends); refuses when `ip` holds too many.
   */
  holdWebSocket(ip: string, socket: Duplex): GatewayError | undefined;
  /** WebSockets `ip` holds now (for tests). */
  openWebSockets(ip: string): number;
  /** Logs a refusal once per client and limit per window (the replica cap's refusals too). */
  noteRefusal(limit: LimitName, ip: string, error: GatewayError): void;
}

/** A 429 (or 503) that says when to come back and which setting to raise. */
export function limitError(status: 429 | 503, code: ErrorCode, message: string, retryAfterMs: number): GatewayError {
  return { status, code, message, headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } };
}

export function clientLimits(config: Config, log: Logger, metrics: Metrics): ClientLimits {
  const window = config.rateLimitWindowS;
  const limiter = (points: number) => (points > 0 ? new RateLimiterMemory({ points, duration: window }) : undefined);
  const starts = limiter(config.rateLimitSessionStarts);
  const upgrades = limiter(config.rateLimitWebSockets);
  // One point per client and limit per window: whether this refusal is the one that gets logged.
  const logged = new RateLimiterMemory({ points: 1, duration: window });
  const open = new Map<string, number>();

  const noteRefusal = (limit: LimitName, ip: string, error: GatewayError): void => {
    metrics.refused(limit);
    logged.consume(`${limit} ${ip}`).then(
      () =>
        log.warn(
          { ip, limit, status: error.status, error: error.code, quietForS: window },
          `${error.code}: refused; further refusals of this client are not logged for ${window} s`,
        ),
      () => undefined,
    );
  };

  const consume = async (rate: RateLimiterMemory | undefined, limit: LimitName, ip: string, refusal: (retryMs: number) => GatewayError) => {
    if (rate === undefined) return undefined;
    try {
      await rate.consume(ip);
      return undefined;
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      const error = refusal(res.msBeforeNext);
      noteRefusal(limit, ip, error);
      return error;
    }
  };

  /** Made from the address alone, so that the socket's listener keeps nothing else alive. */
  const releaseFor = (ip: string) => () => {
    const left = (open.get(ip) ?? 1) - 1;
    if (left <= 0) open.delete(ip);
    else open.set(ip, left);
  };

  return {
    sessionStart: (ip) =>
      consume(starts, 'session_starts', ip, (retryMs) =>
        limitError(
          429,
          'RATE_LIMITED',
          `Too many new sessions from your address: more than ${config.rateLimitSessionStarts} page loads in ${window} s. Wait a moment; if many users share this address, raise RATE_LIMIT_SESSION_STARTS.`,
          retryMs,
        ),
      ),
    upgrade: (ip) =>
      consume(upgrades, 'websocket_upgrades', ip, (retryMs) =>
        limitError(
          429,
          'RATE_LIMITED',
          `Too many WebSocket connections from your address: more than ${config.rateLimitWebSockets} in ${window} s. Wait a moment; if many users share this address, raise RATE_LIMIT_WEBSOCKETS.`,
          retryMs,
        ),
      ),
    holdWebSocket(ip, socket) {
      const max = config.maxWebSocketsPerClient;
      if (max === 0) return undefined;
      const held = open.get(ip) ?? 0;
      if (held >= max) {
        const error = limitError(
          429,
          'TOO_MANY_WEBSOCKETS',
          `Your address already holds ${held} open Bokeh sessions. Close some tabs; if many users share this address, raise MAX_WEBSOCKETS_PER_CLIENT.`,
          window * 1000,
        );
        noteRefusal('open_websockets', ip, error);
        return error;
      }
      open.set(ip, held + 1);
      socket.once('close', releaseFor(ip));
      return undefined;
    },
    openWebSockets: (ip) => open.get(ip) ?? 0,
    noteRefusal,
  };
}
