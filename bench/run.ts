/**
 * The gateway's cost, measured side by side with direct Bokeh, NGINX -> Bokeh, NGINX -> gateway
 * and stock Bokeh, all in one stack and one run, with the first load of an app page in Chromium
 * on emulated networks through those paths and the PaaS image; then, in a second stack, 1, 2 and
 * 3 Bokeh replicas behind the gateway and behind Bokeh's own recipe, NGINX `least_conn` (method
 * and latest results: bench/README.md).
 *
 *   npm run bench                 full run (about 16 minutes on 2 cores, 6 of them the browser loads), results in bench/results/
 *                                 and bench/README.md
 *   npm run bench -- --smoke      seconds, tiny counts: proves every path and the output work
 *
 * Options: --reps N, --out DIR, --no-build (use the images already built for IMAGE_TAG),
 * --readme FILE (where a full run writes its page; default bench/README.md), --no-readme,
 * --from FILE (measure nothing: write the page again from a full run's saved JSON, e.g. after
 * an edit of bench/README.template.md), --only first-load (the browser loads and nothing else;
 * never writes the page), --first-loads N (cold and warm loads per path and network).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { measureFirstLoads, type FirstLoadSettings } from './first-load.js';
import { measureFloods } from './flood.js';
import { capacity, http, interactions, push, roundTrips } from './measure.js';
import { markdown, readme, Recorder, targets, type MetricSpec, type Results } from './report.js';
import { bokehJsUrls } from '../client/bokeh-client.js';
import { autoloadUrl, get } from './session.js';
import {
  buildImages,
  describeMachine,
  DISPLAY_ORDER,
  PATH_ORDER,
  REPLICA_PATHS,
  REPO_ROOT,
  startBenchStack,
  startReplicaStack,
  type BenchPath,
  type BenchStack,
  type PathId,
  type ReplicaPathId,
  type ReplicaStack,
} from './stack.js';

const MIB = 1024 * 1024;

interface Settings {
  reps: number;
  /** Concurrent sessions for the round-trip test; `roundTrips` shared out among them. */
  sessions: number[];
  roundTrips: number;
  /** Cap per round-trip measurement, for stock Bokeh's ~40 ms round trips. */
  roundTripSeconds: number;
  pushClients: number[];
  /** Small updates per burst, shared out among the clients. */
  pushSmall: number;
  pushLarge: number;
  pushLargeBytes: number;
  httpConnections: number;
  httpStatic: { duration: number } | { amount: number };
  httpAutoload: { duration: number } | { amount: number };
  capacitySessions: number;
  /** The flood scenario (flood.ts), once after the repetitions. */
  floodSeconds: number;
  floodConcurrency: number;
  /** Bokeh replica counts of the replica stack, walked up and down in turn. */
  replicas: number[];
  /** Concurrent `cpu` sessions, each making interactions back to back for `cpuSeconds`. */
  cpuSessions: number;
  cpuSeconds: number;
  /** Page loads in Chromium on emulated networks (first-load.ts), after the repetitions. */
  firstLoad: FirstLoadSettings;
}

const FULL: Settings = {
  reps: 3,
  sessions: [1, 10, 100],
  roundTrips: 2000,
  roundTripSeconds: 8,
  pushClients: [1, 10],
  pushSmall: 10_000,
  pushLarge: 48,
  pushLargeBytes: MIB,
  httpConnections: 10,
  httpStatic: { amount: 1000 },
  // A fixed count, not a duration: each autoload.js request makes a Bokeh session.
  httpAutoload: { amount: 500 },
  capacitySessions: 500,
  floodSeconds: 10,
  floodConcurrency: 32,
  replicas: [1, 2, 3],
  // Enough sessions to keep three replicas busy; each one waits for its reply before it sends
  // again, as a user does.
  cpuSessions: 12,
  cpuSeconds: 5,
  firstLoad: { loads: 5, profiles: ['fast', 'slow'] },
};

