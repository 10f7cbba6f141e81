/**
 * Every gateway setting, declared once: environment variable, default, rule and the fix to
 * suggest when a value is wrong. The gateway reads the environment exactly once, at start, and
 * refuses to start on any invalid value; nothing else in the gateway reads `process.env`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseBasicUsers } from './htpasswd.js';

/** How the gateway decides who a request is from; auth.ts has one method for each. */
export type AuthMode = 'none' | 'basic' | 'header';

/** What each setting in the table below becomes. */
interface Settings {
  /** Address and port the gateway listens on. */
  listenAddress: string;
  port: number;
  /**
   * Where the Bokeh replicas answer, as seen from the gateway (internal addresses, never shown to
   * browsers). Every address a host name resolves to is one replica (upstream.ts).
   */
  bokehUrls: URL[];
  /** How often the gateway resolves those names again and checks every replica. */
  discoveryIntervalMs: number;
  /** Path prefix that Bokeh serves every route under; the gateway proxies everything below it. */
  bokehPrefix: string;
  /** Apps the gateway embeds and lets WebSockets reach, in index order. */
  apps: string[];
  /** Origins that browsers load pages from, as given; undefined means the default (see Config). */
  publicOrigins: URL[] | undefined;
  /** Host ports of the two layouts, which the default public origins are made from. */
  gatewayPort: number;
  nginxHttpsPort: number;
  apacheHttpsPort: number;
  /** Express `trust proxy` value: which peers may set X-Forwarded-*. */
  trustProxy: false | number | string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  upstreamTimeoutMs: number;
  readinessTimeoutMs: number;
  shutdownTimeoutMs: number;
  wsMaxMessageBytes: number;
  wsIdleTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  secretKeyValue: string | undefined;
  secretKeyFile: string | undefined;
  sessionTokenExpirationS: number;
  authMode: AuthMode;
  authBasicUsers: string | undefined;
  authBasicUsersFile: string | undefined;
  authBasicRealm: string;
  authUserHeader: string;
  staticCacheBytes: number;
  /** Brotli/gzip answers for browsers that accept them (compression.ts), and the smallest body compressed. */
  compression: boolean;
  compressionMinBytes: number;
  /** Per-client limits (limits.ts): the window, and what one client address may do in it. */
  rateLimitWindowS: number;
  rateLimitSessionStarts: number;
  rateLimitWebSockets: number;
  maxWebSocketsPerClient: number;
  /** Live sessions a replica may hold before new sessions go elsewhere (upstream.ts); 0: no cap. */
  maxSessionsPerReplica: number;
  /** Port of the /metrics listener (metrics.ts); 0: no metrics. */
  metricsPort: number;
  /** The team's own web app, which gets every request outside the prefix and the health routes. */
  hostAppUrl: URL | undefined;
}

/** The gateway's configuration: the settings, with the secret key and user list read. */
export interface Config extends Omit<Settings, 'publicOrigins' | 'secretKeyValue' | 'secretKeyFile' | 'authBasicUsers' | 'authBasicUsersFile'> {
  /** Origins that browsers load pages from; the first is canonical. */
  publicOrigins: URL[];
  /** Signs Bokeh session ids and tokens; Bokeh holds the same key. */
  secretKey: Buffer;
  /** htpasswd-style lines (user:bcrypt-hash) when authMode is "basic". */
  basicUsers: string[];
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
    .transform((value) =>
      value
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean),
    )
    .pipe(z.array(item).min(1, 'must list at least one value'));

/** Unset (empty) stays undefined, so that the code can tell "not given" from a value. */
const optional = z.string().transform((value) => (value.trim() === '' ? undefined : value.trim()));

/** Blank stays undefined ("not given", so a default applies); anything else must pass `schema`. */
const orUnset = <T>(schema: z.ZodType<T, string>) =>
  z.string().transform((value, ctx): T | undefined => {
    if (value.trim() === '') return undefined;
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message });
    return z.NEVER;
  });

/**
 * Bokeh pastes the prefix into its route regular expressions and NGINX's entrypoint into its
 * configuration, so it is plain path characters only, and no segment starts with a dot (no "..").
 * The launcher and NGINX's entrypoint apply the same rule (tests/rules/cases.json).
 */
