/**
 * The hostile cases that are single HTTP requests or WebSocket upgrades, as data: what is sent
 * (target, method, headers, with tokens made by the caller) and what must come back. hostile.ts
 * sends them byte for byte to a real stack; the gateway's unit tests run the same requests
 * through its admission checks in-process (gateway/src/hostile.test.ts). Imports no test
 * machinery, so that both can use it.
 */
import type { TokenOptions } from '../../gateway/src/tokens.js';

/** Where the stacks serve Bokeh: BOKEH_PREFIX's default, which every test stack runs with. */
const PREFIX = '/bokeh';

/** The settings the hostile suites run the stack with, so limits are reached quickly. */
export const HOSTILE_ENVIRONMENT: Record<string, string> = {
  // stream is a real app on the Bokeh server, but not listed: it must be out of reach.
  BOKEH_APPS: 'sliders,ping',
  SESSION_TOKEN_EXPIRATION_S: '10',
  HEADERS_TIMEOUT_MS: '3000',
  REQUEST_TIMEOUT_MS: '5000',
  WS_MAX_MESSAGE_BYTES: '1048576',
  WS_IDLE_TIMEOUT_MS: '10000',
};

/** What a case needs from the stack it is sent to. */
export interface Forge {
  /** A session token, signed with the stack's key unless `secretKey` says otherwise. */
  token(options?: Omit<TokenOptions, 'secretKey'> & { sessionId?: string; secretKey?: Buffer }): string;
  /** An origin the stack lists in PUBLIC_ORIGINS for this front. */
  origin: string;
}

/** A request as it is written on the wire. */
export type Probe =
  /** A plain request; `headers` beside Host. */
  | { kind: 'get'; target: string; headers: Record<string, string>; method: string }
  /** A WebSocket handshake as a browser sends it, with `changes` applied (undefined removes). */
  | { kind: 'upgrade'; target: string; changes: Record<string, string | undefined>; method: string };

const get = (target: string, headers: Record<string, string> = {}, method = 'GET'): Probe => ({ kind: 'get', target, headers, method });
const upgrade = (target: string, changes: Record<string, string | undefined> = {}, method = 'GET'): Probe => ({ kind: 'upgrade', target, changes, method });

