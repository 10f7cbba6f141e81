/**
 * The single-node Kubernetes cluster of .ci/lib/k8s.sh as the chart's tests see it: kubectl and
 * helm from the cluster's own build, the Bokeh pods with the sessions Bokeh counted in each
 * (`<prefix>/_replica`, read through `kubectl exec` inside the pod).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { clusterScript, readEnvFile } from '../support/clusters.js';
import { PREFIX, REPO_ROOT } from '../support/stack.js';

const execFileAsync = promisify(execFile);

export const CHART = 'deploy/helm/bokeh-gateway-stack';
const STATE_DIR = process.env.K8S_STATE_DIR || '/tmp/stack-k8s';

/** Runs .ci/lib/k8s.sh with a subcommand (up, load IMAGE..., down), its log on the console. */
export const k8sScript = (command: 'up' | 'load' | 'down', ...args: string[]): Promise<void> => clusterScript('k8s.sh', command, ...args);

export interface Cluster {
  kubeconfig: string;
  /** Where kubectl and helm are. */
  bin: string;
  /** Traefik's web entry point as the host reaches it, e.g. http://127.0.0.1:31080. */
  ingress: string;
}

/** Reads what `k8s.sh up` wrote to its state folder. */
export function readCluster(): Cluster {
  const env = readEnvFile(`${STATE_DIR}/env`);
  return { kubeconfig: env.KUBECONFIG!, bin: env.K8S_BIN!, ingress: `http://127.0.0.1:${env.K8S_TRAEFIK_NODEPORT!}` };
}

/** One of the cluster's tools (kubectl, helm) with the cluster's kubeconfig; its stdout, trimmed. */
export async function tool(cluster: Cluster, name: 'kubectl' | 'helm', args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(`${cluster.bin}/${name}`, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout.trim();
  } catch (err) {
    const { stderr } = err as { stderr?: string };
    throw new Error(`${name} ${args.join(' ')} failed: ${stderr ?? String(err)}`, { cause: err });
  }
}

export interface Pod {
  name: string;
  /** Set once the pod is being deleted. */
  deletionTimestamp?: string;
  ready: boolean;
}

/** The release's pods of one component, as the API server lists them now. */
export async function pods(cluster: Cluster, namespace: string, release: string, component: 'bokeh' | 'gateway'): Promise<Pod[]> {
  const list = JSON.parse(
    await tool(cluster, 'kubectl', [
      '-n',
      namespace,
      'get',
      'pods',
      '-l',
      `app.kubernetes.io/instance=${release},app.kubernetes.io/component=${component}`,
      '-o',
      'json',
    ]),
  ) as {
    items: { metadata: { name: string; deletionTimestamp?: string }; status: { phase: string; conditions?: { type: string; status: string }[] } }[];
  };
  return list.items.map((item) => ({
    name: item.metadata.name,
    deletionTimestamp: item.metadata.deletionTimestamp,
    ready: item.status.phase === 'Running' && (item.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
  }));
}

/** One Bokeh pod, with what `<prefix>/_replica` says inside it. */
export interface BokehPod {
  pod: string;
  state: string;
  sessions: number;
  sessionsCreated: number;
}

const REPLICA_PROBE = `import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:5006${PREFIX}/_replica', timeout=3).read().decode())`;

/** Every Bokeh pod that answers, terminating ones included. */
export async function bokehPods(cluster: Cluster, namespace: string, release: string): Promise<BokehPod[]> {
  const found = await Promise.all(
    (await pods(cluster, namespace, release, 'bokeh')).map(async ({ name }): Promise<BokehPod | undefined> => {
      try {
        const status = JSON.parse(await tool(cluster, 'kubectl', ['-n', namespace, 'exec', name, '--', 'python3', '-c', REPLICA_PROBE], 15_000)) as {
          state: string;
          sessions: number;
          sessionsCreated: number;
        };
        return { pod: name, ...status };
      } catch {
        return undefined; // starting, or gone between the listing and the probe
      }
    }),
  );
  return found.filter((pod): pod is BokehPod => pod !== undefined);
}

/** Sessions Bokeh made between two readings, per pod (a pod new since `before` counts from 0). */
export function sessionsMade(before: BokehPod[], after: BokehPod[]): Map<string, number> {
  const made = new Map<string, number>();
  for (const pod of after) {
    const earlier = before.find((b) => b.pod === pod.pod)?.sessionsCreated ?? 0;
    if (pod.sessionsCreated > earlier) made.set(pod.pod, pod.sessionsCreated - earlier);
  }
  return made;
}

export const total = (made: Map<string, number>): number => [...made.values()].reduce((a, b) => a + b, 0);
