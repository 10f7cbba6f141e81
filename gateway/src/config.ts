/**
 * Every gateway setting, declared once: environment variable, default, rule and the fix to
 * suggest when a value is wrong. The gateway reads the environment exactly once, at start, and
 * refuses to start on any invalid value; nothing else in the gateway reads `process.env`.
 */
import { z } from 'zod';

export interface Config {
  /** Address and port the gateway listens on. */
  listenAddress: string;
  port: number;
  /** Where Bokeh answers, as seen from the gateway (an internal address, never shown to browsers). */
  bokehUrl: URL;
  /** Path prefix that Bokeh serves every route under; the gateway proxies everything below it. */
  bokehPrefix: string;
  /** Apps the gateway embeds and lets WebSockets reach, in index order. */
  apps: string[];
  /** Origins that browsers load pages from; the first is canonical. */
  publicOrigins: URL[];
  /** Express `trust proxy` value: which peers may set X-Forwarded-*. */
  trustProxy: false | number | string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  upstreamTimeoutMs: number;
  readinessTimeoutMs: number;
  shutdownTimeoutMs: number;
  wsMaxMessageBytes: number;
}

interface Setting<T> {
  env: string;
  default: string;
  doc: string;
  /** What to tell the user to set when the value is wrong. */
  fix: string;
  schema: z.ZodType<T, string>;
}

const APP_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const httpUrl = z
  .string()
  .trim()
  .transform((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not a URL' });
      return z.NEVER;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: 'must use http or https' });
      return z.NEVER;
    }
    return url;
  });

/** An origin is scheme://host[:port] and nothing else: Bokeh and browsers compare exactly that. */
const origin = httpUrl.superRefine((url, ctx) => {
  if (url.pathname !== '/' || url.search || url.hash || url.username) {
    ctx.addIssue({ code: 'custom', message: `"${url.href}" is not a bare origin (no path, query or user)` });
  }
});

const list = <T>(item: z.ZodType<T, string>) =>
  z
    .string()
    .transform((value) => value.split(',').map((part) => part.trim()).filter(Boolean))
    .pipe(z.array(item).min(1, 'must list at least one value'));

/** Express's named address ranges for `trust proxy`. */
export const PROXY_PRESETS: ReadonlySet<string> = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Mirrors Express's `trust proxy` forms, minus `true`: trusting every peer would let any client
 * forge X-Forwarded-Host and so the URLs that pages hand to browsers.
 */
const trustProxy = z
  .string()
  .trim()
  .transform((value, ctx): false | number | string[] => {
    if (value === '' || value === 'false') return false;
    if (value === 'true') {
      ctx.addIssue({ code: 'custom', message: '"true" would trust X-Forwarded-* from any client' });
      return z.NEVER;
    }
    if (/^\d+$/.test(value)) return Number(value);
    const entries = value.split(',').map((part) => part.trim()).filter(Boolean);
    for (const entry of entries) {
      const address = /^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(entry);
      const hostName = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(entry);
      if (!PROXY_PRESETS.has(entry) && !address && !hostName) {
        ctx.addIssue({ code: 'custom', message: `"${entry}" is neither an IP address, a CIDR range, a preset nor a host name` });
        return z.NEVER;
      }
    }
    return entries;
  });

