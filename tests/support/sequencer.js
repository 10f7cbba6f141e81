// Jest's own order (failed first, then slowest first), except that the swarm project's tests run
// after every other project's: they are the slowest, and `npm test` reports the compose suites
// first. Jest does not run projects in the order jest.config.js lists them.
import TestSequencer from '@jest/test-sequencer';

export default class SwarmLast extends TestSequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const swarm = (test) => test.context.config.displayName?.name === 'swarm';
    return [...sorted.filter((test) => !swarm(test)), ...sorted.filter(swarm)];
  }
}