export const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** The headers of a browser's WebSocket handshake from `origin`, after `changes`. */
export function upgradeHeaders(origin: string, changes: Record<string, string | undefined>): Record<string, string> {
  const headers: Record<string, string | undefined> = {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': WS_KEY,
    'Sec-WebSocket-Version': '13',
    Origin: origin,
    ...changes,
  };
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

export type Expectation =
  /** An HTTP answer with this status (one of these), whose body says `message`. */
  | { status: number | number[]; message?: RegExp }
  /** The server hangs up within `withinMs`, with one of `status` or without an answer. */
  | { closed: 'any'; withinMs: number; status: number[] }
  /** An open WebSocket closed by the server with this code, and a reason that says why. */
  | { closeCode: number; reason?: RegExp };

export interface RequestCase {
  name: string;
  request(forge: Forge): Probe;
  expect: Expectation;
  /** When NGINX answers first in the nginx layout, it may answer differently. */
  nginx?: Expectation;
  /** When Apache answers first in the apache layout, it may answer differently. */
  apache?: Expectation;
}

const ws = (app = 'ping') => `${PREFIX}/${app}/ws`;
const protocols = (...values: string[]) => values.join(', ');
const b64 = (text: string) => Buffer.from(text).toString('base64url');

function tamperedExpiry(token: string): string {
  const [body, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as { session_expiry: number };
  claims.session_expiry += 86_400;
  return `${b64(JSON.stringify(claims))}.${signature}`;
}

const hourAgo = () => Math.floor(Date.now() / 1000) - 3600;
const autoload = (app: string, query = '') => `${PREFIX}/${app}/autoload.js?bokeh-autoload-element=x${query}`;

/** Session tokens and ids, Origin, subprotocols and handshakes, at the WebSocket and on the requests that create sessions. */
export const SESSION_AND_UPGRADE_CASES: RequestCase[] = [
  // --- Session tokens and ids at the WebSocket -----------------------------------------------
  {
    name: 'WebSocket with a token that is not a token',
    request: () => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', 'not-a-token') }),
    expect: { status: 403, message: /session token is malformed/ },
  },
  {
    name: 'WebSocket with a token signed by another key',
    request: (f) =>
      upgrade(ws(), {
        'Sec-WebSocket-Protocol': protocols('bokeh', f.token({ secretKey: Buffer.from('another-deployments-key-0123456789abcdef') })),
      }),
    expect: { status: 403, message: /not signed with this deployment's key/ },
  },
  {
    name: 'WebSocket with a tampered token (expiry pushed back)',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', tamperedExpiry(f.token())) }),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'WebSocket with an expired token',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token({ now: hourAgo() })) }),
    expect: { status: 403, message: /expired; reload the page/ },
  },
  {
    name: 'WebSocket with an unsigned token',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token().split('.')[0]!) }),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'WebSocket with a signed token around an unsigned session id',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token({ sessionId: 'U'.repeat(44) })) }),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'WebSocket with a token whose payload inflates to megabytes',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token({ extraPayload: { pad: 'a'.repeat(6 * 1024 * 1024) } })) }),
    expect: { status: 403, message: /malformed/ },
  },
  // --- Session tokens and ids on the HTTP requests that create sessions ----------------------
  {
    name: 'autoload.js with a forged bokeh-token',
    request: () => get(autoload('ping', `&bokeh-token=${b64('{"session_id": "x"}')}.forged`)),
    expect: { status: 403, message: /not signed/ },
  },
  {
    name: 'autoload.js with an expired bokeh-token (a stale tab)',
    request: (f) => get(autoload('ping', `&bokeh-token=${f.token({ now: hourAgo() })}`)),
    expect: { status: 403, message: /expired; reload the page/ },
  },
  {
    name: 'autoload.js with an unsigned bokeh-session-id',
    request: () => get(autoload('ping', `&bokeh-session-id=${'S'.repeat(44)}`)),
    expect: { status: 403, message: /session id is not signed/ },
  },
  {
    name: 'app page with a forged Bokeh-Session-Id header',
    request: () => get(`${PREFIX}/ping`, { 'Bokeh-Session-Id': `${'S'.repeat(44)}.forged` }),
    expect: { status: 403, message: /session id is not signed/ },
  },
  {
    name: 'autoload.js with both a token and a session id',
    request: (f) => get(autoload('ping', `&bokeh-token=${f.token()}&bokeh-session-id=x`)),
    expect: { status: 400, message: /at most one of bokeh-token, bokeh-session-id/ },
  },
  // --- Cross-site WebSockets -------------------------------------------------------------------
  {
    name: 'WebSocket from another site',
    request: (f) => upgrade(ws(), { Origin: 'https://evil.example', 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 403, message: /add that origin to PUBLIC_ORIGINS/ },
  },
  {
    name: 'WebSocket from an opaque origin ("null")',
    request: (f) => upgrade(ws(), { Origin: 'null', 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 403, message: /PUBLIC_ORIGINS/ },
  },
  {
    name: 'WebSocket from the same host on another port',
    request: (f) => upgrade(ws(), { Origin: `${new URL(f.origin).protocol}//127.0.0.1:1`, 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 403, message: /PUBLIC_ORIGINS/ },
  },
  // --- Subprotocols ----------------------------------------------------------------------------
  { name: 'WebSocket without subprotocols', request: () => upgrade(ws()), expect: { status: 400, message: /exactly two subprotocols/ } },
  {
    name: 'WebSocket offering only "bokeh"',
    request: () => upgrade(ws(), { 'Sec-WebSocket-Protocol': 'bokeh' }),
    expect: { status: 400, message: /exactly two subprotocols/ },
  },
  {
    name: 'WebSocket offering "bokeh" twice',
    request: () => upgrade(ws(), { 'Sec-WebSocket-Protocol': 'bokeh, bokeh' }),
    expect: { status: 403, message: /malformed/ },
  },
  {
    name: 'WebSocket with the token before "bokeh"',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols(f.token(), 'bokeh') }),
    expect: { status: 400, message: /"bokeh" and then the session token/ },
  },
  {
    name: 'WebSocket with a third subprotocol',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token(), 'chat') }),
    expect: { status: 400, message: /exactly two/ },
  },
  {
    name: 'WebSocket with garbage subprotocols',
    request: () => upgrade(ws(), { 'Sec-WebSocket-Protocol': ',,, ;;; ' }),
    expect: { status: 400, message: /exactly two/ },
  },
  // --- Malformed upgrades ----------------------------------------------------------------------
  {
    name: 'WebSocket version 8',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Version': '8', 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 400, message: /Sec-WebSocket-Version must be 13/ },
  },
  {
    name: 'WebSocket without a key',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Key': undefined, 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 400, message: /Sec-WebSocket-Key/ },
  },
  {
    name: 'WebSocket with a malformed key',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Key': 'short', 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 400, message: /Sec-WebSocket-Key/ },
  },
  {
    name: 'Upgrade to something other than WebSocket',
    request: (f) => upgrade(ws(), { Upgrade: 'h2c', 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 400, message: /Upgrade header must be "websocket"/ },
  },
  {
    name: 'WebSocket handshake with POST',
    request: (f) => upgrade(ws(), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }, 'POST'),
    expect: { status: 400, message: /use GET/ },
  },
  {
    name: 'WebSocket to an app that does not exist',
    request: (f) => upgrade(ws('nope'), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 404, message: /no app named "nope"/ },
  },
  {
    name: 'WebSocket to a Bokeh app that is not listed',
    request: (f) => upgrade(ws('stream'), { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 404, message: /no app named "stream"/ },
  },
  {
    name: 'WebSocket upgrade on a path that is not a socket',
    request: (f) => upgrade(`${PREFIX}/ping/autoload.js`, { 'Sec-WebSocket-Protocol': protocols('bokeh', f.token()) }),
    expect: { status: 404, message: /only at \/bokeh\/<app>\/ws/ },
  },
  { name: 'plain GET on the WebSocket endpoint', request: () => get(ws()), expect: { status: 426, message: /connect to it with a WebSocket client/ } },
];

