/**
 * HTTP reverse proxy for the Bokeh routes that routes.ts lets through: static files, metadata,
 * and the app pages and autoload.js, which get a signed session token on the way (sessions.ts).
 * WebSocket upgrades are not handled here but in websocket.ts, from the server's `upgrade` event.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { createProxyMiddleware, proxyEventsPlugin, type RequestHandler } from 'http-proxy-middleware';
import type { Logger } from 'pino';
import { underPrefix } from './bokeh-paths.js';
import type { Config } from './config.js';
import { sendError, upstreamError } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import { classifyBokehRequest } from './routes.js';
import { startSession } from './sessions.js';
import type { Upstream, Upstreams } from './upstream.js';

/**
 * Runs before the proxy: refuses what Bokeh must not see (routes.ts) and gives requests that
 * create a session their signed token. `res.locals.user` is the signed-in user, set by the
 * authentication step; the route it lets through is left in `res.locals.bokehRoute` for the
 * static file cache (static-cache.ts), which runs next.
 */
/** Requests whose answer carries a visitor's session token, with that session's id. */
const minted = new WeakMap<IncomingMessage, string>();

export function bokehGate(config: Config, view: (req: IncomingMessage) => ClientView) {
  return (req: Request, res: Response, next: NextFunction): void => {
    // The raw target, not a parsed URL: parsing would resolve the "../" that must be refused.
    const path = (req.url ?? '').split('?', 1)[0]!;
    if (!underPrefix(path, config.bokehPrefix)) return next();
    const result = classifyBokehRequest(req.method, path, config.bokehPrefix, config.apps);
    if (!result.ok) {
      if (result.headers) res.set(result.headers);
      return sendError(req, res, result.error);
    }
    const { route } = result;
    res.locals.bokehRoute = route;
    // Bokeh's routes read no bodies; one here is a mistake or an attempt to tie up a connection.
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      res.set('Connection', 'close');
      return sendError(req, res, { status: 413, code: 'BODY_NOT_ALLOWED', message: 'Bokeh routes take no request body; send the request without one.' });
    }
    if (route.kind === 'websocket') {
      res.set('Upgrade', 'websocket');
      return sendError(req, res, {
        status: 426,
        code: 'UPGRADE_REQUIRED',
        message: 'This is a Bokeh WebSocket endpoint; connect to it with a WebSocket client.',
      });
    }
    if (route.kind === 'document' || route.kind === 'autoload') {
      if (req.method === 'OPTIONS') return next();
      const started = startSession(config, req, forwardedHeaders(req, view(req)), res.locals.user);
      if (!started.ok) return sendError(req, res, started.error);
      req.url = started.upstreamUrl;
      delete req.headers['bokeh-session-id'];
      minted.set(req, started.sessionId);
    }
    next();
  };
}

export function httpProxy(
  config: Config,
  upstreams: Upstreams,
  view: (req: IncomingMessage) => ClientView,
  log: Logger,
): RequestHandler<IncomingMessage, ServerResponse> {
  /** The Bokeh each request went to, for the message when it fails. */
  const chosen = new WeakMap<IncomingMessage, Upstream>();
  return createProxyMiddleware<IncomingMessage, ServerResponse>({
    // Asked per request: a request that creates a session goes where that session will live.
    router: (req, _res, options) => {
      const session = minted.get(req);
      const upstream = session === undefined ? upstreams.any() : upstreams.forSession(session);
      chosen.set(req, upstream);
      // `options` is this request's own copy of the proxy's options.
      options.agent = upstream.agent;
      return upstream.origin;
    },
    pathFilter: (path) => underPrefix(path.split('?', 1)[0]!, config.bokehPrefix),
    // Bokeh is told the public host through X-Forwarded-Host; the Host header stays as the
    // browser sent it so that Bokeh's own absolute URLs (when it builds any) are public too.
    changeOrigin: false,
    xfwd: false,
    // The default plugins log to the console and write their own error pages; keep only the one
    // that wires up the `on` handlers below.
    ejectPlugins: true,
    plugins: [proxyEventsPlugin],
    on: {
      proxyRes: (proxyRes, req) => {
        // The answer embeds this visitor's token: no cache may keep it or hand it to another.
        if (minted.has(req)) proxyRes.headers['cache-control'] = 'no-store';
      },
      proxyReq: (proxyReq, req) => {
        for (const [name, value] of Object.entries(forwardedHeaders(req, view(req)))) proxyReq.setHeader(name, value);
        // Our own timer rather than the proxy's proxyTimeout, which ends the request as a plain
        // ECONNRESET: a slow Bokeh must read as 504, not as a broken one.
        proxyReq.setTimeout(config.upstreamTimeoutMs, () => {
          proxyReq.destroy(Object.assign(new Error(`no answer within ${config.upstreamTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
        });
      },
      error: (err, req, res) => {
        const error = upstreamError(err as NodeJS.ErrnoException, (chosen.get(req) ?? upstreams.any()).origin);
        log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, url: req.url, status: error.status }, 'bokeh request failed');
        if ('writeHead' in res) sendError(req, res, error);
        else res.destroy();
      },
    },
  });
}
