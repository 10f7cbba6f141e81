/**
 * What the gateway lets through under the Bokeh prefix: Bokeh's static files and, for each app
 * in BOKEH_APPS, the routes Bokeh defines for it (src/bokeh/server/urls.py). Everything else is
 * refused here with a reason, before Bokeh sees it: apps not listed, Bokeh's own index, paths
 * that try to climb out of a folder, and methods Bokeh never uses.
 */
import type { ErrorCode, GatewayError } from './errors.js';

export type BokehRoute =
  /** Bokeh's own page for an app, which creates a session. */
  | { kind: 'document'; app: string }
  /** The script that embeds an app elsewhere, which creates a session. */
  | { kind: 'autoload'; app: string }
  | { kind: 'metadata'; app: string }
  | { kind: 'websocket'; app: string }
  /** An app's own static/ folder, or Bokeh's static files (app undefined). */
  | { kind: 'static'; app: string | undefined };

export type RouteResult = { ok: true; route: BokehRoute } | { ok: false; error: GatewayError };

const READ_METHODS = new Set(['GET', 'HEAD']);
/** Bokeh's autoload handler answers CORS preflights, so embedding pages on other origins can use it. */
const AUTOLOAD_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function refuse(status: number, code: ErrorCode, message: string, headers?: Record<string, string>): RouteResult {
  return { ok: false, error: { status, code, message, ...(headers ? { headers } : {}) } };
}

/**
 * Decodes a path segment, refusing what no Bokeh URL contains and what path tricks rely on:
 * dot segments (also percent-encoded), encoded slashes and backslashes, control characters.
 */
function decodeSegment(raw: string): { value: string } | { problem: string } {
  if (raw === '') return { problem: 'empty path segments ("//")' };
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    return { problem: 'malformed percent-encoding' };
  }
  if (value === '.' || value === '..') return { problem: 'dot segments ("." and "..")' };
  if (/[/\\]/.test(value)) return { problem: 'encoded slashes or backslashes' };
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses
  if (/[\x00-\x1f\x7f]/.test(value)) return { problem: 'control characters' };
  if (value.includes('%')) return { problem: 'double percent-encoding' };
  return { value };
}

/**
 * Classifies a request under the prefix. `pathname` is the raw (still percent-encoded) path;
 * `apps` are the apps users may reach.
 */
export function classifyBokehRequest(method: string, pathname: string, prefix: string, apps: readonly string[]): RouteResult {
  const rest = pathname.slice(prefix.length);
  // "/bokeh" and "/bokeh/" are Bokeh's index of every app it serves, listed or not.
  if (rest === '' || rest === '/')
    return refuse(404, 'NOT_FOUND', `Bokeh's index is not served; the apps are ${apps.map((app) => `${prefix}/${app}`).join(', ')}.`);
  const segments = rest.split('/').slice(1);
  // A trailing slash is fine ("/bokeh/sliders/" is Bokeh's page); every other segment is checked.
  if (segments.at(-1) === '') segments.pop();
  const parts: string[] = [];
  for (const segment of segments) {
    const decoded = decodeSegment(segment);
    if ('problem' in decoded) return refuse(400, 'BAD_PATH', `Paths under ${prefix} may not contain ${decoded.problem}.`);
    parts.push(decoded.value);
  }

  let route: BokehRoute | undefined;
  const [first, second, ...more] = parts;
  if (first === 'static' && parts.length >= 2) {
    route = { kind: 'static', app: undefined };
  } else if (first !== undefined && apps.includes(first)) {
    if (second === undefined) route = { kind: 'document', app: first };
    else if (more.length === 0 && second === 'autoload.js') route = { kind: 'autoload', app: first };
    else if (more.length === 0 && second === 'metadata') route = { kind: 'metadata', app: first };
    else if (more.length === 0 && second === 'ws') route = { kind: 'websocket', app: first };
    else if (second === 'static' && more.length > 0) route = { kind: 'static', app: first };
  } else if (first !== undefined && first !== 'static') {
    return refuse(404, 'UNKNOWN_APP', `There is no app named "${first.slice(0, 100)}". Known apps: ${apps.join(', ')}.`);
  }
  if (route === undefined) return refuse(404, 'NOT_FOUND', `Bokeh serves nothing at ${pathname.slice(0, 200)}. Apps live at ${prefix}/<app>.`);

  const allowed = route.kind === 'autoload' ? AUTOLOAD_METHODS : READ_METHODS;
  if (route.kind !== 'websocket' && !allowed.has(method)) {
    const list = [...allowed].join(', ');
    return refuse(405, 'METHOD_NOT_ALLOWED', `${method.slice(0, 20)} is not allowed here; Bokeh answers ${list}.`, { Allow: list });
  }
  return { ok: true, route };
}
