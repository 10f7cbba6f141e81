/**
 * The pages in a real browser, in every layout: headless Chromium loads them through the gateway
 * (and through NGINX and Apache over https), BokehJS renders and talks to Bokeh, and the page says how the
 * connection stands. Protocol-level clients (the other files) cannot see what BokehJS does with
 * what it gets; this file looks at the page as a user does. Screenshots go to test-results/browser/.
 *
 * Chromium comes from CHROMIUM_PATH (default /usr/bin/chromium, Debian's `chromium` package).
 * Without it the file is skipped with instructions, except under CI=true, where it fails.
 */
import { createServer } from 'node:http';
import { Script } from 'node:vm';
import getPort from 'get-port';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { tokenFromAutoload, tokenPayload } from '../../client/bokeh-client.js';
import {
  column,
  connectionState,
  drawnPixels,
  modelsPresent,
  modelValue,
  openApp,
  peak,
  screenshot,
  sliderRoundTrip,
  waitForColumn,
  type AppPage,
} from '../support/browser.js';
import { launchChromium, loadPage, missingBrowser } from '../../client/browser.js';
import { eventually, request, useStack } from '../support/stack.js';

const noBrowser = missingBrowser();
if (noBrowser && process.env.CI === 'true') {
  // In CI a missing browser is a failure, reported at once, before any stack is started.
  test('Chromium is installed (CI=true)', () => {
    throw new Error(noBrowser);
  });
} else if (noBrowser) {
  process.stdout.write(`\n[browser] skipping the browser tests: ${noBrowser}\n`);
}
const describeInBrowser = noBrowser ? describe.skip : describe;

const VIEWPORT = { width: 1200, height: 900 };
const SLIDERS_MODELS = ['amplitude', 'frequency', 'phase', 'offset', 'title', 'source'];
/** Enough for a new point from the stream app, which sends one every 500 ms. */
const STREAM_WAIT_MS = 5_000;
/** Per test: a page load with BokehJS takes 1-3 s on a 2-core machine; the rest is waiting on purpose. */
const TIMEOUT_MS = 30_000;

/** Opens an app page and records the session id that Bokeh put in the token of its autoload.js. */
async function openAppWithSession(context: BrowserContext, url: string): Promise<AppPage & { sessionId: string }> {
  let sessionId = '';
  const record = (page: Page) =>
    page.on('response', (response) => {
      if (response.url().includes('/autoload.js')) {
        void response.text().then((js) => (sessionId = tokenPayload(tokenFromAutoload(js)).session_id));
      }
    });
  context.on('page', record);
  try {
    const app = await openApp(context, url);
    await eventually(async () => sessionId !== '', 5_000, 'the session id from autoload.js');
    return { ...app, sessionId };
  } finally {
    context.off('page', record);
  }
}

/**
 * What each layout must show a user. `origin` is the address the browser uses (the gateway, or
 * a front over https); `context` is a fresh browser context per test.
 */
