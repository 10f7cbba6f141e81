/**
 * The first load of an app page in a real browser on an emulated network: Debian's Chromium
 * (client/browser.ts) opens the `sliders` app on each path with Chromium's network emulation
 * through CDP, and the clock runs from navigation start to the app's first render. Each load is
 * cold (a new browser context, so an empty cache and no open connections) and then warm (a second
 * visit in the same context). The bytes are what Chromium counted on the wire for every HTTP
 * request of the load; the WebSocket is left out.
 */
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { launchChromium, loadPage } from '../client/browser.js';
import type { MetricSpec, Recorder } from './report.js';
import { appPageUrl } from './session.js';
import type { BenchPath, PathId } from './stack.js';

/** A network as Chromium's emulation shapes it: added latency per request, bandwidth shared by the requests. */
export interface NetworkProfile {
  id: 'fast' | 'slow';
  downloadMbps: number;
  uploadMbps: number;
  rttMs: number;
}

/** A good home or office line, and a weak mobile one; both in the project's performance goals. */
export const PROFILES: Record<NetworkProfile['id'], NetworkProfile> = {
  fast: { id: 'fast', downloadMbps: 10, uploadMbps: 5, rttMs: 40 },
  slow: { id: 'slow', downloadMbps: 1.5, uploadMbps: 0.75, rttMs: 150 },
};

export const profileLabel = (p: NetworkProfile): string => `${p.downloadMbps} Mbit/s down, ${p.uploadMbps} up, ${p.rttMs} ms RTT`;

/** The paths a browser loads the app through; stock Bokeh serves pages exactly as direct Bokeh does. */
export const FIRST_LOAD_PATHS: PathId[] = ['direct', 'gateway', 'nginxGateway', 'nginxBokeh', 'paas'];

/** The sample app with a plot and widgets. */
export const FIRST_LOAD_APP = 'sliders';

/** 1 KB = 1000 bytes, as the targets state it. */
export const KB = 1000;

/** Longest a load may take; the slow profile's uncompressed loads take about 20 s. */
const LOAD_TIMEOUT_MS = 120_000;
/** How long to wait after the first render for requests still in flight to finish. */
const SETTLE_TIMEOUT_MS = 10_000;

/**
 * The first render, evaluated in the page on every animation frame (a string: functions from
 * tsx carry helpers the page does not have). It holds once BokehJS has a document, some canvas
 * of non-zero size has been painted (BokehJS fills a plot's background, so its centre pixel is
 * no longer transparent) and a slider's handle is in the DOM. BokehJS renders into shadow roots,
 * so they are searched too. Its value is the time since navigation start, from the page's clock.
 */
const FIRST_RENDER = `(() => {
  if (!window.Bokeh || !window.Bokeh.documents || window.Bokeh.documents.length === 0) return false;
  let painted = false;
  let widget = false;
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (!painted && el instanceof HTMLCanvasElement && el.width > 0 && el.height > 0) {
        const context = el.getContext('2d');
        if (context && context.getImageData(el.width >> 1, el.height >> 1, 1, 1).data[3] > 0) painted = true;
      }
      if (!widget && el.classList.contains('noUi-handle')) widget = true;
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return painted && widget ? performance.now() : false;
})()`;

/** One request of a load as Chromium saw it. */
export interface LoadedRequest {
  url: string;
  /** Bytes received for it (headers and encoded body); 0 for an answer from the cache. */
  bytes: number;
  fromCache: boolean;
}

export interface Load {
  /** Navigation start to first render, in ms. */
  firstRenderMs: number;
  /** Bytes on the wire for every HTTP request of the load, the WebSocket excepted. */
  bytes: number;
  requests: LoadedRequest[];
}

/** Watches a page's HTTP requests through CDP: URLs, whether the cache answered, bytes. */
class RequestLog {
  private readonly urls = new Map<string, string>();
  private readonly cached = new Set<string>();
  private readonly finished = new Map<string, number>();
  private readonly failed = new Set<string>();

  constructor(cdp: CDPSession) {
    cdp.on('Network.requestWillBeSent', (event) => {
      // Only what crosses the network: not the page's blob: and data: URLs.
      if (/^https?:/.test(event.request.url)) this.urls.set(event.requestId, event.request.url);
    });
    cdp.on('Network.requestServedFromCache', (event) => this.cached.add(event.requestId));
    cdp.on('Network.responseReceived', (event) => {
      if (event.response.fromDiskCache || event.response.fromPrefetchCache) this.cached.add(event.requestId);
    });
    cdp.on('Network.loadingFinished', (event) => this.finished.set(event.requestId, event.encodedDataLength));
    cdp.on('Network.loadingFailed', (event) => this.failed.add(event.requestId));
  }

  /** Requests sent that have neither finished nor failed. */
  inFlight(): number {
    return [...this.urls.keys()].filter((id) => !this.finished.has(id) && !this.failed.has(id)).length;
  }

