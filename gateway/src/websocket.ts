/**
 * Bokeh's WebSocket (`<prefix>/<app>/ws`): the HTTP server's `upgrade` listener. An upgrade goes
 * through the admission checks (admission.ts: route, handshake, Origin, shutdown, sign-in,
 * token), then Bokeh's side is opened (ws-upstream.ts), and only when Bokeh has accepted is the
 * browser's handshake completed and the pair of sockets relayed (ws-pair.ts), kept in the
 * registry (ws-registry.ts) until it closes.
 *
 * Bokeh's choices pass through as they are: the subprotocols ("bokeh" plus the session token),
 * each frame's type and order (a buffer is a text header frame followed by a binary frame),
 * pings and pongs, and close codes. On shutdown every session gets a close frame with 1001.
 *
 * Memory: an open session must keep no part of its upgrade request. Everything the pair and its
 * sockets' listeners can reach is made here, once per relay, or inside ws-pair.ts; nothing is
 * made inside a function that has the request in scope.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { LIMIT_CODES, type AdmissionPipeline } from './admission.js';
import type { Config } from './config.js';
import { answerOnSocket, type GatewayError } from './errors.js';
import { clientCloseFrame } from './frames.js';
import type { Metrics } from './metrics.js';
import { MAX_REPLICA_ATTEMPTS, type Upstream, type Upstreams } from './upstream.js';
import { CLOSE } from './ws-constants.js';
import { destroyOnError, switchingProtocols } from './ws-handshake.js';
import { RelayPair } from './ws-pair.js';
import { RelayRegistry } from './ws-registry.js';
import { openBokehSide, type BokehSideEvents, type TryAnother } from './ws-upstream.js';

export interface WebSocketRelay {
  /** The HTTP server's `upgrade` listener. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Refuse new sessions and close open ones with `code`; resolves when all are closed. */
  closeAll(code: number, reason: string, timeoutMs: number): Promise<void>;
  readonly openSessions: number;
  /** Whether closeAll was called: new sessions are refused from then on. */
  readonly shuttingDown: boolean;
}

export function webSocketRelay(config: Config, upstreams: Upstreams, admission: AdmissionPipeline, log: Logger, metrics: Metrics): WebSocketRelay {
  const registry = new RelayRegistry(config.wsIdleTimeoutMs, log);
  // A replica found gone takes its sessions with it; tell their browsers now, as when Bokeh drops.
  upstreams.onDown((upstream) => {
    const closed = registry.closeReplica(upstream.origin, CLOSE.bokehLost, 'Lost connection to the Bokeh server; reload the page');
    if (closed > 0) log.warn({ replica: upstream.origin, webSockets: closed }, 'bokeh replica down: closing its websockets');
  });

  function refuse(socket: Duplex, error: GatewayError, meta: Record<string, unknown>): void {
    // A limit's refusals are logged by limits.ts, once per client and window.
    if (!LIMIT_CODES.has(error.code)) log.info({ ...meta, status: error.status, error: error.code }, 'websocket refused');
    answerOnSocket(socket, error);
  }

  const ended = (pair: RelayPair): void => {
    registry.forget(pair);
    metrics.webSocketClosed(String(pair.meta.replica), pair.closeCodeSeen);
  };

  const bokehSide: BokehSideEvents = {
    refused: refuse,
    opened(browser, browserHead, bokeh, bokehHead, { accept, protocol }, handshakeMeta) {
      if (!browser.writable) {
        bokeh.end(clientCloseFrame(CLOSE.goingAway, 'browser went away'));
        return;
      }
      bokeh.setNoDelay(true);
      browser.write(switchingProtocols(accept, protocol));
      const meta = { ...handshakeMeta, protocol };
      const pair = new RelayPair(browser, bokeh, config.wsMaxMessageBytes, meta, log, ended, metrics.relayed);
      registry.add(pair);
      metrics.webSocketOpened(String(handshakeMeta.replica));
      log.info(meta, 'websocket opened');
      pair.start(browserHead, bokehHead);
    },
  };

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // A reset from the client must never become an uncaught exception.
    destroyOnError(socket);
    admission
      .admit('upgrade', req)
      .then(
        (result) => {
          const { path, query, view, route, user, sessionId, offered } = result.candidate;
          const meta = { path: path.slice(0, 200), ip: view.ip };
          if (!result.ok) return refuse(socket, result.error, meta);
          // Admitted upgrades have passed the route and session checks, which set these.
          const pathAndQuery = `${path}${query === undefined ? '' : `?${query}`}`;
          const handshakeMeta = { ...meta, app: route!.app, user };
          const tried = new Set<Upstream>();
          const open = (upstream: Upstream) => {
            // A replica that drains or died made no session: the one that takes the session over
            // (upstream.ts) is asked instead, before the browser hears anything.
            const tryAnother: TryAnother = (error, failure) => {
              metrics.upstreamError(failure.kind ?? 'other');
              if (failure.replica !== undefined) upstreams.report(upstream, failure.replica);
              tried.add(upstream);
              if (!failure.retry || tried.size >= MAX_REPLICA_ATTEMPTS || !socket.writable) return false;
              upstreams.forSession(sessionId!, tried).then(
                (next) => (tried.has(next) ? refuse(socket, error, handshakeMeta) : open(next)),
                () => socket.destroy(),
              );
              return true;
            };
            const replicaMeta = { ...handshakeMeta, replica: upstream.origin };
            openBokehSide(req, socket, head, view, upstream, offered!, pathAndQuery, config.upstreamTimeoutMs, replicaMeta, bokehSide, tryAnother);
          };
          return upstreams.forSession(sessionId!).then(open);
        },
        () => socket.destroy(),
      )
      .catch(() => socket.destroy());
  }

  return {
    handleUpgrade,
    closeAll: (code, reason, timeoutMs) => registry.closeAll(code, reason, timeoutMs),
    get openSessions() {
      return registry.size;
    },
    get shuttingDown() {
      return registry.shuttingDown;
    },
  };
}
