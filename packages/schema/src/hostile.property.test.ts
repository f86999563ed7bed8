/**
 * Property-based hardening of the codec: generated schemas × hostile inputs (hardening issue,
 * deliverable 8). decode() gets element trees that loosely follow the schema but carry extra and
 * duplicate children, wrong types, integers beyond 2^53, NaN/Infinity text, deep nesting, illegal
 * characters, xsi:nil where not nullable and unexpected namespaces; encode() gets values with wrong
 * JS types, inherited (prototype) values, own `__proto__` keys, throwing getters, cycles, sparse
 * arrays and non-finite numbers. Property names are drawn from Object.prototype's names too.
 *
 * The property: every call returns a value the schema accepts, or throws an XmppBusError
 * (ValidationError, SchemaError, XmlError, PayloadTooLargeError) — never a TypeError or RangeError,
 * never a stack overflow — and Object.prototype is never touched. A throwing getter's own error
 * may pass through unchanged: it is the caller's code failing, not the codec.
 */
import type { TSchema } from '@sinclair/typebox';
import { Element, XmppBusError } from '@xmppbus/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { compiledValidator, decode, encode, fromXml, payload, ValidationError } from './index.js';
import type { PayloadContract } from './index.js';

type Json = Record<string, unknown>;

const NS = 'urn:h:root';
const OTHER_NS = 'urn:h:other';
const NS_XSI = 'http://www.w3.org/2001/XMLSchema-instance';

/** Names of Object.prototype members (and plain ones): as property keys and as XML names. */
const PROTO_NAMES = [
  'constructor',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__lookupGetter__',
];
const NAMES = ['a', 'b', 'item', 'it', ...PROTO_NAMES];
/** `__proto__` only where the codec must refuse it (SchemaError) or ignore it. */
const KEY_NAMES = [...NAMES, '__proto__'];

// ---------------------------------------------------------------------------------------------
// Schemas

const nameArb = fc.constantFrom(...NAMES);

const scalarSchema: fc.Arbitrary<Json> = fc
  .tuple(fc.constantFrom('string', 'integer', 'number', 'boolean', 'enum', 'bounded-int', 'short-string'), fc.boolean())
  .map(([t, nullable]) => {
    let s: Json;
    switch (t) {
      case 'enum':
        s = { type: 'string', enum: ['on', 'off', ''] };
        break;
      case 'bounded-int':
        s = { type: 'integer', minimum: -5, maximum: 1_000 };
        break;
      case 'short-string':
        s = { type: 'string', maxLength: 3 };
        break;
      default:
        s = { type: t };
    }
    return nullable ? { anyOf: [s, { type: 'null' }] } : s;
  });

function withProps(entries: [string, Json][]): Json {
  const properties: Json = {};
  // defineProperty: a key named `__proto__` becomes an own property, as JSON.parse would make it.
  for (const [k, v] of entries)
    Object.defineProperty(properties, k, { value: v, enumerable: true, writable: true, configurable: true });
  return properties;
}

const schemaTree = fc.letrec<{ node: Json; object: Json; array: Json; textual: Json }>((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, scalarSchema, scalarSchema, tie('object'), tie('array'), tie('textual')),
  array: fc
    .record({
      items: tie('node'),
      itemName: fc.option(nameArb, { nil: undefined }),
      maxItems: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
      unique: fc.boolean(),
      nullable: fc.boolean(),
    })
    .map(({ items, itemName, maxItems, unique, nullable }) => {
      const s: Json = { type: 'array', items: itemName ? { ...items, xml: { name: itemName } } : items };
      if (maxItems !== undefined) s['maxItems'] = maxItems;
      if (unique) s['uniqueItems'] = true;
      return nullable ? { anyOf: [s, { type: 'null' }] } : s;
    }),
  textual: fc
    .tuple(scalarSchema, fc.constantFrom(...KEY_NAMES), fc.constantFrom(...KEY_NAMES))
    .map(([t, textKey, attrKey]) => ({
      type: 'object',
      properties: withProps([
        [textKey, { ...stripNull(t), xml: { nodeType: 'text' } }],
        ...(attrKey !== textKey
          ? ([[attrKey, { type: 'integer', xml: { attribute: true } }]] as [string, Json][])
          : []),
      ]),
      required: [textKey],
    })),
  object: fc
    .record({
      props: fc.uniqueArray(
        fc.record({
          key: fc.constantFrom(...KEY_NAMES),
          node: tie('node'),
          required: fc.boolean(),
          attribute: fc.boolean(),
          rename: fc.option(fc.constantFrom(...KEY_NAMES), { nil: undefined }),
          ns: fc.option(fc.constantFrom(OTHER_NS), { nil: undefined, freq: 4 }),
          wrapped: fc.boolean(),
        }),
        { maxLength: 4, selector: (p) => p.key },
      ),
      strict: fc.boolean(),
    })
    .map(({ props, strict }) => {
      const entries: [string, Json][] = [];
      const required: string[] = [];
      for (const p of props) {
        const xml: Json = {};
        const scalar =
          !('anyOf' in p.node) && ['string', 'integer', 'number', 'boolean'].includes(String(p.node['type']));
        if (p.attribute && scalar) xml['attribute'] = true;
        else {
          if (p.ns !== undefined) xml['namespace'] = p.ns;
          if (isArraySchema(p.node) && p.wrapped) xml['wrapped'] = true;
        }
        if (p.rename !== undefined) xml['name'] = p.rename;
        entries.push([p.key, Object.keys(xml).length > 0 ? { ...p.node, xml } : p.node]);
        if (p.required) required.push(p.key);
      }
      const s: Json = { type: 'object', properties: withProps(entries), required };
      if (strict) s['additionalProperties'] = false;
      return s;
    }),
}));

