/**
 * Bokeh's versioned static files, answered from memory. Pages load BokehJS as
 * `<prefix>/static/js/bokeh.min.js?v=<SHA-512 of the file>`, and Tornado marks such answers as
 * cacheable for ten years: the URL names one exact content. The gateway keeps one copy of each
 * and answers every later request for it without a trip to Bokeh; Node streaming a 1.3 MB body
 * from Bokeh was what limited the proxy's rate for these files.
 *
 * Only GET and HEAD for routes.ts's `static` routes whose query is a single `v` parameter are
 * cached. Unversioned URLs change content when Bokeh is upgraded, so they always go to Bokeh.
 * Anything the cache would not keep (not a 200, a Set-Cookie, a Vary or encoded body, a file too
 * large) and any failure to reach Bokeh goes on to the proxy, so those answers and errors are
 * exactly the proxy's.
 *
 * A compressible file is kept with its gzip and brotli copies, each made once (compression.ts):
 * gzip while the first request waits, brotli at its best quality after the file is stored, one
 * file at a time (about 3 s for BokehJS's largest), so the first requests after a start go out
 * gzipped. Each request gets the copy its Accept-Encoding prefers among those made, with that
 * copy's length and ETag, and STATIC_CACHE_BYTES counts every copy.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { brotliVariant, chooseEncoding, ENCODINGS, gzipVariant, variantEtag, type Variants } from './compression.js';
import type { Config } from './config.js';
import { sendError, timeOutAs504, upstreamError } from './errors.js';
import type { Upstream, Upstreams } from './upstream.js';

/**
 * Largest file kept. BokehJS's largest file (bokeh-mathjax.min.js, Bokeh 3.9) is 1.8 MB; the cap
 * keeps one large file from an app's static folder from pushing everything else out.
 */
export const MAX_ENTRY_BYTES = 8 * 1024 * 1024;
/** Bounds the count as well as the bytes, so that many tiny files cost bookkeeping only so far. */
const MAX_ENTRIES = 10_000;
/**
 * The query of a URL Bokeh versions: `v=` and Tornado's 128-character hex digest. Other
 * characters or other parameters are passed on uncached, so each file has one key.
 */
const VERSIONED_QUERY = /^v=[A-Za-z0-9_-]{1,256}$/;
/** What Bokeh sends for a static file that a browser needs again; Node sets Date itself. */
const REPLAYED_HEADERS = ['content-type', 'etag', 'last-modified', 'cache-control', 'expires', 'accept-ranges'] as const;
/** What a 304 carries (RFC 9110, 15.4.5), as Tornado sends it. */
const NOT_MODIFIED_HEADERS = ['etag', 'last-modified', 'cache-control', 'expires', 'accept-ranges'] as const;

/** `X-Cache` on static answers: from memory, fetched and kept now, or passed on to the proxy. */
export type CacheState = 'HIT' | 'MISS' | 'BYPASS';

interface Entry {
  headers: Partial<Record<(typeof REPLAYED_HEADERS)[number], string>>;
  body: Buffer;
  /** The encoded copies of `body`, each smaller than it; none when compression is off or pointless. */
  variants: Variants;
  /** Last-Modified in ms, for If-Modified-Since. */
  lastModified: number | undefined;
  /** Whether the brotli copy is still being made. */
  brotliPending?: boolean;
  storedAt: number;
}

/** A fetch for the cache: an entry, a reason to leave the request to the proxy, or a timeout. */
type Fetched = { entry: Entry } | { passOn: string } | { timeout: NodeJS.ErrnoException; upstream: string };

/** The cache key for a request the cache may answer, or undefined to pass it on. */
export function versionedKey(url: string): string | undefined {
  const query = url.indexOf('?');
  if (query === -1 || !VERSIONED_QUERY.test(url.slice(query + 1))) return undefined;
  return url;
}

