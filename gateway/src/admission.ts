/**
 * Who and what may reach Bokeh: one ordered list of checks that HTTP requests and WebSocket
 * upgrades both go through. Each check either lets the request on to the next, refuses it with
 * a GatewayError (which the caller answers with sendError or answerOnSocket), or, for requests
 * that are not Bokeh's, admits it at once.
 *
 * Most checks guard one kind of request only; the order is what each kind has always seen:
 *   HTTP     sign-in, route, no body, WebSocket endpoint, session-start rate, session
 *   upgrade  route, handshake, Origin, shutdown, upgrade rate, open WebSockets, sign-in, session
 * An HTTP request is asked who it is from before anything else, pages included, so that a
 * stranger learns nothing about the apps. An upgrade is checked for the cheap things first,
 * since a sign-in may cost a bcrypt comparison; the per-client limits (limits.ts) come before it
 * for the same reason, so a flood of upgrades is refused before it costs anything, and long
 * before a byte of it reaches Bokeh.
 *
 * Health probes never come here (server.ts mounts them first).
 */
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Authenticator } from './auth.js';
import { underPrefix } from './bokeh-paths.js';
import type { Config } from './config.js';
import { sendError, type GatewayError } from './errors.js';
import { forwardedHeaders, type ClientView } from './forwarded.js';
import type { ClientLimits } from './limits.js';
import { classifyBokehRequest, type BokehRoute } from './routes.js';
import { admitSocket, startSession } from './sessions.js';
import { handshakeProblem, originOf, subprotocols } from './ws-handshake.js';

export type Transport = 'http' | 'upgrade';

/** A request being admitted, and what the checks learnt about it so far. */
export interface Candidate {
  readonly transport: Transport;
  readonly req: IncomingMessage;
  readonly view: ClientView;
  /** The raw target's path: a parsed URL would already have resolved the "../" that must be refused. */
  readonly path: string;
  /** The raw query, without "?", when there is one. */
  readonly query: string | undefined;
  route?: BokehRoute;
  /** Who signed in; undefined when anonymous. */
  user?: string | undefined;
  /** The Bokeh session this request creates (HTTP) or joins (upgrade). */
  sessionId?: string;
  /** For a request that creates a session: what to ask Bokeh for instead, with the token in it. */
  upstreamUrl?: string;
  /** For a session whose id the gateway chose: the same request for another fresh id (sessions.ts). */
  withSessionId?: (sessionId: string) => string;
  /** The subprotocols an upgrade offered ("bokeh" and the token, when valid). */
  offered?: string[];
}

/** Go on to the next check (undefined), let the request through now ('admit'), or refuse it. */
type Verdict = undefined | 'admit' | GatewayError;

interface Check {
  name: string;
  on: readonly Transport[];
  run(candidate: Candidate): Verdict | Promise<Verdict>;
}

export type Admission = { ok: true; candidate: Candidate } | { ok: false; error: GatewayError; candidate: Candidate };

export interface AdmissionPipeline {
  /** The checks, in order, for documentation and tests. */
  readonly checks: ReadonlyArray<{ name: string; on: readonly Transport[] }>;
  admit(transport: Transport, req: IncomingMessage): Promise<Admission>;
}

export interface AdmissionOptions {
  config: Config;
  auth: Authenticator;
  view: (req: IncomingMessage) => ClientView;
  /** True once the gateway refuses new WebSocket sessions. */
  shuttingDown: () => boolean;
  /** An id for a new session, tagged for the replica that will hold it; undefined when every replica is full (upstream.ts). */
  newSessionId?: () => string | undefined;
  /** The per-client limits; none when left out. */
  limits?: ClientLimits;
}

/** Whether a request starts a Bokeh session: pages and autoload.js do; a CORS preflight does not. */
const startsSession = ({ route, req }: Candidate): boolean => (route?.kind === 'document' || route?.kind === 'autoload') && req.method !== 'OPTIONS';

