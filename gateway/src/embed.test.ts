import { autoloadUrl, embedScript, newElementId } from './embed.js';

const target = { origin: 'https://dash.example.com', prefix: '/bokeh', app: 'sliders' };

describe('autoloadUrl', () => {
  test('matches what bokeh.embed.server_document requests', () => {
    const url = new URL(autoloadUrl(target, 'bk-1'));
    expect(url.origin + url.pathname).toBe('https://dash.example.com/bokeh/sliders/autoload.js');
    expect([...url.searchParams]).toEqual([
      ['bokeh-autoload-element', 'bk-1'],
      ['bokeh-app-path', '/bokeh/sliders'],
      ['bokeh-absolute-url', 'https://dash.example.com/bokeh/sliders'],
    ]);
  });

  test('passes app arguments on, but never bokeh-* ones', () => {
    const url = new URL(
      autoloadUrl(
        {
          ...target,
          args: [
            ['title', 'a&b'],
            ['bokeh-app-path', '/x'],
            ['n', '1'],
            ['n', '2'],
          ],
        },
        'bk-1',
      ),
    );
    expect(url.searchParams.getAll('title')).toEqual(['a&b']);
    expect(url.searchParams.getAll('n')).toEqual(['1', '2']);
    expect(url.searchParams.getAll('bokeh-app-path')).toEqual(['/bokeh/sliders']);
  });
});

describe('embedScript', () => {
  test('loads autoload.js for its own element id', () => {
    const html = embedScript(target, { elementId: 'bk-test' });
    expect(html).toMatch(/^<script id="bk-test">/);
    expect(html).toContain('xhr.open("GET", "https://dash.example.com/bokeh/sliders/autoload.js?bokeh-autoload-element=bk-test&');
  });

  test('an argument cannot break out of the script element', () => {
    const html = embedScript({ ...target, args: [['x', '</script><script>alert(1)</script>']] }, { elementId: 'bk-test' });
    expect(html.match(/<\/script>/g)).toHaveLength(1);
  });

  test('element ids are unique and CSS-safe', () => {
    const ids = new Set(Array.from({ length: 1000 }, newElementId));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^bk-[A-Za-z0-9]+$/);
  });
});
