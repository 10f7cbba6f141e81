/**
 * The Bokeh replicas of a test stack, seen and handled the way an operator would: the containers
 * of the `bokeh` service, what each one says about itself at `<prefix>/_replica` (counted inside
 * Bokeh, so tests never take the gateway's word for where sessions went), and stop, kill, start
 * and scale-up with Docker's own commands.
 */
import { modelNamed, type BokehClient } from '../../client/bokeh-client.js';
import { openAppPage, PREFIX, REPO_ROOT, request, run, type Stack } from './stack.js';

/** One container of the `bokeh` service. */
export interface Replica {
  id: string;
  /** Container name, e.g. testcontainers-0a1b2c3d4e5f-bokeh-2. */
  name: string;
  /** Compose's container number (the N in bokeh-N). */
  number: number;
  /** Docker's state: running, exited, restarting, ... */
  state: string;
  /** The healthcheck's verdict: starting, healthy, unhealthy. */
  health: string | undefined;
  /** Its address on the backend network while it runs, as the gateway lists it: http://172.x.y.z:5006. */
  url: string | undefined;
}

/** What a replica reports at `<prefix>/_replica`. */
export interface ReplicaStatus {
  state: 'serving' | 'draining';
  /** Sessions it holds now. */
  sessions: number;
  /** Open WebSockets. */
  connections: number;
  /** Sessions Bokeh made since the replica started. */
  sessionsCreated: number;
  drainTimeoutSeconds: number;
  drainingForSeconds?: number;
}

/** One replica as the gateway's /readyz lists it. */
export interface ReadyReplica {
  url: string;
  state: 'serving' | 'draining' | 'down' | 'starting';
  sessions: number;
}

export interface Readiness {
  status: 'ready' | 'unavailable';
  replicas: ReadyReplica[];
}

const BOKEH_PORT = 5006;

interface Inspected {
  Id: string;
  Name: string;
  State: { Status: string; Health?: { Status: string } };
  Config: { Labels: Record<string, string> };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}

/** The stack's Bokeh containers, running or not, by container number. */
export async function listReplicas(stack: Stack): Promise<Replica[]> {
  const { stdout } = await run('docker', [
    'ps',
    '--all',
    '--quiet',
    '--filter',
    `label=com.docker.compose.project=${stack.project.name}`,
    '--filter',
    'label=com.docker.compose.service=bokeh',
  ]);
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const inspected = JSON.parse((await run('docker', ['inspect', ...ids])).stdout) as Inspected[];
  return inspected
    .map((container) => {
      const address = Object.values(container.NetworkSettings.Networks).find((network) => network.IPAddress)?.IPAddress;
      return {
        id: container.Id,
        name: container.Name.replace(/^\//, ''),
        number: Number(container.Config.Labels['com.docker.compose.container-number']),
        state: container.State.Status,
        health: container.State.Health?.Status,
        url: container.State.Status === 'running' && address ? `http://${address}:${BOKEH_PORT}` : undefined,
      };
    })
    .sort((a, b) => a.number - b.number);
}

/** The running replicas. */
export async function runningReplicas(stack: Stack): Promise<Replica[]> {
  return (await listReplicas(stack)).filter((replica) => replica.state === 'running');
}

/** Asks one replica for its status, from inside its own container (Bokeh is on the backend network only). */
export async function replicaStatus(replica: Replica): Promise<ReplicaStatus> {
  const script = `import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:${BOKEH_PORT}${PREFIX}/_replica', timeout=5).read().decode())`;
  const { stdout } = await run('docker', ['exec', replica.id, 'python3', '-c', script]);
  return JSON.parse(stdout) as ReplicaStatus;
}

/** Every running replica's status, keyed by container name. */
export async function replicaStatuses(stack: Stack): Promise<Map<string, ReplicaStatus>> {
  const replicas = await runningReplicas(stack);
  const statuses = await Promise.all(replicas.map(replicaStatus));
  return new Map(replicas.map((replica, index) => [replica.name, statuses[index]!]));
}

/** Sessions Bokeh made, per running replica, between `before` and `after`. */
export function createdBetween(before: Map<string, ReplicaStatus>, after: Map<string, ReplicaStatus>): Map<string, number> {
  return new Map([...after].map(([name, status]) => [name, status.sessionsCreated - (before.get(name)?.sessionsCreated ?? 0)]));
}

export const sum = (values: Iterable<number>): number => [...values].reduce((total, value) => total + value, 0);

/** SIGKILL: the replica dies on the spot, as in a crash or an out-of-memory kill. */
export async function killReplica(replica: Replica): Promise<void> {
  await run('docker', ['kill', replica.id]);
}

/**
 * `docker stop`: SIGTERM, then Docker waits up to the service's stop_grace_period. Resolves once
 * the container has exited, so callers that test the drain start it and await it later.
 */
export async function stopReplica(replica: Replica): Promise<void> {
  await run('docker', ['stop', replica.id]);
}

export async function startReplica(replica: Replica): Promise<void> {
  await run('docker', ['start', replica.id]);
}

/** Waits until the container's healthcheck says healthy. */
export async function waitHealthy(replica: Replica, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout } = await run('docker', ['inspect', '--format', '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}', replica.id]);
    if (stdout.trim() === 'running healthy') return;
    if (Date.now() > deadline) throw new Error(`${replica.name} is not healthy after ${timeoutMs} ms (${stdout.trim()})`);
    await new Promise((done) => setTimeout(done, 500));
  }
}

