import { inflateSync } from 'node:zlib';
import {
  checkSessionIdSignature,
  checkTokenSignature,
  generateSessionId,
  generateToken,
  pythonJson,
  sessionIdFromToken,
  tokenPayload,
  verifyToken,
} from './tokens.js';

// Made by Bokeh 3.9.2's bokeh.util.token in the bokeh image, at Unix time 1795688257:
//   generate_jwt_token(SESSION_ID, secret_key=KEY, signed=True, expiration=300[, extra_payload=EXTRA])
const KEY = Buffer.from('test-key-0123456789abcdefghijklmnopqrstuvwxyz');
const NOW = 1795688257;
const SESSION_ID = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.Hd9S3ghj9TOaq1e4EnJjGdtjtQz2tdk1K_bZlpaYBP0';
const PYTHON_TOKEN =
  'eyJzZXNzaW9uX2lkIjogIkFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBLkhkOVMzZ2hqOVRPYXExZTRFbkpqR2R0anRRejJ0ZGsxS19iWmxwYVlCUDAiLCAic2Vzc2lvbl9leHBpcnkiOiAxNzk1Njg4NTU3fQ.XrDBKLz55N4eM9zH9ngzCxTNIRhDW7nDz1YIuqVRQ4I';
const PYTHON_TOKEN_WITH_EXTRA =
  'eyJzZXNzaW9uX2lkIjogIkFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBLkhkOVMzZ2hqOVRPYXExZTRFbkpqR2R0anRRejJ0ZGsxS19iWmxwYVlCUDAiLCAic2Vzc2lvbl9leHBpcnkiOiAxNzk1Njg4NTU3LCAiX19ia19femxpYl8iOiAiZU5vbGpVRUt3akFRUmE4U1poMGgxb1hWQy1qZWpXQ0sxR2Fzb1drTDZRd3FJWGMzVXpmRC01X0hud1F2YkIzR0JZNHF3WGxlcUFCOFFDdTRiaXdiNHpvcGhQQmd1VEpWTGJ4X1duYjF6cFdMeGtBdWVqZlBnOGQxUjJJYmV4NXhvdjh3ZVFwWTZKYmc4YVhWZ3N0cDZPOXZ5STNvdkdDVXNnMi1RX2staWIzVmlpS2pWaE9IME9RZnROTTB4dyJ9.xPBmaEzZj5Q8ulve1G_huKV0vlSD_np8DylBRXEfpgQ';
const EXTRA = {
  headers: { Host: 'x', 'X-Ü': 'é\u2028\x7f😀' },
  cookies: {},
  arguments: { title: [Buffer.from('Hi \xff', 'latin1')] },
  user: 'alice',
  n: [1, true, null],
};

const firstPart = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, string>;

describe('tokens, compared with Bokeh', () => {
  test('a token without extra payload is byte for byte the one Bokeh makes', () => {
    expect(generateToken(SESSION_ID, { secretKey: KEY, now: NOW })).toBe(PYTHON_TOKEN);
  });

  test('the extra payload is the JSON Bokeh writes (non-ASCII escaped, bytes as {"bytes": ...})', () => {
    const ours = firstPart(generateToken(SESSION_ID, { secretKey: KEY, now: NOW, extraPayload: EXTRA })).__bk__zlib_!;
    const theirs = firstPart(PYTHON_TOKEN_WITH_EXTRA).__bk__zlib_!;
    // zlib implementations may choose different (equally valid) encodings; the JSON inside must match.
    expect(inflateSync(Buffer.from(ours, 'base64url')).toString()).toBe(inflateSync(Buffer.from(theirs, 'base64url')).toString());
  });

  test("reads Bokeh's tokens: session id, expiry, signature and extra payload", () => {
    expect(sessionIdFromToken(PYTHON_TOKEN_WITH_EXTRA)).toBe(SESSION_ID);
    expect(checkTokenSignature(PYTHON_TOKEN_WITH_EXTRA, KEY)).toBe(true);
    expect(tokenPayload(PYTHON_TOKEN_WITH_EXTRA)).toEqual({ session_expiry: NOW + 300, ...EXTRA });
    const check = verifyToken(PYTHON_TOKEN_WITH_EXTRA, KEY, NOW);
    expect(check).toMatchObject({ ok: true, sessionId: SESSION_ID, expiry: NOW + 300 });
  });
});

