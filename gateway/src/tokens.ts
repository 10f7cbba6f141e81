/**
 * Bokeh session ids and session tokens, made and read exactly as `bokeh.util.token` does, so
 * that a Bokeh server started with `--session-ids external-signed` accepts what the gateway
 * mints and the gateway can check what a browser presents.
 *
 *   session id  44 random [A-Za-z0-9] + "." + b64url(HMAC-SHA256(key, id))
 *   token       b64url(JSON {session_id, session_expiry, __bk__zlib_: b64url(zlib(JSON extra))})
 *               + "." + b64url(HMAC-SHA256(key, that first part))
 *
 * b64url drops the "=" padding. The JSON is written the way Python's `json.dumps` writes it
 * (", " and ": " separators, non-ASCII escaped) so the first part of a token is the same
 * bytes Bokeh would produce for the same content; bytes values travel as {"bytes": b64url}.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ID_LENGTH = 44;
const ZLIB_KEY = '__bk__zlib_';
/** Bokeh's `--session-token-expiration` default, in seconds. */
export const DEFAULT_EXPIRATION_S = 300;

/** A JSON value as Bokeh's token payload holds it; Buffers stand for Python bytes. */
export type PayloadValue = null | boolean | number | string | Buffer | PayloadValue[] | { [key: string]: PayloadValue };
export type Payload = { [key: string]: PayloadValue };

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function fromB64url(text: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TokenFormatError('not base64url');
  return Buffer.from(text, 'base64url');
}

function signature(text: string, secretKey: Buffer): string {
  return b64url(createHmac('sha256', secretKey).update(text, 'utf8').digest());
}

function sameSignature(expected: string, provided: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(provided);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Python's json string escaping with ensure_ascii: everything outside space..~ is escaped. */
function pyString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const ch = text[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** `json.dumps(value)` with Bokeh's bytes encoder, for the values a token carries. */
export function pythonJson(value: PayloadValue): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('token payloads hold finite numbers only');
    if (!Number.isInteger(value)) throw new TypeError('token payloads hold whole numbers only (Python and JavaScript print fractions differently)');
    return String(value);
  }
  if (typeof value === 'string') return pyString(value);
  if (Buffer.isBuffer(value)) return `{"bytes": ${pyString(b64url(value))}}`;
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  return `{${Object.entries(value)
    .map(([key, item]) => `${pyString(key)}: ${pythonJson(item)}`)
    .join(', ')}}`;
}

/** Inverse of Bokeh's bytes encoder: an object whose only key is "bytes" is a byte string. */
function revive(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const encoded = (value as { bytes?: unknown }).bytes;
    if (keys.length === 1 && typeof encoded === 'string') return fromB64url(encoded);
  }
  return value;
}

export class TokenFormatError extends Error {
  override readonly name = 'TokenFormatError';
}

/**
 * A fresh, unguessable session id, signed with the key: 44 characters of [A-Za-z0-9], as Bokeh
 * makes them. `start`, when given, is the id's first characters (the gateway puts the tag of the
 * replica that will hold the session there, see upstream.ts); the rest is random, 261 bits
 * without a start and 214 with an 8-character one.
 */
export function generateSessionId(secretKey: Buffer, start = ''): string {
  if (start.length > ID_LENGTH - 32 || !/^[A-Za-z0-9]*$/.test(start)) throw new RangeError(`a session id cannot start with "${start}"`);
  let id = start;
  while (id.length < ID_LENGTH) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return `${id}.${signature(id, secretKey)}`;
}

/** 62 characters: base62 digits for the tags that start session ids. */
export const SESSION_ID_ALPHABET = ID_ALPHABET;

export interface TokenOptions {
  secretKey: Buffer;
  /** Seconds from `now` until Bokeh refuses to open a WebSocket with the token. */
  expiresInSeconds?: number;
  /** What the app reads as `curdoc().session_context.token_payload` (and `.request`). */
  extraPayload?: Payload;
  /** Unix time in seconds; defaults to the clock. */
  now?: number;
}

