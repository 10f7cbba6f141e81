/**
 * Who is asking: the authentication step that runs before every page, proxied request and
 * WebSocket upgrade (health probes excepted). The user it finds goes into the Bokeh session
 * token, where apps read it as `curdoc().session_context.token_payload["user"]`.
 *
 * Methods, chosen with AUTH_MODE:
 *   none    everyone is let in, anonymously (the bare-dev default)
 *   basic   HTTP Basic against bcrypt hashes (AUTH_BASIC_USERS / AUTH_BASIC_USERS_FILE)
 *   header  an identity proxy in front (oauth2-proxy, Authelia, a corporate SSO gateway) names
 *           the user in AUTH_USER_HEADER; believed only from peers that TRUST_PROXY trusts
 *
 * Adding a method: write a function that returns an Authenticator, add its name to AuthMode and
 * AUTH_MODE's schema in config.ts (with any settings it needs), and to METHODS below.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import type { AuthMode, Config } from './config.js';
import type { GatewayError } from './errors.js';
import type { ClientView } from './forwarded.js';
import { parseBasicUsers } from './htpasswd.js';

export type AuthResult = { ok: true; user: string | undefined } | { ok: false; error: GatewayError };

export interface Authenticator {
  readonly mode: AuthMode;
  authenticate(req: IncomingMessage, view: ClientView): Promise<AuthResult>;
}

const ANONYMOUS: Authenticator = {
  mode: 'none',
  authenticate: async () => ({ ok: true, user: undefined }),
};

function basic(config: Config): Authenticator {
  const users = parseBasicUsers(config.basicUsers);
  // Unknown names are checked against a hash of a throwaway text, at the highest cost among the
  // real ones, so that the time an answer takes does not tell which names exist.
  const cost = Math.max(...[...users.values()].map((hash) => Number(hash.slice(4, 6))));
  const unknownUserHash = bcrypt.hashSync(randomBytes(16).toString('hex'), cost);
  const challenge = { 'WWW-Authenticate': `Basic realm="${config.authBasicRealm}", charset="UTF-8"` };
  const refuse = (message: string): AuthResult => ({ ok: false, error: { status: 401, code: 'UNAUTHENTICATED', message, headers: challenge } });
  // bcrypt is slow on purpose; a browser repeats the same header on every request, so remember
  // the headers that passed (by digest, never the password itself) for a few minutes.
  const verified = new LRUCache<string, string>({ max: 10_000, ttl: 5 * 60_000 });
  return {
    mode: 'basic',
    async authenticate(req) {
      const header = req.headers.authorization;
      if (header === undefined) return refuse('Sign in to use these apps.');
      const match = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
      if (!match) return refuse('The Authorization header is not HTTP Basic credentials.');
      const digest = createHash('sha256').update(header).digest('base64');
      const known = verified.get(digest);
      if (known !== undefined) return { ok: true, user: known };
      const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const user = colon === -1 ? '' : decoded.slice(0, colon);
      const hash = users.get(user);
      const ok = await bcrypt.compare(decoded.slice(colon + 1), hash ?? unknownUserHash);
      if (!ok || hash === undefined) return refuse('Wrong user name or password.');
      verified.set(digest, user);
      return { ok: true, user };
    },
  };
}

function trustedHeader(config: Config): Authenticator {
  const name = config.authUserHeader;
  return {
    mode: 'header',
    async authenticate(req, view) {
      // Anyone can send the header; only a trusted proxy's word counts.
      if (!view.viaTrustedProxy) {
        return {
          ok: false,
          error: {
            status: 401,
            code: 'UNAUTHENTICATED',
            message: 'Sign in through the identity proxy in front of this site; direct requests are not accepted.',
          },
        };
      }
      const value = req.headers[name];
      const user = typeof value === 'string' ? value.trim() : undefined;
      // eslint-disable-next-line no-control-regex -- control characters are what this refuses
      if (!user || user.length > 256 || /[\x00-\x1f]/.test(user)) {
        return { ok: false, error: { status: 401, code: 'UNAUTHENTICATED', message: `The identity proxy did not name a user in ${config.authUserHeader}.` } };
      }
      return { ok: true, user };
    },
  };
}

const METHODS: Record<AuthMode, (config: Config) => Authenticator> = {
  none: () => ANONYMOUS,
  basic,
  header: trustedHeader,
};

export function createAuthenticator(config: Config): Authenticator {
  return METHODS[config.authMode](config);
}
