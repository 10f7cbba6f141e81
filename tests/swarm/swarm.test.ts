/**
 * deploy/swarm/stack.yml on a real swarm of three nodes (.ci/lib/swarm.sh: each node a container
 * with its own engine, images from a local registry). Traffic goes to the gateways' published
 * host-mode ports on 127.0.0.1 only. The tests run in order and share the one deployment:
 * deploy, sessions across nodes, a rolling update, a drained node, a killed node.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BokehClient, tokenFromAutoload } from '../../client/bokeh-client.js';
import { loadPagesUntil } from '../support/clusters.js';
import { buildImages, eventually, openAppPage, PREFIX } from '../support/stack.js';
import {
  bokehTasks,
  docker,
  hostDocker,
  readiness,
  readSwarm,
  runningOn,
  sessionsMade,
  STACK,
  STACK_FILE,
  swarmScript,
  type Swarm,
  type SwarmNode,
} from './swarm.js';

const IMAGE_TAG = process.env.IMAGE_TAG || 'local';
/** The stack file's default, which the deployment keeps: what a stopping replica owes its sessions. */
const DRAIN_TIMEOUT_S = 20;

let swarm: Swarm;
let manager: SwarmNode;
let keyDir: string;
const open: BokehClient[] = [];

/** Nodes this file killed; their engines are gone. */
const killed = new Set<string>();
const live = () => swarm.nodes.filter((node) => !killed.has(node.hostname));

/** A page load as a browser makes it: the page, autoload.js, the WebSocket and a document round trip. */
async function pageLoad(gateway: string): Promise<BokehClient> {
  const { client } = await openAppPage(gateway, 'ping');
  open.push(client);
  return client;
}

/** The gateways that answer ready with every Bokeh replica serving, by node. */
async function readyGateways(replicas = 3): Promise<SwarmNode[]> {
  const ready = await Promise.all(
    live().map(async (node) => {
      const status = await readiness(node.gateway);
      return status?.status === 'ready' && status.replicas.filter((r) => r.state === 'serving').length === replicas ? node : undefined;
    }),
  );
  return ready.filter((node): node is SwarmNode => node !== undefined);
}

