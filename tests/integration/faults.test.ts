/**
 * What users see when parts of the stack go away: Bokeh stopped under live sessions, Bokeh back,
 * and the gateway told to stop. The gateway must answer clearly, keep serving, and recover.
 */
import { autoloadUrlFor, BokehClient, bokehJsUrls, modelNamed, tokenFromAutoload } from '../../client/bokeh-client.js';
import { eventually, mintToken, PREFIX, run, useStack } from '../support/stack.js';

const stack = useStack();

const wsUrl = (app: string) => `${stack().url.replace('http', 'ws')}${PREFIX}/${app}/ws`;

async function tokenFor(app: string): Promise<string> {
  const res = await fetch(autoloadUrlFor(stack().url, PREFIX, app));
  expect(res.status).toBe(200);
  return tokenFromAutoload(await res.text());
}

async function pingRoundTrip(client: BokehClient, doc: unknown, value: number): Promise<void> {
  client.setProperty(modelNamed(doc, 'ping').id, 'value', value);
  await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(`pong ${value}`));
}

describe('Bokeh stopped, then back', () => {
  let live: BokehClient;
  /** BokehJS as a page loaded it before Bokeh stopped. */
  let bokehJs: { url: string; bytes: number };

  beforeAll(async () => {
    live = await BokehClient.connect(wsUrl('ping'), await tokenFor('ping'), { origin: stack().url });
    await pingRoundTrip(live, await live.pullDocument(), 1);
    const autoload = await (await fetch(autoloadUrlFor(stack().url, PREFIX, 'ping'))).text();
    const url = bokehJsUrls(autoload).find((script) => script.includes('/bokeh.min.js?v='));
    if (url === undefined) throw new Error('autoload.js names no versioned bokeh.min.js');
    bokehJs = { url, bytes: (await (await fetch(url)).arrayBuffer()).byteLength };
    await run('docker', ['stop', '--time', '10', stack().container('bokeh').getId()]);
  }, 60_000);

  test('an open session is closed with a code BokehJS reports, not dropped', async () => {
    const { code, reason } = await live.closed;
    expect([1001, 1014]).toContain(code);
    if (code === 1014) expect(reason).toMatch(/Bokeh server/);
  });

  test('Bokeh routes answer 503 naming the upstream: JSON for programs', async () => {
    const res = await fetch(`${stack().url}${PREFIX}/sliders/autoload.js?bokeh-autoload-element=x`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('BOKEH_UNAVAILABLE');
    expect(body.message).toContain('http://bokeh:5006');
  });

  test('... and an HTML page for browsers', async () => {
    const res = await fetch(`${stack().url}${PREFIX}/sliders/`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toContain('The Bokeh server at http://bokeh:5006');
  });

  test("BokehJS that pages already loaded still loads, from the gateway's memory", async () => {
    const res = await fetch(bokehJs.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('HIT');
    expect((await res.arrayBuffer()).byteLength).toBe(bokehJs.bytes);
    const unversioned = await fetch(`${stack().url}${PREFIX}/static/js/bokeh.min.js`, { headers: { accept: 'application/json' } });
    expect(unversioned.status).toBe(503);
  });

  test('a WebSocket upgrade with a good token gets an HTTP 503 answer', async () => {
    await expect(BokehClient.connect(wsUrl('ping'), mintToken(stack()), { origin: stack().url })).rejects.toThrow(/upgrade refused with HTTP 503/);
  });

  test('/readyz fails while /healthz passes; the gateway keeps serving its own pages', async () => {
    expect((await fetch(`${stack().url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack().url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      status: 'unavailable',
      apps: [
        { app: 'sliders', ok: false },
        { app: 'stream', ok: false },
        { app: 'ping', ok: false },
      ],
    });
    expect((await fetch(`${stack().url}/`)).status).toBe(200);
  });

  test('service comes back with Bokeh: ready again, and new sessions work', async () => {
    await run('docker', ['start', stack().container('bokeh').getId()]);
    await eventually(async () => (await fetch(`${stack().url}/readyz`)).status === 200, 60_000, '/readyz to pass again');
    const client = await BokehClient.connect(wsUrl('ping'), await tokenFor('ping'), { origin: stack().url });
    try {
      await pingRoundTrip(client, await client.pullDocument(), 2);
    } finally {
      await client.close();
    }
  }, 90_000);
});

describe('gateway stopped with SIGTERM', () => {
  test('open sessions are closed with 1001 and the gateway exits cleanly within its bound', async () => {
    const client = await BokehClient.connect(wsUrl('ping'), await tokenFor('ping'), { origin: stack().url });
    await pingRoundTrip(client, await client.pullDocument(), 3);
    const gateway = stack().container('gateway').getId();

    const started = Date.now();
    await run('docker', ['kill', '--signal', 'TERM', gateway]);
    const { code, reason } = await client.closed;
    expect(code).toBe(1001);
    expect(reason).toMatch(/shutting down/);

    const { stdout } = await run('docker', ['wait', gateway]);
    expect(stdout.trim()).toBe('0');
    // SHUTDOWN_TIMEOUT_MS defaults to 10 s; with nothing left open it exits at once.
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 60_000);
});
