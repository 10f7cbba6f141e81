/**
 * The gateway: pages (or the host app in their place), health, the HTTP proxy and the WebSocket
 * relay on one HTTP server, and its orderly shutdown. `startGateway` and `GatewayServer.close`
 * are all that main.ts and the tests need.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { admissionPipeline, httpAdmission } from './admission.js';
import { createAuthenticator } from './auth.js';
import { compressOnTheFly } from './compression.js';
import type { Config } from './config.js';
import { answerOnSocket, sendError } from './errors.js';
import { clientView, ProxyTrust } from './forwarded.js';
import { healthRouter } from './health.js';
import { clientLimits } from './limits.js';
import { createMetrics, noMetrics, startMetricsServer, type Metrics } from './metrics.js';
import { hostApp } from './host-app.js';
import { pagesRouter } from './pages.js';
import { PreloadHints } from './preload.js';
import { httpProxy } from './proxy.js';
import { sessionProxy } from './session-proxy.js';
import { staticCache } from './static-cache.js';
import { createUpstreams, type Upstreams } from './upstream.js';
import { webSocketRelay } from './websocket.js';
import { CLOSE } from './ws-constants.js';

/**
 * Idle keep-alive connections stay open longer than the 60 s that load balancers commonly use,
 * so the balancer (not the gateway) closes them and never races a new request.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** How often Node looks for requests past HEADERS_TIMEOUT_MS / REQUEST_TIMEOUT_MS (default 30 s). */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;
/** A session token as it may appear in a logged URL. */
const TOKEN_IN_URL = /(bokeh-token=)[^&]*/g;
/**
 * Node allows 16 KB of request headers. Bokeh's session token travels in Sec-WebSocket-Protocol
 * and carries the page request's cookies and headers, so a browser's upgrade repeats the cookies
 * in the token beside the Cookie header itself: 8 KB of cookies made a 20 KB upgrade request.
 * 64 KB is Tornado's own limit, the one Bokeh applies behind us.
 */
const MAX_HEADER_BYTES = 64 * 1024;

export interface GatewayServer {
  readonly server: Server;
  /** The URL the gateway listens on, e.g. http://127.0.0.1:8000. */
  readonly url: string;
  /** The Bokeh servers it talks to. */
  readonly upstreams: Upstreams;
  /** Where Prometheus scrapes, when METRICS_PORT is set. */
  readonly metricsUrl: string | undefined;
  /** Stops accepting, closes WebSockets with 1001, lets requests finish within the bound. */
  close(): Promise<void>;
}

