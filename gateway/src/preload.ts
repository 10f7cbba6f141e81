/**
 * Preload hints for the app pages: the versioned BokehJS files an app's autoload.js has the
 * browser load, named in the page's `<head>` as `<link rel="preload" as="script">`, so the
 * browser fetches them while it waits for autoload.js (which makes a Bokeh session first)
 * instead of after it. autoload.js adds them as classic `<script>` elements without
 * `crossorigin`, which is what `as="script"` without `crossorigin` matches, in Chromium and
 * Firefox alike: each file is fetched once.
 *
 * The list is learnt from the autoload.js answers passing through the gateway, not configured:
 * Bokeh decides which files an app needs, and their `?v=` hashes change with Bokeh's version.
 * The first page of an app after a start has no hints; every later one names what the latest
 * autoload.js named. Only paths are kept: the browser resolves them against the page's origin,
 * which is the origin autoload.js builds its URLs from.
 */
import type { IncomingMessage } from 'node:http';
import { escapeHtml } from './html.js';

/** autoload.js is a few KB; an answer larger than this is not read for hints. */
const MAX_SCANNED_BYTES = 256 * 1024;
/** At most this many files are hinted: Bokeh 3.9 names five. */
const MAX_HINTS = 16;

/** A versioned BokehJS script in autoload.js: `<origin><prefix>/static/js/<file>.js?v=<hash>`. */
function scriptPaths(js: string, prefix: string): string[] {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`https?://[^\\s"'\`/]+(${escaped}/static/js/[\\w.-]+\\.js\\?v=[0-9A-Za-z_-]+)`, 'g');
  return [...new Set([...js.matchAll(pattern)].map((match) => match[1]!))].slice(0, MAX_HINTS);
}

export class PreloadHints {
  private readonly byApp = new Map<string, string[]>();

  constructor(private readonly prefix: string) {}

  /**
   * Reads a copy of an autoload.js answer for `app` as it streams to the browser (it is never
   * held back) and keeps the scripts it names. Other answers (not 200, encoded, too long) are
   * left as they are and change nothing.
   */
  watch(app: string, answer: IncomingMessage): void {
    const encoding = answer.headers['content-encoding'];
    if (answer.statusCode !== 200 || (encoding !== undefined && encoding !== 'identity')) return;
    const chunks: Buffer[] = [];
    let length = 0;
    const collect = (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_SCANNED_BYTES) {
        answer.off('data', collect);
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    };
    answer.on('data', collect);
    answer.once('end', () => {
      if (length > MAX_SCANNED_BYTES || !answer.complete) return;
      const paths = scriptPaths(Buffer.concat(chunks).toString('utf8'), this.prefix);
      if (paths.length > 0) this.byApp.set(app, paths);
    });
  }

  /** The versioned script paths last seen for `app`; none before its first autoload.js. */
  paths(app: string): string[] {
    return this.byApp.get(app) ?? [];
  }

  /** The `<link>` elements for an app page's `<head>`. */
  links(app: string): string {
    return this.paths(app)
      .map((path) => `<link rel="preload" as="script" href="${escapeHtml(path)}">`)
      .join('\n  ');
  }
}
