/**
 * The gateway's metrics, in Prometheus's format (prom-client), served on a listener of their own
 * (METRICS_PORT) rather than the public port: request counts and replica addresses are for the
 * operator, not for every visitor. With METRICS_PORT unset the same interface does nothing
 * (`noMetrics`), so callers never ask whether metrics are on.
 *
 * Labels are bounded sets: route classes, methods, statuses, close codes, replica addresses,
 * app names, limit names, error kinds. Never a session id, token, user name or client address,
 * which would make one series per visitor.
 *
 * The relay's hot path only adds to plain numbers (RelayTotals); the counters read them when
 * Prometheus scrapes, so a frame costs no label lookup.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LimitName } from './limits.js';
import type { ReplicaReport } from './upstream.js';

/** Bytes and data messages relayed, by direction: browser to Bokeh ("up") and back ("down"). */
export interface RelayTotals {
  upMessages: number;
  upBytes: number;
  downMessages: number;
  downBytes: number;
}

export interface Metrics {
  readonly enabled: boolean;
  /** One HTTP request answered (not a WebSocket upgrade). */
  httpRequest(routeClass: string, method: string, status: number, seconds: number, cache: string | undefined): void;
  webSocketOpened(replica: string): void;
  webSocketClosed(replica: string, code: number | undefined): void;
  /** The relay adds to these directly. */
  readonly relayed: RelayTotals;
  sessionStarted(app: string, replica: string): void;
  /** A request to Bokeh that failed: a Node error code, "draining", or "refused". */
  upstreamError(kind: string): void;
  refused(limit: LimitName): void;
  /** Where replica health comes from at scrape time. */
  watchReplicas(report: () => ReplicaReport[]): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Methods that become their own label value; anything else is "other". */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
/** Network error codes worth a series of their own; anything else is "other". */
const ERROR_KINDS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'ECONNABORTED',
  'draining',
  'refused',
  'bad_handshake',
]);

/** Close codes a peer may send are 1000-4999; only the standard ones get a series each. */
function closeCodeLabel(code: number | undefined): string {
  if (code === undefined) return 'none';
  return code >= 1000 && code <= 1015 ? String(code) : code >= 4000 ? '4xxx' : code >= 3000 ? '3xxx' : 'other';
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gateway_' });
  const relayed: RelayTotals = { upMessages: 0, upBytes: 0, downMessages: 0, downBytes: 0 };
  let replicas: () => ReplicaReport[] = () => [];
  const registers = [registry];

  const http = new Counter({
    name: 'gateway_http_requests_total',
    help: 'HTTP requests answered, by route class, method and status.',
    labelNames: ['route', 'method', 'status'],
    registers,
  });
  const duration = new Histogram({
    name: 'gateway_http_request_duration_seconds',
    help: 'Time from request to the end of the answer, by route class.',
    labelNames: ['route'],
    // From a cached static file (well under 1 ms) to a slow app's first page (seconds).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const open = new Gauge({ name: 'gateway_websockets_open', help: 'WebSockets relayed now, by Bokeh replica.', labelNames: ['replica'], registers });
  const opened = new Counter({
    name: 'gateway_websockets_opened_total',
    help: 'WebSockets relayed since start, by Bokeh replica.',
    labelNames: ['replica'],
    registers,
  });
  const closed = new Counter({
    name: 'gateway_websockets_closed_total',
    help: 'Relayed WebSockets that ended, by Bokeh replica and the first close code seen.',
    labelNames: ['replica', 'code'],
    registers,
  });
  const totals = (name: string, help: string, read: (direction: 'up' | 'down') => number) =>
    new Counter({
      name,
      help,
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        for (const direction of ['up', 'down'] as const) this.inc({ direction }, read(direction));
      },
    });
  totals('gateway_websocket_messages_total', 'WebSocket data messages relayed; up is browser to Bokeh.', (d) =>
    d === 'up' ? relayed.upMessages : relayed.downMessages,
  );
  totals('gateway_websocket_bytes_total', 'WebSocket bytes relayed, frame headers included; up is browser to Bokeh.', (d) =>
    d === 'up' ? relayed.upBytes : relayed.downBytes,
  );
  const sessions = new Counter({
    name: 'gateway_sessions_started_total',
    help: 'Bokeh sessions started (page loads and autoload.js that Bokeh answered), by app and replica.',
    labelNames: ['app', 'replica'],
    registers,
  });
  new Gauge({
    name: 'gateway_bokeh_replica_up',
    help: 'Each Bokeh replica the gateway knows: 1 for its current state (serving, draining, starting, down).',
    labelNames: ['replica', 'state'],
    registers,
    collect() {
      this.reset();
      for (const replica of replicas()) this.set({ replica: replica.url, state: replica.state }, 1);
    },
  });
  new Gauge({
    name: 'gateway_bokeh_replica_sessions',
    help: 'Sessions each Bokeh replica holds, as it reported at its last check plus the ones started since.',
    labelNames: ['replica'],
    registers,
    collect() {
      this.reset();
      for (const replica of replicas()) this.set({ replica: replica.url }, replica.sessions);
    },
  });
  const upstream = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Requests to Bokeh that failed, by kind (a network error code, draining, refused).',
    labelNames: ['kind'],
    registers,
  });
  const refusals = new Counter({
    name: 'gateway_limit_refusals_total',
    help: 'Requests refused by a limit (429 or 503), by limit.',
    labelNames: ['limit'],
    registers,
  });
  const cache = new Counter({
    name: 'gateway_static_cache_total',
    help: "Answers to Bokeh's versioned static files, by cache result (hit, miss, bypass).",
    labelNames: ['result'],
    registers,
  });

  return {
    enabled: true,
    httpRequest(routeClass, method, status, seconds, cacheState) {
      http.inc({ route: routeClass, method: METHODS.has(method) ? method : 'other', status: String(status) });
      duration.observe({ route: routeClass }, seconds);
      if (cacheState !== undefined) cache.inc({ result: cacheState.toLowerCase() });
    },
    webSocketOpened(replica) {
      open.inc({ replica });
      opened.inc({ replica });
    },
    webSocketClosed(replica, code) {
      open.dec({ replica });
      closed.inc({ replica, code: closeCodeLabel(code) });
    },
    relayed,
    sessionStarted: (app, replica) => sessions.inc({ app, replica }),
    upstreamError: (kind) => upstream.inc({ kind: ERROR_KINDS.has(kind) ? kind : 'other' }),
    refused: (limit) => refusals.inc({ limit }),
    watchReplicas(report) {
      replicas = report;
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** The same interface when metrics are off: every call does nothing. */
export function noMetrics(): Metrics {
  const nothing = () => undefined;
  return {
    enabled: false,
    httpRequest: nothing,
    webSocketOpened: nothing,
    webSocketClosed: nothing,
    relayed: { upMessages: 0, upBytes: 0, downMessages: 0, downBytes: 0 },
    sessionStarted: nothing,
    upstreamError: nothing,
    refused: nothing,
    watchReplicas: nothing,
    render: () => Promise.resolve({ contentType: 'text/plain; charset=utf-8', body: '' }),
  };
}

/** The metrics listener: GET /metrics and nothing else, on its own port. */
export async function startMetricsServer(metrics: Metrics, port: number, host: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Metrics are at /metrics.\n');
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown}:${address.port}/metrics` };
}