/** `promise`'s value, or undefined if it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let expire: (value: undefined) => void = () => undefined;
  const timeout = new Promise<undefined>((resolve) => (expire = resolve));
  const timer = setTimeout(() => expire(undefined), ms);
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

beforeAll(async () => {
  await buildImages();
  await swarmScript('up');
  await swarmScript('push');
  swarm = readSwarm();
  manager = swarm.nodes[0]!;
  keyDir = mkdtempSync(join(tmpdir(), 'swarm-key-'));
  writeFileSync(join(keyDir, 'bokeh-secret-key'), `${randomBytes(36).toString('base64url')}\n`, { mode: 0o600 });
  // Every node's published port is an origin browsers may use.
  const origins = swarm.nodes.map((node) => node.gateway).join(',');
  await docker(manager, ['stack', 'deploy', '--detach=true', '-c', STACK_FILE, STACK], {
    env: { REGISTRY: swarm.registry, IMAGE_TAG, BOKEH_SECRET_KEY_PATH: join(keyDir, 'bokeh-secret-key'), PUBLIC_ORIGINS: origins },
  });
  await eventually(
    async () => (await readyGateways()).length === 2 && (await runningOn(manager, 'gateway')).length === 2 && (await runningOn(manager, 'bokeh')).length === 3,
    180_000,
    'two gateways ready with three serving Bokeh replicas, and every task running (healthy)',
  );
}, 420_000);

afterAll(async () => {
  // terminate, not close: a session whose node was killed would wait for a close handshake.
  for (const client of open) client.socket.terminate();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  if (process.env.SWARM_KEEP === '1') return;
  await swarmScript('down');
}, 120_000);

test('deploys Bokeh on every node and the gateway on two, with Bokeh on an internal network only', async () => {
  expect(new Set(await runningOn(manager, 'bokeh')).size).toBe(3);
  const gateways = await runningOn(manager, 'gateway');
  expect(gateways).toHaveLength(2);
  expect(new Set(gateways).size).toBe(2);
  expect(await docker(manager, ['network', 'inspect', '--format', '{{.Internal}} {{.Attachable}}', `${STACK}_backend`])).toBe('true false');
  const bokeh = JSON.parse(await docker(manager, ['service', 'inspect', '--format', '{{json .Spec}}', `${STACK}_bokeh`])) as {
    EndpointSpec?: { Mode: string; Ports?: unknown[] };
    TaskTemplate: { Networks: { Target: string }[]; ContainerSpec: { ReadOnly?: boolean; User?: string; CapabilityDrop?: string[]; Secrets?: unknown[] } };
  };
  expect(bokeh.EndpointSpec?.Mode).toBe('dnsrr');
  expect(bokeh.EndpointSpec?.Ports ?? []).toEqual([]);
  expect(bokeh.TaskTemplate.Networks).toHaveLength(1);
  expect(bokeh.TaskTemplate.ContainerSpec).toMatchObject({ ReadOnly: true, User: '10001:10001', CapabilityDrop: ['ALL'] });
  expect(bokeh.TaskTemplate.ContainerSpec.Secrets).toHaveLength(1);
}, 60_000);

test('page loads through both gateways make one Bokeh session each, on replicas on different nodes', async () => {
  const gateways = await readyGateways();
  const before = await bokehTasks(live());
  const loads = 6;
  for (let i = 0; i < loads; i += 1) await pageLoad(gateways[i % gateways.length]!.gateway);
  const made = sessionsMade(before, await bokehTasks(live()));
  // Exactly one session per page load: autoload.js and the WebSocket of each reached the replica
  // that made its page's session, whichever gateway served it.
  expect([...made.values()].reduce((a, b) => a + b, 0)).toBe(loads);
  expect(new Set([...made.keys()].map((task) => task.node)).size).toBeGreaterThanOrEqual(2);
  await Promise.all(open.splice(0).map((client) => client.close()));
}, 120_000);

test('a rolling update of the Bokeh image fails no page load, and sessions on stopping replicas last the drain', async () => {
  const next = `${IMAGE_TAG}-next`;
  await hostDocker(['tag', `bokeh-gateway-stack/bokeh:${IMAGE_TAG}`, `${swarm.registryPush}/bokeh-gateway-stack/bokeh:${next}`]);
  await hostDocker(['push', '--quiet', `${swarm.registryPush}/bokeh-gateway-stack/bokeh:${next}`]);
  await hostDocker(['image', 'rm', `${swarm.registryPush}/bokeh-gateway-stack/bokeh:${next}`]);

  const [gateway] = await readyGateways();
  // Sessions held through the update, spread over the replicas (fewest sessions first).
  const held = await Promise.all([0, 1, 2].map(() => pageLoad(gateway!.gateway)));
  const heldClosed = held.map((client) => client.closed.then(() => Date.now()));

  const started = Date.now();
  await docker(manager, ['service', 'update', '--detach', '--image', `${swarm.registry}/bokeh-gateway-stack/bokeh:${next}`, `${STACK}_bokeh`]);
  const finished = eventually(
    async () => (await docker(manager, ['service', 'inspect', '--format', '{{.UpdateStatus.State}}', `${STACK}_bokeh`])) === 'completed',
    240_000,
    'the rolling update to complete',
  );
  const loads = await loadPagesUntil(() => pageLoad(gateway!.gateway), finished);
  await finished;

  expect(loads.failed).toEqual([]);
  expect(loads.ok).toBeGreaterThan(5);
  const images = await docker(manager, ['service', 'ps', `${STACK}_bokeh`, '--filter', 'desired-state=running', '--format', '{{.Image}}']);
  expect(images.split('\n')).toEqual(Array(3).fill(`${swarm.registry}/bokeh-gateway-stack/bokeh:${next}`));
  // Every held session was on a replica that stopped; none was cut before the drain bound.
  const closedAt = await within(Promise.all(heldClosed), (DRAIN_TIMEOUT_S + 30) * 1000);
  expect(closedAt).toBeDefined();
  for (const at of closedAt!) expect(at - started).toBeGreaterThanOrEqual(DRAIN_TIMEOUT_S * 1000);
}, 420_000);

test('draining a node moves its tasks, and page loads keep succeeding', async () => {
  const gateways = await readyGateways();
  const bokehNodes = await runningOn(manager, 'bokeh');
  // A worker that runs Bokeh, drained while the client goes through a gateway on another node.
  const drained = swarm.nodes.find((node) => node !== manager && bokehNodes.includes(node.hostname) && gateways.some((g) => g !== node))!;
  const gateway = gateways.find((node) => node !== drained)!;

  await docker(manager, ['node', 'update', '--availability', 'drain', drained.hostname]);
  const moved = eventually(
    async () => {
      const bokeh = await runningOn(manager, 'bokeh');
      return bokeh.length === 3 && !bokeh.includes(drained.hostname) && !(await runningOn(manager, 'gateway')).includes(drained.hostname);
    },
    180_000,
    `the tasks on ${drained.hostname} to move`,
  );
  const loads = await loadPagesUntil(() => pageLoad(gateway.gateway), moved);
  await moved;
  await docker(manager, ['node', 'update', '--availability', 'active', drained.hostname]);

  expect(loads.failed).toEqual([]);
  expect(loads.ok).toBeGreaterThan(0);
  expect(await bokehTasks([drained])).toEqual([]);
}, 300_000);

// A killed node sends nothing more: no FIN, no RST. The gateway closes the WebSockets pinned to
// its replica with 1014 once its checks find the replica down, then serves the session's
// reconnect and every new page load from the live nodes.
test('after a node is killed, its sessions close with 1014, reconnect, and new page loads land on the other nodes', async () => {
  // The victim: a worker that runs Bokeh, with a gateway on another node that sees all three
  // replicas serving (the earlier tests' moves settle first).
  let bokehNodes: string[] = [];
  let found: { victim: SwarmNode; gateway: SwarmNode } | undefined;
  const pick = async () => {
    const gateways = await readyGateways();
    bokehNodes = await runningOn(manager, 'bokeh');
    const victim = swarm.nodes.find((node) => node !== manager && bokehNodes.includes(node.hostname) && gateways.some((g) => g !== node));
    const gateway = gateways.find((node) => node !== victim);
    found = victim && gateway ? { victim, gateway } : undefined;
    return found !== undefined;
  };
  try {
    await eventually(pick, 120_000, 'a worker running Bokeh and a ready gateway on another node');
  } catch (err) {
    const readyz = await Promise.all(live().map(async (node) => [node.hostname, await readiness(node.gateway)]));
    throw new Error(`${String(err)}: bokeh on ${JSON.stringify(bokehNodes)}, gateways ${JSON.stringify(Object.fromEntries(readyz))}`, { cause: err });
  }
  const { victim, gateway } = found!;

  // Page loads, each kept open, until one session is on the victim's replica. The gateway sends a
  // new session to the replica with the fewest, so when the victim's replicas still hold the
  // earlier tests' sessions it takes as many loads as the difference, or until Bokeh drops the
  // unused ones (15 s), before one lands there.
  let token: string | undefined;
  let pinned: BokehClient | undefined;
  for (let i = 0; i < 80 && !token; i += 1) {
    const before = await bokehTasks([victim]);
    const { client, js } = await openAppPage(gateway.gateway, 'ping');
    open.push(client);
    if (sessionsMade(before, await bokehTasks([victim])).size > 0) [token, pinned] = [tokenFromAutoload(js), client];
  }
  if (!token) {
    const seen = { tasks: await bokehTasks(live()), readyz: await readiness(gateway.gateway) };
    throw new Error(`no session landed on ${victim.hostname} through ${gateway.hostname}: ${JSON.stringify(seen)}`);
  }

  await hostDocker(['kill', victim.container]);
  killed.add(victim.hostname);
  // The gateway's health checks find the victim's replica gone.
  await eventually(
    async () =>
      (await readiness(gateway.gateway))?.replicas.filter((replica) => replica.state === 'serving').length ===
      bokehNodes.filter((n) => n !== victim.hostname).length,
    60_000,
    `the gateway to stop counting ${victim.hostname}'s replica as serving`,
  );
  const lost = await Promise.race([pinned!.closed, new Promise<undefined>((resolve) => setTimeout(resolve, 30_000))]);
  expect(lost?.code).toBe(1014);

  const before = await bokehTasks(live());
  // The session's reconnect (what BokehJS does after a lost connection) is served by a live replica.
  const reconnected = await BokehClient.connect(`${gateway.gateway.replace(/^http/, 'ws')}${PREFIX}/ping/ws`, token!, { origin: gateway.gateway });
  open.push(reconnected);
  await reconnected.pullDocument();
  const loads = 4;
  for (let i = 0; i < loads; i += 1) await (await pageLoad(gateway.gateway)).close();
  const made = sessionsMade(before, await bokehTasks(live()));
  expect([...made.values()].reduce((a, b) => a + b, 0)).toBe(loads + 1);
}, 300_000);
