/**
 * A team's own web app behind the gateway (compose.flask.yml: HOST_APP_URL=http://flask:8000), in
 * the bare-dev and nginx layouts. The example Flask app embeds the Bokeh apps with Bokeh's own
 * `server_document("/bokeh/<app>")`, a relative URL: the protocol client follows what a browser
 * would (the page's autoload request, the token, the WebSocket), and Chromium renders the pages
 * and moves a slider. Flask's own routes and its form go through the gateway; with Flask stopped,
 * its paths get the gateway's 503 while /bokeh keeps working. The bare-dev stack also signs in
 * (AUTH_MODE=basic): Flask's pages ask for it too, and the user reaches the Bokeh app.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { BokehClient, bokehJsUrls, modelNamed, tokenFromAutoload, tokenPayload } from '../../client/bokeh-client.js';
import { launchChromium, loadPage, missingBrowser } from '../../client/browser.js';
import { column, modelsPresent, modelValue, screenshot, waitForColumn } from '../support/browser.js';
import { COMPOSE_FILE, eventually, PREFIX, request, run, useStack, type Reply, type Stack } from '../support/stack.js';

const FLASK_COMPOSE_FILE = 'compose.flask.yml';
/** Per browser test: a page load with BokehJS takes 1-3 s on a 2-core machine; the rest is waiting on purpose. */
const BROWSER_TIMEOUT_MS = 45_000;

