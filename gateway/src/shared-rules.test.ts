/**
 * The gateway against the cases in tests/rules/cases.json, which the launcher and NGINX's
 * entrypoint are checked against too, so that the three programs read the same settings the
 * same way.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from './config.js';

interface Case {
  env: Record<string, string | null>;
  expect?: unknown;
  refused?: string;
  programs?: string[];
}
interface Rule {
  programs: string[];
  cases: Case[];
}

const table = JSON.parse(readFileSync(new URL('../../tests/rules/cases.json', import.meta.url), 'utf8')) as { rules: Record<string, Rule> };
const KEY = 'gateway-test-key_0123456789abcdefghijklmnop';

/** What the gateway makes of each rule's setting. */
const results: Record<string, (config: Config) => unknown> = {
  prefix: (config) => config.bokehPrefix,
  secretKey: (config) => config.secretKey.toString('utf8'),
  publicOrigins: (config) => config.publicOrigins.map((origin) => origin.origin),
};

const casesFor = (name: string) =>
  table.rules[name]!.cases.filter((entry) => (entry.programs ?? table.rules[name]!.programs).includes('gateway')).map(
    (entry) => [JSON.stringify(entry.env), entry] as const,
  );

test('the table has the rules this test knows, and each applies to the gateway', () => {
  expect(Object.keys(table.rules).sort()).toEqual(Object.keys(results).sort());
  for (const rule of Object.values(table.rules)) expect(rule.programs).toContain('gateway');
});

describe.each(Object.keys(results))('%s', (name) => {
  test.each(casesFor(name))('%s', (_label, entry) => {
    expect(Object.hasOwn(entry, 'expect') !== Object.hasOwn(entry, 'refused')).toBe(true);
    const env: Record<string, string> = { BOKEH_SECRET_KEY: KEY };
    for (const [variable, value] of Object.entries(entry.env)) {
      if (value === null) delete env[variable];
      else env[variable] = value;
    }
    if (entry.refused !== undefined) {
      expect(() => loadConfig(env)).toThrow(ConfigError);
    } else {
      expect(results[name]!(loadConfig(env))).toEqual(entry.expect);
    }
  });
});
