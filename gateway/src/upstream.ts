/**
 * Which Bokeh to talk to. Every request the gateway sends to Bokeh, proxied or its own (the
 * static cache's fetches, readiness checks, WebSocket handshakes), asks this module for an
 * Upstream first; nothing else knows where Bokeh is.
 *
 * Today there is one Bokeh, BOKEH_URL, so every choice returns it. The choices are still named
 * for what they will mean with several replicas behind one name:
 *   forSession(id)  the replica that holds a Bokeh session: a session lives in one server's
 *                   memory, so the request that creates it and its WebSocket must meet there
 *   any()           a replica for a request that no session depends on (static files, metadata)
 *   all()           every replica, for readiness and for closing down
 * Finding replicas (every address of a DNS name), health checks, affinity and draining belong
 * here, behind these three, so that callers do not change when they come.
 */
import { Agent, request as httpRequest, type AgentOptions, type ClientRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Config } from './config.js';

/** One Bokeh server. */
export interface Upstream {
  /** Base URL, e.g. http://bokeh:5006: internal, never shown to browsers. */
  readonly url: URL;
  /** scheme://host:port, for the proxy's target and for messages. */
  readonly origin: string;
  /** The keep-alive pool for HTTP requests to this server. */
  readonly agent: Agent;
  /** An HTTP request for `path` (with query) on this server; `options.agent` defaults to the pool. */
  request(path: string, options: RequestOptions): ClientRequest;
}

export interface Upstreams {
  /** What BOKEH_URL names, for logs and /readyz. */
  readonly name: string;
  forSession(sessionId: string): Upstream;
  any(): Upstream;
  all(): readonly Upstream[];
  /** Closes the pools' idle connections; for shutdown. */
  close(): void;
}

/**
 * One keep-alive pool to Bokeh for the whole gateway: opening a TCP connection per request made
 * proxied requests tens of times slower. No-delay because Bokeh's replies are many small writes.
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
    request: (path, options) => send(new URL(path, url), { agent, ...options }),
  };
}

export function createUpstreams(config: Config): Upstreams {
  // An Agent keeps a pool per host and port, so one Agent would serve several replicas too.
  const agent = keepAliveAgent();
  const only = upstreamAt(config.bokehUrl, agent);
  const replicas = [only] as const;
  return {
    name: config.bokehUrl.origin,
    forSession: () => only,
    any: () => only,
    all: () => replicas,
    close: () => agent.destroy(),
  };
}
