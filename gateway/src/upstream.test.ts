import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from './config.js';
import { createUpstreams } from './upstream.js';

const KEY = 'upstream-test-key_0123456789abcdefghijklmn';

let bokeh: Server;
let port: number;
const seen: string[] = [];

beforeAll(async () => {
  bokeh = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.host}`);
    res.end('ok');
  });
  await new Promise<void>((resolve) => bokeh.listen(0, '127.0.0.1', resolve));
  port = (bokeh.address() as AddressInfo).port;
});

afterAll(() => new Promise<void>((resolve) => bokeh.close(() => resolve())));

test('with one BOKEH_URL, every choice is that server', () => {
  const upstreams = createUpstreams(loadConfig({ BOKEH_SECRET_KEY: KEY, BOKEH_URL: 'http://bokeh.internal:5006' }));
  const [only] = upstreams.all();
  expect(upstreams.all()).toHaveLength(1);
  expect(only!.origin).toBe('http://bokeh.internal:5006');
  expect(upstreams.any()).toBe(only);
  expect(upstreams.forSession('some-session-id')).toBe(only);
  expect(upstreams.name).toBe('http://bokeh.internal:5006');
  upstreams.close();
});

test("requests go to the server's address over its keep-alive pool", async () => {
  const upstreams = createUpstreams(loadConfig({ BOKEH_SECRET_KEY: KEY, BOKEH_URL: `http://127.0.0.1:${port}` }));
  const upstream = upstreams.any();
  for (const path of ['/bokeh/ping/metadata', '/bokeh/static/js/bokeh.min.js?v=1']) {
    await new Promise<void>((resolve, reject) => {
      const req = upstream.request(path, { headers: { accept: 'text/plain' } });
      req.on('response', (res) => res.resume().on('end', resolve));
      req.on('error', reject);
      req.end();
    });
  }
  expect(seen).toEqual([`GET /bokeh/ping/metadata 127.0.0.1:${port}`, `GET /bokeh/static/js/bokeh.min.js?v=1 127.0.0.1:${port}`]);
  // Both requests shared one connection.
  expect(Object.values(upstream.agent.freeSockets).flat()).toHaveLength(1);
  upstreams.close();
});
