// ShellCheck on every shell script in the repository, in the lint container
// (tools/lint/container.mjs). Scripts are the files named *.sh or starting with a sh/bash #! line,
// plus the base-image recipes' check and probe snippets, which .ci/lib/base-images.sh runs with
// `sh -ec`. Options shared with editors are in .shellcheckrc.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildLintImage, docker, lintRun, root } from './container.mjs';

const name = 'lint:shell';
const skip = new Set(['.git', 'node_modules', 'dist', 'test-results']);

function* files(folder) {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

const scripts = [];
const snippets = [];
for (const path of files(root)) {
  const file = relative(root, path);
  if (/^\.ci\/images\/[^/]+\/(check|probe)$/.test(file)) snippets.push(file);
  else if (file.endsWith('.sh') || /^#!\s*\S*\/(env\s+)?(ba)?sh\b/.test(readFileSync(path, 'utf8').slice(0, 100))) scripts.push(file);
}
if (scripts.length === 0) {
  console.error(`${name}: found no shell scripts under ${root}`);
  process.exit(1);
}

buildLintImage(name);
docker(lintRun(['shellcheck', ...scripts]), `shellcheck on ${scripts.length} scripts`, { name });
if (snippets.length > 0) docker(lintRun(['shellcheck', '--shell=sh', ...snippets]), `shellcheck on ${snippets.length} recipe snippets`, { name });
console.log(`${name}: ${scripts.length} scripts and ${snippets.length} recipe snippets pass ShellCheck`);
