/**
 * The hostile-input table's single-request cases (tests/support/hostile-cases.ts), run through
 * the admission checks in-process: the same requests that the Docker suites write to a real
 * stack, answered here in milliseconds with the same status and message.
 */
import type { IncomingMessage } from 'node:http';
import { HOSTILE_ENVIRONMENT, METHOD_CASES, PATH_CASES, SESSION_AND_UPGRADE_CASES, upgradeHeaders, type Forge } from '../../tests/support/hostile-cases.js';
import { admissionPipeline } from './admission.js';
import { createAuthenticator } from './auth.js';
import { loadConfig } from './config.js';
import type { ClientView } from './forwarded.js';
import { generateSessionId, generateToken } from './tokens.js';

const KEY = Buffer.from('hostile-unit-test-key_0123456789abcdefghijk');
const ORIGIN = 'http://localhost:8000';
const VIEW: ClientView = { ip: '127.0.0.1', proto: 'http', host: 'localhost:8000', origin: ORIGIN, viaTrustedProxy: false };

const config = loadConfig({ ...HOSTILE_ENVIRONMENT, BOKEH_SECRET_KEY: KEY.toString(), PUBLIC_ORIGINS: ORIGIN });
const pipeline = admissionPipeline({ config, auth: createAuthenticator(config), view: () => VIEW, shuttingDown: () => false });

const forge: Forge = {
  token: ({ secretKey = KEY, sessionId = generateSessionId(secretKey), ...options } = {}) => generateToken(sessionId, { secretKey, ...options }),
  origin: ORIGIN,
};

/** The request as Node's parser hands it to the gateway: header names in lower case. */
function parsed(method: string, target: string, headers: Record<string, string>): IncomingMessage {
  const lower = Object.fromEntries(Object.entries({ Host: 'localhost:8000', ...headers }).map(([name, value]) => [name.toLowerCase(), value]));
  return { method, url: target, headers: lower } as unknown as IncomingMessage;
}

const CASES = [...SESSION_AND_UPGRADE_CASES, ...PATH_CASES, ...METHOD_CASES];

test.each(CASES.map((item) => [item.name, item] as const))('%s', async (_name, item) => {
  const probe = item.request(forge);
  const result =
    probe.kind === 'get'
      ? await pipeline.admit('http', parsed(probe.method, probe.target, { Connection: 'close', ...probe.headers }))
      : await pipeline.admit('upgrade', parsed(probe.method, probe.target, upgradeHeaders(forge.origin, probe.changes)));
  if ('closed' in item.expect || 'closeCode' in item.expect) throw new Error(`${item.name}: a single request expects an HTTP answer`);
  if (result.ok) throw new Error(`${item.name}: admitted, expected HTTP ${String(item.expect.status)}`);
  expect([item.expect.status].flat()).toContain(result.error.status);
  if (item.expect.message) expect(result.error.message).toMatch(item.expect.message);
});

test('the table covers every request case: nothing above ran on an empty list', () => {
  expect(CASES.length).toBeGreaterThanOrEqual(40);
});
