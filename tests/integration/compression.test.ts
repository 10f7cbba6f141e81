/**
 * Compression in the bare-dev layout: BokehJS as the gateway serves it in each encoding, checked
 * against the bytes Bokeh itself serves, and the requests around it (HEAD, ranges, revalidation)
 * as a browser and a download manager make them. Bodies are read with node:http, which leaves
 * them encoded as they came.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { autoloadSrc, bokehJsUrls } from '../../client/bokeh-client.js';
import { untilBrotli, useStack } from '../support/stack.js';

const stack = useStack();

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function raw(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');
const decode = (res: Raw) =>
  res.headers['content-encoding'] === 'br' ? brotliDecompressSync(res.body) : res.headers['content-encoding'] === 'gzip' ? gunzipSync(res.body) : res.body;

/** What Bokeh itself serves for a path, asked from inside the gateway container (Bokeh has no published port). */
async function fromBokeh(path: string): Promise<{ status: number; length: number; sha256: string; etag: string }> {
  const script = `process.getBuiltinModule('node:http').get(${JSON.stringify(`http://bokeh:5006${path}`)}, { headers: { 'accept-encoding': 'identity' } }, (r) => {
    const chunks = [];
    r.on('data', (c) => chunks.push(c));
    r.on('end', () => {
      const body = Buffer.concat(chunks);
      const sha256 = process.getBuiltinModule('node:crypto').createHash('sha256').update(body).digest('hex');
      console.log(JSON.stringify({ status: r.statusCode, length: body.length, sha256, etag: r.headers.etag }));
    });
  })`;
  const result = await stack().container('gateway').exec(['node', '-e', script]);
  expect(result.exitCode).toBe(0);
  return JSON.parse(result.stdout) as { status: number; length: number; sha256: string; etag: string };
}

/** The versioned BokehJS files an app's autoload.js loads, read from a fresh session. */
async function versionedFiles(): Promise<string[]> {
  const page = await raw(`${stack().url}/apps/sliders`);
  const js = await raw(autoloadSrc(page.body.toString()));
  expect(js.status).toBe(200);
  const urls = bokehJsUrls(js.body.toString()).filter((url) => url.includes('?v='));
  expect(urls.find((url) => url.includes('/bokeh.min.js?v='))).toBeDefined();
  return urls;
}

describe('versioned BokehJS files', () => {
  test("every encoding decodes to Bokeh's own bytes, with its own length, ETag and Vary", async () => {
    const sizes: string[] = [];
    for (const url of await versionedFiles()) {
      const { pathname, search } = new URL(url);
      const bokeh = await fromBokeh(`${pathname}${search}`);
      expect(bokeh.status).toBe(200);
      const identity = await raw(url, { 'accept-encoding': 'identity' });
      expect(identity.headers['content-encoding']).toBeUndefined();
      expect(sha256(identity.body)).toBe(bokeh.sha256);
      expect(identity.headers.etag).toBe(bokeh.etag);
      const tags = new Set([identity.headers.etag]);
      const lengths = [`${identity.body.length}`];
      for (const encoding of ['br', 'gzip']) {
        const ask = () => raw(url, { 'accept-encoding': encoding });
        const res = encoding === 'br' ? await untilBrotli(ask) : await ask();
        expect(res.status).toBe(200);
        expect(res.headers['x-cache']).toBe('HIT');
        expect(res.headers['content-encoding']).toBe(encoding);
        expect(res.headers.vary).toBe('Accept-Encoding');
        expect(Number(res.headers['content-length'])).toBe(res.body.length);
        expect(res.body.length).toBeLessThan(bokeh.length / 2);
        expect(sha256(decode(res))).toBe(bokeh.sha256);
        tags.add(res.headers.etag);
        lengths.push(`${encoding} ${res.body.length}`);
      }
      // Three representations, three tags.
      expect(tags.size).toBe(3);
      sizes.push(`${pathname.split('/').pop()}: ${lengths.join(', ')}`);
    }
    // The sizes the report quotes: identity, brotli and gzip bytes of each file.
    console.log(sizes.join('\n'));
  }, 60_000);

  test('a browser gets brotli; a client that accepts no encoding gets the file itself', async () => {
    const [url] = await versionedFiles();
    const browser = await untilBrotli(() => raw(url!, { 'accept-encoding': 'gzip, deflate, br, zstd' }));
    expect(browser.headers['content-encoding']).toBe('br');
    for (const headers of [
      {} as Record<string, string>,
      { 'accept-encoding': 'identity' },
      { 'accept-encoding': 'br;q=0, gzip;q=0' },
      { 'accept-encoding': 'compress' },
    ]) {
      const res = await raw(url!, headers);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(sha256(res.body)).toBe(sha256(decode(browser)));
    }
  });

  test('HEAD carries the headers of the encoding a GET would get, and no body', async () => {
    const [url] = await versionedFiles();
    const get = await untilBrotli(() => raw(url!, { 'accept-encoding': 'br' }));
    const head = await raw(url!, { 'accept-encoding': 'br' }, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-encoding']).toBe('br');
    expect(head.headers['content-length']).toBe(String(get.body.length));
    expect(head.headers.etag).toBe(get.headers.etag);
  });

  test('a range comes from Bokeh uncompressed, as 206 with the bytes of the file', async () => {
    const [url] = await versionedFiles();
    const whole = await raw(url!, { 'accept-encoding': 'identity' });
    const part = await raw(url!, { 'accept-encoding': 'br, gzip', range: 'bytes=1000-50999' });
    expect(part.status).toBe(206);
    expect(part.headers['content-encoding']).toBeUndefined();
    expect(part.headers['content-range']).toBe(`bytes 1000-50999/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(1000, 51000))).toBe(true);
  });

  test("If-None-Match gets 304 for the tag of the encoding it would get, and the body for another's", async () => {
    const [url] = await versionedFiles();
    const br = await untilBrotli(() => raw(url!, { 'accept-encoding': 'br' }));
    const gzip = await raw(url!, { 'accept-encoding': 'gzip' });
    const revalidated = await raw(url!, { 'accept-encoding': 'br', 'if-none-match': br.headers.etag! });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.etag).toBe(br.headers.etag);
    expect(revalidated.headers.vary).toBe('Accept-Encoding');
    expect((await raw(url!, { 'accept-encoding': 'gzip', 'if-none-match': gzip.headers.etag! })).status).toBe(304);
    const other = await raw(url!, { 'accept-encoding': 'br', 'if-none-match': gzip.headers.etag! });
    expect(other.status).toBe(200);
    expect(other.headers['content-encoding']).toBe('br');
  });
});

