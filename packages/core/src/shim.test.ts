import { describe, expect, it } from 'vitest';
import { HEADER, NS_SHIM, findChild, headersElement, parseXml, readHeaders, setHeaders, xml } from '@xmppbus/core';

describe('XEP-0131 SHIM headers', () => {
  it('round-trips headers through the wire form, escaping values', () => {
    const stanza = xml('message', { to: 'b.test' }, xml('body', null, 'x'));
    setHeaders(stanza, [
      [HEADER.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      [HEADER.deadline, '2030-01-01T00:00:00.000Z'],
      ['x-odd', `<&>"' ✓`],
    ]);
    const wire = stanza.toString();
    expect(wire).toContain(`<headers xmlns="${NS_SHIM}">`);
    const back = readHeaders(parseXml(wire));
    expect([...back]).toEqual([
      ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['xmppbus-deadline', '2030-01-01T00:00:00.000Z'],
      ['x-odd', `<&>"' ✓`],
    ]);
  });

  it('setHeaders extends an existing <headers/> instead of adding a second one', () => {
    const stanza = xml('iq', { type: 'get' });
    setHeaders(stanza, [['a', '1']]);
    setHeaders(stanza, [['b', '2']]);
    expect(stanza.getChildren('headers', NS_SHIM)).toHaveLength(1);
    expect(Object.fromEntries(readHeaders(stanza))).toEqual({ a: '1', b: '2' });
    expect(findChild(stanza, 'headers', NS_SHIM)?.parent).toBe(stanza);
  });

  it('setHeaders with nothing adds nothing; headersElement of nothing is undefined', () => {
    const stanza = xml('message');
    setHeaders(stanza, []);
    expect(stanza.children).toHaveLength(0);
    expect(headersElement([])).toBeUndefined();
    expect(headersElement(new Map([['k', 'v']]))?.toString()).toBe(
      `<headers xmlns="${NS_SHIM}"><header name="k">v</header></headers>`,
    );
  });

  it('readHeaders accepts the <headers/> element itself; last value wins; ignores junk', () => {
    const h = parseXml(
      `<headers xmlns='${NS_SHIM}'><header name='k'>1</header>text<other/><header>no name</header>` +
        `<header name='k'>2</header><header name='empty'/></headers>`,
    );
    expect(Object.fromEntries(readHeaders(h))).toEqual({ k: '2', empty: '' });
  });

  it('ignores <headers/> in another namespace and returns an empty map without headers', () => {
    const stanza = parseXml("<message><headers xmlns='urn:other'><header name='k'>v</header></headers></message>");
    expect(readHeaders(stanza).size).toBe(0);
    expect(readHeaders(xml('message')).size).toBe(0);
  });
});
