/**
 * The smallest interaction a user can make (the `ping` app: a slider answered with a short text)
 * must not wait for a delayed ACK. Bokeh writes each message as several WebSocket frames; with
 * Nagle's algorithm on, every frame after the first waits ~40 ms for the peer's ACK. The stack
 * turns no-delay on (BOKEH_NODELAY) and this check proves both that it works and, with it off,
 * that the check can fail. A behaviour check with a wide margin, not a benchmark.
 */
import { pingP50 } from '../support/ping.js';
import { startStack } from '../support/stack.js';

describe('ping round trip through the gateway', () => {
  test.each([
    { nodelay: 'true', expectation: 'stays under 15 ms', check: (p50: number) => expect(p50).toBeLessThan(15) },
    // Stock Bokeh: the ~40 ms stall is back, which proves the check above can fail.
    { nodelay: 'false', expectation: 'shows the ~40 ms stall', check: (p50: number) => expect(p50).toBeGreaterThan(30) },
  ])(
    'with BOKEH_NODELAY=$nodelay, p50 $expectation',
    async ({ nodelay, check }) => {
      const stack = await startStack({ environment: { BOKEH_NODELAY: nodelay } });
      try {
        const p50 = await pingP50(stack.url);
        process.stdout.write(`[latency] ping p50 with BOKEH_NODELAY=${nodelay}: ${p50.toFixed(2)} ms\n`);
        check(p50);
      } finally {
        await stack.down();
      }
    },
    300_000,
  );
});