describe('answers compressed as they stream', () => {
  test('the app page and autoload.js come brotli-encoded to a browser, and whole to anyone else', async () => {
    const page = await raw(`${stack().url}/apps/sliders`, { 'accept-encoding': 'gzip, deflate, br' });
    expect(page.status).toBe(200);
    const html = decode(page).toString();
    const autoload = await raw(autoloadSrc(html), { 'accept-encoding': 'gzip, deflate, br' });
    expect(autoload.status).toBe(200);
    expect(autoload.headers['content-encoding']).toBe('br');
    expect(autoload.headers.vary).toMatch(/Accept-Encoding/);
    expect(bokehJsUrls(decode(autoload).toString()).length).toBeGreaterThan(0);
    const plain = await raw(autoloadSrc(html));
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(bokehJsUrls(plain.body.toString()).length).toBeGreaterThan(0);
  });

  test('an unversioned bokeh.min.js is compressed on the way, with a weak ETag', async () => {
    const url = `${stack().url}/bokeh/static/js/bokeh.min.js`;
    const identity = await raw(url, { 'accept-encoding': 'identity' });
    const br = await raw(url, { 'accept-encoding': 'br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.etag).toBe(`W/${identity.headers.etag}`);
    expect(sha256(decode(br))).toBe(sha256(identity.body));
  });
});
