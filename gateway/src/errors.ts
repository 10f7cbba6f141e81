/**
 * What the gateway answers when it cannot do what was asked: one table from upstream failures
 * to HTTP statuses, and one renderer that speaks HTML to browsers and JSON to programs.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { page, escapeHtml } from './html.js';

/**
 * Every code the gateway answers with, in the `error` field of its JSON answers. Stable: clients
 * may branch on them, and README.md's error table lists exactly these (a test checks).
 */
export const ERROR_CODES = [
  // Routes and requests
  'NOT_FOUND',
  'UNKNOWN_APP',
  'BAD_PATH',
  'METHOD_NOT_ALLOWED',
  'BODY_NOT_ALLOWED',
  'UPGRADE_REQUIRED',
  'BAD_REQUEST',
  'HEADERS_TOO_LARGE',
  'REQUEST_TIMEOUT',
  // Sign-in, sessions and tokens
  'UNAUTHENTICATED',
  'AMBIGUOUS_SESSION',
  'BAD_SESSION_ID',
  'BAD_TOKEN',
  'TOKEN_EXPIRED',
  'TOKEN_NOT_YOURS',
  // WebSocket upgrades
  'BAD_HANDSHAKE',
  'BAD_SUBPROTOCOL',
  'ORIGIN_NOT_ALLOWED',
  'SHUTTING_DOWN',
  // Limits
  'RATE_LIMITED',
  'TOO_MANY_WEBSOCKETS',
  'AT_CAPACITY',
  // Bokeh behind the gateway
  'BOKEH_UNAVAILABLE',
  'BOKEH_BAD_GATEWAY',
  'BOKEH_TIMEOUT',
  'BOKEH_REFUSED',
  // The host app behind the gateway (HOST_APP_URL)
  'HOST_APP_UNAVAILABLE',
  'HOST_APP_BAD_GATEWAY',
  'HOST_APP_TIMEOUT',
  // The gateway itself
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * A refusal: whatever check or failure produced it, sendError turns it into an HTTP answer and
 * answerOnSocket into a refused WebSocket upgrade.
 */
export interface GatewayError {
  status: number;
  code: ErrorCode;
  /** One sentence a user can act on. */
  message: string;
  /** Headers the answer must carry, e.g. Allow on a 405 or WWW-Authenticate on a 401. */
  headers?: Record<string, string>;
}

/**
 * Network errors talking to Bokeh, by Node error code. 503 means "not there (yet)": the
 * container is stopped, starting or its name does not resolve; 502 means it answered badly;
 * 504 means it did not answer in time.
 */
const UPSTREAM_FAILURES: Record<string, { status: number; what: string }> = {
  ECONNREFUSED: { status: 503, what: 'refused the connection (it is not running or still starting)' },
  ECONNECT_TIMEOUT: { status: 503, what: 'did not accept a connection in time (it is gone or unreachable)' },
  ENOTFOUND: { status: 503, what: 'cannot be found on the network (its container is stopped or its name is wrong)' },
  EAI_AGAIN: { status: 503, what: 'cannot be found on the network (its container is stopped or its name is wrong)' },
  EHOSTUNREACH: { status: 503, what: 'is unreachable' },
  ENETUNREACH: { status: 503, what: 'is unreachable' },
  ECONNRESET: { status: 502, what: 'closed the connection before answering' },
  EPIPE: { status: 502, what: 'closed the connection before answering' },
  ETIMEDOUT: { status: 504, what: 'did not answer in time' },
  ESOCKETTIMEDOUT: { status: 504, what: 'did not answer in time' },
  ECONNABORTED: { status: 504, what: 'did not answer in time' },
};

/**
 * Ends `request` with ETIMEDOUT, a 504 above, once no byte has moved for `ms`. Node's socket
 * timeout alone ends nothing, and http-proxy-middleware's proxyTimeout ends the request as a
 * plain ECONNRESET, a 502: a slow upstream must read as slow, not as broken.
 */
export function timeOutAs504(request: ClientRequest, ms: number): void {
  request.setTimeout(ms, () => request.destroy(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ETIMEDOUT' })));
}

function failure(err: NodeJS.ErrnoException): { status: number; what: string } {
  const known = err.code === undefined ? undefined : UPSTREAM_FAILURES[err.code];
  const what = known?.what ?? `failed (${err.message})`;
  return { status: known?.status ?? 502, what: `${what}${err.code ? ` [${err.code}]` : ''}` };
}

export function upstreamError(err: NodeJS.ErrnoException, upstream: string): GatewayError {
  const { status, what } = failure(err);
  return {
    status,
    code: status === 504 ? 'BOKEH_TIMEOUT' : status === 503 ? 'BOKEH_UNAVAILABLE' : 'BOKEH_BAD_GATEWAY',
    message: `The Bokeh server at ${upstream} ${what}. The gateway keeps running and will reconnect when Bokeh is back.`,
  };
}

/** The same failures, from the host app (HOST_APP_URL): the page names it, so nobody blames Bokeh. */
export function hostAppError(err: NodeJS.ErrnoException, hostApp: string): GatewayError {
  const { status, what } = failure(err);
  return {
    status,
    code: status === 504 ? 'HOST_APP_TIMEOUT' : status === 503 ? 'HOST_APP_UNAVAILABLE' : 'HOST_APP_BAD_GATEWAY',
    message: `The host app at ${hostApp} ${what}. The Bokeh apps under the gateway keep working; this page comes back when the host app does.`,
  };
}

/** Whether the client prefers JSON over HTML (APIs, curl with Accept, tests). */
function wantsJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  const json = accept.indexOf('application/json');
  const html = accept.indexOf('text/html');
  return json !== -1 && (html === -1 || json < html);
}

export function errorBody(req: IncomingMessage, error: GatewayError, detailHtml = ''): { type: string; body: string } {
  if (wantsJson(req)) {
    return { type: 'application/json; charset=utf-8', body: JSON.stringify({ error: error.code, status: error.status, message: error.message }) };
  }
  const title = `${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`;
  return {
    type: 'text/html; charset=utf-8',
    body: page({ title, body: `<h1>${escapeHtml(title)}</h1>\n<p class="error">${escapeHtml(error.message)}</p>\n${detailHtml}` }),
  };
}

export function sendError(req: IncomingMessage, res: ServerResponse, error: GatewayError, detailHtml = ''): void {
  if (res.headersSent) {
    // Part of a response already went out: the only honest signal left is a cut connection.
    res.destroy();
    return;
  }
  const { type, body } = errorBody(req, error, detailHtml);
  res.writeHead(error.status, {
    ...(error.status === 503 ? { 'Retry-After': '5' } : {}),
    ...error.headers,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

/**
 * Answers, with a plain HTTP response, a connection that Express never saw: a WebSocket upgrade
 * that will not be completed (before the 101 the connection still speaks HTTP) or a request
 * Node's parser refused. Then closes the socket.
 */
export function answerOnSocket(socket: Duplex, error: GatewayError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: error.code, status: error.status, message: error.message });
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      Object.entries(error.headers ?? {})
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      '\r\n' +
      body,
  );
}
