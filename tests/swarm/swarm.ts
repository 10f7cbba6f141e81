/**
 * The three-node swarm of .ci/lib/swarm.sh as the swarm tests see it: each node's engine, the
 * published gateway port on each node, and the Bokeh tasks with the sessions Bokeh counted in
 * each (`<prefix>/_replica`, read through `docker exec` on the task's own node).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { clusterScript, readEnvFile } from '../support/clusters.js';
import { PREFIX, REPO_ROOT } from '../support/stack.js';

const execFileAsync = promisify(execFile);

/** The stack's name in `docker stack deploy`; its services are <STACK>_bokeh and <STACK>_gateway. */
export const STACK = 'bokeh-stack';
export const STACK_FILE = 'deploy/swarm/stack.yml';
const STATE_DIR = process.env.SWARM_STATE_DIR || `/tmp/${process.env.SWARM_NAME || 'stack-swarm'}`;

/** Runs .ci/lib/swarm.sh with a subcommand (images, up, push, down), its log on the console. */
export const swarmScript = (command: 'up' | 'push' | 'down'): Promise<void> => clusterScript('swarm.sh', command);

export interface SwarmNode {
  /** 1, 2, 3: node1 is the manager. */
  index: number;
  /** The node's container on the host, e.g. stack-swarm-node2. */
  container: string;
  /** The node's host name, as `docker node ls` and `docker service ps` show it. */
  hostname: string;
  socket: string;
  /** The node's published gateway port as the host reaches it, e.g. http://127.0.0.1:32770. */
  gateway: string;
}

export interface Swarm {
  nodes: SwarmNode[];
  /** Where the nodes pull images from, e.g. stack-swarm-registry:5000. */
  registry: string;
  /** Where the host pushes them, e.g. 127.0.0.1:32768. */
  registryPush: string;
}

/** Reads what `swarm.sh up` wrote to its state folder. */
export function readSwarm(): Swarm {
  const env = readEnvFile(`${STATE_DIR}/env`);
  const nodes = Array.from({ length: Number(env.SWARM_NODES) }, (_, i) => ({
    index: i + 1,
    container: env[`SWARM_NODE${i + 1}`]!,
    hostname: `node${i + 1}`,
    socket: env[`SWARM_NODE${i + 1}_SOCKET`]!,
    gateway: `http://${env[`SWARM_NODE${i + 1}_GATEWAY`]!}`,
  }));
  return { nodes, registry: env.SWARM_REGISTRY!, registryPush: env.SWARM_REGISTRY_PUSH! };
}

/** The host's docker CLI against one node's engine. */
export async function docker(node: SwarmNode, args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<string> {
  const { stdout } = await execFileAsync('docker', args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env, DOCKER_HOST: `unix://${node.socket}` },
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim();
}

/** The host's own engine (the one the node containers run on). */
export async function hostDocker(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('docker', args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** Host names of the nodes that run a task of the service now, one entry per running task. */
export async function runningOn(manager: SwarmNode, service: 'bokeh' | 'gateway'): Promise<string[]> {
  const out = await docker(manager, ['service', 'ps', `${STACK}_${service}`, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}']);
  return out
    .split('\n')
    .filter((line) => / Running /.test(` ${line} `))
    .map((line) => line.split(' ')[0]!);
}

/** One Bokeh task, with what `<prefix>/_replica` says inside it. */
export interface BokehTask {
  node: string;
  container: string;
  state: string;
  sessions: number;
  sessionsCreated: number;
}

const REPLICA_PROBE = `import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:5006${PREFIX}/_replica', timeout=3).read().decode())`;

/** Every running Bokeh task on the given nodes (a node whose engine is gone has none). */
export async function bokehTasks(nodes: SwarmNode[]): Promise<BokehTask[]> {
  const perNode = await Promise.all(
    nodes.map(async (node) => {
      let ids: string[];
      try {
        ids = (await docker(node, ['ps', '--filter', `label=com.docker.swarm.service.name=${STACK}_bokeh`, '--format', '{{.ID}}'], { timeoutMs: 10_000 }))
          .split('\n')
          .filter(Boolean);
      } catch {
        return [];
      }
      const tasks = await Promise.all(
        ids.map(async (container): Promise<BokehTask | undefined> => {
          try {
            const replica = JSON.parse(await docker(node, ['exec', container, 'python3', '-c', REPLICA_PROBE], { timeoutMs: 10_000 })) as {
              state: string;
              sessions: number;
              sessionsCreated: number;
            };
            return { node: node.hostname, container, ...replica };
          } catch {
            return undefined; // starting, or stopped between the listing and the probe
          }
        }),
      );
      return tasks.filter((task): task is BokehTask => task !== undefined);
    }),
  );
  return perNode.flat();
}

/** Sessions Bokeh made between two readings, per task container (a task new since `before` counts from 0). */
export function sessionsMade(before: BokehTask[], after: BokehTask[]): Map<BokehTask, number> {
  const made = new Map<BokehTask, number>();
  for (const task of after) {
    const earlier = before.find((b) => b.container === task.container)?.sessionsCreated ?? 0;
    if (task.sessionsCreated > earlier) made.set(task, task.sessionsCreated - earlier);
  }
  return made;
}

/** A gateway's /readyz, or undefined when nothing answers on that node's port. */
export async function readiness(gateway: string): Promise<{ status: string; replicas: { url: string; state: string }[] } | undefined> {
  try {
    const res = await fetch(`${gateway}/readyz`, { signal: AbortSignal.timeout(3_000) });
    return (await res.json()) as { status: string; replicas: { url: string; state: string }[] };
  } catch {
    return undefined;
  }
}
