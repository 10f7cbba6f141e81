import { randomBytes } from 'node:crypto';
import { frame } from './frames.fixtures.js';
import { clientCloseFrame, FrameScanner, isSendableCloseCode, serverCloseFrame, type ScanResult } from './frames.js';

/** Feeds `stream` in `chunks` pieces cut at the given offsets; returns everything forwarded. */
function feed(scanner: FrameScanner, stream: Buffer, cuts: number[]): { forwarded: Buffer; results: ScanResult[] } {
  const results: ScanResult[] = [];
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, stream.length]) {
    const result = scanner.scan(stream.subarray(at, cut));
    results.push(result);
    if (result.forward) out.push(result.forward);
    at = cut;
  }
  return { forwarded: Buffer.concat(out), results };
}

/** What Bokeh sends for one message with a buffer: text frames, then a binary frame. */
function bokehMessage(mask: boolean): Buffer {
  return Buffer.concat([
    frame(1, '{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":1}', { mask }),
    frame(1, '{}', { mask }),
    frame(1, '{"events":[]}', { mask }),
    frame(1, '{"id":"p1"}', { mask }),
    frame(2, randomBytes(70_000), { mask }),
    frame(9, 'ping', { mask }),
    frame(1, 'frag-', { mask, fin: false }),
    frame(0, 'ment', { mask }),
  ]);
}

describe('FrameScanner passes frames through unchanged', () => {
  test.each([
    ['from Bokeh (unmasked)', false],
    ['from a browser (masked)', true],
  ])('%s, however the stream is cut into reads', (_name, masked) => {
    const stream = bokehMessage(masked);
    for (let run = 0; run < 200; run++) {
      const cuts = [...new Set(Array.from({ length: 1 + (run % 12) }, () => Math.floor(Math.random() * stream.length)))].sort((a, b) => a - b);
      const { forwarded, results } = feed(new FrameScanner(masked, 1 << 20), stream, cuts);
      expect(forwarded.equals(stream)).toBe(true);
      expect(results.some((r) => r.violation)).toBe(false);
    }
  });

  test('a read holding whole frames is passed on as the same buffer, without a copy', () => {
    const stream = bokehMessage(false);
    expect(new FrameScanner(false, 1 << 20).scan(stream).forward).toBe(stream);
  });

  test('a cut-off header is kept back until the rest of it arrives', () => {
    const scanner = new FrameScanner(false, 1 << 20);
    const data = frame(2, randomBytes(300));
    expect(scanner.scan(data.subarray(0, 3)).forward).toBeUndefined();
    expect(scanner.scan(data.subarray(3)).forward?.equals(data)).toBe(true);
  });
});

describe('FrameScanner refuses what the relay never passes on', () => {
  const cases: [string, boolean, Buffer, number, RegExp][] = [
    ['an unmasked frame from a browser', true, frame(1, 'hi'), 1002, /must be masked/],
    ['a masked frame from Bokeh', false, frame(1, 'hi', { mask: true }), 1002, /must not be masked/],
    ['reserved bits (compression that was never negotiated)', true, frame(1, 'hi', { mask: true, rsv: 4 }), 1002, /Reserved frame bits/],
    ['an unknown opcode', true, frame(3, 'hi', { mask: true }), 1002, /opcode 3/],
    ['a fragmented ping', true, frame(9, 'hi', { mask: true, fin: false }), 1002, /Control frames/],
    ['a ping of 126 bytes', true, frame(9, 'x'.repeat(126), { mask: true }), 1002, /Control frames/],
    ['a continuation with no message begun', true, frame(0, 'hi', { mask: true }), 1002, /continuation/],
    [
      'a new message inside a fragmented one',
      true,
      Buffer.concat([frame(1, 'a', { mask: true, fin: false }), frame(1, 'b', { mask: true })]),
      1002,
      /before the fragmented/,
    ],
    ['a close frame with a one-byte payload', true, frame(8, 'x', { mask: true }), 1002, /one-byte/],
    ['a close frame with code 1005, which may not be sent', true, frame(8, Buffer.from([0x03, 0xed]), { mask: true }), 1002, /1005/],
    ['a message over the limit in one frame', true, frame(2, Buffer.alloc(1025), { mask: true }), 1009, /WS_MAX_MESSAGE_BYTES \(1024 bytes\)/],
    [
      'a message over the limit across fragments',
      true,
      Buffer.concat([frame(2, Buffer.alloc(600), { mask: true, fin: false }), frame(0, Buffer.alloc(600), { mask: true })]),
      1009,
      /WS_MAX_MESSAGE_BYTES/,
    ],
    ['a 64-bit length past 2^53', false, Buffer.from([0x82, 127, 0xff, 0, 0, 0, 0, 0, 0, 0]), 1009, /WS_MAX_MESSAGE_BYTES/],
  ];
  test.each(cases)('%s', (_name, masked, stream, code, reason) => {
    const scanner = new FrameScanner(masked, 1024);
    const result = scanner.scan(stream);
    expect(result.violation?.code).toBe(code);
    expect(result.violation?.reason).toMatch(reason);
    // Nothing of the offending frame reaches the other side, and nothing after it.
    const offending = stream.length - (result.forward?.length ?? 0);
    expect(offending).toBeGreaterThan(0);
    expect(scanner.scan(frame(1, 'later', { mask: masked })).forward).toBeUndefined();
  });

  test('a message at the limit passes, and the count starts again with the next message', () => {
    const scanner = new FrameScanner(true, 1024);
    const stream = Buffer.concat([
      frame(2, Buffer.alloc(1000), { mask: true, fin: false }),
      frame(0, Buffer.alloc(24), { mask: true }),
      frame(2, Buffer.alloc(1024), { mask: true }),
    ]);
    const result = scanner.scan(stream);
    expect(result.violation).toBeUndefined();
    expect(result.forward?.equals(stream)).toBe(true);
  });
});