const PREFIX_SHAPE = /^(\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$/;

/** The host ports of the layouts, when compose's GATEWAY_PORT, NGINX_HTTPS_PORT and APACHE_HTTPS_PORT are not set. */
const DEFAULT_GATEWAY_PORT = '8000';
const DEFAULT_NGINX_HTTPS_PORT = '8443';
const DEFAULT_APACHE_HTTPS_PORT = '8444';

/**
 * Unless PUBLIC_ORIGINS is set: the two layouts on this machine, on the ports they are published
 * on, so that changing a port alone keeps pages and WebSockets working. The launcher and NGINX's
 * entrypoint make the same list (tests/rules/cases.json).
 */
function defaultPublicOrigins(gatewayPort: number, ...frontHttpsPorts: number[]): URL[] {
  const on = (scheme: string, port: number) => ['localhost', '127.0.0.1'].map((host) => new URL(`${scheme}://${host}:${port}`));
  return [...on('http', gatewayPort), ...frontHttpsPorts.flatMap((port) => on('https', port))];
}

/** HMAC-SHA256 wants a key at least as long as its 32-byte output; Bokeh's own generator makes 44. */
export const MIN_SECRET_KEY_CHARS = 32;
const KEY_HOWTO = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'";

/** A header name as HTTP defines it (a token). */
const headerName = z
  .string()
  .trim()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')
  .transform((value) => value.toLowerCase());

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
    const entries = value
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean);
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
  bokehUrls: {
    env: 'BOKEH_URL',
    default: 'http://bokeh:5006',
    doc: 'Base URLs of the Bokeh replicas as the gateway reaches them (internal; never shown to browsers), comma-separated. Each host name is resolved to all its addresses, and each address is one replica, so one service name covers every replica (docker compose --scale, Swarm tasks, a Kubernetes headless Service).',
    fix: 'the scheme, host and port of the Bokeh service, e.g. BOKEH_URL=http://bokeh:5006, or several, e.g. BOKEH_URL=http://bokeh-a:5006,http://bokeh-b:5006',
    schema: list(origin).refine((urls) => new Set(urls.map((url) => url.origin)).size === urls.length, 'lists a URL twice'),
  },
  discoveryIntervalMs: {
    env: 'BOKEH_DISCOVERY_INTERVAL_MS',
    default: '2000',
    doc: "How often the gateway resolves BOKEH_URL's names again and asks every Bokeh replica for its state (serving, draining, down) and load. New replicas get sessions, and dead or draining ones stop getting them, within about this time.",
    fix: 'milliseconds between 200 and 60000',
    schema: integer(200, 60_000),
  },
  bokehPrefix: {
    env: 'BOKEH_PREFIX',
    default: '/bokeh',
    doc: "Path prefix of every Bokeh route; must equal the Bokeh server's --prefix.",
    fix: 'a path such as BOKEH_PREFIX=/bokeh (leading slash, no trailing slash), the same value the bokeh service gets',
    schema: z.string().trim().regex(PREFIX_SHAPE, 'must be a path like /bokeh: a leading slash, no trailing slash, no spaces, no segment starting with "."'),
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
    default: '',
    doc: 'Origins users open pages at (scheme://host[:port], comma-separated, first is canonical). Pages use the one the request came in on, else the first; Bokeh allows WebSockets only from these. Unset: http://localhost and http://127.0.0.1 on GATEWAY_PORT, https://localhost and https://127.0.0.1 on NGINX_HTTPS_PORT and on APACHE_HTTPS_PORT.',
    fix: 'the address users type, e.g. PUBLIC_ORIGINS=https://dash.example.com',
    schema: orUnset(list(origin)),
  },
  gatewayPort: {
    env: 'GATEWAY_PORT',
    default: DEFAULT_GATEWAY_PORT,
    doc: 'Host port the gateway is published on (compose maps it to PORT); names the port in the default PUBLIC_ORIGINS.',
    fix: `the port browsers use for the gateway, e.g. GATEWAY_PORT=${DEFAULT_GATEWAY_PORT}`,
    schema: integer(1, 65535),
  },
  nginxHttpsPort: {
    env: 'NGINX_HTTPS_PORT',
    default: DEFAULT_NGINX_HTTPS_PORT,
    doc: "Host port of NGINX's HTTPS listener (nginx layout); names the port in the default PUBLIC_ORIGINS.",
    fix: `the port browsers use for NGINX's HTTPS, e.g. NGINX_HTTPS_PORT=${DEFAULT_NGINX_HTTPS_PORT}`,
    schema: integer(1, 65535),
  },
  apacheHttpsPort: {
    env: 'APACHE_HTTPS_PORT',
    default: DEFAULT_APACHE_HTTPS_PORT,
    doc: "Host port of Apache's HTTPS listener (apache layout); names the port in the default PUBLIC_ORIGINS.",
    fix: `the port browsers use for Apache's HTTPS, e.g. APACHE_HTTPS_PORT=${DEFAULT_APACHE_HTTPS_PORT}`,
    schema: integer(1, 65535),
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
    doc: "On SIGTERM, how long open requests may finish before the gateway exits anyway. Keep it under the orchestrator's kill timeout (compose: 10 s by default).",
    fix: 'milliseconds between 0 and 120000',
    schema: integer(0, 120_000),
  },
  wsMaxMessageBytes: {
    env: 'WS_MAX_MESSAGE_BYTES',
    default: '20971520',
    doc: "Largest WebSocket message relayed in either direction; larger ones close the socket with 1009. Default matches Bokeh's 20 MiB.",
    fix: "bytes between 1024 and 1073741824, at most Bokeh's --websocket-max-message-size",
    schema: integer(1024, 1 << 30),
  },
  wsIdleTimeoutMs: {
    env: 'WS_IDLE_TIMEOUT_MS',
    default: '120000',
    doc: "A WebSocket whose browser sends nothing (not even a pong to Bokeh's 37 s keep-alive ping) for this long is closed with 1001; 0 turns it off.",
    fix: "milliseconds, 0 or between 10000 and 86400000, longer than Bokeh's --keep-alive interval",
    schema: integer(0, 86_400_000).refine((value) => value === 0 || value >= 10_000, 'must be 0 or at least 10000'),
  },
  headersTimeoutMs: {
    env: 'HEADERS_TIMEOUT_MS',
    default: '20000',
    doc: 'How long a client may take to send its request headers; slower ones get 408 and are disconnected.',
    fix: 'milliseconds between 1000 and 120000',
    schema: integer(1000, 120_000),
  },
  requestTimeoutMs: {
    env: 'REQUEST_TIMEOUT_MS',
    default: '60000',
    doc: 'How long a client may take to send a whole request; slower ones get 408 and are disconnected.',
    fix: 'milliseconds between 1000 and 600000, at least HEADERS_TIMEOUT_MS',
    schema: integer(1000, 600_000),
  },
  secretKeyValue: {
    env: 'BOKEH_SECRET_KEY',
    default: '',
    doc: 'Key that signs Bokeh session ids and tokens; Bokeh gets the same one. Wins over BOKEH_SECRET_KEY_FILE. Required, at least 32 random characters.',
    fix: `at least ${MIN_SECRET_KEY_CHARS} random characters, the value the bokeh service gets; ${KEY_HOWTO}`,
    schema: optional,
  },
  secretKeyFile: {
    env: 'BOKEH_SECRET_KEY_FILE',
    default: '',
    doc: 'File holding the key when BOKEH_SECRET_KEY is not set (the compose file points it at the generated key).',
    fix: 'the path of a readable file that holds the key',
    schema: optional,
  },
  sessionTokenExpirationS: {
    env: 'SESSION_TOKEN_EXPIRATION_S',
    default: '300',
    doc: "Seconds a minted session token stays valid for opening the session's WebSocket (Bokeh's --session-token-expiration).",
    fix: 'seconds between 10 and 86400',
    schema: integer(10, 86_400),
  },
  authMode: {
    env: 'AUTH_MODE',
    default: 'none',
    doc: 'Who may use the pages and apps: none (anyone), basic (HTTP Basic against AUTH_BASIC_USERS) or header (a user name set by a trusted identity proxy in AUTH_USER_HEADER).',
    fix: 'one of none, basic, header',
    schema: z.enum(['none', 'basic', 'header']),
  },
  authBasicUsers: {
    env: 'AUTH_BASIC_USERS',
    default: '',
    doc: 'For AUTH_MODE=basic: user:bcrypt-hash entries separated by commas or new lines (what `htpasswd -nbB user password` prints). Quote the value in .env, since hashes contain "$".',
    fix: "entries like alice:$2y$10$... made with `htpasswd -nbB alice 'password'`",
    schema: optional,
  },
  authBasicUsersFile: {
    env: 'AUTH_BASIC_USERS_FILE',
    default: '',
    doc: 'For AUTH_MODE=basic: an htpasswd file (bcrypt entries), read at start; used together with AUTH_BASIC_USERS.',
    fix: 'the path of a readable htpasswd file inside the gateway container',
    schema: optional,
  },
  authBasicRealm: {
    env: 'AUTH_BASIC_REALM',
    default: 'Bokeh apps',
    doc: 'For AUTH_MODE=basic: the realm browsers show in their sign-in prompt.',
    fix: 'a short text without double quotes',
    schema: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(100, 'must be at most 100 characters')
      // eslint-disable-next-line no-control-regex -- control characters are what this refuses
      .regex(/^[^"\\\x00-\x1f]+$/, 'must not contain quotes, backslashes or control characters'),
  },
  authUserHeader: {
    env: 'AUTH_USER_HEADER',
    default: 'X-Forwarded-User',
    doc: 'For AUTH_MODE=header: the request header in which the identity proxy names the user. Believed only from peers that TRUST_PROXY trusts.',
    fix: 'a header name such as X-Forwarded-User or X-Auth-Request-User',
    schema: headerName,
  },
  staticCacheBytes: {
    env: 'STATIC_CACHE_BYTES',
    default: '67108864',
    doc: "Memory for Bokeh's versioned static files (URLs with ?v=<hash>, which never change): the gateway answers them from memory instead of asking Bokeh each time. BokehJS takes about 4 MB; 0 turns the cache off.",
    fix: 'bytes, 0 (off) or between 1048576 and 4294967296, e.g. STATIC_CACHE_BYTES=67108864 for 64 MiB',
    schema: integer(0, 2 ** 32).refine((value) => value === 0 || value >= 1024 * 1024, 'must be 0 or at least 1048576'),
  },
  compression: {
    env: 'COMPRESSION',
    default: 'on',
    doc: "Compress answers with brotli or gzip for browsers that accept them: Bokeh's versioned static files once, when the cache stores them (BokehJS goes from 1.3 MB to about 0.3 MB), everything else compressible as it streams. off when a proxy in front compresses already, or to save the CPU.",
    fix: 'on or off',
    schema: z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['on', 'off'], 'must be on or off'))
      .transform((value) => value === 'on'),
  },
  compressionMinBytes: {
    env: 'COMPRESSION_MIN_BYTES',
    default: '1024',
    doc: 'Smallest answer the gateway compresses, in bytes: below about 1 KB the encoded body saves less than a round trip costs. Answers of unknown length (streamed without Content-Length) are compressed.',
    fix: 'bytes between 0 and 1048576, e.g. COMPRESSION_MIN_BYTES=1024',
    schema: integer(0, 1024 * 1024),
  },
  rateLimitWindowS: {
    env: 'RATE_LIMIT_WINDOW_S',
    default: '10',
    doc: 'The window of the per-client rate limits: RATE_LIMIT_SESSION_STARTS and RATE_LIMIT_WEBSOCKETS count per client address over this many seconds, and a refused client is told to retry when its window ends.',
    fix: 'seconds between 1 and 3600',
    schema: integer(1, 3600),
  },
  rateLimitSessionStarts: {
    env: 'RATE_LIMIT_SESSION_STARTS',
    default: '100',
    doc: "New Bokeh sessions (app pages and autoload.js) one client address may start per window; more get 429 with Retry-After. The client address is the one TRUST_PROXY decides. 100 per 10 s lets a classroom of 40 behind one NAT address all load a page at once, and reload, while one client's flood cannot stall Bokeh; 0 turns the limit off.",
    fix: 'a count, 0 (off) or between 1 and 1000000, e.g. RATE_LIMIT_SESSION_STARTS=100',
    schema: integer(0, 1_000_000),
  },
  rateLimitWebSockets: {
    env: 'RATE_LIMIT_WEBSOCKETS',
    default: '200',
    doc: 'WebSocket upgrades one client address may make per window (each session opens one; reconnects count too); more get 429 with Retry-After before anything reaches Bokeh. 0 turns the limit off.',
    fix: 'a count, 0 (off) or between 1 and 1000000, e.g. RATE_LIMIT_WEBSOCKETS=200',
    schema: integer(0, 1_000_000),
  },
  maxWebSocketsPerClient: {
    env: 'MAX_WEBSOCKETS_PER_CLIENT',
    default: '200',
    doc: 'WebSockets (open app sessions) one client address may hold at once; one more gets 429. 200 is 40 users with 5 app tabs each behind one address; 0 turns the cap off.',
    fix: 'a count, 0 (off) or between 1 and 1000000, e.g. MAX_WEBSOCKETS_PER_CLIENT=200',
    schema: integer(0, 1_000_000),
  },
  maxSessionsPerReplica: {
    env: 'MAX_SESSIONS_PER_REPLICA',
    default: '500',
    doc: "Live sessions one Bokeh replica may hold (as it counts them, plus the ones this gateway started since its last check); new sessions go to a replica with room, and when every replica is full page loads get 503 with Retry-After. Size it to what one replica's memory and CPU hold for your apps; 0 turns the cap off.",
    fix: 'a count, 0 (off) or between 1 and 1000000, e.g. MAX_SESSIONS_PER_REPLICA=500, or add Bokeh replicas',
    schema: integer(0, 1_000_000),
  },
  metricsPort: {
    env: 'METRICS_PORT',
    default: '0',
    doc: "Port of the gateway's Prometheus metrics listener (GET /metrics), apart from the public port and on LISTEN_ADDRESS; 0 turns metrics off. The compose file sets 9464 and publishes it nowhere: Prometheus reaches it on the backend network.",
    fix: 'a TCP port other than PORT, e.g. METRICS_PORT=9464, or 0 for no metrics',
    schema: integer(0, 65535),
  },
  hostAppUrl: {
    env: 'HOST_APP_URL',
    default: '',
    doc: "Your own web app (Flask, Django, Express...) as the gateway reaches it, e.g. http://flask:8000: every request outside BOKEH_PREFIX and the health routes goes to it, WebSockets included, after the same sign-in, so it and the Bokeh apps share one origin. The gateway's own index and app pages step aside. Unset: the gateway serves its own pages.",
    fix: "the scheme, host and port of your app as the gateway reaches it, e.g. HOST_APP_URL=http://flask:8000, or nothing for the gateway's own pages",
    schema: orUnset(origin),
  },
} satisfies { [K in keyof Settings]: Setting<Settings[K]> };

