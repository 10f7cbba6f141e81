/**
 * Compression on the fly: the gateway in-process, in front of a server that answers like Bokeh's
 * Tornado (uncompressed, strong ETags, Range answered with 206), read with node:http so that the
 * encoded bytes are seen as they came. The stored copies of versioned files are in
 * static-cache.test.ts.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { chooseEncoding, variantEtag } from './compression.js';
import { loadConfig } from './config.js';
import { startGateway, type GatewayServer } from './server.js';

/** Text that compresses, like a script: 40 KB. */
const SCRIPT = Buffer.from('function plot(x) { return x * 2; }\n'.repeat(1200));
const TAG = '"0123abcd"';

let upstream: Server;
let gateway: GatewayServer;

async function gatewayFor(env: Record<string, string> = {}): Promise<GatewayServer> {
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    LOG_LEVEL: 'silent',
    BOKEH_SECRET_KEY: 'compression-test-key_0123456789abcdefghijkl',
    ...env,
  });
  return startGateway(config, pino({ level: 'silent' }));
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const path = new URL(req.url!, 'http://bokeh').pathname;
    if (path === '/bokeh/_replica') {
      res.statusCode = 404;
      return res.end();
    }
    if (path === '/bokeh/sliders/autoload.js') {
      // Streamed in pieces with no length, as a generated answer is.
      res.writeHead(200, { 'content-type': 'application/javascript' });
      let left = 10;
      const more = () => {
        if (left-- === 0) return res.end();
        res.write(SCRIPT.subarray(0, 4000));
        setImmediate(more);
      };
      return more();
    }
    const headers: Record<string, string> = { 'content-type': 'text/javascript', etag: TAG, 'accept-ranges': 'bytes' };
    let body = SCRIPT;
    if (path === '/bokeh/static/js/tiny.js') body = SCRIPT.subarray(0, 100);
    if (path === '/bokeh/static/js/no-transform.js') headers['cache-control'] = 'no-transform';
    if (path === '/bokeh/static/img/plot.png') headers['content-type'] = 'image/png';
    if (path === '/bokeh/static/js/events') headers['content-type'] = 'text/event-stream';
    if (path === '/bokeh/static/js/encoded.js') {
      headers['content-encoding'] = 'gzip';
      body = gzipSync(SCRIPT);
    }
    if (req.headers['if-none-match'] === TAG) return res.writeHead(304, { etag: TAG }).end();
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (range) {
      const part = body.subarray(Number(range[1]), Number(range[2]) + 1);
      res.writeHead(206, { ...headers, 'content-range': `bytes ${range[1]}-${range[2]}/${body.length}`, 'content-length': part.length });
      return res.end(part);
    }
    res.writeHead(200, { ...headers, 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  gateway = await gatewayFor();
});

