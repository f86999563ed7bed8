import { describe, expect, it } from 'vitest';
import { Element, PayloadTooLargeError, xml } from '@xmppbus/core';
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

describe('serializeElement depth (issue 9, finding 6)', () => {
  function chain(levels: number): Element {
    const root = new Element('message');
    let cur = root;
    for (let i = 0; i < levels; i++) {
      const child = new Element('a');
      cur.children.push(child);
      child.parent = cur;
      cur = child;
    }
    cur.children.push('x');
    return root;
  }

  it('serialises a 100k-level tree without overflowing the stack', () => {
    const s = serializeElement(chain(100_000));
    expect(s.length).toBe('<message>'.length + 100_000 * 7 + 1 + '</message>'.length);
    expect(s.includes('<a>x</a></a>') && s.endsWith('</a></a></message>')).toBe(true);
  });

  it('refuses a tree deeper than maxDepth with PayloadTooLargeError', () => {
    expect(serializeElement(chain(64), { maxDepth: 64 })).toContain('x');
    expect(() => serializeElement(chain(65), { maxDepth: 64 })).toThrow(PayloadTooLargeError);
    expect(() => serializeElement(chain(10_000), { maxDepth: 64 })).toThrow(PayloadTooLargeError);
  });
});

describe('serializeElement with pre-serialised children (rawXml)', () => {
  const raw = (text: string, rawDepth: number): Element =>
    Object.assign(new Element('message'), { rawXml: text, rawDepth }) as Element;
  const text = '<message id="m1"><tick xmlns="urn:t"><i>1</i></tick></message>';

  it('writes a raw child verbatim, in both writers', () => {
    const iq = xml('iq', { type: 'set', id: 'b1' }, xml('batch', { xmlns: 'urn:b' }, raw(text, 2)));
    const expected = `<iq type="set" id="b1"><batch xmlns="urn:b">${text}</batch></iq>`;
    expect(serializeElement(iq, { maxDepth: 64 })).toBe(expected);
    expect(serializeElement(iq)).toBe(expected); // the iterative writer (no depth bound)
  });

  it("counts a raw child's depth against maxDepth, in both writers", () => {
    // iq (0) > batch (1) > message (2) > tick (3) > i (4)
    const iq = xml('iq', {}, xml('batch', {}, raw(text, 2)));
    expect(serializeElement(iq, { maxDepth: 4 })).toContain(text);
    expect(() => serializeElement(iq, { maxDepth: 3 })).toThrow(PayloadTooLargeError);
    expect(() => serializeElement(iq, { maxDepth: 2000 })).not.toThrow();
    expect(() => serializeElement(xml('iq', {}, raw(text, 2000)), { maxDepth: 1999 })).toThrow(PayloadTooLargeError);
    expect(() => serializeElement(xml('iq', {}, raw(text, 2000)), { maxDepth: 2001 })).not.toThrow();
  });
});
