/**
 * The `monitoring` profile: a real Prometheus scraping the gateway's metrics port over the
 * backend network, found by DNS. The test asks Prometheus's HTTP API (published on 127.0.0.1)
 * for what the gateway reported: the WebSockets the test holds open, and the 429s of a flood.
 */
import getPort from 'get-port';
import type { BokehClient } from '../../client/bokeh-client.js';
import { eventually, openAppPage, PREFIX, request, run, useStack } from '../support/stack.js';

const prometheusPort = await getPort({ host: '127.0.0.1' });
const stack = useStack({ profiles: ['monitoring'], environment: { PROMETHEUS_PORT: String(prometheusPort) } });

/** One instant query: the single value of its result, or undefined when it has none. */
async function query(expression: string): Promise<number | undefined> {
  const res = await request(`http://127.0.0.1:${prometheusPort}/api/v1/query?query=${encodeURIComponent(expression)}`);
  const body = JSON.parse(res.body) as { status: string; data: { result: Array<{ value: [number, string] }> } };
  if (body.status !== 'success' || body.data.result.length === 0) return undefined;
  return Number(body.data.result[0]!.value[1]);
}

test('Prometheus finds the gateway by DNS and scrapes its metrics port, which the host cannot reach', async () => {
  await eventually(async () => (await query('up{job="gateway"}')) === 1, 30_000, 'the gateway scraped and up');
  const targets = JSON.parse((await request(`http://127.0.0.1:${prometheusPort}/api/v1/targets`)).body) as {
    data: { activeTargets: Array<{ labels: { job: string; instance: string }; health: string }> };
  };
  const gateways = targets.data.activeTargets.filter((target) => target.labels.job === 'gateway');
  expect(gateways).toHaveLength(1);
  expect(gateways[0]!.labels.instance).toMatch(/^\d+\.\d+\.\d+\.\d+:9464$/);
  // Not on the public port, and not published.
  expect((await request(`${stack().url}/metrics`)).status).toBe(404);
  const published = await run('docker', ['port', stack().container('gateway').getId()]);
  expect(
    published.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[0]),
  ).toEqual(['8000/tcp']);
  const ports = await stack().container('gateway').exec(['node', '-e', "fetch('http://127.0.0.1:9464/metrics').then((r) => console.log(r.status))"]);
  expect(ports.stdout.trim()).toBe('200');
}, 60_000);

test('the open-WebSocket gauge equals the sessions the test holds open', async () => {
  const held: BokehClient[] = [];
  try {
    for (let i = 0; i < 3; i++) held.push((await openAppPage(stack().url, 'ping')).client);
    await eventually(async () => (await query('sum(gateway_websockets_open)')) === 3, 30_000, 'gateway_websockets_open = 3');
    expect(await query('sum(gateway_sessions_started_total{app="ping"})')).toBeGreaterThanOrEqual(3);
  } finally {
    await Promise.all(held.map((client) => client.close()));
  }
  await eventually(async () => (await query('sum(gateway_websockets_open)')) === 0, 30_000, 'gateway_websockets_open back to 0');
  expect(await query('sum(gateway_websockets_closed_total)')).toBeGreaterThanOrEqual(3);
}, 90_000);

test('a flood of page loads is counted as 429s and as limit refusals', async () => {
  // From inside the gateway's container: its own address, apart from the host's.
  const flood = `
    const url = 'http://127.0.0.1:8000${PREFIX}/ping/autoload.js?bokeh-autoload-element=x';
    Promise.all(Array.from({ length: 300 }, () => fetch(url).then(async (r) => { await r.arrayBuffer(); return r.status; })))
      .then((statuses) => console.log(statuses.filter((status) => status === 429).length));`;
  const result = await stack().container('gateway').exec(['node', '-e', flood]);
  const refused = Number(result.stdout.trim());
  expect(refused).toBeGreaterThan(0);
  await eventually(
    async () => (await query('sum(gateway_limit_refusals_total{limit="session_starts"})')) === refused,
    30_000,
    `gateway_limit_refusals_total = ${refused}`,
  );
  expect(await query('sum(gateway_http_requests_total{route="autoload",status="429"})')).toBe(refused);
}, 90_000);
