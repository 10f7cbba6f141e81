// The Helm chart under deploy/helm: `helm lint --strict`, then every object it renders, with its
// defaults and with every option on (ci/*-values.yaml), validated by kubeconform against the
// Kubernetes API's own JSON schemas, offline. helm, kubeconform and the schemas come from the
// Kubernetes build of .ci/lib/k8s.sh (built once, then cached: `bash .ci/lib/k8s.sh build`).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { root } from './container.mjs';

const name = 'lint:helm';
const chartsDir = join(root, 'deploy/helm');

function run(command, args, what, { input, quiet = false } = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (result.error || result.status !== 0) {
    process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`);
    console.error(`${name}: ${what} failed${result.error ? ` (${result.error.message})` : ''}`);
    process.exit(result.status || 1);
  }
  if (!quiet) process.stdout.write(result.stdout);
  return result.stdout;
}

// Where the build keeps the tools: K8S_BIN and K8S_SCHEMAS, as `k8s.sh paths` prints them.
run('bash', ['.ci/lib/k8s.sh', 'build'], 'building helm and kubeconform (bash .ci/lib/k8s.sh build)', { quiet: true });
run('bash', ['.ci/lib/k8s.sh', 'schemas'], 'making the Kubernetes schemas (bash .ci/lib/k8s.sh schemas)', { quiet: true });
const paths = Object.fromEntries(
  run('bash', ['.ci/lib/k8s.sh', 'paths'], 'reading the build paths', { quiet: true })
    .trim()
    .split('\n')
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
);
const helm = join(paths.K8S_BIN, 'helm');
const kubeconform = join(paths.K8S_BIN, 'kubeconform');
if (!existsSync(helm) || !existsSync(kubeconform) || !existsSync(paths.K8S_SCHEMAS)) {
  console.error(`${name}: helm, kubeconform or the schemas are missing from ${paths.K8S_BIN}; run bash .ci/lib/k8s.sh build schemas`);
  process.exit(1);
}

const charts = readdirSync(chartsDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(chartsDir, entry.name, 'Chart.yaml')))
  .map((entry) => join(chartsDir, entry.name));
if (charts.length === 0) {
  console.error(`${name}: no chart under ${relative(root, chartsDir)}`);
  process.exit(1);
}

let renders = 0;
for (const chart of charts) {
  const ciDir = join(chart, 'ci');
  const valueFiles = existsSync(ciDir) ? readdirSync(ciDir).filter((file) => file.endsWith('-values.yaml')) : [];
  const variants = [[], ...valueFiles.map((file) => ['--values', join(ciDir, file)])];
  for (const values of variants) {
    const label = `${relative(root, chart)}${values.length ? ` with ${relative(chart, values[1])}` : ''}`;
    run(helm, ['lint', '--strict', '--kube-version', paths.K8S_VERSION, chart, ...values], `helm lint ${label}`, { quiet: true });
    const manifests = run(helm, ['template', 'lint', chart, '--namespace', 'lint', '--kube-version', paths.K8S_VERSION, ...values], `helm template ${label}`, {
      quiet: true,
    });
    run(
      kubeconform,
      ['-strict', '-summary', '-schema-location', join(paths.K8S_SCHEMAS, '{{ .ResourceKind }}{{ .KindSuffix }}.json'), '-'],
      `kubeconform on ${label}`,
      { input: manifests },
    );
    renders += 1;
  }
}
console.log(`${name}: ${charts.length} chart(s), ${renders} value set(s): helm lint and kubeconform clean`);