/** The settings table, for documentation and for tests that keep .env.example honest. */
export const SETTINGS: ReadonlyArray<Readonly<Omit<Setting<unknown>, 'schema'>>> = Object.values(settings).map(({ env, default: fallback, doc, fix }) => ({
  env,
  default: fallback,
  doc,
  fix,
}));

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid gateway configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
}

/** One setting on its own, for the container healthcheck, which must not need the secrets. */
export function loadSetting<K extends keyof Settings>(key: K, env: NodeJS.ProcessEnv = process.env): Settings[K] {
  const setting = settings[key] as unknown as Setting<Settings[K]>;
  const given = env[setting.env];
  const result = setting.schema.safeParse(given === undefined || given.trim() === '' ? setting.default : given);
  if (!result.success) throw new ConfigError([`${setting.env}=${JSON.stringify(given)} is invalid. Set ${setting.env} to ${setting.fix}.`]);
  return result.data;
}

/**
 * Refuses keys that are short or plainly not random; messages never show the key. Characters are
 * code points, as the launcher counts them (tests/rules/cases.json), not UTF-16 units.
 */
function secretKeyProblem(where: string, key: string): string | undefined {
  const length = [...key].length;
  if (length < MIN_SECRET_KEY_CHARS) return `${where} is too short (${length} characters, need at least ${MIN_SECRET_KEY_CHARS}); ${KEY_HOWTO}.`;
  if (new Set(key).size < 8) return `${where} is not random enough (it repeats ${new Set(key).size} characters); ${KEY_HOWTO}.`;
  return undefined;
}

