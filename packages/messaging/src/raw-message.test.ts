import { describe, expect, it } from 'vitest';
import { clone } from 'ltx';
import { findChild, parseXml, xml } from '@xmppbus/core';
import { RawMessage, serializeMessage, treeDepth, xmlDepth } from './raw-message.js';

const text =
  '<message to="b" id="m1"><tick xmlns="urn:t"><i>1</i></tick><origin-id xmlns="urn:xmpp:sid:0" id="m1"/></message>';

describe('RawMessage', () => {
  it('keeps the text until the tree is read, then is an ordinary element', () => {
    const m = RawMessage.of(text, 2, { to: 'b', id: 'm1' });
    expect(m.rawXml).toBe(text);
    expect(m.attrs['to']).toBe('b'); // given attrs: no parse
    expect(m.rawXml).toBe(text);
    expect(findChild(m, 'origin-id')?.attrs['id']).toBe('m1'); // reading children parses
    expect(m.rawXml).toBeUndefined();
    m.children.push(xml('delay', { xmlns: 'urn:xmpp:delay' }));
    expect(m.toString()).toBe(text.replace('</message>', '<delay xmlns="urn:xmpp:delay"/></message>'));
  });

  it('parses lazily for attrs it was not given, for ltx clone and toString', () => {
    expect(RawMessage.of(text, 2).attrs['id']).toBe('m1');
    expect(clone(RawMessage.of(text, 2)).toString()).toBe(text);
    expect(RawMessage.of(text, 2).toString()).toBe(text);
    const envelope = xml('acknowledged', { xmlns: 'urn:xmpp:qos' }, RawMessage.of(text, 2));
    expect(parseXml(envelope.toString()).toString()).toBe(`<acknowledged xmlns="urn:xmpp:qos">${text}</acknowledged>`);
  });
});

describe('RawMessage.withChild', () => {
  it('appends before the end tag without parsing, keeping the attrs it knows; undefined once parsed', () => {
    const m = RawMessage.of(text, 2, { to: 'b', id: 'm1' });
    const delayed = m.withChild(xml('delay', { xmlns: 'urn:xmpp:delay', stamp: 's' }))!;
    expect(delayed.rawXml).toBe(text.replace('</message>', '<delay xmlns="urn:xmpp:delay" stamp="s"/></message>'));
    expect(delayed.rawDepth).toBe(2);
    expect(delayed.attrs['to']).toBe('b');
    expect(delayed.rawXml).toBeDefined(); // attrs given: still not parsed
    expect(RawMessage.of('<message>x</message>', 0).withChild(xml('delay'))!.rawDepth).toBe(1);
    m.materialise();
    expect(m.withChild(xml('delay'))).toBeUndefined();
  });
});

describe('xmlDepth / treeDepth', () => {
  it('agree on the levels below the root', () => {
    for (const t of [text, '<m/>', '<m>x</m>', '<m><a><b><c/></b></a><d/></m>', '<m a="x/"><b c="1"/></m>']) {
      expect(xmlDepth(t)).toBe(treeDepth(parseXml(t)));
    }
    expect(xmlDepth('<m><a><b><c/></b></a><d/></m>')).toBe(3);
  });
});

describe('serializeMessage', () => {
  it("writes exactly ltx's toString(), escapes included, and the depth", () => {
    const m = xml(
      'message',
      { to: 'b', id: `a"b'c<d>&e`, n: 3, skip: undefined },
      xml('p', { xmlns: 'urn:p' }, 'x < y & z > "q"', xml('e'), xml('deep', {}, xml('er', {}, 'ok'))),
    );
    expect(serializeMessage(m)).toEqual({ text: m.toString(), depth: 3 });
    expect(serializeMessage(parseXml(text))).toEqual({ text, depth: 2 });
  });

  it('hands trees deeper than its writer goes to toString()', () => {
    let leaf = xml('a', {}, 'x');
    const root = leaf;
    for (let i = 0; i < 300; i++) {
      const next = xml('a');
      leaf.children.push(next);
      leaf = next;
    }
    expect(serializeMessage(root)).toEqual({ text: root.toString(), depth: 300 });
  });
});
