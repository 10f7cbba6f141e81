/**
 * The pages as HTML: what an app page holds besides the embed script (title, connection state,
 * the snippet to copy), and the connection-state script they load. Whether BokehJS renders and
 * the state follows the WebSocket is checked in a real browser (tests/integration/browser.test.ts).
 */
import { Script } from 'node:vm';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { CONNECTION_STATES, CONNECTION_STATUS_PATH, connectionStatusScript } from './connection-status.js';
import { expressSnippet } from './pages.js';
import { startGateway, type GatewayServer } from './server.js';

let gateway: GatewayServer;

beforeAll(async () => {
  // Pages never talk to Bokeh, so nothing needs to listen at BOKEH_URL.
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: 'http://127.0.0.1:9',
    BOKEH_SECRET_KEY: 'pages-test-key_0123456789abcdefghijklmnop',
    PUBLIC_ORIGINS: 'https://dash.example.com',
    LOG_LEVEL: 'silent',
  });
  gateway = await startGateway(config, pino({ level: 'silent' }));
});

afterAll(async () => {
  await gateway.close();
});

const get = async (path: string) => {
  const res = await fetch(`${gateway.url}${path}`);
  return { status: res.status, type: res.headers.get('content-type'), cache: res.headers.get('cache-control'), body: await res.text() };
};

describe('the index', () => {
  test('lists every app with a link to its page and its Bokeh path', async () => {
    const { status, body } = await get('/');
    expect(status).toBe(200);
    for (const app of ['sliders', 'stream', 'ping']) {
      expect(body).toContain(`href="/apps/${app}"`);
      expect(body).toContain(`<code>/bokeh/${app}</code>`);
    }
  });

  test('carries its own icon, so the browser does not ask for /favicon.ico', async () => {
    expect((await get('/')).body).toMatch(/<link rel="icon" href="data:image\/svg\+xml,/);
  });
});

describe('an app page', () => {
  test('shows the app title and a connection state that starts at "Connecting", as a status', async () => {
    const { body } = await get('/apps/stream');
    expect(body).toContain('<section class="app" data-bokeh-app="stream" aria-labelledby="app-title">');
    expect(body).toContain('<h1 id="app-title">Stream</h1>');
    expect(body).toMatch(/<p class="connection" data-connection="connecting" role="status">.*Connecting…/);
  });

  test('loads the connection-state script from its own origin, after the app element', async () => {
    const { body } = await get('/apps/stream');
    const script = body.indexOf(`<script src="${CONNECTION_STATUS_PATH}"></script>`);
    expect(script).toBeGreaterThan(body.indexOf('data-bokeh-app="stream"'));
    expect(script).toBeGreaterThan(body.indexOf('</main>'));
  });

  test('explains how it embeds Bokeh, with a snippet for the public origin', async () => {
    const { body } = await get('/apps/sliders');
    expect(body).toContain('<h2 id="how-title">How this page embeds Bokeh</h2>');
    expect(body).toContain('app.get(&#39;/report&#39;');
    expect(body).toContain('const slidersUrl = &#39;https://dash.example.com/bokeh/sliders&#39;;');
    expect(body).toContain('&lt;script id=&quot;bokeh-sliders&quot; src=&quot;${autoload}&quot;&gt;&lt;/script&gt;');
  });
});

describe('expressSnippet', () => {
  const snippet = expressSnippet('https://dash.example.com', '/bokeh', 'my_app-2');

  /** Runs the snippet as an Express app would: registers its route, then answers one request. */
  function serve(code: string): { path: string; type: string; html: string } {
    const routes: Array<[string, (req: unknown, res: unknown) => void]> = [];
    new Script(code).runInNewContext({
      URL,
      URLSearchParams,
      app: { get: (path: string, handler: (req: unknown, res: unknown) => void) => routes.push([path, handler]) },
    });
    expect(routes).toHaveLength(1);
    const sent = { type: '', html: '' };
    const res = { type: (type: string) => ((sent.type = type), res), send: (body: string) => void (sent.html = body) };
    routes[0]![1]({}, res);
    return { path: routes[0]![0], ...sent };
  }

  test('is an Express route that sends a page embedding the app through its autoload script', () => {
    const { path, type, html } = serve(snippet);
    expect(path).toBe('/report');
    expect(type).toBe('html');
    const tag = html.match(/<script id="([^"]+)" src="([^"]+)"><\/script>/);
    expect(tag).not.toBeNull();
    const src = new URL(tag![2]!);
    expect(src.origin + src.pathname).toBe('https://dash.example.com/bokeh/my_app-2/autoload.js');
    expect(src.searchParams.get('bokeh-autoload-element')).toBe(tag![1]);
    expect(src.searchParams.get('bokeh-app-path')).toBe('/bokeh/my_app-2');
    expect(src.searchParams.get('bokeh-absolute-url')).toBe('https://dash.example.com/bokeh/my_app-2');
  });

  test('says which setting the embedding origin needs', () => {
    expect(snippet).toContain('PUBLIC_ORIGINS');
  });
});

describe('the connection-state script', () => {
  test('is served as JavaScript and revalidated, so a new gateway version takes effect at once', async () => {
    const { status, type, cache, body } = await get(CONNECTION_STATUS_PATH);
    expect(status).toBe(200);
    expect(type).toBe('text/javascript; charset=utf-8');
    expect(cache).toBe('no-cache');
    expect(body).toBe(connectionStatusScript);
  });

  test('parses, and knows every state the pages style', () => {
    expect(() => new Script(connectionStatusScript)).not.toThrow();
    for (const state of Object.keys(CONNECTION_STATES)) expect(connectionStatusScript).toContain(`"${state}"`);
  });

  test('a lost connection interrupts as an alert; the other states are a polite status', () => {
    expect(CONNECTION_STATES.lost.role).toBe('alert');
    expect(CONNECTION_STATES.lost.text).toMatch(/Connection lost.*Reload/);
    expect(CONNECTION_STATES.connected.role).toBe('status');
  });
});
