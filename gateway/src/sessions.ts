/**
 * Signed Bokeh sessions. Bokeh runs with `--session-ids external-signed`, so it opens a session
 * only for an id or token signed with BOKEH_SECRET_KEY; the gateway holds the key and is the only
 * way in. Two moments matter:
 *
 * - A request that creates a session (an app's page or its autoload.js) passes through the
 *   gateway: it gets a freshly minted token carrying what Bokeh itself would record about the
 *   request (headers, cookies, query arguments) plus the signed-in user, or, when it brings its
 *   own signed id or token, that is checked first.
 * - The WebSocket upgrade presents the token as its second subprotocol: the gateway checks it
 *   (signature, expiry, owner) and refuses a bad one with a reason, where Bokeh would only drop
 *   the socket.
 */
import type { IncomingMessage } from 'node:http';
import { parse as parseCookies } from 'cookie';
import type { Config } from './config.js';
import type { ErrorCode, GatewayError } from './errors.js';
import { checkSessionIdSignature, generateSessionId, generateToken, verifyToken, type Payload } from './tokens.js';

/** Headers never copied into a token: credentials, and hop-by-hop ones that describe our hop. */
const PRIVATE_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'transfer-encoding',
  'bokeh-session-id',
]);

/** Tornado's spelling of header names ("user-agent" -> "User-Agent"), which Bokeh apps see. */
export function tornadoHeaderName(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1).toLowerCase())
    .join('-');
}

/**
 * What Bokeh would have put in the token had it minted one (session_handler.py), seen from
 * behind the gateway: request headers with the client's X-Forwarded-* as the gateway computed
 * them, cookies, and query arguments as lists of bytes.
 */
export function requestPayload(req: IncomingMessage, url: URL, forwarded: Record<string, string>, user: string | undefined): Payload {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (PRIVATE_HEADERS.has(name) || name.startsWith('x-forwarded-') || name === 'x-real-ip' || value === undefined) continue;
    headers[tornadoHeaderName(name)] = Array.isArray(value) ? value.join(', ') : value;
  }
  for (const [name, value] of Object.entries(forwarded)) headers[tornadoHeaderName(name)] = value;
  const cookies: Record<string, string> = {};
  for (const [name, value] of Object.entries(parseCookies(req.headers.cookie ?? ''))) {
    if (value !== undefined) cookies[name] = value;
  }
  const args: Record<string, Buffer[]> = {};
  for (const [name, value] of url.searchParams) (args[name] ??= []).push(Buffer.from(value, 'utf8'));
  return { headers, cookies, arguments: args, user: user ?? null };
}

/**
 * A session may start: what to ask Bokeh for, and the id of the session it will open. When the
 * gateway chose the id itself, `withId` gives the same request for another fresh id: a request
 * that met a draining or dead replica is sent again, for a session on another one, before Bokeh
 * has seen the first id anywhere.
 */
export type SessionStart = { ok: true; upstreamUrl: string; sessionId: string; withId?: (sessionId: string) => string } | { ok: false; error: GatewayError };

const refused = (status: number, code: ErrorCode, message: string): SessionStart => ({ ok: false, error: { status, code, message } });

/**
 * The URL to request from Bokeh for a request that creates a session: the client's own URL with
 * a signed token in `bokeh-token`, or a refusal that says what was wrong.
 */
