/**
 * The bench harness in its smoke mode (seconds, tiny counts), so it cannot rot: every path it
 * compares must carry real sessions, pushes, HTTP requests and page loads in Chromium, and its
 * JSON and Markdown must be complete. Timings are never asserted here; they belong to `npm run bench`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIRST_LOAD_PATHS, firstLoadMetric } from '../../bench/first-load.js';
import type { Results } from '../../bench/report.js';
import { DISPLAY_ORDER, PATH_LABELS, PATH_ORDER } from '../../bench/stack.js';
import { REPO_ROOT } from '../support/stack.js';

const run = promisify(execFile);

describe('bench harness, smoke mode', () => {
  let out: string;
  let results: Results;
  let markdown: string;
  const metric = (id: string) => {
    const found = results.metrics.find((m) => m.id === id);
    if (!found) throw new Error(`no metric ${id} in the results`);
    return found;
  };

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
    // The images were built by the integration suite's global setup.
    await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', '--no-build', '--out', out], {
      cwd: REPO_ROOT,
      maxBuffer: 16 * 1024 * 1024,
      timeout: 400_000,
    }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`npm run bench -- --smoke failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
    });
    results = JSON.parse(await readFile(join(out, 'latest-smoke.json'), 'utf8')) as Results;
    markdown = await readFile(join(out, 'latest-smoke.md'), 'utf8');
  }, 420_000);

  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  test('every path answered every measurement, with nothing failed', () => {
    expect(results.format).toBe('bokeh-gateway-bench/1');
    expect(results.mode).toBe('smoke');
    expect(results.failures).toEqual([]);
    expect(results.paths.map((p) => p.id)).toEqual(DISPLAY_ORDER);
    // WebSocket round trips and server push ran on all five paths, HTTP on all but stock Bokeh.
    for (const id of ['rt.c1.p50', 'rt.c3.p99', 'push.small.n1', 'push.small.n2', 'push.large.n1']) {
      expect(Object.keys(metric(id).values).sort()).toEqual([...PATH_ORDER].sort());
    }
    for (const id of ['http.static.rps', 'http.autoload.rps']) {
      expect(Object.keys(metric(id).values).sort()).toEqual(['direct', 'gateway', 'nginxBokeh', 'nginxGateway']);
    }
    for (const m of results.metrics.filter((m) => !m.id.startsWith('capacity.'))) {
      for (const [path, value] of Object.entries(m.values)) {
        expect({ metric: m.id, path, positive: value.median > 0 && value.runs.every(Number.isFinite) }).toEqual({ metric: m.id, path, positive: true });
      }
    }
    expect(metric('capacity.failures').values.gateway?.runs).toEqual([0]);
  });

  test('the replica scenarios ran at 1, 2 and 3 replicas, and the gateway made one Bokeh session per page load', () => {
    for (const count of [1, 2, 3]) {
      for (const id of [`replicas.ips.r${count}`, `replicas.sessions.r${count}`]) {
        expect({ id, paths: Object.keys(metric(id).values).sort() }).toEqual({ id, paths: ['gateway', 'nginxBokeh'] });
      }
      // Counted inside Bokeh: affinity, not a timing. Bokeh's recipe makes at least one per load.
      expect({ count, runs: metric(`replicas.sessions.r${count}`).values.gateway?.runs }).toEqual({ count, runs: [1] });
      expect(metric(`replicas.sessions.r${count}`).values.nginxBokeh?.runs.every((v) => v >= 1)).toBe(true);
    }
    for (const id of ['replicas.ips.r2vs1', 'replicas.ips.r3vs1']) expect(Object.keys(metric(id).values).sort()).toEqual(['gateway', 'nginxBokeh']);
    for (const id of ['replicas.rt.r1.p50', 'replicas.rt.r3.p50', 'replicas.rt.r3vs1.p50']) expect(Object.keys(metric(id).values)).toEqual(['gateway']);
    const names = results.targets.map((t) => t.name);
    expect(names.filter((name) => /replica/.test(name))).toHaveLength(3);
    const sessions = results.targets.find((t) => t.name.startsWith('Bokeh sessions per page load through the gateway'));
    expect(sessions).toMatchObject({ measured: 1, comparison: '=', limit: 1, met: true });
  });

  test('Chromium loaded the app on every first-load path, cold and warm, and the warm load came from its cache', () => {
    for (const cache of ['cold', 'warm'] as const)
      for (const what of ['ms', 'kb'] as const) {
        const id = firstLoadMetric('fast', cache, what);
        expect({ id, paths: Object.keys(metric(id).values).sort() }).toEqual({ id, paths: [...FIRST_LOAD_PATHS].sort() });
      }
    // Bytes, not a timing: BokehJS (over 1 MB even compressed) comes from the cache the second time.
    for (const id of FIRST_LOAD_PATHS) {
      const cold = metric(firstLoadMetric('fast', 'cold', 'kb')).values[id]!.median;
      const warm = metric(firstLoadMetric('fast', 'warm', 'kb')).values[id]!.median;
      expect({ id, cold: cold > 1000, warmUnder: warm < cold / 10 }).toEqual({ id, cold: true, warmUnder: true });
    }
  });

  test('ratios are taken against direct Bokeh and NGINX -> Bokeh', () => {
    const m = results.metrics.find((candidate) => candidate.id === 'rt.c1.p50')!;
    expect(m.ratios.direct?.vsDirect).toBe(1);
    expect(m.ratios.nginxBokeh?.vsNginxBokeh).toBe(1);
    expect(m.ratios.gateway?.vsDirect).toBeCloseTo(m.values.gateway!.median / m.values.direct!.median, 10);
    expect(results.targets.length).toBeGreaterThan(5);
    expect(results.machine.cpus).toBeGreaterThan(0);
  });

  test('the Markdown report has a table column for every path and a row for every figure', () => {
    for (const id of PATH_ORDER) expect(markdown).toContain(PATH_LABELS[id]);
    for (const m of results.metrics) expect(markdown).toContain(`| ${m.label} |`);
    expect(markdown).toContain('**Targets**');
    expect(markdown).toContain('**Stock Bokeh vs ours**');
    expect(markdown).toContain('No failures.');
  });
});