  requests(): LoadedRequest[] {
    return [...this.urls].map(([id, url]) => ({ url, bytes: this.finished.get(id) ?? 0, fromCache: this.cached.has(id) }));
  }
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Opens `url` in a new tab of `context` on `profile`'s network and measures it. Emulation is
 * switched on through a CDP session of the tab before it navigates, so it covers the page itself.
 */
async function measureLoad(context: BrowserContext, url: string, profile: NetworkProfile): Promise<{ load: Load; page: Page }> {
  let log: RequestLog | undefined;
  let firstRenderMs = 0;
  const { page, problems } = await loadPage(
    context,
    url,
    async (loaded) => {
      const handle = await loaded.waitForFunction(FIRST_RENDER, undefined, { polling: 'raf', timeout: LOAD_TIMEOUT_MS });
      firstRenderMs = (await handle.jsonValue()) as number;
      const settled = Date.now() + SETTLE_TIMEOUT_MS;
      while (log!.inFlight() > 0 && Date.now() < settled) await sleep(50);
    },
    async (tab) => {
      const cdp = await tab.context().newCDPSession(tab);
      log = new RequestLog(cdp);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: profile.rttMs,
        // Bytes per second.
        downloadThroughput: (profile.downloadMbps * 1e6) / 8,
        uploadThroughput: (profile.uploadMbps * 1e6) / 8,
      });
    },
  );
  if (problems.length) {
    await page.close();
    throw new Error(`${url}: ${problems.join('; ')}`);
  }
  const requests = log!.requests();
  return { page, load: { firstRenderMs, bytes: requests.reduce((sum, r) => sum + r.bytes, 0), requests } };
}

/** A cold load in a new browser context, then a warm one in the same context. */
export async function coldAndWarm(browser: Browser, path: BenchPath, profile: NetworkProfile): Promise<{ cold: Load; warm: Load }> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  try {
    const first = await measureLoad(context, appPageUrl(path, FIRST_LOAD_APP), profile);
    // Closing the tab closes its WebSocket, as leaving the page does.
    await first.page.close();
    const second = await measureLoad(context, appPageUrl(path, FIRST_LOAD_APP), profile);
    await second.page.close();
    return { cold: first.load, warm: second.load };
  } finally {
    await context.close();
  }
}

export interface FirstLoadSettings {
  /** Cold and warm loads per path and profile. */
  loads: number;
  profiles: NetworkProfile['id'][];
}

export const firstLoadGroup = (profile: NetworkProfile): string => `First load in Chromium (${FIRST_LOAD_APP} app, ${profileLabel(profile)})`;

/** The figure ids, one place for run.ts, the targets and the smoke test. */
export const firstLoadMetric = (profile: NetworkProfile['id'], cache: 'cold' | 'warm', what: 'ms' | 'kb'): string => `firstload.${profile}.${cache}.${what}`;

/**
 * Every path's cold and warm loads on each profile, `loads` times. The paths take turns, one load
 * each, and each round starts one path later, so the machine's drift hits them alike.
 */
export async function measureFirstLoads(
  paths: Record<PathId, BenchPath>,
  settings: FirstLoadSettings,
  recorder: Recorder,
  failures: string[],
  log: (line: string) => void,
): Promise<void> {
  const browser = await launchChromium();
  try {
    for (let round = 0; round < settings.loads; round += 1) {
      for (const profileId of settings.profiles) {
        const profile = PROFILES[profileId];
        const order = FIRST_LOAD_PATHS.map((_, i) => FIRST_LOAD_PATHS[(i + round) % FIRST_LOAD_PATHS.length]!);
        for (const id of order) {
          const path = paths[id];
          try {
            const { cold, warm } = await coldAndWarm(browser, path, profile);
            log(
              `${path.label}, ${profile.id} network: first render cold ${cold.firstRenderMs.toFixed(0)} ms (${(cold.bytes / KB).toFixed(0)} KB), ` +
                `warm ${warm.firstRenderMs.toFixed(0)} ms (${(warm.bytes / KB).toFixed(1)} KB)`,
            );
            const group = firstLoadGroup(profile);
            const add = (cache: 'cold' | 'warm', what: 'ms' | 'kb', label: string, value: number) => {
              const spec: MetricSpec = { id: firstLoadMetric(profile.id, cache, what), group, label, unit: what === 'ms' ? 'ms' : 'KB', better: 'lower' };
              recorder.add(spec, id, value);
            };
            add('cold', 'ms', 'cold cache, first render', cold.firstRenderMs);
            add('warm', 'ms', 'warm cache, first render', warm.firstRenderMs);
            add('cold', 'kb', 'cold cache, transferred (no WebSocket)', cold.bytes / KB);
            add('warm', 'kb', 'warm cache, transferred (no WebSocket)', warm.bytes / KB);
          } catch (err) {
            failures.push(`${path.label}: first load, ${profile.id} network: ${(err as Error).message}`);
            log(`${path.label}: first load, ${profile.id} network FAILED: ${(err as Error).message}`);
          }
        }
      }
    }
  } finally {
    await browser.close();
  }
}
