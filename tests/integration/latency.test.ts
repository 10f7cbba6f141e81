/**
 * The smallest interaction a user can make (the `ping` app: a slider answered with a short text)
 * must not wait for a delayed ACK. Bokeh writes each message as several WebSocket frames; with
 * Nagle's algorithm on, every frame after the first waits ~40 ms for the peer's ACK. The stack
 * turns no-delay on (BOKEH_NODELAY) and this check proves both that it works and, with it off,
 * that the check can fail. A behaviour check with a wide margin, not a benchmark.
 */
import { BokehClient, modelNamed, tokenFromAutoload } from '../support/bokeh-client.js';
import { PREFIX, startStack, type Stack } from '../support/stack.js';

const ROUND_TRIPS = 50;

async function pingP50(stack: Stack): Promise<number> {
  const app = `${stack.url}${PREFIX}/ping`;
  const js = await (await fetch(`${app}/autoload.js?bokeh-autoload-element=x&bokeh-app-path=${PREFIX}/ping&bokeh-absolute-url=${app}`)).text();
  const client = await BokehClient.connect(`${app.replace('http', 'ws')}/ws`, tokenFromAutoload(js), { origin: stack.url });
  try {
    const slider = modelNamed(await client.pullDocument(), 'ping').id;
    const times: number[] = [];
    // A few warm-up changes first: the first messages of a session pay for lazy set-up.
    for (let value = 1; value <= ROUND_TRIPS + 5; value += 1) {
      const started = performance.now();
      client.setProperty(slider, 'value', value);
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(`pong ${value}`));
      if (value > 5) times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    await client.close();
  }
}

describe('ping round trip through the gateway', () => {
  test('with no-delay on (the default), p50 stays under 15 ms', async () => {
    const stack = await startStack();
    try {
      const p50 = await pingP50(stack);
      process.stdout.write(`[latency] ping p50 with BOKEH_NODELAY=true: ${p50.toFixed(2)} ms\n`);
      expect(p50).toBeLessThan(15);
    } finally {
      await stack.down();
    }
  }, 300_000);

  test('with no-delay off (stock Bokeh), the ~40 ms stall is back, so the check above can fail', async () => {
    const stack = await startStack({ BOKEH_NODELAY: 'false' });
    try {
      const p50 = await pingP50(stack);
      process.stdout.write(`[latency] ping p50 with BOKEH_NODELAY=false: ${p50.toFixed(2)} ms\n`);
      expect(p50).toBeGreaterThan(30);
    } finally {
      await stack.down();
    }
  }, 300_000);
});
