/**
 * The all-in-one image for hosts that run one container on one $PORT: Bokeh and the gateway in
 * a single container, the gateway on $PORT as the only way in. Same user-visible round trip as
 * the compose layouts, plus a clean stop on the platform's SIGTERM; then the image behind a
 * front that treats it the way Heroku's router treats a dyno.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { brotliDecompressSync } from 'node:zlib';
import getPort from 'get-port';
import { bokehJsUrls, BokehClient, modelNamed, tokenFromAutoload, tokenPayload } from '../../client/bokeh-client.js';
import { eventually, openAppPage, PREFIX, request, run, untilBrotli } from '../support/stack.js';

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

test('BokehJS comes brotli-compressed, and decodes to the file a client without compression gets', async () => {
  const { js, client } = await connect('sliders');
  await client.close();
  const script = bokehJsUrls(js).find((url) => url.includes('/bokeh.min.js?v='))!;
  const read = (acceptEncoding: string) =>
    new Promise<{ headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
      httpRequest(script, { headers: { 'accept-encoding': acceptEncoding } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
  const identity = await read('identity');
  const br = await untilBrotli(() => read('gzip, deflate, br'));
  expect(identity.headers['content-encoding']).toBeUndefined();
  expect(br.headers['content-encoding']).toBe('br');
  expect(br.headers.vary).toBe('Accept-Encoding');
  expect(br.body.length).toBeLessThan(identity.body.length / 2);
  expect(brotliDecompressSync(br.body).equals(identity.body)).toBe(true);
});

test("the platform's SIGTERM closes sessions with 1001 and stops both processes cleanly", async () => {
  const { client, autoloadUrl } = await connect('ping');
  expect(new URL(autoloadUrl).origin).toBe(origin);
  await run('docker', ['kill', '--signal', 'TERM', id]);
  expect((await client.closed).code).toBe(1001);
  const { stdout } = await run('docker', ['wait', id]);
  expect(stdout.trim()).toBe('0');
}, 30_000);

/**
 * What Heroku's router does to a dyno, played by a front in this process: the app gets a random
 * $PORT; the front terminates TLS on 127.0.0.1 and sends X-Forwarded-For/Proto/Port; it cuts a
 * WebSocket that carries nothing either way for 55 s; a stop is SIGTERM, then SIGKILL 30 s later.
 *
 * Wall time: about 20 s to start, 60 s of deliberate silence in the keep-alive test (the one
 * long wait, bounded by its own timeout), a few seconds to stop. The rest answers at once.
 */
