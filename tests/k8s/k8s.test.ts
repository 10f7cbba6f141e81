/**
 * deploy/helm/bokeh-gateway-stack on a real single-node Kubernetes cluster (.ci/lib/k8s.sh:
 * upstream Kubernetes built from source, its own containerd, CoreDNS, Traefik as the Ingress
 * controller). Traffic goes to the gateway's NodePort and Traefik's NodePort on 127.0.0.1 only.
 * The tests run in order and share one release: install, pages through both doors, affinity, an
 * idle WebSocket through the Ingress, a rolling update, a deleted pod, uninstall.
 */
import { BokehClient, tokenFromAutoload } from '../../client/bokeh-client.js';
import { loadPagesUntil } from '../support/clusters.js';
import { buildImages, eventually, openAppPage, PREFIX, request } from '../support/stack.js';
import { bokehPods, CHART, k8sScript, pods, readCluster, sessionsMade, tool, total, type Cluster } from './k8s.js';

const IMAGE_TAG = process.env.IMAGE_TAG || 'local';
const NAMESPACE = 'bokeh-test';
const RELEASE = 'dashboards';
/** The chart names objects <release>-<chart>-<component>. */
const NAME = `${RELEASE}-bokeh-gateway-stack`;
/** The gateway Service's node port, fixed so that it can be a public origin before install. */
const NODE_PORT = 30180;
/** The chart's default drain. */
const DRAIN_TIMEOUT_S = 20;
const BOKEH_PODS = 3;
const GATEWAY_PODS = 2;

let cluster: Cluster;
let direct: string;
const open: BokehClient[] = [];

const kubectl = (...args: string[]) => tool(cluster, 'kubectl', ['-n', NAMESPACE, ...args], 120_000);
const helm = (...args: string[]) => tool(cluster, 'helm', ['-n', NAMESPACE, ...args], 600_000);
const bokeh = () => bokehPods(cluster, NAMESPACE, RELEASE);

/** A page load as a browser makes it: the page, autoload.js, the WebSocket and a document round trip. */
async function pageLoad(origin: string): Promise<{ client: BokehClient; token: string }> {
  const { client, js } = await openAppPage(origin, 'ping');
  open.push(client);
  return { client, token: tokenFromAutoload(js) };
}

/** Pods the Bokeh Service's EndpointSlices list as ready: what CoreDNS answers for its name. */
async function readyEndpoints(): Promise<string[]> {
  const slices = JSON.parse(await kubectl('get', 'endpointslices', '-l', `kubernetes.io/service-name=${NAME}-bokeh`, '-o', 'json')) as {
    items: { endpoints?: { targetRef?: { name: string }; conditions?: { ready?: boolean } }[] }[];
  };
  return slices.items.flatMap((slice) => (slice.endpoints ?? []).filter((e) => e.conditions?.ready === true).map((e) => e.targetRef?.name ?? ''));
}

async function readyPods(component: 'bokeh' | 'gateway'): Promise<number> {
  return (await pods(cluster, NAMESPACE, RELEASE, component)).filter((pod) => pod.ready && !pod.deletionTimestamp).length;
}

beforeAll(async () => {
  await buildImages();
  await k8sScript('up');
  await k8sScript('load', `bokeh-gateway-stack/bokeh:${IMAGE_TAG}`, `bokeh-gateway-stack/gateway:${IMAGE_TAG}`);
  cluster = readCluster();
  direct = `http://127.0.0.1:${NODE_PORT}`;
  await tool(cluster, 'kubectl', ['create', 'namespace', NAMESPACE]);
  await helm(
    'install',
    RELEASE,
    CHART,
    '--wait',
    '--timeout',
    '5m',
    '--set',
    `image.tag=${IMAGE_TAG}`,
    '--set',
    'image.pullPolicy=Never',
    '--set',
    `bokeh.replicas=${BOKEH_PODS}`,
    '--set',
    `gateway.replicas=${GATEWAY_PODS}`,
    '--set',
    'gateway.service.type=NodePort',
    '--set',
    `gateway.service.nodePort=${NODE_PORT}`,
    '--set',
    'ingress.enabled=true',
    '--set',
    'ingress.className=traefik',
    '--set',
    `publicOrigins={${direct},${cluster.ingress}}`,
  );
}, 1_800_000);

afterAll(async () => {
  for (const client of open) client.socket.terminate();
  if (process.env.K8S_KEEP === '1') return;
  await k8sScript('down');
}, 180_000);