export function generateToken(sessionId: string, { secretKey, expiresInSeconds = DEFAULT_EXPIRATION_S, extraPayload, now }: TokenOptions): string {
  const issued = now ?? Math.floor(Date.now() / 1000);
  const payload: Payload = { session_id: sessionId, session_expiry: issued + expiresInSeconds };
  if (extraPayload && Object.keys(extraPayload).length > 0) {
    if ('session_id' in extraPayload) throw new TypeError("extra payload for session tokens may not contain 'session_id'");
    payload[ZLIB_KEY] = b64url(deflateSync(Buffer.from(pythonJson(extraPayload), 'utf8'), { level: 9 }));
  }
  const token = b64url(pythonJson(payload));
  return `${token}.${signature(token, secretKey)}`;
}

function decodeFirstPart(token: string): Record<string, unknown> {
  const first = token.split('.', 1)[0]!;
  let decoded: unknown;
  try {
    decoded = JSON.parse(fromB64url(first).toString('utf8'));
  } catch {
    throw new TokenFormatError('the token is not base64url-encoded JSON');
  }
  if (decoded === null || typeof decoded !== 'object' || Array.isArray(decoded)) throw new TokenFormatError('the token is not a JSON object');
  const fields = decoded as Record<string, unknown>;
  if (typeof fields.session_id !== 'string') throw new TokenFormatError('the token has no session_id');
  return fields;
}

/** The session id inside a token (unverified), like `get_session_id`. */
export function sessionIdFromToken(token: string): string {
  return decodeFirstPart(token).session_id as string;
}

/** Everything in a token but the session id, extra payload unpacked, like `get_token_payload`. */
export function tokenPayload(token: string): Record<string, unknown> {
  const { session_id: _id, [ZLIB_KEY]: compressed, ...rest } = decodeFirstPart(token);
  if (compressed === undefined) return rest;
  if (typeof compressed !== 'string') throw new TokenFormatError("the token's extra payload is not a string");
  let extra: unknown;
  try {
    // A token fits in a header, so its payload cannot legitimately inflate past a few MB.
    extra = JSON.parse(inflateSync(fromB64url(compressed), { maxOutputLength: 4 * 1024 * 1024 }).toString('utf8'), revive);
  } catch {
    throw new TokenFormatError("the token's extra payload is not zlib-compressed JSON");
  }
  if (extra === null || typeof extra !== 'object' || Array.isArray(extra)) throw new TokenFormatError("the token's extra payload is not a JSON object");
  return { ...rest, ...(extra as Record<string, unknown>) };
}

export function checkSessionIdSignature(sessionId: string, secretKey: Buffer): boolean {
  const dot = sessionId.indexOf('.');
  if (dot === -1) return false;
  return sameSignature(signature(sessionId.slice(0, dot), secretKey), sessionId.slice(dot + 1));
}

/** Both signatures, the token's and its session id's, as `check_token_signature` does. */
export function checkTokenSignature(token: string, secretKey: Buffer): boolean {
  const dot = token.indexOf('.');
  if (dot === -1) return false;
  if (!sameSignature(signature(token.slice(0, dot), secretKey), token.slice(dot + 1))) return false;
  return checkSessionIdSignature(sessionIdFromToken(token), secretKey);
}

export type TokenCheck =
  | { ok: true; sessionId: string; expiry: number; payload: Record<string, unknown> }
  | { ok: false; problem: 'malformed' | 'signature' | 'expired'; message: string };

/**
 * Everything Bokeh checks before it opens a session's WebSocket, done at the gateway so that a
 * bad token is refused with a reason instead of a socket that Bokeh closes without one.
 */
export function verifyToken(token: string, secretKey: Buffer, now = Math.floor(Date.now() / 1000)): TokenCheck {
  let payload: Record<string, unknown>;
  let sessionId: string;
  try {
    sessionId = sessionIdFromToken(token);
    payload = tokenPayload(token);
  } catch (err) {
    return { ok: false, problem: 'malformed', message: `The session token is malformed: ${(err as Error).message}.` };
  }
  if (!checkTokenSignature(token, secretKey)) {
    return { ok: false, problem: 'signature', message: "The session token is not signed with this deployment's key." };
  }
  const expiry = payload.session_expiry;
  if (typeof expiry !== 'number') return { ok: false, problem: 'malformed', message: 'The session token has no session_expiry.' };
  if (now >= expiry) return { ok: false, problem: 'expired', message: 'The session token has expired; reload the page to start a new session.' };
  return { ok: true, sessionId, expiry, payload };
}
