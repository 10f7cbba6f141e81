/**
 * Bare-dev layout, end to end: browser -> gateway -> Bokeh, with the real compose file. What a
 * user sees: the pages, autoload.js pointing at the public address, Bokeh's protocol working
 * through the gateway, and Bokeh itself out of reach.
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { autoloadSrc, autoloadUrlFor, BokehClient, bokehJsUrls, modelNamed, models, tokenFromAutoload, tokenPayload } from '../../client/bokeh-client.js';
import { openAppPage, PREFIX, run, useStack } from '../support/stack.js';

// As a plain `docker compose up` runs it: no key in the environment, the keygen service makes one.
const stack = useStack({ secretKey: 'generated' });

/** Loads an app page and follows its embed script to autoload.js, as a browser would. */
async function openSession(app: string, query = '', origin = stack().url): Promise<{ page: string; autoloadUrl: string; js: string; token: string }> {
  const page = await (await fetch(`${origin}/apps/${app}${query}`)).text();
  const autoloadUrl = autoloadSrc(page);
  const res = await fetch(autoloadUrl);
  expect(res.status).toBe(200);
  const js = await res.text();
  return { page, autoloadUrl, js, token: tokenFromAutoload(js) };
}

const connectApp = (app: string) => openAppPage(stack().url, app);

