/**
 * Bokeh embedding, done the way `bokeh.embed.server_document` does it: a script fetches
 * APP_URL/autoload.js with the element id, the app path and the public absolute URL, then runs
 * it. BokehJS derives its static and WebSocket URLs from `bokeh-absolute-url`, so that URL must
 * be the public one (see forwarded.ts).
 */
import { randomBytes } from 'node:crypto';
import { appPath } from './bokeh-paths.js';

export interface EmbedTarget {
  /** Public origin, e.g. "https://dash.example.com". */
  origin: string;
  /** Bokeh's --prefix, e.g. "/bokeh". */
  prefix: string;
  app: string;
  /** Arguments for the app (`curdoc().session_context.request.arguments`). */
  args?: Iterable<[string, string]>;
}

/** Bokeh element ids only need to be unique on the page and safe in CSS selectors. */
export function newElementId(): string {
  return `bk-${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}

export function autoloadUrl(target: EmbedTarget, elementId: string): string {
  const path = appPath(target.prefix, target.app);
  const absolute = `${target.origin}${path}`;
  const query = new URLSearchParams({
    'bokeh-autoload-element': elementId,
    'bokeh-app-path': path,
    'bokeh-absolute-url': absolute,
  });
  for (const [name, value] of target.args ?? []) {
    // Bokeh reserves the bokeh-* names for itself; server_document drops them the same way.
    if (!name.startsWith('bokeh-')) query.append(name, value);
  }
  return `${absolute}/autoload.js?${query.toString()}`;
}

/** A JS string literal that is also safe inside an HTML <script> element. */
function scriptString(value: string): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * The `<script>` element that loads and renders an app in place. It fetches autoload.js with
 * XHR rather than `<script src>` so that headers can be added later (Bokeh's server_session adds
 * Bokeh-Session-Id the same way).
 */
export function embedScript(target: EmbedTarget, options: { elementId?: string; nonce?: string } = {}): string {
  const elementId = options.elementId ?? newElementId();
  const nonce = options.nonce === undefined ? '' : ` nonce="${options.nonce}"`;
  return `<script id="${elementId}"${nonce}>
(function () {
  var xhr = new XMLHttpRequest();
  xhr.responseType = "blob";
  xhr.open("GET", ${scriptString(autoloadUrl(target, elementId))}, true);
  xhr.onload = function () {
    if (xhr.status !== 200) return failed("HTTP " + xhr.status);
    var script = document.createElement("script");
    script.src = URL.createObjectURL(xhr.response);
    document.body.appendChild(script);
  };
  xhr.onerror = function () { failed("network error"); };
  function failed(why) {
    var note = document.createElement("p");
    note.className = "bk-embed-error";
    note.setAttribute("role", "alert");
    note.textContent = "The Bokeh app could not be loaded (" + why + "). Reload the page to try again.";
    var self = document.getElementById(${scriptString(elementId)});
    self.parentNode.insertBefore(note, self);
  }
  xhr.send();
})();
</script>`;
}
