/**
 * The schema-driven codec: typed object ⇄ ltx element tree, driven by the precomputed plan
 * (plan.ts) and validated by the cached ajv function (validator.ts). Decoding reads the element
 * tree the transport already parsed; nothing is re-serialised to a string on the way.
 */
import { Type } from '@sinclair/typebox';
import type { TUnsafe } from '@sinclair/typebox';
import { Element, isXmlElement, parseXml, PayloadTooLargeError } from '@xmppbus/core';
import type { ValidateFunction } from 'ajv';
import type { PayloadContract, PayloadOf } from './contract.js';
import { payload } from './contract.js';
import { ValidationError } from './errors.js';
import type { ValidationIssue } from './errors.js';
import { NS_XSI, planOf, RAW_MARK } from './plan.js';
import type { ArrayPlan, ObjectPlan, ScalarKind, ValuePlan } from './plan.js';
import { issuesOf, validatorOf } from './validator.js';

export interface EncodeOptions {
  /** Validate the value against the schema before encoding (default true). */
  validate?: boolean;
}

export interface DecodeOptions {
  /** Validate the decoded object against the schema (default true). */
  validate?: boolean;
  /** Most elements the payload may contain (default 100 000); more throws PayloadTooLargeError. */
  maxElements?: number;
}

export interface FromXmlOptions extends DecodeOptions {
  /** Longest accepted XML text in characters (default 512 KiB, Prosody's component stanza cap). */
  maxLength?: number;
}

const DEFAULT_MAX_ELEMENTS = 100_000;
const DEFAULT_MAX_LENGTH = 512 * 1024;

// ---------------------------------------------------------------------------------------------
// Error paths. Encoding and decoding are synchronous and never re-entered, so one module-level
// stack of path segments serves every call without allocating; it is read only when failing.

const pathStack: (string | number)[] = [];
let sp = 0;

class Fail {
  constructor(
    readonly path: string,
    readonly message: string,
  ) {}
}

function fail(message: string): never {
  let path = '';
  for (let i = 0; i < sp; i++) path += '/' + String(pathStack[i]);
  throw new Fail(path, message);
}

function describe(contract: PayloadContract): string {
  return `<${contract.name} xmlns='${contract.ns}'>`;
}

function rethrow(contract: PayloadContract, err: unknown): never {
  if (err instanceof Fail)
    throw new ValidationError({ path: err.path, message: err.message }, { context: describe(contract) });
  throw err;
}

// ---------------------------------------------------------------------------------------------
// Scalars

// Characters XML 1.0 cannot carry at all (control characters, lone surrogates, U+FFFE/U+FFFF):
// a server would drop the whole stream, so they are refused at encode time.
const ILLEGAL_XML_CHARS =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function scalarText(kind: ScalarKind, v: unknown): string {
  switch (kind) {
    case 'string':
      if (typeof v !== 'string') return fail('must be string');
      if (ILLEGAL_XML_CHARS.test(v)) return fail('contains a character XML cannot carry');
      return v;
    case 'integer':
      if (typeof v !== 'number' || !Number.isInteger(v)) return fail('must be integer');
      // Beyond 2^53 a JS number no longer holds every integer: the peer would get a rounded value.
      if (!Number.isSafeInteger(v)) return fail('must be an integer within ±(2^53−1)');
      return numberText(v);
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) return fail('must be number');
      return numberText(v);
    case 'boolean':
      if (typeof v !== 'boolean') return fail('must be boolean');
      return v ? 'true' : 'false';
  }
}

function numberText(v: number): string {
  if (v === 0) return 1 / v < 0 ? '-0' : '0';
  return String(v);
}

/**
 * Parses an xs:decimal/xs:double-style number without a regex: `Number()` does the work, and the
 * first/last character checks reject what `Number()` would wrongly accept (whitespace, '',
 * 'Infinity', hex/binary/octal literals).
 */