const SMOKE: Settings = {
  reps: 1,
  sessions: [1, 3],
  roundTrips: 10,
  roundTripSeconds: 5,
  pushClients: [1, 2],
  pushSmall: 20,
  pushLarge: 1,
  pushLargeBytes: MIB,
  httpConnections: 2,
  httpStatic: { amount: 20 },
  httpAutoload: { amount: 20 },
  capacitySessions: 5,
  floodSeconds: 2,
  floodConcurrency: 4,
  replicas: [1, 2, 3],
  cpuSessions: 3,
  cpuSeconds: 1,
  // The fast network only: a cold load on the slow one takes 7-20 s per path.
  firstLoad: { loads: 1, profiles: ['fast'] },
};

/** Paths that the HTTP test skips: stock Bokeh serves HTTP exactly as direct Bokeh does. */
const HTTP_PATHS: PathId[] = ['direct', 'gateway', 'nginxGateway', 'nginxBokeh'];

const started = Date.now();
function log(line: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
}

async function waitForPaths(stack: BenchStack): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (const id of DISPLAY_ORDER) {
    const path = stack.paths[id];
    for (;;) {
      const status = await get(autoloadUrl(path, 'ping')).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`${path.label} (${path.origin}) did not serve autoload.js within 60 s (last status ${status})`);
      await new Promise((done) => setTimeout(done, 500));
    }
  }
}

/**
 * Bokeh's main JS file as pages load it: the URL from autoload.js, with the `?v=<hash>` that lets
 * the gateway (and NGINX -> gateway, from NGINX's cache) answer it from memory. Every path gets it.
 */
async function staticJsPath(stack: BenchStack): Promise<string> {
  const js = (await get(autoloadUrl(stack.paths.direct, 'ping'))).body;
  const url = bokehJsUrls(js).find((script) => /\/bokeh(?:\.min)?\.js\?v=/.test(script));
  if (url === undefined) throw new Error("autoload.js names no versioned bokeh.min.js (is Bokeh's dev mode on?)");
  const { pathname, search } = new URL(url);
  return `${pathname}${search}`;
}