function appPagesIn(layout: string, origin: () => string, context: () => BrowserContext): void {
  test(
    'the index lists every app, and loads without errors',
    async () => {
      const { page, problems } = await loadPage(context(), `${origin()}/`);
      for (const name of ['Sliders', 'Stream', 'Ping']) {
        await expect(
          page
            .locator('main')
            .getByRole('link', { name: new RegExp(`^${name}`) })
            .isVisible(),
        ).resolves.toBe(true);
      }
      await screenshot(page, `${layout}-index`);
      expect(problems).toEqual([]);
    },
    TIMEOUT_MS,
  );

  test(
    'sliders: BokehJS renders the plot, the page says "Connected", a slider goes to the server and back, and nothing fails',
    async () => {
      const { page, problems } = await openApp(context(), `${origin()}/apps/sliders`);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sliders');
      expect(await connectionState(page)).toEqual({ state: 'connected', role: 'status', text: 'Connected' });
      expect(await modelsPresent(page, SLIDERS_MODELS)).toEqual(SLIDERS_MODELS);
      await eventually(async () => (await drawnPixels(page)) > 2_000, 5_000, 'the plot drawn on its canvas');
      await screenshot(page, `${layout}-sliders`);
      await sliderRoundTrip(page);
      expect(problems).toEqual([]);
    },
    TIMEOUT_MS,
  );

  test(
    'stream: new points arrive from the server without any input',
    async () => {
      const { page, problems } = await openApp(context(), `${origin()}/apps/stream`);
      const before = (await column(page, 'source', 'x')).at(-1) ?? 0;
      const after = await waitForColumn(page, 'source', 'x', (x) => (x.at(-1) ?? 0) >= before + 2, STREAM_WAIT_MS, 'two new points');
      expect(after.length).toBeGreaterThan(0);
      await eventually(async () => (await drawnPixels(page)) > 2_000, 5_000, 'the stream drawn on its canvas');
      await screenshot(page, `${layout}-stream`);
      expect(problems).toEqual([]);
    },
    TIMEOUT_MS,
  );

  test(
    'ping: the page loads and connects without errors',
    async () => {
      const { page, problems } = await openApp(context(), `${origin()}/apps/ping`);
      await screenshot(page, `${layout}-ping`);
      expect(problems).toEqual([]);
    },
    TIMEOUT_MS,
  );

  test(
    'two tabs get independent sessions: a slider moved in one leaves the other alone',
    async () => {
      const first = await openAppWithSession(context(), `${origin()}/apps/sliders`);
      const second = await openAppWithSession(context(), `${origin()}/apps/sliders`);
      expect(first.sessionId).toMatch(/^[A-Za-z0-9]{44}/);
      expect(second.sessionId).not.toBe(first.sessionId);
      await sliderRoundTrip(first.page);
      // The first tab's round trip is complete; anything shared would have reached the second by now.
      await second.page.waitForTimeout(500);
      expect(await modelValue(second.page, 'amplitude')).toBe(1);
      expect(peak(await column(second.page, 'source', 'y'))).toBeCloseTo(1.0, 2);
      expect([...first.problems, ...second.problems]).toEqual([]);
    },
    TIMEOUT_MS,
  );
}

/** A site of the user's own on 127.0.0.1 that embeds an app: its origin is listed in PUBLIC_ORIGINS. */
const SITE_PORT = await getPort({ host: '127.0.0.1' });

/**
 * Runs an Express snippet from an app page as a server of its own: `app.get(path, handler)` is
 * all the snippet uses, so node:http with that one method stands in for Express.
 */
