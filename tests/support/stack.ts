/**
 * Brings the real compose stack up for a test file and down afterwards. Images are built once
 * per run by global-setup.ts; each stack gets its own compose project, a free loopback port and
 * public origins that match it (given in PUBLIC_ORIGINS, or derived from the port by the programs
 * themselves), so stacks never collide with each other or with a user's own.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { generateSessionId, generateToken, type TokenOptions } from '../../gateway/src/tokens.js';
import { autoloadSrc, BokehClient, tokenFromAutoload } from '../../client/bokeh-client.js';
import { DockerComposeEnvironment, Wait, type StartedDockerComposeEnvironment, type StartedTestContainer } from 'testcontainers';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const COMPOSE_FILE = 'docker-compose.yml';
/** The dev-mode override, used on top of COMPOSE_FILE. */
export const DEV_COMPOSE_FILE = 'compose.dev.yml';
/** Adds `gateway-b`, a second gateway with its own loopback port (StackOptions.secondGateway). */
export const TWO_GATEWAYS_COMPOSE_FILE = 'tests/support/compose.two-gateways.yml';
export const PREFIX = '/bokeh';

export const run = promisify(execFile);

/** The front proxies of the compose file, each started by the compose profile of its name. */
export type FrontName = 'nginx' | 'apache';

/** A front as the host reaches it: its HTTPS and HTTP listeners and its development certificate. */
export interface FrontDoor {
  https: string;
  http: string;
  ca: Buffer;
}

/**
 * What the harness needs to know of each front: the prefix of its compose settings
 * (<PREFIX>_BIND, <PREFIX>_HTTP_PORT, <PREFIX>_HTTPS_PORT) and where its entrypoint writes the
 * development certificate.
 */
const FRONTS: Record<FrontName, { settings: string; devCert: string; defaultHttpsPort: number }> = {
  nginx: { settings: 'NGINX', devCert: '/tmp/nginx/dev-cert.pem', defaultHttpsPort: 8443 },
  apache: { settings: 'APACHE', devCert: '/tmp/apache/dev-cert.pem', defaultHttpsPort: 8444 },
};

/** Every front, in the order the harness looks for them. */
export const FRONT_NAMES = Object.keys(FRONTS) as FrontName[];

export interface Stack {
  /** The gateway as the host reaches it, e.g. http://127.0.0.1:49152. */
  url: string;
  /** Public origins the stack was configured with. */
  origins: string[];
  /**
   * The key that signs this stack's sessions: tests use it to make tokens the way a service
   * sharing the key would (and to forge near-misses). Undefined when the keygen service made it.
   */
  secretKey: Buffer | undefined;
  /** The nginx layout's front, when the stack runs with the nginx profile. */
  nginx?: FrontDoor;
  /** The apache layout's front, when the stack runs with the apache profile. */
  apache?: FrontDoor;
  /** The second gateway (StackOptions.secondGateway), e.g. http://127.0.0.1:49153. */
  gatewayB?: string;
  /** The compose project as started, for compose commands of a test's own (a scale-up). */
  project: ComposeProject;
  compose: StartedDockerComposeEnvironment;
  container(service: string): StartedTestContainer;
  down(): Promise<void>;
}

export interface ComposeProject {
  name: string;
  files: string[];
  profiles: string[];
  environment: Record<string, string>;
}

export interface StackOptions {
  /** Start a front's profile: browser -> nginx or apache -> gateway -> bokeh. */
  front?: FrontName;
  /** Compose files, in order (default: COMPOSE_FILE alone). */
  composeFiles?: string[];
  /** More compose profiles to start, e.g. "monitoring". */
  profiles?: string[];
  environment?: Record<string, string>;
  /**
   * Give the stack a random BOKEH_SECRET_KEY (the default), or leave it unset so that the keygen
   * service makes one, as a plain `docker compose up` does.
   */
  secretKey?: 'random' | 'generated';
  /** More origins for PUBLIC_ORIGINS, after the stack's own: pages elsewhere that embed its apps. */
  extraOrigins?: string[];
  /**
   * 'given' (the default): PUBLIC_ORIGINS names the stack's own ports. 'derived': PUBLIC_ORIGINS
   * is left unset, as in a plain `docker compose up`, and every program derives the origins from
   * GATEWAY_PORT and NGINX_HTTPS_PORT.
   */
  publicOrigins?: 'given' | 'derived';
  /** How many Bokeh replicas to start (BOKEH_REPLICAS; unset: the compose file's default, one). */
  replicas?: number;
  /** Start a second gateway, `gateway-b`, on its own loopback port (TWO_GATEWAYS_COMPOSE_FILE). */
  secondGateway?: boolean;
}

