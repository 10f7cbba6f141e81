// Six projects: gateway unit tests (beside the code), the docs checks (files only), the Helm
// chart rendered with helm (no cluster), integration tests that drive the real stack in Docker,
// the swarm tests that deploy deploy/swarm/ to a three-node swarm, and the Kubernetes tests that
// install deploy/helm/ on a real cluster. Only the integration project builds images (its
// globalSetup runs only when one of its tests is selected); the swarm and Kubernetes tests bring
// up their cluster themselves, and run last (tests/support/sequencer.js). All are ESM TypeScript;
// `npm run typecheck` does the type checking, so ts-jest only transpiles.
const typescript = (tsconfig) => ({
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig }] },
  testEnvironment: 'node',
});

/** @type {import('jest').Config} */
export default {
  // Two cores: the integration suite runs one stack at a time.
  maxWorkers: 1,
  testSequencer: '<rootDir>/tests/support/sequencer.js',
  // JUnit XML for CI (test-results/ is uploaded as an artifact), beside the usual console report.
  reporters: [
    'default',
    [
      'jest-junit',
      {
        outputDirectory: 'test-results',
        outputName: 'junit.xml',
        suiteNameTemplate: '{filepath}',
        classNameTemplate: '{classname}',
        titleTemplate: '{title}',
        addFileAttribute: 'true',
      },
    ],
  ],
  projects: [
    {
      displayName: 'unit',
      ...typescript('<rootDir>/gateway/tsconfig.json'),
      testMatch: ['<rootDir>/gateway/src/**/*.test.ts'],
    },
    {
      displayName: 'docs',
      ...typescript('<rootDir>/tests/tsconfig.json'),
      testMatch: ['<rootDir>/tests/docs/**/*.test.ts'],
    },
    {
      displayName: 'integration',
      ...typescript('<rootDir>/tests/tsconfig.json'),
      testMatch: ['<rootDir>/tests/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/tests/support/global-setup.ts',
      slowTestThreshold: 60,
    },
    {
      displayName: 'chart',
      ...typescript('<rootDir>/tests/tsconfig.json'),
      testMatch: ['<rootDir>/tests/chart/**/*.test.ts'],
    },
    {
      displayName: 'swarm',
      ...typescript('<rootDir>/tests/tsconfig.json'),
      testMatch: ['<rootDir>/tests/swarm/**/*.test.ts'],
      slowTestThreshold: 300,
    },
    {
      displayName: 'k8s',
      ...typescript('<rootDir>/tests/tsconfig.json'),
      testMatch: ['<rootDir>/tests/k8s/**/*.test.ts'],
      slowTestThreshold: 300,
    },
  ],
};
