/**
 * The stacks as the bench runs them, each its own compose project with every published port on
 * 127.0.0.1 and picked free at start, and a Bokeh secret key made for the run:
 * - the paths stack: docker-compose.yml plus bench/compose.bench.yml with the nginx profile,
 *   one Bokeh behind every path in the table of paths below, and the PaaS image (paas/) beside
 *   them with its own Bokeh inside;
 * - the replica stack: the same plus bench/compose.replicas.yml, Bokeh scaled to 1, 2 or 3
 *   replicas behind the gateway and behind NGINX's `least_conn`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, release, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import getPort from 'get-port';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PREFIX = '/bokeh';
/** Apps the gateway relays during the bench: the samples plus the bench's own `push`. */
const BENCH_APPS = 'sliders,stream,ping,push';
/** Apps the gateway relays in the replica stack: `ping` for round trips, the bench's `cpu`. */
const REPLICA_APPS = 'ping,cpu';
/** Bokeh's report of its own state and session counts (bokeh/launcher/replica.py). */
const REPLICA_STATUS_URL = `http://127.0.0.1:5006${PREFIX}/_replica`;

const run = promisify(execFile);

export type PathId = 'direct' | 'gateway' | 'nginxGateway' | 'nginxBokeh' | 'stock' | 'paas';

export interface BenchPath {
  id: PathId;
  label: string;
  /** Origin the client talks to, also sent as the WebSocket's Origin header. */
  origin: string;
  /** Whether the client reaches Bokeh through the gateway (which hands out session tokens). */
  viaGateway: boolean;
  /**
   * The key Bokeh signs sessions with. Paths that skip the gateway sign their own session ids,
   * as a service sharing the key would; Bokeh refuses unsigned ones.
   */
  secretKey: Buffer;
}

/**
 * The paths to the stack's one Bokeh, which every measurement of the paths stack takes, in
 * display order; the first is the baseline every ratio is taken against, with nginxBokeh.
 */
export const PATH_ORDER: PathId[] = ['direct', 'gateway', 'nginxGateway', 'nginxBokeh', 'stock'];
/**
 * Every path in the tables, in display order: those above, then the PaaS image, a Bokeh and a
 * gateway of its own in one container, which only the first-load measurement (first-load.ts) takes.
 */
export const DISPLAY_ORDER: PathId[] = [...PATH_ORDER, 'paas'];
export const PATH_LABELS: Record<PathId, string> = {
  direct: 'Direct Bokeh',
  gateway: 'Gateway',
  nginxGateway: 'NGINX → gateway',
  nginxBokeh: 'NGINX → Bokeh',
  stock: 'Stock Bokeh (no-delay off)',
  paas: 'PaaS image',
};

export interface BenchStack {
  project: string;
  paths: Record<PathId, BenchPath>;
  secretKey: string;
  /** Resident memory of the gateway's Node process, in bytes. */
  gatewayRss(): Promise<number>;
  /** Restarts the gateway's container and waits until it is healthy again. */
  restartGateway(): Promise<void>;
  /** The last lines of every service's log, for a failure report. */
  logs(lines: number): Promise<string>;
  /** Runs a command in a service's container; its standard output. */
  exec(service: 'gateway' | 'bokeh', command: string[]): Promise<string>;
  /** Starts the gateway again with these settings on top of the bench's, waits until it is healthy. */
  recreateGateway(settings: Record<string, string>): Promise<void>;
  down(): Promise<void>;
}

