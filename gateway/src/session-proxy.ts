/**
 * The requests that start a Bokeh session (an app's page, autoload.js) go to Bokeh through this
 * forwarder rather than the general proxy (proxy.ts), because they may have to be sent again:
 * a replica that drains answers 503 with `Bokeh-Replica-State: draining`, and one that just died
 * refuses the connection. Either way no session was made, so the request goes to another replica
 * with a fresh session id tagged for that one (upstream.ts), before anything reaches the browser:
 * a scale-down or a rolling restart of Bokeh costs no page load.
 *
 * Only GET and HEAD come here, without a body (admission.ts refuses bodies on Bokeh's routes), so
 * sending one again is safe. The answer is streamed to the browser as Bokeh sends it, with
 * `Cache-Control: no-store`: it carries this visitor's session token.
 */
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import { type GatewayError, sendError, timeOutAs504, upstreamError } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import type { PreloadHints } from './preload.js';
import { atCapacity } from './sessions.js';
import { failureOf, MAX_REPLICA_ATTEMPTS, refusedForDrain, type ReplicaFailure, type Upstream, type Upstreams } from './upstream.js';

/** Headers that describe one hop and are never passed on (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
]);

type Outcome = { sent: true } | ({ sent: false; error: GatewayError } & ReplicaFailure);

export function sessionProxy(
  config: Config,
  upstreams: Upstreams,
  view: (req: IncomingMessage) => ClientView,
  log: Logger,
  metrics: Metrics,
  hints: PreloadHints,
) {
  /** One try: the answer goes to the browser, or says why another replica should be asked. */
  const send = (req: Request, res: Response, upstream: Upstream, path: string): Promise<Outcome> =>
    new Promise((resolve) => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      }
      // The Host header stays as the browser sent it; Bokeh learns the public host from these.
      Object.assign(headers, forwardedHeaders(req, view(req)));
      const outgoing = upstream.request(path, { method: req.method, headers });
      const abandon = () => outgoing.destroy();
      res.once('close', abandon);
      timeOutAs504(outgoing, config.upstreamTimeoutMs);
      outgoing.on('error', (err: NodeJS.ErrnoException) => {
        res.off('close', abandon);
        if (res.headersSent) return res.destroy();
        resolve({ sent: false, error: upstreamError(err, upstream.origin), ...failureOf(err) });
      });
      outgoing.on('response', (answer) => {
        if (refusedForDrain(answer)) {
          answer.resume();
          res.off('close', abandon);
          return resolve({
            sent: false,
            replica: 'draining',
            retry: true,
            kind: 'draining',
            error: { status: 503, code: 'BOKEH_UNAVAILABLE', message: 'Every Bokeh replica is shutting down or unreachable; reload the page in a moment.' },
          });
        }
        const passed: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) passed[name] = value;
        }
        passed['cache-control'] = 'no-store';
        res.writeHead(answer.statusCode ?? 502, passed);
        if (answer.statusCode === 200) metrics.sessionStarted(res.locals.bokehRoute?.app ?? 'unknown', upstream.origin);
        answer.on('error', () => res.destroy());
        answer.on('aborted', () => res.destroy());
        const route = res.locals.bokehRoute;
        if (route?.kind === 'autoload') hints.watch(route.app, answer);
        answer.pipe(res);
        resolve({ sent: true });
      });
      outgoing.end();
    });

  async function forward(req: Request, res: Response, firstId: string, withId: ((sessionId: string) => string) | undefined): Promise<void> {
    const tried = new Set<Upstream>();
    let sessionId = firstId;
    let path = req.url;
    let failure: GatewayError | undefined;
    for (let attempt = 0; attempt < MAX_REPLICA_ATTEMPTS; attempt++) {
      const upstream = await upstreams.forSession(sessionId, tried);
      if (tried.has(upstream)) break;
      const outcome = await send(req, res, upstream, path);
      if (outcome.sent) return;
      failure = outcome.error;
      metrics.upstreamError(outcome.kind ?? 'other');
      if (outcome.replica !== undefined) upstreams.report(upstream, outcome.replica);
      if (!outcome.retry || res.destroyed) break;
      tried.add(upstream);
      log.info({ replica: upstream.origin, error: outcome.error.code, attempt: attempt + 1 }, 'session start sent to another bokeh replica');
      // A session id the gateway chose is chosen again, for a replica that has not failed; an id
      // the client brought stays, and goes where every gateway would send it now.
      if (withId !== undefined) {
        const next = upstreams.newSessionId(tried);
        if (next === undefined) {
          failure = atCapacity(config);
          break;
        }
        sessionId = next;
        path = withId(sessionId);
      }
    }
    if (res.destroyed) return;
    const error = failure ?? { status: 503, code: 'BOKEH_UNAVAILABLE', message: 'No Bokeh replica is reachable; reload the page in a moment.' };
    log.warn({ url: req.originalUrl.split('?', 1)[0], status: error.status, error: error.code }, 'bokeh session start failed');
    sendError(req, res, error);
  }

  return (req: Request, res: Response, next: NextFunction): void => {
    const sessionId = res.locals.sessionId;
    if (sessionId === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    forward(req, res, sessionId, res.locals.withSessionId).catch(next);
  };
}
