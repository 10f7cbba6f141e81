/**
 * Which Bokeh replica a request goes to. Every request the gateway sends to Bokeh, proxied or
 * its own (the static cache's fetches, readiness checks, WebSocket handshakes), asks this module
 * for an Upstream first; nothing else knows where Bokeh is.
 *
 * Replicas. Each address that a BOKEH_URL host name resolves to is one replica: `docker compose
 * --scale bokeh=3`, Swarm's `tasks.<service>` and a Kubernetes headless Service all give one name
 * with every replica's address. Names are resolved again every BOKEH_DISCOVERY_INTERVAL_MS, and
 * each replica is asked for its state at `<prefix>/_replica` (bokeh/launcher/replica.py):
 * serving, draining (it got SIGTERM: it serves the sessions it holds and starts no new ones), or
 * down (no answer). A replica that left DNS but still answers is treated as draining, so pinned
 * sessions still reach it: an orchestrator drops a stopping replica from DNS before it is gone.
 *
 * Affinity. Bokeh keeps a session in the memory of the one process that made it, and makes a new
 * one for any id it does not know, so the request that creates a session, its WebSocket and
 * BokehJS's reconnects must all reach the same replica. The gateway mints every session id, so
 * the id itself says where the session lives: its first TAG_LENGTH characters are a tag derived
 * from the replica's address and the deployment's key. Any gateway with the same key reads the
 * same tag the same way, so several gateways route a session alike with no shared store, and
 * adding replicas moves no session (which a hash over the replica set would do).
 *
 * Choosing a replica for a new session: the serving replica with the fewest sessions, as Bokeh
 * counts them at the last check, plus the sessions this gateway has started there since. Sessions
 * live for minutes and cost very different amounts, so spreading by load beats spreading by a
 * hash or in turn; with several gateways each adds its own starts to the same shared count.
 *
 * Failover. A session whose replica is down or unknown goes to the live replica that rendezvous
 * hashing picks for its id: every gateway, and every reconnect, picks the same one, where Bokeh
 * then builds a fresh session under that id (the app starts over; the page need not reload).
 */
