/**
 * One relayed WebSocket: the browser's socket and Bokeh's, after both handshakes. Frames pass
 * through unchanged, read only as far as their headers (frames.ts): no message is reassembled,
 * unmasked or copied, which keeps the relay as cheap as NGINX's. The headers are enough for
 * what the gateway promises: frames are well formed, no message exceeds WS_MAX_MESSAGE_BYTES,
 * a slow reader slows its writer down, and a close of the gateway's own (idle, shutdown, a bad
 * frame) reaches each side at a frame boundary, never inside a frame.
 *
 * Heap per open pair is what limits how many sessions a gateway holds: everything here is
 * reachable from the two sockets for the session's whole life, so nothing here may hold the
 * upgrade request (see websocket.ts).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { clientCloseFrame, FrameScanner, serverCloseFrame, type ScanResult } from './frames.js';
import type { RelayTotals } from './metrics.js';
import { CLOSE } from './ws-constants.js';

/**
 * How much may wait for a slow reader before the relay stops reading from the other side. Not
 * the socket's 16 KiB high-water mark: a single 64 KiB read is over that, and pausing after each
 * one halved the rate of large messages.
 */
export const BEHIND_BYTES = 1024 * 1024;
/** After its close frame, how long a peer gets to close the connection before it is cut. */
export const CLOSE_GRACE_MS = 5_000;

type Side = 'browser' | 'bokeh';

/** One direction of a session: frames read from `from`, scanned, written to `to`. */
interface Direction {
  from: Duplex;
  to: Duplex;
  scanner: FrameScanner;
  /** Who reads what this direction writes. */
  toSide: Side;
  /** A close frame went to `to` (passed on or our own): nothing else may follow it. */
  closeSent: boolean;
  /** `to` is ended or destroyed. */
  done: boolean;
  /** Where this direction's traffic is added up for metrics. */
  bytesKey: 'upBytes' | 'downBytes';
  messagesKey: 'upMessages' | 'downMessages';
}

/** A relayed pair: the browser's socket, Bokeh's socket, and the frames between them. */
export class RelayPair {
  private readonly up: Direction;
  private readonly down: Direction;
  private readonly opened = Date.now();
  /** The first close frame seen, and whose it was. */
  private closeCode: number | undefined;
  private closedBy: Side | 'gateway' | undefined;
  /** The close frame we still owe each side once its direction reaches a frame boundary. */
  private owed: { browser?: Buffer; bokeh?: Buffer } = {};
  private graceTimer: NodeJS.Timeout | undefined;
  private ended = false;
  /** Set by traffic from the browser; the idle sweep clears it. */
  active = true;
  idleSince = Date.now();
  readonly finished: Promise<void>;
  private finish!: () => void;

  constructor(
    readonly browser: Duplex,
    readonly bokeh: Duplex,
    maxMessageBytes: number,
    readonly meta: Record<string, unknown>,
    private readonly log: Logger,
    onEnd: (pair: RelayPair) => void,
    totals: RelayTotals = { upMessages: 0, upBytes: 0, downMessages: 0, downBytes: 0 },
  ) {
    this.finished = new Promise((resolve) => (this.finish = resolve));
    const direction = (from: Duplex, to: Duplex, masked: boolean, toSide: Side, up: boolean): Direction => ({
      from,
      to,
      scanner: new FrameScanner(masked, maxMessageBytes),
      toSide,
      closeSent: false,
      done: false,
      bytesKey: up ? 'upBytes' : 'downBytes',
      messagesKey: up ? 'upMessages' : 'downMessages',
    });
    this.up = direction(browser, bokeh, true, 'bokeh', true);
    this.down = direction(bokeh, browser, false, 'browser', false);
    for (const dir of [this.up, this.down]) {
      const opposite = dir === this.up ? this.down : this.up;
      dir.from.on('data', (chunk: Buffer) => {
        if (dir === this.up) this.active = true;
        const before = dir.scanner.messages;
        const result = dir.scanner.scan(chunk);
        totals[dir.bytesKey] += chunk.length;
        totals[dir.messagesKey] += dir.scanner.messages - before;
        this.deliver(dir, result);
      });
      dir.from.on('end', () => this.sourceEnded(dir));
      dir.from.on('close', () => {
        this.sourceEnded(dir);
        // Nothing can be written to a closed socket any more.
        opposite.done = true;
        if (this.browser.destroyed && this.bokeh.destroyed && !this.ended) {
          this.ended = true;
          clearTimeout(this.graceTimer);
          onEnd(this);
          log.info({ ...meta, code: this.closeCode, by: this.closedBy, durationMs: Date.now() - this.opened }, 'websocket closed');
          this.finish();
        }
      });
    }
    browser.on('error', (err) => log.info({ ...meta, err: err.message }, 'websocket browser error'));
    bokeh.on('error', (err) => log.warn({ ...meta, err: err.message }, 'websocket bokeh error'));
  }