test('helm install --wait runs three Bokeh and two gateway pods, hardened, and helm test passes', async () => {
  expect(await readyPods('bokeh')).toBe(BOKEH_PODS);
  expect(await readyPods('gateway')).toBe(GATEWAY_PODS);
  const spec = JSON.parse(await kubectl('get', 'deployment', `${NAME}-bokeh`, '-o', 'jsonpath={.spec.template.spec}')) as {
    terminationGracePeriodSeconds: number;
    automountServiceAccountToken: boolean;
    securityContext: { runAsNonRoot: boolean; runAsUser: number };
    containers: { securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean; capabilities: { drop: string[] } } }[];
  };
  expect(spec.terminationGracePeriodSeconds).toBe(DRAIN_TIMEOUT_S + 5);
  expect(spec.automountServiceAccountToken).toBe(false);
  expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
  expect(spec.containers[0]!.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  // The Bokeh Service is headless: one address per pod, which is how the gateway sees replicas.
  expect(await kubectl('get', 'service', `${NAME}-bokeh`, '-o', 'jsonpath={.spec.clusterIP}')).toBe('None');
  const objects = await kubectl('get', 'pdb,networkpolicy,ingress', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name');
  expect(objects.split('\n').sort()).toEqual(
    [
      `ingress.networking.k8s.io/${NAME}-gateway`,
      `networkpolicy.networking.k8s.io/${NAME}-bokeh`,
      `networkpolicy.networking.k8s.io/${NAME}-gateway`,
      `poddisruptionbudget.policy/${NAME}-bokeh`,
      `poddisruptionbudget.policy/${NAME}-gateway`,
    ].sort(),
  );
  await expect(helm('test', RELEASE, '--timeout', '2m')).resolves.toContain('Phase:          Succeeded');
}, 180_000);

test('a page loads and its WebSocket round-trips through the NodePort and through the Ingress', async () => {
  for (const origin of [direct, cluster.ingress]) {
    const { page, autoloadUrl, client } = await openAppPage(origin, 'ping');
    open.push(client);
    // The page names the door it was loaded through: the Ingress's forwarded host reached the gateway.
    expect(autoloadUrl.startsWith(`${origin}${PREFIX}/ping/autoload.js`)).toBe(true);
    expect(page).toContain('<script');
    await client.pullDocument();
    await client.close();
  }
  // Bokeh itself has no door: its Service has no node port and no Ingress.
  expect(await kubectl('get', 'service', `${NAME}-bokeh`, '-o', 'jsonpath={.spec.type}')).toBe('ClusterIP');
  const readyz = await request(`${direct}/readyz`);
  expect(readyz.status).toBe(200);
  const replicas = (JSON.parse(readyz.body) as { replicas: { state: string }[] }).replicas;
  expect(replicas.filter((replica) => replica.state === 'serving')).toHaveLength(BOKEH_PODS);
}, 60_000);

test('page loads through both gateway pods make one Bokeh session each, spread over the Bokeh pods', async () => {
  const before = await bokeh();
  const loads = 9;
  for (let i = 0; i < loads; i += 1) await (await pageLoad(i % 2 ? direct : cluster.ingress)).client.close();
  const made = sessionsMade(before, await bokeh());
  // Exactly one session per page load: autoload.js and the WebSocket of each reached the pod that
  // made its page's session, whichever gateway pod each request went through.
  expect(total(made)).toBe(loads);
  expect(made.size).toBeGreaterThanOrEqual(2);
}, 120_000);

test('an idle WebSocket through the Ingress still round-trips after 70 seconds', async () => {
  const { client } = await pageLoad(cluster.ingress);
  await new Promise((resolve) => setTimeout(resolve, 70_000));
  await expect(client.pullDocument()).resolves.toBeDefined();
  await client.close();
}, 120_000);

test('a rolling update of the Bokeh Deployment fails no page load, and sessions on replaced pods last the drain', async () => {
  const held = await Promise.all([0, 1, 2].map(() => pageLoad(direct)));
  const heldClosed = held.map(({ client }) => client.closed.then(() => Date.now()));
  const started = Date.now();
  await kubectl('rollout', 'restart', `deployment/${NAME}-bokeh`);
  const finished = kubectl('rollout', 'status', `deployment/${NAME}-bokeh`, '--timeout', '5m');
  const loads = await loadPagesUntil(async () => (await pageLoad(direct)).client, finished);
  await finished;

  expect(loads.failed).toEqual([]);
  expect(loads.ok).toBeGreaterThan(5);
  await eventually(async () => (await readyPods('bokeh')) === BOKEH_PODS && (await bokeh()).length === BOKEH_PODS, 120_000, 'only the new Bokeh pods');
  // Every held session was on a pod that stopped; none was cut before the drain bound.
  const closedAt = await Promise.race([Promise.all(heldClosed), new Promise<undefined>((resolve) => setTimeout(resolve, (DRAIN_TIMEOUT_S + 30) * 1000))]);
  expect(closedAt).toBeDefined();
  for (const at of closedAt!) expect(at - started).toBeGreaterThanOrEqual(DRAIN_TIMEOUT_S * 1000);
}, 420_000);

// A deleted pod gets SIGTERM and leaves the Service's endpoints (and DNS) at once. The gateway
// keeps routing its sessions there while it drains: a reconnect of a session it holds reaches it,
// not a new session elsewhere. When the drain ends, the session moves to a live pod.
test('a Bokeh pod deleted under a live session keeps serving it through the drain, then the session reconnects elsewhere', async () => {
  let pinned: { client: BokehClient; token: string; pod: string } | undefined;
  for (let i = 0; i < 20 && !pinned; i += 1) {
    const before = await bokeh();
    const load = await pageLoad(direct);
    const [pod] = [...sessionsMade(before, await bokeh()).keys()];
    if (pod) pinned = { ...load, pod };
  }
  if (!pinned) throw new Error('no page load made a session');
  const { client, token, pod } = pinned;

  const deleted = kubectl('delete', 'pod', pod, '--wait=true', '--timeout', '2m');
  await eventually(async () => (await kubectl('get', 'pod', pod, '-o', 'jsonpath={.metadata.deletionTimestamp}')) !== '', 30_000, `${pod} to terminate`);
  await eventually(async () => !(await readyEndpoints()).includes(pod), 30_000, `${pod} to leave the Service's ready endpoints`);
  // Out of DNS now; give every gateway pod a discovery round (BOKEH_DISCOVERY_INTERVAL_MS, 2 s).
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const before = await bokeh();
  // The session still round-trips on its own socket, and a reconnect with its token (what BokehJS
  // does after a network blip) reaches the draining pod instead of making a new session.
  await client.pullDocument();
  const again = await BokehClient.connect(`${direct.replace(/^http/, 'ws')}${PREFIX}/ping/ws`, token, { origin: direct });
  open.push(again);
  await again.pullDocument();
  expect(total(sessionsMade(before, await bokeh()))).toBe(0);
  // New page loads go to the other pods meanwhile.
  const fresh = await pageLoad(direct);
  await fresh.client.close();

  // The drain ends (its timeout, since the session stays open); the pod goes, the socket closes.
  await deleted;
  await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, 30_000))]);
  expect(client.socket.readyState).toBe(client.socket.CLOSED);
  const afterDrain = await bokeh();
  // BokehJS retries a lost connection until it gets through; until every gateway pod has found
  // the pod gone (two checks), a try may still be sent to its address and fail.
  let reconnected: BokehClient | undefined;
  await eventually(
    async () => {
      reconnected = await BokehClient.connect(`${direct.replace(/^http/, 'ws')}${PREFIX}/ping/ws`, token, { origin: direct });
      open.push(reconnected);
      return true;
    },
    30_000,
    'the session to reconnect',
  );
  await reconnected!.pullDocument();
  const made = sessionsMade(afterDrain, await bokeh());
  expect(total(made)).toBe(1);
  expect(made.has(pod)).toBe(false);
  // The Deployment replaces the pod.
  await eventually(async () => (await readyPods('bokeh')) === BOKEH_PODS, 120_000, 'a replacement Bokeh pod');
}, 300_000);

test('helm uninstall leaves nothing of the release behind', async () => {
  for (const c of open) c.socket.terminate();
  await helm('uninstall', RELEASE, '--wait', '--timeout', '3m');
  await eventually(async () => (await kubectl('get', 'pods', '-o', 'name')) === '', 120_000, 'every pod of the release to go');
  const left = await kubectl('get', 'all,secrets,configmaps,pdb,networkpolicies,ingresses,hpa,serviceaccounts,endpointslices,roles,rolebindings', '-o', 'name');
  // What every namespace has: its CA bundle and default service account.
  expect(left.split('\n').sort()).toEqual(['configmap/kube-root-ca.crt', 'serviceaccount/default']);
  await tool(cluster, 'kubectl', ['delete', 'namespace', NAMESPACE, '--wait=true', '--timeout', '2m'], 180_000);
}, 300_000);
