/** The HTML shell shared by every page the gateway renders, and the one escaping helper. */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

const STYLE = `
  :root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #1f6feb; --bg: #ffffff; --card: #f6f8fb; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #9aa3b2; --line: #2f3542; --accent: #58a6ff; --bg: #0f1218; --card: #171b23; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: center; gap: 1rem; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line); }
  header a.home { font-weight: 600; color: var(--fg); text-decoration: none; }
  header nav { display: flex; gap: 1rem; flex-wrap: wrap; }
  header nav a { color: var(--muted); text-decoration: none; }
  header nav a[aria-current="page"] { color: var(--accent); font-weight: 600; }
  main { max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
  h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
  .muted { color: var(--muted); }
  ul.apps { list-style: none; padding: 0; display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); }
  ul.apps li a { display: flex; flex-direction: column; gap: .25rem; padding: 1rem; border: 1px solid var(--line); border-radius: 8px; background: var(--card); color: var(--fg); text-decoration: none; }
  ul.apps li a:hover { border-color: var(--accent); }
  ul.apps code { color: var(--muted); }
  .error { padding: .75rem 1rem; border-left: 4px solid #d73a49; background: var(--card); }
  .bk-embed-error { padding: .75rem 1rem; border-left: 4px solid #d73a49; background: var(--card); }
  .embed { margin: 1rem 0; padding: 1rem; border: 1px solid var(--line); border-radius: 8px; overflow-x: auto; }
  .app-head { display: flex; align-items: baseline; justify-content: space-between; gap: 1rem; flex-wrap: wrap; }
  .app-head h1 { margin: 0; }
  .connection { display: inline-flex; align-items: center; gap: .5rem; margin: 0; padding: .25rem .75rem; border: 1px solid var(--line); border-radius: 999px; font-size: .9rem; }
  .connection .dot { width: .6rem; height: .6rem; border-radius: 50%; background: var(--muted); }
  .connection[data-connection="connected"] .dot { background: #2da44e; }
  .connection[data-connection="lost"], .connection[data-connection="failed"] { border-color: #d73a49; }
  .connection[data-connection="lost"] .dot, .connection[data-connection="failed"] .dot { background: #d73a49; }
  .connection button { font: inherit; padding: .1rem .6rem; border: 1px solid var(--line); border-radius: 4px; background: var(--card); color: var(--fg); cursor: pointer; }
  .how { margin-top: 2rem; }
  .how h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
  pre { overflow-x: auto; padding: 1rem; background: var(--card); border-radius: 8px; font-size: .85rem; }
`;

export interface PageParts {
  title: string;
  body: string;
  /** Navigation entries: [href, label, current]. */
  nav?: Array<[string, string, boolean]>;
  /** Same-origin script URLs, run after the body is parsed (no inline code beyond the embed scripts). */
  scripts?: string[];
  /** Elements for the end of `<head>`, already HTML (preload hints). */
  head?: string;
}

/** A drawn icon, so browsers do not ask for /favicon.ico and log a 404 on every page. */
const ICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f6feb"/><path d="M3 12 6 7l3 3 4-6" fill="none" stroke="#fff" stroke-width="1.8"/></svg>')}`;

export function page({ title, body, nav = [], scripts = [], head = '' }: PageParts): string {
  const links = nav
    .map(([href, label, current]) => `<a href="${escapeHtml(href)}"${current ? ' aria-current="page"' : ''}>${escapeHtml(label)}</a>`)
    .join('\n      ');
  const tail = scripts.map((src) => `\n  <script src="${escapeHtml(src)}"></script>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(title)}</title>
  <link rel="icon" href="${escapeHtml(ICON)}">
  <style>${STYLE}</style>${head ? `\n  ${head}` : ''}
</head>
<body>
  <header>
    <a class="home" href="/">Bokeh apps</a>
    <nav>
      ${links}
    </nav>
  </header>
  <main>
${body}
  </main>${tail}
</body>
</html>
`;
}
