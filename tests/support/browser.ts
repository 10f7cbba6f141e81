/**
 * What the integration tests do with a real browser (launched by client/browser.ts): open an app
 * page until it says "Connected", and read back from BokehJS inside the page. Functions passed
 * to `page.evaluate` run in the browser, so they use only what they are given and what the page has.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { loadPage, type LoadedPage } from '../../client/browser.js';
import { REPO_ROOT } from './stack.js';

/** Screenshots land here; test-results/ is ignored by git. */
export const RESULTS_DIR = join(REPO_ROOT, 'test-results', 'browser');

export type AppPage = LoadedPage;

/** Opens an app page in a new tab and waits until the page itself says the app is connected. */
export function openApp(context: BrowserContext, url: string): Promise<AppPage> {
  return loadPage(context, url, async (page, problems) => {
    try {
      await page.locator('[data-connection="connected"]').waitFor({ timeout: 20_000 });
    } catch (err) {
      const state = await connectionState(page).catch(() => undefined);
      await screenshot(page, `failed-${new URL(url).pathname.replace(/\W+/g, '-')}`).catch(() => undefined);
      throw new Error(`${url} did not get to "Connected": the page shows ${JSON.stringify(state)}; problems: ${JSON.stringify(problems)}; ${String(err)}`, {
        cause: err,
      });
    }
  });
}

/** The page's connection state as shown: the data-connection value, the role and the text. */
export async function connectionState(page: Page): Promise<{ state: string | null; role: string | null; text: string }> {
  const status = page.locator('[data-connection]');
  return { state: await status.getAttribute('data-connection'), role: await status.getAttribute('role'), text: (await status.innerText()).trim() };
}

// What the tests read from BokehJS: the first document's models by name.
interface BokehModelView {
  value?: unknown;
  data?: Record<string, ArrayLike<number>>;
}
interface BokehDocument {
  get_model_by_name(name: string): BokehModelView | null;
}
type BokehWindow = { Bokeh?: { documents: BokehDocument[] } };

/** Names of the models present in the page's Bokeh document, out of `names`. */
export function modelsPresent(page: Page, names: string[]): Promise<string[]> {
  return page.evaluate((wanted) => {
    const doc = (window as unknown as BokehWindow).Bokeh?.documents[0];
    return wanted.filter((name) => doc?.get_model_by_name(name) != null);
  }, names);
}

/** A model's `value` property, as BokehJS in the page holds it. */
export function modelValue(page: Page, name: string): Promise<unknown> {
  return page.evaluate((model) => (window as unknown as BokehWindow).Bokeh?.documents[0]?.get_model_by_name(model)?.value, name);
}

/** One column of a ColumnDataSource, as BokehJS in the page holds it. */
export function column(page: Page, source: string, name: string): Promise<number[]> {
  return page.evaluate(([model, field]) => Array.from((window as unknown as BokehWindow).Bokeh?.documents[0]?.get_model_by_name(model)?.data?.[field] ?? []), [
    source,
    name,
  ] as const);
}

/** Waits until `probe(column)` holds in the page, polling BokehJS; returns the column then. */
export async function waitForColumn(
  page: Page,
  source: string,
  name: string,
  probe: (values: number[]) => boolean,
  timeoutMs: number,
  what: string,
): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let values: number[] = [];
  while (Date.now() < deadline) {
    values = await column(page, source, name);
    if (probe(values)) return values;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${source}.${name} has ${values.length} values, last ${values.at(-1)}`);
}

/**
 * How much is drawn on the page's canvases (BokehJS draws plots on canvases inside shadow roots):
 * the number of pixels that differ from each canvas's most common colour, the background.
 */
export function drawnPixels(page: Page): Promise<number> {
  return page.evaluate(() => {
    let drawn = 0;
    const visit = (root: Document | ShadowRoot): void => {
      for (const element of Array.from(root.querySelectorAll('*'))) {
        if (element instanceof HTMLCanvasElement && element.width > 0 && element.height > 0) {
          const pixels = element.getContext('2d')?.getImageData(0, 0, element.width, element.height).data;
          if (pixels) {
            const counts = new Map<number, number>();
            for (let i = 0; i < pixels.length; i += 4) {
              const rgba = ((pixels[i]! << 24) | (pixels[i + 1]! << 16) | (pixels[i + 2]! << 8) | pixels[i + 3]!) >>> 0;
              counts.set(rgba, (counts.get(rgba) ?? 0) + 1);
            }
            drawn += pixels.length / 4 - Math.max(...counts.values());
          }
        }
        if (element.shadowRoot) visit(element.shadowRoot);
      }
    };
    visit(document);
    return drawn;
  });
}

/** Saves a full-page screenshot as RESULTS_DIR/NAME.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The largest magnitude in a column: the amplitude of the sliders app's wave. */
export const peak = (values: number[]): number => Math.max(...values.map(Math.abs));

/** Moves the Amplitude slider one step right with the keyboard, as a user can. */
export async function nudgeAmplitude(page: Page): Promise<void> {
  const handle = page.locator('.bk-Slider').filter({ hasText: 'Amplitude' }).locator('.noUi-handle');
  await handle.focus();
  await handle.press('ArrowRight');
}

/** Amplitude 1.0 -> 1.1 in the page, and the server's recomputed wave comes back with peak 1.1. */
export async function sliderRoundTrip(page: Page): Promise<void> {
  expect(peak(await column(page, 'source', 'y'))).toBeCloseTo(1.0, 2);
  await nudgeAmplitude(page);
  expect(await modelValue(page, 'amplitude')).toBeCloseTo(1.1, 5);
  // The browser only changes the slider; a new wave in the data means the server's callback ran.
  await waitForColumn(page, 'source', 'y', (y) => Math.abs(peak(y) - 1.1) < 0.01, 5_000, 'the wave recomputed by the server');
}