import { createHash, createHmac, randomInt } from 'node:crypto';
import { lookup, Resolver } from 'node:dns/promises';
import { Agent, request as httpRequest, type AgentOptions, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { generateSessionId, SESSION_ID_ALPHABET } from './tokens.js';

/** Where each replica reports its state (bokeh/launcher/replica.py), below Bokeh's prefix. */
export const REPLICA_STATUS_PATH = '/_replica';
/** Set by a replica on answers it refuses because it drains. */
export const REPLICA_STATE_HEADER = 'bokeh-replica-state';
/** Characters of a session id that name its replica: 62^8 tags, so two replicas never share one. */
export const TAG_LENGTH = 8;
/** How many replicas one session start (a page load, a WebSocket) may try. */
export const MAX_REPLICA_ATTEMPTS = 3;
/** Connection failures that mean nothing listens at a replica's address any more. */
const GONE = new Set(['ECONNREFUSED', 'ECONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** Failures after which the replica cannot have made a session, so another may be asked. */
const RETRYABLE = new Set([...GONE, 'ECONNRESET', 'EPIPE']);
/** A session whose tag no replica has may belong to one found a moment ago: look again, this often at most. */
const UNKNOWN_TAG_REFRESH_MS = 500;
/**
 * How long a connection to a replica may take to open. Replicas sit on the same network as the
 * gateway and answer a SYN within milliseconds; an address whose container was killed never
 * does, and the kernel would keep retrying for minutes. Past this the replica counts as gone.
 */
export const CONNECT_TIMEOUT_MS = 2_000;
/** Failed checks in a row after which a replica that served is called down: one slow answer under load is not a death. */
const FAILED_CHECKS_FOR_DOWN = 2;
/** How long a replica that is down and out of DNS stays listed (/readyz) before it is forgotten. */
const FORGET_AFTER_MS = 60_000;
/** How long a DNS query may take before the round goes on without it. */
const DNS_TIMEOUT_MS = 2_000;

export type ReplicaState = 'starting' | 'serving' | 'draining' | 'down';

/** One Bokeh server. */
export interface Upstream {
  /** Base URL, e.g. http://172.20.0.3:5006: internal, never shown to browsers. */
  readonly url: URL;
  /** scheme://host:port, for the proxy's target and for messages. */
  readonly origin: string;
  /** The keep-alive pool for HTTP requests to this server. */
  readonly agent: Agent;
  /** An HTTP request for `path` (with query) on this server; `options.agent` defaults to the pool. */
  request(path: string, options: RequestOptions): ClientRequest;
}

/** A replica as /readyz reports it. */
export interface ReplicaReport {
  url: string;
  state: ReplicaState;
  /** Sessions the replica held at its last check, as Bokeh counts them. */
  sessions: number;
}

export interface Upstreams {
  /** What BOKEH_URL names, for logs and /readyz. */
  readonly name: string;
  /** Finds the replicas' addresses, then keeps looking and checking every BOKEH_DISCOVERY_INTERVAL_MS. */
  start(): Promise<void>;
  /** Looks for replicas and checks each one now (or waits for the round under way). */
  refresh(): Promise<void>;
  /**
   * An id for a new session, tagged for the replica that should hold it; `avoid` just failed.
   * Undefined when every serving replica holds MAX_SESSIONS_PER_REPLICA sessions.
   */
  newSessionId(avoid?: ReadonlySet<Upstream>): string | undefined;
  /** The replica that holds session `id`, or the one that takes it over; `avoid` just failed. */
  forSession(id: string, avoid?: ReadonlySet<Upstream>): Promise<Upstream>;
  /** A replica for a request that no session depends on (static files, metadata). */
  any(): Upstream;
  /** Every replica that may serve, for readiness; the configured URL when none is known. */
  all(): readonly Upstream[];
  /** What a request learnt before the next check would: the replica drains, or is gone. */
  report(upstream: Upstream, state: 'draining' | 'down'): void;
  /** Every replica found, with its state. */
  replicas(): ReplicaReport[];
  /** Calls `listener` each time a replica goes down (its sessions are lost with it). */
  onDown(listener: (upstream: Upstream) => void): void;
  /** Stops looking and closes the pools' idle connections; for shutdown. */
  close(): void;
}

/**
 * One keep-alive pool to Bokeh for the whole gateway: opening a TCP connection per request made
 * proxied requests tens of times slower. An Agent keeps a pool per host and port, so one serves
 * every replica. No-delay because Bokeh's replies are many small writes.
 */
function keepAliveAgent(): Agent {
  // Agents hand socket options such as noDelay on to net.connect; the typings omit them.
  const options: AgentOptions & { noDelay: boolean } = {
    keepAlive: true,
    keepAliveMsecs: 10_000,
    maxSockets: 256,
    maxFreeSockets: 32,
    scheduling: 'lifo',
    noDelay: true,
  };
  return new Agent(options);
}

function upstreamAt(url: URL, agent: Agent): Upstream {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return {
    url,
    origin: url.origin,
    agent,
    request: (path, options) => {
      const req = send(new URL(path, url), { agent, ...options });
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => {
          req.destroy(Object.assign(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`), { code: 'ECONNECT_TIMEOUT' }));
        }, CONNECT_TIMEOUT_MS);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      return req;
    },
  };
}

/** What a request that failed to reach a replica says about it. */
export interface ReplicaFailure {
  /** What the replica turned out to be, when the failure tells. */
  replica?: 'draining' | 'down';
  /** Whether no session can have been made, so that another replica may be asked. */
  retry: boolean;
  /** What went wrong, for metrics: a Node error code, "draining", "refused" or "bad_handshake". */
  kind?: string;
}

/** A connection or request error, read as what it says about the replica. */
export function failureOf(err: NodeJS.ErrnoException): ReplicaFailure {
  const code = err.code ?? '';
  return { ...(GONE.has(code) ? { replica: 'down' as const } : {}), retry: RETRYABLE.has(code), kind: code || 'other' };
}

/** Whether an answer is a draining replica's refusal to start a session (bokeh/launcher/replica.py). */
export function refusedForDrain(answer: IncomingMessage): boolean {
  return answer.statusCode === 503 && answer.headers[REPLICA_STATE_HEADER] === 'draining';
}

/** The tag that starts the ids of sessions held by the replica at `origin`. */
export function replicaTag(secretKey: Buffer, origin: string): string {
  const digest = createHmac('sha256', secretKey).update(`replica ${origin}`).digest();
  let tag = '';
  for (let i = 0; i < TAG_LENGTH; i++) tag += SESSION_ID_ALPHABET[digest[i]! % SESSION_ID_ALPHABET.length];
  return tag;
}

/** Rendezvous hashing: every gateway ranks the replicas alike for a given session id. */
function rendezvousScore(sessionId: string, origin: string): number {
  return createHash('sha256').update(`${sessionId} ${origin}`).digest().readUIntBE(0, 6);
}

/** Every address `url`'s host resolves to, as URLs; an IP address is itself. */
async function resolveReplicaUrls(url: URL, resolver: Resolver): Promise<URL[]> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  if (isIP(host) !== 0) {
    addresses = [host];
  } else {
    // All A and AAAA records: dns.lookup would give one address, and so one replica.
    const answers = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    addresses = answers.flatMap((answer) => (answer.status === 'fulfilled' ? answer.value : []));
    if (addresses.length === 0) {
      // Names that DNS does not know may still be in /etc/hosts (localhost, a hosts entry).
      addresses = await lookup(host, { all: true }).then(
        (found) => found.map((entry) => entry.address),
        () => [],
      );
    }
  }
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return [...new Set(addresses)].map((address) => new URL(`${url.protocol}//${isIP(address) === 6 ? `[${address}]` : address}:${port}`));
}

interface Replica extends Upstream {
  readonly tag: string;
  state: ReplicaState;
  /** Whether the last lookup still returned this replica's address. */
  inDns: boolean;
  /** Sessions the replica reported at its last check. */
  sessions: number;
  /** Sessions this gateway started there since that check. */
  started: number;
  /** Checks in a row that got no answer. */
  failedChecks: number;
  /** When it was last seen down and out of DNS. */
  goneSince: number | undefined;
}

interface Status {
  state: ReplicaState;
  sessions: number;
}

export function createUpstreams(config: Config, log?: Logger): Upstreams {
  const agent = keepAliveAgent();
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 });
  const byOrigin = new Map<string, Replica>();
  const byTag = new Map<string, Replica>();
  // Until a replica is found, requests go to the configured URL itself: its failure (a name that
  // does not resolve, a refused connection) is the clearest message there is.
  const configured = upstreamAt(config.bokehUrls[0]!, agent);
  const name = config.bokehUrls.map((url) => url.origin).join(',');
  const statusPath = `${config.bokehPrefix}${REPLICA_STATUS_PATH}`;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> | undefined;
  let lastRound = 0;
  let closed = false;
  /** Called once a round knows the addresses, before it has checked them. */
  let namesKnown: () => void = () => undefined;

  const downListeners: Array<(upstream: Upstream) => void> = [];
  const setState = (replica: Replica, state: ReplicaState, why?: string): void => {
    if (replica.state === state) return;
    const from = replica.state;
    replica.state = state;
    const level = state === 'down' ? 'warn' : 'info';
    log?.[level]({ replica: replica.origin, from, to: state, ...(why === undefined ? {} : { why }) }, `bokeh replica ${state}`);
    if (state === 'down') for (const listener of downListeners) listener(replica);
  };

  /** Asks a replica how it is. A Bokeh without the launcher's status route counts as serving. */
  const check = (replica: Replica): Promise<Status> =>
    new Promise((resolve) => {
      const req = replica.request(statusPath, { timeout: config.readinessTimeoutMs, headers: { accept: 'application/json' } });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < 4096) body += chunk;
        });
        res.on('end', () => {
          if (res.statusCode === 200) {
            try {
              const reported = JSON.parse(body) as { state?: unknown; sessions?: unknown };
              const sessions = typeof reported.sessions === 'number' ? reported.sessions : 0;
              return resolve({ state: reported.state === 'draining' ? 'draining' : 'serving', sessions });
            } catch {
              return resolve({ state: 'serving', sessions: 0 });
            }
          }
          resolve({ state: res.headers[REPLICA_STATE_HEADER] === 'draining' ? 'draining' : 'serving', sessions: replica.sessions });
        });
        res.on('error', () => resolve({ state: 'down', sessions: replica.sessions }));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', () => resolve({ state: 'down', sessions: replica.sessions }));
      req.end();
    });

  const discover = async (): Promise<void> => {
    lastRound = Date.now();
    const found = (await Promise.all(config.bokehUrls.map((url) => resolveReplicaUrls(url, resolver)))).flat();
    const seen = new Set<string>();
    for (const url of found) {
      seen.add(url.origin);
      if (byOrigin.has(url.origin)) continue;
      const replica: Replica = {
        ...upstreamAt(url, agent),
        tag: replicaTag(config.secretKey, url.origin),
        state: 'starting',
        inDns: true,
        sessions: 0,
        started: 0,
        failedChecks: 0,
        goneSince: undefined,
      };
      byOrigin.set(url.origin, replica);
      byTag.set(replica.tag, replica);
      log?.info({ replica: url.origin }, 'bokeh replica found');
    }
    for (const replica of byOrigin.values()) replica.inDns = seen.has(replica.origin);
    namesKnown();
    await Promise.all(
      [...byOrigin.values()].map(async (replica) => {
        const status = await check(replica);
        replica.sessions = status.sessions;
        replica.started = 0;
        replica.failedChecks = status.state === 'down' ? replica.failedChecks + 1 : 0;
        // One check without an answer while the replica served, and still in DNS, may be load.
        const stillUp = (replica.state === 'serving' || replica.state === 'draining') && replica.inDns;
        if (status.state === 'down' && stillUp && replica.failedChecks < FAILED_CHECKS_FOR_DOWN) return;
        // Out of DNS but answering: on its way out, so it keeps its sessions and gets no new ones.
        const state = status.state === 'serving' && !replica.inDns ? 'draining' : status.state;
        setState(replica, state, state === 'draining' && status.state === 'serving' ? 'no longer in DNS' : undefined);
      }),
    );
    // A dead replica stays listed as down for a while, so that /readyz shows what happened.
    const now = Date.now();
    for (const replica of [...byOrigin.values()]) {
      if (replica.inDns || replica.state !== 'down') {
        replica.goneSince = undefined;
        continue;
      }
      replica.goneSince ??= now;
      if (now - replica.goneSince < FORGET_AFTER_MS) continue;
      byOrigin.delete(replica.origin);
      byTag.delete(replica.tag);
      log?.info({ replica: replica.origin }, 'bokeh replica removed');
    }
  };

  /** One discovery round at a time; callers that come while one runs wait for it. */
  const runRound = (): Promise<void> => {
    round ??= discover()
      .catch((err: unknown) => log?.warn({ err }, 'bokeh replica discovery failed'))
      .finally(() => {
        round = undefined;
      });
    return round;
  };

  const schedule = (): void => {
    if (closed) return;
    timer = setTimeout(() => void runRound().finally(schedule), config.discoveryIntervalMs);
    timer.unref();
  };

  const live = (avoid?: ReadonlySet<Upstream>, states: readonly ReplicaState[] = ['serving']): Replica[] =>
    [...byOrigin.values()].filter((replica) => states.includes(replica.state) && replica.inDns && !avoid?.has(replica));

  /** Serving replicas, else ones not checked yet (a gateway that just started). */
  const candidates = (avoid?: ReadonlySet<Upstream>): Replica[] => {
    const serving = live(avoid);
    return serving.length > 0 ? serving : live(avoid, ['starting']);
  };

  const takeOver = (sessionId: string, avoid?: ReadonlySet<Upstream>): Upstream => {
    let best: Replica | undefined;
    let bestScore = -1;
    for (const replica of candidates(avoid)) {
      const score = rendezvousScore(sessionId, replica.origin);
      if (score > bestScore) [best, bestScore] = [replica, score];
    }
    return best ?? configured;
  };

  return {
    name,
    async start() {
      // Requests may come once the addresses are known: a replica not checked yet is used when
      // no checked one serves, so a slow check delays nothing.
      const named = new Promise<void>((resolve) => (namesKnown = resolve));
      const first = runRound();
      void first.finally(schedule);
      await Promise.race([named, first]);
    },
    refresh: runRound,
    newSessionId(avoid) {
      const load = (replica: Replica) => replica.sessions + replica.started;
      const cap = config.maxSessionsPerReplica;
      const found = candidates(avoid);
      if (found.length === 0) return generateSessionId(config.secretKey);
      const choices = cap === 0 ? found : found.filter((replica) => load(replica) < cap);
      if (choices.length === 0) return undefined;
      const least = Math.min(...choices.map(load));
      const ties = choices.filter((replica) => load(replica) === least);
      const chosen = ties[randomInt(ties.length)]!;
      chosen.started += 1;
      return generateSessionId(config.secretKey, chosen.tag);
    },
    async forSession(id, avoid) {
      const tag = id.slice(0, TAG_LENGTH);
      if (!byTag.has(tag) && Date.now() - lastRound >= UNKNOWN_TAG_REFRESH_MS) await runRound();
      const owner = byTag.get(tag);
      // Draining replicas still hold their sessions; only a dead one hands them over.
      if (owner !== undefined && owner.state !== 'down' && !avoid?.has(owner)) return owner;
      return takeOver(id, avoid);
    },
    any() {
      const choices = candidates();
      return choices.length === 0 ? configured : choices[randomInt(choices.length)]!;
    },
    all() {
      const known = [...byOrigin.values()];
      return known.length === 0 ? [configured] : known;
    },
    report(upstream, state) {
      const replica = byOrigin.get(upstream.origin);
      if (replica !== undefined && replica.state !== 'down') setState(replica, state, 'a request found it so');
    },
    onDown(listener) {
      downListeners.push(listener);
    },
    replicas() {
      return [...byOrigin.values()].map((replica) => ({ url: replica.origin, state: replica.state, sessions: replica.sessions + replica.started }));
    },
    close() {
      closed = true;
      clearTimeout(timer);
      agent.destroy();
    },
  };
}
