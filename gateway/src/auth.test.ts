import type { IncomingMessage } from 'node:http';
import { createAuthenticator } from './auth.js';
import { loadConfig } from './config.js';
import type { ClientView } from './forwarded.js';

const KEY = 'auth-test-key_0123456789abcdefghijklmnopqr';
// alice / wonderland, bcrypt cost 4 to keep the tests fast.
const ALICE = 'alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const view = (viaTrustedProxy: boolean): ClientView => ({
  ip: '203.0.113.9',
  proto: 'https',
  host: 'dash.example.com',
  origin: 'https://dash.example.com',
  viaTrustedProxy,
});
const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('AUTH_MODE=none', () => {
  test('lets everyone in, anonymously', async () => {
    const auth = createAuthenticator(loadConfig({ BOKEH_SECRET_KEY: KEY }));
    expect(await auth.authenticate(request({}), view(false))).toEqual({ ok: true, user: undefined });
  });
});

describe('AUTH_MODE=basic', () => {
  const auth = createAuthenticator(loadConfig({ BOKEH_SECRET_KEY: KEY, AUTH_MODE: 'basic', AUTH_BASIC_USERS: ALICE }));

  test('accepts the right password, also when asked again (from the cache)', async () => {
    expect(await auth.authenticate(request(basic('alice', 'wonderland')), view(false))).toEqual({ ok: true, user: 'alice' });
    expect(await auth.authenticate(request(basic('alice', 'wonderland')), view(false))).toEqual({ ok: true, user: 'alice' });
  });

  test('an unknown name takes as long to refuse as a wrong password', async () => {
    const once = async (headers: Record<string, string>) => {
      const started = process.hrtime.bigint();
      await auth.authenticate(request(headers), view(false));
      return Number(process.hrtime.bigint() - started);
    };
    // Taken in turns and compared by their medians, so that other work on the machine slows both
    // alike instead of one run of twenty.
    const wrongTimes: number[] = [];
    const unknownTimes: number[] = [];
    for (let i = 0; i < 21; i++) {
      wrongTimes.push(await once(basic('alice', 'not it')));
      unknownTimes.push(await once(basic('nobody', 'not it')));
    }
    const median = (times: number[]) => times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    const wrong = median(wrongTimes);
    const unknown = median(unknownTimes);
    // Same bcrypt cost either way; before, an unknown name cost a cost-10 hash (about 30 times longer).
    expect(unknown / wrong).toBeLessThan(4);
    expect(unknown / wrong).toBeGreaterThan(0.25);
  });

  test.each([
    ['no credentials', {}, /Sign in/],
    ['a wrong password', basic('alice', 'wonderlan'), /Wrong user name or password/],
    ['an unknown user', basic('mallory', 'wonderland'), /Wrong user name or password/],
    ['a password with a colon', basic('alice', 'wonder:land'), /Wrong/],
    ['another scheme', { authorization: 'Bearer x' }, /not HTTP Basic/],
  ])('refuses %s with 401 and a challenge', async (_name, headers, message) => {
    const result = await auth.authenticate(request(headers), view(false));
    expect(result).toMatchObject({
      ok: false,
      error: { status: 401, message: expect.stringMatching(message), headers: { 'WWW-Authenticate': 'Basic realm="Bokeh apps", charset="UTF-8"' } },
    });
  });
});

describe('AUTH_MODE=header', () => {
  const auth = createAuthenticator(
    loadConfig({ BOKEH_SECRET_KEY: KEY, AUTH_MODE: 'header', TRUST_PROXY: 'loopback', AUTH_USER_HEADER: 'X-Auth-Request-User' }),
  );

  test('takes the user from a trusted proxy', async () => {
    expect(await auth.authenticate(request({ 'x-auth-request-user': ' carol ' }), view(true))).toEqual({ ok: true, user: 'carol' });
  });

  test('ignores the header from anyone else', async () => {
    expect(await auth.authenticate(request({ 'x-auth-request-user': 'carol' }), view(false))).toMatchObject({
      ok: false,
      error: { status: 401, message: expect.stringMatching(/through the identity proxy/) },
    });
  });

  test('refuses a trusted request that names nobody', async () => {
    expect(await auth.authenticate(request({}), view(true))).toMatchObject({
      ok: false,
      error: { status: 401, message: expect.stringMatching(/did not name a user in x-auth-request-user/) },
    });
  });
});
