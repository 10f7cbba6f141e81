import { Duplex } from 'node:stream';
import { CLOSE, relayCloseCode, tickBatcher } from './websocket.js';

describe('relayCloseCode', () => {
  test.each([
    [1000, 1000],
    [1001, 1001],
    [1009, 1009],
    [1011, 1011],
    [4003, 4003],
    [1005, undefined],
    [1006, CLOSE.bokehLost],
    [1015, CLOSE.bokehLost],
    [1004, CLOSE.internalError],
    [2000, CLOSE.internalError],
  ])('a close with %d is relayed as %p', (received, sent) => {
    expect(relayCloseCode(received, CLOSE.bokehLost)).toBe(sent);
  });
});

describe('tickBatcher', () => {
  /** A real stream that records how its writes reach the "socket": one entry per system call. */
  function recordingStream(): { stream: Duplex; calls: string[][] } {
    const calls: string[][] = [];
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        calls.push([chunk.toString()]);
        done();
      },
      writev(chunks, done) {
        calls.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()));
        done();
      },
    });
    return { stream, calls };
  }

  test('the frames of one message, written in one tick, leave in one write', async () => {
    const { stream, calls } = recordingStream();
    const batch = tickBatcher(stream);
    for (const frame of ['header', 'metadata', 'content']) {
      batch();
      stream.write(Buffer.from(frame));
    }
    expect(calls).toEqual([]);
    await new Promise((done) => process.nextTick(done));
    expect(calls).toEqual([['header', 'metadata', 'content']]);
  });

  test('writes in later ticks are not held back', async () => {
    const { stream, calls } = recordingStream();
    const batch = tickBatcher(stream);
    batch();
    stream.write(Buffer.from('first'));
    await new Promise((done) => process.nextTick(done));
    batch();
    stream.write(Buffer.from('second'));
    await new Promise((done) => process.nextTick(done));
    expect(calls).toEqual([['first'], ['second']]);
  });
});
