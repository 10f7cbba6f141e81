/**
 * Liveness and readiness. `/healthz` says the gateway process serves requests and nothing more,
 * so an orchestrator never restarts a healthy gateway because Bokeh is down. `/readyz` says the
 * gateway can serve apps: Bokeh answers, and serves every configured app.
 */
import { Router, type Request, type Response } from 'express';
import type { Config } from './config.js';
import { appPath } from './bokeh-paths.js';
import { upstreamError } from './errors.js';
import type { Upstream, Upstreams } from './upstream.js';

export interface AppCheck {
  app: string;
  ok: boolean;
  status?: number;
  message?: string;
}

/** Bokeh's per-app metadata route answers from the app context without opening a session. */
function checkApp(config: Config, upstream: Upstream, app: string): Promise<AppCheck> {
  const path = `${appPath(config.bokehPrefix, app)}/metadata`;
  return new Promise((resolve) => {
    const req = upstream.request(path, { timeout: config.readinessTimeoutMs, headers: { accept: 'application/json' } });
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const ok = status === 200;
      resolve({
        app,
        ok,
        status,
        ...(ok ? {} : { message: status === 404 ? `Bokeh does not serve an app at ${path}; check BOKEH_APPS and BOKEH_PREFIX` : `Bokeh answered ${status}` }),
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ app, ok: false, message: upstreamError(err, upstream.origin).message }));
    req.end();
  });
}

/**
 * Ready while at least one serving replica serves every app: users can load every app. `apps` is
 * that replica's answer; when none qualifies, each app shows why, from the first replica that
 * failed it. `replicas` lists every replica found, with its state and load.
 */
export function healthRouter(config: Config, upstreams: Upstreams, stats: () => Record<string, number>): Router {
  const router = Router();
  const noStore = (res: Response) => res.set('Cache-Control', 'no-store');

  router.get('/healthz', (_req: Request, res: Response) => {
    noStore(res).json({ status: 'ok', uptimeSeconds: Math.round(process.uptime()), ...stats() });
  });

  router.get('/readyz', async (_req: Request, res: Response) => {
    const states = new Map(upstreams.replicas().map((replica) => [replica.url, replica.state]));
    // Draining and dead replicas start no session; a gateway that knows no replica yet tries the configured URL.
    const asked = upstreams.all().filter((upstream) => {
      const state = states.get(upstream.origin);
      return state === undefined || state === 'serving' || state === 'starting';
    });
    const checked = await Promise.all(asked.map((upstream) => Promise.all(config.apps.map((app) => checkApp(config, upstream, app)))));
    const serving = checked.find((apps) => apps.every((check) => check.ok));
    const apps =
      serving ??
      config.apps.map(
        (app, index) =>
          checked.map((replica) => replica[index]!).find((check) => !check.ok) ?? {
            app,
            ok: false,
            message: `no Bokeh replica at ${upstreams.name} serves new sessions`,
          },
      );
    const ready = serving !== undefined;
    noStore(res)
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'unavailable', bokeh: upstreams.name, apps, replicas: upstreams.replicas() });
  });

  return router;
}