/** The autoload requests of the `<script>` elements that Bokeh's server_document wrote into a page. */
function serverDocumentSources(page: string): string[] {
  return [...page.matchAll(/xhr\.open\('GET', "([^"]+)"/g)].map((match) => match[1]!.replace(/&amp;/g, '&'));
}

/** A form post, as a browser sends it. */
function postForm(url: string, fields: Record<string, string>, ca: Buffer | undefined, headers: Record<string, string>): Promise<Reply> {
  const body = new URLSearchParams(fields).toString();
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const noBrowser = missingBrowser();
if (noBrowser && process.env.CI === 'true') {
  // In CI a missing browser is a failure, reported at once, before any stack is started.
  test('Chromium is installed (CI=true)', () => {
    throw new Error(noBrowser);
  });
} else if (noBrowser) {
  process.stdout.write(`\n[browser] skipping the Flask pages in the browser: ${noBrowser}\n`);
}
const describeInBrowser = noBrowser ? describe.skip : describe;

/** Waits until BokehJS on the page holds every one of `names`. */
async function rendered(page: Page, names: string[]): Promise<void> {
  await eventually(async () => (await modelsPresent(page, names)).length === names.length, 20_000, `the models ${names.join(', ')}`);
}

/** The Flask pages in Chromium, at `origin()` (the gateway, or NGINX over https with its certificate trusted). */
function inBrowser(layout: string, origin: () => string, trust: () => Buffer | undefined, httpCredentials?: { username: string; password: string }): void {
  describeInBrowser('in Chromium', () => {
    let browser: Browser;
    let context: BrowserContext;
    beforeAll(async () => {
      const certificate = trust();
      browser = await launchChromium(certificate ? { trust: certificate } : {});
    });
    afterAll(async () => {
      await browser?.close();
    });
    beforeEach(async () => {
      context = await browser.newContext({ viewport: { width: 1200, height: 900 }, ...(httpCredentials ? { httpCredentials } : {}) });
    });
    afterEach(async () => {
      await context.close();
    });

    test(
      "one app renders inside Flask's page on the same origin, takes the page's query, and a slider goes to the server and back",
      async () => {
        const { page, problems } = await loadPage(context, `${origin()}/one?title=From%20Flask`, (loaded) =>
          rendered(loaded, ['amplitude', 'source', 'title']),
        );
        expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('One app');
        expect(await modelValue(page, 'title')).toBe('From Flask');
        const peak = (values: number[]) => Math.max(...values.map(Math.abs));
        expect(peak(await column(page, 'source', 'y'))).toBeCloseTo(1.0, 2);
        const handle = page.locator('.bk-Slider').filter({ hasText: 'Amplitude' }).locator('.noUi-handle');
        await handle.focus();
        await handle.press('ArrowRight');
        await waitForColumn(page, 'source', 'y', (y) => Math.abs(peak(y) - 1.1) < 0.01, 5_000, 'the wave recomputed by the server');
        await screenshot(page, `flask-${layout}-one`);
        expect(problems).toEqual([]);
      },
      BROWSER_TIMEOUT_MS,
    );

    test(
      'two apps render side by side in one Flask page',
      async () => {
        // Two documents on one page; which one BokehJS lists first depends on which loads first.
        const documents = (loaded: Page) =>
          loaded.evaluate(() => {
            const bokeh = (window as unknown as { Bokeh?: { documents: Array<{ get_model_by_name(name: string): unknown }> } }).Bokeh;
            return (bokeh?.documents ?? []).map((doc) => (doc.get_model_by_name('amplitude') != null ? 'sliders' : 'stream')).sort();
          });
        const { page, problems } = await loadPage(context, `${origin()}/two`, (loaded) =>
          eventually(async () => (await documents(loaded)).join() === 'sliders,stream', 20_000, 'both documents'),
        );
        await eventually(async () => (await page.locator('#stream canvas').count()) > 0, 10_000, 'the stream plot');
        expect(await page.locator('#sliders canvas').count()).toBeGreaterThan(0);
        await screenshot(page, `flask-${layout}-two`);
        expect(problems).toEqual([]);
      },
      BROWSER_TIMEOUT_MS,
    );
  });
}

// alice / wonderland, bcrypt cost 4 to keep the test fast.
const ALICE = 'alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK';
const ALICE_AUTH = { authorization: `Basic ${Buffer.from('alice:wonderland').toString('base64')}` };

/** The tests of one layout; with `signIn`, the gateway asks for HTTP Basic sign-in (AUTH_MODE=basic). */
function hostAppIn(layout: 'bare-dev' | 'nginx', { signIn }: { signIn: boolean }): void {
  describe(`${layout}: the Flask app behind the gateway${signIn ? ', with sign-in' : ''}`, () => {
    const stack = useStack({
      composeFiles: [COMPOSE_FILE, FLASK_COMPOSE_FILE],
      ...(layout === 'nginx' ? { front: 'nginx' as const } : {}),
      ...(signIn ? { environment: { AUTH_MODE: 'basic', AUTH_BASIC_USERS: ALICE } } : {}),
    });
    const credentials: Record<string, string> = signIn ? ALICE_AUTH : {};
    let origin: string;
    let ca: Buffer | undefined;
    beforeAll(() => {
      const door: Stack['nginx'] = stack().nginx;
      origin = door?.https ?? stack().url;
      ca = door?.ca;
    });
    const get = (path: string, headers: Record<string, string> = {}) =>
      request(`${origin}${path}`, { ...(ca ? { ca } : {}), headers: { ...credentials, ...headers } });

    /** What a browser does with an embedding script of a Flask page: autoload.js, the token, the WebSocket. */
    async function follow(src: string, app: string): Promise<{ js: string; client: BokehClient; doc: unknown }> {
      const autoload = await get(src);
      expect(autoload.status).toBe(200);
      const client = await BokehClient.connect(`${origin.replace(/^http/, 'ws')}${PREFIX}/${app}/ws`, tokenFromAutoload(autoload.body), {
        origin,
        ...(ca ? { ca } : {}),
        headers: credentials,
      });
      return { js: autoload.body, client, doc: await client.pullDocument() };
    }

    test("Flask's pages are served at the gateway's address, in place of the gateway's own", async () => {
      const index = await get('/');
      expect(index.status).toBe(200);
      expect(index.body).toContain('<h1>Team dashboard</h1>');
      // The gateway's own app pages stepped aside: Flask answers, with its own 404.
      const gatewayPage = await get('/apps/sliders');
      expect(gatewayPage.status).toBe(404);
      expect(gatewayPage.body).not.toContain('How this page embeds Bokeh');
      // The gateway's health routes stay its own.
      expect(JSON.parse((await get('/readyz')).body)).toMatchObject({ status: 'ready' });
    });

    test('a page embeds one app with a relative URL; the session is signed, its URLs are public, query arguments reach the app, a slider round-trips', async () => {
      const page = await get('/one?title=From%20Flask');
      expect(page.status).toBe(200);
      const [src, ...more] = serverDocumentSources(page.body);
      expect(more).toEqual([]);
      // Bokeh's own server_document with a relative URL: the page holds no origin and no token.
      expect(src).toMatch(/^\/bokeh\/sliders\/autoload\.js\?/);
      expect(new URL(src!, origin).searchParams.get('bokeh-absolute-url')).toBe('/bokeh/sliders');
      const { js, client, doc } = await follow(src!, 'sliders');
      try {
        // BokehJS gets absolute URLs on the address the browser used, never an internal host.
        const scripts = bokehJsUrls(js);
        expect(scripts.length).toBeGreaterThan(0);
        for (const url of scripts) expect(url.startsWith(`${origin}${PREFIX}/static/`)).toBe(true);
        expect(js).toContain(`${origin}${PREFIX}/sliders`);
        expect(tokenPayload(tokenFromAutoload(js)).extra).toMatchObject({ arguments: { title: expect.anything() } });
        expect(modelNamed(doc, 'title').attributes?.value).toBe('From Flask');
        const amplitude = modelNamed(doc, 'amplitude');
        const source = modelNamed(doc, 'source');
        client.setProperty(amplitude.id, 'value', 1.5);
        const patch = await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(source.id));
        expect(patch.content.events?.length).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    });

    if (signIn) {
      test('a stranger is asked to sign in before Flask sees anything; the signed-in user reaches the Bokeh app in the page', async () => {
        for (const path of ['/', '/one', '/feedback']) {
          const stranger = await request(`${origin}${path}`, { ...(ca ? { ca } : {}), headers: { accept: 'application/json' } });
          expect(stranger.status).toBe(401);
          expect(JSON.parse(stranger.body)).toMatchObject({ error: 'UNAUTHENTICATED' });
        }
        const [src] = serverDocumentSources((await get('/one')).body);
        const { client, doc } = await follow(src!, 'sliders');
        try {
          expect(modelNamed(doc, 'viewer').attributes?.text).toBe('Signed in as <b>alice</b>');
        } finally {
          await client.close();
        }
      });
    }

    test('a page embeds two apps, each with its own session', async () => {
      const page = await get('/two');
      const sources = serverDocumentSources(page.body);
      expect(sources.map((src) => new URL(src, origin).pathname)).toEqual([`${PREFIX}/sliders/autoload.js`, `${PREFIX}/stream/autoload.js`]);
      const sliders = await follow(sources[0]!, 'sliders');
      const stream = await follow(sources[1]!, 'stream');
      try {
        expect(tokenPayload(tokenFromAutoload(sliders.js)).session_id).not.toBe(tokenPayload(tokenFromAutoload(stream.js)).session_id);
        // The stream app pushes points on its own.
        await stream.client.next((msg) => msg.header.msgtype === 'PATCH-DOC');
      } finally {
        await sliders.client.close();
        await stream.client.close();
      }
    });

    test("Flask's form posts to Flask through the gateway, body and all", async () => {
      expect((await get('/feedback')).body).toContain('<form method="post"');
      const thanks = await postForm(`${origin}/feedback`, { name: 'Ada', message: 'Plots <3' }, ca, credentials);
      expect(thanks.status).toBe(200);
      expect(thanks.body).toContain('Thanks, Ada');
      expect(thanks.body).toContain('Received: Plots &lt;3');
    });

    inBrowser(
      layout,
      () => origin,
      () => ca,
      signIn ? { username: 'alice', password: 'wonderland' } : undefined,
    );

    // Last in this layout: it stops Flask and starts it again.
    test("with Flask stopped, its pages get the gateway's 503 naming the host app, and /bokeh keeps working", async () => {
      // Through the engine, as `docker compose stop flask` would: the container stays, to start again.
      const flask = stack().container('flask').getId();
      await run('docker', ['stop', '--time', '15', flask]);
      try {
        const html = await get('/one');
        expect(html.status).toBe(503);
        expect(html.body).toContain('The host app at http://flask:8000');
        const json = await get('/one', { accept: 'application/json' });
        expect(JSON.parse(json.body)).toMatchObject({ error: 'HOST_APP_UNAVAILABLE', status: 503 });
        const src = `${PREFIX}/sliders/autoload.js?bokeh-autoload-element=x&bokeh-app-path=${PREFIX}/sliders&bokeh-absolute-url=${PREFIX}/sliders`;
        const { client } = await follow(src, 'sliders');
        await client.close();
        expect((await get('/readyz')).status).toBe(200);
      } finally {
        await run('docker', ['start', flask]);
      }
      await eventually(async () => (await get('/')).status === 200, 30_000, 'Flask back behind the gateway');
    }, 60_000);
  });
}

hostAppIn('bare-dev', { signIn: true });
hostAppIn('nginx', { signIn: false });
