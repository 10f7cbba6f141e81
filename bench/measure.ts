/**
 * The measurements, one function each, all against one path: WebSocket round trips, server
 * push, HTTP load, session capacity and CPU-bound interactions. Each returns raw figures; run.ts
 * repeats and compares.
 */
import autocannon from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { randomUUID } from 'node:crypto';
import { modelNamed, type BokehClient, type BokehMessage } from '../client/bokeh-client.js';
import { openSession, sessionToken } from './session.js';
import type { BenchPath } from './stack.js';

/** Runs `task` for every item with at most `limit` running at once; results keep the items' order. */
async function inBatches<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!).then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function opened<R>(results: PromiseSettledResult<R>[]): { ok: R[]; failures: number; firstError?: string } {
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return { ok, failures: failed.length, ...(failed[0] ? { firstError: String((failed[0].reason as Error)?.message ?? failed[0].reason) } : {}) };
}

/** Sessions are opened this many at a time, like a crowd arriving rather than one burst. */
const OPEN_CONCURRENCY = 25;

// ---- WebSocket round trip -----------------------------------------------------------------

/**
 * An app answered through a slider: the client moves the slider named `slider`, a server
 * callback sets a Div's text to "`reply` <value>". `ping` answers at once; the bench's `cpu` app
 * computes for ~20 ms first (bench/apps/cpu).
 */
interface SliderApp {
  app: string;
  slider: string;
  reply: string;
}
const PING: SliderApp = { app: 'ping', slider: 'ping', reply: 'pong' };
const CPU: SliderApp = { app: 'cpu', slider: 'work', reply: 'done' };

/** An open session of a slider app: its slider, and the next value to send. */
interface SliderSession {
  client: BokehClient;
  kind: SliderApp;
  slider: string;
  value: number;
}

async function openSlider(path: BenchPath, kind: SliderApp, token?: string): Promise<SliderSession> {
  const { client, doc } = await openSession(path, kind.app, token);
  return { client, kind, slider: modelNamed(doc, kind.slider).id, value: 0 };
}

const openPing = (path: BenchPath, token?: string) => openSlider(path, PING, token);

/**
 * One round trip: the client moves the slider (a PATCH-DOC), the server callback sets the Div's
 * text, and the PATCH-DOC carrying "<reply> <value>" comes back. Values cycle, and two in a row
 * always differ, since Bokeh sends nothing for a change to the same value.
 */
async function ping(session: SliderSession, timeoutMs = 10_000): Promise<number> {
  session.value = (session.value % 900) + 1;
  const expected = `"${session.kind.reply} ${session.value}"`;
  const started = performance.now();
  session.client.setProperty(session.slider, 'value', session.value);
  await session.client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(expected), timeoutMs);
  return performance.now() - started;
}

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  roundTrips: number;
  failures: number;
}

/**
 * `total` round trips shared out over `sessions` concurrent sessions, or as many as fit in
 * `maxSeconds`. Milliseconds; percentiles from an HDR histogram kept in microseconds.
 */
export async function roundTrips(path: BenchPath, sessions: number, total: number, maxSeconds: number): Promise<Latency> {
  const open = opened(await inBatches(Array.from({ length: sessions }), OPEN_CONCURRENCY, () => openPing(path)));
  if (open.ok.length === 0) throw new Error(`${path.label}: no ping session opened (${open.firstError})`);
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let failures = open.failures;
  try {
    // The first messages of a session pay for lazy set-up on both ends; they are not counted.
    await Promise.all(
      open.ok.map(async (s) => {
        for (let i = 0; i < 3; i += 1) await ping(s);
      }),
    );
    let remaining = total;
    const deadline = performance.now() + maxSeconds * 1000;
    await Promise.all(
      open.ok.map(async (s) => {
        while (remaining > 0 && performance.now() < deadline) {
          remaining -= 1;
          try {
            histogram.recordValue(Math.max(1, Math.round((await ping(s)) * 1000)));
          } catch {
            failures += 1;
            return;
          }
        }
      }),
    );
    const ms = (percentile: number) => histogram.getValueAtPercentile(percentile) / 1000;
    return { p50: ms(50), p90: ms(90), p99: ms(99), roundTrips: histogram.totalCount, failures };
  } finally {
    histogram.destroy();
    await Promise.all(open.ok.map((s) => s.client.close()));
  }
}

