/**
 * README.md's error table against the codes the gateway answers with. The table lives under a
 * heading that says "Error codes"; each row's first cell names one code in backticks. Until the
 * README has that section the test is skipped; once it has one, any code missing from it, or
 * listed but unknown, fails.
 */
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from './errors.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The codes in the first column of the table(s) under the "Error codes" heading. */
function documentedCodes(markdown: string): string[] | undefined {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => /^#{1,6}\s.*error codes/i.test(line));
  if (start === -1) return undefined;
  const section: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^#{1,6}\s/.test(line)) break;
    section.push(line);
  }
  return section.flatMap((line) => {
    const first = /^\s*\|([^|]*)\|/.exec(line)?.[1];
    const code = first === undefined ? undefined : /`([A-Z][A-Z0-9_]*)`/.exec(first)?.[1];
    return code === undefined ? [] : [code];
  });
}

test('the reader finds codes in the first column only, and stops at the next heading', () => {
  const sample = [
    '## Error codes',
    '| Code | Status | Meaning |',
    '| --- | --- | --- |',
    '| `NOT_FOUND` | 404 | no such route |',
    '| `BAD_PATH` | 400 | see `BAD_REQUEST` |',
    '## Next',
    '| `INTERNAL` | 500 | |',
  ].join('\n');
  expect(documentedCodes(sample)).toEqual(['NOT_FOUND', 'BAD_PATH']);
  expect(documentedCodes('# Title\nno table here')).toBeUndefined();
});

const documented = documentedCodes(README);

(documented === undefined ? test.skip : test)("README.md's error table lists exactly the gateway's error codes, once each", () => {
  expect([...documented!].sort()).toEqual([...ERROR_CODES].sort());
});
