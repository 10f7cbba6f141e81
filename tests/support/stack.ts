/**
 * Brings the real compose stack up for a test file and down afterwards. Images are built once
 * per run by global-setup.ts; each stack gets its own compose project, a free loopback port and
 * public origins that match it, so stacks never collide with each other or with a user's own.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { DockerComposeEnvironment, Wait, type StartedDockerComposeEnvironment, type StartedTestContainer } from 'testcontainers';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const COMPOSE_FILE = 'docker-compose.yml';
export const PREFIX = '/bokeh';

export const run = promisify(execFile);

export interface Stack {
  /** The gateway as the host reaches it, e.g. http://127.0.0.1:49152. */
  url: string;
  /** Public origins the stack was configured with (the first is `url`). */
  origins: string[];
  compose: StartedDockerComposeEnvironment;
  container(service: string): StartedTestContainer;
  down(): Promise<void>;
}

export async function startStack(environment: Record<string, string> = {}): Promise<Stack> {
  const port = await getPort({ host: '127.0.0.1' });
  const origins = [`http://127.0.0.1:${port}`, `http://localhost:${port}`];
  const compose = await new DockerComposeEnvironment(REPO_ROOT, COMPOSE_FILE)
    .withEnvironment({
      GATEWAY_BIND: '127.0.0.1',
      GATEWAY_PORT: String(port),
      PUBLIC_ORIGINS: origins.join(','),
      ...environment,
    })
    .withDefaultWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(180_000)
    .up();
  return {
    url: origins[0]!,
    origins,
    compose,
    container: (service) => compose.getContainer(`${service}-1`),
    down: async () => {
      await compose.down({ timeout: 20_000, removeVolumes: true });
    },
  };
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
