/**
 * Liveness and readiness. `/healthz` says the gateway process serves requests and nothing more,
 * so an orchestrator never restarts a healthy gateway because Bokeh is down. `/readyz` says the
 * gateway can serve apps: Bokeh answers, and serves every configured app.
 */
import { request, type Agent } from 'node:http';
import { Router, type Request, type Response } from 'express';
import type { Config } from './config.js';
import { appPath } from './bokeh-paths.js';
import { upstreamError } from './errors.js';

export interface AppCheck {
  app: string;
  ok: boolean;
  status?: number;
  message?: string;
}

/** Bokeh's per-app metadata route answers from the app context without opening a session. */
function checkApp(config: Config, agent: Agent, app: string): Promise<AppCheck> {
  const url = new URL(`${appPath(config.bokehPrefix, app)}/metadata`, config.bokehUrl);
  return new Promise((resolve) => {
    const req = request(url, { agent, timeout: config.readinessTimeoutMs, headers: { accept: 'application/json' } }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const ok = status === 200;
      resolve({
        app,
        ok,
        status,
        ...(ok
          ? {}
          : { message: status === 404 ? `Bokeh does not serve an app at ${url.pathname}; check BOKEH_APPS and BOKEH_PREFIX` : `Bokeh answered ${status}` }),
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ app, ok: false, message: upstreamError(err, config.bokehUrl.origin).message }));
    req.end();
  });
}

export function healthRouter(config: Config, agent: Agent, stats: () => Record<string, number>): Router {
  const router = Router();
  const noStore = (res: Response) => res.set('Cache-Control', 'no-store');

  router.get('/healthz', (_req: Request, res: Response) => {
    noStore(res).json({ status: 'ok', uptimeSeconds: Math.round(process.uptime()), ...stats() });
  });

  router.get('/readyz', async (_req: Request, res: Response) => {
    const apps = await Promise.all(config.apps.map((app) => checkApp(config, agent, app)));
    const ready = apps.every((check) => check.ok);
    noStore(res)
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'unavailable', bokeh: config.bokehUrl.origin, apps });
  });

  return router;
}
