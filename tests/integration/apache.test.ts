/**
 * Apache in front: browser -> apache (TLS) -> gateway -> Bokeh, with the compose file's apache
 * profile. The same user-visible checks as the nginx layout, over https and wss with Apache's
 * development certificate (trusted per request, never globally), plus what Apache adds:
 * redirects, compression and caching headers, no version banner, the gateway-down page, the
 * forwarded headers it states for the client, and which ports face the host.
 */
import { randomBytes } from 'node:crypto';
import { autoloadSrc, autoloadUrlFor, BokehClient, modelNamed, tokenFromAutoload } from '../../client/bokeh-client.js';
import { pingP50 } from '../support/ping.js';
import { eventually, openAppPage, PREFIX, request, run, useStack, type FrontDoor } from '../support/stack.js';

const stack = useStack({ front: 'apache' });
let front: FrontDoor;
beforeAll(() => {
  front = stack().apache!;
});

const get = (path: string, headers: Record<string, string> = {}) => request(`${front.https}${path}`, { ca: front.ca, headers });

const connectApp = (app: string) => openAppPage(front.https, app, front.ca);

describe('the app over https', () => {
  test('the index and the app page load through Apache', async () => {
    const index = await get('/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('href="/apps/sliders"');
    expect(index.headers['x-content-type-options']).toBe('nosniff');
  });

  test('the page embeds https URLs, and autoload.js hands BokehJS only https URLs (so it opens wss)', async () => {
    const page = await get('/apps/sliders');
    const src = new URL(autoloadSrc(page.body));
    expect(src.origin).toBe(front.https);
    expect(src.searchParams.get('bokeh-absolute-url')).toBe(`${front.https}${PREFIX}/sliders`);

    const autoload = await request(src.href, { ca: front.ca });
    expect(autoload.status).toBe(200);
    const urls = [...autoload.body.matchAll(/(?:https?|wss?):\/\/[^\s"'`\\)]+/g)].map((match) => match[0]);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url.startsWith(front.https)).toBe(true);
  });

  test("Bokeh's protocol round trip over wss", async () => {
    const { client, doc } = await connectApp('sliders');
    try {
      expect(client.socket.protocol).toBe('bokeh');
      const source = modelNamed(doc, 'source');
      client.setProperty(modelNamed(doc, 'amplitude').id, 'value', 2.5);
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(source.id));
    } finally {
      await client.close();
    }
  });

  test('the stream app pushes updates over wss', async () => {
    const { client } = await connectApp('stream');
    try {
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC', 5_000);
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC', 5_000);
    } finally {
      await client.close();
    }
  });

  test('the ping round trip stays clear of the Nagle stall through Apache too', async () => {
    const p50 = await pingP50(front.https, front.ca);
    process.stdout.write(`[latency] ping p50 through apache (https, wss): ${p50.toFixed(2)} ms\n`);
    expect(p50).toBeLessThan(15);
  }, 60_000);
});

describe('what Apache adds', () => {
  test('a session token swollen by large cookies fits the header limits of Apache and the gateway', async () => {
    // Bokeh copies the request's headers and cookies into the token, which then travels in
    // Sec-WebSocket-Protocol. 8 KB of random (incompressible) cookies is more than most sites set.
    const cookie = Array.from({ length: 8 }, (_, i) => `c${i}=${randomBytes(750).toString('base64url')}`).join('; ');
    const app = `${front.https}${PREFIX}/ping`;
    const autoload = await request(autoloadUrlFor(front.https, PREFIX, 'ping'), { ca: front.ca, headers: { cookie } });
    const token = tokenFromAutoload(autoload.body);
    const plain = tokenFromAutoload((await request(autoloadUrlFor(front.https, PREFIX, 'ping'), { ca: front.ca })).body);
    process.stdout.write(`[apache] token length: ${plain.length} bytes plain, ${token.length} bytes with 8 KB of cookies\n`);
    expect(token.length).toBeGreaterThan(plain.length + 8_000);
    // A browser sends the cookies again on the upgrade, beside the token.
    const client = await BokehClient.connect(`${app.replace('https', 'wss')}/ws`, token, { origin: front.https, ca: front.ca, headers: { cookie } });
    try {
      expect(await client.pullDocument()).toBeDefined();
    } finally {
      await client.close();
    }
  });

  test('plain HTTP is redirected to the same path on HTTPS', async () => {
    const res = await request(`${front.http}/apps/sliders?title=x`);
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe(`https://127.0.0.1:${new URL(front.https).port}/apps/sliders?title=x`);
  });

  test("the forwarded headers are Apache's own: a client cannot pass a host of its choosing to the pages", async () => {
    const page = await get('/apps/sliders', { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http', 'x-forwarded-for': '203.0.113.7' });
    expect(page.status).toBe(200);
    expect(new URL(autoloadSrc(page.body)).origin).toBe(front.https);
    expect(page.body).not.toContain('evil.example');
  });

  test('no version banner: the Server header says only "Apache", and error pages carry no signature', async () => {
    const proxied = await get('/');
    expect(proxied.headers.server).toBe('Apache');
    const redirect = await request(`${front.http}/`);
    expect(redirect.headers.server).toBe('Apache');
    // An error Apache answers itself: a request line over LimitRequestLine (32 KB).
    const own = await get(`/${'x'.repeat(40 * 1024)}`);
    expect(own.status).toBe(414);
    expect(own.headers.server).toBe('Apache');
    expect(own.body).not.toMatch(/Apache\/\d|<address>|Server at/);
    // Bokeh's own server name (Tornado) does not come through either.
    const stat = await get(`${PREFIX}/static/js/bokeh.min.js`);
    expect(stat.status).toBe(200);
    expect(stat.headers.server).toBe('Apache');
  });

  test("Bokeh's versioned static files are compressed and cacheable for a year; unversioned ones are revalidated", async () => {
    const page = await get('/apps/sliders');
    const autoload = await request(autoloadSrc(page.body), { ca: front.ca });
    const script = autoload.body.match(/https:\/\/[^\s"'`\\)]+\/static\/js\/bokeh\.min\.js\?v=[0-9a-f]+/)?.[0];
    expect(script).toBeDefined();
    const versioned = await request(script!, { ca: front.ca, headers: { 'accept-encoding': 'gzip' } });
    expect(versioned.status).toBe(200);
    expect(versioned.headers['content-encoding']).toBe('gzip');
    expect(versioned.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const unversioned = await get(`${PREFIX}/static/js/bokeh.min.js`, { 'accept-encoding': 'gzip' });
    expect(unversioned.headers['cache-control']).toBe('no-cache');
  });

  test('the certificate is the development one and Apache says so in its log', async () => {
    const { stdout, stderr } = await run('docker', ['logs', stack().container('apache').getId()]);
    expect(stdout + stderr).toMatch(/SELF-SIGNED DEVELOPMENT certificate/);
  });
});

describe('ports facing the host', () => {
  const bindings = async (service: string) => {
    const { stdout } = await run('docker', ['inspect', '--format', '{{json .HostConfig.PortBindings}}', stack().container(service).getId()]);
    return Object.values((JSON.parse(stdout) ?? {}) as Record<string, Array<{ HostIp: string; HostPort: string }>>).flat();
  };

  test('Apache publishes HTTP and HTTPS; the gateway only on 127.0.0.1; Bokeh nothing', async () => {
    const apache = await bindings('apache');
    expect(apache.map((binding) => binding.HostPort).sort()).toEqual([new URL(front.http).port, new URL(front.https).port].sort());
    const gateway = await bindings('gateway');
    for (const binding of gateway) expect(binding.HostIp).toBe('127.0.0.1');
    expect(await bindings('bokeh')).toEqual([]);
  });

  test('Apache runs as uid 10001 on a read-only root, with no capabilities', async () => {
    const { stdout } = await run('docker', [
      'inspect',
      '--format',
      '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.CapDrop}}',
      stack().container('apache').getId(),
    ]);
    expect(stdout.trim()).toBe('10001:10001 true ["ALL"]');
  });
});

describe('the gateway down behind Apache', () => {
  test('Apache answers with its own "restarting" page, then serves again when the gateway is back', async () => {
    const gateway = stack().container('gateway').getId();
    await run('docker', ['stop', '--time', '15', gateway]);
    const down = await get('/apps/sliders');
    expect(down.status).toBe(503);
    expect(down.body).toContain('The dashboard is restarting');
    expect(down.headers['retry-after']).toBe('5');
    expect(down.headers['cache-control']).toBe('no-store');
    // Only as an error page: asked for directly, it is not there.
    expect((await get('/gateway-unavailable.html')).status).toBe(404);

    await run('docker', ['start', gateway]);
    await eventually(async () => (await get('/readyz')).status === 200, 60_000, 'the gateway behind Apache');
    expect((await get('/apps/sliders')).status).toBe(200);
  }, 90_000);
});
