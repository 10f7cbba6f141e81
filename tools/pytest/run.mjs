// The launcher's tests (bokeh/tests) and the checks of NGINX's entrypoint rules (nginx/tests) with
// pytest, in a container built from tools/pytest/Dockerfile on top of the Bokeh image, so the host
// needs only Node and Docker. The checkout is mounted read-only, so the tests see the files as they
// are now. Arguments go to pytest, e.g. `npm run test:python -- -k prefix`.
//
// Base image: PYTHON_IMAGE when set (as for the stack's own images), else python:3.13-slim.
// Images: bokeh-gateway-stack/bokeh:$IMAGE_TAG (the stack's own) and bokeh-gateway-stack/pytest:$IMAGE_TAG.
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tag = process.env.IMAGE_TAG || 'local';
const bokehImage = `bokeh-gateway-stack/bokeh:${tag}`;
const testImage = `bokeh-gateway-stack/pytest:${tag}`;

/** Runs docker; `quiet` keeps its output unless it fails, `hint` says what to do then. */
function docker(args, what, { quiet = false, hint = '' } = {}) {
  const result = spawnSync('docker', args, { stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'], encoding: 'utf8' });
  if (result.error) {
    console.error(`test:python: could not run docker (${result.error.message}); the launcher's tests run in a container, so install Docker`);
    process.exit(2);
  }
  if (result.status !== 0) {
    if (quiet) process.stderr.write(`${result.stdout}${result.stderr}`);
    console.error(`test:python: ${what} failed${hint ? `; ${hint}` : ''}`);
    process.exit(result.status ?? 1);
  }
}

const hint = 'is Docker running, and can it pull PYTHON_IMAGE (or is PYTHON_IMAGE set to a local Python 3.13 image)?';
// --build-arg without a value passes PYTHON_IMAGE from the environment, or keeps the Dockerfile's default.
docker(['build', '--build-arg', 'PYTHON_IMAGE', '-t', bokehImage, resolve(root, 'bokeh')], 'building the Bokeh image', { quiet: true, hint });
docker(['build', '--build-arg', `BOKEH_IMAGE=${bokehImage}`, '-t', testImage, resolve(root, 'tools/pytest')], 'building the test image', { quiet: true, hint });
// No network: the launcher's tests need none.
docker(['run', '--rm', '--network', 'none', '-v', `${root}:/src:ro`, testImage, 'bokeh/tests', 'nginx/tests', ...process.argv.slice(2)], 'pytest');
