// Differential test: our stream parser against saxes (a conforming XML 1.0 + Namespaces parser) on
// random documents, cut into random chunks. Fixed seeds and bounded runs keep it deterministic.
import fc from 'fast-check';
import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';
import type { Element } from '@xmppbus/core';
import { StreamParser } from './stream-parser.js';
import { streamConditionOf, type StreamParseError } from './stream-errors.js';

const OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>";
const CLOSE = '</stream:stream>';

interface Node {
  name: string;
  attrs: [string, string][];
  children: (Node | string)[];
}

function push(children: (Node | string)[], text: string): void {
  if (text === '') return;
  const last = children.length - 1;
  if (last >= 0 && typeof children[last] === 'string') children[last] += text;
  else children.push(text);
}

function fromLtx(el: Element): Node {
  const children: (Node | string)[] = [];
  for (const c of el.children) {
    if (typeof c === 'string') push(children, c);
    else children.push(fromLtx(c));
  }
  const attrs = Object.entries(el.attrs as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : 1));
  return { name: el.name, attrs, children };
}

interface Outcome {
  stanzas: Node[];
  error: StreamParseError | Error | undefined;
  /** `</stream:stream>` was reached (a streaming parser has no end of input otherwise). */
  ended?: boolean;
}

function ours(bytes: Buffer, cuts: number[]): Outcome {
  const stanzas: Node[] = [];
  let error: StreamParseError | undefined;
  let ended = false;
  const p = new StreamParser(
    {
      header() {},
      element: (el) => stanzas.push(fromLtx(el)),
      end: () => (ended = true),
      error: (e) => (error ??= e),
    },
    { maxStanzaBytes: 1 << 20 },
  );
  let at = 0;
  for (const cut of [...cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
    p.write(bytes.subarray(at, Math.max(at, cut)));
    at = Math.max(at, cut);
  }
  return { stanzas, error, ended };
}

function reference(text: string): Outcome {
  const stanzas: Node[] = [];
  let error: Error | undefined;
  const sax = new SaxesParser({ xmlns: true, position: false });
  const stack: Node[] = [];
  sax.on('error', (e) => (error ??= e));
  sax.on('opentag', (tag) => {
    const attrs = Object.entries(tag.attributes)
      .map(([k, a]): [string, string] => [k, a.value])
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const node: Node = { name: tag.name, attrs, children: [] };
    if (stack.length > 1) stack[stack.length - 1]!.children.push(node);
    stack.push(node);
  });
  const onText = (t: string): void => {
    if (stack.length > 1) push(stack[stack.length - 1]!.children, t);
  };
  sax.on('text', onText);
  sax.on('cdata', onText);
  sax.on('closetag', () => {
    const node = stack.pop()!;
    if (stack.length === 1) stanzas.push(node);
  });
  try {
    sax.write(text).close();
  } catch (e) {
    error ??= e as Error;
  }
  return { stanzas, error };
}

// Random well-formed stanzas with the constructs that matter: prefixes, references, CDATA,
// CR/LF/TAB in text and attributes, non-ASCII (2-, 3- and 4-byte UTF-8), both quote styles.
const NAMES = ['a', 'iq', 'body', 'x-y.z', '_q', 'p:item', 'é', 'ns:日本'];
const ATTRS = ['id', 'to', 'type', 'k', 'p:z', 'xml:lang', 'é1', 'a-b'];
const CHUNKS = [
  'a',
  'Z',
  ' ',
  '\n',
  '\t',
  '\r\n',
  '\r',
  'é',
  '✓',
  '𝄞',
  '&amp;',
  '&lt;',
  '&gt;',
  '&quot;',
  '&apos;',
  '&#65;',
  '&#x1F600;',
  '&#10;',
  '&#13;',
  '>',
  ']',
  ']]',
];
const textArb = fc.array(fc.constantFrom(...CHUNKS), { maxLength: 8 }).map((xs) => xs.join(''));
const attrValueArb = fc
  .array(fc.constantFrom(...CHUNKS.filter((c) => c !== ']]')), { maxLength: 6 })
  .map((xs) => xs.join(''));

interface Gen {
  xml: string;
}

const { element } = fc.letrec<{ element: Gen; child: Gen }>((tie) => ({
  element: fc
    .record({
      name: fc.constantFrom(...NAMES),
      attrs: fc.uniqueArray(
        fc.tuple(fc.constantFrom(...ATTRS), attrValueArb, fc.constantFrom("'", '"'), fc.constantFrom('', ' ', '\n')),
        {
          maxLength: 4,
          selector: (a) => a[0],
        },
      ),
      children: fc.array(tie('child'), { maxLength: 4 }),
      selfClose: fc.boolean(),
    })
    .map(({ name, attrs, children, selfClose }) => {
      // Declare the prefixes on every element: redundant declarations are legal.
      let s = `<${name} xmlns:p='urn:p' xmlns:ns="urn:ns"`;
      for (const [k, v, q, ws] of attrs)
        s += ` ${k}${ws}=${ws}${q}${q === "'" ? v.replace(/'/g, '&apos;') : v.replace(/"/g, '&quot;')}${q}`;
      if (children.length === 0 && selfClose) return { xml: `${s}/>` };
      return { xml: `${s}>${children.map((c) => c.xml).join('')}</${name}${selfClose ? ' ' : ''}>` };
    }),
  child: fc.oneof(
    { depthSize: 'small' },
    textArb.map((t) => ({ xml: t.replace(/]]>/g, ']]&gt;').replace(/>/g, '&gt;') })),
    textArb.map((t) => ({ xml: `<![CDATA[${t.replace(/&/g, 'x').replace(/]]>/g, '')}]]>` })),
    tie('element'),
  ),
}));

