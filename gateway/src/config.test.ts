import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig as loadConfigFrom, SETTINGS } from './config.js';

const KEY = 'gateway-test-key_0123456789abcdefghijklmnop';
// alice / wonderland, bcrypt cost 4 to keep the tests fast
const ALICE = 'alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK';

/** Every start needs the signing key; tests about other settings give it. */
function loadConfig(env: Record<string, string>) {
  return loadConfigFrom({ BOKEH_SECRET_KEY: KEY, ...env });
}

function problems(env: Record<string, string>, withKey = true): string[] {
  try {
    (withKey ? loadConfig : loadConfigFrom)(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

describe('loadConfig', () => {
  test('defaults describe the bare-dev stack', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8000);
    expect(config.bokehUrls.map((url) => url.origin)).toEqual(['http://bokeh:5006']);
    expect(config.discoveryIntervalMs).toBe(2000);
    expect(config.bokehPrefix).toBe('/bokeh');
    expect(config.apps).toEqual(['sliders', 'stream', 'ping']);
    expect(config.publicOrigins.map((origin) => origin.origin)).toEqual([
      'http://localhost:8000',
      'http://127.0.0.1:8000',
      'https://localhost:8443',
      'https://127.0.0.1:8443',
      'https://localhost:8444',
      'https://127.0.0.1:8444',
    ]);
    expect(config.trustProxy).toBe(false);
    expect(config.wsMaxMessageBytes).toBe(20 * 1024 * 1024);
    expect(config.staticCacheBytes).toBe(64 * 1024 * 1024);
  });

  test('reads and normalises every kind of value', () => {
    const config = loadConfig({
      PORT: '3000',
      BOKEH_PREFIX: '/dash/bokeh',
      BOKEH_APPS: ' a , b-2 ,c_3 ',
      PUBLIC_ORIGINS: 'https://Dash.Example.com, http://localhost:3000',
      TRUST_PROXY: 'loopback, 10.0.0.0/8',
    });
    expect(config.port).toBe(3000);
    expect(config.bokehPrefix).toBe('/dash/bokeh');
    expect(config.apps).toEqual(['a', 'b-2', 'c_3']);
    expect(config.publicOrigins.map((origin) => origin.origin)).toEqual(['https://dash.example.com', 'http://localhost:3000']);
    expect(config.trustProxy).toEqual(['loopback', '10.0.0.0/8']);
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'nginx' }).trustProxy).toEqual(['nginx']);
  });

  test.each([
    ['PORT', 'eighty', /PORT="eighty" must be a whole number\. Set PORT to a TCP port/],
    ['PORT', '70000', /PORT="70000" must be at most 65535/],
    ['BOKEH_PREFIX', 'bokeh', /BOKEH_PREFIX="bokeh" must be a path like \/bokeh.*Set BOKEH_PREFIX to a path such as BOKEH_PREFIX=\/bokeh/],
    ['BOKEH_PREFIX', '/bokeh/', /BOKEH_PREFIX="\/bokeh\/" must be a path/],
    ['BOKEH_URL', 'bokeh:5006', /BOKEH_URL="bokeh:5006" must use http or https/],
    ['BOKEH_URL', 'http://bokeh:5006/bokeh', /is not a bare origin/],
    ['BOKEH_APPS', 'sliders,../etc', /BOKEH_APPS=.*app names may use letters/],
    ['BOKEH_APPS', 'a,a', /BOKEH_APPS="a,a" lists an app twice/],
    ['BOKEH_APPS', ' , ', /must list at least one value/],
    ['PUBLIC_ORIGINS', 'localhost:8000', /PUBLIC_ORIGINS="localhost:8000" must use http or https.*PUBLIC_ORIGINS=https:\/\/dash\.example\.com/],
    ['PUBLIC_ORIGINS', 'http://example.com/app', /not a bare origin/],
    ['TRUST_PROXY', 'true', /would trust X-Forwarded-\* from any client/],
    ['TRUST_PROXY', 'nginx proxy', /"nginx proxy" is neither an IP address/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL="loud".*Set LOG_LEVEL to one of fatal/],
    ['WS_MAX_MESSAGE_BYTES', '10', /must be at least 1024/],
    ['STATIC_CACHE_BYTES', '1000', /STATIC_CACHE_BYTES="1000" must be 0 or at least 1048576\. Set STATIC_CACHE_BYTES to bytes, 0 \(off\)/],
    ['STATIC_CACHE_BYTES', '64M', /STATIC_CACHE_BYTES="64M" must be a whole number/],
  ])('%s=%j is refused with the variable and the fix', (name, value, message) => {
    const found = problems({ [name]: value });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(message);
  });

  test('an empty value means the default', () => {
    expect(loadConfig({ LOG_LEVEL: '', PORT: ' ', BOKEH_APPS: '' })).toMatchObject({ logLevel: 'info', port: 8000, apps: ['sliders', 'stream', 'ping'] });
  });

  test('every bad variable is reported at once', () => {
    const found = problems({ PORT: '-1', BOKEH_PREFIX: 'x', LOG_LEVEL: 'x' });
    expect(found.map((line) => line.split('=')[0])).toEqual(['PORT', 'BOKEH_PREFIX', 'LOG_LEVEL']);
    expect(new ConfigError(found).message).toMatch(/^Invalid gateway configuration:\n {2}- PORT=/);
  });
});

