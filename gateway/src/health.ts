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

/** One Bokeh server's readiness: it serves every configured app. */
export interface ReplicaCheck {
  bokeh: string;
  ready: boolean;
  apps: AppCheck[];
}

/**
 * An app is ready when every replica serves it; each failing app reports the first replica's
 * reason. With one replica that is simply its own answer.
 */
function appsAcross(config: Config, replicas: readonly ReplicaCheck[]): AppCheck[] {
  return config.apps.map((app, index) => {
    const checks = replicas.map((replica) => replica.apps[index]!);
    return checks.find((check) => !check.ok) ?? checks[0] ?? { app, ok: false, message: 'no Bokeh server is configured' };
  });
}

export function healthRouter(config: Config, upstreams: Upstreams, stats: () => Record<string, number>): Router {
  const router = Router();
  const noStore = (res: Response) => res.set('Cache-Control', 'no-store');

  router.get('/healthz', (_req: Request, res: Response) => {
    noStore(res).json({ status: 'ok', uptimeSeconds: Math.round(process.uptime()), ...stats() });
  });

  router.get('/readyz', async (_req: Request, res: Response) => {
    const replicas = await Promise.all(
      upstreams.all().map(async (upstream): Promise<ReplicaCheck> => {
        const apps = await Promise.all(config.apps.map((app) => checkApp(config, upstream, app)));
        return { bokeh: upstream.origin, ready: apps.every((check) => check.ok), apps };
      }),
    );
    const apps = appsAcross(config, replicas);
    const ready = apps.every((check) => check.ok);
    noStore(res)
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'unavailable', bokeh: upstreams.name, apps, replicas });
  });

  return router;
}