function readSecretKey(values: Settings, problems: string[]): Buffer {
  let key = values.secretKeyValue;
  let where = 'BOKEH_SECRET_KEY';
  if (key === undefined && values.secretKeyFile !== undefined) {
    where = `the key in BOKEH_SECRET_KEY_FILE=${values.secretKeyFile}`;
    try {
      key = readFileSync(values.secretKeyFile, 'utf8').trim();
    } catch (err) {
      problems.push(
        `BOKEH_SECRET_KEY_FILE=${values.secretKeyFile} cannot be read (${(err as NodeJS.ErrnoException).code}). Point it at a readable file holding the key, or set BOKEH_SECRET_KEY.`,
      );
      return Buffer.alloc(0);
    }
  }
  if (key === undefined) {
    problems.push(
      `BOKEH_SECRET_KEY is not set; the gateway signs every Bokeh session with it. Set BOKEH_SECRET_KEY (the same value the bokeh service gets) or BOKEH_SECRET_KEY_FILE; ${KEY_HOWTO}.`,
    );
    return Buffer.alloc(0);
  }
  const problem = secretKeyProblem(where, key);
  if (problem !== undefined) problems.push(problem);
  return Buffer.from(key, 'utf8');
}

function readBasicUsers(values: Settings, problems: string[]): string[] {
  const lines: string[] = [];
  if (values.authBasicUsers !== undefined) lines.push(...values.authBasicUsers.split(/[,\n]/));
  if (values.authBasicUsersFile !== undefined) {
    try {
      lines.push(...readFileSync(values.authBasicUsersFile, 'utf8').split('\n'));
    } catch (err) {
      problems.push(
        `AUTH_BASIC_USERS_FILE=${values.authBasicUsersFile} cannot be read (${(err as NodeJS.ErrnoException).code}). Point it at a readable htpasswd file, or list users in AUTH_BASIC_USERS.`,
      );
      return [];
    }
  }
  const entries = lines.map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  if (values.authMode !== 'basic') return entries;
  if (entries.length === 0) {
    problems.push(
      "AUTH_MODE=basic needs users. Set AUTH_BASIC_USERS to entries made with `htpasswd -nbB alice 'password'`, or AUTH_BASIC_USERS_FILE to an htpasswd file.",
    );
    return entries;
  }
  try {
    parseBasicUsers(entries);
  } catch (err) {
    problems.push(`AUTH_BASIC_USERS/AUTH_BASIC_USERS_FILE: ${(err as Error).message}.`);
  }
  return entries;
}

