/**
 * Runs every case in hostile.ts against one layout: each bad input must get its clear answer, and
 * afterwards the stack must still serve a real session. Also the one case that needs time: a real
 * token replayed after it has expired.
 */
import { BokehClient } from '../../client/bokeh-client.js';
import {
  frontOf,
  HOSTILE_CASES,
  HOSTILE_ENVIRONMENT,
  pageToken,
  servesSession,
  upgrade,
  type Closed,
  type Expectation,
  type Front,
  type RawReply,
} from './hostile.js';
import { PREFIX, useStack } from './stack.js';

function check(outcome: RawReply | Closed, expectation: Expectation): void {
  if ('closeCode' in expectation) {
    if (!('code' in outcome)) throw new Error(`expected a WebSocket close, got HTTP ${outcome.status ?? 'no answer'}`);
    expect(outcome.code).toBe(expectation.closeCode);
    if (expectation.reason) expect(outcome.reason).toMatch(expectation.reason);
    return;
  }
  if ('code' in outcome) throw new Error(`expected an HTTP answer, got WebSocket close code ${outcome.code} (${outcome.reason})`);
  if ('closed' in expectation) {
    expect(outcome.endedAfterMs).toBeLessThanOrEqual(expectation.withinMs);
    if (outcome.status !== undefined) expect(expectation.status).toContain(outcome.status);
    return;
  }
  const statuses = [expectation.status].flat();
  if (!statuses.includes(outcome.status ?? 0))
    throw new Error(`expected HTTP ${statuses.join(' or ')}, got ${outcome.status ?? 'no answer'}: ${outcome.body.slice(0, 300)}`);
  if (expectation.message) expect(readable(outcome.body)).toMatch(expectation.message);
}

/** The message a person would read: the JSON error's message, or the HTML page's text. */
function readable(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  const entities: Record<string, string> = { '&quot;': '"', '&#39;': "'", '&lt;': '<', '&gt;': '>', '&amp;': '&' };
  return body.replace(/<[^>]*>/g, ' ').replace(/&(quot|#39|lt|gt|amp);/g, (entity) => entities[entity]!);
}

export function hostileSuite(layout: Front['layout']): void {
  const stack = useStack({ ...(layout === 'bare-dev' ? {} : { front: layout }), environment: HOSTILE_ENVIRONMENT });
  let replay: { token: string; mintedAt: number } | undefined;

  beforeAll(async () => {
    // A real token from the page flow, used once now and replayed after it expires (10 s here).
    const front = frontOf(stack());
    const token = await pageToken(front);
    replay = { token, mintedAt: Date.now() };
    const client = await BokehClient.connect(`${front.url.replace(/^http/, 'ws')}${PREFIX}/ping/ws`, token, {
      origin: front.origin,
      ...(front.ca ? { ca: front.ca } : {}),
    });
    await client.pullDocument();
    await client.close();
  });

  test.each(HOSTILE_CASES.map((item) => [item.name, item] as const))(
    '%s: a clear answer, and the stack keeps serving',
    async (_name, item) => {
      const front = frontOf(stack());
      check(await item.run(front), (layout === 'bare-dev' ? undefined : item[layout]) ?? item.expect);
      await servesSession(front);
    },
    40_000,
  );

  test('a real token replayed after it expired: refused with a reason, the stack keeps serving', async () => {
    const front = frontOf(stack());
    const wait = replay!.mintedAt + (Number(HOSTILE_ENVIRONMENT.SESSION_TOKEN_EXPIRATION_S) + 1) * 1000 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    check(await upgrade(front, `${PREFIX}/ping/ws`, { 'Sec-WebSocket-Protocol': `bokeh, ${replay!.token}` }), {
      status: 403,
      message: /expired; reload the page/,
    });
    await servesSession(front);
  }, 40_000);
}