async function serveSnippet(snippet: string, port: number): Promise<{ origin: string; close(): Promise<void> }> {
  const routes = new Map<string, (req: unknown, res: unknown) => void>();
  new Script(snippet).runInNewContext({
    URL,
    URLSearchParams,
    app: { get: (path: string, handler: (req: unknown, res: unknown) => void) => routes.set(path, handler) },
  });
  const server = createServer((req, res) => {
    const handler = routes.get(new URL(req.url ?? '/', 'http://site').pathname);
    if (!handler) {
      // Browsers ask for /favicon.ico; an empty answer keeps the user's own 404s out of the check.
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    const reply = {
      type: (type: string) => (res.setHeader('content-type', type === 'html' ? 'text/html; charset=utf-8' : type), reply),
      send: (body: string) => res.end(body),
    };
    handler(req, reply);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** One browser for the describe block, from `launch`, and a fresh context for each test. */
function useBrowserContext(launch: () => Promise<Browser>): () => BrowserContext {
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  beforeAll(async () => {
    browser = await launch();
  }, TIMEOUT_MS);
  beforeEach(async () => {
    context = await browser!.newContext({ viewport: VIEWPORT });
  });
  afterEach(async () => {
    await context?.close();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => context!;
}

describeInBrowser('bare-dev in a browser: browser -> gateway -> bokeh', () => {
  const context = useBrowserContext(() => launchChromium());
  const stack = useStack({ extraOrigins: [`http://127.0.0.1:${SITE_PORT}`] });

  appPagesIn('bare-dev', () => stack().url, context);

  test(
    'an app page preloads the BokehJS files its autoload.js then loads, and a cold load fetches each of them once',
    async () => {
      // The gateway learns the files from the app's autoload.js answers: one page load teaches it.
      await openApp(context(), `${stack().url}/apps/sliders`);
      const cold = await context().browser()!.newContext({ viewport: VIEWPORT });
      try {
        const fetched: string[] = [];
        cold.on('request', (request) => {
          if (request.url().includes('/static/js/')) fetched.push(request.url());
        });
        const { page, problems } = await openApp(cold, `${stack().url}/apps/sliders`);
        const preloaded = await page.evaluate(() =>
          Array.from(document.querySelectorAll<HTMLLinkElement>('head link[rel="preload"][as="script"]')).map((link) => link.href),
        );
        expect(preloaded.length).toBeGreaterThanOrEqual(3);
        for (const url of preloaded) expect(url).toMatch(/\/bokeh\/static\/js\/bokeh[\w.-]*\.js\?v=[0-9a-f]+$/);
        // Every file autoload.js had the page load was preloaded, and none went over the network twice.
        expect([...fetched].sort()).toEqual([...preloaded].sort());
        expect(problems).toEqual([]);
      } finally {
        await cold.close();
      }
    },
    TIMEOUT_MS,
  );

  test('after Bokeh restarts the page says "Connection lost" with a Reload button, and a reload brings a working session', async () => {
    const sliders = await openApp(context(), `${stack().url}/apps/sliders`);
    const stream = await openApp(context(), `${stack().url}/apps/stream`);
    await stack().container('bokeh').restart({ timeout: 10_000 });

    await sliders.page.locator('[data-connection="lost"]').waitFor({ timeout: 10_000 });
    expect(await connectionState(sliders.page)).toMatchObject({
      state: 'lost',
      role: 'alert',
      text: expect.stringMatching(/^Connection lost\. Reload the page/),
    });
    await eventually(async () => (await request(`${stack().url}/readyz`)).status === 200, 30_000, 'Bokeh ready again');

    // BokehJS retries on its own. The stream app's document comes back whole, and the page says so;
    // the sliders app's re-pull fails on its binary (numpy) columns, so it must keep saying "lost".
    await stream.page.locator('[data-connection="connected"]').waitFor({ timeout: 20_000 });
    const last = (await column(stream.page, 'source', 'x')).at(-1) ?? 0;
    await waitForColumn(stream.page, 'source', 'x', (x) => (x.at(-1) ?? 0) > last, STREAM_WAIT_MS, 'points from the new session');
    expect((await connectionState(sliders.page)).state).toBe('lost');
    await screenshot(sliders.page, 'bare-dev-sliders-connection-lost');

    await sliders.page.getByRole('button', { name: 'Reload' }).click();
    await sliders.page.locator('[data-connection="connected"]').waitFor({ timeout: 20_000 });
    await sliderRoundTrip(sliders.page);
  }, 60_000);

  test(
    "the page's Express snippet, run as a server of its own on another origin, embeds a working app",
    async () => {
      const { page } = await openApp(context(), `${stack().url}/apps/sliders`);
      const snippet = await page.locator('.how pre code').innerText();
      const site = await serveSnippet(snippet, SITE_PORT);
      try {
        const { page: user, problems } = await loadPage(context(), `${site.origin}/report`, async (page) => {
          await page.waitForFunction(
            () =>
              (window as unknown as { Bokeh?: { documents: Array<{ get_model_by_name(name: string): unknown }> } }).Bokeh?.documents[0]?.get_model_by_name(
                'source',
              ) != null,
            null,
            { timeout: 20_000 },
          );
        });
        expect(await user.getByRole('heading', { level: 1 }).innerText()).toBe('Sliders');
        await sliderRoundTrip(user);
        await screenshot(user, 'bare-dev-snippet');
        expect(problems).toEqual([]);
      } finally {
        await site.close();
      }
    },
    TIMEOUT_MS,
  );
});

for (const { front, name } of [
  { front: 'nginx', name: 'NGINX' },
  { front: 'apache', name: 'Apache' },
] as const) {
  describeInBrowser(`${name} in a browser: browser -> ${front} (https) -> gateway -> bokeh`, () => {
    const stack = useStack({ front });
    const door = () => stack()[front]!;
    // This browser instance trusts the stack's development certificate, and nothing else extra.
    const context = useBrowserContext(() => launchChromium({ trust: door().ca }));

    appPagesIn(front, () => door().https, context);

    test(
      'a browser not told about the development certificate refuses the page',
      async () => {
        const plain = await launchChromium();
        try {
          const page = await plain.newPage();
          await expect(page.goto(`${door().https}/`)).rejects.toThrow(/ERR_CERT_AUTHORITY_INVALID/);
        } finally {
          await plain.close();
        }
      },
      TIMEOUT_MS,
    );
  });
}