afterAll(async () => {
  await gateway.close();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

function raw(
  path: string,
  headers: Record<string, string>,
  method = 'GET',
  to = gateway,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${to.url}${path}`, { method, headers: { accept: 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const FILE = '/bokeh/static/js/plot.js';

describe('on the fly', () => {
  test('unversioned static files stream out in the preferred encoding, with a weak ETag', async () => {
    const br = await raw(FILE, { 'accept-encoding': 'gzip, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('Accept-Encoding');
    expect(br.headers.etag).toBe(`W/${TAG}`);
    expect(br.body.length).toBeLessThan(SCRIPT.length / 10);
    expect(brotliDecompressSync(br.body).equals(SCRIPT)).toBe(true);

    const gz = await raw(FILE, { 'accept-encoding': 'gzip;q=1, br;q=0.5' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).equals(SCRIPT)).toBe(true);

    const identity = await raw(FILE, { 'accept-encoding': 'identity' });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(identity.headers.etag).toBe(TAG);
    expect(identity.headers['content-length']).toBe(String(SCRIPT.length));
    expect(identity.body.equals(SCRIPT)).toBe(true);
  });

  test('autoload.js, streamed without a length, is compressed as it comes', async () => {
    const res = await raw('/bokeh/sliders/autoload.js?bokeh-autoload-element=x', { 'accept-encoding': 'br' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('br');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(brotliDecompressSync(res.body).length).toBe(40_000);
  });

  test('HEAD, ranges, 304s, small bodies, images, no-transform and encoded answers are left alone', async () => {
    const accept = { 'accept-encoding': 'br, gzip' };
    const head = await raw(FILE, accept, 'HEAD');
    expect(head.headers['content-encoding']).toBeUndefined();
    expect(head.headers['content-length']).toBe(String(SCRIPT.length));

    const range = await raw(FILE, { ...accept, range: 'bytes=0-9999' });
    expect(range.status).toBe(206);
    expect(range.headers['content-encoding']).toBeUndefined();
    expect(range.body.equals(SCRIPT.subarray(0, 10_000))).toBe(true);

    const notModified = await raw(FILE, { ...accept, 'if-none-match': TAG });
    expect(notModified.status).toBe(304);
    expect(notModified.headers['content-encoding']).toBeUndefined();

    for (const path of ['/bokeh/static/js/tiny.js', '/bokeh/static/img/plot.png', '/bokeh/static/js/no-transform.js', '/bokeh/static/js/events']) {
      const res = await raw(path, accept);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.body.equals(path.endsWith('tiny.js') ? SCRIPT.subarray(0, 100) : SCRIPT)).toBe(true);
    }

    const encoded = await raw('/bokeh/static/js/encoded.js', accept);
    expect(encoded.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(encoded.body).equals(SCRIPT)).toBe(true);
  });

  test("the host app's answers are passed on as it sent them", async () => {
    const withHost = await gatewayFor({ HOST_APP_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` });
    try {
      const res = await raw('/assets/app.js', { 'accept-encoding': 'br' }, 'GET', withHost);
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.body.equals(SCRIPT)).toBe(true);
      expect((await raw(FILE, { 'accept-encoding': 'br' }, 'GET', withHost)).headers['content-encoding']).toBe('br');
    } finally {
      await withHost.close();
    }
  });

  test('COMPRESSION_MIN_BYTES sets the threshold, and COMPRESSION=off turns it off', async () => {
    const high = await gatewayFor({ COMPRESSION_MIN_BYTES: String(SCRIPT.length + 1) });
    const off = await gatewayFor({ COMPRESSION: 'off' });
    try {
      expect((await raw(FILE, { 'accept-encoding': 'br' }, 'GET', high)).headers['content-encoding']).toBeUndefined();
      expect((await raw('/bokeh/static/js/tiny.js', { 'accept-encoding': 'br' }, 'GET', high)).headers['content-encoding']).toBeUndefined();
      const res = await raw(FILE, { 'accept-encoding': 'br' }, 'GET', off);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.body.equals(SCRIPT)).toBe(true);
    } finally {
      await high.close();
      await off.close();
    }
  });
});

describe('choosing an encoding', () => {
  const req = (accept?: string) => ({ headers: accept === undefined ? {} : { 'accept-encoding': accept } }) as IncomingMessage;
  test('q-values first, then brotli before gzip; identity when nothing else is acceptable', () => {
    expect(chooseEncoding(req('gzip, deflate, br'), ['br', 'gzip'])).toBe('br');
    expect(chooseEncoding(req('gzip, deflate, br'), ['gzip'])).toBe('gzip');
    expect(chooseEncoding(req('br;q=0.1, gzip;q=0.2'), ['br', 'gzip'])).toBe('gzip');
    expect(chooseEncoding(req('*;q=0'), ['br', 'gzip'])).toBe('identity');
    expect(chooseEncoding(req('deflate'), ['br', 'gzip'])).toBe('identity');
    expect(chooseEncoding(req(), ['br', 'gzip'])).toBe('identity');
    expect(chooseEncoding(req('br'), [])).toBe('identity');
  });

  test("a copy's ETag names its encoding and keeps a weak tag weak", () => {
    expect(variantEtag('"abc"', 'br')).toBe('"abc-br"');
    expect(variantEtag('W/"abc"', 'gzip')).toBe('W/"abc-gz"');
    expect(variantEtag('"abc"', 'identity')).toBe('"abc"');
    expect(variantEtag(undefined, 'br')).toBeUndefined();
  });
});
