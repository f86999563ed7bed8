import { describe, expect, it } from 'vitest';
import { StreamParser, type StreamParserOptions } from './stream-parser.js';
import {
  StreamLimitError,
  StreamXmlError,
  isStreamError,
  streamConditionOf,
  streamErrorCondition,
  streamErrorToError,
  type StreamParseError,
} from './stream-errors.js';
import {
  AuthError,
  ConfigError,
  ConflictError,
  ConnectionError,
  PayloadTooLargeError,
  XmlError,
  stanzaBytes,
  type Element,
} from '@xmppbus/core';

class Collector {
  headers: Element[] = [];
  elements: Element[] = [];
  ends = 0;
  errors: StreamParseError[] = [];
  parser: StreamParser;
  constructor(options: StreamParserOptions = {}) {
    this.parser = new StreamParser(
      {
        header: (el) => this.headers.push(el),
        element: (el) => this.elements.push(el),
        end: () => this.ends++,
        error: (e) => this.errors.push(e),
      },
      options,
    );
  }
}

function collect(options?: StreamParserOptions): Collector {
  return new Collector(options);
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

  it('keeps attribute names exactly, the common ones (to, id, from, type, name, node, xmlns) and their look-alikes', () => {
    const c = collect();
    c.parser.write(HEADER);
    c.parser.write(
      "<iq to='1' id='2' from='3' type='4' name='5' node='6' tox='7' i='8' frOm='9' typed='10' xmlnz='11' idx='12'>" +
        "<q xmlns='urn:x' xmlns:p='urn:p' p:to='13'/></iq>",
    );
    expect(c.errors).toEqual([]);
    expect(c.elements[0]!.attrs).toEqual({
      to: '1',
      id: '2',
      from: '3',
      type: '4',
      name: '5',
      node: '6',
      tox: '7',
      i: '8',
      frOm: '9',
      typed: '10',
      xmlnz: '11',
      idx: '12',
    });
    expect((c.elements[0]!.children[0] as Element).attrs).toEqual({ xmlns: 'urn:x', 'xmlns:p': 'urn:p', 'p:to': '13' });
  });

  it('reassembles elements split at arbitrary points, bytes or strings', () => {
    const text = `${HEADER}<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq><message><body>héllo ✓ 𝄞</body></message>`;
    const bytes = Buffer.from(text, 'utf8');
    for (let cut = 1; cut < bytes.length; cut += 3) {
      const c = collect();
      c.parser.write(bytes.subarray(0, cut)); // cuts inside multi-byte characters too
      c.parser.write(bytes.subarray(cut));
      expect(c.errors).toEqual([]);
      expect(c.elements.map((e) => e.toString())).toEqual([
        '<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>',
        '<message><body>héllo ✓ 𝄞</body></message>',
      ]);
    }
  });

  it("records each stanza's size on the wire for admission budgets, whatever the chunking", () => {
    const iq = "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>";
    const msg = '<message><body>héllo ✓ 𝄞</body></message>';
    const bytes = Buffer.from(`${HEADER}${iq}  ${msg}`, 'utf8');
    for (const step of [1, 5, bytes.length]) {
      const c = collect();
      for (let i = 0; i < bytes.length; i += step) c.parser.write(bytes.subarray(i, i + step));
      expect(c.elements.map((e) => stanzaBytes(e))).toEqual([
        Buffer.byteLength(iq, 'utf8'),
        Buffer.byteLength(msg, 'utf8'),
      ]);
    }
  });

  it('parses every split of a stream with CDATA, references, CRLF and odd quoting alike', () => {
    const text =
      `${HEADER}<iq type='set' id="a&amp;b" to = 'x>y'><q xmlns='urn:x'><s>A&lt;1&#x41;&#66;\r\n</s>` +
      `<d><![CDATA[<raw> & ]]]]></d><e\n/><p:f xmlns:p='urn:p' p:k='v\tw'/></q></iq> <presence/>\n</stream:stream>`;
    const whole = collect();
    whole.parser.write(text);
    const expected = [
      '<iq type="set" id="a&amp;b" to="x&gt;y"><q xmlns="urn:x"><s>A&lt;1AB\n</s><d>&lt;raw&gt; &amp; ]]</d><e/>' +
        '<p:f xmlns:p="urn:p" p:k="v w"/></q></iq>',
      '<presence/>',
    ];
    expect(whole.errors).toEqual([]);
    expect(whole.elements.map((e) => e.toString())).toEqual(expected);
    expect(whole.ends).toBe(1);
    for (let a = 1; a < text.length; a += 2) {
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

  it('reports (never throws) and parses nothing after a failure', () => {
    const c = collect();
    c.parser.write(HEADER);
    expect(() => c.parser.write('<a>&foo;</a>')).not.toThrow();
    expect(c.errors[0]).toBeInstanceOf(XmlError);
    c.parser.write('<ok/>');
    expect(c.elements).toEqual([]);
    expect(c.errors).toHaveLength(1);
  });

  it('fails on mismatched tags and on a missing stream header', () => {
    const c = collect();
    c.parser.write(`${HEADER}<a><b></a>`);
    expect(streamConditionOf(c.errors[0])).toBe('not-well-formed');
    const d = collect();
    d.parser.write('<message/>');
    expect(streamConditionOf(d.errors[0])).toBe('bad-format');
  });

  it('accepts whitespace keepalives between stanzas and a byte order mark', () => {
    const c = collect();
    c.parser.write(Buffer.from(`\uFEFF${HEADER} \n\t `, 'utf8'));
    c.parser.write('<a/>   \r\n<b/>');
    expect(c.errors).toEqual([]);
    expect(c.elements).toHaveLength(2);
  });
});

describe('StreamParser refuses the hostile corpus (issue 9, findings 2, 5)', () => {
  /** [what, input after the header (a whole stream after a leading '!'), condition]. */
  const corpus: [string, string, string][] = [
    ['a comment between stanzas', '<!-- x -->', 'restricted-xml'],
    ['a comment inside a stanza', '<a><!-- x --></a>', 'restricted-xml'],
    ['a processing instruction', '<?pi x?>', 'restricted-xml'],
    ['a processing instruction inside a stanza', '<a><?pi x?></a>', 'restricted-xml'],
    ['an XML declaration after the header', "<?xml version='1.0'?>", 'restricted-xml'],
    ['a DTD', '<!DOCTYPE x [<!ENTITY e "x">]>', 'restricted-xml'],
    ['an internal entity declaration', '<!ENTITY e "x">', 'restricted-xml'],
    ['a non-predefined entity reference', '<a>&foo;</a>', 'restricted-xml'],
    ['an entity in an attribute', "<a b='&lol;'/>", 'restricted-xml'],
    ['a duplicate attribute (last would win)', "<message to='a' to='b'/>", 'not-well-formed'],
    ['a duplicate xmlns', "<a xmlns='urn:a' xmlns='urn:b'/>", 'not-well-formed'],
    ["'<' in an attribute value", "<a b='x<y'/>", 'not-well-formed'],
    ['a name starting with a digit', '<1abc/>', 'not-well-formed'],
    ['a quote in a name', '<a"b/>', 'not-well-formed'],
    ['a bad attribute name', "<a 1b='x'/>", 'not-well-formed'],
    ['attributes without a space', "<a b='1'c='2'/>", 'not-well-formed'],
    ['an undeclared element prefix', '<p:a/>', 'not-well-formed'],
    ['an undeclared attribute prefix', "<a p:b='1'/>", 'not-well-formed'],
    ['an empty prefix declaration', "<p:a xmlns:p=''/>", 'not-well-formed'],
    ['NUL in text', '<a>\u0000</a>', 'not-well-formed'],
    ['a control character in text', '<a>\u0001</a>', 'not-well-formed'],
    ['a control character in an attribute', "<a b='\u001f'/>", 'not-well-formed'],
    ['U+FFFE', '<a>\uFFFE</a>', 'not-well-formed'],
    ['U+FFFF', '<a>\uFFFF</a>', 'not-well-formed'],
    ['a lone surrogate', '<a>\uD800</a>', 'not-well-formed'],
    ["a bare '&'", '<a>fish & chips</a>', 'not-well-formed'],
    ["a bare '&' at the end of the input", '<a>x &', 'not-well-formed'],
    ['a malformed decimal reference (&#65abc; is not "A")', '<a>&#65abc;</a>', 'not-well-formed'],
    ['an empty hex reference', '<a>&#x;</a>', 'not-well-formed'],
    ['a reference to NUL', '<a>&#0;</a>', 'not-well-formed'],
    ['a reference to a surrogate', "<a b='&#xD800;'/>", 'not-well-formed'],
    ['a reference beyond Unicode', '<a>&#x110000;</a>', 'not-well-formed'],
    ["']]>' in text", '<a>x]]>y</a>', 'not-well-formed'],
    ['an attribute without a value', '<a b/>', 'not-well-formed'],
    ['an unquoted value', '<a b=c/>', 'not-well-formed'],
    ['a space after <', '< a/>', 'not-well-formed'],
    ['a mismatched end tag', '<a></b>', 'not-well-formed'],
    ['an end tag at stream level', '</a>', 'not-well-formed'],
    ['text between stanzas', 'hello', 'bad-format'],
    ['CDATA between stanzas', '<![CDATA[x]]>', 'bad-format'],
    [
      'a second stream header',
      "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'><message/>",
      'unsupported-stanza-type',
    ],
    ['a comment before the header', "!<!-- x --><stream:stream xmlns='jabber:client'>", 'restricted-xml'],
    [
      '! a header with another prefix',
      "!<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>",
      'bad-namespace-prefix',
    ],
    ['a header without xmlns:stream', "!<stream:stream xmlns='jabber:client'>", 'bad-namespace-prefix'],
    [
      'a header in another stream namespace',
      "!<stream:stream xmlns='jabber:client' xmlns:stream='urn:other'>",
      'invalid-namespace',
    ],
    [
      'a header with another content namespace',
      "!<stream:stream xmlns='urn:other' xmlns:stream='http://etherx.jabber.org/streams'>",
      'invalid-namespace',
    ],
    ['a declaration in another encoding', "!<?xml version='1.0' encoding='ISO-8859-1'?>", 'unsupported-encoding'],
    ['a malformed declaration', "!<?xml version='2'?>", 'not-well-formed'],
  ];

  for (const [what, input, condition] of corpus) {
    it(`${what} → <${condition}/>`, () => {
      // Whole, then byte by byte: the verdict must not depend on how TCP cut the input.
      for (const chunk of [Infinity, 1]) {
        const c = collect();
        const whole = input.startsWith('!');
        if (!whole) c.parser.write(HEADER);
        const rest = whole ? input.slice(1) : input;
        if (chunk === Infinity) c.parser.write(rest);
        else for (const ch of rest) c.parser.write(ch);
        c.parser.write('<after/></stream:stream>'); // nothing is parsed after a failure
        expect(c.errors, `${what} (chunk ${chunk})`).toHaveLength(1);
        expect(c.errors[0]).toBeInstanceOf(XmlError);
        expect(streamConditionOf(c.errors[0])).toBe(condition);
        expect(c.elements.map((e) => e.name)).not.toContain('after');
        expect(c.ends).toBe(0);
      }
    });
  }

  it('invalid UTF-8 is refused, not replaced (overlong, stray continuation, surrogate, truncated-then-ASCII)', () => {
    for (const bad of [[0xc0, 0xaf], [0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82, 0x41], [0xf8, 0x88, 0x80, 0x80, 0x80]]) {
      for (const split of [false, true]) {
        const c = collect();
        c.parser.write(HEADER);
        const bytes = Buffer.concat([Buffer.from('<a>'), Buffer.from(bad), Buffer.from('</a>')]);
        if (split) for (const b of bytes) c.parser.write(Buffer.from([b]));
        else c.parser.write(bytes);
        expect(streamConditionOf(c.errors[0]), bad.join(',')).toBe('not-well-formed');
        expect(c.elements).toEqual([]);
      }
    }
  });

  it('accepts the header of every configured content namespace, and only those', () => {
    const header = (ns: string): string =>
      `<stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams'>`;
    const c = collect({ contentNamespaces: ['jabber:client'] });
    c.parser.write(header('jabber:client'));
    expect(c.headers).toHaveLength(1);
    const d = collect({ contentNamespaces: ['jabber:client'] });
    d.parser.write(header('jabber:component:accept'));
    expect(streamConditionOf(d.errors[0])).toBe('invalid-namespace');
  });
});

describe('StreamParser limits (issue 9, finding 2)', () => {
  function limited(options: StreamParserOptions, input: string | Buffer, chunk = Infinity): Collector {
    const c = collect(options);
    c.parser.write(HEADER);
    const s = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
    for (let i = 0; i < s.length && c.errors.length === 0; i += chunk === Infinity ? s.length : chunk)
      c.parser.write(s.subarray(i, i + chunk));
    return c;
  }

  it('a stanza over maxStanzaBytes is refused before its tree is complete (policy-violation)', () => {
    const ok = `<message><body>${'x'.repeat(968)}</body></message>`; // 1000 bytes exactly
    expect(limited({ maxStanzaBytes: 1000 }, ok).elements).toHaveLength(1);
    for (const chunk of [Infinity, 7, 1]) {
      const c = limited({ maxStanzaBytes: 999 }, ok, chunk);
      expect(c.errors[0]).toBeInstanceOf(PayloadTooLargeError);
      expect(c.errors[0]).toBeInstanceOf(StreamLimitError);
      expect(streamConditionOf(c.errors[0])).toBe('policy-violation');
      expect(c.elements).toEqual([]);
    }
  });

  it('counts UTF-8 bytes, not characters', () => {
    const stanza = `<m>${'é'.repeat(500)}</m>`; // 7 + 1000 bytes, 507 characters
    expect(limited({ maxStanzaBytes: 1007 }, stanza, 3).elements).toHaveLength(1);
    expect(streamConditionOf(limited({ maxStanzaBytes: 1006 }, stanza).errors[0])).toBe('policy-violation');
    expect(streamConditionOf(limited({ maxStanzaBytes: 1006 }, stanza, 5).errors[0])).toBe('policy-violation');
  });

  it('an endless stream of data inside one stanza never grows past the limit', () => {
    const c = collect({ maxStanzaBytes: 64 * 1024 });
    c.parser.write(HEADER);
    c.parser.write('<message><body>');
    let sent = 0;
    const chunk = Buffer.from('x'.repeat(1400));
    while (c.errors.length === 0 && sent < 10_000_000) {
      c.parser.write(chunk);
      sent += chunk.length;
    }
    expect(streamConditionOf(c.errors[0])).toBe('policy-violation');
    expect(sent).toBeLessThanOrEqual(64 * 1024 + 1400);
  });

  it('nesting deeper than maxDepth is refused (policy-violation); 10k levels do not overflow anything', () => {
    const deep = (n: number): string => '<a>'.repeat(n + 1) + '</a>'.repeat(n + 1);
    expect(limited({ maxDepth: 64 }, deep(64)).elements).toHaveLength(1);
    expect(streamConditionOf(limited({ maxDepth: 64 }, deep(65)).errors[0])).toBe('policy-violation');
    const c = limited({}, deep(10_000), 1400);
    expect(c.errors[0]).toBeInstanceOf(PayloadTooLargeError);
  });

  it('more than maxAttributes attributes are refused', () => {
    const attrs = (n: number): string => Array.from({ length: n }, (_, i) => ` a${i}='${i}'`).join('');
    expect(limited({ maxAttributes: 8 }, `<x${attrs(8)}/>`).elements).toHaveLength(1);
    expect(streamConditionOf(limited({ maxAttributes: 8 }, `<x${attrs(9)}/>`).errors[0])).toBe('policy-violation');
  });

  it('a 10 MB unfinished start tag: refused once maxTagLength is held, whatever the chunking', () => {
    for (const [open, chunk] of [
      ["<message to='", 1],
      ['<message', 1400],
      ["<message a='1' b='", 65536],
      ['<', 7],
    ] as const) {
      const c = collect({ maxTagLength: 16 * 1024 });
      c.parser.write(HEADER);
      c.parser.write(open);
      const piece = Buffer.from('y'.repeat(chunk));
      let sent = 0;
      let maxHeld = 0;
      while (c.errors.length === 0 && sent < 10_000_000) {
        c.parser.write(piece);
        sent += chunk;
        maxHeld = Math.max(maxHeld, c.parser.bufferedChars);
      }
      expect(streamConditionOf(c.errors[0]), open).toBe('policy-violation');
      expect(sent).toBeLessThanOrEqual(16 * 1024 + chunk);
      expect(maxHeld).toBeLessThanOrEqual(16 * 1024 + chunk + open.length);
      expect(c.parser.bufferedChars).toBe(0);
    }
  });

  it('scans each character a bounded number of times, however the input is cut (linear time, not timed)', () => {
    // A large stanza of long tags, attributes, references and text, cut into 1-, 7- and 1400-byte chunks.
    const item = (i: number): string =>
      `<item id='n${i}' note='${'v'.repeat(300)}&amp;' k="${'w'.repeat(200)}">t${'z'.repeat(100)} &lt; ${i}</item>`;
    const stanza = `<message><body>${Array.from({ length: 400 }, (_, i) => item(i)).join('')}</body></message>`;
    const bytes = Buffer.from(stanza);
    for (const chunk of [1, 7, 1400]) {
      const c = collect({ maxStanzaBytes: 1 << 20 });
      c.parser.write(HEADER);
      const before = c.parser.scannedChars;
      for (let i = 0; i < bytes.length; i += chunk) c.parser.write(bytes.subarray(i, i + chunk));
      expect(c.errors).toEqual([]);
      expect(c.elements).toHaveLength(1);
      // Each character is read once from its chunk and at most once more when a cut tag is joined.
      expect(c.parser.scannedChars - before).toBeLessThanOrEqual(2 * bytes.length + 64);
    }
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

  it('refusals are typed, coded and not retryable', () => {
    const e = new StreamXmlError('restricted-xml', 'a comment');
    expect([e.code, e.retryable, e.condition]).toEqual(['ERR_XML', false, 'restricted-xml']);
    const l = new StreamLimitError(10, 5);
    expect([l.code, l.retryable, l.condition]).toEqual(['ERR_PAYLOAD_TOO_LARGE', false, 'policy-violation']);
  });
});

describe('StreamParser input reuse', () => {
  it('parses the very same string written twice alike', () => {
    const c = collect();
    c.parser.write(HEADER);
    const chunk = "<a x='1'>t</a><b y='2'/>";
    c.parser.write(chunk);
    c.parser.write(chunk);
    expect(c.errors).toEqual([]);
    expect(c.elements.map((e) => e.toString())).toEqual([
      '<a x="1">t</a>',
      '<b y="2"/>',
      '<a x="1">t</a>',
      '<b y="2"/>',
    ]);
  });
});