function stripNull(s: Json): Json {
  return Array.isArray(s['anyOf']) ? ((s['anyOf'] as Json[])[0] as Json) : s;
}
function isArraySchema(s: Json): boolean {
  return stripNull(s)['type'] === 'array';
}
function propsOf(s: Json): [string, Json][] {
  const p = s['properties'] as Json | undefined;
  return p === undefined ? [] : Object.keys(p).map((k) => [k, p[k] as Json]);
}

// ---------------------------------------------------------------------------------------------
// A small deterministic PRNG, seeded by fast-check: the hostile inputs follow the schema's shape.

type Rnd = () => number;
function prng(seed: number): Rnd {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rnd, p: number): boolean => r() < p;

const HOSTILE_TEXT = [
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890',
  '1e400',
  '-1e400',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x1F',
  '0b1',
  ' 1 ',
  '+1',
  '-0',
  '1.5',
  '1e2',
  '.',
  '-',
  '',
  'true',
  'yes',
  '\u0000',
  '\uFFFE',
  '\uD800',
  'a\u001Fb',
  '<x/>',
  '&amp;',
  'x'.repeat(50),
];

function validText(s: Json, r: Rnd): string {
  switch (stripNull(s)['type']) {
    case 'integer':
      return String(Math.floor(r() * 2000) - 1000);
    case 'number':
      return String((r() - 0.5) * 1e6);
    case 'boolean':
      return pick(r, ['true', 'false', '1', '0']);
    default:
      return pick(r, ['on', 'off', '', 'ab', 'x y']);
  }
}
const text = (s: Json, r: Rnd): string => (chance(r, 0.25) ? pick(r, HOSTILE_TEXT) : validText(s, r));

/** A chain of `depth` nested elements, built without recursion. */
function deepChain(depth: number, name: string): Element {
  const root = new Element(name);
  let cur = root;
  for (let i = 1; i < depth; i++) {
    const c = new Element(name);
    c.parent = cur;
    cur.children.push(c);
    cur = c;
  }
  cur.children.push('1');
  return root;
}

function add(parent: Element, c: Element | string): void {
  if (typeof c !== 'string') c.parent = parent;
  parent.children.push(c);
}

/** Attributes and children that do not belong anywhere (or belong elsewhere). */
function vandalise(el: Element, r: Rnd, depth: number): void {
  const a = el.attrs as Record<string, string>;
  if (chance(r, 0.1)) a['xsi:nil'] = pick(r, ['true', '1', 'false', 'maybe']);
  if (chance(r, 0.08)) a['xmlns:xsi'] = pick(r, [NS_XSI, OTHER_NS]);
  if (chance(r, 0.05)) a[pick(r, NAMES)] = pick(r, HOSTILE_TEXT);
  if (chance(r, 0.05)) {
    a['xmlns:p'] = pick(r, [NS, OTHER_NS, NS_XSI]);
    a['p:' + pick(r, NAMES)] = pick(r, HOSTILE_TEXT);
  }
  if (chance(r, 0.05)) a['q:' + pick(r, NAMES)] = '1'; // undeclared prefix
  if (chance(r, 0.1)) add(el, pick(r, HOSTILE_TEXT));
  if (chance(r, 0.1)) {
    const c = new Element(pick(r, NAMES));
    if (chance(r, 0.5)) c.attrs['xmlns'] = pick(r, [NS, OTHER_NS, '']);
    add(c, pick(r, HOSTILE_TEXT));
    add(el, c);
  }
  if (chance(r, 0.04)) {
    const c = new Element('p:' + pick(r, NAMES));
    c.attrs['xmlns:p'] = pick(r, [NS, OTHER_NS]);
    add(c, text({ type: 'integer' }, r));
    add(el, c);
  }
  if (depth < 3 && chance(r, 0.02)) add(el, deepChain(pick(r, [50, 2_000, 20_000]), pick(r, NAMES)));
}