export async function startStack({
  front,
  composeFiles = [COMPOSE_FILE],
  profiles = [],
  environment = {},
  secretKey = 'random',
  extraOrigins = [],
  publicOrigins = 'given',
  replicas,
  secondGateway = false,
}: StackOptions = {}): Promise<Stack> {
  if (publicOrigins === 'derived' && extraOrigins.length > 0) throw new Error('extraOrigins needs publicOrigins: "given"');
  if (publicOrigins === 'derived' && secondGateway) throw new Error('secondGateway needs publicOrigins: "given" (its port is one of the origins)');
  const key = secretKey === 'random' ? randomBytes(33).toString('base64url') : undefined;
  const port = await getPort({ host: '127.0.0.1' });
  const portB = secondGateway ? await getPort({ host: '127.0.0.1' }) : undefined;
  const ports = front ? { http: await getPort({ host: '127.0.0.1' }), https: await getPort({ host: '127.0.0.1' }) } : undefined;
  // The derived list, in the programs' order; a front that is not started keeps its compose default.
  const httpsPort = (name: FrontName) => (front === name ? ports!.https : FRONTS[name].defaultHttpsPort);
  const derived = ['localhost', '127.0.0.1']
    .map((host) => `http://${host}:${port}`)
    .concat(FRONT_NAMES.flatMap((name) => ['localhost', '127.0.0.1'].map((host) => `https://${host}:${httpsPort(name)}`)));
  const origins =
    publicOrigins === 'derived'
      ? derived
      : [
          ...(ports ? [`https://127.0.0.1:${ports.https}`, `https://localhost:${ports.https}`] : []),
          `http://127.0.0.1:${port}`,
          `http://localhost:${port}`,
          // The second gateway is a front door of its own: its pages embed its own address.
          ...(portB ? [`http://127.0.0.1:${portB}`, `http://localhost:${portB}`] : []),
          ...extraOrigins,
        ];
  let environmentForCompose: Record<string, string> = {
    GATEWAY_PORT: String(port),
    ...(portB ? { GATEWAY_B_PORT: String(portB) } : {}),
    ...(replicas === undefined ? {} : { BOKEH_REPLICAS: String(replicas) }),
    ...(publicOrigins === 'given' ? { PUBLIC_ORIGINS: origins.join(',') } : {}),
    ...(key ? { BOKEH_SECRET_KEY: key } : {}),
    ...environment,
  };
  if (front && ports) {
    const { settings } = FRONTS[front];
    // Loopback only: tests never open ports on the machine's network interfaces.
    environmentForCompose = {
      [`${settings}_BIND`]: '127.0.0.1',
      [`${settings}_HTTP_PORT`]: String(ports.http),
      [`${settings}_HTTPS_PORT`]: String(ports.https),
      ...environmentForCompose,
    };
  }
  const files = secondGateway ? [...composeFiles, TWO_GATEWAYS_COMPOSE_FILE] : composeFiles;
  const name = `testcontainers-${randomBytes(6).toString('hex')}`;
  let composer = new DockerComposeEnvironment(REPO_ROOT, files)
    .withProjectName(name)
    .withEnvironment(environmentForCompose)
    .withDefaultWaitStrategy(Wait.forHealthCheck())
    // keygen runs once and exits; the services wait for it to finish.
    .withWaitStrategy('keygen-1', Wait.forOneShotStartup())
    .withStartupTimeout(180_000);
  const allProfiles = [...(front ? [front] : []), ...profiles];
  if (allProfiles.length > 0) composer = composer.withProfiles(...allProfiles);
  const compose = await composer.up();
  const container = (service: string) => compose.getContainer(`${service}-1`);
  let door: FrontDoor | undefined;
  if (front && ports) {
    const pem = await container(front).exec(['cat', FRONTS[front].devCert]);
    if (pem.exitCode !== 0) throw new Error(`no development certificate in the ${front} container: ${pem.output}`);
    door = { https: `https://127.0.0.1:${ports.https}`, http: `http://127.0.0.1:${ports.http}`, ca: Buffer.from(pem.stdout) };
  }
  return {
    url: `http://127.0.0.1:${port}`,
    origins,
    secretKey: key === undefined ? undefined : Buffer.from(key),
    ...(front && door ? { [front]: door } : {}),
    ...(portB ? { gatewayB: `http://127.0.0.1:${portB}` } : {}),
    project: { name, files, profiles: allProfiles, environment: environmentForCompose },
    compose,
    container,
    down: async () => {
      await compose.down({ timeout: 20_000, removeVolumes: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTP(S) request with Node's own client, trusting `ca` for this request only (never
 * globally), and without following redirects, so tests see exactly what a browser is sent.
 */
export function request(url: string, options: { ca?: Buffer; headers?: Record<string, string>; method?: string } = {}): Promise<Reply> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, { method: options.method ?? 'GET', headers: options.headers ?? {}, ...(options.ca ? { ca: options.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * What a browser does with an app page: load it, follow its embed script to autoload.js, open
 * the WebSocket with the token from there, and pull the document. `wsVia` sends the WebSocket
 * to another front door of the same stack (a second gateway), with the page's origin.
 */
export async function openAppPage(
  origin: string,
  app: string,
  ca?: Buffer,
  wsVia: string = origin,
): Promise<{ page: string; autoloadUrl: string; js: string; client: BokehClient; doc: unknown }> {
  const tls = ca ? { ca } : {};
  const pageReply = await request(`${origin}/apps/${app}`, tls);
  if (pageReply.status !== 200) throw new Error(`the app page answered ${pageReply.status}: ${pageReply.body.slice(0, 200)}`);
  const page = pageReply.body;
  const autoloadUrl = autoloadSrc(page);
  const autoload = await request(autoloadUrl, tls);
  if (autoload.status !== 200) throw new Error(`autoload.js answered ${autoload.status}`);
  const client = await BokehClient.connect(`${wsVia.replace(/^http/, 'ws')}${PREFIX}/${app}/ws`, tokenFromAutoload(autoload.body), { origin, ...tls });
  return { page, autoloadUrl, js: autoload.body, client, doc: await client.pullDocument() };
}

/**
 * One stack for the whole test file: started before its first test, taken down after its last.
 * Returns a getter, since the stack exists only once `beforeAll` has run.
 */
export function useStack(options: StackOptions = {}): () => Stack {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await startStack(options);
  }, 240_000);
  afterAll(async () => {
    await stack?.down();
  }, 60_000);
  return () => {
    if (!stack) throw new Error('the stack is not up: useStack() must be called at the top of a test file');
    return stack;
  };
}

/**
 * A session token signed with the stack's key, as another service holding the key would make
 * it (or, with `now` in the past, one that has expired).
 */
export function mintToken(stack: Stack, options: Omit<TokenOptions, 'secretKey'> & { sessionId?: string } = {}): string {
  if (!stack.secretKey) throw new Error('this stack generated its own key; start it with secretKey: "random" to mint tokens');
  const { sessionId = generateSessionId(stack.secretKey), ...rest } = options;
  return generateToken(sessionId, { secretKey: stack.secretKey, ...rest });
}

/** Polls `probe` until it returns true or the time is up. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 250));
  }
}

/**
 * Builds the stack's bokeh and gateway images (IMAGE_TAG) as the compose suites do; after them,
 * every layer is cached. Base images come from PYTHON_IMAGE and NODE_IMAGE, as for compose.
 */
export async function buildImages(): Promise<void> {
  await run('docker', ['compose', 'build', 'bokeh', 'gateway'], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 }).catch((err: unknown) => {
    const { stderr } = err as { stderr?: string };
    throw new Error(`docker compose build bokeh gateway failed (are PYTHON_IMAGE and NODE_IMAGE set where nothing can be pulled?):\n${stderr ?? ''}`, {
      cause: err,
    });
  });
}

/**
 * The gateway makes a stored file's brotli copy after it stores the file (seconds for BokehJS's
 * largest), and answers gzipped until then: `ask` again until an answer comes in brotli, and
 * return the last answer either way, for the caller's assertions.
 */
export async function untilBrotli<T extends { headers: Record<string, unknown> }>(ask: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await ask();
    if (answer.headers['content-encoding'] === 'br' || Date.now() > deadline) return answer;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
