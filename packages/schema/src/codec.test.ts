import { Type } from '@sinclair/typebox';
import { parseXml, PayloadTooLargeError, xml, XmlError } from '@xmppbus/core';
import type { Element } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import {
  compiledValidator,
  decode,
  encode,
  fromXml,
  matches,
  method,
  payload,
  rawPayload,
  SchemaError,
  toXml,
  validate,
  ValidationError,
} from './index.js';
import type { PayloadContract, PayloadOf } from './index.js';

const NS = 'urn:example:orders:1';

function roundTrip<C extends PayloadContract>(c: C, v: unknown): unknown {
  return fromXml(c, toXml(c, v as never));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

function validationError(fn: () => unknown): ValidationError {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(ValidationError);
  expect((err as ValidationError).code).toBe('ERR_VALIDATION');
  return err as ValidationError;
}

function schemaError(fn: () => unknown): SchemaError {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(SchemaError);
  expect((err as SchemaError).code).toBe('ERR_SCHEMA');
  return err as SchemaError;
}

const Order = payload({
  ns: NS,
  name: 'create',
  schema: Type.Object({
    sku: Type.String(),
    qty: Type.Integer({ minimum: 1 }),
    price: Type.Number(),
    rush: Type.Boolean(),
    note: Type.Optional(Type.String()),
  }),
});

describe('elements and scalar types', () => {
  it('maps properties to child elements in the contract namespace, in schema order', () => {
    expect(toXml(Order, { qty: 2, sku: 'A1', price: 9.5, rush: false })).toBe(
      `<create xmlns="${NS}"><sku>A1</sku><qty>2</qty><price>9.5</price><rush>false</rush></create>`,
    );
  });

  it('decodes integers, numbers and booleans to JS types and leaves absent optionals absent', () => {
    const v = fromXml(
      Order,
      `<create xmlns='${NS}'><rush>1</rush><price>-0.25e2</price><qty>3</qty><sku>007</sku></create>`,
    );
    expect(v).toStrictEqual({ sku: '007', qty: 3, price: -25, rush: true });
    expect('note' in v).toBe(false);
  });

  it('accepts pretty-printed input, CDATA and character references', () => {
    const text = `<create xmlns="${NS}">\n  <sku><![CDATA[<A&1>]]></sku>\n  <qty>2</qty>\n  <price>1.5</price>\n  <rush>false</rush>\n  <note>&#x1D11E; &amp; &#65;</note>\n</create>`;
    expect(fromXml(Order, text)).toStrictEqual({ sku: '<A&1>', qty: 2, price: 1.5, rush: false, note: '𝄞 & A' });
  });

  it('preserves strings exactly: whitespace, empty, XML specials, non-BMP', () => {
    for (const note of ['  padded \t\n ', '', `<a href="x">&amp;'"</a>`, '😀 𝄞 \u{10FFFD}', ']]>', '\r\n']) {
      const v = { sku: note, qty: 1, price: 0, rush: true, note };
      expect(roundTrip(Order, v)).toStrictEqual(v);
    }
  });

  it('writes an empty string as an empty element, distinct from an absent one', () => {
    const el = encode(Order, { sku: '', qty: 1, price: 1, rush: true });
    expect(el.toString()).toContain('<sku/>');
    expect(el.toString()).not.toContain('note');
  });

  it('writes numbers so that every XML parser reads them back exactly', () => {
    const Nums = payload({
      ns: NS,
      name: 'n',
      schema: Type.Object({ a: Type.Array(Type.Number()), i: Type.Array(Type.Integer()) }),
    });
    const v = {
      a: [-0, 0.1, 1e-7, 1.7976931348623157e308, -5e-324, 123456.789],
      i: [0, -1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER],
    };
    const text = toXml(Nums, v);
    expect(text).toContain('<i>9007199254740991</i>');
    expect(text).toContain('<a>-0</a>');
    expect(roundTrip(Nums, v)).toStrictEqual(v);
  });

  it('refuses integers a JS number cannot hold exactly, both ways, instead of rounding them', () => {
    const I = payload({ ns: NS, name: 'n', schema: Type.Object({ i: Type.Integer() }) });
    for (const text of ['9007199254740993', '-9007199254740992', '1000000000000000000000']) {
      const err = validationError(() => decode(I, parseXml(`<n xmlns='${NS}'><i>${text}</i></n>`)));
      expect(err.path).toBe('/i');
      expect(err.message).toMatch(/2\^53/);
    }
    expect(validationError(() => toXml(I, { i: 2 ** 60 })).path).toBe('/i');
  });

  it('reads own properties only: fields named like Object.prototype members behave like any other', () => {
    const P = payload({
      ns: NS,
      name: 'p',
      schema: Type.Object({
        constructor: Type.Optional(Type.String()),
        toString: Type.Optional(Type.String()),
        valueOf: Type.Optional(Type.Integer()),
        hasOwnProperty: Type.Optional(Type.Array(Type.String(), { xml: { wrapped: false } })),
      }),
    });
    // Absent on encode: nothing is read from Object.prototype.
    expect(toXml(P, {} as PayloadOf<typeof P>)).toBe(`<p xmlns="${NS}"/>`);
    // Present on decode: no "appears more than once" from inherited values.
    const full = { constructor: 'c', toString: 't', valueOf: 3, hasOwnProperty: ['a', 'b'] };
    expect(roundTrip(P, full)).toStrictEqual(full);
    expect(decode(P, parseXml(`<p xmlns='${NS}'/>`))).toStrictEqual({});
  });

  it('decodes a payload whose namespace is inherited from the enclosing stanza', () => {
    const iq = parseXml(
      `<iq xmlns='${NS}' type='set'><create><sku>A</sku><qty>1</qty><price>1</price><rush>true</rush></create></iq>`,
    );
    const el = iq.getChildElements()[0]!;
    expect(matches(Order, el)).toBe(true);
    expect(decode(Order, el)).toStrictEqual({ sku: 'A', qty: 1, price: 1, rush: true });
  });

  it('decodes an element tree built in memory (no text involved)', () => {
    const el = xml(
      'create',
      { xmlns: NS },
      xml('sku', null, 'A'),
      xml('qty', null, '4'),
      xml('price', null, '2'),
      xml('rush', null, 'false'),
    );
    expect(decode(Order, el)).toStrictEqual({ sku: 'A', qty: 4, price: 2, rush: false });
  });

  it('supports a scalar or an array as the payload root', () => {
    const Text = payload({ ns: NS, name: 'note', schema: Type.String() });
    expect(toXml(Text, ' hi ')).toBe(`<note xmlns="${NS}"> hi </note>`);
    expect(fromXml(Text, `<note xmlns="${NS}"> hi </note>`)).toBe(' hi ');
    const List = payload({ ns: NS, name: 'skus', schema: Type.Array(Type.String({ xml: { name: 'sku' } })) });
    expect(toXml(List, ['a', 'b'])).toBe(`<skus xmlns="${NS}"><sku>a</sku><sku>b</sku></skus>`);
    expect(fromXml(List, `<skus xmlns="${NS}"><sku>a</sku></skus>`)).toStrictEqual(['a']);
    const Anon = payload({ ns: NS, name: 'nums', schema: Type.Array(Type.Integer()) });
    expect(toXml(Anon, [1])).toBe(`<nums xmlns="${NS}"><item>1</item></nums>`);
  });
});

describe('xml annotations', () => {
  it('xml.attribute and xml.nodeType attribute put scalars in attributes, with xml.name renames', () => {
    const C = payload({
      ns: NS,
      name: 'item',
      schema: Type.Object({
        id: Type.String({ xml: { attribute: true } }),
        count: Type.Integer({ xml: { nodeType: 'attribute', name: 'n' } }),
        on: Type.Optional(Type.Boolean({ xml: { attribute: true } })),
        label: Type.String({ xml: { name: 'Label' } }),
      }),
    });
    const v = { id: `a"<&'\tz`, count: 3, on: false, label: 'x' };
    expect(toXml(C, v)).toBe(
      `<item xmlns="${NS}" id="a&quot;&lt;&amp;&apos;\tz" n="3" on="false"><Label>x</Label></item>`,
    );
    expect(roundTrip(C, v)).toStrictEqual(v);
    expect(fromXml(C, `<item xmlns="${NS}" n='4' id=''><Label/></item>`)).toStrictEqual({
      id: '',
      count: 4,
      label: '',
    });
  });

  it('namespaced attributes are written with a prefix and read by namespace, whatever the prefix', () => {
    const C = payload({
      ns: NS,
      name: 'item',
      schema: Type.Object({ lang: Type.String({ xml: { attribute: true, namespace: 'urn:meta', prefix: 'm' } }) }),
    });
    expect(toXml(C, { lang: 'en' })).toBe(`<item xmlns="${NS}" xmlns:m="urn:meta" m:lang="en"/>`);
    expect(fromXml(C, `<item xmlns="${NS}" xmlns:q="urn:meta" q:lang="fr"/>`)).toStrictEqual({ lang: 'fr' });
    expect(fromXml(C, `<item xmlns="${NS}" xmlns:q="urn:other" q:lang="fr"/>`, { validate: false })).toStrictEqual({});
  });

  it('unwrapped arrays (default) repeat the element; one item still decodes to an array', () => {
    const C = payload({
      ns: NS,
      name: 'order',
      schema: Type.Object({
        tag: Type.Array(Type.String()),
        lines: Type.Array(Type.Object({ sku: Type.String() }), { xml: { name: 'line' } }),
        ids: Type.Array(Type.Integer({ xml: { name: 'id' } })),
      }),
    });
    const v = { tag: ['a'], lines: [{ sku: 'x' }, { sku: 'y' }], ids: [1, 2] };
    expect(toXml(C, v)).toBe(
      `<order xmlns="${NS}"><tag>a</tag><line><sku>x</sku></line><line><sku>y</sku></line><id>1</id><id>2</id></order>`,
    );
    expect(roundTrip(C, v)).toStrictEqual(v);
    // Items may be interleaved with other elements on the wire.
    expect(fromXml(C, `<order xmlns="${NS}"><id>1</id><tag>a</tag><id>2</id></order>`)).toStrictEqual({
      tag: ['a'],
      lines: [],
      ids: [1, 2],
    });
  });

  it('a required unwrapped array that is empty is absent on the wire and decodes to []', () => {
    const C = payload({
      ns: NS,
      name: 'o',
      schema: Type.Object({ tag: Type.Array(Type.String()), opt: Type.Optional(Type.Array(Type.String())) }),
    });
    expect(toXml(C, { tag: [] })).toBe(`<o xmlns="${NS}"/>`);
    expect(fromXml(C, `<o xmlns="${NS}"/>`)).toStrictEqual({ tag: [] });
  });

  it('wrapped arrays follow OpenAPI naming (items named after the property unless items.xml.name)', () => {
    const C = payload({
      ns: NS,
      name: 'zoo',
      schema: Type.Object({
        animals: Type.Array(Type.String(), { xml: { wrapped: true } }),
        cages: Type.Array(Type.Integer({ xml: { name: 'cage' } }), { xml: { wrapped: true, name: 'Cages' } }),
        grid: Type.Array(Type.Array(Type.Integer()), { xml: { wrapped: true } }),
      }),
    });
    const v = { animals: ['cat', 'dog'], cages: [], grid: [[1, 2], []] };
    expect(toXml(C, v)).toBe(
      `<zoo xmlns="${NS}"><animals><animals>cat</animals><animals>dog</animals></animals><Cages/>` +
        `<grid><grid><item>1</item><item>2</item></grid><grid/></grid></zoo>`,
    );
    expect(roundTrip(C, v)).toStrictEqual(v);
  });

  it('xml.namespace qualifies an element; its children inherit that namespace', () => {
    const C = payload({
      ns: NS,
      name: 'order',
      schema: Type.Object({
        id: Type.String(),
        geo: Type.Object({ lat: Type.Number(), lon: Type.Number() }, { xml: { namespace: 'urn:geo' } }),
        tags: Type.Array(Type.String({ xml: { name: 'tag', namespace: 'urn:tags' } })),
      }),
    });
    const v = { id: '1', geo: { lat: 1.5, lon: -2 }, tags: ['t'] };
    expect(toXml(C, v)).toBe(
      `<order xmlns="${NS}"><id>1</id><geo xmlns="urn:geo"><lat>1.5</lat><lon>-2</lon></geo><tag xmlns="urn:tags">t</tag></order>`,
    );
    expect(roundTrip(C, v)).toStrictEqual(v);
    // Prefixed forms of the same tree decode the same.
    const prefixed = `<o:order xmlns:o="${NS}" xmlns:g="urn:geo"><o:id>1</o:id><g:geo><g:lat>1.5</g:lat><g:lon>-2</g:lon></g:geo><t:tag xmlns:t="urn:tags">t</t:tag></o:order>`;
    expect(fromXml(C, prefixed)).toStrictEqual(v);
    // An element with the right name in the wrong namespace is not the property.
    const wrong = `<order xmlns="${NS}"><id>1</id><geo><lat>1.5</lat><lon>-2</lon></geo></order>`;
    expect(validationError(() => fromXml(C, wrong)).path).toBe('/geo');
  });

  it("xml.nodeType 'text' carries a scalar as the element's text beside attributes", () => {
    const C = payload({
      ns: NS,
      name: 'quote',
      schema: Type.Object({
        price: Type.Object({
          currency: Type.String({ xml: { attribute: true } }),
          amount: Type.Number({ xml: { nodeType: 'text' } }),
        }),
      }),
    });
    const v = { price: { currency: 'EUR', amount: 9.99 } };
    expect(toXml(C, v)).toBe(`<quote xmlns="${NS}"><price currency="EUR">9.99</price></quote>`);
    expect(roundTrip(C, v)).toStrictEqual(v);
  });

  it('nullable values are xsi:nil elements, distinct from absent and empty', () => {
    const C = payload({
      ns: NS,
      name: 'n',
      schema: Type.Object({
        a: Type.Union([Type.String(), Type.Null()]),
        b: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
        c: Type.Union([Type.Object({ x: Type.String() }), Type.Null()]),
        d: Type.Union([Type.Array(Type.String()), Type.Null()], { xml: { wrapped: true } }),
        e: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
      }),
    });
    const v = { a: null, b: null, c: null, d: null, e: null };
    const text = toXml(C, v);
    expect(text).toContain('<a xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>');
    expect(roundTrip(C, v)).toStrictEqual(v);
    const w = { a: '', c: { x: 'y' }, d: [], e: 'e' };
    expect(roundTrip(C, w)).toStrictEqual(w);
    const other = `<n xmlns="${NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><a i:nil="1"/><c i:nil="true"/><d/><e/></n>`;
    expect(fromXml(C, other)).toStrictEqual({ a: null, c: null, d: [], e: '' });
  });

  it('enums and literal unions map to their scalar type', () => {
    const C = payload({
      ns: NS,
      name: 'e',
      schema: Type.Object({
        status: Type.Union([Type.Literal('new'), Type.Literal('done')]),
        level: Type.Union([Type.Literal(1), Type.Literal(2.5)]),
        flag: Type.Literal(true),
        plain: Type.Unsafe<'a' | 'b'>({ enum: ['a', 'b'] }),
      }),
    });
    const v = { status: 'done', level: 2.5, flag: true, plain: 'b' };
    expect(roundTrip(C, v)).toStrictEqual(v);
    expect(
      validationError(() =>
        fromXml(C, `<e xmlns="${NS}"><status>old</status><level>1</level><flag>true</flag><plain>a</plain></e>`),
      ).path,
    ).toBe('/status');
  });

  it('allOf (Type.Intersect) of objects merges their properties', () => {
    const C = payload({
      ns: NS,
      name: 'i',
      schema: Type.Intersect([
        Type.Object({ a: Type.String() }),
        Type.Object({ b: Type.Integer({ xml: { attribute: true } }) }),
      ]),
    });
    expect(toXml(C, { a: 'x', b: 1 })).toBe(`<i xmlns="${NS}" b="1"><a>x</a></i>`);
    expect(roundTrip(C, { a: 'x', b: 1 })).toStrictEqual({ a: 'x', b: 1 });
  });

  it('property names that are not XML names can be renamed with xml.name', () => {
    const C = payload({ ns: NS, name: 'r', schema: Type.Object({ 'a b/c': Type.String({ xml: { name: 'ab' } }) }) });
    expect(toXml(C, { 'a b/c': 'x' })).toBe(`<r xmlns="${NS}"><ab>x</ab></r>`);
    expect(validationError(() => fromXml(C, `<r xmlns="${NS}"><ab><x/></ab></r>`)).path).toBe('/a b~1c');
  });
});

describe('unknown content', () => {
  const Loose = payload({ ns: NS, name: 'l', schema: Type.Object({ a: Type.String() }) });
  const Strict = payload({
    ns: NS,
    name: 's',
    schema: Type.Object({ a: Type.String() }, { additionalProperties: false }),
  });

  it('ignores unknown child elements, attributes and stray text by default (forward compatible)', () => {
    expect(fromXml(Loose, `<l xmlns="${NS}" extra="1">text<a>x</a><b>new field</b><a2/></l>`)).toStrictEqual({
      a: 'x',
    });
  });

  it('rejects unknown child elements and attributes when additionalProperties is false', () => {
    const e1 = validationError(() => fromXml(Strict, `<s xmlns="${NS}"><a>x</a><b/></s>`));
    expect(e1.path).toBe('/b');
    expect(e1.message).toContain('unexpected element <b>');
    const e2 = validationError(() => fromXml(Strict, `<s xmlns="${NS}" extra="1"><a>x</a></s>`));
    expect(e2.path).toBe('/@extra');
    // Namespace declarations are not attributes.
    expect(fromXml(Strict, `<s xmlns="${NS}" xmlns:p="urn:p"><a>x</a></s>`)).toStrictEqual({ a: 'x' });
    // Unknown properties are refused on encode as well (by ajv).
    const e3 = validationError(() => toXml(Strict, { a: 'x', b: 1 } as never));
    expect(e3.path).toBe('/b');
  });
});

describe('validation errors name the path', () => {
  const C = payload({
    ns: NS,
    name: 'create',
    schema: Type.Object({
      items: Type.Array(Type.Object({ sku: Type.String({ minLength: 1 }), qty: Type.Integer({ minimum: 1 }) })),
      at: Type.String({ format: 'date-time' }),
    }),
  });
  const ok = { items: [{ sku: 'a', qty: 1 }], at: '2026-01-01T00:00:00Z' };

  it('on encode (ajv), before anything is built', () => {
    const err = validationError(() =>
      encode(C, {
        ...ok,
        items: [
          { sku: 'a', qty: 1 },
          { sku: 'b', qty: 0 },
        ],
      }),
    );
    expect(err.path).toBe('/items/1/qty');
    expect(err.reason).toBe('must be >= 1');
    expect(err.message).toContain('/items/1/qty');
    expect(err.retryable).toBe(false);
  });

  it('on encode (ajv), listing every issue for the developer', () => {
    const err = validationError(() =>
      toXml(C, { items: [{ sku: '', qty: 0 }], at: 'yesterday' } as unknown as PayloadOf<typeof C>),
    );
    expect(err.issues.map((i) => i.path).sort()).toStrictEqual(['/at', '/items/0/qty', '/items/0/sku']);
    expect(err.message).toContain('more');
  });

  it('on decode (ajv), stopping at the first issue so hostile input costs bounded time', () => {
    const text = `<create xmlns="${NS}"><items><sku/><qty>0</qty></items><at>yesterday</at></create>`;
    const err = validationError(() => fromXml(C, text));
    expect(err.issues).toHaveLength(1);
    expect(['/at', '/items/0/qty', '/items/0/sku']).toContain(err.path);
  });

  it('for missing required properties, naming the property', () => {
    const err = validationError(() => fromXml(C, `<create xmlns="${NS}"><items><sku>a</sku></items></create>`));
    expect(['/at', '/items/0/qty']).toContain(err.path);
    expect(err.issues[0]!.message).toBe('is required');
  });

  it('refuses a huge uniqueItems object array at once on receive (no O(n²) check after maxItems failed)', () => {
    const U = payload({
      ns: NS,
      name: 'u',
      schema: Type.Object({
        x: Type.Array(Type.Object({ a: Type.String(), b: Type.String() }), { maxItems: 10, uniqueItems: true }),
      }),
    });
    const items = Array.from({ length: 20_000 }, (_, i) => `<x><a>${i}</a><b>v</b></x>`).join('');
    const err = validationError(() =>
      fromXml(U, `<u xmlns="${NS}">${items}</u>`, { maxElements: 100_000, maxLength: 1 << 21 }),
    );
    expect(err.issues).toHaveLength(1);
    expect(err.path).toBe('/x');
    expect(err.reason).toMatch(/more than 10 items/);
  });

  it('when text is not of the schema type', () => {
    const cases: [string, string, string][] = [
      ['<qty>x</qty>', '/items/0/qty', 'must be integer'],
      ['<qty>1.5</qty>', '/items/0/qty', 'must be integer'],
      ['<qty> 1</qty>', '/items/0/qty', 'must be integer'],
      ['<qty>0x10</qty>', '/items/0/qty', 'must be integer'],
      ['<qty/>', '/items/0/qty', 'must be integer'],
      ['<qty>Infinity</qty>', '/items/0/qty', 'must be integer'],
      ['<qty>1<b/></qty>', '/items/0/qty', 'must be text (found a child element)'],
    ];
    for (const [frag, path, reason] of cases) {
      const err = validationError(() =>
        fromXml(C, `<create xmlns="${NS}"><items><sku>a</sku>${frag}</items><at>2026-01-01T00:00:00Z</at></create>`),
      );
      expect([err.path, err.reason]).toStrictEqual([path, reason]);
    }
    const N = payload({ ns: NS, name: 'n', schema: Type.Object({ x: Type.Number(), b: Type.Boolean() }) });
    expect(validationError(() => fromXml(N, `<n xmlns="${NS}"><x>1e999</x><b>true</b></n>`)).path).toBe('/x');
    expect(validationError(() => fromXml(N, `<n xmlns="${NS}"><x>-.5</x><b>yes</b></n>`)).reason).toBe(
      'must be boolean',
    );
    expect(fromXml(N, `<n xmlns="${NS}"><x>+.5E1</x><b>0</b></n>`)).toStrictEqual({ x: 5, b: false });
  });

  it('when a non-array element appears twice', () => {
    const err = validationError(() =>
      fromXml(C, `<create xmlns="${NS}"><at>2026-01-01T00:00:00Z</at><at>2026-01-01T00:00:00Z</at></create>`),
    );
    expect([err.path, err.reason]).toStrictEqual(['/at', 'element <at> appears more than once']);
  });

  it('when the element is not the contract payload', () => {
    const err = validationError(() => decode(C, parseXml(`<create xmlns="urn:other"/>`)));
    expect(err.path).toBe('');
    expect(err.reason).toContain(`expected <create xmlns='${NS}'>`);
    expect(() => decode(C, parseXml(`<delete xmlns="${NS}"/>`))).toThrow(ValidationError);
  });

  it('when a string holds a character XML cannot carry', () => {
    const err = validationError(() => encode(C, { ...ok, items: [{ sku: 'a\u0000b', qty: 1 }] }));
    expect([err.path, err.reason]).toStrictEqual(['/items/0/sku', 'contains a character XML cannot carry']);
    expect(validationError(() => encode(C, { ...ok, at: '\uD800' }, { validate: false })).path).toBe('/at');
  });

  it('with validate: false, the codec still refuses values it cannot represent', () => {
    const err = validationError(() =>
      encode(C, { items: [{ sku: 'a', qty: '1' }], at: 'x' } as never, { validate: false }),
    );
    expect(err.path).toBe('/items/0/qty');
    expect(validationError(() => encode(C, { items: null } as never, { validate: false })).path).toBe('/items');
    // …but skips schema constraints on both sides.
    expect(toXml(C, { items: [{ sku: '', qty: 0 }], at: 'x' }, { validate: false })).toContain('<qty>0</qty>');
    expect(
      decode(C, parseXml(`<create xmlns="${NS}"><items><qty>0</qty></items></create>`), { validate: false }),
    ).toStrictEqual({
      items: [{ qty: 0 }],
    });
  });

  it('validate() returns the value typed or throws', () => {
    expect(validate(C, ok)).toBe(ok);
    expect(validationError(() => validate(C, { ...ok, at: 1 })).path).toBe('/at');
  });
});

describe('hostile input', () => {
  const C = payload({ ns: NS, name: 'l', schema: Type.Object({ v: Type.Array(Type.String()) }) });

  it('refuses DTDs and entity declarations (no entity expansion)', () => {
    const bomb = `<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l xmlns="${NS}"><v>&b;</v></l>`;
    const err = thrown(() => fromXml(C, bomb));
    expect(err).toBeInstanceOf(XmlError);
    expect((err as XmlError).code).toBe('ERR_XML');
  });

  it('refuses undeclared entities and malformed XML with XmlError', () => {
    expect(thrown(() => fromXml(C, `<l xmlns="${NS}"><v>&b;</v></l>`))).toBeInstanceOf(XmlError);
    expect(thrown(() => fromXml(C, `<l xmlns="${NS}"><v>`))).toBeInstanceOf(XmlError);
  });

  it('caps the text size and the element count with PayloadTooLargeError', () => {
    const big = `<l xmlns="${NS}">${'<v>x</v>'.repeat(200)}</l>`;
    const e1 = thrown(() => fromXml(C, big, { maxLength: 1000 }));
    expect(e1).toBeInstanceOf(PayloadTooLargeError);
    expect((e1 as PayloadTooLargeError).code).toBe('ERR_PAYLOAD_TOO_LARGE');
    expect((e1 as PayloadTooLargeError).limit).toBe(1000);
    expect(thrown(() => fromXml(C, big, { maxElements: 100 }))).toBeInstanceOf(PayloadTooLargeError);
    expect((fromXml(C, big, { maxElements: 200 }) as { v: string[] }).v).toHaveLength(200);
  });

  it('does not descend into elements the schema does not describe (depth is bounded by the schema)', () => {
    const deep = `<l xmlns="${NS}"><x>${'<x>'.repeat(5000)}${'</x>'.repeat(5000)}</x><v>a</v></l>`;
    expect(fromXml(C, deep)).toStrictEqual({ v: ['a'] });
  });

  it('a __proto__ element cannot pollute the result', () => {
    const v = fromXml(C, `<l xmlns="${NS}"><__proto__><polluted>1</polluted></__proto__><v>a</v></l>`);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('schemas the codec cannot map are rejected with SchemaError', () => {
  const cases: [string, unknown, string][] = [
    ['Type.Any', Type.Object({ a: Type.Any() }), '/properties/a'],
    ['string|number', Type.Object({ a: Type.Union([Type.String(), Type.Number()]) }), '/properties/a'],
    [
      'union of objects',
      Type.Object({ a: Type.Union([Type.Object({ x: Type.String() }), Type.Object({ y: Type.String() })]) }),
      '/properties/a',
    ],
    ['record', Type.Object({ a: Type.Record(Type.String(), Type.String()) }), '/properties/a'],
    ['$ref', Type.Object({ a: Type.Ref('T') }), '/properties/a'],
    ['attribute object', Type.Object({ a: Type.Object({}, { xml: { attribute: true } }) }), '/properties/a'],
    [
      'nullable attribute',
      Type.Object({ a: Type.Union([Type.String(), Type.Null()], { xml: { attribute: true } }) }),
      '/properties/a',
    ],
    ['tuple', Type.Object({ a: Type.Tuple([Type.String(), Type.Number()]) }), '/properties/a'],
    ['unwrapped array of arrays', Type.Object({ a: Type.Array(Type.Array(Type.String())) }), '/properties/a'],
    [
      'unwrapped nullable array',
      Type.Object({ a: Type.Union([Type.Array(Type.String()), Type.Null()]) }),
      '/properties/a',
    ],
    ['mixed text and elements', Type.Object({ t: Type.String({ xml: { nodeType: 'text' } }), e: Type.String() }), ''],
    ['optional text', Type.Object({ t: Type.Optional(Type.String({ xml: { nodeType: 'text' } })) }), '/properties/t'],
    [
      'two properties, one element',
      Type.Object({ a: Type.String(), b: Type.String({ xml: { name: 'a' } }) }),
      '/properties/b',
    ],
    ['not an XML name', Type.Object({ 'a b': Type.String() }), '/properties/a b'],
    ['prefixed xml.name', Type.Object({ a: Type.String({ xml: { name: 'p:a' } }) }), '/properties/a'],
    ['unknown annotation', Type.Object({ a: Type.String({ xml: { attr: true } }) }), '/properties/a'],
    ['__proto__ key', { type: 'object', properties: { ['__proto__']: { type: 'string' } } }, '/properties/__proto__'],
    ['nullable root', Type.Union([Type.String(), Type.Null()]), ''],
    ['always null', Type.Object({ a: Type.Null() }), '/properties/a'],
    ['untyped', {}, ''],
  ];
  for (const [label, schema, path] of cases) {
    it(label, () => {
      const C = payload({ ns: NS, name: 'x', schema: schema as ReturnType<typeof Type.Object> });
      const err = schemaError(() => encode(C, {} as never, { validate: false }));
      expect(err.schemaPath).toBe(path);
      // Decoding and validating report the same error.
      expect(() => decode(C, parseXml(`<x xmlns="${NS}"/>`))).toThrow(SchemaError);
    });
  }
});

describe('schemas ajv cannot compile are rejected with SchemaError', () => {
  it('unknown formats and invalid keywords', () => {
    for (const schema of [
      Type.Object({ a: Type.String({ format: 'no-such-format' }) }),
      Type.Object({ a: Type.String({ minLength: 'x' as never }) }),
    ]) {
      const C = payload({ ns: NS, name: 'x', schema });
      expect(schemaError(() => validate(C, { a: 'z' })).message).toContain('ajv cannot compile');
    }
  });
});

describe('compiled once, cached per schema', () => {
  it('reuses the compiled ajv function for the same schema object', () => {
    const schema = Type.Object({ a: Type.String() });
    const a = payload({ ns: NS, name: 'a', schema });
    const b = payload({ ns: 'urn:b', name: 'b', schema });
    expect(compiledValidator(a)).toBe(compiledValidator(b));
    expect(compiledValidator(a)).not.toBe(
      compiledValidator(payload({ ns: NS, name: 'a', schema: Type.Object({ a: Type.String() }) })),
    );
  });

  it('accepts two schemas with the same $id', () => {
    const a = payload({
      ns: NS,
      name: 'a',
      schema: Type.Object({ a: Type.String() }, { $id: 'https://example.test/dup.json' }),
    });
    const b = payload({
      ns: NS,
      name: 'b',
      schema: Type.Object({ b: Type.String() }, { $id: 'https://example.test/dup.json' }),
    });
    expect(toXml(a, { a: 'x' })).toContain('<a>x</a>');
    expect(toXml(b, { b: 'x' })).toContain('<b>x</b>');
  });
});

describe('method contracts', () => {
  const Create = method({
    ns: NS,
    name: 'create',
    responseName: 'created',
    request: Type.Object({ sku: Type.String() }),
    response: Type.Object({ orderId: Type.String({ xml: { attribute: true } }) }),
  });
  it('request and response are payload contracts', () => {
    expect(toXml(Create.request, { sku: 'a' })).toBe(`<create xmlns="${NS}"><sku>a</sku></create>`);
    expect(toXml(Create.response, { orderId: 'o1' })).toBe(`<created xmlns="${NS}" orderId="o1"/>`);
    expect(fromXml(Create.response, `<created xmlns="${NS}" orderId="o1"/>`)).toStrictEqual({ orderId: 'o1' });
  });
});

describe('rawPayload', () => {
  const Raw = rawPayload({ ns: 'urn:raw', name: 'blob' });
  it('passes the element through both ways and checks name and namespace', () => {
    const el: Element = parseXml(`<blob xmlns="urn:raw"><anything a="1">free <b/> form</anything></blob>`);
    expect(encode(Raw, el)).toBe(el);
    expect(decode(Raw, el)).toBe(el);
    expect(validate(Raw, el)).toBe(el);
    expect(validationError(() => decode(Raw, parseXml(`<blob xmlns="urn:other"/>`))).path).toBe('');
    expect(validationError(() => encode(Raw, parseXml(`<other xmlns="urn:raw"/>`))).path).toBe('');
    expect(validationError(() => validate(Raw, { not: 'an element' })).path).toBe('');
  });
});

describe('matches', () => {
  it('compares local name and namespace, prefixed or not', () => {
    expect(matches(Order, parseXml(`<create xmlns="${NS}"/>`))).toBe(true);
    expect(matches(Order, parseXml(`<p:create xmlns:p="${NS}"/>`))).toBe(true);
    expect(matches(Order, parseXml(`<create xmlns="urn:x"/>`))).toBe(false);
    expect(matches(Order, parseXml(`<p:create xmlns:p="urn:x" xmlns="${NS}"/>`))).toBe(false);
    expect(matches(Order, parseXml(`<created xmlns="${NS}"/>`))).toBe(false);
  });
});

describe('the docs/protocol.md example', () => {
  const Create = payload({
    ns: 'urn:example:orders:1',
    name: 'create',
    schema: Type.Object({
      id: Type.String({ xml: { attribute: true } }),
      sku: Type.String(),
      qty: Type.Integer({ minimum: 1 }),
      price: Type.Object({
        currency: Type.String({ xml: { attribute: true } }),
        amount: Type.Number({ xml: { nodeType: 'text' } }),
      }),
      rush: Type.Boolean(),
      note: Type.Optional(Type.String()),
      tag: Type.Array(Type.String()),
      lines: Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer() }, { xml: { name: 'line' } }), {
        xml: { wrapped: true },
      }),
      coupon: Type.Union([Type.String(), Type.Null()]),
      geo: Type.Optional(
        Type.Object({ lat: Type.Number(), lon: Type.Number() }, { xml: { namespace: 'urn:example:geo:1' } }),
      ),
    }),
  });
  const value = {
    id: 'o-1',
    sku: 'A1',
    qty: 2,
    price: { currency: 'EUR', amount: 9.5 },
    rush: false,
    tag: ['gift'],
    lines: [{ sku: 'B2', qty: 1 }],
    coupon: null,
    geo: { lat: 48.1, lon: 11.5 },
  };
  const documented = `<create xmlns='urn:example:orders:1' id='o-1'>
  <sku>A1</sku>
  <qty>2</qty>
  <price currency='EUR'>9.5</price>
  <rush>false</rush>
  <tag>gift</tag>
  <lines><line><sku>B2</sku><qty>1</qty></line></lines>
  <coupon xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:nil='true'/>
  <geo xmlns='urn:example:geo:1'><lat>48.1</lat><lon>11.5</lon></geo>
</create>`;

  it('encodes to the documented XML and reads the documented XML back', () => {
    const compact = documented.replace(/\n\s*/g, '').replace(/'/g, '"');
    expect(toXml(Create, value)).toBe(compact);
    expect(fromXml(Create, documented)).toStrictEqual(value);
  });
});
