/**
 * Dev mode (compose.dev.yml on top of docker-compose.yml): the apps folder and the gateway's
 * source are mounted from the host. Editing an app shows up in the next session, and editing the
 * gateway's TypeScript restarts it, with the same containers and images: no rebuild, no recreate.
 *
 * The stack mounts temporary copies (BOKEH_APPS_DIR, GATEWAY_SRC_DIR), so the test never edits the
 * repository.
 */
import { appendFile, chmod, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPOSE_FILE, DEV_COMPOSE_FILE, eventually, openAppPage, REPO_ROOT, request, run, useStack } from '../support/stack.js';

const work = await mkdtemp(join(tmpdir(), 'stack-dev-mode-'));
const apps = join(work, 'apps');
const gatewaySrc = join(work, 'src');
await cp(join(REPO_ROOT, 'bokeh/apps'), apps, { recursive: true });
await cp(join(REPO_ROOT, 'gateway/src'), gatewaySrc, { recursive: true });
// The containers run as uid 10001; mkdtemp makes a folder only its owner can read.
await chmod(work, 0o755);

const stack = useStack({ composeFiles: [COMPOSE_FILE, DEV_COMPOSE_FILE], environment: { BOKEH_APPS_DIR: apps, GATEWAY_SRC_DIR: gatewaySrc } });

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The document title of a new sliders session, as a browser tab would show it. */
async function slidersTitle(): Promise<string> {
  const { client, doc } = await openAppPage(stack().url, 'sliders');
  await client.close();
  return (doc as { title: string }).title;
}

const containerId = (service: string) => stack().container(service).getId();

async function logs(service: string): Promise<string> {
  const { stdout, stderr } = await run('docker', ['logs', containerId(service)], { maxBuffer: 16 * 1024 * 1024 });
  return stdout + stderr;
}

test('the stack runs the mounted app folder and the gateway from its TypeScript source', async () => {
  expect(await slidersTitle()).toBe('Sliders');
  expect(await logs('bokeh')).toContain('dev=on');
  expect(await logs('gateway')).toContain('gateway listening');
});

test('an edited Bokeh app is what the next session gets, without rebuilding or recreating anything', async () => {
  const bokeh = containerId('bokeh');
  const image = (await run('docker', ['inspect', '-f', '{{.Image}}', bokeh])).stdout.trim();
  const main = join(apps, 'sliders/main.py');
  const source = await readFile(main, 'utf8');
  expect(source).toContain('curdoc().title = "Sliders"');
  await writeFile(main, source.replace('curdoc().title = "Sliders"', 'curdoc().title = "Sliders, edited"'));

  await eventually(async () => (await slidersTitle()) === 'Sliders, edited', 60_000, 'a new session with the edited title');
  expect(await logs('bokeh')).toContain('sliders/main.py changed; restarting Bokeh');
  expect(containerId('bokeh')).toBe(bokeh);
  expect((await run('docker', ['inspect', '-f', '{{.Image}}', bokeh])).stdout.trim()).toBe(image);
}, 90_000);

test('an edited gateway source file restarts the gateway, which then serves again', async () => {
  const listening = (text: string) => text.split('\n').filter((line) => line.includes('"gateway listening"')).length;
  const before = listening(await logs('gateway'));
  await appendFile(join(gatewaySrc, 'config.ts'), '\n// edited in dev mode\n');

  await eventually(async () => listening(await logs('gateway')) > before, 60_000, 'the gateway to start again');
  expect(await logs('gateway')).toContain('[tsx] change in ./src/config.ts');
  await eventually(async () => (await request(`${stack().url}/healthz`)).status === 200, 30_000, '/healthz after the restart');
  expect(await slidersTitle()).toBe('Sliders, edited');
}, 90_000);
