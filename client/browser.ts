/**
 * A real browser for the integration tests and the bench: Debian's Chromium driven by
 * playwright-core, and page loads that a change of the machine's network does not spoil.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** The Chromium (or Chrome) executable; Debian's `chromium` package installs /usr/bin/chromium. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Why no browser can run here, or undefined when one can. */
export function missingBrowser(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  return (
    `no Chromium at ${CHROMIUM_PATH} (CHROMIUM_PATH). Install Debian's package with ` +
    '`apt-get install chromium` (bash .ci/run does this), or set CHROMIUM_PATH to a Chromium or Chrome executable.'
  );
}

/** Base64 SHA-256 of a certificate's public key (SPKI), the form Chromium's pinning flag takes. */
export function spkiSha256(pem: Buffer): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * Starts headless Chromium. `trust` is a certificate this browser instance (and only it) accepts
 * although no CA vouches for it: Chromium skips verification for exactly that key, while every
 * other certificate error still fails the page.
 */
export async function launchChromium(options: { trust?: Buffer } = {}): Promise<Browser> {
  const problem = missingBrowser();
  if (problem) throw new Error(problem);
  const args = options.trust ? [`--ignore-certificate-errors-spki-list=${spkiSha256(options.trust)}`] : [];
  return chromium.launch({ executablePath: CHROMIUM_PATH, args });
}

/**
 * Everything on a page a user (or their browser's console) would see going wrong: console
 * errors, uncaught exceptions, requests that failed or got an error status. Read it at any time.
 */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? 'unknown'})`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return problems;
}

export interface LoadedPage {
  page: Page;
  /** What went wrong on the page so far, and from here on (see watchProblems). */
  problems: string[];
}

/**
 * Chromium cancels requests in flight when a network interface comes or goes, with
 * net::ERR_NETWORK_CHANGED, even for loopback. Docker adds and removes an interface whenever any
 * container on the machine starts or stops, so on a shared machine a page load can fail for a
 * reason that has nothing to do with the page. Such a load is repeated, a bounded number of times.
 */
const NETWORK_CHANGED = 'ERR_NETWORK_CHANGED';
const LOAD_ATTEMPTS = 3;

/**
 * Opens `url` in a new tab of `context` and waits for `ready`. Returns the page and its problems,
 * from a load the machine's network did not disturb. `prepare` runs on each new tab before it
 * navigates (the bench sets up network emulation there).
 */
export async function loadPage(
  context: BrowserContext,
  url: string,
  ready: (page: Page, problems: string[]) => Promise<void> = async () => {},
  prepare: (page: Page) => Promise<void> = async () => {},
): Promise<LoadedPage> {
  for (let attempt = 1; ; attempt++) {
    const page = await context.newPage();
    const problems = watchProblems(page);
    let failure: unknown;
    try {
      await prepare(page);
      await page.goto(url);
      await ready(page, problems);
    } catch (err) {
      failure = err;
    }
    const disturbed = problems.some((problem) => problem.includes(NETWORK_CHANGED)) || String(failure).includes(NETWORK_CHANGED);
    if (!disturbed || attempt === LOAD_ATTEMPTS) {
      if (failure !== undefined) throw failure;
      return { page, problems };
    }
    process.stdout.write(`[browser] ${url}: loading again, the machine's network changed during the load (${NETWORK_CHANGED})\n`);
    await page.close();
  }
}
