/**
 * What the gateway's middleware leave on `res.locals` for the ones after them, typed for
 * Express (its `Locals` interface is open for exactly this).
 */
import type { BokehRoute } from './routes.js';

declare module 'express-serve-static-core' {
  interface Locals {
    /** Who signed in (undefined: anonymous), set by the sign-in step before any Bokeh route. */
    user?: string | undefined;
    /** The Bokeh route a request under the prefix was let through as, for the static cache. */
    bokehRoute?: BokehRoute;
    /** The Bokeh session a page or autoload.js request creates; its answer carries the token. */
    sessionId?: string;
    /** When the gateway chose that id: the request's URL for another fresh id (sessions.ts). */
    withSessionId?: (sessionId: string) => string;
    /** A refusal that limits.ts logs once per client, so the request log leaves it out. */
    quiet?: boolean;
  }
}