const docArb = fc.array(element, { minLength: 1, maxLength: 4 }).map((els) => els.map((e) => e.xml).join(' \n'));
const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

/** Edits that turn a good document into a likely bad one. */
const HOSTILE = [
  '<',
  '>',
  '&',
  '"',
  "'",
  '=',
  ' ',
  ':',
  '1',
  '/',
  '\u0000',
  '\u0001',
  '\uFFFE',
  ']]>',
  '&#65abc;',
  '&#0;',
  '&foo;',
  '&#xD800;',
  '<a',
  '</a>',
  'é',
];
const editArb = fc.array(fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...HOSTILE), fc.constant(''))), {
  minLength: 1,
  maxLength: 3,
});

function edit(doc: string, edits: [number, string][]): string {
  // By code point: half a surrogate pair would reach us as U+FFFD after UTF-8 encoding.
  let s = Array.from(doc);
  for (const [at, insert] of edits) {
    const i = at % (s.length + 1);
    // An empty insert deletes one character instead.
    s = insert === '' ? [...s.slice(0, i), ...s.slice(i + 1)] : [...s.slice(0, i), insert, ...s.slice(i)];
  }
  return s.join('');
}

describe('StreamParser ⇔ saxes (differential)', () => {
  it('agrees on random well-formed stanzas cut at random byte positions', () => {
    fc.assert(
      fc.property(docArb, cutsArb, (doc, cuts) => {
        const text = OPEN + doc + CLOSE;
        const expected = reference(text);
        expect(expected.error).toBeUndefined();
        const got = ours(Buffer.from(text, 'utf8'), cuts);
        expect(got.error).toBeUndefined();
        expect(got.ended).toBe(true);
        expect(got.stanzas).toEqual(expected.stanzas);
      }),
      { seed: 0x9e11, numRuns: 300 },
    );
  });

  it('never accepts what saxes refuses, and parses alike what both accept', () => {
    let refusedBoth = 0;
    fc.assert(
      fc.property(docArb, editArb, cutsArb, (doc, edits, cuts) => {
        const text = OPEN + edit(doc, edits) + CLOSE;
        const expected = reference(text);
        const got = ours(Buffer.from(text, 'utf8'), cuts);
        if (expected.error !== undefined) {
          // Refused, or still waiting for the rest (e.g. an unterminated CDATA section swallowed
          // `</stream:stream>`; saxes reports that at the end of its input, which a stream never has).
          expect(got.error !== undefined || !got.ended, `saxes: ${expected.error.message}`).toBe(true);
          refusedBoth++;
        } else if (got.error === undefined) {
          expect(got.stanzas).toEqual(expected.stanzas);
        } else if (streamConditionOf(got.error) !== 'bad-format') {
          // Ours may be stricter in two places: text or CDATA between stanzas is legal XML that
          // XMPP refuses (bad-format), and saxes does not check that a prefixed name's local part
          // is an NCName (`xml:1lang`, `xmlns:1ns`), which Namespaces in XML §3 requires.
          expect(got.error.message).toMatch(/invalid (attribute|element) name '[^':]*:[^']*'/);
        }
      }),
      { seed: 0x5eed, numRuns: 600 },
    );
    expect(refusedBoth).toBeGreaterThan(100); // the edits do produce malformed input
  });
});