/** If-None-Match against the chosen copy's ETag (weak comparison, as RFC 9110 asks for GET), else If-Modified-Since. */
function notModified(req: IncomingMessage, entry: Entry, entityTag: string | undefined): boolean {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch) {
    const etag = entityTag?.replace(/^W\//, '');
    if (etag === undefined) return false;
    return (ifNoneMatch.match(/\*|(?:W\/)?"[^"]*"/g) ?? []).some((tag) => tag === '*' || tag.replace(/^W\//, '') === etag);
  }
  const ifModifiedSince = req.headers['if-modified-since'];
  if (ifModifiedSince && entry.lastModified !== undefined) {
    const since = Date.parse(ifModifiedSince);
    return !Number.isNaN(since) && since >= entry.lastModified;
  }
  return false;
}

function answer(req: IncomingMessage, res: Response, entry: Entry, state: CacheState): void {
  const available = ENCODINGS.filter((name) => entry.variants[name] !== undefined);
  const encoding = chooseEncoding(req, available);
  const body = encoding === 'identity' ? entry.body : entry.variants[encoding]!;
  const common: OutgoingHttpHeaders = { 'x-cache': state, age: String(Math.floor((Date.now() - entry.storedAt) / 1000)) };
  // Every answer for a file kept in several encodings depends on Accept-Encoding, the 304s too.
  if (available.length > 0) common.vary = 'Accept-Encoding';
  const own: Entry['headers'] = { ...entry.headers, etag: variantEtag(entry.headers.etag, encoding) };
  // A browser that takes brotli gets a lesser copy until the brotli one is made: fine for its
  // own cache, but a shared cache in front (NGINX's proxy_cache, a CDN) would keep that copy for
  // everyone with the same Accept-Encoding.
  if (entry.brotliPending && encoding !== 'br' && chooseEncoding(req, ['br']) === 'br') own['cache-control'] = privateCopy(own['cache-control']);
  // Ranges go to Bokeh, which answers them from the identity file only.
  if (encoding !== 'identity') delete own['accept-ranges'];
  if (own.etag === undefined) delete own.etag;
  if (notModified(req, entry, own.etag)) {
    const headers: OutgoingHttpHeaders = { ...common };
    for (const name of NOT_MODIFIED_HEADERS) if (own[name] !== undefined) headers[name] = own[name];
    res.writeHead(304, headers).end();
    return;
  }
  const headers: OutgoingHttpHeaders = { ...own, ...common, 'content-length': body.length };
  if (encoding !== 'identity') headers['content-encoding'] = encoding;
  res.writeHead(200, headers);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** Cache-Control for a copy only the browser's own cache may keep, as long as Bokeh allows. */
function privateCopy(cacheControl: string | undefined): string {
  const directives = (cacheControl ?? '')
    .split(',')
    .map((directive) => directive.trim())
    .filter((directive) => directive !== '' && !/^(public|private|s-maxage=.*)$/i.test(directive));
  return ['private', ...directives].join(', ');
}

/** The bytes of a file and of its copies. */
function entrySize(entry: Entry): number {
  // A brotli copy still being made is counted at the gzip copy's size, which it does not exceed
  // (addBrotli), so that adding it later never takes the cache past its bound.
  const reserved = entry.brotliPending ? (entry.variants.gzip?.length ?? 0) : 0;
  return ENCODINGS.reduce((sum, name) => sum + (entry.variants[name]?.length ?? 0), entry.body.length + reserved);
}

/**
 * Express middleware, mounted after bokehGate (which refuses bad paths and puts the route on
 * `res.locals.bokehRoute`) and before the proxy. Fetches use the upstreams' keep-alive pools,
 * as the proxy does.
 */
export function staticCache(config: Config, upstreams: Upstreams, log: Logger) {
  const maxEntryBytes = Math.min(MAX_ENTRY_BYTES, config.staticCacheBytes);
  const cache = new LRUCache<string, Entry>({
    max: MAX_ENTRIES,
    maxSize: config.staticCacheBytes,
    // The bodies dominate; the key and headers are counted so that tiny files are not free.
    sizeCalculation: (entry, key) => entrySize(entry) + key.length + JSON.stringify(entry.headers).length,
  });
  /** Fetches under way, so that concurrent misses for one URL make one request to Bokeh. */
  const pending = new Map<string, Promise<Fetched>>();

  const fetchEntry = (key: string, from: Upstream): Promise<Fetched> =>
    new Promise((resolve) => {
      const upstream = from.request(key, {
        // No conditional or range headers: the cache wants the whole file. Identity, so the
        // body fits every client (Bokeh does not compress anyway).
        headers: { 'accept-encoding': 'identity' },
      });
      // The proxy's timer: no byte from Bokeh for this long ends the fetch as a timeout.
      timeOutAs504(upstream, config.upstreamTimeoutMs);
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        resolve(err.code === 'ETIMEDOUT' ? { timeout: err, upstream: from.origin } : { passOn: `Bokeh request failed (${err.code ?? err.message})` });
      });
      upstream.on('response', (res) => {
        const declared = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
        const encoding = res.headers['content-encoding'] ?? 'identity';
        const refusal =
          res.statusCode !== 200
            ? `status ${res.statusCode}`
            : res.headers['set-cookie'] !== undefined
              ? 'it sets a cookie'
              : res.headers.vary !== undefined
                ? 'it varies by request headers'
                : encoding !== 'identity'
                  ? `it is encoded (${encoding})`
                  : declared !== undefined && declared > maxEntryBytes
                    ? `${declared} bytes is over the ${maxEntryBytes} byte limit per file`
                    : undefined;
        if (refusal !== undefined) {
          // A short body is read to its end so the connection goes back to the pool.
          if (declared !== undefined && declared <= 64 * 1024) res.resume();
          else upstream.destroy();
          resolve({ passOn: refusal });
          return;
        }
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          length += chunk.length;
          if (length > maxEntryBytes) {
            upstream.destroy();
            resolve({ passOn: `over the ${maxEntryBytes} byte limit per file` });
            return;
          }
          chunks.push(chunk);
        });
        // 'close' comes after 'end' (and before the copies are made), so it settles only a body
        // that never ended.
        let ended = false;
        const cut = () => {
          if (!ended) resolve({ passOn: 'Bokeh closed the connection during the body' });
        };
        res.on('error', cut);
        res.on('close', cut);
        res.on('end', () => {
          ended = true;
          if (!res.complete || (declared !== undefined && length !== declared)) {
            resolve({ passOn: 'the body was cut short' });
            return;
          }
          const headers: Entry['headers'] = {};
          for (const name of REPLAYED_HEADERS) {
            const value = res.headers[name];
            if (typeof value === 'string') headers[name] = value;
          }
          const modified = headers['last-modified'] === undefined ? Number.NaN : Date.parse(headers['last-modified']);
          const body = Buffer.concat(chunks, length);
          const entry = (variants: Variants): Fetched => ({
            entry: { headers, body, variants, lastModified: Number.isNaN(modified) ? undefined : modified, storedAt: Date.now() },
          });
          // zlib failing leaves the file itself, which is still worth keeping.
          gzipVariant(config, body, headers['content-type']).then(
            (variants) => resolve(entry(variants)),
            (err: Error) => {
              log.warn({ url: key, err: { message: err.message } }, 'static file not compressed');
              resolve(entry({}));
            },
          );
        });
      });
      upstream.end();
    });

  /** One brotli copy at a time: the zlib work runs on libuv's pool, which DNS lookups share. */
  let brotliQueue: Promise<void> = Promise.resolve();
  /**
   * Adds the brotli copy to a stored entry once it is made, if the entry is still stored and the
   * copy is no larger than the gzip one it was counted as. The entry changes in place: the cache
   * counted it with the copy already, and a copy made in the background is no use of the file,
   * so it keeps its place among the least recently used. The copy's bytes never change after,
   * so neither does its ETag.
   */
  const addBrotli = (key: string, entry: Entry): void => {
    brotliQueue = brotliQueue.then(async () => {
      try {
        if (cache.peek(key) !== entry) return;
        const { br } = await brotliVariant(config, entry.body, entry.headers['content-type']);
        if (br === undefined || br.length > (entry.variants.gzip?.length ?? 0) || cache.peek(key) !== entry) return;
        entry.variants.br = br;
        log.debug({ url: key, brBytes: br.length, cachedBytes: cache.calculatedSize }, 'static file compressed with brotli');
      } catch (err) {
        log.warn({ url: key, err: { message: (err as Error).message } }, 'static file not compressed with brotli');
      } finally {
        entry.brotliPending = false;
      }
    });
  };

  return (req: Request, res: Response, next: NextFunction): void => {
    const route = res.locals.bokehRoute;
    if (route?.kind !== 'static' || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    const key = versionedKey(req.url);
    // Range requests are rare for scripts; Bokeh answers them with 206 through the proxy.
    if (key === undefined || req.headers.range !== undefined) {
      res.setHeader('x-cache', 'BYPASS' satisfies CacheState);
      return next();
    }
    const hit = cache.get(key);
    if (hit !== undefined) return answer(req, res, hit, 'HIT');

    let fetching = pending.get(key);
    if (fetching === undefined) {
      fetching = fetchEntry(key, upstreams.any()).then((fetched) => {
        pending.delete(key);
        if ('entry' in fetched) {
          const { entry } = fetched;
          entry.brotliPending = config.compression && entry.variants.gzip !== undefined;
          // A file that fits only without its copies is kept without them.
          if (entrySize(entry) > config.staticCacheBytes) [entry.variants, entry.brotliPending] = [{}, false];
          cache.set(key, entry);
          if (entry.brotliPending) addBrotli(key, entry);
          const { body, variants } = fetched.entry;
          log.debug({ url: key, bytes: body.length, gzipBytes: variants.gzip?.length, cachedBytes: cache.calculatedSize }, 'static file cached');
        } else if ('passOn' in fetched) {
          log.debug({ url: key, reason: fetched.passOn }, 'static file not cached');
        }
        return fetched;
      });
      pending.set(key, fetching);
    }
    fetching
      .then((fetched) => {
        if ('entry' in fetched) return answer(req, res, fetched.entry, 'MISS');
        if ('timeout' in fetched) {
          // Asking again through the proxy would make the visitor wait a second timeout.
          const error = upstreamError(fetched.timeout, fetched.upstream);
          log.warn({ err: { message: fetched.timeout.message, code: fetched.timeout.code }, url: req.url, status: error.status }, 'bokeh request failed');
          return sendError(req, res, error);
        }
        res.setHeader('x-cache', 'BYPASS' satisfies CacheState);
        next();
      })
      .catch(next);
  };
}