export function startSession(
  config: Config,
  req: IncomingMessage,
  forwarded: Record<string, string>,
  user: string | undefined,
  newSessionId: () => string | undefined = () => generateSessionId(config.secretKey),
): SessionStart {
  const url = new URL(req.url ?? '/', 'http://gateway.invalid');
  const tokens = url.searchParams.getAll('bokeh-token');
  const idArgs = url.searchParams.getAll('bokeh-session-id');
  const idHeader = req.headers['bokeh-session-id'];
  const ids = [...idArgs, ...(idHeader === undefined ? [] : [idHeader].flat())];
  if (tokens.length + ids.length > 1) {
    return refused(400, 'AMBIGUOUS_SESSION', 'Send at most one of bokeh-token, bokeh-session-id and the Bokeh-Session-Id header, once.');
  }

  if (tokens.length === 1) {
    const checked = checkToken(config, tokens[0]!, user);
    if (!checked.ok) return checked;
    // A valid token from elsewhere (another service holding the key) goes to Bokeh unchanged.
    return { ok: true, upstreamUrl: url.pathname + url.search, sessionId: checked.sessionId };
  }

  if (ids.length === 1 && !checkSessionIdSignature(ids[0]!, config.secretKey)) {
    return refused(403, 'BAD_SESSION_ID', "The session id is not signed with this deployment's key. Leave it out and the gateway starts a new session.");
  }
  url.searchParams.delete('bokeh-session-id');
  const extraPayload = requestPayload(req, url, forwarded, user);
  const withId = (sessionId: string): string => {
    const signed = new URL(url);
    signed.searchParams.append(
      'bokeh-token',
      generateToken(sessionId, { secretKey: config.secretKey, expiresInSeconds: config.sessionTokenExpirationS, extraPayload }),
    );
    return signed.pathname + signed.search;
  };
  if (ids.length === 1) return { ok: true, upstreamUrl: withId(ids[0]!), sessionId: ids[0]! };
  const sessionId = newSessionId();
  if (sessionId === undefined) return { ok: false, error: atCapacity(config) };
  return { ok: true, upstreamUrl: withId(sessionId), sessionId, withId };
}

/** Every serving Bokeh replica holds MAX_SESSIONS_PER_REPLICA sessions. */
export function atCapacity(config: Config): GatewayError {
  return {
    status: 503,
    code: 'AT_CAPACITY',
    message: `The deployment is at capacity: every Bokeh replica holds ${config.maxSessionsPerReplica} sessions. Try again in a moment; to serve more, add Bokeh replicas or raise MAX_SESSIONS_PER_REPLICA.`,
    headers: { 'Retry-After': String(AT_CAPACITY_RETRY_S) },
  };
}

/** Unused sessions are dropped after 15 s and Bokeh checks every 17 s: room comes back within that. */
const AT_CAPACITY_RETRY_S = 15;

/** A token that may open its session, with the session's id, or why it may not. */
export type TokenAdmission = { ok: true; sessionId: string } | { ok: false; error: GatewayError };

/**
 * Whether a token may open a session: what Bokeh checks (format, signatures, expiry) and, with
 * authentication on, that it was issued to the same user.
 */
function checkToken(config: Config, token: string, user: string | undefined): TokenAdmission {
  const check = verifyToken(token, config.secretKey);
  if (!check.ok) return { ok: false, error: { status: 403, code: check.problem === 'expired' ? 'TOKEN_EXPIRED' : 'BAD_TOKEN', message: check.message } };
  if (config.authMode === 'none') return { ok: true, sessionId: check.sessionId };
  const owner = typeof check.payload.user === 'string' ? check.payload.user : undefined;
  if (owner === user) return { ok: true, sessionId: check.sessionId };
  return {
    ok: false,
    error: { status: 403, code: 'TOKEN_NOT_YOURS', message: 'The session token was issued to another user; reload the page to start your own session.' },
  };
}

/**
 * BokehJS opens `new WebSocket(url, ["bokeh", token])`: exactly those two subprotocols, and a
 * token that Bokeh will accept. Returns the session the socket joins, or why it is refused.
 */
export function admitSocket(config: Config, offered: readonly string[], user: string | undefined): TokenAdmission {
  if (offered.length !== 2 || offered[0] !== 'bokeh') {
    return {
      ok: false,
      error: {
        status: 400,
        code: 'BAD_SUBPROTOCOL',
        message: 'A Bokeh WebSocket offers exactly two subprotocols, "bokeh" and then the session token (Sec-WebSocket-Protocol: bokeh, <token>).',
      },
    };
  }
  return checkToken(config, offered[1]!, user);
}
