// Ruff on every Python file in the repository, in the lint container (tools/lint/container.mjs).
// `node tools/lint/python.mjs` checks (lint + format check); `--fix` applies Ruff's safe fixes and
// formats in place.
import { buildLintImage, docker, lintRun } from './container.mjs';

const name = 'lint:python';
const fix = process.argv.includes('--fix');
buildLintImage(name);
if (fix) {
  docker(lintRun(['ruff', 'check', '--fix', '.'], { write: true }), 'ruff check --fix', { name });
  docker(lintRun(['ruff', 'format', '.'], { write: true }), 'ruff format', { name });
} else {
  const hint = '`npm run format` applies the formatting and the safe fixes';
  docker(lintRun(['ruff', 'check', '--output-format', 'concise', '.']), 'ruff check', { hint, name });
  docker(lintRun(['ruff', 'format', '--check', '--output-format', 'concise', '.']), 'ruff format --check', { hint, name });
}
