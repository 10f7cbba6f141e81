/**
 * Preload hints on the app pages: the gateway in-process in front of a stand-in for Bokeh whose
 * autoload.js names BokehJS files as Bokeh 3.9 does. That a browser then fetches each hinted
 * file once is checked in Chromium (tests/integration/browser.test.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startGateway, type GatewayServer } from './server.js';

const HASH = 'a'.repeat(128);
const FILES = ['bokeh.min.js', 'bokeh-gl.min.js', 'bokeh-widgets.min.js'];
/** What the stand-in's autoload.js names: the versioned files, an unversioned one, a stylesheet. */
let autoloadBody = '';
let autoloadStatus = 200;
let autoloadEncoding: string | undefined;
/** The last autoload.js body the stand-in sent. */
let sent = '';

function bokehAutoload(origin: string): string {
  const js = FILES.map((file) => `"${origin}/bokeh/static/js/${file}?v=${HASH}"`);
  return `(function(root) { const js_urls = [${js.join(', ')}, "${origin}/bokeh/static/js/unversioned.js"]; const css_urls = ["${origin}/bokeh/static/css/x.css?v=${HASH}"]; })(window);`;
}

let bokeh: Server;
let gateway: GatewayServer;

beforeAll(async () => {
  bokeh = createServer((req, res) => {
    const url = new URL(req.url!, 'http://bokeh');
    if (url.pathname.endsWith('/metadata')) return res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (!/^\/bokeh\/\w+\/autoload\.js$/.test(url.pathname)) return res.writeHead(404).end();
    const headers: Record<string, string> = { 'content-type': 'application/javascript' };
    if (autoloadEncoding) headers['content-encoding'] = autoloadEncoding;
    sent = autoloadBody.replaceAll('ORIGIN', new URL(url.searchParams.get('bokeh-absolute-url') ?? 'https://dash.example.com').origin);
    res.writeHead(autoloadStatus, headers).end(autoloadEncoding === 'gzip' ? gzipSync(sent) : sent);
  });
  await new Promise<void>((resolve) => bokeh.listen(0, '127.0.0.1', resolve));
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: `http://127.0.0.1:${(bokeh.address() as AddressInfo).port}`,
    BOKEH_APPS: 'sliders,stream',
    PUBLIC_ORIGINS: 'https://dash.example.com',
    BOKEH_SECRET_KEY: 'preload-test-key_0123456789abcdefghijklmnop',
    LOG_LEVEL: 'silent',
  });
  gateway = await startGateway(config, pino({ level: 'silent' }));
});

afterAll(async () => {
  await gateway.close();
  await new Promise<void>((resolve) => bokeh.close(() => resolve()));
});

const page = async (app: string) => (await (await fetch(`${gateway.url}/apps/${app}`)).text()).split('</head>')[0]!;
const loadAutoload = async (app: string) => {
  const res = await fetch(`${gateway.url}/bokeh/${app}/autoload.js?bokeh-autoload-element=x&bokeh-absolute-url=https://dash.example.com/bokeh/${app}`);
  return { status: res.status, body: await res.text() };
};
const preloads = (head: string) => [...head.matchAll(/<link rel="preload" as="script" href="([^"]+)">/g)].map((match) => match[1]);
const versioned = FILES.map((file) => `/bokeh/static/js/${file}?v=${HASH}`);

test('an app page names no script to preload before its first autoload.js, then every versioned BokehJS file it named, in <head>', async () => {
  expect(preloads(await page('sliders'))).toEqual([]);
  autoloadBody = bokehAutoload('ORIGIN');
  const answer = await loadAutoload('sliders');
  // The answer itself reaches the browser unchanged.
  expect(answer).toEqual({ status: 200, body: sent });
  expect(sent).toContain(`/bokeh/static/js/bokeh.min.js?v=${HASH}`);
  const head = await page('sliders');
  expect(preloads(head)).toEqual(versioned);
  // Paths only: the browser resolves them against the page's own origin, as autoload.js's URLs.
  expect(head).not.toContain('://');
  // Per app: another app has not been loaded yet.
  expect(preloads(await page('stream'))).toEqual([]);
});

test('the hints follow the latest autoload.js, and answers that are not a plain 200 change nothing', async () => {
  autoloadBody = bokehAutoload('ORIGIN').replaceAll(HASH, 'b'.repeat(128));
  await loadAutoload('sliders');
  const upgraded = versioned.map((path) => path.replace(HASH, 'b'.repeat(128)));
  expect(preloads(await page('sliders'))).toEqual(upgraded);

  autoloadBody = bokehAutoload('ORIGIN');
  for (const [status, encoding] of [
    [500, undefined],
    [200, 'gzip'],
  ] as const) {
    autoloadStatus = status;
    autoloadEncoding = encoding;
    await loadAutoload('sliders');
    expect(preloads(await page('sliders'))).toEqual(upgraded);
  }
  autoloadStatus = 200;
  autoloadEncoding = undefined;
});

test('an answer that names no BokehJS file keeps the last hints, and a URL outside the prefix is never hinted', async () => {
  autoloadBody = '"ORIGIN/elsewhere/static/js/bokeh.min.js?v=1234" "https://other.example/bokeh/static/js/x.js"';
  await loadAutoload('stream');
  expect(preloads(await page('stream'))).toEqual([]);
  autoloadBody = '"ORIGIN/bokeh/static/js/bokeh.min.js?v=1234\\"><script>alert(1)</script>"';
  await loadAutoload('stream');
  const head = await page('stream');
  expect(preloads(head)).toEqual(['/bokeh/static/js/bokeh.min.js?v=1234']);
  expect(head).not.toContain('alert');
});