describe('close frames', () => {
  test('a close frame passes with its code read through the mask, and nothing after it', () => {
    const scanner = new FrameScanner(true, 1 << 20);
    const close = frame(8, Buffer.from([0x0f, 0xa3, ...Buffer.from('bye')]), { mask: true });
    const result = scanner.scan(Buffer.concat([frame(1, 'last', { mask: true }), close, frame(1, 'after', { mask: true })]));
    expect(result.closed).toEqual({ code: 4003 });
    expect(result.forward?.subarray(-close.length).equals(close)).toBe(true);
    expect(scanner.scan(frame(1, 'more', { mask: true })).forward).toBeUndefined();
  });

  test('hold() waits for the end of the frame in progress', () => {
    const scanner = new FrameScanner(false, 1 << 20);
    const big = frame(2, randomBytes(5000));
    expect(scanner.scan(big.subarray(0, 1000)).held).toBeUndefined();
    expect(scanner.hold()).toBe(false);
    const rest = scanner.scan(Buffer.concat([big.subarray(1000), frame(1, 'next')]));
    expect(rest.held).toBe(true);
    // The rest of the frame, and not the next one.
    expect(rest.forward?.length).toBe(big.length - 1000);
  });

  test('hold() at a boundary stops at once', () => {
    const scanner = new FrameScanner(false, 1 << 20);
    scanner.scan(frame(1, 'whole'));
    expect(scanner.hold()).toBe(true);
    expect(scanner.scan(frame(1, 'next')).forward).toBeUndefined();
  });

  test('the frames the gateway writes are what the other side expects', () => {
    const toBrowser = serverCloseFrame(1001, 'Gateway shutting down');
    expect(new FrameScanner(false, 1 << 20).scan(toBrowser).closed).toEqual({ code: 1001 });
    expect(toBrowser.subarray(4).toString()).toBe('Gateway shutting down');
    const toBokeh = clientCloseFrame(1009, 'too big');
    expect(new FrameScanner(true, 1 << 20).scan(toBokeh).closed).toEqual({ code: 1009 });
  });

  test('a long reason is cut to fit a control frame, on a character boundary', () => {
    const closing = serverCloseFrame(1001, 'é'.repeat(100));
    expect(closing[1]).toBeLessThanOrEqual(125);
    expect(closing.subarray(4).toString()).toBe('é'.repeat(60));
  });

  test.each([
    [1000, true],
    [1001, true],
    [1004, false],
    [1005, false],
    [1006, false],
    [1009, true],
    [1014, true],
    [1015, false],
    [2999, false],
    [3000, true],
    [4999, true],
    [5000, false],
  ])('close code %d may be sent: %p', (code, sendable) => {
    expect(isSendableCloseCode(code)).toBe(sendable);
  });
});
