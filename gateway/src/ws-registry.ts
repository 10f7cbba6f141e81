/**
 * The open relayed pairs: how many there are, the idle sweep that closes silent browsers, and
 * closing them all at shutdown (after which new sessions are refused).
 */
import type { Logger } from 'pino';
import { CLOSE } from './ws-constants.js';
import type { RelayPair } from './ws-pair.js';

export class RelayRegistry {
  private readonly pairs = new Set<RelayPair>();
  private accepting = true;

  /** A pair's end-of-life callback: it leaves the registry once both its sockets are closed. */
  readonly forget = (pair: RelayPair): void => {
    this.pairs.delete(pair);
  };

  /**
   * `idleTimeoutMs` 0 turns the sweep off. A browser answers Bokeh's keep-alive pings, so
   * silence means it is gone (or never was one). One sweep for all pairs costs less than a timer
   * reset on every frame; it runs every second, or a tenth of the timeout when that is shorter.
   */
  constructor(
    private readonly idleTimeoutMs: number,
    private readonly log: Logger,
  ) {
    if (idleTimeoutMs > 0) setInterval(() => this.sweep(Date.now()), Math.min(1_000, idleTimeoutMs / 10)).unref();
  }

  get size(): number {
    return this.pairs.size;
  }

  /** Whether closeAll was called: new sessions are refused from then on. */
  get shuttingDown(): boolean {
    return !this.accepting;
  }

  add(pair: RelayPair): void {
    this.pairs.add(pair);
  }

  /**
   * A pair is idle once a whole sweep interval went by without traffic from the browser; it is
   * closed with 1001 when it has been idle for the timeout.
   */
  sweep(now: number): void {
    for (const pair of this.pairs) {
      if (pair.active) {
        pair.active = false;
        pair.idleSince = now;
      } else if (now - pair.idleSince >= this.idleTimeoutMs) {
        pair.idleSince = Infinity;
        this.log.info({ ...pair.meta, idleMs: this.idleTimeoutMs }, 'websocket idle, closing');
        pair.close(CLOSE.goingAway, `No traffic for ${Math.round(this.idleTimeoutMs / 1000)} s; reload the page`);
      }
    }
  }

  /**
   * Closes the pairs relayed to one Bokeh replica, which the gateway found gone: a replica whose
   * machine died sends no FIN, so its sockets would otherwise stay open until the idle timeout.
   * Returns how many were closed.
   */
  closeReplica(replica: string, code: number, reason: string): number {
    let closed = 0;
    for (const pair of this.pairs) {
      if (pair.meta.replica !== replica) continue;
      pair.close(code, reason);
      closed += 1;
    }
    return closed;
  }

  /** Refuses new sessions and closes open ones with `code`; resolves when all are closed. */
  async closeAll(code: number, reason: string, timeoutMs: number): Promise<void> {
    this.accepting = false;
    const open = [...this.pairs];
    for (const pair of open) pair.close(code, reason);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const pair of open) pair.destroy();
        resolve();
      }, timeoutMs);
    });
    await Promise.race([Promise.all(open.map((pair) => pair.finished)), deadline]);
    clearTimeout(timer);
  }
}