function parseNumber(s: string): number {
  const n = s.length;
  if (n === 0) return NaN;
  const c0 = s.charCodeAt(0);
  if (!((c0 >= 48 && c0 <= 57) || c0 === 45 || c0 === 43 || c0 === 46)) return NaN;
  const cl = s.charCodeAt(n - 1);
  if (!((cl >= 48 && cl <= 57) || cl === 46)) return NaN;
  if (n > 2) {
    const c1 = s.charCodeAt(1) | 32;
    if (c1 === 120 || c1 === 98 || c1 === 111) return NaN; // 0x… 0b… 0o…
  }
  const v = +s;
  return v - v === 0 ? v : NaN; // rejects ±Infinity (e.g. '1e999')
}

function scalarValue(kind: ScalarKind, s: string): string | number | boolean {
  switch (kind) {
    case 'string':
      return s;
    case 'integer': {
      const v = parseNumber(s);
      if (!Number.isInteger(v)) return fail('must be integer');
      // Refused rather than silently rounded (xs:integer is unbounded, JS numbers are not).
      if (!Number.isSafeInteger(v)) return fail('must be an integer within ±(2^53−1)');
      return v;
    }
    case 'number': {
      const v = parseNumber(s);
      if (v !== v) return fail('must be number');
      return v;
    }
    case 'boolean':
      // xs:boolean: 'true' | 'false' | '1' | '0'.
      if (s === 'true' || s === '1') return true;
      if (s === 'false' || s === '0') return false;
      return fail('must be boolean');
  }
}