describe("behind a router that treats the container as Heroku's treats a dyno", () => {
  /** Heroku's router closes a WebSocket after 55 s with no data in either direction. */
  const IDLE_CUT_MS = 55_000;
  /** Longer than the cut and than Bokeh's 37 s keep-alive ping interval. */
  const SILENCE_MS = 60_000;
  /** Heroku's grace between SIGTERM and SIGKILL. */
  const KILL_AFTER_S = 30;

  let dyno: string;
  let dynoPort: number;
  let ca: Buffer;
  let key: Buffer;
  const fronts: HttpsServer[] = [];

  /** A TLS front on 127.0.0.1 that forwards to the dyno, cutting WebSockets idle for `idleCutMs`. */
  async function startFront(idleCutMs: number): Promise<{ origin: string; cuts: () => number }> {
    let cuts = 0;
    const forwarded = (req: IncomingMessage, port: number) => ({
      ...req.headers,
      'x-forwarded-for': req.socket.remoteAddress ?? '',
      'x-forwarded-proto': 'https',
      'x-forwarded-port': String(port),
      'x-request-id': Math.random().toString(36).slice(2),
    });
    const server = createHttpsServer({ key, cert: ca }, (req, res) => {
      const upstream = httpRequest({ host: '127.0.0.1', port: dynoPort, method: req.method, path: req.url, headers: forwarded(req, port) }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const dynoSide: Socket = connectTcp(dynoPort, '127.0.0.1', () => {
        const headers = Object.entries(forwarded(req, port)).map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(', ') : value}`);
        dynoSide.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`);
        dynoSide.write(head);
        dynoSide.pipe(socket).pipe(dynoSide);
      });
      // Data either way resets each side's timer; silence on both for idleCutMs cuts the pair.
      const cut = () => {
        cuts++;
        socket.destroy();
        dynoSide.destroy();
      };
      let last = Date.now();
      const seen = () => (last = Date.now());
      socket.on('data', seen);
      dynoSide.on('data', seen);
      const timer = setInterval(() => Date.now() - last >= idleCutMs && cut(), Math.min(1_000, idleCutMs / 4));
      const end = () => {
        clearInterval(timer);
        socket.destroy();
        dynoSide.destroy();
      };
      socket.on('close', end);
      dynoSide.on('close', end);
      socket.on('error', end);
      dynoSide.on('error', end);
    });
    const port = await getPort({ host: '127.0.0.1' });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    fronts.push(server);
    return { origin: `https://127.0.0.1:${port}`, cuts: () => cuts };
  }

  let front: { origin: string; cuts: () => number };
  let shortFront: { origin: string; cuts: () => number };

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'paas-front-'));
    try {
      await promisify(execFile)('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ]);
      key = await readFile(join(dir, 'key.pem'));
      ca = await readFile(join(dir, 'cert.pem'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    dynoPort = await getPort({ host: '127.0.0.1' });
    // Heroku picks $PORT per dyno; any free port, never the image's default.
    const port = 10_000 + Math.floor(Math.random() * 50_000);
    front = await startFront(IDLE_CUT_MS);
    // The same front with a short cut, to show that the cut is real for a socket nobody keeps alive.
    shortFront = await startFront(3_000);
    const { stdout } = await run('docker', [
      'run',
      '-d',
      '--read-only',
      '--tmpfs',
      '/tmp',
      '-e',
      `PORT=${port}`,
      '-e',
      `PUBLIC_ORIGINS=${front.origin},${shortFront.origin}`,
      // The router is the one hop in front of the dyno, as the README tells Heroku users to set.
      '-e',
      'TRUST_PROXY=1',
      '-p',
      `127.0.0.1:${dynoPort}:${port}`,
      IMAGE,
    ]);
    dyno = stdout.trim();
    await eventually(async () => (await request(`${front.origin}/readyz`, { ca })).status === 200, 60_000, 'the dyno to be ready behind the front');
  }, 90_000);

  afterAll(async () => {
    for (const server of fronts) {
      server.closeAllConnections();
      server.close();
    }
    if (dyno) await run('docker', ['rm', '-f', dyno]);
  });

  /** An app page through the front, as a browser on https would open it. */
  async function openThroughFront(origin: string, app: string): Promise<{ js: string; client: BokehClient; doc: unknown }> {
    const { client, js, doc, autoloadUrl } = await openAppPage(origin, app, ca);
    expect(new URL(autoloadUrl).origin).toBe(origin);
    return { client, js, doc };
  }

  test('pages hand out https and wss URLs on the public address, and Bokeh hears who the client is', async () => {
    const { client, js } = await openThroughFront(front.origin, 'sliders');
    try {
      for (const url of bokehJsUrls(js)) expect(url.startsWith(`${front.origin}${PREFIX}/static/`)).toBe(true);
      expect(js).not.toMatch(/http:\/\/|ws:\/\//);
      const headers = tokenPayload(tokenFromAutoload(js)).extra.headers as Record<string, string>;
      // The router's X-Forwarded-For is believed (TRUST_PROXY=1), not the container network's address.
      expect(headers).toMatchObject({ 'X-Forwarded-For': '127.0.0.1', 'X-Forwarded-Proto': 'https' });
    } finally {
      await client.close();
    }
  });

  test('the front cuts a socket that is quiet past its idle limit (shown with a 3 s limit)', async () => {
    const { client } = await openThroughFront(shortFront.origin, 'ping');
    const closed = await client.closed;
    expect(closed.code).toBe(1006);
    expect(shortFront.cuts()).toBe(1);
  }, 20_000);

  test(
    "Bokeh's 37 s keep-alive ping keeps a quiet session open past the 55 s idle cut",
    async () => {
      const { client, doc } = await openThroughFront(front.origin, 'sliders');
      let pings = 0;
      client.socket.on('ping', () => pings++);
      try {
        // The client sends nothing of its own (ws answers pings with pongs, as browsers do).
        await new Promise((resolve) => setTimeout(resolve, SILENCE_MS));
        expect(front.cuts()).toBe(0);
        expect(pings).toBeGreaterThanOrEqual(1);
        const source = modelNamed(doc, 'source');
        client.setProperty(modelNamed(doc, 'frequency').id, 'value', 2.5);
        await client.next((msg) => msg.header.msgtype === 'PATCH-DOC' && JSON.stringify(msg.content).includes(source.id));
      } finally {
        await client.close();
      }
    },
    SILENCE_MS + 20_000,
  );

  test(
    `a stop is SIGTERM, then SIGKILL after ${KILL_AFTER_S} s: the container closes its sessions and exits cleanly within the grace`,
    async () => {
      const { client } = await openThroughFront(front.origin, 'ping');
      const started = Date.now();
      // docker stop sends SIGTERM and, if the container is still running after --time, SIGKILL.
      await run('docker', ['stop', '--time', String(KILL_AFTER_S), dyno]);
      const elapsed = Date.now() - started;
      expect((await client.closed).code).toBe(1001);
      const { stdout } = await run('docker', ['inspect', '--format', '{{.State.ExitCode}} {{.State.OOMKilled}}', dyno]);
      // 137 would mean SIGKILL: the grace ran out.
      expect(stdout.trim()).toBe('0 false');
      expect(elapsed).toBeLessThan(KILL_AFTER_S * 1000);
    },
    (KILL_AFTER_S + 15) * 1000,
  );
});
