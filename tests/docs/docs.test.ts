/**
 * The docs against the tree they describe: every relative link and every repository path they
 * name exists (anchors included), every file tree lists files that exist, the full file tree
 * lists every top-level entry and gateway module, the README's settings table lists exactly the
 * variables of .env.example, and bench/README.md is what the bench writes from its template.
 * Reads files only: no Docker.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_NOTE, RESULTS_MARKER } from '../../bench/report.js';
import { readDoc, treePaths, type Doc } from './markdown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Top-level names .gitignore keeps out of the repository, which docs may name but a clone lacks. */
const IGNORED = read('.gitignore')
  .split('\n')
  .map((line) => line.trim().replace(/\/$/, ''))
  .filter((line) => line !== '' && !line.startsWith('#'));
const ignored = (path: string) =>
  path.split('/').some((_, i, parts) => {
    const prefix = parts.slice(0, i + 1).join('/');
    return IGNORED.some((pattern) => (pattern.startsWith('*') ? prefix.endsWith(pattern.slice(1)) : prefix === pattern || parts[i] === pattern));
  });

function markdownFiles(dir = ''): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.name === '.git' || ignored(path)) return [];
    if (entry.isDirectory()) return markdownFiles(path);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}

const DOCS = markdownFiles().sort();
const parsed = new Map<string, Doc>(DOCS.map((path) => [path, readDoc(read(path))]));
const doc = (path: string) => parsed.get(path) ?? readDoc(read(path));

/** Whether `path` (from the repository root, `/` at the end for a folder, `*` as a wildcard) exists. */
function exists(path: string): boolean {
  const clean = path.replace(/\/$/, '');
  if (!clean.includes('*')) {
    if (!existsSync(join(ROOT, clean))) return false;
    return !path.endsWith('/') || statSync(join(ROOT, clean)).isDirectory();
  }
  const folder = posix.dirname(clean);
  const pattern = new RegExp(
    `^${posix
      .basename(clean)
      .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')}$`,
  );
  return existsSync(join(ROOT, folder)) && readdirSync(join(ROOT, folder)).some((name) => pattern.test(name));
}

/** A problem with a link from `from`, or undefined when it resolves (file and anchor). */
function brokenLink(from: string, link: string): string | undefined {
  if (/^[a-z][a-z+.-]*:/i.test(link)) return undefined; // https:, mailto:
  const [target = '', anchor] = link.split('#') as [string, string | undefined];
  const path = target === '' ? from : posix.normalize(posix.join(posix.dirname(from), decodeURI(target)));
  if (path.startsWith('..')) return `${link} leaves the repository`;
  if (!exists(path)) return `${link}: ${path} does not exist`;
  if (anchor === undefined || anchor === '') return undefined;
  if (!path.endsWith('.md')) return `${link}: an anchor into a file that is not Markdown`;
  return doc(path).anchors.includes(anchor) ? undefined : `${link}: ${path} has no heading with the anchor #${anchor}`;
}

const TOP_LEVEL = new Set(readdirSync(ROOT).filter((name) => name !== '.git' && !ignored(name)));

/**
 * The code spans that name a repository path: `gateway/src/config.ts`, `nginx/`, `bench/apps/push`
 * (from the root, or from the doc's own folder). Placeholders (`<app>`), globs written as
 * `*.test.ts` alone, absolute paths, URLs and paths into ignored folders are not paths here.
 */