describe('pages', () => {
  test('the index lists every app with a link to its page', async () => {
    const res = await fetch(`${stack().url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    for (const app of ['sliders', 'stream', 'ping']) expect(html).toContain(`href="/apps/${app}"`);
  });

  test('an app page embeds the app the way server_document does, with public URLs', async () => {
    const { page, autoloadUrl } = await openSession('sliders');
    const url = new URL(autoloadUrl);
    expect(url.origin).toBe(stack().url);
    expect(url.pathname).toBe(`${PREFIX}/sliders/autoload.js`);
    expect(url.searchParams.get('bokeh-app-path')).toBe(`${PREFIX}/sliders`);
    expect(url.searchParams.get('bokeh-absolute-url')).toBe(`${stack().url}${PREFIX}/sliders`);
    const elementId = url.searchParams.get('bokeh-autoload-element');
    expect(page).toContain(`<script id="${elementId}"`);
  });

  test('the page uses the origin the browser addressed when it is a public origin', async () => {
    const other = stack().origins[1]!;
    const { autoloadUrl, js } = await openSession('sliders', '', other);
    expect(new URL(autoloadUrl).origin).toBe(other);
    expect(js).toContain(`${other}${PREFIX}/static/`);
  });

  test('query arguments on the page are handed to the app, bokeh-* ones are not', async () => {
    const { autoloadUrl } = await openSession('sliders', '?title=Hello%20there&bokeh-app-path=/evil');
    const url = new URL(autoloadUrl);
    expect(url.searchParams.get('title')).toBe('Hello there');
    expect(url.searchParams.getAll('bokeh-app-path')).toEqual([`${PREFIX}/sliders`]);
  });

  test('an unknown app is a 404 page that lists the apps, in HTML or JSON', async () => {
    const html = await fetch(`${stack().url}/apps/nope`);
    expect(html.status).toBe(404);
    const body = await html.text();
    expect(body).toContain('There is no app named &quot;nope&quot;');
    expect(body).toContain('href="/apps/sliders"');

    const json = await fetch(`${stack().url}/apps/nope`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(404);
    expect(await json.json()).toMatchObject({ error: 'UNKNOWN_APP', message: expect.stringContaining('sliders, stream, ping') });
  });
});

// Before any other test in this file loads BokehJS, so that the first request here is the first
// the gateway sees for that file.
describe("BokehJS from the gateway's memory", () => {
  /** What Bokeh itself answers, asked from inside the gateway container (Bokeh has no published port). */
  async function fromBokeh(path: string): Promise<{ status: number; headers: Record<string, string>; sha256: string }> {
    const script = `fetch(${JSON.stringify(`http://bokeh:5006${path}`)}).then(async (r) => {
      const body = Buffer.from(await r.arrayBuffer());
      const sha256 = process.getBuiltinModule('node:crypto').createHash('sha256').update(body).digest('hex');
      console.log(JSON.stringify({ status: r.status, headers: Object.fromEntries(r.headers), sha256 }));
    })`;
    const result = await stack().container('gateway').exec(['node', '-e', script]);
    expect(result.exitCode).toBe(0);
    return JSON.parse(result.stdout) as { status: number; headers: Record<string, string>; sha256: string };
  }
  const sha256 = async (res: Response) =>
    createHash('sha256')
      .update(Buffer.from(await res.arrayBuffer()))
      .digest('hex');

  test('a versioned bokeh.min.js comes from Bokeh once, then from memory with the same bytes and headers', async () => {
    const { js } = await openSession('sliders');
    const url = bokehJsUrls(js).find((script) => /\/static\/js\/bokeh\.min\.js\?v=[0-9a-f]{128}$/.test(script));
    expect(url).toBeDefined();
    const { pathname, search } = new URL(url!);
    const bokeh = await fromBokeh(`${pathname}${search}`);
    expect(bokeh.status).toBe(200);

    // Bokeh's own representation; the compressed ones are in compression.test.ts.
    const identity = { headers: { 'accept-encoding': 'identity' } };
    const first = await fetch(url!, identity);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    expect(await sha256(first)).toBe(bokeh.sha256);

    const second = await fetch(url!, identity);
    expect(second.status).toBe(200);
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect(await sha256(second)).toBe(bokeh.sha256);
    for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'accept-ranges']) {
      expect([name, second.headers.get(name)]).toEqual([name, bokeh.headers[name]]);
    }
    expect(second.headers.get('content-type')).toMatch(/javascript/);
    // Tornado's ten years, counted from when the gateway fetched the file.
    expect(Date.parse(second.headers.get('expires')!) - Date.now()).toBeGreaterThan(9 * 365 * 86_400_000);
  });

  test('a browser revalidating its copy gets 304 from memory', async () => {
    const { js } = await openSession('sliders');
    const url = bokehJsUrls(js).find((script) => script.includes('/bokeh.min.js?v='))!;
    const etag = (await fetch(url)).headers.get('etag')!;
    const res = await fetch(url, { headers: { 'if-none-match': etag } });
    expect(res.status).toBe(304);
    expect(res.headers.get('x-cache')).toBe('HIT');
  });

  test('an unversioned bokeh.min.js always comes from Bokeh', async () => {
    for (let i = 0; i < 3; i += 1) {
      const res = await fetch(`${stack().url}${PREFIX}/static/js/bokeh.min.js`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('BYPASS');
      expect(res.headers.get('cache-control')).toBeNull();
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    }
  });
});

describe('autoload.js and static files through the gateway', () => {
  test('every URL in autoload.js points at the public origin', async () => {
    const { js } = await openSession('sliders');
    const urls = [...js.matchAll(/(?:https?|wss?):\/\/[^\s"'`\\)]+/g)].map((match) => match[0]);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url.startsWith(stack().url)).toBe(true);
    expect(js).not.toMatch(/bokeh:5006/);
  });

  test("Bokeh's static JS loads through the gateway", async () => {
    const { js } = await openSession('sliders');
    const script = [...js.matchAll(/https?:\/\/[^\s"'`\\)]+\.js(?:\?[^\s"'`\\)]*)?/g)].map((match) => match[0]).find((url) => url.includes('/static/'));
    expect(script).toBeDefined();
    const res = await fetch(script!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    expect((await res.text()).length).toBeGreaterThan(100_000);
  });

  test('Bokeh sees the public host and scheme and the client, never headers a client forged', async () => {
    const res = await fetch(autoloadUrlFor(stack().url, PREFIX, 'sliders'), {
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', 'x-forwarded-for': '6.6.6.6' },
    });
    const { extra } = tokenPayload(tokenFromAutoload(await res.text()));
    const headers = Object.fromEntries(Object.entries(extra.headers as Record<string, string>).map(([name, value]) => [name.toLowerCase(), value]));
    expect(headers['x-forwarded-host']).toBe(new URL(stack().url).host);
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-for']).not.toContain('6.6.6.6');
    expect(headers['x-forwarded-for']).toMatch(/^[0-9a-f.:]+$/);
  });

  test('a CORS preflight for autoload.js reaches Bokeh, for pages that embed from other origins', async () => {
    const res = await fetch(`${stack().url}${PREFIX}/sliders/autoload.js`, {
      method: 'OPTIONS',
      headers: { origin: stack().url, 'access-control-request-method': 'GET', 'access-control-request-headers': 'bokeh-session-id' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(stack().url);
  });
});

describe("Bokeh's WebSocket protocol through the gateway", () => {
  test('ACK, then the document, then a widget change answered by the server callback', async () => {
    const { client, doc } = await connectApp('sliders');
    try {
      const frequency = modelNamed(doc, 'frequency');
      const source = modelNamed(doc, 'source');
      expect(client.socket.protocol).toBe('bokeh');

      client.setProperty(frequency.id, 'value', 3.5);
      const patch = await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(source.id));
      expect(patch.content.events?.length).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });

  test('the stream app pushes updates without being asked', async () => {
    const { client } = await connectApp('stream');
    try {
      const started = Date.now();
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC');
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await client.close();
    }
  });

  test("a WebSocket ping reaches Bokeh and Bokeh's pong comes back with the same payload", async () => {
    // The gateway never answers pings itself, so this pong can only be Bokeh's.
    const { client } = await connectApp('ping');
    try {
      const pong = new Promise<Buffer>((resolve) => client.socket.once('pong', resolve));
      client.socket.ping(Buffer.from('are you there'));
      expect((await pong).toString()).toBe('are you there');
    } finally {
      await client.close();
    }
  });

  test('two sessions of one app are independent', async () => {
    const first = await connectApp('ping');
    const second = await connectApp('ping');
    try {
      const firstSlider = modelNamed(first.doc, 'ping');
      first.client.setProperty(firstSlider.id, 'value', 7);
      const pong = await first.client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes('pong 7'));
      expect(pong).toBeDefined();
      await new Promise((done) => setTimeout(done, 300));
      expect(second.client.messages.some((msg) => JSON.stringify(msg.content).includes('pong 7'))).toBe(false);
    } finally {
      await Promise.all([first.client.close(), second.client.close()]);
    }
  });

  test('a token the gateway cannot verify is refused before Bokeh, and other sessions carry on', async () => {
    const { client, doc } = await connectApp('sliders');
    try {
      await expect(BokehClient.connect(`${stack().url.replace('http', 'ws')}${PREFIX}/sliders/ws`, 'not-a-token', { origin: stack().url })).rejects.toThrow(
        /upgrade refused with HTTP 403/,
      );
      const frequency = modelNamed(doc, 'frequency');
      client.setProperty(frequency.id, 'value', 2.5);
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC');
    } finally {
      await client.close();
    }
  });

  test('a WebSocket from an origin that is not public is refused with a 403', async () => {
    const { token } = await openSession('sliders');
    await expect(BokehClient.connect(`${stack().url.replace('http', 'ws')}${PREFIX}/sliders/ws`, token, { origin: 'http://evil.example' })).rejects.toThrow(
      /upgrade refused with HTTP 403/,
    );
  });

  test('an upgrade for an app that does not exist is a 404', async () => {
    const { token } = await openSession('sliders');
    await expect(BokehClient.connect(`${stack().url.replace('http', 'ws')}${PREFIX}/nope/ws`, token, { origin: stack().url })).rejects.toThrow(
      /upgrade refused with HTTP 404/,
    );
  });
});

describe('signed sessions', () => {
  test('the session token is signed, names the session and expires in 300 s', async () => {
    const { token } = await openSession('sliders');
    const [body, signature] = token.split('.');
    expect(signature).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as { session_id: string; session_expiry: number };
    expect(claims.session_id).toMatch(/^[A-Za-z0-9]{44}\.[A-Za-z0-9_-]{43}$/);
    expect(claims.session_expiry - Date.now() / 1000).toBeGreaterThan(290);
    expect(claims.session_expiry - Date.now() / 1000).toBeLessThanOrEqual(301);
  });

  test('Bokeh itself refuses a session the gateway did not sign', async () => {
    // From inside the gateway container, the only place that can reach Bokeh.
    const script = "fetch('http://bokeh:5006/bokeh/sliders/autoload.js?bokeh-autoload-element=x').then(async (r) => console.log(r.status, await r.text()))";
    const result = await stack().container('gateway').exec(['node', '-e', script]);
    expect(result.output).toMatch(/^403 .*No bokeh-session-id provided/s);
  });

  test('the generated key lives in the stack-secret volume, readable only by the services', async () => {
    const result = await stack()
      .container('bokeh')
      .exec(['sh', '-c', 'stat -c "%a %u" /run/stack-secret/bokeh-secret-key && wc -c < /run/stack-secret/bokeh-secret-key']);
    expect(result.exitCode).toBe(0);
    const [mode, size] = result.output.trim().split('\n');
    expect(mode).toBe('400 10001');
    expect(Number(size)).toBeGreaterThanOrEqual(33);
  });
});

describe('health', () => {
  test('/healthz and /readyz report a ready stack', async () => {
    expect((await fetch(`${stack().url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack().url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: 'ready',
      apps: [
        { app: 'sliders', ok: true },
        { app: 'stream', ok: true },
        { app: 'ping', ok: true },
      ],
    });
  });
});

describe('only the gateway faces the host', () => {
  test('Bokeh publishes no port and sits only on the internal network', async () => {
    const id = stack().container('bokeh').getId();
    const { stdout } = await run('docker', ['inspect', '--format', '{{json .NetworkSettings.Ports}} {{json .HostConfig.PortBindings}}', id]);
    expect(stdout).not.toMatch(/HostPort/);
    const networks = await run('docker', ['inspect', '--format', '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}', id]);
    const names = networks.stdout.trim().split(/\s+/);
    expect(names).toHaveLength(1);
    const internal = await run('docker', ['network', 'inspect', '--format', '{{.Internal}}', names[0]!]);
    expect(internal.stdout.trim()).toBe('true');
  });

  test('the gateway is published on 127.0.0.1 only', async () => {
    const { stdout } = await run('docker', ['inspect', '--format', '{{json .HostConfig.PortBindings}}', stack().container('gateway').getId()]);
    const bindings = Object.values(JSON.parse(stdout) as Record<string, Array<{ HostIp: string }>>).flat();
    expect(bindings.length).toBeGreaterThan(0);
    for (const binding of bindings) expect(binding.HostIp).toBe('127.0.0.1');
  });

  test("nothing answers on Bokeh's port on the host", async () => {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: 5006 });
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});

test('documents carry the models a user would see', async () => {
  const { client, doc } = await connectApp('sliders');
  try {
    const names = models(doc)
      .map((model) => model.attributes?.name)
      .filter(Boolean);
    expect(names).toEqual(expect.arrayContaining(['amplitude', 'frequency', 'phase', 'offset', 'source']));
  } finally {
    await client.close();
  }
});