const settings = {
  listenAddress: {
    env: 'LISTEN_ADDRESS',
    default: '0.0.0.0',
    doc: 'Address the gateway binds to inside its container.',
    fix: 'an IP address such as 0.0.0.0 or ::',
    schema: z.string().trim().min(1, 'must not be empty'),
  },
  port: {
    env: 'PORT',
    default: '8000',
    doc: 'Port the gateway listens on. PaaS hosts set it; the compose file maps GATEWAY_PORT to it.',
    fix: 'a TCP port such as PORT=8000',
    schema: integer(0, 65535),
  },
  bokehUrl: {
    env: 'BOKEH_URL',
    default: 'http://bokeh:5006',
    doc: 'Base URL of the Bokeh server as the gateway reaches it (internal; never shown to browsers).',
    fix: 'the scheme, host and port of the Bokeh server, e.g. BOKEH_URL=http://bokeh:5006',
    schema: origin,
  },
  bokehPrefix: {
    env: 'BOKEH_PREFIX',
    default: '/bokeh',
    doc: 'Path prefix of every Bokeh route; must equal the Bokeh server\'s --prefix.',
    fix: 'a path such as BOKEH_PREFIX=/bokeh (leading slash, no trailing slash), the same value the bokeh service gets',
    schema: z
      .string()
      .trim()
      .regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'must be a path like /bokeh: a leading slash, no trailing slash, no spaces'),
  },
  apps: {
    env: 'BOKEH_APPS',
    default: 'sliders,stream,ping',
    doc: 'Comma-separated names of the Bokeh apps to list and embed (folder names under bokeh/apps).',
    fix: 'app folder names separated by commas, e.g. BOKEH_APPS=sliders,stream',
    schema: list(z.string().regex(APP_NAME, 'app names may use letters, digits, "-" and "_"')).refine(
      (names) => new Set(names).size === names.length,
      'lists an app twice',
    ),
  },
  publicOrigins: {
    env: 'PUBLIC_ORIGINS',
    default: 'http://localhost:8000,http://127.0.0.1:8000,https://localhost:8443,https://127.0.0.1:8443',
    doc: 'Origins users open pages at (scheme://host[:port], comma-separated, first is canonical). Pages use the one the request came in on, else the first; Bokeh allows WebSockets only from these.',
    fix: 'the address users type, e.g. PUBLIC_ORIGINS=https://dash.example.com',
    schema: list(origin),
  },
  trustProxy: {
    env: 'TRUST_PROXY',
    default: 'false',
    doc: 'Which peers may set X-Forwarded-For/Proto/Host: false, a hop count, or IPs, CIDR ranges, presets (loopback, linklocal, uniquelocal) and host names (looked up in DNS).',
    fix: 'false when browsers connect directly, or the host name, address or network of your reverse proxy, e.g. TRUST_PROXY=nginx',
    schema: trustProxy,
  },
  logLevel: {
    env: 'LOG_LEVEL',
    default: 'info',
    doc: 'Log level of the JSON logs: fatal, error, warn, info, debug, trace or silent.',
    fix: 'one of fatal, error, warn, info, debug, trace, silent',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  },
  upstreamTimeoutMs: {
    env: 'UPSTREAM_TIMEOUT_MS',
    default: '30000',
    doc: 'How long an HTTP request may wait for Bokeh to answer before the gateway returns 504.',
    fix: 'milliseconds between 1000 and 600000',
    schema: integer(1000, 600_000),
  },
  readinessTimeoutMs: {
    env: 'READINESS_TIMEOUT_MS',
    default: '2000',
    doc: 'How long /readyz waits for Bokeh before reporting it unreachable.',
    fix: 'milliseconds between 100 and 60000',
    schema: integer(100, 60_000),
  },
  shutdownTimeoutMs: {
    env: 'SHUTDOWN_TIMEOUT_MS',
    default: '10000',
    doc: 'On SIGTERM, how long open requests may finish before the gateway exits anyway. Keep it under the orchestrator\'s kill timeout (compose: 10 s by default).',
    fix: 'milliseconds between 0 and 120000',
    schema: integer(0, 120_000),
  },
  wsMaxMessageBytes: {
    env: 'WS_MAX_MESSAGE_BYTES',
    default: '20971520',
    doc: 'Largest WebSocket message relayed in either direction; larger ones close the socket with 1009. Default matches Bokeh\'s 20 MiB.',
    fix: 'bytes between 1024 and 1073741824, at most Bokeh\'s --websocket-max-message-size',
    schema: integer(1024, 1 << 30),
  },
} satisfies { [K in keyof Config]: Setting<Config[K]> };

/** The settings table, for documentation and for tests that keep .env.example honest. */
export const SETTINGS: ReadonlyArray<Readonly<Omit<Setting<unknown>, 'schema'>>> = Object.values(settings).map(
  ({ env, default: fallback, doc, fix }) => ({ env, default: fallback, doc, fix }),
);

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid gateway configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
}

/** Reads and validates every setting; throws one ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings) as [keyof Config, Setting<unknown>][]) {
    // An empty value (`LOG_LEVEL=` in a .env file) means "not set", as it does for the launcher.
    const given = env[setting.env];
    const raw = given === undefined || given.trim() === '' ? setting.default : given;
    const result = setting.schema.safeParse(raw);
    if (result.success) {
      values[key] = result.data;
    } else {
      const reason = result.error.issues.map((issue) => issue.message).join('; ');
      problems.push(`${setting.env}=${JSON.stringify(raw)} ${reason}. Set ${setting.env} to ${setting.fix}.`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values as unknown as Config;
}
