/**
 * The all-in-one image for hosts that run one container on one $PORT: Bokeh and the gateway in
 * a single container, the gateway on $PORT as the only way in. Same user-visible round trip as
 * the compose layouts, plus a clean stop on the platform's SIGTERM.
 */
import getPort from 'get-port';
import { modelNamed } from '../../client/bokeh-client.js';
import { eventually, openAppPage, request, run } from '../support/stack.js';

const IMAGE = `bokeh-gateway-stack/app:${process.env.IMAGE_TAG || 'local'}`;
let id: string;
let origin: string;

beforeAll(async () => {
  const port = await getPort({ host: '127.0.0.1' });
  origin = `http://127.0.0.1:${port}`;
  // The platform picks PORT; here it differs from the image's default on purpose.
  const { stdout } = await run('docker', [
    'run',
    '-d',
    '--read-only',
    '--tmpfs',
    '/tmp',
    '-e',
    'PORT=9000',
    '-e',
    `PUBLIC_ORIGINS=${origin}`,
    '-p',
    `127.0.0.1:${port}:9000`,
    IMAGE,
  ]);
  id = stdout.trim();
  await eventually(async () => (await request(`${origin}/readyz`)).status === 200, 60_000, 'the all-in-one container to be ready');
}, 90_000);

afterAll(async () => {
  if (id) await run('docker', ['rm', '-f', id]);
});

const connect = (app: string) => openAppPage(origin, app);

test('one published port serves pages, autoload.js with public URLs, and the Bokeh round trip', async () => {
  const { client, doc, js, autoloadUrl } = await connect('sliders');
  try {
    expect(new URL(autoloadUrl).origin).toBe(origin);
    for (const url of js.matchAll(/(?:https?|wss?):\/\/[^\s"'`\\)]+/g)) expect(url[0].startsWith(origin)).toBe(true);
    const source = modelNamed(doc, 'source');
    client.setProperty(modelNamed(doc, 'frequency').id, 'value', 2);
    await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(source.id));
  } finally {
    await client.close();
  }
  const { stdout } = await run('docker', ['port', id]);
  expect(stdout.trim().split('\n')).toHaveLength(1);
});

test('Bokeh inside listens on loopback only', async () => {
  const probe = (host: string) =>
    run('docker', ['exec', id, 'python3', '-c', `import socket; socket.create_connection((${JSON.stringify(host)}, 5006), 2)`]).then(
      () => true,
      () => false,
    );
  const { stdout } = await run('docker', ['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id]);
  expect(await probe('127.0.0.1')).toBe(true);
  expect(await probe(stdout.trim())).toBe(false);
});

test("the platform's SIGTERM closes sessions with 1001 and stops both processes cleanly", async () => {
  const { client, autoloadUrl } = await connect('ping');
  expect(new URL(autoloadUrl).origin).toBe(origin);
  await run('docker', ['kill', '--signal', 'TERM', id]);
  expect((await client.closed).code).toBe(1001);
  const { stdout } = await run('docker', ['wait', id]);
  expect(stdout.trim()).toBe('0');
}, 30_000);