// ---- Server push ---------------------------------------------------------------------------

export interface Push {
  messagesPerSecond: number;
  bytesPerSecond: number;
  messages: number;
  failures: number;
}

/**
 * `clients` sessions of the `push` app each ask for a burst of `count` PATCH-DOCs at once
 * ("small": one streamed point each; "large": `bytes` of float64 data each, sent by Bokeh as a
 * binary buffer), and count what arrives. Rates are totals over all clients, from the request
 * to the last message.
 */
export async function push(path: BenchPath, clients: number, kind: 'small' | 'large', count: number, bytes = 0): Promise<Push> {
  const open = opened(
    await inBatches(Array.from({ length: clients }), OPEN_CONCURRENCY, async () => {
      const { client, doc } = await openSession(path, 'push');
      return { client, command: modelNamed(doc, 'command').id };
    }),
  );
  if (open.ok.length === 0) throw new Error(`${path.label}: no push session opened (${open.firstError})`);
  let failures = open.failures;
  try {
    const started = performance.now();
    const bursts = await Promise.all(
      open.ok.map(async ({ client, command }) => {
        const tag = randomUUID();
        const first = client.messages.length;
        client.setProperty(command, 'value', `${kind} ${count} ${bytes} ${tag}`);
        await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(tag), 120_000);
        const burst = client.messages
          .slice(first)
          .filter((msg: BokehMessage) => msg.header.msgtype === 'PATCH-DOC' && !JSON.stringify(msg.content).includes(tag));
        return { messages: burst.length, bytes: burst.reduce((sum, msg) => sum + msg.buffers.reduce((n, b) => n + b.length, 0), 0) };
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const messages = bursts.reduce((n, b) => n + b.messages, 0);
    failures += bursts.filter((b) => b.messages !== count).length;
    if (kind === 'large' && bursts.some((b) => b.bytes < count * bytes)) failures += 1;
    return { messagesPerSecond: messages / seconds, bytesPerSecond: bursts.reduce((n, b) => n + b.bytes, 0) / seconds, messages, failures };
  } finally {
    await Promise.all(open.ok.map(({ client }) => client.close()));
  }
}

// ---- HTTP ----------------------------------------------------------------------------------

export interface Http {
  requestsPerSecond: number;
  p50: number;
  p90: number;
  p99: number;
  requests: number;
  failures: number;
}

/**
 * autocannon against one URL: `duration` seconds, or exactly `amount` requests when given. A
 * function gives each request its own URL (autoload.js with a new session id each time).
 */
export async function http(url: string | (() => string), connections: number, load: { duration: number } | { amount: number }): Promise<Http> {
  const next = typeof url === 'string' ? undefined : url;
  const first = new URL(next ? next() : (url as string));
  // autocannon ends a run at its next sample tick: sampling every 10 ms rather than every
  // second keeps a run of a fixed number of requests from being counted as whole seconds.
  const result = await autocannon({
    url: first.origin,
    connections,
    sampleInt: 10,
    requests: [
      {
        path: first.pathname + first.search,
        ...(next
          ? {
              setupRequest: (req: autocannon.Request) => {
                const target = new URL(next());
                return { ...req, path: target.pathname + target.search };
              },
            }
          : {}),
      },
    ],
    ...load,
  });
  const seconds = (result.finish.getTime() - result.start.getTime()) / 1000;
  return {
    requestsPerSecond: result.requests.total / Math.max(seconds, 0.001),
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    requests: result.requests.total,
    failures: result.errors + result.timeouts + result.non2xx,
  };
}

// ---- CPU-bound interactions ---------------------------------------------------------------

export interface Interactions {
  interactionsPerSecond: number;
  interactions: number;
  /** Sessions asked for, each with its page load (autoload.js), WebSocket and document. */
  pageLoads: number;
  failures: number;
  firstError?: string;
}

/**
 * `sessions` sessions of the `cpu` app, each making interactions back to back for `seconds`:
 * move the slider, wait for the reply that comes after ~20 ms of Python (bench/apps/cpu). The
 * rate is every interaction completed, over the time from the start to the last completion; a
 * first interaction per session, before the clock starts, is not counted.
 */
export async function interactions(path: BenchPath, sessions: number, seconds: number): Promise<Interactions> {
  const open = opened(await inBatches(Array.from({ length: sessions }), OPEN_CONCURRENCY, () => openSlider(path, CPU)));
  if (open.ok.length === 0) throw new Error(`${path.label}: no cpu session opened (${open.firstError})`);
  let failures = open.failures;
  let firstError = open.firstError;
  try {
    // A queue of a dozen sessions on one replica waits a dozen times 20 ms for each reply.
    const timeoutMs = 30_000;
    await Promise.all(open.ok.map((s) => ping(s, timeoutMs)));
    let count = 0;
    let last = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      open.ok.map(async (s) => {
        while (performance.now() < deadline) {
          try {
            await ping(s, timeoutMs);
          } catch (err) {
            failures += 1;
            firstError ??= (err as Error).message;
            return;
          }
          count += 1;
          last = performance.now();
        }
      }),
    );
    return {
      interactionsPerSecond: count / Math.max((last - started) / 1000, 0.001),
      interactions: count,
      pageLoads: sessions,
      failures,
      ...(firstError ? { firstError } : {}),
    };
  } finally {
    await Promise.all(open.ok.map((s) => s.client.close()));
  }
}

// ---- Capacity ------------------------------------------------------------------------------

export interface Capacity {
  sessions: number;
  failures: number;
  firstError?: string;
  rssBefore: number;
  rssAfter: number;
  bytesPerSession: number;
}

/**
 * Opens `sessions` ping sessions through `path` and keeps them all open; each then makes one
 * round trip, so a session counts only if it works. `rss` reads the proxy's resident memory.
 *
 * `restart` gives a fresh proxy process first: in one that has already held many sessions, new
 * ones reuse heap it has kept, and the growth says little. A few sessions opened and closed
 * before the baseline keep one-time costs (compiled code, first buffers) out of the figure. The
 * page loads that hand out the sessions' tokens also come before the baseline: what they leave
 * behind is garbage of HTTP requests that are over, not memory an open WebSocket holds.
 */
export async function capacity(path: BenchPath, sessions: number, rss: () => Promise<number>, restart: () => Promise<void>): Promise<Capacity> {
  await restart();
  const warm = opened(await inBatches(Array.from({ length: 10 }), 10, () => openPing(path)));
  await inBatches(warm.ok, 10, async (s) => {
    await ping(s);
    await s.client.close();
  });
  const tokens = opened(await inBatches(Array.from({ length: sessions }), OPEN_CONCURRENCY, () => sessionToken(path, 'ping')));
  await new Promise((done) => setTimeout(done, 1000));
  const rssBefore = await rss();
  const open = opened(await inBatches(tokens.ok, OPEN_CONCURRENCY, (token) => openPing(path, token)));
  try {
    const pings = opened(await inBatches(open.ok, 50, (s) => ping(s, 30_000)));
    await new Promise((done) => setTimeout(done, 1000));
    const rssAfter = await rss();
    const firstError = tokens.firstError ?? open.firstError ?? pings.firstError;
    return {
      sessions,
      failures: tokens.failures + open.failures + pings.failures,
      ...(firstError ? { firstError } : {}),
      rssBefore,
      rssAfter,
      bytesPerSession: (rssAfter - rssBefore) / sessions,
    };
  } finally {
    await inBatches(open.ok, 100, (s) => s.client.close());
  }
}