async function docker(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const { stdout } = await run('docker', args, { cwd: REPO_ROOT, env, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const { stderr, stdout } = err as { stderr?: string; stdout?: string };
    throw new Error(`docker ${args.join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`, { cause: err });
  }
}

/**
 * The bench measures the relay with hundreds of sessions from one client address, which the
 * per-client limits exist to refuse: they are off, except in the flood scenario (flood.ts).
 */
export const LIMITS_OFF: Record<string, string> = {
  RATE_LIMIT_SESSION_STARTS: '0',
  RATE_LIMIT_WEBSOCKETS: '0',
  MAX_WEBSOCKETS_PER_CLIENT: '0',
  MAX_SESSIONS_PER_REPLICA: '0',
};

/** The all-in-one image (paas/Dockerfile), as tests/support/global-setup.ts builds it too. */
const PAAS_IMAGE = `bokeh-gateway-stack/app:${process.env.IMAGE_TAG || 'local'}`;

/** Builds the images the stack uses (Docker reuses its cache, so an unchanged tree is quick). */
export async function buildImages(): Promise<void> {
  await docker(['compose', '-f', 'docker-compose.yml', '--profile', 'nginx', 'build']);
  // Not a compose service of docker-compose.yml: built on its own, from the same base images.
  const baseImages = ['PYTHON_IMAGE', 'NODE_IMAGE'].flatMap((name) => (process.env[name] ? ['--build-arg', `${name}=${process.env[name]}`] : []));
  await docker(['build', '-f', 'paas/Dockerfile', '-t', PAAS_IMAGE, ...baseImages, '.']);
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Polls `check` until it resolves; it throws to say "not yet", and why. `what` names the wait in
 * the error after `seconds`, with the last reason.
 */
async function waitFor(what: string, seconds: number, check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s (last: ${(err as Error).message})`, { cause: err });
    }
    await sleep(250);
  }
}

/** One compose project of the bench: its files, its environment, and the commands run on it. */
class Project {
  readonly name = `bokeh-bench-${randomBytes(3).toString('hex')}`;

  constructor(
    private readonly files: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /**
   * `docker compose` with this project's name, files and environment, `settings` on top of it,
   * and `profile` on.
   */
  compose(args: string[], { profile = 'nginx', settings = {} }: { profile?: string; settings?: Record<string, string> } = {}): Promise<string> {
    return docker(['compose', '-p', this.name, ...this.files.flatMap((file) => ['-f', file]), '--profile', profile, ...args], { ...this.env, ...settings });
  }

  /** `docker compose up` with `args` (services, --scale), waiting for the health checks. */
  async up(log: (line: string) => void, args: string[]): Promise<void> {
    log(`starting compose project ${this.name}`);
    try {
      await this.compose(['up', '-d', '--wait', '--no-build', ...args]);
    } catch (err) {
      const logs = await this.logs(20).catch(() => '');
      await this.down().catch(() => undefined);
      throw new Error(`${(err as Error).message}\nlast log lines:\n${logs}`, { cause: err });
    }
  }

  /** The ids of a service's running containers. */
  async containers(service: string): Promise<string[]> {
    return (await this.compose(['ps', '-q', service])).split('\n').filter(Boolean);
  }

  logs(lines: number): Promise<string> {
    return this.compose(['logs', '--no-color', '--timestamps', '--tail', String(lines)]);
  }

  /** Every service down, profiles included (without them compose leaves the network behind). */
  async down(): Promise<void> {
    await this.compose(['down', '-v', '--timeout', '10'], { profile: '*' });
  }
}

/**
 * The environment both stacks start with: free ports for everything either publishes, every
 * path's origin public (so Bokeh and the gateway accept WebSockets from each), a new key.
 */
async function benchEnvironment(apps: string) {
  const port = () => getPort({ host: '127.0.0.1' });
  const ports = {
    gateway: await port(),
    nginxHttp: await port(),
    nginxHttps: await port(),
    bokeh: await port(),
    nginxBokeh: await port(),
    stock: await port(),
    paas: await port(),
  };
  const origin = (p: number) => `http://127.0.0.1:${p}`;
  const secretKey = randomBytes(32).toString('base64url');
  const key = Buffer.from(secretKey);
  const paths: Record<PathId, BenchPath> = {
    direct: { id: 'direct', label: PATH_LABELS.direct, origin: origin(ports.bokeh), viaGateway: false, secretKey: key },
    gateway: { id: 'gateway', label: PATH_LABELS.gateway, origin: origin(ports.gateway), viaGateway: true, secretKey: key },
    nginxGateway: { id: 'nginxGateway', label: PATH_LABELS.nginxGateway, origin: origin(ports.nginxHttp), viaGateway: true, secretKey: key },
    nginxBokeh: { id: 'nginxBokeh', label: PATH_LABELS.nginxBokeh, origin: origin(ports.nginxBokeh), viaGateway: false, secretKey: key },
    stock: { id: 'stock', label: PATH_LABELS.stock, origin: origin(ports.stock), viaGateway: false, secretKey: key },
    paas: { id: 'paas', label: PATH_LABELS.paas, origin: origin(ports.paas), viaGateway: true, secretKey: key },
  };
  const origins = [...DISPLAY_ORDER.map((id) => paths[id].origin), `https://127.0.0.1:${ports.nginxHttps}`];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GATEWAY_PORT: String(ports.gateway),
    GATEWAY_BIND: '127.0.0.1',
    NGINX_BIND: '127.0.0.1',
    NGINX_HTTP_PORT: String(ports.nginxHttp),
    NGINX_HTTPS_PORT: String(ports.nginxHttps),
    // Plain HTTP through NGINX, like the NGINX -> Bokeh path: the comparison is of proxies, not TLS.
    NGINX_REDIRECT_HTTPS: 'false',
    BENCH_BOKEH_PORT: String(ports.bokeh),
    BENCH_NGINX_BOKEH_PORT: String(ports.nginxBokeh),
    BENCH_STOCK_PORT: String(ports.stock),
    BENCH_PAAS_PORT: String(ports.paas),
    PUBLIC_ORIGINS: origins.join(','),
    BOKEH_PREFIX: PREFIX,
    BOKEH_APPS: apps,
    BOKEH_SECRET_KEY: secretKey,
    // One Bokeh whatever a .env beside the compose file says: the paths stack publishes it on one
    // port, and the replica stack sets its count with --scale.
    BOKEH_REPLICAS: '1',
    // Per-request access logs cost the same on every path but would flood the containers' logs.
    LOG_LEVEL: 'warn',
    BOKEH_LOG_LEVEL: 'warning',
    ...LIMITS_OFF,
  };
  return { paths, secretKey, env };
}

export async function startBenchStack(log: (line: string) => void): Promise<BenchStack> {
  const { paths, secretKey, env } = await benchEnvironment(BENCH_APPS);
  const project = new Project(['docker-compose.yml', 'bench/compose.bench.yml'], env);
  await project.up(log, []);
  const container = async (service: string) => {
    const [id] = await project.containers(service);
    if (!id) throw new Error(`the bench stack has no running ${service}`);
    return id;
  };
  let gatewayContainer = await container('gateway');
  const bokehContainer = await container('bokeh');
  return {
    project: project.name,
    paths,
    secretKey,
    async gatewayRss() {
      const status = await docker(['exec', gatewayContainer, 'cat', '/proc/1/status']);
      const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
      if (!kb) throw new Error("no VmRSS in the gateway container's /proc/1/status");
      return Number(kb) * 1024;
    },
    async restartGateway() {
      await docker(['restart', '--time', '10', gatewayContainer]);
      await waitFor('the gateway healthy again after a restart', 60, async () => {
        const health = (await docker(['inspect', '--format', '{{.State.Health.Status}}', gatewayContainer])).trim();
        if (health !== 'healthy') throw new Error(health);
      });
    },
    exec: (service, command) => docker(['exec', service === 'gateway' ? gatewayContainer : bokehContainer, ...command]),
    async recreateGateway(settings) {
      await project.compose(['up', '-d', '--wait', '--no-build', '--no-deps', '--force-recreate', 'gateway'], { settings });
      gatewayContainer = await container('gateway');
    },
    logs: (lines) => project.logs(lines),
    down: () => project.down(),
  };
}

/** The paths of the replica stack: the gateway, and Bokeh's recipe (NGINX `least_conn`). */
export type ReplicaPathId = Extract<PathId, 'gateway' | 'nginxBokeh'>;
export const REPLICA_PATHS: ReplicaPathId[] = ['gateway', 'nginxBokeh'];

/** What one replica says of itself at `<prefix>/_replica`. */
interface ReplicaStatus {
  state: string;
  sessions: number;
  sessionsCreated: number;
}

export interface ReplicaStack {
  project: string;
  paths: Record<ReplicaPathId, BenchPath>;
  /**
   * Runs `count` Bokeh replicas; returns once the gateway sends new sessions to exactly those
   * and NGINX has been restarted to list them.
   */
  scale(count: number): Promise<void>;
  /** Waits until no replica holds a session, as Bokeh counts them and as the gateway sees it. */
  idle(): Promise<void>;
  /** Sessions Bokeh has made since each replica started, summed over the running replicas. */
  sessionsCreated(): Promise<number>;
  logs(lines: number): Promise<string>;
  down(): Promise<void>;
}

/** The gateway's view of the replicas, from `/readyz`. */
async function gatewayReplicas(gateway: BenchPath): Promise<Array<{ state?: string; sessions?: number }>> {
  const body = (await (await fetch(`${gateway.origin}/readyz`)).json()) as { replicas?: Array<{ state?: string; sessions?: number }> };
  return body.replicas ?? [];
}

export async function startReplicaStack(log: (line: string) => void): Promise<ReplicaStack> {
  const { paths, env } = await benchEnvironment(REPLICA_APPS);
  const project = new Project(['docker-compose.yml', 'bench/compose.bench.yml', 'bench/compose.replicas.yml'], env);
  const services = ['bokeh', 'gateway', 'nginx-bokeh'];
  await project.up(log, ['--scale', 'bokeh=1', ...services]);
  const statuses = async (): Promise<ReplicaStatus[]> =>
    Promise.all(
      (await project.containers('bokeh')).map(async (container) => {
        // Straight to loopback inside the replica, even when the container has HTTP(S)_PROXY set.
        const script = `import urllib.request as u;print(u.build_opener(u.ProxyHandler({})).open(${JSON.stringify(REPLICA_STATUS_URL)},timeout=5).read().decode())`;
        return JSON.parse(await docker(['exec', container, 'python3', '-c', script])) as ReplicaStatus;
      }),
    );
  let replicas = 1;
  const stack: ReplicaStack = {
    project: project.name,
    paths: { gateway: paths.gateway, nginxBokeh: paths.nginxBokeh },
    async scale(count) {
      if (count !== replicas) {
        log(`scaling Bokeh from ${replicas} to ${count} replica${count === 1 ? '' : 's'}`);
        await project.compose(['up', '-d', '--wait', '--no-build', '--no-deps', '--no-recreate', '--scale', `bokeh=${count}`, 'bokeh']);
        replicas = count;
      }
      // Down replicas get no sessions; a starting or draining one would skew what follows.
      await waitFor(`${count} serving Bokeh replicas in the gateway's /readyz`, 60, async () => {
        const seen = await gatewayReplicas(paths.gateway);
        const serving = seen.filter((r) => r.state === 'serving').length;
        if (serving !== count || seen.some((r) => r.state !== 'serving' && r.state !== 'down')) throw new Error(`replicas ${JSON.stringify(seen)}`);
      });
      await project.compose(['restart', 'nginx-bokeh']);
      await waitFor('NGINX -> Bokeh answering after a restart', 60, async () => {
        const reply = await fetch(`${paths.nginxBokeh.origin}${PREFIX}/ping/metadata`);
        if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
      });
    },
    async idle() {
      await waitFor('no session held by any Bokeh replica', 60, async () => {
        const held = (await statuses()).map((s) => s.sessions);
        if (held.some((n) => n > 0)) throw new Error(`sessions held: ${held.join(', ')}`);
      });
      await waitFor("no session on any replica in the gateway's /readyz", 60, async () => {
        const seen = await gatewayReplicas(paths.gateway);
        if (seen.some((r) => r.state === 'serving' && r.sessions !== 0)) throw new Error(`replicas ${JSON.stringify(seen)}`);
      });
    },
    async sessionsCreated() {
      return (await statuses()).reduce((sum, s) => sum + s.sessionsCreated, 0);
    },
    logs: (lines) => project.logs(lines),
    down: () => project.down(),
  };
  return stack;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  docker: string;
}

export async function describeMachine(): Promise<Machine> {
  const dockerVersion = await docker(['version', '--format', '{{.Server.Version}}']).catch(() => 'unknown');
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    docker: dockerVersion.trim(),
  };
}
