/**
 * The flood scenario: one client floods page loads and autoload.js while another keeps
 * interacting, with the gateway's per-client limits on (their defaults) and off. Each session
 * start runs the app's code in Bokeh; with the limits off the flood starts as many sessions as
 * Bokeh can make, and the other client's round trips wait behind them.
 *
 * In the bench Bokeh keeps unused sessions for an hour, so the stall that discarding them causes
 * (a garbage collection each) does not happen during the run: the figure that shows the load a
 * flood puts on Bokeh is the number of sessions it made.
 *
 * The flood runs inside the gateway's container against its loopback, so the gateway sees it
 * from another address than the measuring client on the host. Bokeh's own count of the sessions
 * it made (`<prefix>/_replica`) says how much of the flood reached it.
 */
import { roundTrips } from './measure.js';
import type { Recorder } from './report.js';
import { LIMITS_OFF, PREFIX, type BenchStack } from './stack.js';

export interface Flood {
  /** Round trips of the interacting client during the flood, in ms. */
  p50: number;
  p99: number;
  failures: number;
  /** What the flood got back, by status. */
  statuses: Record<string, number>;
  /** Sessions Bokeh made during the flood. */
  sessionsCreated: number;
}

const floodScript = (seconds: number, concurrency: number) => `
const base = 'http://127.0.0.1:8000${PREFIX}';
const paths = ['/ping/autoload.js?bokeh-autoload-element=x', '/ping'];
const end = Date.now() + ${seconds * 1000};
const statuses = {}; let i = 0;
async function worker() {
  while (Date.now() < end) {
    try {
      const res = await fetch(base + paths[i++ % paths.length]);
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] || 0) + 1;
    } catch { statuses.error = (statuses.error || 0) + 1; }
  }
}
Promise.all(Array.from({ length: ${concurrency} }, worker)).then(() => console.log(JSON.stringify(statuses)));
`;

async function sessionsCreated(stack: BenchStack): Promise<number> {
  const script = `import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:5006${PREFIX}/_replica').read().decode())`;
  return (JSON.parse(await stack.exec('bokeh', ['python3', '-c', script])) as { sessionsCreated: number }).sessionsCreated;
}

/** One flood of `seconds`, with the gateway's limits on or off; the gateway is left with them off. */
export async function flood(stack: BenchStack, limits: 'on' | 'off', seconds: number, concurrency: number): Promise<Flood> {
  // Blank settings are the defaults: the per-client limits as a deployment gets them. The cap on
  // a replica's sessions stays off: the bench's Bokeh keeps unused sessions for an hour
  // (compose.bench.yml), so after the other measurements it is full by that count.
  const settings = limits === 'on' ? { ...Object.fromEntries(Object.keys(LIMITS_OFF).map((name) => [name, ''])), MAX_SESSIONS_PER_REPLICA: '0' } : LIMITS_OFF;
  await stack.recreateGateway(settings);
  try {
    const before = await sessionsCreated(stack);
    // Settled now, read after the round trips: a flood that fails early must not go unhandled.
    const flooding = stack.exec('gateway', ['node', '-e', floodScript(seconds, concurrency)]).then(
      (stdout) => ({ stdout }),
      (err: Error) => ({ err }),
    );
    // Give the flood a head start, then measure for the rest of it.
    await new Promise((done) => setTimeout(done, 500));
    const latency = await roundTrips(stack.paths.gateway, 1, 100_000, Math.max(1, seconds - 1));
    const flooded = await flooding;
    if ('err' in flooded) throw flooded.err;
    const statuses = JSON.parse(flooded.stdout) as Record<string, number>;
    return { p50: latency.p50, p99: latency.p99, failures: latency.failures, statuses, sessionsCreated: (await sessionsCreated(stack)) - before };
  } finally {
    await stack.recreateGateway(LIMITS_OFF);
  }
}

/** Both floods, limits off first, into the results: the interacting client's round trips and what reached Bokeh. */
export async function measureFloods(
  stack: BenchStack,
  seconds: number,
  concurrency: number,
  recorder: Recorder,
  failures: string[],
  log: (line: string) => void,
): Promise<void> {
  const group = `Flood (one client: page loads and autoload.js for ${seconds} s, ${concurrency} at a time; another client's round trips meanwhile)`;
  for (const limits of ['off', 'on'] as const) {
    try {
      const r = await flood(stack, limits, seconds, concurrency);
      log(
        `flood, limits ${limits}: round trip p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.failures} failed; flood got ${JSON.stringify(r.statuses)}; Bokeh made ${r.sessionsCreated} sessions`,
      );
      const add = (id: string, label: string, unit: string, value: number) =>
        recorder.add({ id: `flood.${limits}.${id}`, group, label: `limits ${limits}, ${label}`, unit, better: 'lower' }, 'gateway', value);
      add('p50', 'round trip p50', 'ms', r.p50);
      add('p99', 'round trip p99', 'ms', r.p99);
      add('sessions', 'sessions Bokeh made', '', r.sessionsCreated);
      if (limits === 'on' && !r.statuses['429']) failures.push('Gateway: flood with limits on: no request was refused');
    } catch (err) {
      failures.push(`Gateway: flood with limits ${limits}: ${(err as Error).message}`);
    }
  }
}