async function measurePath(path: BenchPath, s: Settings, recorder: Recorder, failures: string[], staticJs: string): Promise<void> {
  const record = (spec: MetricSpec, value: number) => recorder.add(spec, path.id, value);
  const noteFailures = (what: string, count: number) => {
    if (count > 0) failures.push(`${path.label}: ${what}: ${count} failed`);
  };
  // A measurement that fails outright is reported and the run goes on with the next one.
  const attempt = async <T>(what: string, measure: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await measure();
    } catch (err) {
      failures.push(`${path.label}: ${what}: ${(err as Error).message}`);
      log(`${path.label}: ${what} FAILED: ${(err as Error).message}`);
      return undefined;
    }
  };

  const rtGroup = 'WebSocket round trip (ping app: slider PATCH-DOC -> server callback -> PATCH-DOC back)';
  for (const sessions of s.sessions) {
    const r = await attempt(`round trips with ${sessions} sessions`, () => roundTrips(path, sessions, s.roundTrips, s.roundTripSeconds));
    if (!r) continue;
    log(`${path.label}: ${sessions} session(s), ${r.roundTrips} round trips, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`);
    const label = `${sessions} session${sessions === 1 ? '' : 's'}`;
    for (const p of ['p50', 'p90', 'p99'] as const)
      record({ id: `rt.c${sessions}.${p}`, group: rtGroup, label: `${label}, ${p}`, unit: 'ms', better: 'lower' }, r[p]);
    noteFailures(`round trips with ${sessions} sessions`, r.failures);
  }

  const pushGroup = 'Server push (push app: a burst of PATCH-DOCs as fast as Bokeh makes them)';
  for (const clients of s.pushClients) {
    const r = await attempt(`small push to ${clients} clients`, () => push(path, clients, 'small', Math.max(1, Math.round(s.pushSmall / clients))));
    if (!r) continue;
    log(`${path.label}: push to ${clients} client(s), ${r.messages} messages, ${r.messagesPerSecond.toFixed(0)} msg/s`);
    record(
      { id: `push.small.n${clients}`, group: pushGroup, label: `small updates, ${clients} client${clients === 1 ? '' : 's'}`, unit: 'msg/s', better: 'higher' },
      r.messagesPerSecond,
    );
    noteFailures(`small push to ${clients} clients`, r.failures);
  }
  const large = await attempt('large push', () => push(path, 1, 'large', s.pushLarge, s.pushLargeBytes));
  if (large) {
    log(`${path.label}: ${s.pushLarge} × ${s.pushLargeBytes} B buffers, ${(large.bytesPerSecond / 1e6).toFixed(1)} MB/s`);
    record(
      { id: 'push.large.n1', group: pushGroup, label: `${s.pushLargeBytes / MIB} MiB binary buffers, 1 client`, unit: 'MB/s', better: 'higher' },
      large.bytesPerSecond / 1e6,
    );
    noteFailures('large push', large.failures);
  }

  if (!HTTP_PATHS.includes(path.id)) return;
  const httpGroup = `HTTP (autocannon, ${s.httpConnections} connections)`;
  for (const [key, what, url, load] of [
    ['static', 'static JS', `${path.origin}${staticJs}`, s.httpStatic],
    ['autoload', 'autoload.js', () => autoloadUrl(path, 'ping'), s.httpAutoload],
  ] as const) {
    const r = await attempt(`HTTP ${what}`, () => http(url, s.httpConnections, load));
    if (!r) continue;
    log(`${path.label}: ${what} ${r.requestsPerSecond.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`);
    record({ id: `http.${key}.rps`, group: httpGroup, label: `${what}, requests/s`, unit: 'req/s', better: 'higher' }, r.requestsPerSecond);
    record({ id: `http.${key}.p50`, group: httpGroup, label: `${what}, p50`, unit: 'ms', better: 'lower' }, r.p50);
    record({ id: `http.${key}.p99`, group: httpGroup, label: `${what}, p99`, unit: 'ms', better: 'lower' }, r.p99);
    noteFailures(`HTTP ${what} requests`, r.failures);
    if (r.requests === 0) failures.push(`${path.label}: HTTP ${what}: no request completed`);
  }
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/**
 * One repetition of the replica scenarios: at each replica count, the `cpu` app's interactions
 * per second on both paths with the Bokeh sessions each page load made (counted by Bokeh), and
 * the gateway's ping round trip at the fewest and the most replicas. Figures are recorded at the
 * end, in a fixed order, as ratios to one replica within the same repetition too.
 */
