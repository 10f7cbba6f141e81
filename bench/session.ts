/**
 * How a client gets a Bokeh session on each path, in one place.
 *
 * Through the gateway (directly or behind NGINX), a client does what a browser does: it fetches
 * autoload.js there and takes the session token the response carries; the gateway signs it. On
 * the paths that reach Bokeh without the gateway, the client asks Bokeh itself for autoload.js
 * with a fresh session id signed with the stack's key, as a service sharing BOKEH_SECRET_KEY
 * would (Bokeh runs with --session-ids external-signed and refuses anything else).
 */
import { request as httpRequest } from 'node:http';
import { generateSessionId } from '../gateway/src/tokens.js';
import { autoloadUrlFor, BokehClient, tokenFromAutoload } from '../client/bokeh-client.js';
import { PREFIX, type BenchPath } from './stack.js';

export interface Reply {
  status: number;
  body: string;
}

/** One plain HTTP GET (the bench talks to 127.0.0.1 only). */
export function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The autoload.js URL a page embedding `app` from this path would request; a new one for each
 * call, since each names a new session where Bokeh is reached without the gateway.
 */
export function autoloadUrl(path: BenchPath, app: string): string {
  const url = autoloadUrlFor(path.origin, PREFIX, app);
  return path.viaGateway ? url : `${url}&bokeh-session-id=${generateSessionId(path.secretKey)}`;
}

/**
 * The page a browser opens to see `app` on this path: the gateway's page for it, or Bokeh's own
 * app page with a fresh signed session id where Bokeh is reached without the gateway.
 */
export function appPageUrl(path: BenchPath, app: string): string {
  return path.viaGateway ? `${path.origin}/apps/${app}` : `${path.origin}${PREFIX}/${app}?bokeh-session-id=${generateSessionId(path.secretKey)}`;
}

/** A session token for `app` on `path`. */
export async function sessionToken(path: BenchPath, app: string): Promise<string> {
  const reply = await get(autoloadUrl(path, app));
  if (reply.status !== 200) throw new Error(`${path.label}: autoload.js for ${app} answered HTTP ${reply.status}`);
  return tokenFromAutoload(reply.body);
}

/** An open session on `app` through `path`, with its document pulled; `token` from sessionToken. */
export async function openSession(path: BenchPath, app: string, token?: string): Promise<{ client: BokehClient; doc: unknown }> {
  token ??= await sessionToken(path, app);
  const client = await BokehClient.connect(`${path.origin.replace(/^http/, 'ws')}${PREFIX}/${app}/ws`, token, { origin: path.origin });
  try {
    return { client, doc: await client.pullDocument() };
  } catch (err) {
    await client.close();
    throw err;
  }
}
