/**
 * Where things are on the Bokeh server: every Bokeh route lives under its --prefix
 * (BOKEH_PREFIX), and each app under `<prefix>/<app>`. routes.ts decides what under the prefix
 * may be reached; this module only spells the paths.
 */

/** Whether a raw request path is the prefix or below it. */
export function underPrefix(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** Path of an app on the Bokeh server, which is also what Bokeh calls the app path. */
export function appPath(prefix: string, app: string): string {
  return `${prefix}/${encodeURIComponent(app)}`;
}
