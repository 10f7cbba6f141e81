/**
 * Several Bokeh replicas behind the gateway (BOKEH_REPLICAS, `docker compose up --scale bokeh=N`),
 * with the real compose file. Where sessions went is read from inside Bokeh: each replica's own
 * count of the sessions it made, holds and has a WebSocket for (<prefix>/_replica, asked through
 * `docker exec`), never from the gateway's bookkeeping. A session whose WebSocket reached another
 * replica than its autoload.js would show there as one session too many: Bokeh makes a new one
 * for an id it does not know.
 */
import type { BrowserContext } from 'playwright-core';
import { launchChromium, missingBrowser } from '../../client/browser.js';
import { openApp, sliderRoundTrip } from '../support/browser.js';
import {
  createdBetween,
  killReplica,
  listReplicas,
  openPing,
  openTracked,
  readiness,
  replicaStatus,
  replicaStatuses,
  roundTrip,
  runningReplicas,
  scaleBokeh,
  startReplica,
  stopReplica,
  sum,
  waitHealthy,
  type PingSession,
  type Replica,
  type ReplicaStatus,
} from '../support/replicas.js';
import { eventually, type Stack, useStack } from '../support/stack.js';

/** Page loads per affinity case: enough that every one of three replicas gets some. */
const LOADS = 12;
/**
 * A page load every this many ms while replicas stop and start: five a second, under the gateway's
 * own per-client limit on session starts (RATE_LIMIT_SESSION_STARTS, 100 in 10 s by default).
 */
const LOAD_INTERVAL_MS = 200;
/** How soon the gateway must have noticed a replica that came, went or started draining. */
const NOTICE_MS = 10_000;

const pause = (ms: number) => new Promise((done) => setTimeout(done, Math.max(0, ms)));

