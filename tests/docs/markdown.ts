/**
 * What the docs checks read from a Markdown file: its links, its inline code, its headings (as
 * GitHub's anchors), its tables under a heading and its file trees. markdown-it does the parsing,
 * so a link inside a code block is never taken for a link.
 */
import GithubSlugger from 'github-slugger';
import markdownIt, { type Token } from 'markdown-it';

const parser = markdownIt();

export interface Doc {
  /** Relative links and image sources, as written. */
  links: string[];
  /** The text of every inline code span. */
  codeSpans: string[];
  /** GitHub's anchor for every heading, in order (`#file-tree`, without the `#`). */
  anchors: string[];
  /** Every table, with the heading it sits under and its body rows' cells as written. */
  tables: Array<{ heading: string; header: string[]; rows: string[][] }>;
  /** Fenced code blocks: info string and content. */
  fences: Array<{ heading: string; info: string; content: string }>;
}

function plainText(inline: Token): string {
  return (inline.children ?? [])
    .filter((child) => child.type === 'text' || child.type === 'code_inline')
    .map((child) => child.content)
    .join('');
}

export function readDoc(markdown: string): Doc {
  const doc: Doc = { links: [], codeSpans: [], anchors: [], tables: [], fences: [] };
  const slugger = new GithubSlugger();
  const tokens = parser.parse(markdown, {});
  let heading = '';
  let table: Doc['tables'][number] | undefined;
  let row: string[] | undefined;
  let inHeading = false;
  for (const token of tokens) {
    switch (token.type) {
      case 'heading_open':
        inHeading = true;
        break;
      case 'heading_close':
        inHeading = false;
        break;
      case 'table_open':
        table = { heading, header: [], rows: [] };
        doc.tables.push(table);
        break;
      case 'table_close':
        table = undefined;
        break;
      case 'tr_open':
        row = [];
        break;
      case 'tr_close':
        if (table && row) {
          if (table.header.length === 0) table.header = row;
          else table.rows.push(row);
        }
        row = undefined;
        break;
      case 'fence':
        doc.fences.push({ heading, info: token.info.trim(), content: token.content });
        break;
      case 'inline':
        if (inHeading) {
          heading = plainText(token);
          doc.anchors.push(slugger.slug(heading));
        }
        if (row) row.push(token.content.trim());
        for (const child of token.children ?? []) {
          if (child.type === 'link_open') doc.links.push(String(child.attrGet('href') ?? ''));
          if (child.type === 'image') doc.links.push(String(child.attrGet('src') ?? ''));
          if (child.type === 'code_inline') doc.codeSpans.push(child.content);
        }
        break;
    }
  }
  return doc;
}

/**
 * The paths a file tree names, as drawn in the docs:
 *
 *   .
 *   ├── docker-compose.yml          # comment
 *   ├── .nvmrc, .editorconfig       # several entries on one line
 *   ├── gateway/
 *   │   └── src/
 *   │       ├── main.ts
 *   │       └── *.test.ts           # a glob: at least one match
 *   └── bokeh/apps/{sliders,stream}/main.py
 *
 * Returns each entry's path from the tree's root, folders with a trailing `/`.
 */
export function treePaths(tree: string): string[] {
  const paths: string[] = [];
  const parents: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^((?:│ {3}| {4})*)(?:├── |└── )(.*)$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    const names = match[2]!.replace(/\s+#.*$/, '').trim();
    parents.length = depth;
    const prefix = parents.join('');
    for (const name of names.split(/,\s+/)) {
      for (const expanded of expandBraces(name)) paths.push(prefix + expanded);
    }
    if (names.endsWith('/') && !names.includes(',')) parents[depth] = names;
  }
  return paths;
}

function expandBraces(name: string): string[] {
  const match = /^(.*)\{([^}]*)\}(.*)$/.exec(name);
  if (!match) return [name];
  return match[2]!.split(',').flatMap((part) => expandBraces(`${match[1]}${part}${match[3]}`));
}
