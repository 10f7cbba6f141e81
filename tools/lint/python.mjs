// Ruff on every Python file in the repository, in a container built from tools/lint/Dockerfile, so
// the host needs only Node and Docker. `node tools/lint/python.mjs` checks (lint + format check);
// `--fix` applies Ruff's safe fixes and formats in place.
//
// Base image: PYTHON_IMAGE when set (as for the stack's own images), else python:3.13-slim.
// Image name: bokeh-gateway-stack/lint:$IMAGE_TAG (default "local").
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fix = process.argv.includes('--fix');
const image = `bokeh-gateway-stack/lint:${process.env.IMAGE_TAG || 'local'}`;

/** Runs docker; `quiet` keeps its output unless it fails, `hint` says what to do then. */
function docker(args, what, { quiet = false, hint = '' } = {}) {
  const result = spawnSync('docker', args, { stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'], encoding: 'utf8' });
  if (result.error) {
    console.error(`lint:python: could not run docker (${result.error.message}); Ruff runs in a container, so install Docker or run ruff yourself`);
    process.exit(2);
  }
  if (result.status !== 0) {
    if (quiet) process.stderr.write(`${result.stdout}${result.stderr}`);
    console.error(`lint:python: ${what} failed${hint ? `; ${hint}` : ''}`);
    process.exit(result.status ?? 1);
  }
}

// --build-arg without a value passes PYTHON_IMAGE from the environment, or keeps the Dockerfile's default.
docker(['build', '--build-arg', 'PYTHON_IMAGE', '-t', image, resolve(root, 'tools/lint')], 'building the lint image', {
  quiet: true,
  hint: 'is Docker running, and can it pull PYTHON_IMAGE (or is PYTHON_IMAGE set to a local Python 3.13 image)?',
});

// The host's user id, so files that --fix rewrites keep their owner; no network: linting needs none.
const user = typeof process.getuid === 'function' ? ['--user', `${process.getuid()}:${process.getgid()}`] : [];
const run = (...args) => ['run', '--rm', '--network', 'none', ...user, '-v', `${root}:/src${fix ? '' : ':ro'}`, '-w', '/src', image, ...args];
if (fix) {
  docker(run('check', '--fix', '.'), 'ruff check --fix');
  docker(run('format', '.'), 'ruff format');
} else {
  const hint = '`npm run format` applies the formatting and the safe fixes';
  docker(run('check', '--output-format', 'concise', '.'), 'ruff check', { hint });
  docker(run('format', '--check', '--output-format', 'concise', '.'), 'ruff format --check', { hint });
}
