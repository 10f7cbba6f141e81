/**
 * What the swarm and the Kubernetes tests share: their cluster scripts under .ci/lib (each
 * writes an env file to its state folder), and a client that loads pages without pause while an
 * update or a drain goes on.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { BokehClient } from '../../client/bokeh-client.js';
import { REPO_ROOT } from './stack.js';

/** Runs `bash .ci/lib/<script> <args>`, its log on the console. */
export function clusterScript(script: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [`.ci/lib/${script}`, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`bash .ci/lib/${script} ${args.join(' ')} exited with ${code}`))));
  });
}

/** The NAME=value lines of a cluster script's env file. */
export function readEnvFile(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
  );
}

/**
 * Loads pages with `pageLoad` one after another until `stop` settles, closing each session after
 * its round trip; returns how many loads succeeded and the errors of those that failed.
 */
export async function loadPagesUntil(pageLoad: () => Promise<BokehClient>, stop: Promise<unknown>): Promise<{ ok: number; failed: string[] }> {
  let done = false;
  void stop.finally(() => (done = true));
  const result = { ok: 0, failed: [] as string[] };
  while (!done) {
    try {
      const client = await pageLoad();
      result.ok += 1;
      await client.close();
    } catch (err) {
      result.failed.push(String(err));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return result;
}
