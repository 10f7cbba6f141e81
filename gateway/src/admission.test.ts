import type { IncomingMessage } from 'node:http';
import { admissionPipeline, type Transport } from './admission.js';
import { createAuthenticator } from './auth.js';
import { loadConfig } from './config.js';
import type { ClientView } from './forwarded.js';

const KEY = 'admission-test-key_0123456789abcdefghijklm';
// alice / wonderland, bcrypt cost 4.
const ALICE = 'alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK';
const VIEW: ClientView = { ip: '203.0.113.9', proto: 'http', host: 'localhost:8000', origin: 'http://localhost:8000', viaTrustedProxy: false };

function pipeline(env: Record<string, string> = {}, shuttingDown = false) {
  const config = loadConfig({ BOKEH_SECRET_KEY: KEY, BOKEH_APPS: 'sliders,ping', ...env });
  return admissionPipeline({ config, auth: createAuthenticator(config), view: () => VIEW, shuttingDown: () => shuttingDown });
}

const request = (method: string, url: string, headers: Record<string, string> = {}) =>
  ({ method, url, headers: { host: 'localhost:8000', ...headers } }) as unknown as IncomingMessage;

const upgradeHeaders = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };

test('HTTP asks who is there first; an upgrade is checked for the cheap things first', () => {
  const order = (transport: Transport) =>
    pipeline()
      .checks.filter((check) => check.on.includes(transport))
      .map((check) => check.name);
  expect(order('http')).toEqual(['sign-in', 'Bokeh route', 'no request body', 'WebSocket endpoint', 'session-start rate', 'session']);
  expect(order('upgrade')).toEqual(['Bokeh route', 'WebSocket handshake', 'Origin', 'shutdown', 'WebSocket rate', 'open WebSockets', 'sign-in', 'session']);
});

describe('with sign-in on', () => {
  const basic = pipeline({ AUTH_MODE: 'basic', AUTH_BASIC_USERS: ALICE });

  test('a stranger asking for an unknown app over HTTP is asked to sign in, and learns nothing', async () => {
    const result = await basic.admit('http', request('GET', '/bokeh/secret-app'));
    expect(result).toMatchObject({
      ok: false,
      error: { status: 401, code: 'UNAUTHENTICATED', headers: { 'WWW-Authenticate': expect.stringMatching(/^Basic/) } },
    });
  });

  test("a stranger's upgrade is refused for its route before sign-in is tried", async () => {
    expect(await basic.admit('upgrade', request('GET', '/bokeh/secret-app/ws', upgradeHeaders))).toMatchObject({
      ok: false,
      error: { status: 404, code: 'UNKNOWN_APP' },
    });
    expect(await basic.admit('upgrade', request('GET', '/bokeh/ping/ws', upgradeHeaders))).toMatchObject({
      ok: false,
      error: { status: 401, code: 'UNAUTHENTICATED' },
    });
  });

  test('pages outside the prefix are admitted once signed in, with the user', async () => {
    const authorization = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
    const result = await basic.admit('http', request('GET', '/apps/ping', { authorization }));
    expect(result).toMatchObject({ ok: true, candidate: { user: 'alice' } });
    expect(result.candidate.route).toBeUndefined();
  });
});

test('an upgrade during shutdown is refused with 503 after its handshake and Origin checks', async () => {
  const closing = pipeline({}, true);
  expect(await closing.admit('upgrade', request('GET', '/bokeh/ping/ws', { ...upgradeHeaders, origin: 'https://evil.example' }))).toMatchObject({
    error: { status: 403, code: 'ORIGIN_NOT_ALLOWED' },
  });
  expect(await closing.admit('upgrade', request('GET', '/bokeh/ping/ws', upgradeHeaders))).toMatchObject({ error: { status: 503, code: 'SHUTTING_DOWN' } });
});

test('a page request gets a session: a new token in its URL, and the session it names', async () => {
  const result = await pipeline().admit('http', request('GET', '/bokeh/ping/autoload.js?bokeh-autoload-element=x'));
  expect(result.ok).toBe(true);
  const { upstreamUrl, sessionId, route } = result.candidate;
  expect(route).toEqual({ kind: 'autoload', app: 'ping' });
  expect(upstreamUrl).toMatch(/^\/bokeh\/ping\/autoload\.js\?bokeh-autoload-element=x&bokeh-token=/);
  expect(sessionId).toMatch(/^[A-Za-z0-9]{44}\./);
});

test('a CORS preflight for autoload.js creates no session', async () => {
  const result = await pipeline().admit('http', request('OPTIONS', '/bokeh/ping/autoload.js'));
  expect(result).toMatchObject({ ok: true, candidate: { route: { kind: 'autoload' } } });
  expect(result.candidate.sessionId).toBeUndefined();
});
