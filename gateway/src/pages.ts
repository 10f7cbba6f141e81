/**
 * Pages that embed Bokeh apps: an index at `/` and one page per app at `/apps/<name>`. Query
 * arguments on an app page are handed on to the app, as `server_document(arguments=...)` would.
 */
import { Router, type Request, type Response } from 'express';
import type { Config } from './config.js';
import { embedScript, appPath } from './embed.js';
import { sendError } from './errors.js';
import type { ClientView } from './forwarded.js';
import { page, escapeHtml } from './html.js';

/** "my_app-2" -> "My app 2": a readable default title for an app folder name. */
export function appTitle(name: string): string {
  const words = name.replace(/[-_]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function pagesRouter(config: Config, view: (req: Request) => ClientView): Router {
  const router = Router();
  const nav = (current?: string): Array<[string, string, boolean]> =>
    config.apps.map((app) => [`/apps/${app}`, appTitle(app), app === current]);

  const appList = (): string =>
    `<ul class="apps">\n${config.apps
      .map((app) => `  <li><a href="/apps/${escapeHtml(app)}"><strong>${escapeHtml(appTitle(app))}</strong><br><code>${escapeHtml(appPath(config.bokehPrefix, app))}</code></a></li>`)
      .join('\n')}\n</ul>`;

  router.get('/', (_req: Request, res: Response) => {
    res.type('html').send(
      page({
        title: 'Bokeh apps',
        nav: nav(),
        body: `<h1>Bokeh apps</h1>
<p class="muted">Each app runs on a Bokeh server behind this gateway; its page, scripts and WebSocket all come through this one address.</p>
${appList()}`,
      }),
    );
  });

  router.get('/apps/:name', (req: Request<{ name: string }>, res: Response) => {
    const app = req.params.name;
    if (!config.apps.includes(app)) {
      sendError(
        req,
        res,
        { status: 404, code: 'UNKNOWN_APP', message: `There is no app named "${app}". Known apps: ${config.apps.join(', ')}.` },
        appList(),
      );
      return;
    }
    const args = Object.entries(req.query).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).filter((item): item is string => typeof item === 'string').map((item): [string, string] => [name, item]),
    );
    const title = appTitle(app);
    res.type('html').send(
      page({
        title: `${title} · Bokeh apps`,
        nav: nav(app),
        body: `<h1>${escapeHtml(title)}</h1>
<div class="embed">
${embedScript({ origin: view(req).origin, prefix: config.bokehPrefix, app, args })}
</div>`,
      }),
    );
  });

  return router;
}
