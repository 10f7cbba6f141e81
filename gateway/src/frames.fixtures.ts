/**
 * WebSocket frames for tests, encoded and decoded by hand as RFC 6455 section 5.2 lays them out,
 * independent of the gateway's own frame code.
 */
import { randomBytes } from 'node:crypto';

/** Encodes one frame as RFC 6455 section 5.2 lays it out. */
export function frame(
  opcode: number,
  payload: Buffer | string,
  { fin = true, mask = false, rsv = 0, length }: { fin?: boolean; mask?: boolean; rsv?: number; length?: number } = {},
): Buffer {
  const body = Buffer.from(payload);
  const size = length ?? body.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode) & 0xff];
  const maskBit = mask ? 0x80 : 0;
  if (size < 126) head.push(maskBit | size);
  else if (size < 65536) head.push(maskBit | 126, size >> 8, size & 0xff);
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(size));
    head.push(maskBit | 127, ...big);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), body]);
  const key = randomBytes(4);
  return Buffer.concat([Buffer.from(head), key, Buffer.from(body.map((byte, i) => byte ^ key[i % 4]!))]);
}

/** A close frame's payload: the code, then the reason in UTF-8. */
export function closePayload(code: number, reason: string): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}

export interface DecodedFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  /** Unmasked. */
  payload: Buffer;
}

/** Splits `bytes` into whole frames; `rest` is the start of a frame not yet complete. */
export function readFrames(bytes: Buffer): { frames: DecodedFrame[]; rest: Buffer } {
  const frames: DecodedFrame[] = [];
  let at = 0;
  for (;;) {
    if (bytes.length - at < 2) break;
    const first = bytes[at]!;
    const second = bytes[at + 1]!;
    const masked = (second & 0x80) !== 0;
    let length = second & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      if (bytes.length < offset + 2) break;
      length = bytes.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (bytes.length < offset + 8) break;
      length = Number(bytes.readBigUInt64BE(offset));
      offset += 8;
    }
    const key = masked ? bytes.subarray(offset, offset + 4) : undefined;
    if (masked) offset += 4;
    if (bytes.length < offset + length) break;
    const payload = Buffer.from(bytes.subarray(offset, offset + length));
    if (key !== undefined) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i % 4]!;
    frames.push({ fin: (first & 0x80) !== 0, opcode: first & 0x0f, masked, payload });
    at = offset + length;
  }
  return { frames, rest: bytes.subarray(at) };
}