async function measureReplicas(stack: ReplicaStack, s: Settings, rep: number, recorder: Recorder, failures: string[]): Promise<void> {
  const cpuGroup = `Bokeh replicas (cpu app: a PATCH-DOC -> ~20 ms of Python -> a PATCH-DOC back; ${s.cpuSessions} sessions back to back for ${s.cpuSeconds} s; NGINX → Bokeh is Bokeh's recipe, least_conn)`;
  const rtGroup = 'Gateway round trip with replicas (ping app, 1 session)';
  const counts = rep % 2 === 1 ? s.replicas : [...s.replicas].reverse();
  const at = new Map(
    s.replicas.map((count) => [
      count,
      { ips: {} as Partial<Record<ReplicaPathId, number>>, sessions: {} as Partial<Record<ReplicaPathId, number>>, rt: undefined as number | undefined },
    ]),
  );
  const fewest = Math.min(...s.replicas);
  const most = Math.max(...s.replicas);
  for (const count of counts) {
    try {
      await stack.scale(count);
    } catch (err) {
      failures.push(`Replicas: scaling to ${count}: ${(err as Error).message}`);
      log(`replicas: scaling to ${count} FAILED: ${(err as Error).message}`);
      continue;
    }
    const order = rep % 2 === 1 ? REPLICA_PATHS : [...REPLICA_PATHS].reverse();
    for (const id of order) {
      const path = stack.paths[id];
      try {
        await stack.idle();
        const before = await stack.sessionsCreated();
        const r = await interactions(path, s.cpuSessions, s.cpuSeconds);
        const created = (await stack.sessionsCreated()) - before;
        log(
          `${path.label}, ${plural(count, 'replica')}: ${r.interactions} interactions, ${r.interactionsPerSecond.toFixed(1)}/s; ` +
            `${created} Bokeh sessions for ${r.pageLoads} page loads`,
        );
        at.get(count)!.ips[id] = r.interactionsPerSecond;
        at.get(count)!.sessions[id] = created / r.pageLoads;
        if (r.failures) failures.push(`${path.label}, ${plural(count, 'replica')}: ${r.failures} cpu sessions or interactions failed (first: ${r.firstError})`);
      } catch (err) {
        failures.push(`${path.label}, ${plural(count, 'replica')}: interactions: ${(err as Error).message}`);
        log(`${path.label}, ${plural(count, 'replica')}: interactions FAILED: ${(err as Error).message}`);
      }
    }
    if (count === fewest || count === most) {
      try {
        const r = await roundTrips(stack.paths.gateway, 1, s.roundTrips, s.roundTripSeconds);
        log(`Gateway, ${plural(count, 'replica')}: 1 session, ${r.roundTrips} round trips, p50 ${r.p50.toFixed(2)} ms`);
        at.get(count)!.rt = r.p50;
        if (r.failures) failures.push(`Gateway, ${plural(count, 'replica')}: ${r.failures} round trips failed`);
      } catch (err) {
        failures.push(`Gateway, ${plural(count, 'replica')}: round trips: ${(err as Error).message}`);
      }
    }
  }

  const ratio = (value: number | undefined, base: number | undefined) => (value !== undefined && base ? value / base : undefined);
  // Rows in a fixed order: rates, their ratios to the fewest replicas, sessions, round trips.
  const add = (spec: Omit<MetricSpec, 'group' | 'better'>, group: string, better: MetricSpec['better'], id: ReplicaPathId, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) recorder.add({ ...spec, group, better }, id, value);
  };
  for (const count of s.replicas)
    for (const id of REPLICA_PATHS)
      add({ id: `replicas.ips.r${count}`, label: plural(count, 'replica'), unit: 'interactions/s' }, cpuGroup, 'higher', id, at.get(count)!.ips[id]);
  for (const count of s.replicas.filter((c) => c !== fewest))
    for (const id of REPLICA_PATHS) {
      const [value, base] = [at.get(count)!.ips[id], at.get(fewest)!.ips[id]];
      const label = `${plural(count, 'replica')} vs ${fewest}, interactions/s`;
      add({ id: `replicas.ips.r${count}vs${fewest}`, label, unit: '×', compare: false }, cpuGroup, 'higher', id, ratio(value, base));
    }
  for (const count of s.replicas)
    for (const id of REPLICA_PATHS) {
      const label = `Bokeh sessions per page load, ${plural(count, 'replica')}`;
      add({ id: `replicas.sessions.r${count}`, label, unit: '', compare: false }, cpuGroup, 'lower', id, at.get(count)!.sessions[id]);
    }
  for (const count of new Set([fewest, most]))
    add({ id: `replicas.rt.r${count}.p50`, label: `${plural(count, 'replica')}, p50`, unit: 'ms' }, rtGroup, 'lower', 'gateway', at.get(count)!.rt);
  const [rtFewest, rtMost] = [at.get(fewest)!.rt, at.get(most)!.rt];
  if (most !== fewest)
    add(
      { id: `replicas.rt.r${most}vs${fewest}.p50`, label: `${plural(most, 'replica')} vs ${fewest}, p50`, unit: '×', compare: false },
      rtGroup,
      'lower',
      'gateway',
      ratio(rtMost, rtFewest),
    );
}

