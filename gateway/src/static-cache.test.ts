/**
 * The static file cache in a real gateway, in front of a real HTTP server that answers the way
 * Bokeh 3.9's Tornado does for static files (headers as measured from `bokeh serve`): each test
 * counts what reached that server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startGateway, type GatewayServer } from './server.js';

const MIB = 1024 * 1024;
const LAST_MODIFIED = 'Thu, 26 Nov 2026 12:20:39 GMT';

interface Upstream {
  url: string;
  /** Requests that reached the upstream, by method and raw URL, e.g. "GET /bokeh/static/a.js?v=1". */
  seen: string[];
  /** Request headers of each request, in order. */
  headers: IncomingMessage['headers'][];
  /** Files served under /bokeh/static/ and /bokeh/<app>/static/, by path after the prefix. */
  files: Map<string, Buffer>;
  /** Holds every answer until called with `release()`. */
  hold(): { release: () => void };
  /** Answers with this instead of the file. */
  override: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  close(): Promise<void>;
}

const version = (body: Buffer) => createHash('sha512').update(body).digest('hex');

async function startUpstream(): Promise<Upstream> {
  const files = new Map<string, Buffer>();
  const seen: string[] = [];
  const headers: IncomingMessage['headers'][] = [];
  let held: Promise<void> | undefined;
  const upstream: Upstream = {
    url: '',
    seen,
    headers,
    files,
    override: undefined,
    hold() {
      let release!: () => void;
      held = new Promise((resolve) => (release = resolve));
      return {
        release: () => {
          held = undefined;
          release();
        },
      };
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  // Tornado's StaticFileHandler: ETag is the file's SHA-512 (the same digest as ?v=), ten years
  // of Cache-Control only when the URL has a v argument, Range answered with 206, no compression.
  const server: Server = createServer(async (req, res) => {
    // The gateway's replica checks (upstream.ts) are not requests these tests count; a Bokeh
    // without the launcher's status route answers them with 404.
    if (req.url === '/bokeh/_replica') {
      res.statusCode = 404;
      return res.end();
    }
    seen.push(`${req.method} ${req.url}`);
    headers.push(req.headers);
    if (held) await held;
    if (upstream.override?.(req, res)) return;
    const url = new URL(req.url!, 'http://upstream');
    const body = files.get(url.pathname.replace(/^\/bokeh\//, ''));
    res.setHeader('Server', 'TornadoServer/6.6.1');
    if (body === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/html; charset=UTF-8' }).end('<html><title>404: Not Found</title><body>404: Not Found</body></html>');
      return;
    }
    res.setHeader('Content-Type', 'text/javascript');
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Etag', `"${version(body)}"`);
    res.setHeader('Last-Modified', LAST_MODIFIED);
    if (url.searchParams.has('v')) {
      res.setHeader('Expires', new Date(Date.now() + 315_360_000_000).toUTCString());
      res.setHeader('Cache-Control', 'max-age=315360000');
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (range) {
      const part = body.subarray(Number(range[1]), Number(range[2]) + 1);
      res.writeHead(206, { 'Content-Range': `bytes ${range[1]}-${range[2]}/${body.length}`, 'Content-Length': part.length });
      res.end(req.method === 'HEAD' ? undefined : part);
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

async function gatewayFor(upstream: Upstream, env: Record<string, string> = {}): Promise<GatewayServer> {
  const config = loadConfig({
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    BOKEH_URL: upstream.url,
    LOG_LEVEL: 'silent',
    BOKEH_SECRET_KEY: 'static-cache-test-key_0123456789abcdefghijk',
    ...env,
  });
  return startGateway(config, pino({ level: 'silent' }));
}

/** A file of `size` bytes that differs from every other one. */
const file = (size: number, seed: string) => Buffer.alloc(size, seed);

let upstream: Upstream;
let gateway: GatewayServer;
const main = file(300_000, 'bokeh.min.js');
const mainUrl = () => `/bokeh/static/js/bokeh.min.js?v=${version(main)}`;

beforeEach(async () => {
  upstream = await startUpstream();
  upstream.files.set('static/js/bokeh.min.js', main);
  gateway = await gatewayFor(upstream);
});

afterEach(async () => {
  await gateway.close();
  await upstream.close();
});

const get = (path: string, init: RequestInit = {}) => fetch(`${gateway.url}${path}`, init);
const bodyOf = async (res: Response) => Buffer.from(await res.arrayBuffer());

describe('versioned static files', () => {
  test('the first request reaches Bokeh, later ones are answered from memory with the same bytes and headers', async () => {
    const first = await get(mainUrl());
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const firstBody = await bodyOf(first);
    expect(firstBody.equals(main)).toBe(true);

    const second = await get(mainUrl());
    expect(second.status).toBe(200);
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect((await bodyOf(second)).equals(main)).toBe(true);
    for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'expires', 'accept-ranges']) {
      expect(second.headers.get(name)).toBe(first.headers.get(name));
    }
    expect(second.headers.get('cache-control')).toBe('max-age=315360000');
    expect(second.headers.get('age')).toMatch(/^\d+$/);
    expect(upstream.seen).toEqual([`GET ${mainUrl()}`]);
  });

  test('the fetch asks for the whole, uncompressed file whatever the browser sent', async () => {
    const res = await get(mainUrl(), { headers: { 'if-none-match': '"other"', 'accept-encoding': 'gzip, br' } });
    expect(res.status).toBe(200);
    expect(upstream.headers[0]).toMatchObject({ 'accept-encoding': 'identity' });
    expect(upstream.headers[0]!['if-none-match']).toBeUndefined();
  });

  test('HEAD gets the headers without the body, from memory too', async () => {
    const head = await get(mainUrl(), { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(main.length));
    expect((await bodyOf(head)).length).toBe(0);
    const again = await get(mainUrl(), { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
    expect(again.headers.get('x-cache')).toBe('HIT');
    expect(again.headers.get('content-length')).toBe(String(main.length));
    expect((await get(mainUrl())).headers.get('x-cache')).toBe('HIT');
    expect(upstream.seen).toHaveLength(1);
  });

  test("an app's own static folder is cached too", async () => {
    const logo = file(2_000, 'logo');
    upstream.files.set('sliders/static/logo.js', logo);
    const url = `/bokeh/sliders/static/logo.js?v=${version(logo)}`;
    expect((await get(url)).headers.get('x-cache')).toBe('MISS');
    const hit = await get(url);
    expect(hit.headers.get('x-cache')).toBe('HIT');
    expect((await bodyOf(hit)).equals(logo)).toBe(true);
    expect(upstream.seen).toHaveLength(1);
  });

  test('concurrent requests for one file make one request to Bokeh', async () => {
    const hold = upstream.hold();
    const answers = Promise.all(Array.from({ length: 8 }, () => get(mainUrl()).then(async (res) => ({ res, body: await bodyOf(res) }))));
    // Let every request reach the gateway before Bokeh answers.
    await new Promise((done) => setTimeout(done, 200));
    hold.release();
    for (const { res, body } of await answers) {
      expect(res.status).toBe(200);
      expect(body.equals(main)).toBe(true);
    }
    expect(upstream.seen).toEqual([`GET ${mainUrl()}`]);
  });

  test('a browser revalidating gets 304 for the ETag or a date not before Last-Modified, else the file', async () => {
    const etag = (await get(mainUrl())).headers.get('etag')!;
    const sameTag = await get(mainUrl(), { headers: { 'if-none-match': `"x", W/${etag}` } });
    expect(sameTag.status).toBe(304);
    expect(sameTag.headers.get('etag')).toBe(etag);
    expect(sameTag.headers.get('cache-control')).toBe('max-age=315360000');
    expect((await bodyOf(sameTag)).length).toBe(0);

    const otherTag = await get(mainUrl(), { headers: { 'if-none-match': '"stale"', 'if-modified-since': LAST_MODIFIED } });
    expect(otherTag.status).toBe(200);
    expect((await bodyOf(otherTag)).equals(main)).toBe(true);

    expect((await get(mainUrl(), { headers: { 'if-modified-since': LAST_MODIFIED } })).status).toBe(304);
    expect((await get(mainUrl(), { headers: { 'if-modified-since': 'Wed, 25 Nov 2026 00:00:00 GMT' } })).status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
  });

  test('files already held keep loading while Bokeh is down', async () => {
    await bodyOf(await get(mainUrl()));
    await upstream.close();
    const res = await get(mainUrl());
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('HIT');
    expect((await bodyOf(res)).equals(main)).toBe(true);
    const unversioned = await get('/bokeh/static/js/bokeh.min.js', { headers: { accept: 'application/json' } });
    expect(unversioned.status).toBe(503);
  });
});

/** One request whose body is read as it came, still encoded: fetch() would decode it. */
function raw(path: string, headers: Record<string, string>, method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${gateway.url}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The brotli copy is made after a file is stored: asks until an answer comes in brotli. */
async function whenBrotli(path: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await raw(path, { 'accept-encoding': 'br' })).headers['content-encoding'] !== 'br') {
    if (Date.now() > deadline) throw new Error(`no brotli copy of ${path} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const decode = (encoding: string | undefined, body: Buffer) => (encoding === 'br' ? brotliDecompressSync(body) : encoding === 'gzip' ? gunzipSync(body) : body);

describe('compressed copies', () => {
  test('each encoding decodes to the file, with its own length and ETag, and Vary on all', async () => {
    const identity = await raw(mainUrl(), { 'accept-encoding': 'identity' });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(identity.body.equals(main)).toBe(true);
    const tag = identity.headers.etag!;
    expect(tag).toBe(`"${version(main)}"`);
    await whenBrotli(mainUrl());
    for (const [accept, encoding, suffix] of [
      ['gzip, deflate, br', 'br', 'br'],
      ['gzip', 'gzip', 'gz'],
    ] as const) {
      const res = await raw(mainUrl(), { 'accept-encoding': accept });
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.headers['content-encoding']).toBe(encoding);
      expect(res.headers['content-length']).toBe(String(res.body.length));
      expect(res.body.length).toBeLessThan(main.length);
      expect(res.headers.etag).toBe(`"${version(main)}-${suffix}"`);
      expect(res.headers.vary).toBe('Accept-Encoding');
      expect(res.headers['accept-ranges']).toBeUndefined();
      expect(decode(encoding, res.body).equals(main)).toBe(true);
    }
    expect(identity.headers.vary).toBe('Accept-Encoding');
    expect(upstream.seen).toHaveLength(1);
  });

  test('the first answers go out gzipped while the brotli copy is made, and the gzip copy stays as it was', async () => {
    const first = await raw(mainUrl(), { 'accept-encoding': 'br, gzip' });
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['content-encoding']).toBe('gzip');
    expect(first.headers.vary).toBe('Accept-Encoding');
    // Only the browser's own cache may keep it: a shared cache would hand it out instead of brotli.
    expect(first.headers['cache-control']).toBe('private, max-age=315360000');
    await whenBrotli(mainUrl());
    const later = await raw(mainUrl(), { 'accept-encoding': 'gzip' });
    expect(later.headers.etag).toBe(first.headers.etag);
    expect(later.body.equals(first.body)).toBe(true);
    expect(later.headers['cache-control']).toBe('max-age=315360000');
    const br = await raw(mainUrl(), { 'accept-encoding': 'br, gzip' });
    expect(br.body.length).toBeLessThan(first.body.length);
    expect(decode('br', br.body).equals(main)).toBe(true);
    expect(upstream.seen).toHaveLength(1);
  });

  test('while the brotli copy is made, a client that takes no brotli gets what it would get after, cacheable as Bokeh says', async () => {
    // Hex text of 1.5 MB: brotli at quality 11 takes about a second, gzip a few ms.
    const slow = Buffer.from(randomBytes(750_000).toString('hex'));
    upstream.files.set('static/js/slow.js', slow);
    const url = `/bokeh/static/js/slow.js?v=${version(slow)}`;
    const first = await raw(url, { 'accept-encoding': 'br, gzip' });
    const gzipOnly = await raw(url, { 'accept-encoding': 'gzip' });
    const identity = await raw(url, { 'accept-encoding': 'identity' });
    const pending = await raw(url, { 'accept-encoding': 'br, gzip' });
    // Still without brotli after the three.
    expect(pending.headers['content-encoding']).toBe('gzip');
    expect([first, pending].map((res) => res.headers['cache-control'])).toEqual(['private, max-age=315360000', 'private, max-age=315360000']);
    expect(gzipOnly.headers['content-encoding']).toBe('gzip');
    expect(gzipOnly.headers['cache-control']).toBe('max-age=315360000');
    expect(identity.headers['cache-control']).toBe('max-age=315360000');
    await whenBrotli(url);
  });

  test('q-values choose the encoding, and a client that accepts none gets the file itself', async () => {
    await whenBrotli(mainUrl());
    const encodingFor = async (accept: string | undefined) =>
      (await raw(mainUrl(), accept === undefined ? {} : { 'accept-encoding': accept })).headers['content-encoding'] ?? 'identity';
    expect(await encodingFor('br;q=0.5, gzip')).toBe('gzip');
    expect(await encodingFor('gzip;q=0.8, br;q=0.9')).toBe('br');
    expect(await encodingFor('*')).toBe('br');
    expect(await encodingFor('br;q=0, gzip;q=0')).toBe('identity');
    expect(await encodingFor('compress, deflate')).toBe('identity');
    expect(await encodingFor('identity;q=0, zstd')).toBe('identity');
    expect(await encodingFor(undefined)).toBe('identity');
  });

  test("HEAD has the chosen copy's headers; If-None-Match is checked against that copy's ETag", async () => {
    await whenBrotli(mainUrl());
    const head = await raw(mainUrl(), { 'accept-encoding': 'br' }, 'HEAD');
    const br = await raw(mainUrl(), { 'accept-encoding': 'br' });
    expect(head.body.length).toBe(0);
    expect(head.headers['content-encoding']).toBe('br');
    expect(head.headers['content-length']).toBe(String(br.body.length));
    expect(head.headers.etag).toBe(br.headers.etag);

    const again = await raw(mainUrl(), { 'accept-encoding': 'br', 'if-none-match': br.headers.etag! });
    expect(again.status).toBe(304);
    expect(again.headers.etag).toBe(br.headers.etag);
    expect(again.headers.vary).toBe('Accept-Encoding');
    // The identity file's tag does not match the brotli copy, nor the other way round.
    expect((await raw(mainUrl(), { 'accept-encoding': 'br', 'if-none-match': `"${version(main)}"` })).status).toBe(200);
    expect((await raw(mainUrl(), { 'accept-encoding': 'identity', 'if-none-match': br.headers.etag! })).status).toBe(200);
    expect((await raw(mainUrl(), { 'accept-encoding': 'gzip', 'if-none-match': br.headers.etag! })).status).toBe(200);
  });

  test('files not worth compressing are kept and served as they are', async () => {
    const png = randomBytes(50_000);
    const small = file(200, 's');
    upstream.files.set('static/img/logo.js', png);
    upstream.files.set('static/js/small.js', small);
    for (const [path, body] of [
      [`/bokeh/static/img/logo.js?v=${version(png)}`, png],
      [`/bokeh/static/js/small.js?v=${version(small)}`, small],
    ] as const) {
      for (let i = 0; i < 2; i += 1) {
        const res = await raw(path, { 'accept-encoding': 'br, gzip' });
        expect(res.headers['content-encoding']).toBeUndefined();
        expect(res.headers.vary).toBeUndefined();
        expect(res.body.equals(body)).toBe(true);
      }
    }
  });

  test('COMPRESSION=off keeps and serves the file only', async () => {
    await gateway.close();
    gateway = await gatewayFor(upstream, { COMPRESSION: 'off' });
    for (let i = 0; i < 2; i += 1) {
      const res = await raw(mainUrl(), { 'accept-encoding': 'br, gzip' });
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers.vary).toBeUndefined();
      expect(res.body.equals(main)).toBe(true);
    }
  });

  test('STATIC_CACHE_BYTES counts every copy', async () => {
    // Hex text compresses to about half: each file takes 300 KB plus about 300 KB of copies.
    const urls = ['a', 'b'].map((name) => {
      const body = Buffer.from(randomBytes(150_000).toString('hex'));
      upstream.files.set(`static/js/${name}.js`, body);
      return `/bokeh/static/js/${name}.js?v=${version(body)}`;
    });
    const states = async (withBrotli: boolean) => {
      for (const url of urls) {
        await raw(url, { 'accept-encoding': 'br' });
        if (withBrotli) await whenBrotli(url);
      }
      const seen: (string | string[] | undefined)[] = [];
      for (const url of urls) seen.push((await raw(url, { 'accept-encoding': 'br' })).headers['x-cache']);
      return seen;
    };
    await gateway.close();
    // Both files with their copies (about 1.2 MB) do not fit in 1 MiB: a is dropped for b, then b for a.
    gateway = await gatewayFor(upstream, { STATIC_CACHE_BYTES: String(MIB) });
    expect(await states(true)).toEqual(['MISS', 'MISS']);
    await gateway.close();
    // The files alone (600 KB) do.
    gateway = await gatewayFor(upstream, { STATIC_CACHE_BYTES: String(MIB), COMPRESSION: 'off' });
    expect(await states(false)).toEqual(['HIT', 'HIT']);
  });
});

describe('what is not cached', () => {
  test('unversioned URLs, other query strings and ranges always go to Bokeh', async () => {
    const v = version(main);
    for (const path of ['/bokeh/static/js/bokeh.min.js', `/bokeh/static/js/bokeh.min.js?v=${v}&x=1`, '/bokeh/static/js/bokeh.min.js?v=a.b']) {
      for (let i = 0; i < 2; i += 1) {
        const res = await get(path);
        expect(res.status).toBe(200);
        expect(res.headers.get('x-cache')).toBe('BYPASS');
        expect((await bodyOf(res)).equals(main)).toBe(true);
      }
    }
    const range = await get(mainUrl(), { headers: { range: 'bytes=0-9' } });
    expect(range.status).toBe(206);
    expect((await bodyOf(range)).equals(main.subarray(0, 10))).toBe(true);
    expect(upstream.seen).toHaveLength(7);
  });

  test('other Bokeh routes are not cached, versioned or not', async () => {
    upstream.override = (req, res) => {
      if (!req.url!.includes('/metadata')) return false;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"data":{}}');
      return true;
    };
    for (let i = 0; i < 2; i += 1) {
      const res = await get('/bokeh/sliders/metadata?v=1');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBeNull();
    }
    expect(upstream.seen).toHaveLength(2);
  });

  test("Bokeh's errors are passed on as they are, and never kept", async () => {
    for (let i = 0; i < 2; i += 1) {
      const res = await get('/bokeh/static/js/missing.js?v=1');
      expect(res.status).toBe(404);
      expect(res.headers.get('x-cache')).toBe('BYPASS');
      expect(await res.text()).toContain('404: Not Found');
    }
    // Each time: the cache's fetch, then the proxy's.
    expect(upstream.seen).toEqual(Array(4).fill('GET /bokeh/static/js/missing.js?v=1'));
  });

  test('answers that set a cookie or vary are passed on and never kept', async () => {
    upstream.override = (req, res) => {
      const url = req.url!;
      if (url.includes('cookie.js')) res.writeHead(200, { 'Set-Cookie': 'visitor=1', 'Content-Length': 2 }).end('//');
      else if (url.includes('vary.js')) res.writeHead(200, { Vary: 'Accept-Encoding', 'Content-Length': 2 }).end('//');
      else return false;
      return true;
    };
    const cookie = await get('/bokeh/static/js/cookie.js?v=1');
    expect(cookie.headers.get('set-cookie')).toBe('visitor=1');
    expect((await get('/bokeh/static/js/cookie.js?v=1')).headers.get('x-cache')).toBe('BYPASS');
    expect((await get('/bokeh/static/js/vary.js?v=1')).headers.get('x-cache')).toBe('BYPASS');
    expect((await get('/bokeh/static/js/vary.js?v=1')).headers.get('x-cache')).toBe('BYPASS');
  });

  test('paths that routes.ts refuses are refused before the cache', async () => {
    const res = await get('/bokeh/static/js%2fbokeh.min.js?v=1', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(400);
    expect(upstream.seen).toHaveLength(0);
  });
});

describe('size', () => {
  test('the cache holds at most STATIC_CACHE_BYTES, dropping the least recently used file', async () => {
    await gateway.close();
    gateway = await gatewayFor(upstream, { STATIC_CACHE_BYTES: String(MIB) });
    const urls = ['a', 'b', 'c'].map((name) => {
      const body = file(400_000, name);
      upstream.files.set(`static/js/${name}.js`, body);
      return `/bokeh/static/js/${name}.js?v=${version(body)}`;
    });
    for (const url of urls) expect((await get(url)).headers.get('x-cache')).toBe('MISS');
    // a was dropped to make room for c; b and c are held.
    expect((await get(urls[1]!)).headers.get('x-cache')).toBe('HIT');
    expect((await get(urls[2]!)).headers.get('x-cache')).toBe('HIT');
    expect((await get(urls[0]!)).headers.get('x-cache')).toBe('MISS');
  });

  test('a file larger than the cache is passed on whole', async () => {
    await gateway.close();
    gateway = await gatewayFor(upstream, { STATIC_CACHE_BYTES: String(MIB) });
    const big = file(MIB + 1, 'big');
    upstream.files.set('static/js/big.js', big);
    const url = `/bokeh/static/js/big.js?v=${version(big)}`;
    for (let i = 0; i < 2; i += 1) {
      const res = await get(url);
      expect(res.headers.get('x-cache')).toBe('BYPASS');
      expect((await bodyOf(res)).equals(big)).toBe(true);
    }
  });

  test('STATIC_CACHE_BYTES=0 turns the cache off', async () => {
    await gateway.close();
    gateway = await gatewayFor(upstream, { STATIC_CACHE_BYTES: '0' });
    for (let i = 0; i < 2; i += 1) {
      const res = await get(mainUrl());
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBeNull();
      expect((await bodyOf(res)).equals(main)).toBe(true);
    }
    expect(upstream.seen).toHaveLength(2);
  });
});

describe('Bokeh failing on a miss', () => {
  test("an unreachable Bokeh gets the proxy's 503, naming it", async () => {
    await upstream.close();
    const res = await get(mainUrl(), { headers: { accept: 'application/json' } });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'BOKEH_UNAVAILABLE', message: expect.stringContaining('[ECONNREFUSED]') });
  });

  test('a Bokeh that does not answer is a 504 after one timeout, not two', async () => {
    await gateway.close();
    gateway = await gatewayFor(upstream, { UPSTREAM_TIMEOUT_MS: '1000' });
    const hold = upstream.hold();
    try {
      const started = Date.now();
      const res = await get(mainUrl(), { headers: { accept: 'application/json' } });
      expect(res.status).toBe(504);
      expect(await res.json()).toMatchObject({ error: 'BOKEH_TIMEOUT' });
      expect(Date.now() - started).toBeLessThan(1_900);
      expect(upstream.seen).toHaveLength(1);
    } finally {
      hold.release();
    }
  });

  test('a Bokeh that stops in the middle of a file is a 504, and nothing is kept', async () => {
    await gateway.close();
    gateway = await gatewayFor(upstream, { UPSTREAM_TIMEOUT_MS: '1000' });
    upstream.override = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/javascript', 'Content-Length': 1000 });
      res.write('// the first bytes');
      return true;
    };
    for (let i = 0; i < 2; i += 1) {
      const res = await get(mainUrl(), { headers: { accept: 'application/json' } });
      expect(res.status).toBe(504);
      expect(await res.json()).toMatchObject({ error: 'BOKEH_TIMEOUT' });
    }
    expect(upstream.seen).toHaveLength(2);
  });
});
