import type { IncomingMessage } from 'node:http';
import { clientView, ProxyTrust } from './forwarded.js';

const compileTrust = (setting: ConstructorParameters<typeof ProxyTrust>[0]) => new ProxyTrust(setting).trusts;

const origins = [new URL('https://dash.example.com'), new URL('http://localhost:8000')];

function request(remoteAddress: string, headers: Record<string, string>): IncomingMessage {
  return { socket: { remoteAddress }, headers, connection: { remoteAddress } } as unknown as IncomingMessage;
}

describe('clientView', () => {
  test('without a trusted proxy, X-Forwarded-* is ignored', () => {
    const view = clientView(
      request('203.0.113.9', { host: 'localhost:8000', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', 'x-forwarded-for': '1.2.3.4' }),
      compileTrust(false),
      origins,
    );
    expect(view).toEqual({ ip: '203.0.113.9', proto: 'http', host: 'localhost:8000', origin: 'http://localhost:8000', viaTrustedProxy: false });
  });

  test('from a trusted proxy, the forwarded scheme, host and client are used', () => {
    const view = clientView(
      request('172.18.0.5', { host: 'gateway:8000', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'dash.example.com', 'x-forwarded-for': '198.51.100.7' }),
      compileTrust(['172.16.0.0/12']),
      origins,
    );
    expect(view).toEqual({ ip: '198.51.100.7', proto: 'https', host: 'dash.example.com', origin: 'https://dash.example.com', viaTrustedProxy: true });
  });

  test('a Host that is not a public origin falls back to the canonical origin', () => {
    const view = clientView(request('127.0.0.1', { host: 'evil.example' }), compileTrust(false), origins);
    expect(view.origin).toBe('https://dash.example.com');
    expect(clientView(request('127.0.0.1', { host: '%%%' }), compileTrust(false), origins).origin).toBe('https://dash.example.com');
  });

  test('a hop count trusts that many proxies', () => {
    const trust = compileTrust(1);
    const view = clientView(
      request('10.0.0.2', { host: 'x', 'x-forwarded-for': '198.51.100.7, 10.0.0.3', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'dash.example.com' }),
      trust,
      origins,
    );
    expect(view.ip).toBe('10.0.0.3');
    expect(view.origin).toBe('https://dash.example.com');
  });
});

describe('ProxyTrust with host names', () => {
  test('trusts the addresses a name resolves to, once a forwarded request asks', async () => {
    const trust = new ProxyTrust(['localhost']);
    const req = request('127.0.0.1', { host: 'x', 'x-forwarded-proto': 'https' });
    expect(trust.trusts('127.0.0.1', 0)).toBe(false);
    await trust.prepare(req);
    expect(trust.trusts('127.0.0.1', 0)).toBe(true);
    expect(trust.trusts('::ffff:127.0.0.1', 0)).toBe(true);
    expect(trust.trusts('10.1.2.3', 0)).toBe(false);
  });

  test('a name that does not resolve trusts nobody', async () => {
    const trust = new ProxyTrust(['no-such-proxy.invalid']);
    await trust.prepare(request('127.0.0.1', { host: 'x', 'x-forwarded-for': '1.2.3.4' }));
    expect(trust.trusts('127.0.0.1', 0)).toBe(false);
  });
});
