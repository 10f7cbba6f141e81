/**
 * The Helm chart as `helm template` renders it, no cluster: settings that depend on each other
 * follow each other, optional objects appear only when asked for, and bad values are refused at
 * install with a message that names the value. helm comes from the build of .ci/lib/k8s.sh.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../support/stack.js';

const execFileAsync = promisify(execFile);
const CHART = 'deploy/helm/bokeh-gateway-stack';

interface Manifest {
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface Container {
  name: string;
  env: { name: string; value: string }[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: unknown;
  livenessProbe: { httpGet: { path: string } };
  lifecycle?: { preStop: { sleep: { seconds: number } } };
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  containers: Container[];
  volumes: { name: string; secret?: { secretName: string } }[];
}

/** helm from the build of .ci/lib/k8s.sh (`paths` prints where it is), and the version it targets. */
function helmPath(): { helm: string; kubeVersion: string } {
  const paths = Object.fromEntries(
    execFileSync('bash', ['.ci/lib/k8s.sh', 'paths'], { cwd: REPO_ROOT, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  return { helm: `${paths.K8S_BIN}/helm`, kubeVersion: paths.K8S_VERSION! };
}
const { helm: HELM, kubeVersion: KUBE_VERSION } = helmPath();

/** The chart rendered with `--set` for each of `set`; a [name, value] pair is set literally (no comma or escape parsing). */
async function render(...set: (string | [string, string])[]): Promise<Manifest[]> {
  const values = set.flatMap((value) => (typeof value === 'string' ? ['--set', value] : ['--set-literal', `${value[0]}=${value[1]}`]));
  const args = ['template', 'rel', CHART, '--namespace', 'apps', '--kube-version', KUBE_VERSION, ...values];
  const { stdout } = await execFileAsync(HELM, args, { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

async function refusal(...set: (string | [string, string])[]): Promise<string> {
  try {
    await render(...set);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`helm template accepted ${JSON.stringify(set)}`);
}

const find = (manifests: Manifest[], kind: string, name: string): Manifest => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
};
const podSpec = (deployment: Manifest) => (deployment.spec as { template: { spec: PodSpec } }).template.spec;
const env = (container: Container) => Object.fromEntries(container.env.map((e) => [e.name, e.value]));

test('the defaults make two Deployments, the headless Service, the key, budgets and policies, and nothing optional', async () => {
  const manifests = await render();
  expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
    [
      'Deployment/rel-bokeh-gateway-stack-bokeh',
      'Deployment/rel-bokeh-gateway-stack-gateway',
      'NetworkPolicy/rel-bokeh-gateway-stack-bokeh',
      'NetworkPolicy/rel-bokeh-gateway-stack-gateway',
      'Pod/rel-bokeh-gateway-stack-test-readiness',
      'PodDisruptionBudget/rel-bokeh-gateway-stack-bokeh',
      'PodDisruptionBudget/rel-bokeh-gateway-stack-gateway',
      'Secret/rel-bokeh-gateway-stack-secret-key',
      'Service/rel-bokeh-gateway-stack-bokeh',
      'Service/rel-bokeh-gateway-stack-gateway',
      'Service/rel-bokeh-gateway-stack-gateway-metrics',
    ].sort(),
  );
  for (const m of manifests) expect(m.metadata.labels?.['app.kubernetes.io/instance']).toBe('rel');
  // A generated key long enough for Bokeh (it refuses fewer than 32 characters).
  const key = Buffer.from(find(manifests, 'Secret', 'rel-bokeh-gateway-stack-secret-key').data!['bokeh-secret-key']!, 'base64').toString();
  expect(key.length).toBeGreaterThanOrEqual(32);
  expect(find(manifests, 'Service', 'rel-bokeh-gateway-stack-bokeh').spec).toMatchObject({ clusterIP: 'None' });
  expect(find(manifests, 'Service', 'rel-bokeh-gateway-stack-gateway').spec).toMatchObject({ type: 'ClusterIP' });
});

test('the gateway finds Bokeh through the headless Service in the release namespace, and both share prefix, origins and key', async () => {
  const manifests = await render('publicOrigins={https://a.example.com,https://b.example.com}', 'bokehPrefix=/dash', 'clusterDomain=corp.internal');
  const gateway = podSpec(find(manifests, 'Deployment', 'rel-bokeh-gateway-stack-gateway'));
  const bokeh = podSpec(find(manifests, 'Deployment', 'rel-bokeh-gateway-stack-bokeh'));
  expect(env(gateway.containers[0]!).BOKEH_URL).toBe('http://rel-bokeh-gateway-stack-bokeh.apps.svc.corp.internal:5006');
  for (const spec of [gateway, bokeh]) {
    expect(env(spec.containers[0]!)).toMatchObject({
      BOKEH_PREFIX: '/dash',
      PUBLIC_ORIGINS: 'https://a.example.com,https://b.example.com',
      BOKEH_SECRET_KEY_FILE: '/run/secrets/bokeh/bokeh-secret-key',
    });
    expect(spec.volumes.find((v) => v.name === 'secret-key')?.secret?.secretName).toBe('rel-bokeh-gateway-stack-secret-key');
  }
  // Bokeh's liveness probe follows the prefix.
  expect(bokeh.containers[0]!.livenessProbe.httpGet.path).toBe('/dash/_replica');
});

test('grace periods follow the drain and the gateway shutdown they must outlast', async () => {
  const manifests = await render('bokeh.drainTimeoutSeconds=45', 'gateway.preStopSleepSeconds=3', 'gateway.shutdownTimeoutSeconds=12');
  const bokeh = podSpec(find(manifests, 'Deployment', 'rel-bokeh-gateway-stack-bokeh'));
  expect(env(bokeh.containers[0]!).BOKEH_DRAIN_TIMEOUT_S).toBe('45');
  expect(bokeh.terminationGracePeriodSeconds).toBe(50);
  const gateway = podSpec(find(manifests, 'Deployment', 'rel-bokeh-gateway-stack-gateway'));
  expect(env(gateway.containers[0]!).SHUTDOWN_TIMEOUT_MS).toBe('12000');
  expect(gateway.containers[0]!.lifecycle?.preStop.sleep.seconds).toBe(3);
  expect(gateway.terminationGracePeriodSeconds).toBe(20);
});

test('metrics stay off the public Service, on a port of their own that METRICS_PORT follows; off means off', async () => {
  const on = await render('gateway.metrics.port=9100', 'gateway.service.type=NodePort');
  const gateway = podSpec(find(on, 'Deployment', 'rel-bokeh-gateway-stack-gateway')).containers[0]!;
  expect(env(gateway).METRICS_PORT).toBe('9100');
  expect(gateway.ports).toContainEqual({ name: 'metrics', containerPort: 9100 });
  const publicPorts = (find(on, 'Service', 'rel-bokeh-gateway-stack-gateway').spec as { ports: { name: string }[] }).ports;
  expect(publicPorts.map((p) => p.name)).toEqual(['http']);
  const off = await render('gateway.metrics.enabled=false');
  expect(env(podSpec(find(off, 'Deployment', 'rel-bokeh-gateway-stack-gateway')).containers[0]!).METRICS_PORT).toBe('0');
  expect(off.some((m) => m.metadata.name === 'rel-bokeh-gateway-stack-gateway-metrics')).toBe(false);
});

test('a Secret the user manages replaces the generated one, and an explicit key rolls the pods when it changes', async () => {
  const existing = await render('secretKey.existingSecret=dash-key', 'secretKey.existingSecretKey=signing');
  expect(existing.some((m) => m.kind === 'Secret')).toBe(false);
  const bokeh = podSpec(find(existing, 'Deployment', 'rel-bokeh-gateway-stack-bokeh'));
  expect(bokeh.volumes.find((v) => v.name === 'secret-key')?.secret?.secretName).toBe('dash-key');
  expect(env(bokeh.containers[0]!).BOKEH_SECRET_KEY_FILE).toBe('/run/secrets/bokeh/signing');

  const checksum = async (key: string) =>
    (
      find(await render(`secretKey.value=${key}`), 'Deployment', 'rel-bokeh-gateway-stack-bokeh').spec as {
        template: { metadata: { annotations: Record<string, string> } };
      }
    ).template.metadata.annotations['checksum/secret-key'];
  expect(await checksum('k3Y-one-0123456789abcdefghijklmnop')).not.toBe(await checksum('k3Y-two-0123456789abcdefghijklmnop'));
});

test('the Ingress, autoscalers and a node port appear when asked for', async () => {
  const manifests = await render(
    'ingress.enabled=true',
    'ingress.className=traefik',
    'ingress.host=dash.example.com',
    'ingress.tlsSecretName=dash-tls',
    'bokeh.autoscaling.enabled=true',
    'gateway.service.type=NodePort',
    'gateway.service.nodePort=30080',
  );
  const ingress = find(manifests, 'Ingress', 'rel-bokeh-gateway-stack-gateway');
  expect(ingress.spec).toMatchObject({
    ingressClassName: 'traefik',
    tls: [{ secretName: 'dash-tls', hosts: ['dash.example.com'] }],
    rules: [{ host: 'dash.example.com', http: { paths: [{ path: '/', backend: { service: { name: 'rel-bokeh-gateway-stack-gateway' } } }] } }],
  });
  const hpa = find(manifests, 'HorizontalPodAutoscaler', 'rel-bokeh-gateway-stack-bokeh');
  expect(hpa.spec).toMatchObject({ minReplicas: 3, maxReplicas: 10 });
  // With an autoscaler, the Deployment leaves the replica count to it.
  expect(find(manifests, 'Deployment', 'rel-bokeh-gateway-stack-bokeh').spec).not.toHaveProperty('replicas');
  expect(find(manifests, 'Service', 'rel-bokeh-gateway-stack-gateway').spec).toMatchObject({ type: 'NodePort', ports: [{ nodePort: 30080 }] });
});

test('bad values are refused, naming the value', async () => {
  // helm names a value by its JSON pointer: /bokeh/replicas for bokeh.replicas.
  expect(await refusal('bokeh.replicas=0')).toMatch(/\/bokeh\/replicas': minimum/);
  expect(await refusal('secretKey.value=short')).toMatch(/secretKey\.value is too short \(5 characters, need at least 32\)/);
  expect(await refusal('publicOrigins={https://dash.example.com/apps}')).toMatch(/\/publicOrigins\/0': 'https:\/\/dash.example.com\/apps' does not match/);
  expect(await refusal('bokehPrefix=/dash/')).toMatch(/\/bokehPrefix': '\/dash\/' does not match/);
  // A setting the chart makes itself cannot be overridden by the env maps.
  expect(await refusal('gateway.env.BOKEH_URL=http://elsewhere:5006')).toMatch(/invalid propertyName 'BOKEH_URL'/);
  expect(await refusal('bokeh.env.BOKEH_DRAIN_TIMEOUT_S=5')).toMatch(/invalid propertyName 'BOKEH_DRAIN_TIMEOUT_S'/);
  expect(await refusal('gateway.service.type=External')).toMatch(/\/gateway\/service\/type': value must be one of/);
  expect(await refusal('bokeh.drainTimeout=20')).toMatch(/additional properties 'drainTimeout' not allowed/);
});

interface RuleCase {
  env: Record<string, string | null>;
  expect?: unknown;
  refused?: string;
}
const rules = (JSON.parse(readFileSync(`${REPO_ROOT}/tests/rules/cases.json`, 'utf8')) as { rules: Record<string, { cases: RuleCase[] }> }).rules;

// The chart takes the prefix as given (no blank-means-default, no trimming: a value always has
// one), so it is checked on the cases that pass a prefix with neither.
test.each(
  rules.prefix!.cases.filter((c) => typeof c.env.BOKEH_PREFIX === 'string' && c.env.BOKEH_PREFIX.trim() === c.env.BOKEH_PREFIX && c.env.BOKEH_PREFIX !== ''),
)('bokehPrefix follows the shared prefix rule: $env.BOKEH_PREFIX', async (rule) => {
  const given = rule.env.BOKEH_PREFIX!;
  if (rule.refused) expect(await refusal(['bokehPrefix', given])).toMatch(/bokehPrefix/);
  else
    expect(env(podSpec(find(await render(['bokehPrefix', given]), 'Deployment', 'rel-bokeh-gateway-stack-bokeh')).containers[0]!).BOKEH_PREFIX).toBe(
      rule.expect,
    );
});

// A blank key means "generate one" in the chart, so it is checked on the cases that give a key.
test.each(rules.secretKey!.cases.filter((c) => typeof c.env.BOKEH_SECRET_KEY === 'string' && c.env.BOKEH_SECRET_KEY.trim() !== ''))(
  'secretKey.value follows the shared key rule (case $#)',
  async (rule) => {
    const given = rule.env.BOKEH_SECRET_KEY!;
    if (rule.refused) expect(await refusal(['secretKey.value', given])).toMatch(/secretKey\.value is (too short|not random enough)/);
    else {
      const secret = find(await render(['secretKey.value', given]), 'Secret', 'rel-bokeh-gateway-stack-secret-key');
      expect(Buffer.from(secret.data!['bokeh-secret-key']!, 'base64').toString().trim()).toBe(rule.expect);
    }
  },
);
