/**
 * Pages that embed Bokeh apps: an index at `/` and one page per app at `/apps/<name>`. Query
 * arguments on an app page are handed on to the app, as `server_document(arguments=...)` would.
 */
import { Router, type Request, type Response } from 'express';
import type { Config } from './config.js';
import { CONNECTION_STATUS_PATH, connectionStatusHtml, sendConnectionStatusScript } from './connection-status.js';
import { appPath } from './bokeh-paths.js';
import { embedScript } from './embed.js';
import { sendError } from './errors.js';
import type { ClientView } from './forwarded.js';
import { page, escapeHtml } from './html.js';
import type { PreloadHints } from './preload.js';

/** "my_app-2" -> "My app 2": a readable default title for an app folder name. */
export function appTitle(name: string): string {
  const words = name.replace(/[-_]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * What a user pastes into an Express app of their own to show `app` from this gateway: the
 * autoload `<script>` that Bokeh's `server_document` describes, as a plain `src`, so it needs no
 * code beside it. BokehJS replaces the element with the app, in place.
 */
export function expressSnippet(origin: string, prefix: string, app: string): string {
  const title = appTitle(app);
  const elementId = `bokeh-${app}`;
  const path = appPath(prefix, app);
  return `// A page of your own Express app that shows the ${title} app from this gateway.
// Your page's origin must be in the gateway's PUBLIC_ORIGINS (after the first entry):
// Bokeh refuses the WebSocket from any other origin.
const ${camel(app)}Url = '${origin}${path}'; // the app's public URL, as browsers reach it
app.get('/report', (_req, res) => {
  const autoload = new URL(\`\${${camel(app)}Url}/autoload.js\`);
  autoload.search = new URLSearchParams({
    'bokeh-autoload-element': '${elementId}', // the id of the <script> element below
    'bokeh-app-path': '${path}',
    'bokeh-absolute-url': ${camel(app)}Url,
  }).toString();
  res.type('html').send(\`<!doctype html>
<title>${title}</title>
<h1>${title}</h1>
<script id="${elementId}" src="\${autoload}"></script>\`);
});`;
}

/** "my_app-2" -> "myApp2", for a variable name in the snippet. */
function camel(name: string): string {
  const parts = name.split(/[-_]+/).filter(Boolean);
  const joined = parts.map((part, i) => (i === 0 ? part : part.charAt(0).toUpperCase() + part.slice(1))).join('');
  return /^[0-9]/.test(joined) ? `app${joined}` : joined;
}

export function pagesRouter(config: Config, view: (req: Request) => ClientView, hints: PreloadHints): Router {
  const router = Router();
  const nav = (current?: string): Array<[string, string, boolean]> => config.apps.map((app) => [`/apps/${app}`, appTitle(app), app === current]);

  const appList = (): string =>
    `<ul class="apps">\n${config.apps
      .map(
        (app) =>
          `  <li><a href="/apps/${escapeHtml(app)}"><strong>${escapeHtml(appTitle(app))}</strong><span class="muted">page <code>/apps/${escapeHtml(app)}</code></span><span class="muted">Bokeh app <code>${escapeHtml(appPath(config.bokehPrefix, app))}</code></span></a></li>`,
      )
      .join('\n')}\n</ul>`;

  router.get(CONNECTION_STATUS_PATH, sendConnectionStatusScript);

  router.get('/', (_req: Request, res: Response) => {
    res.type('html').send(
      page({
        title: 'Bokeh apps',
        nav: nav(),
        body: `<h1>Bokeh apps</h1>
<p class="muted">Each app runs on a Bokeh server behind this gateway; its page, scripts and WebSocket all come through this one address. Each app page also shows how to embed the app in a page of your own.</p>
${appList()}`,
      }),
    );
  });

  router.get('/apps/:name', (req: Request<{ name: string }>, res: Response) => {
    const app = req.params.name;
    if (!config.apps.includes(app)) {
      sendError(req, res, { status: 404, code: 'UNKNOWN_APP', message: `There is no app named "${app}". Known apps: ${config.apps.join(', ')}.` }, appList());
      return;
    }
    const args = Object.entries(req.query).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).filter((item): item is string => typeof item === 'string').map((item): [string, string] => [name, item]),
    );
    const title = appTitle(app);
    const origin = view(req).origin;
    res.type('html').send(
      page({
        title: `${title} · Bokeh apps`,
        nav: nav(app),
        scripts: [CONNECTION_STATUS_PATH],
        head: hints.links(app),
        body: `<section class="app" data-bokeh-app="${escapeHtml(app)}" aria-labelledby="app-title">
<div class="app-head">
<h1 id="app-title">${escapeHtml(title)}</h1>
${connectionStatusHtml()}
</div>
<div class="embed">
${embedScript({ origin, prefix: config.bokehPrefix, app, args })}
</div>
</section>
<section class="how" aria-labelledby="how-title">
<h2 id="how-title">How this page embeds Bokeh</h2>
<p>The page holds one <code>&lt;script&gt;</code> element. It loads <code>${escapeHtml(appPath(config.bokehPrefix, app))}/autoload.js</code> from this gateway, which brings BokehJS, opens the app's WebSocket through the same address and renders the app where the element stands, just as Bokeh's <code>server_document()</code> does. The state next to the title follows that WebSocket. In an Express app of your own:</p>
<pre><code>${escapeHtml(expressSnippet(origin, config.bokehPrefix, app))}</code></pre>
</section>`,
      }),
    );
  });

  return router;
}
