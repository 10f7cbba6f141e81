// The lint container shared by `npm run lint:python` (Ruff) and `npm run lint:shell` (ShellCheck):
// one image built from tools/lint/Dockerfile with both tools hash-pinned, so the host needs only
// Node and Docker, like the tests.
//
// Base image: PYTHON_IMAGE when set (as for the stack's own images), else python:3.13-slim.
// Image name: bokeh-gateway-stack/lint:$IMAGE_TAG (default "local").
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const image = `bokeh-gateway-stack/lint:${process.env.IMAGE_TAG || 'local'}`;

/** Runs docker; `quiet` keeps its output unless it fails, `hint` says what to do then. */
export function docker(args, what, { quiet = false, hint = '', name = 'lint' } = {}) {
  const result = spawnSync('docker', args, { stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'], encoding: 'utf8' });
  if (result.error) {
    console.error(`${name}: could not run docker (${result.error.message}); the linters run in a container, so install Docker`);
    process.exit(2);
  }
  if (result.status !== 0) {
    if (quiet) process.stderr.write(`${result.stdout}${result.stderr}`);
    console.error(`${name}: ${what} failed${hint ? `; ${hint}` : ''}`);
    process.exit(result.status ?? 1);
  }
}

/** Builds the lint image (Docker's cache makes this quick after the first time). */
export function buildLintImage(name) {
  // --build-arg without a value passes PYTHON_IMAGE from the environment, or keeps the Dockerfile's default.
  docker(['build', '--build-arg', 'PYTHON_IMAGE', '-t', image, resolve(root, 'tools/lint')], 'building the lint image', {
    quiet: true,
    hint: 'is Docker running, and can it pull PYTHON_IMAGE (or is PYTHON_IMAGE set to a local Python 3.13 image)?',
    name,
  });
}

/**
 * `docker run` arguments for `command` in the lint image, with the checkout at /src (read-only
 * unless `write`), as the host's user so rewritten files keep their owner. No network: linting
 * needs none.
 */
export function lintRun(command, { write = false } = {}) {
  const user = typeof process.getuid === 'function' ? ['--user', `${process.getuid()}:${process.getgid()}`] : [];
  return ['run', '--rm', '--network', 'none', ...user, '-v', `${root}:/src${write ? '' : ':ro'}`, '-w', '/src', image, ...command];
}
