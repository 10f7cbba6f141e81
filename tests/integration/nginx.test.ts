/**
 * Reverse-proxied layout: browser -> nginx (TLS) -> gateway -> Bokeh, with the compose file's
 * nginx profile. The same user-visible checks as bare-dev, over https and wss with NGINX's
 * development certificate (trusted per request, never globally), plus what NGINX adds:
 * redirects, compression and caching, the gateway-down page, and which ports face the host.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect as connectHttp2, constants as http2 } from 'node:http2';
import { brotliDecompressSync } from 'node:zlib';
import { autoloadSrc, autoloadUrlFor, BokehClient, modelNamed, tokenFromAutoload } from '../../client/bokeh-client.js';
import { pingP50 } from '../support/ping.js';
import { eventually, openAppPage, PREFIX, type Reply, request, run, type Stack, untilBrotli, useStack } from '../support/stack.js';

const stack = useStack({ front: 'nginx' });
let front: NonNullable<Stack['nginx']>;
beforeAll(() => {
  front = stack().nginx!;
});

const get = (path: string, headers: Record<string, string> = {}) => request(`${front.https}${path}`, { ca: front.ca, headers });

const connectApp = (app: string) => openAppPage(front.https, app, front.ca);

describe('the app over https', () => {
  test('the index and the app page load through NGINX', async () => {
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

  test('the ping round trip stays clear of the Nagle stall through NGINX too', async () => {
    const p50 = await pingP50(front.https, front.ca);
    process.stdout.write(`[latency] ping p50 through nginx (https, wss): ${p50.toFixed(2)} ms\n`);
    expect(p50).toBeLessThan(15);
  }, 60_000);
});

describe('what NGINX adds', () => {
  test('a session token swollen by large cookies fits the header limits of NGINX and the gateway', async () => {
    // Bokeh copies the request's headers and cookies into the token, which then travels in
    // Sec-WebSocket-Protocol. 8 KB of random (incompressible) cookies is more than most sites set.
    const cookie = Array.from({ length: 8 }, (_, i) => `c${i}=${randomBytes(750).toString('base64url')}`).join('; ');
    const app = `${front.https}${PREFIX}/ping`;
    const autoload = await request(autoloadUrlFor(front.https, PREFIX, 'ping'), {
      ca: front.ca,
      headers: { cookie },
    });
    const token = tokenFromAutoload(autoload.body);
    const plain = tokenFromAutoload((await request(autoloadUrlFor(front.https, PREFIX, 'ping'), { ca: front.ca })).body);
    process.stdout.write(`[nginx] token length: ${plain.length} bytes plain, ${token.length} bytes with 8 KB of cookies\n`);
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

  test("Bokeh's versioned static files are compressed and cached for a year", async () => {
    const page = await get('/apps/sliders');
    const autoload = await request(autoloadSrc(page.body), { ca: front.ca });
    const script = autoload.body.match(/https:\/\/[^\s"'`\\)]+\/static\/js\/bokeh\.min\.js\?v=[0-9a-f]+/)?.[0];
    expect(script).toBeDefined();
    const first = await request(script!, { ca: front.ca, headers: { 'accept-encoding': 'gzip' } });
    expect(first.status).toBe(200);
    expect(first.headers['content-encoding']).toBe('gzip');
    expect(first.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const second = await request(script!, { ca: front.ca, headers: { 'accept-encoding': 'gzip' } });
    expect(second.headers['x-cache-status']).toBe('HIT');
    // One cache status, NGINX's: the gateway's X-Cache would be the one NGINX stored with the file.
    expect(second.headers['x-cache']).toBeUndefined();
  });

  test("over HTTP/2, BokehJS arrives as the gateway's brotli copy, which decodes to Bokeh's bytes", async () => {
    const page = await get('/apps/sliders');
    const autoload = await request(autoloadSrc(page.body), { ca: front.ca });
    const script = new URL(autoload.body.match(/https:\/\/[^\s"'`\\)]+\/static\/js\/bokeh\.min\.js\?v=[0-9a-f]+/)![0]);
    const session = connectHttp2(front.https, { ca: front.ca });
    try {
      await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject));
      expect(session.alpnProtocol).toBe('h2');
      const fetch2 = (acceptEncoding: string) =>
        new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
          const stream = session.request({ [http2.HTTP2_HEADER_PATH]: `${script.pathname}${script.search}`, 'accept-encoding': acceptEncoding });
          const chunks: Buffer[] = [];
          let headers: Record<string, unknown> = {};
          stream.on('response', (received) => (headers = received));
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.on('end', () => resolve({ headers, body: Buffer.concat(chunks) }));
          stream.on('error', reject);
        });
      const identity = await fetch2('identity');
      const br = await untilBrotli(() => fetch2('gzip, deflate, br'));
      expect(identity.headers[':status']).toBe(200);
      expect(identity.headers['content-encoding']).toBeUndefined();
      expect(br.headers['content-encoding']).toBe('br');
      expect(br.body.length).toBeLessThan(identity.body.length / 2);
      const digest = (body: Buffer) => createHash('sha256').update(body).digest('hex');
      expect(digest(brotliDecompressSync(br.body))).toBe(digest(identity.body));
      // Bokeh's own file: the gateway reads it from Bokeh, inside the stack.
      const bokeh = await stack()
        .container('gateway')
        .exec([
          'node',
          '-e',
          `fetch(${JSON.stringify(`http://bokeh:5006${script.pathname}${script.search}`)}).then(async (r) => console.log(process.getBuiltinModule('node:crypto').createHash('sha256').update(Buffer.from(await r.arrayBuffer())).digest('hex')))`,
        ]);
      expect(bokeh.stdout.trim()).toBe(digest(identity.body));
    } finally {
      session.close();
    }
  }, 30_000);

  test('the certificate is the development one and NGINX says so in its log', async () => {
    const { stdout, stderr } = await run('docker', ['logs', stack().container('nginx').getId()]);
    expect(stdout + stderr).toMatch(/SELF-SIGNED DEVELOPMENT certificate/);
  });
});

describe('ports facing the host', () => {
  const bindings = async (service: string) => {
    const { stdout } = await run('docker', ['inspect', '--format', '{{json .HostConfig.PortBindings}}', stack().container(service).getId()]);
    return Object.values((JSON.parse(stdout) ?? {}) as Record<string, Array<{ HostIp: string; HostPort: string }>>).flat();
  };

  test('NGINX publishes HTTP and HTTPS; the gateway only on 127.0.0.1; Bokeh nothing', async () => {
    const nginx = await bindings('nginx');
    expect(nginx.map((binding) => binding.HostPort).sort()).toEqual([new URL(front.http).port, new URL(front.https).port].sort());
    const gateway = await bindings('gateway');
    for (const binding of gateway) expect(binding.HostIp).toBe('127.0.0.1');
    expect(await bindings('bokeh')).toEqual([]);
  });
});

describe('the gateway down behind NGINX', () => {
  test('NGINX answers with its own "restarting" page, then serves again when the gateway is back', async () => {
    const gateway = stack().container('gateway').getId();
    await run('docker', ['stop', '--time', '15', gateway]);
    const down = await get('/apps/sliders');
    expect([502, 504]).toContain(down.status);
    expect(down.body).toContain('The dashboard is restarting');
    expect(down.headers['retry-after']).toBe('5');

    await run('docker', ['start', gateway]);
    await eventually(async () => (await get('/readyz')).status === 200, 60_000, 'the gateway behind NGINX');
    expect((await get('/apps/sliders')).status).toBe(200);
  }, 90_000);
});

describe("NGINX's own per-client limit", () => {
  test("past its burst NGINX answers 429 with Retry-After in the gateway's shape, JSON or HTML, never its own page", async () => {
    // The gateway's /healthz is the cheapest request that passes NGINX's limits (NGINX's own
    // /nginx-healthz answers before limits apply), and the gateway limits none of it: every 429
    // is NGINX's. 4000 requests in a few seconds are more than its burst of 2000 plus what
    // 100 requests/s refill meanwhile; 64 at a time over kept-alive connections, so the
    // request rate trips, not the connection cap.
    const statuses: number[] = [];
    // Half the requests prefer JSON, half HTML; the first refusal of each kind is kept.
    const refusals: { json?: Reply; html?: Reply } = {};
    const started = Date.now();
    const worker = async () => {
      while (statuses.length < 4000) {
        const kind = statuses.length % 2 === 0 ? 'json' : 'html';
        const reply = await get('/healthz', { accept: kind === 'json' ? 'application/json' : 'text/html,application/json;q=0.9' });
        statuses.push(reply.status);
        if (reply.status === 429) refusals[kind] ??= reply;
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const seconds = (Date.now() - started) / 1000;
    const refused = statuses.filter((status) => status === 429).length;
    process.stdout.write(`[nginx] ${statuses.length} requests in ${seconds.toFixed(1)} s, ${refused} refused by NGINX\n`);
    expect(statuses.filter((status) => status !== 200 && status !== 429)).toEqual([]);
    expect(refused).toBeGreaterThan(0);
    // The burst was answered at once, and the rate after it.
    expect(statuses.length - refused).toBeGreaterThanOrEqual(2000);

    const { json, html } = refusals;
    expect(json?.headers['retry-after']).toBe('1');
    expect(json?.headers['content-type']).toContain('application/json');
    expect(JSON.parse(json!.body)).toMatchObject({ error: 'RATE_LIMITED', status: 429, message: expect.stringContaining('Too many requests') });
    expect(html?.headers['retry-after']).toBe('1');
    expect(html?.headers['content-type']).toContain('text/html');
    expect(html!.body).toContain('<h1>429 Too Many Requests</h1>');
    expect(html!.body).not.toContain('nginx');
    // The bucket refills: a moment later the client is served again.
    await eventually(async () => (await get('/healthz')).status === 200, 10_000, 'NGINX serving again');
  }, 90_000);
});