/** An element tree that loosely follows `schema` (names, attributes, arrays) with hostile parts. */
function hostileTree(schema: Json, name: string, r: Rnd, depth: number): Element {
  const el = new Element(name);
  const s = stripNull(schema);
  if (depth > 6) {
    add(el, text(s, r));
    return el;
  }
  if (s['type'] === 'object') {
    for (const [key, ps] of propsOf(s)) {
      if (chance(r, 0.15)) continue; // missing (required or not)
      const x = (ps['xml'] ?? {}) as Json;
      const pname = (x['name'] as string | undefined) ?? key;
      if (x['attribute'] === true) {
        (el.attrs as Record<string, string>)[pname] = text(ps, r);
      } else if (x['nodeType'] === 'text') {
        add(el, text(ps, r));
      } else {
        const times = chance(r, 0.1) ? 2 : 1; // duplicates
        for (let t = 0; t < times; t++) {
          const c = isArraySchema(ps) && x['wrapped'] !== true ? arrayItems(ps, pname, r, depth) : undefined;
          if (c !== undefined) for (const i of c) add(el, i);
          else {
            const child = hostileTree(ps, pname, r, depth + 1);
            const ns = x['namespace'] as string | undefined;
            if (ns !== undefined || chance(r, 0.05)) child.attrs['xmlns'] = chance(r, 0.9) ? (ns ?? OTHER_NS) : NS;
            add(el, child);
          }
        }
      }
    }
  } else if (s['type'] === 'array') {
    const items = s['items'] as Json;
    const iname = ((items['xml'] as Json | undefined)?.['name'] as string | undefined) ?? 'item';
    const n = Math.floor(r() * 5);
    for (let i = 0; i < n; i++) add(el, hostileTree(items, chance(r, 0.9) ? iname : pick(r, NAMES), r, depth + 1));
  } else {
    add(el, text(s, r));
  }
  if (schema !== s && chance(r, 0.3)) {
    el.attrs['xmlns:xsi'] = NS_XSI;
    el.attrs['xsi:nil'] = 'true';
  }
  vandalise(el, r, depth);
  return el;
}

