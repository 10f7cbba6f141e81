/**
 * One relayed pair on in-process socket pairs (node:stream's duplexPair): the test plays the
 * browser on one end and Bokeh on the other, and reads what the relay writes to each.
 */
import { duplexPair, type Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { closePayload, frame, readFrames, type DecodedFrame } from './frames.fixtures.js';
import { CLOSE } from './ws-constants.js';
import { BEHIND_BYTES, RelayPair } from './ws-pair.js';
import { RelayRegistry } from './ws-registry.js';

const CLOSE_OPCODE = 0x8;

/** Everything one test peer has received, decoded. */
class Peer {
  private bytes = Buffer.alloc(0);
  ended = false;

  constructor(readonly stream: Duplex) {}

  /** Starts reading; left out, the peer is a reader that never reads. */
  read(): this {
    this.stream.on('data', (chunk: Buffer) => (this.bytes = Buffer.concat([this.bytes, chunk])));
    this.stream.on('end', () => (this.ended = true));
    return this;
  }

  get received(): number {
    return this.bytes.length;
  }

  get frames(): DecodedFrame[] {
    return readFrames(this.bytes).frames;
  }

  /** The close frame received, as code and reason. */
  get close(): { code: number; reason: string } | undefined {
    const close = this.frames.find((f) => f.opcode === CLOSE_OPCODE);
    return close && { code: close.payload.readUInt16BE(0), reason: close.payload.subarray(2).toString('utf8') };
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function logger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

/** A pair with the test holding the far end of both sockets. */
function relayed({ maxMessageBytes = 1 << 20, readBokeh = true, registry = undefined as RelayRegistry | undefined, replica = 'http://bokeh:5006' } = {}) {
  const [browserEnd, browser] = duplexPair();
  const [bokehEnd, bokeh] = duplexPair();
  const { log, records } = logger();
  const ended: RelayPair[] = [];
  const pair = new RelayPair(browserEnd, bokehEnd, maxMessageBytes, { app: 'ping', replica }, log, (p) => {
    ended.push(p);
    registry?.forget(p);
  });
  registry?.add(pair);
  pair.start(Buffer.alloc(0), Buffer.alloc(0));
  return { pair, browser: new Peer(browser).read(), bokeh: readBokeh ? new Peer(bokeh).read() : new Peer(bokeh), browserEnd, bokehEnd, ended, records };
}

const closedRecord = (records: Array<Record<string, unknown>>) => records.find((record) => record.msg === 'websocket closed');

describe('close handshake', () => {
  test('the browser closes: its close frame reaches Bokeh, Bokeh answers, both connections end', async () => {
    const { pair, browser, bokeh, ended, records } = relayed();
    browser.stream.write(frame(CLOSE_OPCODE, closePayload(1000, 'bye'), { mask: true }));
    await until(() => bokeh.close !== undefined, 'the close frame at Bokeh');
    expect(bokeh.close).toEqual({ code: 1000, reason: 'bye' });
    // Passed on unchanged: still masked, as a browser sent it.
    expect(bokeh.frames[0]!.masked).toBe(true);

    bokeh.stream.write(frame(CLOSE_OPCODE, closePayload(1000, 'bye')));
    await until(() => browser.close !== undefined, "Bokeh's answer at the browser");
    expect(browser.close).toEqual({ code: 1000, reason: 'bye' });

    // The server closes the TCP connection first (RFC 6455 section 7.1.1), then the client.
    bokeh.stream.end();
    await until(() => browser.ended, 'the browser connection to end');
    browser.stream.end();
    await pair.finished;
    expect(ended).toEqual([pair]);
    expect(closedRecord(records)).toMatchObject({ code: 1000, by: 'browser' });
  });

  test('Bokeh closes: its close frame reaches the browser, the browser answers, both connections end', async () => {
    const { pair, browser, bokeh, records } = relayed();
    bokeh.stream.write(frame(CLOSE_OPCODE, closePayload(4000, 'app done')));
    await until(() => browser.close !== undefined, 'the close frame at the browser');
    expect(browser.close).toEqual({ code: 4000, reason: 'app done' });

    browser.stream.write(frame(CLOSE_OPCODE, closePayload(4000, 'app done'), { mask: true }));
    await until(() => bokeh.close !== undefined, "the browser's answer at Bokeh");
    bokeh.stream.end();
    await until(() => browser.ended, 'the browser connection to end');
    browser.stream.end();
    await pair.finished;
    expect(closedRecord(records)).toMatchObject({ code: 4000, by: 'bokeh' });
  });

  test('Bokeh dropping without a close frame reaches the browser as 1014', async () => {
    const { pair, browser, bokeh } = relayed();
    // Bokeh's connection ends with no close frame before it.
    bokeh.stream.end();
    await until(() => browser.close !== undefined, 'a close frame at the browser');
    expect(browser.close?.code).toBe(CLOSE.bokehLost);
    browser.stream.end();
    await pair.finished;
  });
});

test('a slow reader pauses its writer until it catches up', async () => {
  const { pair, browser, bokeh, browserEnd, bokehEnd } = relayed({ readBokeh: false });
  // 40 messages of 64 KiB from the browser, and a Bokeh that reads none of them yet.
  const message = frame(2, Buffer.alloc(64 * 1024, 7), { mask: true });
  for (let i = 0; i < 40; i++) browser.stream.write(message);
  await until(() => browserEnd.isPaused(), 'the relay to stop reading from the browser');
  expect(bokehEnd.writableLength).toBeGreaterThan(BEHIND_BYTES);
  // Paused, the relay holds what is queued and reads no further.
  const queued = bokehEnd.writableLength;
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(bokehEnd.writableLength).toBe(queued);

  bokeh.read();
  await until(() => bokeh.received === 40 * message.length, 'every message at Bokeh', 5_000);
  expect(browserEnd.isPaused()).toBe(false);
  expect(bokeh.frames).toHaveLength(40);
  pair.destroy();
});

describe('the registry', () => {
  test('closes a pair whose browser sends nothing for the idle timeout with 1001, and keeps a talking one', async () => {
    const { log } = logger();
    const registry = new RelayRegistry(500, log);
    const silent = relayed({ registry });
    const talking = relayed({ registry });
    const pings = setInterval(() => talking.browser.stream.write(frame(0x9, 'hi', { mask: true })), 50);
    try {
      await until(() => silent.browser.close !== undefined, 'the idle close', 3_000);
      expect(silent.browser.close).toEqual({ code: CLOSE.goingAway, reason: 'No traffic for 1 s; reload the page' });
      expect(silent.bokeh.close?.code).toBe(CLOSE.goingAway);
      // The talking pair outlived the timeout with room to spare.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(talking.browser.close).toBeUndefined();
    } finally {
      clearInterval(pings);
      silent.pair.destroy();
      talking.pair.destroy();
    }
  });

  test("closeReplica closes the pairs of a replica found gone with 1014, and leaves the others' alone", async () => {
    const { log } = logger();
    const registry = new RelayRegistry(0, log);
    const gone = relayed({ registry, replica: 'http://10.0.0.2:5006' });
    const kept = relayed({ registry, replica: 'http://10.0.0.3:5006' });
    try {
      expect(registry.closeReplica('http://10.0.0.2:5006', CLOSE.bokehLost, 'Lost connection to the Bokeh server; reload the page')).toBe(1);
      await until(() => gone.browser.close !== undefined, "the browser's close frame");
      expect(gone.browser.close).toEqual({ code: CLOSE.bokehLost, reason: 'Lost connection to the Bokeh server; reload the page' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(kept.browser.close).toBeUndefined();
      expect(registry.closeReplica('http://10.0.0.9:5006', CLOSE.bokehLost, 'x')).toBe(0);
    } finally {
      gone.pair.destroy();
      kept.pair.destroy();
    }
  });

  test('closeAll sends every pair a close frame, refuses new sessions, and waits for the pairs to end', async () => {
    const { log } = logger();
    const registry = new RelayRegistry(0, log);
    const one = relayed({ registry });
    expect(registry.size).toBe(1);
    const closed = registry.closeAll(CLOSE.goingAway, 'Gateway shutting down', 5_000);
    expect(registry.shuttingDown).toBe(true);
    await until(() => one.browser.ended && one.bokeh.ended, 'both connections to be ended by the gateway');
    expect(one.browser.close).toEqual({ code: CLOSE.goingAway, reason: 'Gateway shutting down' });
    expect(one.bokeh.close).toEqual({ code: CLOSE.goingAway, reason: 'Gateway shutting down' });
    one.browser.stream.end();
    one.bokeh.stream.end();
    await closed;
    expect(registry.size).toBe(0);
  });
});

test("the gateway's own close waits for the frame under way to finish", async () => {
  const { pair, browser, bokeh } = relayed();
  const payload = Buffer.alloc(100_000, 3);
  const big = frame(2, payload);
  bokeh.stream.write(big.subarray(0, 40_000));
  await until(() => browser.received === 40_000, 'the first part of the frame at the browser');

  pair.close(CLOSE.goingAway, 'Gateway shutting down');
  // Bokeh's side is at a frame boundary: its close frame goes at once.
  await until(() => bokeh.close !== undefined, 'the close frame at Bokeh');
  // The browser's is mid-frame: nothing may cut into it.
  await new Promise((resolve) => setTimeout(resolve, 30));
  expect(browser.received).toBe(40_000);
  expect(browser.close).toBeUndefined();

  bokeh.stream.write(big.subarray(40_000));
  await until(() => browser.close !== undefined, 'the close frame at the browser');
  const [first, second] = browser.frames;
  expect(first).toMatchObject({ opcode: 2, fin: true });
  expect(first!.payload.equals(payload)).toBe(true);
  expect(second).toMatchObject({ opcode: CLOSE_OPCODE });
  expect(browser.close).toEqual({ code: CLOSE.goingAway, reason: 'Gateway shutting down' });
  pair.destroy();
});
