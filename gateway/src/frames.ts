/**
 * RFC 6455 frames as the relay sees them: it reads each frame's header and passes the frame on
 * unchanged, payload and mask included, the way NGINX relays a WebSocket. Reading headers is
 * enough to enforce what the gateway promises (a message limit, well-formed frames) and to know
 * where one frame ends, which is the only place a close frame of our own may be put in.
 */
import { randomBytes } from 'node:crypto';
import { CLOSE } from './ws-constants.js';

/** A rule the stream broke, as the close code and reason the peers get. */
export interface Violation {
  code: number;
  reason: string;
}

export interface ScanResult {
  /** The bytes to pass on: whole frames, or a frame's header and the start of its payload. */
  forward: Buffer | undefined;
  /** Set when the stream broke a rule. Nothing from the offending frame on was passed on. */
  violation?: Violation;
  /** Set when a close frame was passed on; its code, when it carried one. */
  closed?: { code: number | undefined };
  /** Set when `hold()` was waiting and a frame boundary came: stop here and write your frame. */
  held?: true;
}

/** Codes a close frame may carry on the wire (RFC 6455 section 7.4 and the IANA registry). */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

const OPCODES = new Set([0x0, 0x1, 0x2, 0x8, 0x9, 0xa]);
const CLOSE_OPCODE = 0x8;
const PROTOCOL_ERROR = CLOSE.protocolError;
const TOO_BIG = CLOSE.tooBig;

/**
 * Follows the frames of one direction of a WebSocket. `masked` is what RFC 6455 requires of that
 * direction: frames from a browser are masked, frames from a server are not. No extension is ever
 * negotiated through the relay, so the reserved bits must be clear.
 */
export class FrameScanner {
  /** The start of a header (or of a control frame) that the last chunk cut off. */
  private pending: Buffer | undefined;
  /** Payload bytes of the current data frame still to come. */
  private remaining = 0;
  /** Whether the current data frame ends its message. */
  private finalFrame = true;
  /** Between the first and the last frame of a fragmented message. */
  private fragmented = false;
  private messageBytes = 0;
  /** Data messages whose last frame has passed, for metrics. */
  messages = 0;
  /** After a close frame, a violation or our own close, nothing more passes. */
  private stopped = false;
  private holding = false;

  constructor(
    private readonly masked: boolean,
    private readonly maxMessageBytes: number,
  ) {}

  /** Whether nothing of a frame is on its way, so a frame of our own may be written now. */
  get atBoundary(): boolean {
    return this.remaining === 0;
  }

  /**
   * Asks to stop at the next frame boundary. Returns true when the stream is at one already;
   * otherwise a later `scan` returns `held` once the current frame is through.
   */
  hold(): boolean {
    if (this.stopped) return true;
    if (this.atBoundary) {
      this.stopped = true;
      return true;
    }
    this.holding = true;
    return false;
  }