export async function startGateway(config: Config, log: Logger): Promise<GatewayServer> {
  const trust = new ProxyTrust(config.trustProxy, config.authMode === 'header' ? [config.authUserHeader] : []);
  const auth = createAuthenticator(config);
  const viewCache = new WeakMap<IncomingMessage, ReturnType<typeof clientView>>();
  const view = (req: IncomingMessage) => {
    let cached = viewCache.get(req);
    if (cached === undefined) {
      cached = clientView(req, trust.trusts, config.publicOrigins);
      viewCache.set(req, cached);
    }
    return cached;
  };

  const metrics = config.metricsPort === 0 ? noMetrics() : createMetrics();
  const upstreams = createUpstreams(config, log);
  metrics.watchReplicas(() => upstreams.replicas());
  // The first requests find the replicas already known.
  await upstreams.start();
  const limits = clientLimits(config, log, metrics);
  // The relay is made next; the check runs per upgrade, long after.
  const admission = admissionPipeline({ config, auth, view, shuttingDown: () => relay.shuttingDown, newSessionId: () => upstreams.newSessionId(), limits });
  const relay = webSocketRelay(config, upstreams, admission, log, metrics);
  // With a host app, it owns every path outside the prefix and the gateway's pages step aside.
  const hostAppProxy = config.hostAppUrl === undefined ? undefined : hostApp(config, config.hostAppUrl, admission, view, log);
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.use((req: Request, _res: Response, next: NextFunction) => {
    trust.prepare(req).then(() => next(), next);
  });
  if (metrics.enabled) app.use(countRequests(metrics));
  app.use(
    pinoHttp({
      logger: log,
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' },
      customProps: (req) => ({ ip: view(req).ip }),
      serializers: {
        // Tokens are credentials: keep them out of the logs.
        req: (req: { method: string; url: string; originalUrl?: string }) => ({
          method: req.method,
          url: (req.originalUrl ?? req.url).replace(TOKEN_IN_URL, '$1[redacted]'),
        }),
        res: (res: { statusCode: number }) => ({ status: res.statusCode }),
      },
      customLogLevel: (_req, res, err) => ((res as Response).locals?.quiet ? 'silent' : err || res.statusCode >= 500 ? 'warn' : 'info'),
    }),
  );
  app.use(healthRouter(config, upstreams, () => ({ openWebSockets: relay.openSessions })));
  app.use(httpAdmission(admission));
  if (config.staticCacheBytes > 0) app.use(staticCache(config, upstreams, log));
  // After the cache, which answers with the copies it made when storing a file. The host app's
  // answers are its own to compress (or stream, as server-sent events must be).
  if (config.compression) {
    const compress = compressOnTheFly(config);
    app.use((req: Request, res: Response, next: NextFunction) => (hostAppProxy?.owns(req) === true ? next() : compress(req, res, next)));
  }
  // What autoload.js answers name, the app pages name again, earlier (preload.ts).
  const hints = new PreloadHints(config.bokehPrefix);
  app.use(sessionProxy(config, upstreams, view, log, metrics, hints));
  app.use(httpProxy(config, upstreams, view, log, metrics));
  if (hostAppProxy === undefined) app.use(pagesRouter(config, view, hints));
  else app.use(hostAppProxy.http);
  app.use((req: Request, res: Response) => {
    sendError(req, res, { status: 404, code: 'NOT_FOUND', message: `Nothing here. Apps are at /apps/<name> and Bokeh itself under ${config.bokehPrefix}/.` });
  });
  app.use((err: Error, req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendError(req, res, { status, code: 'BAD_REQUEST', message: err.message });
      return;
    }
    log.error({ err }, 'unhandled error');
    sendError(req, res, { status: 500, code: 'INTERNAL', message: 'The gateway failed to handle this request; the error is in its log.' });
  });

  const server = createServer(
    {
      noDelay: true,
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      maxHeaderSize: MAX_HEADER_BYTES,
    },
    app,
  );
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    trust.prepare(req).then(
      () => (hostAppProxy?.owns(req) === true ? hostAppProxy.handleUpgrade(req, socket, head) : relay.handleUpgrade(req, socket, head)),
      () => socket.destroy(),
    );
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed HTTP from a client: answer if the socket still can, never crash.
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    answerOnSocket(
      socket,
      err.code === 'HPE_HEADER_OVERFLOW'
        ? { status: 431, code: 'HEADERS_TOO_LARGE', message: `The request headers exceed ${MAX_HEADER_BYTES / 1024} KB; clear this site's cookies and reload.` }
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? {
              status: 408,
              code: 'REQUEST_TIMEOUT',
              message: `The request did not arrive within ${config.headersTimeoutMs / 1000} s (headers) or ${config.requestTimeoutMs / 1000} s (whole request).`,
            }
          : { status: 400, code: 'BAD_REQUEST', message: 'The request is not valid HTTP.' },
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.listenAddress, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const metricsServer = config.metricsPort === 0 ? undefined : await startMetricsServer(metrics, config.metricsPort, config.listenAddress);
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const started = Date.now();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await relay.closeAll(CLOSE.goingAway, 'Gateway shutting down', config.shutdownTimeoutMs);
      hostAppProxy?.closeAll();
      const left = Math.max(0, config.shutdownTimeoutMs - (Date.now() - started));
      const timer = setTimeout(() => server.closeAllConnections(), left);
      await stopped;
      clearTimeout(timer);
      upstreams.close();
      metricsServer?.server.close();
    })();
    return closing;
  };

  return { server, url, upstreams, metricsUrl: metricsServer?.url, close };
}

/** Health probes, by path: the router that answers them comes before any route is known. */
const HEALTH_PATHS = new Set(['/healthz', '/readyz']);

/**
 * Counts every HTTP answer by route class: the Bokeh route's kind when the request was one,
 * "health" for the probes, "gateway" for the gateway's own pages and files.
 */
function countRequests(metrics: Metrics) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const route = res.locals.bokehRoute?.kind ?? (HEALTH_PATHS.has(req.path) ? 'health' : 'gateway');
      const cache = route === 'static' ? res.getHeader('x-cache') : undefined;
      metrics.httpRequest(route, req.method, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9, typeof cache === 'string' ? cache : undefined);
    });
    next();
  };
}
