/**
 * The team's own web app behind the gateway (HOST_APP_URL): every request outside the Bokeh
 * prefix and the health routes goes to it, HTTP and WebSocket alike, so that the app's pages and
 * the Bokeh apps they embed share one origin. The app embeds with Bokeh's own API and a relative
 * URL (`server_document("/bokeh/sliders")`): the browser asks the gateway for autoload.js, which
 * mints the signed session there (sessions.ts), so the app never holds the key.
 *
 * What Bokeh's requests get, the host app's get too: sign-in (admission.ts runs before this, for
 * HTTP in server.ts and for upgrades here), X-Forwarded-* recomputed by the gateway
 * (forwarded.ts), UPSTREAM_TIMEOUT_MS, and an error page that names the host app when it fails.
 * Its bodies, methods and WebSocket frames are its own business: they pass through unread.
 */
import { Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyMiddleware, proxyEventsPlugin, type RequestHandler } from 'http-proxy-middleware';
import type { Logger } from 'pino';
import type { AdmissionPipeline } from './admission.js';
import { underPrefix } from './bokeh-paths.js';
import type { Config } from './config.js';
import { answerOnSocket, hostAppError, sendError, timeOutAs504 } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import { destroyOnError } from './ws-handshake.js';

export interface HostApp {
  /** Express middleware for every HTTP request outside the prefix. */
  readonly http: RequestHandler<IncomingMessage, ServerResponse>;
  /** Whether an upgrade is the host app's (outside the prefix) rather than Bokeh's. */
  owns(req: IncomingMessage): boolean;
  /** The HTTP server's `upgrade` listener for the host app's WebSockets. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends the host app's open WebSockets (shutdown); their frames are not ours to close politely. */
  closeAll(): void;
  readonly openSockets: number;
}

const pathOf = (req: IncomingMessage) => (req.url ?? '').split('?', 1)[0]!;

export function hostApp(config: Config, target: URL, admission: AdmissionPipeline, view: (req: IncomingMessage) => ClientView, log: Logger): HostApp {
  const owns = (req: IncomingMessage) => !underPrefix(pathOf(req), config.bokehPrefix);
  const sockets = new Set<Duplex>();
  // Pages, scripts and form posts come in bursts from one browser: keep connections for reuse.
  const agent = new Agent({ keepAlive: true });

  const proxy = createProxyMiddleware<IncomingMessage, ServerResponse>({
    target: target.origin,
    agent,
    pathFilter: (_path, req) => owns(req),
    // The Host header stays as the browser sent it and X-Forwarded-* say the rest, as for Bokeh:
    // a framework behind a proxy (Flask's ProxyFix, Django's USE_X_FORWARDED_HOST) builds its
    // absolute URLs from them.
    changeOrigin: false,
    xfwd: false,
    // The default plugins log to the console and write their own error pages; keep only the one
    // that wires up the `on` handlers below.
    ejectPlugins: true,
    plugins: [proxyEventsPlugin],
    on: {
      proxyReq: (proxyReq, req) => {
        for (const [name, value] of Object.entries(forwardedHeaders(req, view(req)))) proxyReq.setHeader(name, value);
        timeOutAs504(proxyReq, config.upstreamTimeoutMs);
      },
      proxyReqWs: (proxyReq, req) => {
        for (const [name, value] of Object.entries(forwardedHeaders(req, view(req)))) proxyReq.setHeader(name, value);
      },
      error: (err, req, res) => {
        const error = hostAppError(err as NodeJS.ErrnoException, target.origin);
        log.warn(
          { err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, url: pathOf(req).slice(0, 200), status: error.status },
          'host app request failed',
        );
        // During an upgrade `res` is the browser's socket, still speaking HTTP until a 101.
        if ('writeHead' in res) sendError(req, res, error);
        else answerOnSocket(res as Socket, error);
      },
    },
    // The upgrade waits as long as an HTTP request would.
    upgradeTimeout: config.upstreamTimeoutMs,
  });

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    destroyOnError(socket);
    admission.admit('upgrade', req).then(
      (result) => {
        if (!result.ok) {
          log.info(
            { path: pathOf(req).slice(0, 200), ip: result.candidate.view.ip, status: result.error.status, error: result.error.code },
            'websocket refused',
          );
          answerOnSocket(socket, result.error);
          return;
        }
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        proxy.upgrade(req, socket as Socket, head);
      },
      () => socket.destroy(),
    );
  }

  return {
    http: proxy,
    owns,
    handleUpgrade,
    closeAll() {
      for (const socket of sockets) socket.destroy();
      agent.destroy();
    },
    get openSockets() {
      return sockets.size;
    },
  };
}
