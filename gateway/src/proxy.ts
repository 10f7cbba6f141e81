/**
 * HTTP reverse proxy for the Bokeh routes that admission.ts lets through and that start no
 * session: static files, metadata, CORS preflights. Requests that start a session (an app's page,
 * autoload.js) go through session-proxy.ts, and WebSocket upgrades through websocket.ts, from the
 * server's `upgrade` event. Any serving replica answers these (upstream.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createProxyMiddleware, proxyEventsPlugin, type RequestHandler } from 'http-proxy-middleware';
import type { Logger } from 'pino';
import { underPrefix } from './bokeh-paths.js';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import { sendError, timeOutAs504, upstreamError } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import type { Upstream, Upstreams } from './upstream.js';

export function httpProxy(
  config: Config,
  upstreams: Upstreams,
  view: (req: IncomingMessage) => ClientView,
  log: Logger,
  metrics: Metrics,
): RequestHandler<IncomingMessage, ServerResponse> {
  /** The Bokeh each request went to, for the message when it fails. */
  const chosen = new WeakMap<IncomingMessage, Upstream>();
  return createProxyMiddleware<IncomingMessage, ServerResponse>({
    // Asked per request, so that each goes to a replica that serves now.
    router: (req, _res, options) => {
      const upstream = upstreams.any();
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
      proxyReq: (proxyReq, req) => {
        for (const [name, value] of Object.entries(forwardedHeaders(req, view(req)))) proxyReq.setHeader(name, value);
        timeOutAs504(proxyReq, config.upstreamTimeoutMs);
      },
      error: (err, req, res) => {
        const error = upstreamError(err as NodeJS.ErrnoException, (chosen.get(req) ?? upstreams.any()).origin);
        metrics.upstreamError((err as NodeJS.ErrnoException).code ?? 'other');
        log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, url: req.url, status: error.status }, 'bokeh request failed');
        if ('writeHead' in res) sendError(req, res, error);
        else res.destroy();
      },
    },
  });
}
