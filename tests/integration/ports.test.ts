/**
 * Settings that follow each other: a user whose port 8000 is taken sets GATEWAY_PORT alone, with
 * no PUBLIC_ORIGINS. The gateway, Bokeh and NGINX then derive the origins from that port, so the
 * page's embed script, autoload.js and the WebSocket all name it and are let in.
 */
import { pingP50 } from '../support/ping.js';
import { openAppPage, request, useStack } from '../support/stack.js';

const stack = useStack({ publicOrigins: 'derived' });

test('no service is given PUBLIC_ORIGINS', async () => {
  for (const service of ['gateway', 'bokeh']) {
    const { exitCode, output } = await stack().container(service).exec(['printenv', 'PUBLIC_ORIGINS']);
    expect({ service, exitCode, output }).toEqual({ service, exitCode: 1, output: '' });
  }
});

test('with GATEWAY_PORT alone, autoload.js comes through the gateway and the WebSocket from that origin round-trips', async () => {
  const origin = stack().url;
  expect(origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(origin).not.toBe('http://127.0.0.1:8000');
  const { autoloadUrl, js, client, doc } = await openAppPage(origin, 'sliders');
  try {
    expect(new URL(autoloadUrl).origin).toBe(origin);
    const urls = [...js.matchAll(/(?:https?|wss?):\/\/[^\s"'`\\)]+/g)].map((match) => match[0]);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url.startsWith(origin)).toBe(true);
    expect(JSON.stringify(doc)).toContain('"frequency"');
  } finally {
    await client.close();
  }
  // Messages both ways on Bokeh's side: slider changes answered by the app's callback.
  expect(await pingP50(origin)).toBeGreaterThan(0);
});

test('a page asked for under an unlisted host points at the first derived origin, on the same port', async () => {
  const port = new URL(stack().url).port;
  const page = await request(`${stack().url}/apps/ping`, { headers: { Host: 'unlisted.example' } });
  expect(page.status).toBe(200);
  expect(page.body).toContain(`http://localhost:${port}/bokeh/ping/autoload.js`);
  expect(page.body).not.toContain('localhost:8000');
});
