/**
 * The authentication step with AUTH_MODE=basic on the real stack: nothing without signing in, the
 * signed-in user reaches the app through the session token, and one user's token does not open
 * a session for another.
 */
import { autoloadUrlFor, BokehClient, modelNamed, tokenFromAutoload, tokenPayload } from '../../client/bokeh-client.js';
import { PREFIX, request, useStack } from '../support/stack.js';

// alice / wonderland and bob / builder, bcrypt cost 4 to keep the test fast.
const USERS = ['alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK', 'bob:$2y$04$MiQaSxc1GQRh8D0FJeDkq.Tgn9Uyk0OjlMTxUuP/x0BYtghirZ/Qq'];
const stack = useStack({ environment: { AUTH_MODE: 'basic', AUTH_BASIC_USERS: USERS.join(','), AUTH_BASIC_REALM: 'Team dashboards' } });

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const ALICE = basic('alice', 'wonderland');
const BOB = basic('bob', 'builder');

async function tokenAs(credentials: Record<string, string>): Promise<string> {
  const reply = await request(autoloadUrlFor(stack().url, PREFIX, 'sliders'), { headers: credentials });
  expect(reply.status).toBe(200);
  return tokenFromAutoload(reply.body);
}

const wsUrl = () => `${stack().url.replace('http', 'ws')}${PREFIX}/sliders/ws`;

test('pages and Bokeh routes ask for a sign-in, with the configured realm', async () => {
  for (const path of ['/', '/apps/sliders', `${PREFIX}/sliders/autoload.js`, `${PREFIX}/static/js/bokeh.min.js`]) {
    const reply = await request(`${stack().url}${path}`, { headers: { accept: 'application/json' } });
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toBe('Basic realm="Team dashboards", charset="UTF-8"');
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'UNAUTHENTICATED', message: 'Sign in to use these apps.' });
  }
});

test('a wrong password or an unknown user is refused the same way; health probes need no sign-in', async () => {
  for (const credentials of [basic('alice', 'guess'), basic('mallory', 'wonderland'), { authorization: 'Bearer abc' }]) {
    const reply = await request(`${stack().url}/apps/sliders`, { headers: { ...credentials, accept: 'application/json' } });
    expect(reply.status).toBe(401);
  }
  expect((await request(`${stack().url}/healthz`)).status).toBe(200);
  expect((await request(`${stack().url}/readyz`)).status).toBe(200);
});

test('the signed-in user is in the token, and the sample app shows it', async () => {
  const page = await request(`${stack().url}/apps/sliders`, { headers: ALICE });
  expect(page.status).toBe(200);
  const token = await tokenAs(ALICE);
  const payload = tokenPayload(token);
  expect(payload.extra.user).toBe('alice');
  // Credentials never travel inside the token.
  expect(JSON.stringify(payload.extra)).not.toMatch(/authorization|wonderland/i);

  const client = await BokehClient.connect(wsUrl(), token, { origin: stack().url, headers: ALICE });
  try {
    const doc = await client.pullDocument();
    expect(modelNamed(doc, 'viewer').attributes?.text).toBe('Signed in as <b>alice</b>');
  } finally {
    await client.close();
  }
});

test('the WebSocket asks for a sign-in too', async () => {
  const token = await tokenAs(ALICE);
  await expect(BokehClient.connect(wsUrl(), token, { origin: stack().url })).rejects.toThrow(/upgrade refused with HTTP 401/);
});

test("one user's token does not open a session for another", async () => {
  const token = await tokenAs(ALICE);
  await expect(BokehClient.connect(wsUrl(), token, { origin: stack().url, headers: BOB })).rejects.toThrow(/upgrade refused with HTTP 403/);
  const reply = await request(`${autoloadUrlFor(stack().url, PREFIX, 'sliders')}&bokeh-token=${token}`, { headers: { ...BOB, accept: 'application/json' } });
  expect(reply.status).toBe(403);
  expect(JSON.parse(reply.body)).toMatchObject({ error: 'TOKEN_NOT_YOURS', message: expect.stringContaining('issued to another user') });
});