  scan(chunk: Buffer): ScanResult {
    if (this.stopped) return { forward: undefined };
    const buf = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = undefined;
    const result: ScanResult = { forward: undefined };
    let pos = 0;

    while (pos < buf.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, buf.length - pos);
        pos += take;
        this.remaining -= take;
        if (this.remaining === 0) this.frameDone();
        continue;
      }
      if (this.holding) {
        this.stop();
        result.held = true;
        break;
      }
      const header = this.readHeader(buf, pos);
      if (header === undefined) {
        this.pending = Buffer.from(buf.subarray(pos));
        break;
      }
      if ('violation' in header) {
        this.stop();
        result.violation = header.violation;
        break;
      }
      const { opcode, fin, headerLength, payloadLength, maskAt } = header;
      if (opcode >= CLOSE_OPCODE) {
        // Control frames are at most 125 bytes: keep one whole until it has arrived.
        const end = pos + headerLength + payloadLength;
        if (end > buf.length) {
          this.pending = Buffer.from(buf.subarray(pos));
          break;
        }
        if (opcode === CLOSE_OPCODE) {
          const closed = closeCode(buf, pos + headerLength, payloadLength, maskAt === undefined ? undefined : pos + maskAt);
          if ('violation' in closed) {
            this.stop();
            result.violation = closed.violation;
            break;
          }
          pos = end;
          this.stop();
          result.closed = { code: closed.code };
          break;
        }
        pos = end;
        continue;
      }
      if (opcode === 0 && !this.fragmented) {
        this.stop();
        result.violation = { code: PROTOCOL_ERROR, reason: 'A continuation frame arrived outside a fragmented message.' };
        break;
      }
      if (opcode !== 0 && this.fragmented) {
        this.stop();
        result.violation = { code: PROTOCOL_ERROR, reason: 'A new message began before the fragmented one ended.' };
        break;
      }
      if (this.messageBytes + payloadLength > this.maxMessageBytes) {
        this.stop();
        result.violation = this.tooBig();
        break;
      }
      this.messageBytes += payloadLength;
      this.fragmented = !fin;
      this.finalFrame = fin;
      pos += headerLength;
      this.remaining = payloadLength;
      if (payloadLength === 0) this.frameDone();
    }

    // The frame the hold waited for ended with this chunk.
    if (this.holding && this.remaining === 0 && !this.stopped) {
      this.stop();
      result.held = true;
    }
    if (pos > 0) result.forward = pos === buf.length ? buf : buf.subarray(0, pos);
    return result;
  }

  private tooBig(): Violation {
    return { code: TOO_BIG, reason: `Message larger than WS_MAX_MESSAGE_BYTES (${this.maxMessageBytes} bytes).` };
  }

  private frameDone(): void {
    if (!this.finalFrame) return;
    this.messageBytes = 0;
    this.messages += 1;
  }

  private stop(): void {
    this.stopped = true;
    this.holding = false;
    this.pending = undefined;
  }

  private readHeader(
    buf: Buffer,
    pos: number,
  ): { opcode: number; fin: boolean; headerLength: number; payloadLength: number; maskAt: number | undefined } | { violation: Violation } | undefined {
    if (buf.length - pos < 2) return undefined;
    const b0 = buf[pos]!;
    const b1 = buf[pos + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const length7 = b1 & 0x7f;
    const lengthBytes = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
    const headerLength = 2 + lengthBytes + (masked ? 4 : 0);
    const protocol = (reason: string) => ({ violation: { code: PROTOCOL_ERROR, reason } });

    if ((b0 & 0x70) !== 0) return protocol('Reserved frame bits are set, but no extension was negotiated.');
    if (!OPCODES.has(opcode)) return protocol(`Unknown frame opcode ${opcode}.`);
    if (masked !== this.masked) return protocol(this.masked ? 'Frames from a client must be masked.' : 'Frames from a server must not be masked.');
    if (opcode >= CLOSE_OPCODE && (!fin || length7 > 125)) return protocol('Control frames must be whole and at most 125 bytes.');
    if (buf.length - pos < headerLength) return undefined;

    let payloadLength = length7;
    if (length7 === 126) payloadLength = buf.readUInt16BE(pos + 2);
    else if (length7 === 127) {
      const high = buf.readUInt32BE(pos + 2);
      // Anything past 2^53 is no real message and beyond every limit this relay allows.
      if (high >= 0x200000) return { violation: this.tooBig() };
      payloadLength = high * 0x1_0000_0000 + buf.readUInt32BE(pos + 6);
    }
    return { opcode, fin, headerLength, payloadLength, maskAt: masked ? 2 + lengthBytes : undefined };
  }
}

/** The code of a close frame at `at`, unmasked when it is masked, and whether it may be sent. */
function closeCode(buf: Buffer, at: number, length: number, maskAt: number | undefined): { code: number | undefined } | { violation: Violation } {
  if (length === 0) return { code: undefined };
  if (length === 1) return { violation: { code: PROTOCOL_ERROR, reason: 'A close frame carried a one-byte payload.' } };
  const mask = (i: number) => (maskAt === undefined ? 0 : buf[maskAt + i]!);
  const code = ((buf[at]! ^ mask(0)) << 8) | (buf[at + 1]! ^ mask(1));
  if (!isSendableCloseCode(code)) return { violation: { code: PROTOCOL_ERROR, reason: `Close code ${code} may not be sent.` } };
  return { code };
}

/** A close frame's payload: the code, then a reason cut to fit the 125-byte control frame limit. */
function closePayload(code: number, reason: string): Buffer {
  let text = Buffer.from(reason);
  if (text.length > 123)
    text = Buffer.from(
      text
        .subarray(0, 120)
        .toString()
        .replace(/\uFFFD$/, ''),
    );
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return payload;
}

/** A close frame as a server sends it (unmasked): what the gateway writes to a browser. */
export function serverCloseFrame(code: number, reason: string): Buffer {
  const payload = closePayload(code, reason);
  return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
}

/** A close frame as a client sends it (masked): what the gateway writes to Bokeh. */
export function clientCloseFrame(code: number, reason: string): Buffer {
  const payload = closePayload(code, reason);
  const mask = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}
