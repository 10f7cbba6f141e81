/**
 * Results: every figure as the median of its repetitions, its ratio to direct Bokeh and to
 * NGINX -> Bokeh, the targets from the project's performance goals, and the Markdown table.
 */
import { firstLoadMetric, PROFILES } from './first-load.js';
import { DISPLAY_ORDER, PATH_LABELS, type PathId } from './stack.js';
import type { Machine } from './stack.js';

export interface MetricSpec {
  id: string;
  group: string;
  label: string;
  unit: string;
  better: 'lower' | 'higher';
  /** False for a figure that is itself a ratio or a count: its cells show no ratios to other paths. */
  compare?: boolean;
}

export interface MetricResult extends MetricSpec {
  /** Per path: the value of each repetition and their median. */
  values: Partial<Record<PathId, { median: number; runs: number[] }>>;
  /** Per path: median divided by the direct-Bokeh median and by the NGINX -> Bokeh median. */
  ratios: Partial<Record<PathId, { vsDirect: number | null; vsNginxBokeh: number | null }>>;
}

export interface Target {
  name: string;
  measured: number | null;
  limit: number;
  comparison: '<' | '<=' | '>=' | '=';
  met: boolean;
}

export interface Results {
  format: 'bokeh-gateway-bench/1';
  mode: 'full' | 'smoke';
  startedAt: string;
  durationSeconds: number;
  machine: Machine;
  settings: Record<string, unknown>;
  paths: Array<{ id: PathId; label: string }>;
  metrics: MetricResult[];
  targets: Target[];
  /** Anything that did not work: failed sessions, missing messages, non-2xx answers. */
  failures: string[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Collects one value per repetition for each (metric, path). */
export class Recorder {
  private readonly specs = new Map<string, MetricSpec>();
  private readonly runs = new Map<string, Partial<Record<PathId, number[]>>>();

  add(spec: MetricSpec, path: PathId, value: number): void {
    if (!this.specs.has(spec.id)) {
      this.specs.set(spec.id, spec);
      this.runs.set(spec.id, {});
    }
    const byPath = this.runs.get(spec.id)!;
    (byPath[path] ??= []).push(value);
  }

  results(): MetricResult[] {
    return [...this.specs.values()].map((spec) => {
      const byPath = this.runs.get(spec.id)!;
      const values: MetricResult['values'] = {};
      for (const id of DISPLAY_ORDER) {
        const runs = byPath[id];
        if (runs?.length) values[id] = { median: median(runs), runs };
      }
      const ratio = (id: PathId, base: PathId) => {
        const a = values[id]?.median;
        const b = values[base]?.median;
        return a === undefined || b === undefined || b === 0 ? null : a / b;
      };
      const ratios: MetricResult['ratios'] = {};
      for (const id of DISPLAY_ORDER) if (values[id]) ratios[id] = { vsDirect: ratio(id, 'direct'), vsNginxBokeh: ratio(id, 'nginxBokeh') };
      return { ...spec, values, ratios };
    });
  }
}

function target(name: string, measured: number | null | undefined, comparison: Target['comparison'], limit: number): Target {
  const value = measured ?? null;
  const met =
    value !== null && (comparison === '<' ? value < limit : comparison === '<=' ? value <= limit : comparison === '>=' ? value >= limit : value === limit);
  return { name, measured: value, limit, comparison, met };
}

/** The goals of the bench issue, checked against this run's medians. */
export function targets(metrics: MetricResult[]): Target[] {
  const find = (id: string) => metrics.find((m) => m.id === id);
  const list: Target[] = [];
  for (const m of metrics.filter((m) => /^rt\.c\d+\.p50$/.test(m.id))) {
    list.push(target(`Gateway WebSocket round trip ${m.label}, vs direct Bokeh`, m.ratios.gateway?.vsDirect, '<=', 1.1));
    list.push(target(`Gateway WebSocket round trip ${m.label}, vs NGINX → Bokeh`, m.ratios.gateway?.vsNginxBokeh, '<=', 1.05));
  }
  for (const m of metrics.filter((m) => m.id.startsWith('push.'))) {
    list.push(target(`Gateway push ${m.label}, vs direct Bokeh`, m.ratios.gateway?.vsDirect, '>=', 0.95));
  }
  list.push(target('Gateway static JS requests/s, vs NGINX → Bokeh', find('http.static.rps')?.ratios.gateway?.vsNginxBokeh, '>=', 0.8));
  const failures = find('capacity.failures')?.values.gateway;
  list.push(target('Failed sessions of the concurrent ones through the gateway (worst repetition)', failures ? Math.max(...failures.runs) : null, '<=', 0));
  const memory = find('capacity.kibPerSession')?.values.gateway?.median;
  list.push(target('Gateway memory growth per open WebSocket (KiB)', memory, '<=', 30));

  // Replicas: every page load through the gateway makes one Bokeh session, in every repetition
  // at every replica count, so the figure is the run farthest from 1, not a median.
  const sessions = metrics
    .flatMap((m) => {
      const count = /^replicas\.sessions\.r(\d+)$/.exec(m.id)?.[1];
      return count ? [{ replicas: Number(count), metric: m }] : [];
    })
    .sort((a, b) => a.replicas - b.replicas);
  const gatewayRuns = sessions.flatMap(({ metric }) => metric.values.gateway?.runs ?? []);
  const worst = gatewayRuns.length ? gatewayRuns.reduce((a, b) => (Math.abs(b - 1) > Math.abs(a - 1) ? b : a)) : null;
  const most = sessions.at(-1);
  const recipe = most?.metric.values.nginxBokeh;
  const recipeFigure = most && recipe ? `; NGINX → Bokeh (least_conn) with ${most.replicas} replicas: ${number(recipe.median)}` : '';
  list.push(target(`Bokeh sessions per page load through the gateway, worst of every replica count and repetition${recipeFigure}`, worst, '=', 1));
  list.push(target('Gateway CPU-bound interactions/s, 2 replicas vs 1', find('replicas.ips.r2vs1')?.values.gateway?.median, '>=', 1.5));
  list.push(target('Gateway WebSocket round trip 1 session, p50, 3 replicas vs 1', find('replicas.rt.r3vs1.p50')?.values.gateway?.median, '<=', 1.05));

  // First load in a browser: on the slow network, through the compressing gateway, alone or in
  // the PaaS image; and a second visit that takes nothing but the page, autoload.js and the WebSocket.
  const slowCold = find(firstLoadMetric('slow', 'cold', 'ms'));
  for (const id of ['gateway', 'paas'] as const) {
    const who = PATH_LABELS[id];
    list.push(target(`${who} cold first render on the slow network, vs direct Bokeh`, slowCold?.ratios[id]?.vsDirect, '<=', 0.5));
    list.push(target(`${who} cold first render on the slow network, vs NGINX → Bokeh`, slowCold?.ratios[id]?.vsNginxBokeh, '<=', 0.8));
  }
  for (const profile of Object.values(PROFILES)) {
    const warm = find(firstLoadMetric(profile.id, 'warm', 'kb'));
    if (!warm) continue;
    for (const id of ['gateway', 'paas'] as const)
      list.push(target(`${PATH_LABELS[id]} warm load on the ${profile.id} network, KB transferred besides the WebSocket`, warm.values[id]?.median, '<', 50));
  }
  return list;
}

function number(value: number): string {
  const abs = Math.abs(value);
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function ratio(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : `${value.toFixed(2)}×`;
}

function cell(metric: MetricResult, id: PathId): string {
  const value = metric.values[id];
  if (!value) return '–';
  const raw = `${number(value.median)} ${metric.unit}`.trim();
  const parts: string[] = [];
  const r = metric.compare === false ? undefined : metric.ratios[id];
  if (id !== 'direct' && r?.vsDirect != null) parts.push(`d ${ratio(r.vsDirect)}`);
  if (id !== 'nginxBokeh' && r?.vsNginxBokeh != null) parts.push(`n ${ratio(r.vsNginxBokeh)}`);
  return parts.length ? `${raw} (${parts.join(', ')})` : raw;
}

export function markdown(results: Results): string {
  const m = results.machine;
  const lines: string[] = [
    `Run ${results.startedAt} (${results.mode}, ${String(results.settings.reps)} repetitions, medians shown, ${Math.round(results.durationSeconds)} s) on ` +
      `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Docker ${m.docker}, Node ${m.node}; ` +
      'client and stack share the machine.',
    '',
    'Each cell: the median, then its ratio to direct Bokeh (d) and to NGINX → Bokeh (n). Lower is better for ms, higher for rates.',
  ];
  const paths = DISPLAY_ORDER.filter((id) => results.metrics.some((metric) => metric.values[id]));
  for (const group of [...new Set(results.metrics.map((metric) => metric.group))]) {
    const rows = results.metrics.filter((metric) => metric.group === group);
    const columns = paths.filter((id) => rows.some((metric) => metric.values[id]));
    lines.push('', `**${group}**`, '', `| | ${columns.map((id) => PATH_LABELS[id]).join(' | ')} |`, `|---|${columns.map(() => '---:').join('|')}|`);
    for (const metric of rows) lines.push(`| ${metric.label} | ${columns.map((id) => cell(metric, id)).join(' | ')} |`);
  }
  lines.push('', '**Targets** (gateway)', '', '| Target | Measured | Goal | Met |', '|---|---:|---:|:---:|');
  for (const t of results.targets)
    lines.push(`| ${t.name} | ${t.measured === null ? '–' : number(t.measured)} | ${t.comparison} ${t.limit} | ${t.met ? 'yes' : 'no'} |`);
  lines.push('', stockTable(results));
  lines.push(
    '',
    results.failures.length ? `**Failures** (${results.failures.length}):\n\n${results.failures.map((f) => `- ${f}`).join('\n')}` : 'No failures.',
  );
  return `${lines.join('\n')}\n`;
}

/** Stock Bokeh (no-delay off) against ours, for the figures where Nagle's algorithm shows. */
export function stockTable(results: Results): string {
  const rows: Array<[string, string]> = [
    ['Small message: ping round trip p50, 1 session', 'rt.c1.p50'],
    ['Small message: ping round trip p50, 10 sessions', 'rt.c10.p50'],
    ['Large message: 1 MiB buffers pushed, 1 session', 'push.large.n1'],
    ['Push rate per session: small updates, 1 session', 'push.small.n1'],
  ];
  const lines = [
    '**Stock Bokeh vs ours** (same image; stock = BOKEH_NODELAY=false)',
    '',
    '| | Stock Bokeh | Ours, direct | Ours, through the gateway |',
    '|---|---:|---:|---:|',
  ];
  for (const [label, id] of rows) {
    const metric = results.metrics.find((candidate) => candidate.id === id);
    if (!metric) continue;
    const show = (path: PathId) => (metric.values[path] ? `${number(metric.values[path].median)} ${metric.unit}` : '–');
    lines.push(`| ${label} | ${show('stock')} | ${show('direct')} | ${show('gateway')} |`);
  }
  return lines.join('\n');
}

/** The line in bench/README.template.md that a run's tables replace. */
export const RESULTS_MARKER = '<!-- results -->';
/** The first line of bench/README.md, so nobody edits the generated page by hand. */
export const GENERATED_NOTE = '<!-- Written by `npm run bench` (bench/run.ts) from bench/README.template.md: edit the template. -->';

/** bench/README.md: the template's fixed text (what is measured and how), then this run's tables. */
export function readme(template: string, results: Results): string {
  if (!template.includes(RESULTS_MARKER)) throw new Error(`the bench README template has no ${RESULTS_MARKER} line for the results`);
  return `${GENERATED_NOTE}\n\n${template.replace(RESULTS_MARKER, markdown(results).trimEnd())}`;
}