  /** Starts relaying, with whatever either side sent right after its handshake. */
  start(browserHead: Buffer, bokehHead: Buffer): void {
    if (bokehHead.length > 0) this.deliver(this.down, this.down.scanner.scan(bokehHead));
    if (browserHead.length > 0) this.deliver(this.up, this.up.scanner.scan(browserHead));
  }

  private deliver(dir: Direction, result: ScanResult): void {
    if (result.forward !== undefined && !dir.done) {
      dir.to.write(result.forward);
      if (dir.to.writableLength > BEHIND_BYTES && !dir.from.isPaused()) {
        // The reader is behind: stop reading from the writer until it has caught up.
        dir.from.pause();
        dir.to.once('drain', () => dir.from.resume());
      }
    }
    if (result.closed !== undefined) {
      dir.closeSent = true;
      this.noteClose(result.closed.code, dir === this.up ? 'browser' : 'bokeh');
    }
    if (result.held) this.payOwed(dir);
    if (result.violation !== undefined) {
      const { code, reason } = result.violation;
      const sender = dir === this.up ? 'browser' : 'bokeh';
      this.log.info({ ...this.meta, code, reason, sender }, 'websocket protocol violation');
      this.close(code, sender === 'browser' ? reason : `Bokeh sent a frame the gateway refuses: ${reason}`);
    }
  }

  /** The first close code seen (from either side or the gateway's own), once there is one. */
  get closeCodeSeen(): number | undefined {
    return this.closeCode;
  }

  private noteClose(code: number | undefined, by: Side | 'gateway'): void {
    if (this.closedBy !== undefined) return;
    this.closeCode = code;
    this.closedBy = by;
  }

  /** Sends both sides a close frame of our own (each at its next frame boundary) and ends. */
  close(code: number, reason: string): void {
    this.noteClose(code, 'gateway');
    this.owe(this.down, serverCloseFrame(code, reason));
    this.owe(this.up, clientCloseFrame(code, reason));
    this.cutLater();
  }

  private owe(dir: Direction, frame: Buffer): void {
    if (dir.closeSent || dir.done) return;
    this.owed[dir.toSide] = frame;
    if (dir.scanner.hold()) this.payOwed(dir);
  }

  private payOwed(dir: Direction): void {
    const frame = this.owed[dir.toSide];
    if (frame === undefined || dir.done) return;
    this.owed[dir.toSide] = undefined;
    dir.closeSent = true;
    dir.done = true;
    dir.to.end(frame);
  }

  /**
   * The side `dir` reads from stopped sending, so `dir`'s reader is finished with too. After a
   * proper close frame that is the end of the close handshake; a side that just dropped is
   * reported to the other with a close frame of our own.
   */
  private sourceEnded(dir: Direction): void {
    if (dir.done) return;
    dir.done = true;
    const bokehLost = dir === this.down;
    if (!dir.closeSent && dir.scanner.hold()) {
      dir.closeSent = true;
      dir.to.write(
        bokehLost
          ? serverCloseFrame(CLOSE.bokehLost, 'Lost connection to the Bokeh server; reload the page')
          : clientCloseFrame(CLOSE.goingAway, 'browser went away'),
      );
      this.noteClose(bokehLost ? CLOSE.bokehLost : CLOSE.abnormal, bokehLost ? 'bokeh' : 'browser');
    }
    // Mid-frame there is no clean way out: that frame can never be finished.
    if (dir.closeSent) dir.to.end();
    else dir.to.destroy();
    this.cutLater();
  }

  /** Gives the peers CLOSE_GRACE_MS to finish closing, then cuts both connections. */
  private cutLater(): void {
    this.graceTimer ??= setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
  }

  destroy(): void {
    this.browser.destroy();
    this.bokeh.destroy();
  }
}