describe('session ids', () => {
  test('are 44 characters of [A-Za-z0-9], signed, and never repeat', () => {
    const ids = new Set(Array.from({ length: 200 }, () => generateSessionId(KEY)));
    expect(ids.size).toBe(200);
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9]{44}\.[A-Za-z0-9_-]{43}$/);
      expect(checkSessionIdSignature(id, KEY)).toBe(true);
      expect(checkSessionIdSignature(id, Buffer.from('another key, just as long as the first one'))).toBe(false);
    }
  });
});

describe('verifyToken', () => {
  const token = generateToken(generateSessionId(KEY), { secretKey: KEY, now: NOW, expiresInSeconds: 60, extraPayload: { user: 'bob' } });

  test('accepts a fresh token and returns its payload', () => {
    expect(verifyToken(token, KEY, NOW + 59)).toMatchObject({ ok: true, expiry: NOW + 60, payload: { user: 'bob' } });
  });

  test('refuses an expired token, at the second Bokeh does', () => {
    expect(verifyToken(token, KEY, NOW + 60)).toMatchObject({ ok: false, problem: 'expired' });
  });

  test('refuses a token signed with another key', () => {
    expect(verifyToken(token, Buffer.from('x'.repeat(44)), NOW)).toMatchObject({ ok: false, problem: 'signature' });
  });

  test('refuses a tampered payload', () => {
    const [body, sig] = token.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString());
    claims.session_expiry += 3600;
    const forged = `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
    expect(verifyToken(forged, KEY, NOW)).toMatchObject({ ok: false, problem: 'signature' });
  });

  test('refuses a validly signed token whose session id is not signed', () => {
    const unsignedId = generateToken('B'.repeat(44), { secretKey: KEY, now: NOW });
    expect(verifyToken(unsignedId, KEY, NOW)).toMatchObject({ ok: false, problem: 'signature' });
  });

  test.each([
    ['empty', ''],
    ['not base64url', '!!!.???'],
    ['not JSON', `${Buffer.from('hello').toString('base64url')}.x`],
    ['a JSON array', `${Buffer.from('[1]').toString('base64url')}.x`],
    ['no session id', `${Buffer.from('{"session_expiry": 1}').toString('base64url')}.x`],
    ['a payload that is not zlib', `${Buffer.from('{"session_id": "a", "__bk__zlib_": "AAAA"}').toString('base64url')}.x`],
    ['unsigned', Buffer.from(`{"session_id": "${SESSION_ID}", "session_expiry": ${NOW + 60}}`).toString('base64url')],
  ])('refuses a token that is %s, without throwing', (_name, bad) => {
    const check = verifyToken(bad, KEY, NOW);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.message).toMatch(/session token/);
  });

  test('refuses a zlib bomb without inflating it all', () => {
    const bomb = generateToken(SESSION_ID, { secretKey: KEY, now: NOW, extraPayload: { pad: 'a'.repeat(8 * 1024 * 1024) } });
    expect(bomb.length).toBeLessThan(20_000);
    expect(verifyToken(bomb, KEY, NOW)).toMatchObject({ ok: false, problem: 'malformed' });
  });
});

describe('pythonJson', () => {
  test('writes what json.dumps writes', () => {
    expect(pythonJson({ a: [1, 'b'], c: { d: null, e: false } })).toBe('{"a": [1, "b"], "c": {"d": null, "e": false}}');
    expect(pythonJson('tab\there "q" \\ \u0001')).toBe('"tab\\there \\"q\\" \\\\ \\u0001"');
  });

  test('refuses fractions, which the two languages print differently', () => {
    expect(() => pythonJson(0.1)).toThrow(/whole numbers/);
  });
});