export const PATH_CASES: RequestCase[] = [
  // --- Paths -----------------------------------------------------------------------------------
  {
    name: 'dot-dot segments under the prefix',
    request: () => get(`${PREFIX}/static/../../app/serve.py`),
    expect: { status: 400, message: /dot segments/ },
    nginx: { status: [400, 404] },
  },
  {
    name: 'percent-encoded dot-dot segments',
    request: () => get(`${PREFIX}/static/%2e%2e/%2e%2e/app/serve.py`),
    expect: { status: 400, message: /dot segments/ },
  },
  { name: 'percent-encoded slashes', request: () => get(`${PREFIX}/static/..%2f..%2fapp%2fserve.py`), expect: { status: 400, message: /encoded slashes/ } },
  { name: 'backslashes', request: () => get(`${PREFIX}/static/%5c..%5capp%5cserve.py`), expect: { status: 400, message: /encoded slashes or backslashes/ } },
  {
    name: 'an encoded NUL byte',
    request: () => get(`${PREFIX}/static/js/bokeh.min.js%00.png`),
    expect: { status: 400, message: /control characters/ },
    nginx: { status: 400 },
    // Apache's core refuses a NUL in the decoded path itself, with a 404, before any proxying.
    apache: { status: 404 },
  },
  { name: 'double percent-encoding', request: () => get(`${PREFIX}/static/%252e%252e/serve.py`), expect: { status: 400, message: /double percent-encoding/ } },
  { name: 'empty path segments', request: () => get(`${PREFIX}//ping`), expect: { status: 400, message: /empty path segments/ } },
  { name: "Bokeh's own index of every app", request: () => get(`${PREFIX}/`), expect: { status: 404, message: /index is not served/ } },
  { name: 'an app that does not exist', request: () => get(`${PREFIX}/secret-app`), expect: { status: 404, message: /no app named "secret-app"/ } },
  { name: 'a Bokeh app that is not listed in BOKEH_APPS', request: () => get(autoload('stream')), expect: { status: 404, message: /no app named "stream"/ } },
];

export const METHOD_CASES: RequestCase[] = [
  // --- Methods and malformed HTTP --------------------------------------------------------------
  { name: 'DELETE on an app', request: () => get(`${PREFIX}/ping`, {}, 'DELETE'), expect: { status: 405, message: /DELETE is not allowed here/ } },
  { name: 'TRACE on a static file', request: () => get(`${PREFIX}/static/js/bokeh.min.js`, {}, 'TRACE'), expect: { status: 405 } },
  { name: 'a method that does not exist', request: () => get(`${PREFIX}/ping`, {}, 'BREW'), expect: { status: [400, 405] } },
];
