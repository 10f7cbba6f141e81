/**
 * Builds the stack's images once per test run. Every test stack then starts from these images
 * instead of building its own copy (which would re-tag images and leave dangling layers).
 *
 * Jest loads this file with Node's own loader, outside its module mapping, so it imports only
 * Node built-ins.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export default async function globalSetup(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const started = Date.now();
  process.stdout.write('\n[integration] building stack images (docker compose build, the dev-mode gateway, paas/Dockerfile)...\n');
  const run = promisify(execFile);
  // The all-in-one image for single-port hosts is not a compose service; it takes the same base images.
  const baseImages = ['PYTHON_IMAGE', 'NODE_IMAGE'].flatMap((name) => (process.env[name] ? ['--build-arg', `${name}=${process.env[name]}`] : []));
  try {
    await run('docker', ['compose', '--profile', '*', 'build'], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
    // Dev mode's gateway image: the `deps` stage of gateway/Dockerfile, mostly cached by the build above.
    await run('docker', ['compose', '-f', 'docker-compose.yml', '-f', 'compose.dev.yml', 'build', 'gateway'], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
    await run('docker', ['build', '-f', 'paas/Dockerfile', '-t', `bokeh-gateway-stack/app:${process.env.IMAGE_TAG || 'local'}`, ...baseImages, '.'], {
      cwd: root,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const { stderr, stdout } = err as { stderr?: string; stdout?: string };
    throw new Error(
      `building the images failed:\n${stdout ?? ''}\n${stderr ?? ''}\n` +
        'Is the Docker engine running, and can it pull the base images (or are PYTHON_IMAGE, NODE_IMAGE, NGINX_IMAGE, APACHE_IMAGE and PROMETHEUS_IMAGE set to local ones)?',
      { cause: err },
    );
  }
  process.stdout.write(`[integration] images built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