export function admissionPipeline({ config, auth, view, shuttingDown, newSessionId, limits }: AdmissionOptions): AdmissionPipeline {
  const allowedOrigins = new Set(config.publicOrigins.map((origin) => origin.origin));
  const notASocket: GatewayError = { status: 404, code: 'NOT_FOUND', message: `WebSocket connections are served only at ${config.bokehPrefix}/<app>/ws.` };

  const signIn = async (candidate: Candidate): Promise<Verdict> => {
    const result = await auth.authenticate(candidate.req, candidate.view);
    if (!result.ok) return result.error;
    candidate.user = result.user;
    return undefined;
  };

  const checks: Check[] = [
    { name: 'sign-in', on: ['http'], run: signIn },
    {
      name: 'Bokeh route',
      on: ['http', 'upgrade'],
      run(candidate) {
        const upgrade = candidate.transport === 'upgrade';
        // Pages and the gateway's own files are not Bokeh's: the routers after this decide.
        if (!underPrefix(candidate.path, config.bokehPrefix)) return upgrade ? notASocket : 'admit';
        // An upgrade's method is the handshake check's to judge, with a clearer message.
        const result = classifyBokehRequest(upgrade ? 'GET' : candidate.req.method!, candidate.path, config.bokehPrefix, config.apps);
        if (!result.ok) return result.error;
        if (upgrade && result.route.kind !== 'websocket') return notASocket;
        candidate.route = result.route;
        return undefined;
      },
    },
    {
      name: 'no request body',
      on: ['http'],
      run({ req }) {
        // Bokeh's routes read no bodies; one here is a mistake or an attempt to tie up a connection.
        const length = req.headers['content-length'];
        if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) return undefined;
        return {
          status: 413,
          code: 'BODY_NOT_ALLOWED',
          message: 'Bokeh routes take no request body; send the request without one.',
          headers: { Connection: 'close' },
        };
      },
    },
    {
      name: 'WebSocket endpoint',
      on: ['http'],
      run({ route }) {
        if (route?.kind !== 'websocket') return undefined;
        return {
          status: 426,
          code: 'UPGRADE_REQUIRED',
          message: 'This is a Bokeh WebSocket endpoint; connect to it with a WebSocket client.',
          headers: { Upgrade: 'websocket' },
        };
      },
    },
    {
      name: 'WebSocket handshake',
      on: ['upgrade'],
      run({ req }) {
        const problem = handshakeProblem(req);
        return problem === undefined ? undefined : { status: 400, code: 'BAD_HANDSHAKE', message: `Invalid WebSocket handshake: ${problem}.` };
      },
    },
    {
      name: 'Origin',
      on: ['upgrade'],
      run({ req }) {
        // Browsers always send Origin; other clients may leave it out (and could write any value).
        const origin = req.headers.origin;
        if (origin === undefined || allowedOrigins.has(originOf(origin) ?? '')) return undefined;
        return {
          status: 403,
          code: 'ORIGIN_NOT_ALLOWED',
          message: `WebSocket connections from ${origin.slice(0, 200)} are not allowed. If users open your pages there, add that origin to PUBLIC_ORIGINS.`,
        };
      },
    },
    {
      name: 'shutdown',
      on: ['upgrade'],
      run: () => (shuttingDown() ? { status: 503, code: 'SHUTTING_DOWN', message: 'The gateway is shutting down; reconnect in a moment.' } : undefined),
    },
    {
      name: 'WebSocket rate',
      on: ['upgrade'],
      run: (candidate) => limits?.upgrade(candidate.view.ip),
    },
    {
      name: 'open WebSockets',
      on: ['upgrade'],
      // Counted from here until the browser's connection closes, refused later or relayed.
      run: ({ req, view }) => limits?.holdWebSocket(view.ip, req.socket),
    },
    { name: 'sign-in', on: ['upgrade'], run: signIn },
    {
      name: 'session-start rate',
      on: ['http'],
      run: (candidate) => (startsSession(candidate) ? limits?.sessionStart(candidate.view.ip) : undefined),
    },
    {
      name: 'session',
      on: ['http', 'upgrade'],
      run(candidate) {
        const { req } = candidate;
        if (candidate.transport === 'upgrade') {
          const offered = subprotocols(req);
          const admitted = admitSocket(config, offered, candidate.user);
          if (!admitted.ok) return admitted.error;
          candidate.offered = offered;
          candidate.sessionId = admitted.sessionId;
          return undefined;
        }
        if (!startsSession(candidate)) return undefined;
        const started = startSession(config, req, forwardedHeaders(req, candidate.view), candidate.user, newSessionId);
        if (!started.ok) {
          if (started.error.code === 'AT_CAPACITY') limits?.noteRefusal('replica_sessions', candidate.view.ip, started.error);
          return started.error;
        }
        candidate.upstreamUrl = started.upstreamUrl;
        candidate.sessionId = started.sessionId;
        if (started.withId !== undefined) candidate.withSessionId = started.withId;
        return undefined;
      },
    },
  ];

  return {
    checks: checks.map(({ name, on }) => ({ name, on })),
    async admit(transport, req) {
      const [path = '', query] = (req.url ?? '').split(/\?(.*)/s, 2);
      const candidate: Candidate = { transport, req, view: view(req), path, query };
      for (const check of checks) {
        if (!check.on.includes(transport)) continue;
        let verdict = check.run(candidate);
        // Only sign-in and the rate limits wait; the other checks answer at once.
        if (verdict instanceof Promise) verdict = await verdict;
        if (verdict === 'admit') break;
        if (verdict !== undefined) return { ok: false, error: verdict, candidate };
      }
      return { ok: true, candidate };
    },
  };
}

/** Refusals by a limit, which are logged once per client and window rather than per request. */
export const LIMIT_CODES: ReadonlySet<string> = new Set(['RATE_LIMITED', 'TOO_MANY_WEBSOCKETS', 'AT_CAPACITY']);

/**
 * The pipeline as Express middleware. What the checks learnt goes on `res.locals` (locals.ts)
 * for the static cache and the proxy; a request that creates a session is rewritten to carry
 * its signed token instead of whatever id it brought.
 */
export function httpAdmission(pipeline: AdmissionPipeline) {
  return (req: Request, res: Response, next: NextFunction): void => {
    pipeline.admit('http', req).then((admission) => {
      // Known for refusals too, so that metrics count them by route.
      if (admission.candidate.route !== undefined) res.locals.bokehRoute = admission.candidate.route;
      if (!admission.ok) {
        // limits.ts logs these once per client and window; the request log would log each one.
        if (LIMIT_CODES.has(admission.error.code)) res.locals.quiet = true;
        return sendError(req, res, admission.error);
      }
      const { user, upstreamUrl, sessionId, withSessionId } = admission.candidate;
      res.locals.user = user;
      if (upstreamUrl !== undefined) {
        req.url = upstreamUrl;
        delete req.headers['bokeh-session-id'];
        res.locals.sessionId = sessionId;
        if (withSessionId !== undefined) res.locals.withSessionId = withSessionId;
      }
      next();
    }, next);
  };
}