function namedPaths(from: string, spans: string[]): string[] {
  return spans.flatMap((written) => {
    const span = written.replace(/^\.\//, '');
    if (!/^[\w.@-]+(?:\/[\w.@*-]+)*\/?$/.test(span) || !span.includes('/')) return [];
    const first = span.split('/')[0]!;
    if (TOP_LEVEL.has(first)) return ignored(span) ? [] : [span];
    const local = posix.join(posix.dirname(from), span);
    if (posix.dirname(from) !== '.' && existsSync(join(ROOT, posix.dirname(from), first)) && !ignored(local)) return [local];
    return [];
  });
}

/** File trees: fenced blocks whose first line is `.`. */
const trees = (d: Doc) => d.fences.filter((fence) => fence.info === '' && fence.content.startsWith('.\n'));

describe('the docs', () => {
  test('include every Markdown file the project keeps', () => {
    for (const path of ['README.md', 'bench/README.md', 'tests/README.md', 'nginx/tls/README.md', '.ci/images/README.md']) expect(DOCS).toContain(path);
    expect(DOCS.filter((path) => path.startsWith('docs/')).length).toBeGreaterThanOrEqual(4);
  });

  test.each(DOCS)('%s: every relative link resolves, anchors included', (path) => {
    const broken = doc(path)
      .links.map((link) => brokenLink(path, link))
      .filter((problem) => problem !== undefined);
    expect(broken).toEqual([]);
  });

  test.each(DOCS)('%s: every repository path in backticks exists', (path) => {
    const missing = namedPaths(path, doc(path).codeSpans).filter((named) => !exists(named));
    expect(missing).toEqual([]);
  });

  test.each(DOCS)('%s: every entry of its file trees exists', (path) => {
    const missing = trees(doc(path)).flatMap((tree) => treePaths(tree.content).filter((entry) => !exists(entry)));
    expect(missing).toEqual([]);
  });
});

describe('the file tree in docs/how-it-works.md', () => {
  const tree = trees(doc('docs/how-it-works.md')).find((fence) => fence.heading === 'File tree');
  const listed = new Set(treePaths(tree?.content ?? '').map((entry) => entry.replace(/\/$/, '')));

  test('lists every top-level file and folder', () => {
    expect(tree).toBeDefined();
    const top = new Set([...listed].map((entry) => entry.split('/')[0]!));
    expect([...TOP_LEVEL].filter((name) => !top.has(name))).toEqual([]);
  });

  test("lists every one of the gateway's modules and the launcher's Python files", () => {
    const modules = [
      ...readdirSync(join(ROOT, 'gateway/src'))
        .filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'))
        .map((name) => `gateway/src/${name}`),
      ...readdirSync(join(ROOT, 'bokeh'))
        .filter((name) => name.endsWith('.py'))
        .map((name) => `bokeh/${name}`),
    ];
    expect(modules.filter((module) => !listed.has(module))).toEqual([]);
  });
});

describe("the README's tables", () => {
  const readme = doc('README.md');

  test('the settings table lists exactly the variables of .env.example, once each', () => {
    const documented = read('.env.example')
      .split('\n')
      .flatMap((line) => /^(?:# ?)?([A-Z][A-Z0-9_]*)=/.exec(line)?.[1] ?? []);
    const table = readme.tables.find((candidate) => candidate.heading === 'Settings');
    expect(table?.header[0]).toBe('Variable');
    const listed = (table?.rows ?? []).map((row) => /^`([A-Z][A-Z0-9_]*)`$/.exec(row[0] ?? '')?.[1] ?? `(not a variable: ${row[0]})`);
    expect(new Set(documented).size).toBe(documented.length);
    expect([...listed].sort()).toEqual([...documented].sort());
  });

  test('the error codes table names each code once, in backticks', () => {
    const table = readme.tables.find((candidate) => candidate.heading.includes('Error codes'));
    const codes = (table?.rows ?? []).map((row) => /^`([A-Z][A-Z_]*)`$/.exec(row[0] ?? '')?.[1]);
    expect(codes.length).toBeGreaterThan(10);
    expect(codes.filter((code) => code === undefined)).toEqual([]);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe('bench/README.md', () => {
  test('is what the bench writes: the template, then a full run', () => {
    const template = read('bench/README.template.md');
    const page = read('bench/README.md');
    const [before, after = ''] = template.split(RESULTS_MARKER) as [string, string | undefined];
    expect(page.startsWith(`${GENERATED_NOTE}\n\n${before}`)).toBe(true);
    expect(page.endsWith(after)).toBe(true);
    expect(page.slice(GENERATED_NOTE.length + 2 + before.length)).toMatch(/^Run \S+ \(full, \d+ repetitions/);
  });
});