/** Text content of an element that must hold text only (child elements are an error). */
function textOnly(el: Element): string {
  const ch = el.children;
  const n = ch.length;
  if (n === 0) return '';
  if (n === 1) {
    const c = ch[0];
    if (typeof c === 'string') return c;
  }
  let s = '';
  for (let i = 0; i < n; i++) {
    const c = ch[i];
    if (typeof c === 'string') s += c;
    else return fail('must be text (found a child element)');
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Decode: element tree → object

let budget = 0;

/** Charges a child element to the decode budget and returns its local name (prefix stripped). */
function countedLocalName(c: Element): string {
  if (--budget < 0) throw new PayloadTooLargeError(Infinity, 0, 'payload has too many elements');
  const name = c.name;
  const colon = name.indexOf(':');
  return colon < 0 ? name : name.slice(colon + 1);
}

/**
 * Namespace of a child element whose parent is in `parentNs`; `local` is its local name, which is
 * `c.name` itself (same string) unless prefixed. O(1) unless prefixed.
 */
function nsOf(c: Element, local: string, parentNs: string): string {
  if (local !== c.name) return c.getNS() ?? '';
  const x = c.attrs['xmlns'] as string | undefined;
  return x === undefined ? parentNs : x;
}

function isNil(el: Element): boolean {
  const v = (el.attrs['xsi:nil'] as string | undefined) ?? findNsAttr(el, 'nil', NS_XSI);
  return v === 'true' || v === '1';
}

function decodeValue(plan: ValuePlan, el: Element, ns: string): unknown {
  if (plan.nullable && isNil(el)) return null;
  switch (plan.kind) {
    case 'object':
      return decodeObject(plan, el, ns);
    case 'array':
      return decodeArray(plan, el, ns);
    default:
      return scalarValue(plan.kind, textOnly(el));
  }
}

function findNsAttr(el: Element, local: string, ns: string): string | undefined {
  const attrs = el.attrs as Record<string, string | undefined>;
  const suffix = ':' + local;
  for (const k in attrs) {
    if (!Object.hasOwn(attrs, k)) continue;
    if (k.endsWith(suffix) && k.length > suffix.length && el.findNS(k.slice(0, -suffix.length)) === ns) return attrs[k];
  }
  return undefined;
}

function checkAttrs(plan: ObjectPlan, el: Element): void {
  for (const k in el.attrs) {
    if (k === 'xmlns' || k.startsWith('xmlns:') || plan.attrNames.has(k)) continue;
    const colon = k.indexOf(':');
    if (colon >= 0) {
      const ns = el.findNS(k.slice(0, colon));
      const local = k.slice(colon + 1);
      if (ns === NS_XSI || plan.attrs.some((a) => a.ns === ns && a.localName === local)) continue;
    }
    pathStack[sp++] = '@' + k;
    fail(`unexpected attribute '${k}'`);
  }
}

function decodeObject(plan: ObjectPlan, el: Element, ns: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const attrs = el.attrs as Record<string, string | undefined>;
  const ap = plan.attrs;
  for (let i = 0; i < ap.length; i++) {
    const a = ap[i]!;
    // Own attributes only: an attribute named `constructor` must not read Object.prototype's.
    // Own properties only where it matters (a name like `constructor`); a plain read otherwise.
    let v = a.inherited ? (Object.hasOwn(attrs, a.name) ? attrs[a.name] : undefined) : attrs[a.name];
    if (v === undefined && a.ns !== undefined) v = findNsAttr(el, a.localName, a.ns);
    if (v === undefined) continue;
    pathStack[sp++] = a.seg;
    out[a.key] = scalarValue(a.plan.kind, v);
    sp--;
  }
  if (plan.strict) checkAttrs(plan, el);
  const tp = plan.text;
  if (tp !== undefined) {
    pathStack[sp++] = tp.seg;
    out[tp.key] = scalarValue(tp.plan.kind, textOnly(el));
    sp--;
    return out;
  }

  const ch = el.children;
  const byName = plan.byName;
  for (let i = 0; i < ch.length; i++) {
    const c = ch[i]!;
    if (typeof c === 'string') continue;
    const name = countedLocalName(c);
    const hit = byName.get(name);
    const cns = nsOf(c, name, ns);
    let prop;
    if (hit !== undefined) {
      if (!Array.isArray(hit)) {
        const h = hit as (typeof plan.elems)[number];
        if ((h.ns === undefined ? ns : h.ns) === cns) prop = h;
      } else {
        prop = (hit as typeof plan.elems).find((h) => (h.ns === undefined ? ns : h.ns) === cns);
      }
    }
    if (prop === undefined) {
      if (plan.strict) {
        pathStack[sp++] = name;
        fail(`unexpected element <${name}>`);
      }
      continue; // unknown elements are ignored: newer peers may add optional fields
    }
    pathStack[sp++] = prop.seg;
    if (prop.unwrapped) {
      let arr = (!prop.inherited || Object.hasOwn(out, prop.key) ? out[prop.key] : undefined) as unknown[] | undefined;
      if (arr === undefined) out[prop.key] = arr = [];
      pathStack[sp++] = arr.length;
      arr.push(decodeValue((prop.plan as ArrayPlan).item, c, cns));
      sp--;
    } else {
      // Own properties only: a field named `constructor` or `toString` must not see Object.prototype.
      if (prop.inherited ? Object.hasOwn(out, prop.key) : out[prop.key] !== undefined)
        fail(`element <${name}> appears more than once`);
      out[prop.key] = decodeValue(prop.plan, c, cns);
    }
    sp--;
  }
  const ea = plan.emptyArrays;
  for (let i = 0; i < ea.length; i++) {
    const e = ea[i]!;
    if (e.inherited ? !Object.hasOwn(out, e.key) : out[e.key] === undefined) out[e.key] = [];
  }
  return out;
}

function decodeArray(plan: ArrayPlan, el: Element, ns: string): unknown[] {
  const out: unknown[] = [];
  const ch = el.children;
  const itemNs = plan.itemNs === undefined ? ns : plan.itemNs;
  for (let i = 0; i < ch.length; i++) {
    const c = ch[i]!;
    if (typeof c === 'string') continue;
    const name = countedLocalName(c);
    if (name !== plan.itemName) continue;
    const cns = nsOf(c, name, ns);
    if (cns !== itemNs) continue;
    pathStack[sp++] = out.length;
    out.push(decodeValue(plan.item, c, cns));
    sp--;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encode: object → element tree

function child(parent: Element, c: Element): void {
  c.parent = parent;
  parent.children.push(c);
}

function encodeValue(plan: ValuePlan, v: unknown, name: string, ns: string, nsDecl: string | undefined): Element {
  const el = new Element(name);
  if (nsDecl !== undefined) el.attrs['xmlns'] = nsDecl;
  if (v === null) {
    if (!plan.nullable) fail('must not be null');
    el.attrs['xmlns:xsi'] = NS_XSI;
    el.attrs['xsi:nil'] = 'true';
    return el;
  }
  switch (plan.kind) {
    case 'object':
      encodeObject(plan, v, el, ns);
      break;
    case 'array':
      encodeArray(plan, v, el, ns);
      break;
    default: {
      const t = scalarText(plan.kind, v);
      if (t !== '') el.children.push(t);
    }
  }
  return el;
}

function encodeObject(plan: ObjectPlan, v: unknown, el: Element, ns: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('must be object');
  const obj = v as Record<string, unknown>;
  const attrs = el.attrs as Record<string, string>;
  const ap = plan.attrs;
  for (let i = 0; i < ap.length; i++) {
    const a = ap[i]!;
    const x = !a.inherited || Object.hasOwn(obj, a.key) ? obj[a.key] : undefined;
    if (x === undefined) continue;
    pathStack[sp++] = a.seg;
    if (a.prefix !== undefined) attrs['xmlns:' + a.prefix] = a.ns!;
    attrs[a.name] = scalarText(a.plan.kind, x);
    sp--;
  }
  const tp = plan.text;
  if (tp !== undefined) {
    pathStack[sp++] = tp.seg;
    const t = scalarText(tp.plan.kind, !tp.inherited || Object.hasOwn(obj, tp.key) ? obj[tp.key] : undefined);
    if (t !== '') el.children.push(t);
    sp--;
    return;
  }
  const ep = plan.elems;
  for (let i = 0; i < ep.length; i++) {
    const e = ep[i]!;
    const x = !e.inherited || Object.hasOwn(obj, e.key) ? obj[e.key] : undefined;
    if (x === undefined) continue;
    pathStack[sp++] = e.seg;
    const cns = e.ns === undefined ? ns : e.ns;
    const decl = cns === ns ? undefined : cns;
    if (e.unwrapped) {
      if (!Array.isArray(x)) fail('must be array');
      encodeItems((e.plan as ArrayPlan).item, x, el, e.name, cns, decl);
    } else {
      child(el, encodeValue(e.plan, x, e.name, cns, decl));
    }
    sp--;
  }
}

function encodeArray(plan: ArrayPlan, v: unknown, el: Element, ns: string): void {
  if (!Array.isArray(v)) fail('must be array');
  const cns = plan.itemNs === undefined ? ns : plan.itemNs;
  encodeItems(plan.item, v, el, plan.itemName, cns, cns === ns ? undefined : cns);
}

/** One child element per array item (a wrapped array's items, or an unwrapped array property). */
function encodeItems(
  item: ValuePlan,
  v: readonly unknown[],
  el: Element,
  name: string,
  ns: string,
  nsDecl: string | undefined,
): void {
  for (let j = 0; j < v.length; j++) {
    pathStack[sp++] = j;
    child(el, encodeValue(item, v[j], name, ns, nsDecl));
    sp--;
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

function check(contract: PayloadContract, fn: ValidateFunction, value: unknown): void {
  let ok: boolean;
  try {
    ok = fn(value) as boolean;
  } catch (err) {
    // ajv compares `uniqueItems` items with a recursive deep-equal that overflows the stack on a
    // cyclic or very deep value, and calls an item's own `toString`/`valueOf` (a field of that
    // name): a value that cannot be validated is invalid, not a crash.
    if (!(err instanceof RangeError) && !(err instanceof TypeError)) throw err;
    throw new ValidationError(
      { path: '', message: `value cannot be validated (${err.message})` },
      { context: describe(contract), cause: err },
    );
  }
  if (!ok) throw new ValidationError(issuesOf(fn.errors), { context: describe(contract) });
}

/** True when the element is this contract's payload: same local name and namespace. */
export function matches(contract: PayloadContract, element: Element): boolean {
  const name = element.name;
  const colon = name.indexOf(':');
  if (colon < 0) {
    if (name !== contract.name) return false;
    const x = element.attrs['xmlns'] as string | undefined;
    return (x !== undefined ? x : element.getNS()) === contract.ns;
  }
  return name.slice(colon + 1) === contract.name && element.getNS() === contract.ns;
}

/** Validates a value against the contract's schema; returns it typed, or throws ValidationError. */
export function validate<C extends PayloadContract>(contract: C, value: unknown): PayloadOf<C> {
  const plan = planOf(contract.schema);
  if (plan.kind === 'raw') {
    if (!isXmlElement(value) || !matches(contract, value))
      throw new ValidationError({ path: '', message: `must be an element ${describe(contract)}` });
    return value as PayloadOf<C>;
  }
  check(contract, validatorOf(contract.schema, 'all'), value);
  return value as PayloadOf<C>;
}

/** Encodes a value as the contract's element `<name xmlns='ns'>…`; validates first unless told not to. */
export function encode<C extends PayloadContract>(contract: C, value: PayloadOf<C>, options?: EncodeOptions): Element {
  const plan = planOf(contract.schema);
  if (plan.kind === 'raw') return validate(contract, value) as Element;
  if (options?.validate !== false) check(contract, validatorOf(contract.schema, 'all'), value);
  sp = 0;
  try {
    return encodeValue(plan, value, contract.name, contract.ns, contract.ns);
  } catch (err) {
    return rethrow(contract, err);
  }
}

/** Decodes the contract's element (as received, no re-serialisation) into a typed, validated object. */
export function decode<C extends PayloadContract>(
  contract: C,
  element: Element,
  options?: DecodeOptions,
): PayloadOf<C> {
  const plan = planOf(contract.schema);
  if (!matches(contract, element)) {
    throw new ValidationError(
      { path: '', message: `expected ${describe(contract)}, got <${element.name} xmlns='${element.getNS() ?? ''}'>` },
      { context: describe(contract) },
    );
  }
  if (plan.kind === 'raw') return element as PayloadOf<C>;
  sp = 0;
  budget = options?.maxElements ?? DEFAULT_MAX_ELEMENTS;
  let value: unknown;
  try {
    value = decodeValue(plan, element, contract.ns);
  } catch (err) {
    return rethrow(contract, err);
  }
  if (options?.validate !== false) check(contract, validatorOf(contract.schema), value);
  return value as PayloadOf<C>;
}

/** Encodes to XML text (ltx serialisation). */
export function toXml<C extends PayloadContract>(contract: C, value: PayloadOf<C>, options?: EncodeOptions): string {
  return encode(contract, value, options).toString();
}

/** Parses XML text (no DTDs/entities, size-capped) and decodes it. */
export function fromXml<C extends PayloadContract>(contract: C, text: string, options?: FromXmlOptions): PayloadOf<C> {
  const max = options?.maxLength ?? DEFAULT_MAX_LENGTH;
  if (text.length > max)
    throw new PayloadTooLargeError(text.length, max, `XML text of ${text.length} chars exceeds ${max}`);
  return decode(contract, parseXml(text, { maxLength: max }), options);
}

/**
 * The escape hatch for payloads that are not schema-shaped: encode/decode pass the element through
 * untouched (decode still checks its name and namespace).
 */
export function rawPayload(init: { ns: string; name: string }): PayloadContract<TUnsafe<Element>> {
  return payload({ ns: init.ns, name: init.name, schema: Type.Unsafe<Element>({ [RAW_MARK]: true }) });
}

/** The compiled (cached) ajv function of a contract's schema, e.g. to validate without encoding. */
export function compiledValidator(contract: PayloadContract): ValidateFunction {
  return validatorOf(contract.schema);
}

export type { ValidationIssue };
