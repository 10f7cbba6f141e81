/**
 * A protocol-level Bokeh client, enough to act like BokehJS on the wire: connect with the
 * ["bokeh", token] subprotocols, read multi-frame messages (header, metadata, content, then a
 * text buffer header and a binary payload per buffer), pull the document and send PATCH-DOCs.
 */
import { randomUUID } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import WebSocket from 'ws';

export interface BokehMessage {
  header: { msgid: string; msgtype: string; reqid?: string; num_buffers?: number };
  metadata: Record<string, unknown>;
  content: Record<string, unknown> & { events?: PatchEvent[]; doc?: unknown };
  buffers: Buffer[];
}

export interface PatchEvent {
  kind: string;
  model?: { id: string };
  attr?: string;
  new?: unknown;
  [key: string]: unknown;
}

export interface BokehModel {
  type: 'object';
  name: string;
  id: string;
  attributes?: Record<string, unknown>;
}

/** The autoload.js URL for an app, as `server_document(origin + prefix + "/" + app)` builds it. */
export function autoloadUrlFor(origin: string, prefix: string, app: string): string {
  const absolute = `${origin}${prefix}/${app}`;
  return `${absolute}/autoload.js?bokeh-autoload-element=x&bokeh-app-path=${prefix}/${app}&bokeh-absolute-url=${absolute}`;
}

/** The autoload.js URL that an app page's embed script requests. */
export function autoloadSrc(page: string): string {
  const src = /xhr\.open\("GET", ("[^"]+")/.exec(page)?.[1];
  if (!src) throw new Error('no autoload request in the page');
  return JSON.parse(src) as string;
}

/**
 * The BokehJS scripts an autoload.js response has the browser load, as absolute URLs with the
 * version Bokeh adds, e.g. http://host/bokeh/static/js/bokeh.min.js?v=<128 hex digits>.
 */
export function bokehJsUrls(js: string): string[] {
  return [...js.matchAll(/https?:\/\/[^\s"'`\\)]+\/static\/js\/[\w.-]+\.js(?:\?v=[0-9a-f]+)?/g)].map((match) => match[0]);
}

/** The session token embedded in an autoload.js response. */
export function tokenFromAutoload(js: string): string {
  const match = /"token":\s*"([^"]+)"/.exec(js) ?? /\\"token\\":\s*\\"([^"\\]+)\\"/.exec(js);
  if (!match?.[1]) throw new Error('autoload.js carries no session token');
  return match[1];
}

/**
 * What a Bokeh token says: session id, expiry, and the extra payload that Bokeh fills with the
 * request's headers, cookies and arguments (zlib-compressed JSON under "__bk__zlib_").
 */
export function tokenPayload(token: string): { session_id: string; session_expiry: number; extra: Record<string, unknown> } {
  const body = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
  const packed = body.__bk__zlib_;
  const extra = typeof packed === 'string' ? (JSON.parse(inflateSync(Buffer.from(packed, 'base64url')).toString()) as Record<string, unknown>) : {};
  return { session_id: String(body.session_id), session_expiry: Number(body.session_expiry), extra };
}

/** Every model object in a document or event payload, wherever it is nested. */
export function models(value: unknown, found: BokehModel[] = []): BokehModel[] {
  if (Array.isArray(value)) {
    for (const item of value) models(item, found);
  } else if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record.type === 'object' && typeof record.id === 'string' && typeof record.name === 'string') found.push(record as unknown as BokehModel);
    for (const child of Object.values(record)) models(child, found);
  }
  return found;
}

/** The model whose Bokeh `name` property (set with `name=` in Python) is `name`. */
export function modelNamed(doc: unknown, name: string): BokehModel {
  const model = models(doc).find((candidate) => candidate.attributes?.name === name);
  if (!model) throw new Error(`no model named "${name}" in the document`);
  return model;
}

/** The server accepted the socket but closed it before the session started. */
export class SessionClosedError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`session closed before ACK with code ${code}${reason ? ` (${reason})` : ''}`);
  }
}

export class BokehClient {
  /** Every message received, in order. */
  readonly messages: BokehMessage[] = [];
  /** Received messages that no `next()` has taken yet. */
  private unclaimed: BokehMessage[] = [];
  private waiters: Array<{ test: (msg: BokehMessage) => boolean; resolve: (msg: BokehMessage) => void }> = [];
  private frames: Array<{ data: Buffer; binary: boolean }> = [];
  closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, binary: boolean) => {
      this.frames.push({ data, binary });
      this.assemble();
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens a session; resolves once the server's ACK has arrived. */
  static async connect(url: string, token: string, options: { origin?: string; ca?: Buffer; headers?: Record<string, string> } = {}): Promise<BokehClient> {
    const socket = new WebSocket(url, ['bokeh', token], {
      ...(options.origin ? { origin: options.origin } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
    });
    const client = new BokehClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with HTTP ${res.statusCode}`)));
    });
    const ack = client.next((msg) => msg.header.msgtype === 'ACK');
    const closed = client.closed.then(({ code, reason }) => {
      throw new SessionClosedError(code, reason);
    });
    await Promise.race([ack, closed]);
    closed.catch(() => undefined);
    return client;
  }

  private assemble(): void {
    for (;;) {
      if (this.frames.length < 3) return;
      const header = JSON.parse(this.frames[0]!.data.toString()) as BokehMessage['header'];
      const buffers = header.num_buffers ?? 0;
      const needed = 3 + 2 * buffers;
      if (this.frames.length < needed) return;
      const parts = this.frames.splice(0, needed);
      const message: BokehMessage = {
        header,
        metadata: JSON.parse(parts[1]!.data.toString()) as Record<string, unknown>,
        content: JSON.parse(parts[2]!.data.toString()) as BokehMessage['content'],
        buffers: parts
          .slice(3)
          .filter((part) => part.binary)
          .map((part) => part.data),
      };
      this.messages.push(message);
      const waiter = this.waiters.find((candidate) => candidate.test(message));
      if (waiter) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      } else {
        this.unclaimed.push(message);
      }
    }
  }

  /** The next message (already received and unclaimed, or future) that satisfies `test`. */
  next(test: (msg: BokehMessage) => boolean, timeoutMs = 10_000): Promise<BokehMessage> {
    const ready = this.unclaimed.findIndex(test);
    if (ready !== -1) return Promise.resolve(this.unclaimed.splice(ready, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching Bokeh message within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (msg) => {
          clearTimeout(timer);
          resolve(msg);
        },
      });
    });
  }

  send(msgtype: string, content: Record<string, unknown>): string {
    const msgid = randomUUID();
    this.socket.send(JSON.stringify({ msgid, msgtype }));
    this.socket.send('{}');
    this.socket.send(JSON.stringify(content));
    return msgid;
  }

  /** PULL-DOC-REQ, then the document from PULL-DOC-REPLY. */
  async pullDocument(): Promise<unknown> {
    const msgid = this.send('PULL-DOC-REQ', {});
    const reply = await this.next((msg) => msg.header.reqid === msgid);
    if (reply.header.msgtype !== 'PULL-DOC-REPLY') throw new Error(`expected PULL-DOC-REPLY, got ${reply.header.msgtype}`);
    return reply.content.doc;
  }

  /** Sets one property of one model, as a widget in the browser would. */
  setProperty(modelId: string, attr: string, value: unknown): string {
    return this.send('PATCH-DOC', { events: [{ kind: 'ModelChanged', model: { id: modelId }, attr, new: value }] });
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(1000);
    return this.closed;
  }
}