/** `docker compose up --scale bokeh=N` on the stack's own project, files and settings; waits until all are healthy. */
export async function scaleBokeh(stack: Stack, replicas: number): Promise<Replica[]> {
  const { name, files, profiles, environment } = stack.project;
  await run(
    'docker',
    [
      'compose',
      '--project-name',
      name,
      ...files.flatMap((file) => ['--file', file]),
      ...profiles.flatMap((profile) => ['--profile', profile]),
      'up',
      '--detach',
      '--no-recreate',
      '--no-build',
      '--scale',
      `bokeh=${replicas}`,
    ],
    { cwd: REPO_ROOT, env: { ...process.env, ...environment }, maxBuffer: 16 * 1024 * 1024 },
  );
  const all = await runningReplicas(stack);
  await Promise.all(all.map((replica) => waitHealthy(replica)));
  return all;
}

/** The gateway's /readyz, status code and body. */
export async function readiness(origin: string): Promise<{ status: number; body: Readiness }> {
  const reply = await request(`${origin}/readyz`);
  return { status: reply.status, body: JSON.parse(reply.body) as Readiness };
}

/** A live session of the `ping` app: its WebSocket client and its slider. */
export interface PingSession {
  /** The autoload.js URL the page pointed at (and that was loaded). */
  autoloadUrl: string;
  client: BokehClient;
  slider: string;
  /** Round trips made so far; each one sends the next value. */
  sent: number;
}

/** How long a page load (page, autoload.js, WebSocket, document) may take before it counts as failed. */
export const PAGE_LOAD_TIMEOUT_MS = 15_000;

/**
 * Loads the `ping` app page as a browser would (page, autoload.js, WebSocket, document). A load
 * that takes longer than `timeoutMs` fails; if it completes later, its session is closed.
 */
export async function openPing(origin: string, options: { ca?: Buffer; wsVia?: string; timeoutMs?: number } = {}): Promise<PingSession> {
  const loading = openAppPage(origin, 'ping', options.ca, options.wsVia ?? origin);
  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = options.timeoutMs ?? PAGE_LOAD_TIMEOUT_MS;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      loading.then(({ client }) => client.close()).catch(() => undefined);
      reject(new Error(`the page load through ${origin} took more than ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    const { autoloadUrl, client, doc } = await Promise.race([loading, late]);
    return { autoloadUrl, client, slider: modelNamed(doc, 'ping').id, sent: 0 };
  } finally {
    clearTimeout(timer);
  }
}

/** Moves the slider and waits for the server's answer: one round trip through every hop. */
export async function roundTrip(session: PingSession, timeoutMs = 10_000): Promise<void> {
  session.sent += 1;
  const value = session.sent;
  session.client.setProperty(session.slider, 'value', value);
  await session.client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(`pong ${value}`), timeoutMs);
}

/**
 * Opens `count` ping sessions one after another and finds, from the replicas' own counts, which
 * replica made each one (the one whose sessionsCreated went up by one).
 */
export async function openTracked(stack: Stack, origin: string, count: number): Promise<Array<PingSession & { replica: string }>> {
  const opened: Array<PingSession & { replica: string }> = [];
  let before = await replicaStatuses(stack);
  for (let i = 0; i < count; i += 1) {
    const session = await openPing(origin);
    const after = await replicaStatuses(stack);
    const grew = [...createdBetween(before, after)].filter(([, created]) => created > 0);
    if (grew.length !== 1 || grew[0]![1] !== 1) throw new Error(`one page load should make one Bokeh session on one replica, got ${JSON.stringify(grew)}`);
    opened.push({ ...session, replica: grew[0]![0] });
    before = after;
  }
  return opened;
}