function arrayItems(ps: Json, name: string, r: Rnd, depth: number): Element[] {
  const items = stripNull(ps)['items'] as Json;
  const iname = ((items['xml'] as Json | undefined)?.['name'] as string | undefined) ?? name;
  const n = Math.floor(r() * 4);
  const out: Element[] = [];
  for (let i = 0; i < n; i++) out.push(hostileTree(items, iname, r, depth + 1));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hostile values for encode

class GetterError extends Error {}

function hostileScalar(r: Rnd): unknown {
  return pick(r, [
    NaN,
    Infinity,
    -Infinity,
    -0,
    2 ** 53 + 2,
    -(2 ** 60),
    1e308 * 10,
    1.5,
    '1',
    '',
    '\u0000',
    '\uD800',
    'a\uFFFEb',
    true,
    null,
    undefined,
    10n,
    Symbol('s'),
    () => 1,
    new Date(0),
    new Map(),
    [],
    {},
    Object.create(null) as object,
  ]);
}

function validScalar(s: Json, r: Rnd): unknown {
  switch (s['type']) {
    case 'integer':
      return Math.floor(r() * 2000) - 1000;
    case 'number':
      return (r() - 0.5) * 1e6;
    case 'boolean':
      return r() < 0.5;
    default:
      return pick(r, ['on', 'off', '', 'ab']);
  }
}

function hostileValue(schema: Json, r: Rnd, depth: number, ancestors: object[]): unknown {
  if (chance(r, 0.06)) return hostileScalar(r);
  if (schema !== stripNull(schema) && chance(r, 0.2)) return null;
  const s = stripNull(schema);
  if (s['type'] === 'object' && depth < 8) {
    const props = propsOf(s);
    const mode = r();
    // Inherited values only (a prototype-polluted object): the codec reads own properties.
    const base: Record<string, unknown> =
      mode < 0.08
        ? Object.create(Object.fromEntries(props.map(([k, p]) => [k, hostileValue(p, r, depth + 1, [])])))
        : {};
    const obj: Record<string, unknown> = mode >= 0.08 && mode < 0.12 ? Object.create(null) : base;
    for (const [key, ps] of props) {
      if (chance(r, 0.1)) continue;
      const desc: PropertyDescriptor = chance(r, 0.05)
        ? {
            get: () => {
              throw new GetterError(`getter of ${key}`);
            },
          }
        : { value: hostileValue(ps, r, depth + 1, [...ancestors, obj]), writable: true };
      Object.defineProperty(obj, key, { ...desc, enumerable: true, configurable: true });
    }
    if (chance(r, 0.05)) obj['self'] = obj; // cycle through a property the schema does not know
    if (chance(r, 0.03) && ancestors.length > 0) obj['up'] = ancestors[0]; // cycle to the root
    if (chance(r, 0.03)) Object.assign(obj, JSON.parse('{"__proto__":{"polluted":true}}') as object);
    if (chance(r, 0.03))
      Object.defineProperty(obj, '__proto__', { value: { polluted: true }, enumerable: true, configurable: true });
    return obj;
  }
  if (s['type'] === 'array' && depth < 8) {
    const n = Math.floor(r() * 4);
    const out: unknown[] = chance(r, 0.1) ? new Array<unknown>(n) : []; // sparse
    for (let i = 0; i < n; i++) {
      if (out.length === n && chance(r, 0.3)) continue; // a hole in a pre-sized array
      out[i] = hostileValue(s['items'] as Json, r, depth + 1, ancestors);
    }
    if (chance(r, 0.05) && out.length > 0) out[0] = out; // an array containing itself
    if (chance(r, 0.05) && n > 1) out[1] = out[0]; // uniqueItems: the same item twice
    return out;
  }
  return chance(r, 0.2) ? hostileScalar(r) : validScalar(s, r);
}

// ---------------------------------------------------------------------------------------------
// The property

const protoKeys = Object.getOwnPropertyNames(Object.prototype).sort().join();

function expectCodecError(err: unknown, allowGetter: boolean): void {
  if (err instanceof XmppBusError) return;
  if (allowGetter && err instanceof GetterError) return;
  throw new Error(`unexpected ${(err as Error)?.constructor?.name}: ${String((err as Error)?.message ?? err)}`, {
    cause: err,
  });
}

function expectUntouchedPrototype(): void {
  expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort().join()).toBe(protoKeys);
}

function decodeHolds(c: PayloadContract, el: Element, maxElements: number | undefined): void {
  const opts = maxElements === undefined ? undefined : { maxElements };
  try {
    const v = decode(c, el, opts);
    expect(compiledValidator(c)(v)).toBe(true);
  } catch (err) {
    expectCodecError(err, false);
  }
  try {
    decode(c, el, { ...opts, validate: false });
  } catch (err) {
    expectCodecError(err, false);
  }
}

function encodeHolds(c: PayloadContract, v: unknown): void {
  try {
    const el = encode(c, v as never);
    // What encode produced is a valid payload: it decodes (and validates) again.
    expect(compiledValidator(c)(decode(c, el))).toBe(true);
  } catch (err) {
    expectCodecError(err, true);
  }
  try {
    encode(c, v as never, { validate: false });
  } catch (err) {
    expectCodecError(err, true);
  }
}

// A fixed seed keeps the suite deterministic; set FC_SEED to explore other corners.
const SEED = Number(process.env['FC_SEED'] ?? 20261204);
// Each generated schema is compiled by ajv once (~1 ms): generous timeouts for a loaded machine.
const TIMEOUT = 120_000;

