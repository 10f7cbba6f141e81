import type { IncomingMessage } from 'node:http';
import { errorBody, upstreamError, type GatewayError } from './errors.js';

const err = (code: string) => Object.assign(new Error(code), { code });

describe('upstreamError', () => {
  test.each([
    ['ECONNREFUSED', 503, 'BOKEH_UNAVAILABLE'],
    ['ENOTFOUND', 503, 'BOKEH_UNAVAILABLE'],
    ['EAI_AGAIN', 503, 'BOKEH_UNAVAILABLE'],
    ['ECONNRESET', 502, 'BOKEH_BAD_GATEWAY'],
    ['ETIMEDOUT', 504, 'BOKEH_TIMEOUT'],
    ['ESOMETHINGELSE', 502, 'BOKEH_BAD_GATEWAY'],
  ])('%s -> %d %s, naming the upstream', (code, status, name) => {
    const error = upstreamError(err(code), 'http://bokeh:5006');
    expect(error).toMatchObject({ status, code: name });
    expect(error.message).toContain('The Bokeh server at http://bokeh:5006');
    expect(error.message).toContain(`[${code}]`);
  });
});

describe('errorBody', () => {
  const error: GatewayError = { status: 503, code: 'BOKEH_UNAVAILABLE', message: 'Bokeh <down>' };
  const req = (accept?: string) => ({ headers: accept === undefined ? {} : { accept } }) as IncomingMessage;

  test('browsers get an HTML page with the message escaped', () => {
    const { type, body } = errorBody(req('text/html,application/xhtml+xml,*/*;q=0.8'), error);
    expect(type).toMatch(/text\/html/);
    expect(body).toContain('<h1>503 Service Unavailable</h1>');
    expect(body).toContain('Bokeh &lt;down&gt;');
  });

  test('programs asking for JSON get JSON', () => {
    const { type, body } = errorBody(req('application/json'), error);
    expect(type).toMatch(/application\/json/);
    expect(JSON.parse(body)).toEqual({ error: 'BOKEH_UNAVAILABLE', status: 503, message: 'Bokeh <down>' });
  });

  test('no Accept header gets HTML', () => {
    expect(errorBody(req(), error).type).toMatch(/text\/html/);
  });
});
