import { describe, expect, it } from 'vitest';
import { StreamParser } from './stream-parser.js';
import { isStreamError, streamErrorCondition, streamErrorToError } from './stream-errors.js';
import { AuthError, ConfigError, ConflictError, ConnectionError, XmlError, type Element } from '@xmppbus/core';

class Collector {
  headers: Element[] = [];
  elements: Element[] = [];
  ends = 0;
  errors: XmlError[] = [];
  parser = new StreamParser(
    {
      header: (el) => this.headers.push(el),
      element: (el) => this.elements.push(el),
      end: () => this.ends++,
      error: (e) => this.errors.push(e),
    },
    { maxElementChars: 200 },
  );
}

function collect(): Collector {
  return new Collector();
}

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='svc-a.localhost'>";

describe('StreamParser', () => {
  it('reports the header, each top-level element and the end', () => {
    const c = collect();
    c.parser.write(HEADER);
    c.parser.write("<handshake/> <message to='a' from='b'><body>x &amp; y</body></message>\n");
    c.parser.write('</stream:stream>');
    expect(c.headers).toHaveLength(1);
    expect(c.headers[0]!.attrs['id']).toBe('abc');
    expect(c.elements.map((e) => e.name)).toEqual(['handshake', 'message']);
    const msg = c.elements[1]!;
    expect(msg.getChildText('body')).toBe('x & y');
    // Parented to the header so the default namespace resolves.
    expect(msg.getNS()).toBe('jabber:component:accept');
    expect(c.ends).toBe(1);
    expect(c.errors).toEqual([]);
  });

  it('reassembles elements split at arbitrary points', () => {
    const text = `${HEADER}<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq><message><body>héllo ✓</body></message>`;
    for (let cut = 1; cut < text.length; cut += 7) {
      const c = collect();
      c.parser.write(text.slice(0, cut));
      c.parser.write(text.slice(cut));
      expect(c.elements.map((e) => e.toString())).toEqual([
        '<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>',
        '<message><body>héllo ✓</body></message>',
      ]);
    }
  });

  it('parses every split of a stream with comments, PIs, CDATA, entities and odd quoting alike', () => {
    const text =
      `${HEADER}<!-- hi --><iq type='set' id="a&amp;b" to = 'x>y'><q xmlns='urn:x'><s>A&lt;1&#x41;&#66;</s>` +
      `<d><![CDATA[<raw> & ]]></d><e\n/><p:f xmlns:p='urn:p' p:k='v'/></q></iq> <?pi x?><presence/>\n</stream:stream>`;
    const whole = collect();
    whole.parser.write(text);
    const expected = [
      '<iq type="set" id="a&amp;b" to="x&gt;y"><q xmlns="urn:x"><s>A&lt;1AB</s><d>&lt;raw&gt; &amp; </d><e/>' +
        '<p:f xmlns:p="urn:p" p:k="v"/></q></iq>',
      '<presence/>',
    ];
    expect(whole.elements.map((e) => e.toString())).toEqual(expected);
    expect(whole.ends).toBe(1);
    for (let a = 1; a < text.length; a += 3) {
      const b = Math.min(text.length, a + 1 + (a % 11));
      const c = collect();
      c.parser.write(text.slice(0, a));
      c.parser.write(text.slice(a, b));
      c.parser.write(text.slice(b));
      expect(c.errors).toEqual([]);
      expect(c.elements.map((e) => e.toString())).toEqual(expected);
      expect(c.ends).toBe(1);
    }
  });

  it('reports (never throws) unknown entities, DTDs and malformed tags', () => {
    for (const bad of [
      '<a>&foo;</a>',
      '<a b="&#0;"/>',
      '<!DOCTYPE x [<!ENTITY e "x">]>',
      '<a b/>',
      '<a b=c/>',
      '< a/>',
    ]) {
      const c = collect();
      c.parser.write(HEADER);
      expect(() => c.parser.write(bad)).not.toThrow();
      expect(c.errors[0], bad).toBeInstanceOf(XmlError);
      c.parser.write('<ok/>'); // nothing is parsed after a failure
      expect(c.elements).toEqual([]);
    }
  });

  it('fails on mismatched tags and on a missing stream header', () => {
    const c = collect();
    c.parser.write(`${HEADER}<a><b></a>`);
    expect(c.errors[0]).toBeInstanceOf(XmlError);
    const d = collect();
    d.parser.write('<message/>');
    expect(d.errors[0]).toBeInstanceOf(XmlError);
  });

  it('cuts off an element larger than maxElementChars', () => {
    const c = collect();
    c.parser.write(`${HEADER}<message><body>`);
    c.parser.write('x'.repeat(300));
    expect(c.errors[0]?.message).toMatch(/exceeds/);
    expect(c.elements).toEqual([]);
  });
});

describe('stream errors', () => {
  function parseError(condition: string, text?: string): Element {
    const c = collect();
    c.parser.write(HEADER);
    c.parser.write(
      `<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>${
        text ? `<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>${text}</text>` : ''
      }</stream:error>`,
    );
    return c.elements[0]!;
  }

  it('maps conditions to typed errors', () => {
    const conflict = parseError('conflict', 'Component already connected');
    expect(isStreamError(conflict)).toBe(true);
    expect(streamErrorCondition(conflict)).toBe('conflict');
    expect(streamErrorToError(conflict)).toBeInstanceOf(ConflictError);
    expect(streamErrorToError(conflict).message).toContain('Component already connected');
    expect(streamErrorToError(parseError('not-authorized'))).toBeInstanceOf(AuthError);
    expect(streamErrorToError(parseError('host-unknown'))).toBeInstanceOf(ConfigError);
    const shutdown = streamErrorToError(parseError('system-shutdown'));
    expect(shutdown).toBeInstanceOf(ConnectionError);
    expect(shutdown.retryable).toBe(true);
  });

  it('does not mistake a stanza-level <error> for a stream error', () => {
    const c = collect();
    c.parser.write(`${HEADER}<error/>`);
    expect(isStreamError(c.elements[0]!)).toBe(false);
  });
});