describe('codec against hostile input (property-based)', () => {
  afterEach(() => expectUntouchedPrototype());

  it(
    'decode: hostile element trees give a valid value or an XmppBusError',
    () => {
      fc.assert(
        fc.property(
          schemaTree.object,
          fc.integer(),
          fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined, freq: 4 }),
          (schema, seed, maxElements) => {
            const c = payload({ ns: NS, name: 'root', schema: schema as TSchema });
            const r = prng(seed);
            for (let k = 0; k < 4; k++) {
              const el = hostileTree(schema, chance(r, 0.05) ? 'p:root' : 'root', r, 0);
              if (el.name === 'p:root') el.attrs['xmlns:p'] = NS;
              else el.attrs['xmlns'] = chance(r, 0.97) ? NS : OTHER_NS;
              decodeHolds(c, el, maxElements);
            }
            expectUntouchedPrototype();
          },
        ),
        { numRuns: 250, seed: SEED },
      );
    },
    TIMEOUT,
  );

  it(
    'fromXml: the same trees as text give a valid value or an XmppBusError',
    () => {
      fc.assert(
        fc.property(schemaTree.object, fc.integer(), (schema, seed) => {
          const c = payload({ ns: NS, name: 'root', schema: schema as TSchema });
          const r = prng(seed);
          const el = hostileTree(schema, 'root', r, 3); // depth 3: no deep chains (ltx serialises recursively)
          el.attrs['xmlns'] = NS;
          try {
            const v = fromXml(c, el.toString());
            expect(compiledValidator(c)(v)).toBe(true);
          } catch (err) {
            expectCodecError(err, false);
          }
        }),
        { numRuns: 150, seed: SEED },
      );
    },
    TIMEOUT,
  );

  it(
    'encode: hostile values give a payload that decodes, or an XmppBusError',
    () => {
      fc.assert(
        fc.property(schemaTree.node, fc.integer(), (schema, seed) => {
          if (schema !== stripNull(schema)) schema = stripNull(schema); // the root cannot be nullable
          const c = payload({ ns: NS, name: 'root', schema: schema as TSchema });
          const r = prng(seed);
          for (let k = 0; k < 4; k++) encodeHolds(c, hostileValue(schema, r, 0, []));
          expectUntouchedPrototype();
        }),
        { numRuns: 300, seed: SEED },
      );
    },
    TIMEOUT,
  );
});

describe('codec hostile regressions', () => {
  const attrContract = (name: string, type: string): PayloadContract =>
    payload({
      ns: NS,
      name: 'root',
      schema: { type: 'object', properties: { a: { type, xml: { attribute: true, name } } } } as unknown as TSchema,
    });

  it('an absent attribute named like an Object.prototype member reads as absent, not inherited', () => {
    for (const name of ['constructor', 'hasOwnProperty', 'toString', 'valueOf']) {
      for (const type of ['integer', 'number', 'string', 'boolean']) {
        const c = attrContract(name, type);
        expect(decode(c, new Element('root', { xmlns: NS }))).toStrictEqual({});
        expect(decode(c, new Element('root', { xmlns: NS }), { validate: false })).toStrictEqual({});
      }
    }
    const c = attrContract('constructor', 'integer');
    expect(decode(c, new Element('root', { xmlns: NS, constructor: '7' }))).toStrictEqual({ a: 7 });
  });

  it("refuses an attribute named '__proto__' (no XML parser can deliver it, encode would drop it)", () => {
    const c = attrContract('__proto__', 'integer');
    expect(() => encode(c, { a: 1 } as never)).toThrow(/__proto__/);
    expect(() => decode(c, new Element('root', { xmlns: NS }))).toThrow(/__proto__/);
  });

  it('a cyclic or very deep value under uniqueItems is a ValidationError, not a stack overflow', () => {
    const c = payload({
      ns: NS,
      name: 'root',
      schema: {
        type: 'object',
        properties: {
          l: { type: 'array', uniqueItems: true, items: { type: 'object', properties: { a: { type: 'string' } } } },
        },
      } as unknown as TSchema,
    });
    const cyclic = (): Record<string, unknown> => {
      const o: Record<string, unknown> = { a: 'x' };
      o['self'] = o;
      return o;
    };
    expect(() => encode(c, { l: [cyclic(), cyclic()] } as never)).toThrow(ValidationError);
    const deep = (): Record<string, unknown> => {
      let d: Record<string, unknown> = {};
      for (let i = 0; i < 100_000; i++) d = { n: d };
      return d;
    };
    expect(() =>
      encode(c, {
        l: [
          { a: 'x', d: deep() },
          { a: 'x', d: deep() },
        ],
      } as never),
    ).toThrow(ValidationError);
  });

  it("uniqueItems over items with a field named 'toString' is a ValidationError on both sides, not a TypeError", () => {
    const c = payload({
      ns: NS,
      name: 'root',
      schema: {
        type: 'array',
        uniqueItems: true,
        items: { type: 'object', properties: { toString: { type: 'integer', xml: { attribute: true } } } },
      } as unknown as TSchema,
    });
    expect(() => encode(c, [{ toString: 1 }, { toString: 2 }] as never)).toThrow(ValidationError);
    const el = new Element('root', { xmlns: NS });
    el.c('item', { toString: '1' });
    el.c('item', { toString: '2' });
    expect(() => decode(c, el)).toThrow(ValidationError);
  });
});
