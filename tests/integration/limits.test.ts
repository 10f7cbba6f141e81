/**
 * One client floods page loads and autoload.js while a second keeps interacting: the flood gets
 * 429 with Retry-After, Bokeh starts only the sessions the limit allows, and the second client's
 * round trip stays fast during and after the flood. Default limits, bare-dev layout.
 *
 * Two client addresses: the gateway sees every connection from the host as one address (the
 * Docker bridge's), so the flood runs inside the gateway's own container against its loopback
 * (client 127.0.0.1, a container of the stack itself), and the interacting client runs on the
 * host. Bokeh's own count of the sessions it made (`<prefix>/_replica`) says what reached it.
 */
import { pingP50 } from '../support/ping.js';
import { PREFIX, request, useStack } from '../support/stack.js';

const stack = useStack();

/** The default RATE_LIMIT_SESSION_STARTS per RATE_LIMIT_WINDOW_S (10 s). */
const SESSION_STARTS = 100;
const WINDOW_S = 10;
const FLOOD_S = 8;

/** Runs in the gateway container: page loads and autoload.js for FLOOD_S, 32 at a time. */
const FLOOD = `
const base = 'http://127.0.0.1:8000${PREFIX}';
const paths = ['/ping/autoload.js?bokeh-autoload-element=x', '/ping', '/sliders/autoload.js?bokeh-autoload-element=y', '/sliders'];
const end = Date.now() + ${FLOOD_S * 1000};
const counts = {}; let retryAfter = 0; let limitedJson = 0; let i = 0;
async function worker() {
  while (Date.now() < end) {
    const res = await fetch(base + paths[i++ % paths.length], { headers: { accept: 'application/json' } });
    counts[res.status] = (counts[res.status] || 0) + 1;
    if (res.status === 429) {
      if (/^[0-9]+$/.test(res.headers.get('retry-after') || '')) retryAfter += 1;
      const body = await res.json();
      if (body.error === 'RATE_LIMITED' && body.message.includes('RATE_LIMIT_SESSION_STARTS')) limitedJson += 1;
    } else {
      await res.arrayBuffer();
    }
  }
}
Promise.all(Array.from({ length: 32 }, worker)).then(() => console.log(JSON.stringify({ counts, retryAfter, limitedJson })));
`;

const sessionsCreated = async (): Promise<number> => {
  const script = `import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:5006${PREFIX}/_replica').read().decode())`;
  const result = await stack().container('bokeh').exec(['python3', '-c', script]);
  return (JSON.parse(result.stdout) as { sessionsCreated: number }).sessionsCreated;
};

test('a flood from one client gets 429s, Bokeh makes only the allowed sessions, another client stays fast', async () => {
  const before = await pingP50(stack().url);
  const createdBefore = await sessionsCreated();

  const started = Date.now();
  const flood = stack().container('gateway').exec(['node', '-e', FLOOD]);
  const during: number[] = [];
  // The host's session starts count against its own address, not the flood's.
  while (Date.now() - started < (FLOOD_S - 1) * 1000) during.push(await pingP50(stack().url));
  const result = await flood;
  expect(result.exitCode).toBe(0);
  const { counts, retryAfter, limitedJson } = JSON.parse(result.stdout) as { counts: Record<string, number>; retryAfter: number; limitedJson: number };
  const after = await pingP50(stack().url);
  const createdAfter = await sessionsCreated();

  const refused = counts['429'] ?? 0;
  const allowed = counts['200'] ?? 0;
  const windows = Math.ceil((Date.now() - started) / (WINDOW_S * 1000)) + 1;
  process.stdout.write(
    `[limits] flood ${JSON.stringify(counts)} in ${FLOOD_S} s; ping p50 before ${before.toFixed(2)} ms, during ${during.map((p) => p.toFixed(2)).join('/')} ms, after ${after.toFixed(2)} ms; Bokeh made ${createdAfter - createdBefore} sessions\n`,
  );
  expect(Object.keys(counts).sort()).toEqual(['200', '429']);
  expect(refused).toBeGreaterThan(10 * allowed);
  expect(retryAfter).toBe(refused);
  expect(limitedJson).toBe(refused);
  // What Bokeh made: the flood's allowed starts and the host's pings, nothing more.
  expect(allowed).toBeLessThanOrEqual(SESSION_STARTS * windows);
  expect(createdAfter - createdBefore).toBe(allowed + during.length + 1);
  expect(during.length).toBeGreaterThan(3);
  const sorted = [...during].sort((a, b) => a - b);
  expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThan(10);
  expect(after).toBeLessThan(10);
}, 120_000);

test('a client under the limit is unaffected: its page and autoload.js load', async () => {
  const page = await request(`${stack().url}/apps/ping`);
  expect(page.status).toBe(200);
  const autoload = await request(`${stack().url}${PREFIX}/ping/autoload.js?bokeh-autoload-element=x`);
  expect(autoload.status).toBe(200);
});
