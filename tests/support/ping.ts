/**
 * The round trip of the smallest interaction a user can make: the `ping` app's slider, answered
 * by a server callback with a short text. Reported as the median of 50 changes.
 */
import { autoloadUrlFor, BokehClient, modelNamed, tokenFromAutoload } from '../../client/bokeh-client.js';
import { PREFIX, request } from './stack.js';

const ROUND_TRIPS = 50;
const WARM_UP = 5;

/** `origin` is the public address to go through (gateway or nginx); `ca` trusts its certificate. */
export async function pingP50(origin: string, ca?: Buffer): Promise<number> {
  const app = `${origin}${PREFIX}/ping`;
  const autoload = await request(autoloadUrlFor(origin, PREFIX, 'ping'), ca ? { ca } : {});
  const client = await BokehClient.connect(`${app.replace(/^http/, 'ws')}/ws`, tokenFromAutoload(autoload.body), { origin, ...(ca ? { ca } : {}) });
  try {
    const slider = modelNamed(await client.pullDocument(), 'ping').id;
    const times: number[] = [];
    // The first messages of a session pay for lazy set-up; they are not counted.
    for (let value = 1; value <= ROUND_TRIPS + WARM_UP; value += 1) {
      const started = performance.now();
      client.setProperty(slider, 'value', value);
      await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(`pong ${value}`));
      if (value > WARM_UP) times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    await client.close();
  }
}
