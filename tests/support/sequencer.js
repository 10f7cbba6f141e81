// Jest's own order (failed first, then slowest first), except that the cluster projects' tests
// run after every other project's, the swarm's then Kubernetes': they are the slowest, and
// `npm test` reports the compose suites first. Jest does not run projects in the order
// jest.config.js lists them.
import TestSequencer from '@jest/test-sequencer';

const LAST = ['swarm', 'k8s'];

export default class ClustersLast extends TestSequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const rank = (test) => LAST.indexOf(test.context.config.displayName?.name ?? '') + 1;
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}
