/**
 * Compressed answers. Bokeh's Tornado sends everything uncompressed, BokehJS included (1.3 MB of
 * script), and in the bare-dev layout and the PaaS image nothing in front of the gateway
 * compresses, so the gateway does: brotli or gzip, as the browser's Accept-Encoding prefers.
 *
 * Two ways, one rule for choosing the encoding:
 * - `gzipVariant` and `brotliVariant` make the encoded copies of one body once, for the static
 *   cache (static-cache.ts), which keeps them beside the file and picks one per request with
 *   `chooseEncoding`. Each variant has its own ETag (`variantEtag`) and Content-Length.
 * - `compressOnTheFly` compresses every other compressible answer (app pages, autoload.js,
 *   unversioned static files, metadata) as it streams through, with Express's `compression`
 *   middleware: it wraps `res.write`/`res.end`, so the proxies' piped streams are compressed chunk
 *   by chunk with backpressure and never buffered whole.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import compressible from 'compressible';
import compression from 'compression';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import Negotiator from 'negotiator';
import onHeaders from 'on-headers';
import type { Config } from './config.js';

/** The encodings the gateway makes, best first: brotli is 20% smaller than gzip on BokehJS. */
export const ENCODINGS = ['br', 'gzip'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/**
 * Brotli quality for stored files, made once per file and version: the smallest brotli makes.
 * For bokeh.min.js, 11 makes 280 KB of its 1.27 MB where 9 makes 307 KB, and across the five
 * BokehJS files 10% fewer bytes than 9, but it takes 2.7 s for that file: too long for the first
 * visitor after a start to wait, so it is made after the file is stored (static-cache.ts).
 */
const STORED_BROTLI_QUALITY = 11;
/** Per request, speed matters more than the last percent: `compression`'s own default. */
const ON_THE_FLY_BROTLI_QUALITY = 4;

const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

/** Statuses whose body is not the whole representation (206) or is none (204, 304). */
const NOT_COMPRESSED_STATUS = new Set([204, 206, 304]);

/** Whether a Content-Type is worth compressing (text, scripts, JSON, SVG...), per mime-db. */
export function compressibleType(contentType: string | undefined): boolean {
  // mime-db calls event streams compressible, but zlib would hold each event back until it has a block.
  return contentType !== undefined && !/^text\/event-stream\b/i.test(contentType) && compressible(contentType) === true;
}

/**
 * The encoding for this request among those `available`, by the q-values of its Accept-Encoding
 * (RFC 9110, 12.5.3), ties going to ENCODINGS' order. Identity when nothing else is acceptable,
 * even when the client refuses identity too: a body it may not decode helps nobody.
 */
export function chooseEncoding(req: IncomingMessage, available: readonly Encoding[]): Encoding | 'identity' {
  if (available.length === 0 || req.headers['accept-encoding'] === undefined) return 'identity';
  const offered = [...available, 'identity'];
  // negotiator 1.0's `preferred` option, which its published types do not declare yet.
  const negotiator = new Negotiator(req) as unknown as { encodings(available: string[], options: { preferred: string[] }): string[] };
  const best = negotiator.encodings(offered, { preferred: offered })[0];
  return best === undefined ? 'identity' : (best as Encoding | 'identity');
}

/**
 * The ETag of an encoded variant: the file's own tag with the encoding before the closing quote,
 * as Apache's mod_deflate does (`"abc"` becomes `"abc-br"`), so that caches and If-None-Match
 * never mistake one variant's bytes for another's.
 */
export function variantEtag(etag: string | undefined, encoding: Encoding | 'identity'): string | undefined {
  if (etag === undefined || encoding === 'identity') return etag;
  const tagged = /^(W\/)?"(.*)"$/.exec(etag);
  return tagged === null ? undefined : `${tagged[1] ?? ''}"${tagged[2]}-${encoding === 'gzip' ? 'gz' : 'br'}"`;
}

/** Encoded copies of a stored file, only those smaller than the file itself. */
export type Variants = Partial<Record<Encoding, Buffer>>;

/** Whether a file to store gets encoded copies: compression on, a compressible type, large enough. */
function worthCompressing(config: Config, body: Buffer, contentType: string | undefined): boolean {
  return config.compression && body.length >= config.compressionMinBytes && compressibleType(contentType);
}

/** The gzip copy of a file to store, made while its first request waits (0.06 s for bokeh.min.js). */
export async function gzipVariant(config: Config, body: Buffer, contentType: string | undefined): Promise<Variants> {
  if (!worthCompressing(config, body, contentType)) return {};
  const gz = await gzipped(body, { level: constants.Z_BEST_COMPRESSION });
  return gz.length < body.length ? { gzip: gz } : {};
}

/** The brotli copy of a stored file, at the best quality: made after the file is stored. */
export async function brotliVariant(config: Config, body: Buffer, contentType: string | undefined): Promise<Variants> {
  if (!worthCompressing(config, body, contentType)) return {};
  const br = await brotli(body, { params: { [constants.BROTLI_PARAM_QUALITY]: STORED_BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } });
  return br.length < body.length ? { br } : {};
}

/**
 * Express middleware that compresses compressible answers of at least COMPRESSION_MIN_BYTES as
 * they stream. `compression` itself leaves out HEAD, answers with a Content-Encoding already,
 * `Cache-Control: no-transform` and sizes declared below the threshold (a chunked body of unknown
 * length is compressed); the filter adds what it does not check: a 206's body is a byte range of
 * the identity file, and 204/304 have none. The ETag of a compressed answer is made weak, as
 * NGINX's gzip does: the bytes are no longer those the origin tagged.
 */
export function compressOnTheFly(config: Config): RequestHandler {
  /** Answers that passed the filter while still unencoded, so that an encoding set after is ours. */
  const mayCompress = new WeakSet<ServerResponse>();
  const compress = compression({
    threshold: config.compressionMinBytes,
    brotli: { params: { [constants.BROTLI_PARAM_QUALITY]: ON_THE_FLY_BROTLI_QUALITY } },
    filter: (_req: IncomingMessage, res: ServerResponse) => {
      const ok =
        !NOT_COMPRESSED_STATUS.has(res.statusCode) &&
        res.getHeader('content-encoding') === undefined &&
        compressibleType(res.getHeader('content-type')?.toString());
      if (ok) mayCompress.add(res);
      return ok;
    },
  });
  return (req: Request, res: Response, next: NextFunction): void => {
    // Registered before `compression`'s own listener, so it runs after it and sees its decision.
    onHeaders(res, () => {
      if (!mayCompress.has(res) || res.getHeader('content-encoding') === undefined) return;
      const etag = res.getHeader('etag');
      if (typeof etag === 'string' && !etag.startsWith('W/')) res.setHeader('etag', `W/${etag}`);
    });
    compress(req, res, next);
  };
}
