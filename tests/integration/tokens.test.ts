/**
 * The gateway's tokens against Bokeh's own functions (bokeh.util.token), run in the bokeh image:
 * what the gateway mints, Bokeh accepts and reads the same way; what Bokeh mints, the gateway
 * verifies and reads the same way.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { generateSessionId, generateToken, tokenPayload, verifyToken, type Payload } from '../../gateway/src/tokens.js';

const IMAGE = `bokeh-gateway-stack/bokeh:${process.env.IMAGE_TAG || 'local'}`;
const KEY = randomBytes(33).toString('base64url');

/** Runs Python in the bokeh image with `input` as JSON on stdin; returns its JSON output. */
function python(script: string, input: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'docker',
      ['run', '--rm', '-i', '--network', 'none', '--entrypoint', 'python3', IMAGE, '-c', script],
      { maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      },
    );
    child.stdin!.end(JSON.stringify(input));
  });
}

// Bytes cross the language boundary as {"b64": ...} in this test's own JSON.
const PYTHON_HELPERS = `
import base64, json, sys
from bokeh.util.token import (check_session_id_signature, check_token_signature, generate_jwt_token,
                              generate_session_id, get_session_id, get_token_payload)

def plain(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value

def typed(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return value

data = json.load(sys.stdin)
key = data["key"].encode()
`;

const plain = (value: unknown): unknown => {
  if (Buffer.isBuffer(value)) return { b64: value.toString('base64') };
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
};

const EXTRA: Payload = {
  headers: { Host: 'dash.example.com', 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64)', 'Accept-Language': 'de-CH, fr;q=0.8' },
  cookies: { theme: 'dark', name: 'Zoë 😀' },
  arguments: { title: [Buffer.from('Grüße & <tags>', 'utf8')], raw: [Buffer.from([0, 255, 10])] },
  user: 'alice@example.com',
};

test("tokens minted by the gateway pass Bokeh's signature checks and read back the same", async () => {
  const sessionId = generateSessionId(Buffer.from(KEY));
  const tokens = [
    generateToken(sessionId, { secretKey: Buffer.from(KEY), extraPayload: EXTRA }),
    generateToken(generateSessionId(Buffer.from(KEY)), { secretKey: Buffer.from(KEY) }),
  ];
  const forged = generateToken(sessionId, { secretKey: Buffer.from('another key of the same length, 44 chars!!'), extraPayload: EXTRA });
  const results = (await python(
    `${PYTHON_HELPERS}
out = []
for token in data["tokens"]:
    out.append({"valid": check_token_signature(token, key, signed=True), "session_id": get_session_id(token),
                "id_valid": check_session_id_signature(get_session_id(token), key, signed=True),
                "payload": plain(get_token_payload(token))})
print(json.dumps(out))`,
    { key: KEY, tokens: [...tokens, forged] },
  )) as { valid: boolean; session_id: string; id_valid: boolean; payload: Record<string, unknown> }[];

  expect(results.map((result) => result.valid)).toEqual([true, true, false]);
  expect(results[0]!.session_id).toBe(sessionId);
  expect(results[0]!.id_valid).toBe(true);
  const { session_expiry: expiry, ...extra } = results[0]!.payload;
  expect(extra).toEqual(plain(EXTRA));
  expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(290);
});

test('tokens minted by Bokeh are verified and read by the gateway', async () => {
  const made = (await python(
    `${PYTHON_HELPERS}
session_id = generate_session_id(key, signed=True)
token = generate_jwt_token(session_id, key, signed=True, extra_payload=typed(data["extra"]), expiration=120)
short = generate_jwt_token(session_id, key, signed=True, expiration=-1)
print(json.dumps({"session_id": session_id, "token": token, "expired": short}))`,
    { key: KEY, extra: plain(EXTRA) },
  )) as { session_id: string; token: string; expired: string };

  const check = verifyToken(made.token, Buffer.from(KEY));
  expect(check).toMatchObject({ ok: true, sessionId: made.session_id });
  const { session_expiry: expiry, ...extra } = tokenPayload(made.token);
  expect(extra).toEqual(EXTRA);
  expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(110);
  expect(verifyToken(made.expired, Buffer.from(KEY))).toMatchObject({ ok: false, problem: 'expired' });
  expect(verifyToken(made.token, Buffer.from(`${KEY}x`))).toMatchObject({ ok: false, problem: 'signature' });
});
