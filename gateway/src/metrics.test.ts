/**
 * The metrics module: bounded labels, the relay's totals read at scrape time, and the no-op twin.
 * The gateway's own counts (requests, refusals, sessions) are checked in limits.test.ts.
 */
import { duplexPair } from 'node:stream';
import { pino } from 'pino';
import { frame } from './frames.fixtures.js';
import { createMetrics, noMetrics } from './metrics.js';
import { RelayPair } from './ws-pair.js';

const REPLICA = 'http://172.20.0.5:5006';

test('labels stay bounded: odd methods, close codes and error kinds fold into a few values', async () => {
  const metrics = createMetrics();
  metrics.httpRequest('static', 'BREW', 418, 0.001, 'HIT');
  metrics.webSocketOpened(REPLICA);
  metrics.webSocketOpened(REPLICA);
  metrics.webSocketClosed(REPLICA, 4321);
  metrics.webSocketClosed(REPLICA, 1001);
  metrics.upstreamError('ECONNREFUSED');
  metrics.upstreamError('ESOMETHINGNEW');
  const { body, contentType } = await metrics.render();
  expect(contentType).toContain('text/plain');
  expect(body).toContain('gateway_http_requests_total{route="static",method="other",status="418"} 1');
  expect(body).toContain('gateway_static_cache_total{result="hit"} 1');
  expect(body).toContain(`gateway_websockets_open{replica="${REPLICA}"} 0`);
  expect(body).toContain(`gateway_websockets_opened_total{replica="${REPLICA}"} 2`);
  expect(body).toContain(`gateway_websockets_closed_total{replica="${REPLICA}",code="4xxx"} 1`);
  expect(body).toContain(`gateway_websockets_closed_total{replica="${REPLICA}",code="1001"} 1`);
  expect(body).toContain('gateway_upstream_errors_total{kind="ECONNREFUSED"} 1');
  expect(body).toContain('gateway_upstream_errors_total{kind="other"} 1');
});

test('replica health is read from upstream.ts when Prometheus scrapes', async () => {
  const metrics = createMetrics();
  let state: 'serving' | 'draining' = 'serving';
  metrics.watchReplicas(() => [{ url: REPLICA, state, sessions: 7 }]);
  expect((await metrics.render()).body).toContain(`gateway_bokeh_replica_up{replica="${REPLICA}",state="serving"} 1`);
  state = 'draining';
  const { body } = await metrics.render();
  expect(body).toContain(`gateway_bokeh_replica_up{replica="${REPLICA}",state="draining"} 1`);
  expect(body).not.toContain('state="serving"');
  expect(body).toContain(`gateway_bokeh_replica_sessions{replica="${REPLICA}"} 7`);
});

test('a relayed pair adds its messages and bytes to the totals, each direction on its own', async () => {
  const metrics = createMetrics();
  const [browserEnd, browser] = duplexPair();
  const [bokehEnd, bokeh] = duplexPair();
  bokeh.resume();
  browser.resume();
  const pair = new RelayPair(browserEnd, bokehEnd, 1 << 20, {}, pino({ level: 'silent' }), () => undefined, metrics.relayed);
  pair.start(Buffer.alloc(0), Buffer.alloc(0));
  const up = Buffer.concat([frame(0x1, 'hello', { mask: true }), frame(0x1, 'wor', { mask: true, fin: false }), frame(0x0, 'ld', { mask: true })]);
  const down = frame(0x2, Buffer.alloc(300));
  browser.write(up);
  bokeh.write(down);
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(metrics.relayed).toEqual({ upMessages: 2, upBytes: up.length, downMessages: 1, downBytes: down.length });
  const { body } = await metrics.render();
  expect(body).toContain('gateway_websocket_messages_total{direction="up"} 2');
  expect(body).toContain(`gateway_websocket_bytes_total{direction="down"} ${down.length}`);
  pair.destroy();
});

test('with metrics off every call does nothing and there is nothing to render', async () => {
  const metrics = noMetrics();
  expect(metrics.enabled).toBe(false);
  metrics.httpRequest('document', 'GET', 200, 0.1, undefined);
  metrics.refused('session_starts');
  expect((await metrics.render()).body).toBe('');
});