/** Waits until /readyz lists `count` serving replicas. */
async function untilServing(origin: string, count: number): Promise<void> {
  let last = '';
  await eventually(
    async () => {
      const { status, body } = await readiness(origin);
      last = `${status} ${JSON.stringify(body.replicas)}`;
      return status === 200 && body.replicas.filter((replica) => replica.state === 'serving').length === count;
    },
    30_000,
    `${count} serving replicas in ${origin}/readyz`,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}; /readyz said ${last}`);
  });
}

/** Until no replica has an open WebSocket: the sessions of earlier tests are closed. */
async function untilNoConnections(stack: Stack): Promise<void> {
  await eventually(async () => sum([...(await replicaStatuses(stack)).values()].map((status) => status.connections)) === 0, 10_000, 'no open WebSockets');
}

async function closeAll(sessions: PingSession[]): Promise<void> {
  await Promise.all(sessions.map((session) => session.client.close()));
}

/**
 * `open` loads one page the way a browser does, WebSocket and one round trip included. After
 * LOADS of them: exactly LOADS Bokeh sessions were made, on every replica, and each replica has a
 * WebSocket open for each session it made, so every WebSocket reached its autoload.js's replica.
 * On a `fresh` stack (no session made before) every session each replica holds has its WebSocket.
 */
async function expectAffinity(stack: Stack, open: (index: number) => Promise<PingSession>, { fresh = false } = {}): Promise<void> {
  await untilNoConnections(stack);
  const before = await replicaStatuses(stack);
  const sessions: PingSession[] = [];
  try {
    for (let i = 0; i < LOADS; i += 1) {
      const session = await open(i);
      sessions.push(session);
      await roundTrip(session);
    }
    const after = await replicaStatuses(stack);
    const created = createdBetween(before, after);
    expect(after.size).toBe(3);
    expect(sum(created.values())).toBe(LOADS);
    for (const [name, count] of created) {
      expect([name, count >= 1]).toEqual([name, true]);
      const status = after.get(name)!;
      expect([name, status.connections - before.get(name)!.connections]).toEqual([name, count]);
      if (fresh) expect([name, status.connections]).toEqual([name, status.sessions]);
    }
    // Every session still round-trips: none was cut off by the others.
    for (const session of sessions) await roundTrip(session);
  } finally {
    await closeAll(sessions);
  }
}

describe('three replicas and two gateways (bare-dev)', () => {
  const stack = useStack({ replicas: 3, secondGateway: true });

  test('BOKEH_REPLICAS=3 starts three replicas, and /readyz lists each one as serving', async () => {
    const replicas = await runningReplicas(stack());
    expect(replicas).toHaveLength(3);
    await untilServing(stack().url, 3);
    const { body } = await readiness(stack().url);
    expect(body.status).toBe('ready');
    expect(body.replicas.map((replica) => replica.url).sort()).toEqual(replicas.map((replica) => replica.url).sort());
  }, 60_000);

  test(`${LOADS} page loads, each with its WebSocket and a round trip, make exactly ${LOADS} Bokeh sessions, spread over all three, each WebSocket on the replica that served its autoload.js`, async () => {
    await expectAffinity(stack(), () => openPing(stack().url), { fresh: true });
  }, 60_000);

  test('the same with the page through one gateway and the WebSocket through the other', async () => {
    await untilServing(stack().gatewayB!, 3);
    // Both ways round: A's sessions through B, and B's through A.
    const [a, b] = [stack().url, stack().gatewayB!];
    await expectAffinity(stack(), async (i) => {
      const [page, ws] = i % 2 === 0 ? [a, b] : [b, a];
      const session = await openPing(page, { wsVia: ws });
      expect(new URL(session.autoloadUrl).origin).toBe(page);
      return session;
    });
  }, 60_000);

  const noBrowser = missingBrowser();
  const testInBrowser = noBrowser && process.env.CI !== 'true' ? test.skip : test;
  testInBrowser(
    'in a browser: two pages render their app and a slider round-trips on each; Bokeh made one session per page',
    async () => {
      await untilNoConnections(stack());
      const before = await replicaStatuses(stack());
      const browser = await launchChromium();
      let context: BrowserContext | undefined;
      try {
        context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
        const pages = [await openApp(context, `${stack().url}/apps/sliders`), await openApp(context, `${stack().url}/apps/sliders`)];
        for (const { page } of pages) await sliderRoundTrip(page);
        const after = await replicaStatuses(stack());
        expect(sum(createdBetween(before, after).values())).toBe(pages.length);
        expect(sum([...after.values()].map((status) => status.connections))).toBe(pages.length);
        expect(pages.flatMap(({ problems }) => problems)).toEqual([]);
      } finally {
        await context?.close();
        await browser.close();
      }
    },
    60_000,
  );

  // Last in this block: the killed replica stays down. Three tests on one kill, in order.
  describe('a replica killed (docker kill) under live sessions', () => {
    let victim: Replica | undefined;
    let killedAt = 0;
    let survivors: PingSession[] = [];
    // Page loads started at the moment of the kill (see the second test), and what they found.
    let afterKill: Promise<{ loads: PingSession[]; firstWorkedAfterMs: number; created: number }> | undefined;
    // /readyz from just before the kill on, every 100 ms: its status codes, and whether it named the dead replica as down.
    const seen = { down: false, codes: new Set<number>() };
    let watching = false;
    let watcher: Promise<void> | undefined;
    afterAll(async () => {
      watching = false;
      await watcher;
      const loads = await afterKill?.then((result) => result.loads).catch(() => []);
      await closeAll([...survivors, ...(loads ?? [])]);
    });

    /**
     * Page loads from `killedAt` on: they may fail, or hang, only until NOTICE_MS after the kill;
     * from the first that works, six more must all work, each within NOTICE_MS. `created` is how
     * many sessions the live replicas made meanwhile.
     */
    async function loadAfterKill(live: Replica[]): Promise<{ loads: PingSession[]; firstWorkedAfterMs: number; created: number }> {
      const statusesOfLive = async () => new Map(await Promise.all(live.map(async (replica) => [replica.name, await replicaStatus(replica)] as const)));
      const before = await statusesOfLive();
      const loads: PingSession[] = [];
      const attempts: string[] = [];
      for (;;) {
        const left = killedAt + NOTICE_MS - Date.now();
        if (left <= 0) throw new Error(`no page load worked within ${NOTICE_MS} ms of the kill: ${JSON.stringify(attempts)}`);
        try {
          const session = await openPing(stack().url, { timeoutMs: left });
          loads.push(session);
          await roundTrip(session);
          break;
        } catch (err) {
          attempts.push(String(err));
        }
      }
      const firstWorkedAfterMs = Date.now() - killedAt;
      for (let i = 0; i < 6; i += 1) {
        const session = await openPing(stack().url, { timeoutMs: NOTICE_MS });
        loads.push(session);
        await roundTrip(session);
      }
      return { loads, firstWorkedAfterMs, created: sum(createdBetween(before, await statusesOfLive()).values()) };
    }

    test('its WebSockets close with 1014, and the sessions on the other replicas keep round-tripping', async () => {
      await untilNoConnections(stack());
      const sessions = await openTracked(stack(), stack().url, 6);
      const replicas = await runningReplicas(stack());
      const statuses = await replicaStatuses(stack());
      // Of the replicas that hold some of these sessions, the one with the fewest sessions in all:
      // the one the gateway picks for the next new session, until it learns that it is dead.
      const holding = replicas.filter((replica) => sessions.some((session) => session.replica === replica.name));
      expect(holding.length).toBeGreaterThanOrEqual(2);
      const dead = holding.reduce((best, replica) => (statuses.get(replica.name)!.sessions < statuses.get(best.name)!.sessions ? replica : best));
      const onDead = sessions.filter((session) => session.replica === dead.name);
      survivors = sessions.filter((session) => session.replica !== dead.name);
      const live = replicas.filter((replica) => replica.name !== dead.name);
      watching = true;
      watcher = (async () => {
        while (watching) {
          try {
            const { status, body } = await readiness(stack().url);
            seen.codes.add(status);
            if (body.replicas.some((replica) => replica.url === dead.url && replica.state === 'down')) seen.down = true;
          } catch {
            seen.codes.add(-1);
          }
          await new Promise((done) => setTimeout(done, 100));
        }
      })();

      killedAt = Date.now();
      await killReplica(dead);
      victim = dead;
      afterKill = loadAfterKill(live);
      afterKill.catch(() => undefined);
      const closes = await Promise.all(
        onDead.map((session) =>
          Promise.race([session.client.closed, new Promise<{ code: number }>((resolve) => setTimeout(() => resolve({ code: -1 }), NOTICE_MS))]),
        ),
      );
      expect(closes.map((close) => close.code)).toEqual(onDead.map(() => 1014));
      for (const session of survivors) await roundTrip(session);
    }, 60_000);

    test('page loads from the moment of the kill work within a few seconds, then every one, all on the live replicas', async () => {
      if (!afterKill) throw new Error('no replica was killed: see the test before');
      const { loads, firstWorkedAfterMs, created } = await afterKill;
      process.stdout.write(`[replicas] first page load after the kill worked ${firstWorkedAfterMs} ms after it\n`);
      expect(created).toBe(loads.length);
    }, 60_000);

    test('/readyz stays 200 (ready) on the two live replicas and lists the dead one as down', async () => {
      if (!victim) throw new Error('no replica was killed: see the tests before');
      // Give the gateway a discovery round or two after the kill, if the tests before were quick.
      await new Promise((done) => setTimeout(done, Math.max(0, killedAt + NOTICE_MS - Date.now())));
      watching = false;
      await watcher;
      expect([...seen.codes]).toEqual([200]);
      const { status, body } = await readiness(stack().url);
      expect(status).toBe(200);
      expect(body.status).toBe('ready');
      expect(body.replicas.filter((replica) => replica.state === 'serving')).toHaveLength(2);
      expect({ dead: victim.url, listedAsDown: seen.down }).toEqual({ dead: victim.url, listedAsDown: true });
    }, 30_000);
  });
});

describe('replicas coming and going (bare-dev)', () => {
  const stack = useStack({ replicas: 2 });

  test('a replica added (scale 2 -> 3): new sessions reach it, and the sessions on the first two keep round-tripping', async () => {
    await untilServing(stack().url, 2);
    const old = await runningReplicas(stack());
    expect(old).toHaveLength(2);
    const early = await openTracked(stack(), stack().url, 4);
    expect(new Set(early.map((session) => session.replica)).size).toBe(2);
    const later: PingSession[] = [];
    try {
      const all = await scaleBokeh(stack(), 3);
      expect(all).toHaveLength(3);
      const added = all.find((replica) => !old.some((first) => first.name === replica.name))!;
      await untilServing(stack().url, 3);

      const before = await replicaStatuses(stack());
      for (let i = 0; i < 6; i += 1) {
        const session = await openPing(stack().url);
        later.push(session);
        await roundTrip(session);
      }
      const created = createdBetween(before, await replicaStatuses(stack()));
      expect(sum(created.values())).toBe(later.length);
      expect(created.get(added.name)).toBeGreaterThanOrEqual(1);
      for (const session of early) await roundTrip(session);
    } finally {
      await closeAll([...early, ...later]);
    }
  }, 120_000);

  test('scale-down: a stopped replica keeps serving its open sessions while it drains, takes no new ones, and exits soon after they close', async () => {
    await untilServing(stack().url, 3);
    await untilNoConnections(stack());
    const sessions = await openTracked(stack(), stack().url, 6);
    const replicas = await runningReplicas(stack());
    const counts = new Map(replicas.map((replica) => [replica.name, sessions.filter((session) => session.replica === replica.name).length]));
    const victim = replicas.reduce((best, replica) => (counts.get(replica.name)! > counts.get(best.name)! ? replica : best));
    const onVictim = sessions.filter((session) => session.replica === victim.name);
    expect(onVictim.length).toBeGreaterThanOrEqual(1);
    const victimBefore = await replicaStatus(victim);
    const others = replicas.filter((replica) => replica.name !== victim.name);
    const othersBefore = new Map(await Promise.all(others.map(async (replica) => [replica.name, await replicaStatus(replica)] as const)));

    const stopStarted = Date.now();
    let exitedAt = 0;
    const stopping = stopReplica(victim).then(() => (exitedAt = Date.now()));
    const loads: PingSession[] = [];
    try {
      await eventually(async () => (await replicaStatus(victim)).state === 'draining', 5_000, `${victim.name} draining`);
      // Page loads during the drain: every one succeeds, on the other replicas.
      while (Date.now() - stopStarted < 3_000) {
        const started = Date.now();
        const session = await openPing(stack().url);
        loads.push(session);
        await roundTrip(session);
        await pause(LOAD_INTERVAL_MS - (Date.now() - started));
      }
      // Three seconds into the drain, the draining replica's sessions still answer.
      for (const session of onVictim) await roundTrip(session);
      const draining: ReplicaStatus = await replicaStatus(victim);
      expect(draining.state).toBe('draining');
      expect(draining.sessionsCreated).toBe(victimBefore.sessionsCreated);
      expect(draining.connections).toBe(onVictim.length);
      const othersAfter = new Map(await Promise.all(others.map(async (replica) => [replica.name, await replicaStatus(replica)] as const)));
      expect(loads.length).toBeGreaterThanOrEqual(3);
      expect(sum(createdBetween(othersBefore, othersAfter).values())).toBe(loads.length);
      expect(exitedAt).toBe(0);

      const closedAt = Date.now();
      await closeAll(onVictim);
      await stopping;
      // Well before the drain bound (BOKEH_DRAIN_TIMEOUT_S, 20 s): the replica left once its sessions had gone.
      expect(exitedAt - closedAt).toBeLessThan(10_000);
      expect(exitedAt - stopStarted).toBeLessThan(victimBefore.drainTimeoutSeconds * 1000 - 3_000);
      const [after] = (await listReplicas(stack())).filter((replica) => replica.name === victim.name);
      expect(after?.state).toBe('exited');
    } finally {
      await closeAll([...sessions, ...loads]);
      await stopping;
      // Back to three for the next test, whatever happened here.
      await startReplica(victim);
      await waitHealthy(victim);
    }
  }, 120_000);

  test('a rolling restart of every replica, one at a time, while a client keeps loading pages: not one load fails', async () => {
    await untilServing(stack().url, 3);
    const replicas = await runningReplicas(stack());
    expect(replicas).toHaveLength(3);
    let running = true;
    let loaded = 0;
    const failures: string[] = [];
    // One user reloading the page over and over. Not a load test (the bench measures throughput):
    // on two cores, loads as fast as the client can go make each replica hold hundreds of
    // sessions and starve the replicas themselves.
    const client = (async () => {
      while (running) {
        const started = Date.now();
        try {
          const session = await openPing(stack().url);
          await roundTrip(session);
          await session.client.close();
          loaded += 1;
        } catch (err) {
          failures.push(`${new Date().toISOString()} ${String(err)}`);
        }
        await pause(LOAD_INTERVAL_MS - (Date.now() - started));
      }
    })();
    try {
      for (const replica of replicas) {
        await stopReplica(replica);
        await startReplica(replica);
        await waitHealthy(replica);
        await untilServing(stack().url, 3);
      }
    } finally {
      running = false;
      await client;
    }
    process.stdout.write(`[replicas] rolling restart: ${loaded} page loads, ${failures.length} failed\n`);
    expect(failures).toEqual([]);
    // A restart of three replicas takes tens of seconds; a page load well under one.
    expect(loaded).toBeGreaterThanOrEqual(50);
  }, 180_000);
});

describe('three replicas behind NGINX', () => {
  const stack = useStack({ front: 'nginx', replicas: 3 });

  test(`${LOADS} page loads through NGINX make exactly ${LOADS} Bokeh sessions, spread over all three, each WebSocket on its autoload.js's replica`, async () => {
    await untilServing(stack().url, 3);
    const front = stack().nginx!;
    await expectAffinity(stack(), () => openPing(front.https, { ca: front.ca }), { fresh: true });
  }, 60_000);
});
