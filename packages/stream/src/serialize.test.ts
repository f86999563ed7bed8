import { describe, expect, it } from 'vitest';
import { Element, xml } from '@xmppbus/core';
import { serializeElement } from './serialize.js';

describe('serializeElement', () => {
  it("produces exactly ltx's toString() output, escapes included", () => {
    const odd = new Element('t');
    (odd.children as unknown[]).push(5, null, 'a&b', undefined);
    (odd.attrs as Record<string, unknown>)['n'] = 7;
    (odd.attrs as Record<string, unknown>)['gone'] = undefined;
    const cases = [
      xml(
        'iq',
        { type: 'set', id: `a"b&c<d>'`, to: 'svc.test' },
        xml('q', { xmlns: 'urn:x' }, xml('s', {}, `A&1<>"'`), xml('n', {}, '2'), xml('empty')),
      ),
      odd,
      xml('message', { 'xml:lang': 'en' }, xml('body', {}, 'héllo ✓')),
    ];
    for (const el of cases) expect(serializeElement(el)).toBe(el.toString());
    expect(serializeElement(cases[0]!)).toBe(
      '<iq type="set" id="a&quot;b&amp;c&lt;d&gt;&apos;" to="svc.test"><q xmlns="urn:x"><s>A&amp;1&lt;&gt;"\'</s>' +
        '<n>2</n><empty/></q></iq>',
    );
  });
});