/** Reads and validates every setting; throws one ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings) as [keyof Settings, Setting<unknown>][]) {
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
  const {
    publicOrigins,
    secretKeyValue: _value,
    secretKeyFile: _file,
    authBasicUsers: _users,
    authBasicUsersFile: _usersFile,
    ...rest
  } = values as unknown as Settings;
  const config: Config = {
    ...rest,
    publicOrigins: publicOrigins ?? defaultPublicOrigins(rest.gatewayPort, rest.nginxHttpsPort, rest.apacheHttpsPort),
    secretKey: readSecretKey(values as unknown as Settings, problems),
    basicUsers: readBasicUsers(values as unknown as Settings, problems),
  };
  if (config.requestTimeoutMs < config.headersTimeoutMs) {
    problems.push(
      `REQUEST_TIMEOUT_MS=${config.requestTimeoutMs} is shorter than HEADERS_TIMEOUT_MS=${config.headersTimeoutMs}. Set REQUEST_TIMEOUT_MS to at least ${config.headersTimeoutMs}.`,
    );
  }
  if (config.metricsPort !== 0 && config.metricsPort === config.port) {
    problems.push(
      `METRICS_PORT=${config.metricsPort} is the public PORT; metrics must not be served to every visitor. Set METRICS_PORT to another port, e.g. 9464.`,
    );
  }
  if (config.authMode === 'header' && config.trustProxy === false) {
    problems.push(
      `AUTH_MODE=header believes ${config.authUserHeader} only from a trusted proxy, and TRUST_PROXY=false trusts none. Set TRUST_PROXY to your identity proxy (host name, address or network).`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