describe('secret key and authentication', () => {
  test('the signing key is required, and the message says how to make one', () => {
    const found = problems({}, false);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^BOKEH_SECRET_KEY is not set.*secrets\.token_urlsafe/);
  });

  test.each([
    ['k3y!x', /too short \(5 characters, need at least 32\)/],
    ['a'.repeat(40), /not random enough/],
  ])('a weak key is refused without being shown: %s', (key, message) => {
    const found = problems({ BOKEH_SECRET_KEY: key });
    expect(found[0]).toMatch(message);
    expect(found[0]).not.toContain(key);
  });

  test('the key can come from a file, and the variable wins over it', () => {
    const folder = mkdtempSync(join(tmpdir(), 'gateway-key-'));
    const file = join(folder, 'key');
    writeFileSync(file, `${KEY}\n`);
    expect(loadConfigFrom({ BOKEH_SECRET_KEY_FILE: file }).secretKey.toString()).toBe(KEY);
    const other = [...KEY].reverse().join('');
    expect(loadConfigFrom({ BOKEH_SECRET_KEY_FILE: file, BOKEH_SECRET_KEY: other }).secretKey.toString()).toBe(other);
    expect(problems({ BOKEH_SECRET_KEY_FILE: join(folder, 'missing') }, false)[0]).toMatch(/BOKEH_SECRET_KEY_FILE=.*missing cannot be read \(ENOENT\)/);
  });

  test('basic authentication needs bcrypt users', () => {
    expect(loadConfig({ AUTH_MODE: 'basic', AUTH_BASIC_USERS: ` ${ALICE} ` }).basicUsers).toEqual([ALICE]);
    expect(problems({ AUTH_MODE: 'basic' })[0]).toMatch(/AUTH_MODE=basic needs users.*htpasswd -nbB/);
    expect(problems({ AUTH_MODE: 'basic', AUTH_BASIC_USERS: 'bob:$apr1$abc$def' })[0]).toMatch(/user "bob".*MD5 hash; only bcrypt is accepted/);
    expect(problems({ AUTH_MODE: 'basic', AUTH_BASIC_USERS: 'bob:secret' })[0]).toMatch(/not a bcrypt hash/);
    expect(problems({ AUTH_MODE: 'basic', AUTH_BASIC_USERS: `${ALICE},${ALICE}` })[0]).toMatch(/repeats a user name/);
  });

  test('a trusted user header needs a trusted proxy', () => {
    expect(problems({ AUTH_MODE: 'header' })[0]).toMatch(/AUTH_MODE=header believes x-forwarded-user only from a trusted proxy.*Set TRUST_PROXY/);
    expect(loadConfig({ AUTH_MODE: 'header', TRUST_PROXY: 'oauth2-proxy', AUTH_USER_HEADER: 'X-Auth-Request-User' }).authUserHeader).toBe(
      'x-auth-request-user',
    );
  });

  test('the request timeout cannot be shorter than the headers timeout', () => {
    expect(problems({ HEADERS_TIMEOUT_MS: '30000', REQUEST_TIMEOUT_MS: '20000' })[0]).toMatch(
      /REQUEST_TIMEOUT_MS=20000 is shorter than HEADERS_TIMEOUT_MS=30000/,
    );
  });
});

describe('.env.example', () => {
  const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');

  // The compose file sets these for the stack; .env.example documents the stack's values.
  const setByCompose: Record<string, string> = {
    BOKEH_URL: 'http://bokeh:5006',
    TRUST_PROXY: 'nginx,apache',
    BOKEH_SECRET_KEY_FILE: '/run/stack-secret/bokeh-secret-key',
    METRICS_PORT: '9464',
  };

  test.each(SETTINGS.map((setting) => [setting.env, setByCompose[setting.env] ?? setting.default]))('documents %s with its default', (env, fallback) => {
    expect(example).toMatch(new RegExp(`^#? ?${env}=${fallback!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
  });
});
