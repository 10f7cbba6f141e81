/**
 * The stack as the bench runs it: docker-compose.yml plus bench/compose.bench.yml with the nginx
 * profile, its own compose project, every published port on 127.0.0.1 and picked free at start,
 * and a Bokeh secret key made for this run. Also the table of paths the bench measures.
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

const run = promisify(execFile);

export type PathId = 'direct' | 'gateway' | 'nginxGateway' | 'nginxBokeh' | 'stock';

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

/** Display order; the first is the baseline every ratio is taken against, with nginxBokeh. */
export const PATH_ORDER: PathId[] = ['direct', 'gateway', 'nginxGateway', 'nginxBokeh', 'stock'];
export const PATH_LABELS: Record<PathId, string> = {
  direct: 'Direct Bokeh',
  gateway: 'Gateway',
  nginxGateway: 'NGINX → gateway',
  nginxBokeh: 'NGINX → Bokeh',
  stock: 'Stock Bokeh (no-delay off)',
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

function composeArgs(project: string): string[] {
  return ['compose', '-p', project, '-f', 'docker-compose.yml', '-f', 'bench/compose.bench.yml', '--profile', 'nginx'];
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

/** Builds the images the stack uses (compose reuses its cache, so an unchanged tree is quick). */
export async function buildImages(): Promise<void> {
  await docker(['compose', '-f', 'docker-compose.yml', '--profile', 'nginx', 'build']);
}

export async function startBenchStack(log: (line: string) => void): Promise<BenchStack> {
  const project = `bokeh-bench-${randomBytes(3).toString('hex')}`;
  const port = () => getPort({ host: '127.0.0.1' });
  const ports = {
    gateway: await port(),
    nginxHttp: await port(),
    nginxHttps: await port(),
    bokeh: await port(),
    nginxBokeh: await port(),
    stock: await port(),
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
  };
  // Every path's origin is public, so Bokeh (and the gateway) accept WebSockets from each.
  const origins = [...PATH_ORDER.map((id) => paths[id].origin), `https://127.0.0.1:${ports.nginxHttps}`];
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
    PUBLIC_ORIGINS: origins.join(','),
    BOKEH_PREFIX: PREFIX,
    BOKEH_APPS: BENCH_APPS,
    BOKEH_SECRET_KEY: secretKey,
    // Per-request access logs cost the same on every path but would flood the containers' logs.
    LOG_LEVEL: 'warn',
    BOKEH_LOG_LEVEL: 'warning',
    ...LIMITS_OFF,
  };
  const compose = composeArgs(project);
  const down = async () => {
    await docker([...compose.slice(0, -2), '--profile', '*', 'down', '-v', '--timeout', '10'], env);
  };
  log(`starting compose project ${project}`);
  try {
    await docker([...compose, 'up', '-d', '--wait', '--no-build'], env);
  } catch (err) {
    const logs = await docker([...compose, 'logs', '--no-color', '--tail', '20'], env).catch(() => '');
    await down().catch(() => undefined);
    throw new Error(`${(err as Error).message}\nlast log lines:\n${logs}`, { cause: err });
  }
  let gatewayContainer = (await docker([...compose, 'ps', '-q', 'gateway'], env)).trim();
  const bokehContainer = (await docker([...compose, 'ps', '-q', 'bokeh'], env)).trim();
  return {
    project,
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
      const deadline = Date.now() + 60_000;
      while ((await docker(['inspect', '--format', '{{.State.Health.Status}}', gatewayContainer])).trim() !== 'healthy') {
        if (Date.now() > deadline) throw new Error('the gateway did not become healthy within 60 s of a restart');
        await new Promise((done) => setTimeout(done, 500));
      }
    },
    exec: (service, command) => docker(['exec', service === 'gateway' ? gatewayContainer : bokehContainer, ...command]),
    async recreateGateway(settings) {
      const withSettings = { ...env, ...settings };
      await docker([...compose, 'up', '-d', '--wait', '--no-build', '--no-deps', '--force-recreate', 'gateway'], withSettings);
      gatewayContainer = (await docker([...compose, 'ps', '-q', 'gateway'], withSettings)).trim();
    },
    logs: (lines) => docker([...compose, 'logs', '--no-color', '--timestamps', '--tail', String(lines)], env),
    down,
  };
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