/**
 * Runs `body` against a started stack and takes the stack down afterwards, or on Ctrl-C. When
 * anything failed, the stack's last log lines go to stderr before it is gone.
 */
async function withStack(stack: { logs(lines: number): Promise<string>; down(): Promise<void> }, failures: string[], body: () => Promise<void>): Promise<void> {
  const stop = () => {
    log('interrupted: taking the stack down');
    void stack.down().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const failedBefore = failures.length;
  try {
    await body();
    if (failures.length > failedBefore)
      process.stderr.write(`bench: ${failures.length - failedBefore} failures; the stack's last log lines:\n${await stack.logs(40).catch(() => '(none)')}\n`);
  } catch (err) {
    process.stderr.write(`bench: the stack's last log lines:\n${await stack.logs(40).catch(() => '(none)')}\n`);
    throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    log('taking the stack down');
    await stack.down();
  }
}

/** bench/README.md: the fixed text of bench/README.template.md with this run's tables. */
async function writeReadme(file: string, results: Results): Promise<void> {
  const template = await readFile(resolve(REPO_ROOT, 'bench/README.template.md'), 'utf8');
  await writeFile(file, readme(template, results));
  log(`method and results written to ${file}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      reps: { type: 'string' },
      out: { type: 'string', default: resolve(REPO_ROOT, 'bench/results') },
      'no-build': { type: 'boolean', default: false },
      readme: { type: 'string', default: resolve(REPO_ROOT, 'bench/README.md') },
      'no-readme': { type: 'boolean', default: false },
      from: { type: 'string' },
      only: { type: 'string' },
      'first-loads': { type: 'string' },
    },
  });
  if (values.only !== undefined && values.only !== 'first-load') throw new Error(`--only takes "first-load" (got "${values.only}")`);
  const firstLoadOnly = values.only === 'first-load';
  if (values.from !== undefined) {
    const saved = JSON.parse(await readFile(values.from, 'utf8')) as Results;
    if (saved.format !== 'bokeh-gateway-bench/1' || saved.mode !== 'full') throw new Error(`${values.from} holds no full bench run's results`);
    await writeReadme(values.readme, saved);
    return;
  }
  const settings: Settings = { ...(values.smoke ? SMOKE : FULL) };
  if (values.reps !== undefined) {
    const reps = Number(values.reps);
    if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a whole number of at least 1 (got "${values.reps}")`);
    settings.reps = reps;
  }
  if (values['first-loads'] !== undefined) {
    const loads = Number(values['first-loads']);
    if (!Number.isInteger(loads) || loads < 1) throw new Error(`--first-loads must be a whole number of at least 1 (got "${values['first-loads']}")`);
    settings.firstLoad = { ...settings.firstLoad, loads };
  }
  const startedAt = new Date().toISOString();
  const machine = await describeMachine();
  if (!values['no-build']) {
    log(`building images (IMAGE_TAG=${process.env.IMAGE_TAG ?? 'local'})`);
    await buildImages();
  }
  const recorder = new Recorder();
  const failures: string[] = [];
  const stack = await startBenchStack(log);
  await withStack(stack, failures, async () => {
    await waitForPaths(stack);
    if (firstLoadOnly) {
      await measureFirstLoads(stack.paths, settings.firstLoad, recorder, failures, log);
      return;
    }
    const staticJs = await staticJsPath(stack);
    for (let rep = 1; rep <= settings.reps; rep += 1) {
      log(`repetition ${rep} of ${settings.reps}`);
      // Paths take turns within each repetition, each repetition starting one path later, so
      // drift on a shared machine and Bokeh's growing session count hit them alike.
      const order = PATH_ORDER.map((_, i) => PATH_ORDER[(i + rep - 1) % PATH_ORDER.length]!);
      for (const id of order) await measurePath(stack.paths[id], settings, recorder, failures, staticJs);
      const capacityGroup = `Capacity (${settings.capacitySessions} concurrent ping sessions through the gateway)`;
      try {
        const c = await capacity(
          stack.paths.gateway,
          settings.capacitySessions,
          () => stack.gatewayRss(),
          () => stack.restartGateway(),
        );
        log(`gateway: ${c.sessions} concurrent sessions, ${c.failures} failed, RSS ${(c.rssBefore / MIB).toFixed(1)} -> ${(c.rssAfter / MIB).toFixed(1)} MiB`);
        recorder.add({ id: 'capacity.failures', group: capacityGroup, label: 'failed sessions', unit: '', better: 'lower' }, 'gateway', c.failures);
        recorder.add(
          { id: 'capacity.kibPerSession', group: capacityGroup, label: 'gateway RSS growth per open WebSocket', unit: 'KiB', better: 'lower' },
          'gateway',
          c.bytesPerSession / 1024,
        );
        if (c.failures) failures.push(`Gateway: ${c.failures} of ${c.sessions} concurrent sessions failed${c.firstError ? ` (first: ${c.firstError})` : ''}`);
      } catch (err) {
        failures.push(`Gateway: capacity: ${(err as Error).message}`);
      }
    }
    const firstLoadStarted = Date.now();
    await measureFirstLoads(stack.paths, settings.firstLoad, recorder, failures, log);
    log(`first loads in Chromium took ${((Date.now() - firstLoadStarted) / 1000).toFixed(0)} s`);
    // Last: with the limits off, the flood leaves Bokeh holding its sessions.
    await measureFloods(stack, settings.floodSeconds, settings.floodConcurrency, recorder, failures, log);
  });

  // The replica scenarios need a stack of their own: replicas cannot share the published port
  // of the direct path, and the paths above all measure one Bokeh.
  let replicaStack: ReplicaStack | undefined;
  try {
    if (!firstLoadOnly) replicaStack = await startReplicaStack(log);
  } catch (err) {
    failures.push(`Replicas: the replica stack did not start: ${(err as Error).message}`);
  }
  if (replicaStack) {
    const replicas = replicaStack;
    await withStack(replicas, failures, async () => {
      for (let rep = 1; rep <= settings.reps; rep += 1) {
        log(`replicas: repetition ${rep} of ${settings.reps}`);
        await measureReplicas(replicas, settings, rep, recorder, failures);
      }
    });
  }

  const metrics = recorder.results();
  const results: Results = {
    format: 'bokeh-gateway-bench/1',
    mode: values.smoke ? 'smoke' : 'full',
    startedAt,
    durationSeconds: (Date.now() - started) / 1000,
    machine,
    settings: { ...settings, ...(firstLoadOnly ? { only: 'first-load' } : {}) },
    paths: DISPLAY_ORDER.map((id) => ({ id, label: stack.paths[id].label })),
    metrics,
    targets: targets(metrics),
    failures,
  };
  await mkdir(values.out, { recursive: true });
  const stamp = startedAt.replace(/[:.]/g, '-');
  // A partial run never takes the place of a complete one's files.
  const kind = `${results.mode}${firstLoadOnly ? '-first-load' : ''}`;
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const md = markdown(results);
  for (const name of [`bench-${kind}-${stamp}`, `latest-${kind}`]) {
    await writeFile(resolve(values.out, `${name}.json`), json);
    await writeFile(resolve(values.out, `${name}.md`), md);
  }
  // Only a full run speaks for the gateway's performance; a smoke run's figures mean nothing.
  if (results.mode === 'full' && !firstLoadOnly && !values['no-readme']) await writeReadme(values.readme, results);
  process.stdout.write(md);
  log(`results in ${values.out}/latest-${kind}.{json,md}${failures.length ? `; ${failures.length} failures` : ''}`);
  if (failures.length) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
