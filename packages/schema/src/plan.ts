/**
 * The mapping plan: a schema is analysed ONCE (cached in a WeakMap on the schema object) into a
 * small tree that the encoder and decoder walk without looking at the schema again. Everything
 * the XML mapping cannot express is rejected here, with a SchemaError naming the schema path.
 */
import { pointerSegment, SchemaError } from './errors.js';

/** Marks the escape-hatch schema of `rawPayload()`: the element passes through untouched. */
export const RAW_MARK = 'x-xmppbus-raw';

export const NS_XSI = 'http://www.w3.org/2001/XMLSchema-instance';

export type ScalarKind = 'string' | 'number' | 'integer' | 'boolean';

export interface ScalarPlan {
  readonly kind: ScalarKind;
  readonly nullable: boolean;
}

export interface ArrayPlan {
  readonly kind: 'array';
  readonly nullable: boolean;
  readonly item: ValuePlan;
  /** Local name of each item element inside the array's element. */
  readonly itemName: string;
  /** Explicit namespace of item elements (undefined = inherit). */
  readonly itemNs: string | undefined;
}

export interface ObjectPlan {
  readonly kind: 'object';
  readonly nullable: boolean;
  readonly attrs: readonly AttrProp[];
  readonly elems: readonly ElemProp[];
  /** Element properties by local name (several entries per name only when namespaces differ). */
  readonly byName: ReadonlyMap<string, ElemProp | readonly ElemProp[]>;
  /** The property carried as the element's text (`xml: { nodeType: 'text' }`), if any. */
  readonly text: TextProp | undefined;
  /** `additionalProperties: false`: unknown child elements and attributes are rejected on decode. */
  readonly strict: boolean;
  /** Attribute names known to this object (strict mode only). */
  readonly attrNames: ReadonlySet<string>;
  /** Required unwrapped arrays: absent on the wire means `[]`. */
  readonly emptyArrays: readonly ElemProp[];
}

export interface RawPlan {
  readonly kind: 'raw';
  readonly nullable: false;
}

export type ValuePlan = ScalarPlan | ArrayPlan | ObjectPlan;
export type RootPlan = ValuePlan | RawPlan;

export interface ElemProp {
  readonly key: string;
  /** `key` names a member of Object.prototype: read it as an own property only. */
  readonly inherited: boolean;
  /** JSON-pointer segment of the key (for error paths). */
  readonly seg: string;
  readonly name: string;
  /** Explicit namespace (undefined = the parent element's). */
  readonly ns: string | undefined;
  readonly required: boolean;
  readonly plan: ValuePlan;
  /** Unwrapped array: each item is its own child element named `name`; `plan` is the ArrayPlan. */
  readonly unwrapped: boolean;
}

export interface AttrProp {
  readonly key: string;
  /** `key` or `name` names a member of Object.prototype: read them as own properties only. */
  readonly inherited: boolean;
  readonly seg: string;
  /** Attribute name as stored in ltx attrs (`p:name` when namespaced). */
  readonly name: string;
  readonly localName: string;
  readonly ns: string | undefined;
  /** Prefix declared for a namespaced attribute (encode side). */
  readonly prefix: string | undefined;
  readonly required: boolean;
  readonly plan: ScalarPlan;
}

export interface TextProp {
  readonly key: string;
  readonly inherited: boolean;
  readonly seg: string;
  readonly plan: ScalarPlan;
}

type Json = Record<string, unknown>;

interface XmlAnnotation {
  name?: string;
  namespace?: string;
  prefix?: string;
  attribute?: boolean;
  wrapped?: boolean;
  nodeType?: 'element' | 'attribute' | 'text';
}

const MAX_SCHEMA_DEPTH = 64;
// An XML NCName, simplified to letters/digits/_/./-: names with ':' would need prefixes; use xml.namespace.
const NCNAME = /^[\p{L}_][\p{L}\p{N}_.\-\u00B7]*$/u;

const cache = new WeakMap<object, RootPlan>();

/** The mapping plan of a schema, computed on first use and cached on the schema object. */
export function planOf(schema: object): RootPlan {
  let plan = cache.get(schema);
  if (plan === undefined) {
    plan = compileRoot(schema as Json);
    cache.set(schema, plan);
  }
  return plan;
}

function compileRoot(schema: Json): RootPlan {
  if (schema[RAW_MARK] === true) return { kind: 'raw', nullable: false };
  const plan = compileValue(schema, '', 0);
  if (plan.nullable) throw new SchemaError('', 'the payload root cannot be nullable');
  return plan;
}

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function xmlOf(schema: Json, path: string): XmlAnnotation {
  const x = schema['xml'];
  if (x === undefined) return {};
  if (!isObj(x)) throw new SchemaError(path, '`xml` must be an object');
  const out: XmlAnnotation = {};
  for (const k of Object.keys(x)) {
    const v = x[k];
    switch (k) {
      case 'name':
      case 'namespace':
      case 'prefix':
        if (typeof v !== 'string' || v === '') throw new SchemaError(path, `xml.${k} must be a non-empty string`);
        out[k] = v;
        break;
      case 'attribute':
      case 'wrapped':
        if (typeof v !== 'boolean') throw new SchemaError(path, `xml.${k} must be a boolean`);
        out[k] = v;
        break;
      case 'nodeType':
        if (v !== 'element' && v !== 'attribute' && v !== 'text')
          throw new SchemaError(path, "xml.nodeType must be 'element', 'attribute' or 'text'");
        out.nodeType = v;
        break;
      default:
        throw new SchemaError(path, `unknown xml annotation '${k}'`);
    }
  }
  if (out.name !== undefined && !NCNAME.test(out.name))
    throw new SchemaError(path, `xml.name '${out.name}' is not an XML name without prefix`);
  if (out.prefix !== undefined && !NCNAME.test(out.prefix))
    throw new SchemaError(path, `xml.prefix '${out.prefix}' is not an XML name`);
  return out;
}

function scalarKindOfValue(v: unknown): ScalarKind | 'null' | undefined {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isInteger(v) ? 'integer' : 'number';
    default:
      return undefined;
  }
}

/** Joins scalar kinds of a union: identical kinds merge, integer ∪ number = number, anything else is ambiguous. */
function joinKinds(a: ScalarKind, b: ScalarKind, path: string): ScalarKind {
  if (a === b) return a;
  if ((a === 'integer' && b === 'number') || (a === 'number' && b === 'integer')) return 'number';
  throw new SchemaError(
    path,
    `union of ${a} and ${b} is ambiguous in XML text (is "1" a string or a number?); use one scalar type`,
  );
}

function compileValue(schema: Json, path: string, depth: number): ValuePlan {
  if (depth > MAX_SCHEMA_DEPTH) throw new SchemaError(path, `schema nesting deeper than ${MAX_SCHEMA_DEPTH}`);
  if (!isObj(schema)) throw new SchemaError(path, 'boolean schemas are not supported');
  if (schema[RAW_MARK] === true) throw new SchemaError(path, 'raw elements are only supported as the payload root');
  if (schema['$ref'] !== undefined) throw new SchemaError(path, '$ref is not supported (inline the schema)');
  if (schema['not'] !== undefined) throw new SchemaError(path, '`not` cannot be mapped to XML');
  if (schema['patternProperties'] !== undefined)
    throw new SchemaError(path, 'patternProperties (records/maps) cannot be mapped to XML; use an array of objects');

  const union = (schema['anyOf'] ?? schema['oneOf']) as unknown;
  if (union !== undefined) return compileUnion(union, path, depth);
  if (schema['allOf'] !== undefined) return compileAllOf(schema, path, depth);

  let type = schema['type'];
  let nullable = false;
  if (Array.isArray(type)) {
    const kinds = type.filter((t) => t !== 'null') as unknown[];
    nullable = kinds.length < type.length;
    if (kinds.length === 0) throw new SchemaError(path, 'a value that is always null cannot be mapped');
    let k = kinds[0];
    for (let i = 1; i < kinds.length; i++) {
      const a = k as ScalarKind;
      const b = kinds[i] as ScalarKind;
      if (!isScalarKind(a) || !isScalarKind(b))
        throw new SchemaError(path, `type union ${JSON.stringify(type)} is not supported`);
      k = joinKinds(a, b, path);
    }
    type = k;
  }
  if (type === undefined) type = inferType(schema, path);
  switch (type) {
    case 'string':
    case 'number':
    case 'integer':
    case 'boolean':
      return { kind: type, nullable };
    case 'object':
      return compileObject(schema, path, depth, nullable);
    case 'array':
      return compileArray(schema, path, depth, nullable, 'item');
    case 'null':
      throw new SchemaError(path, 'a value that is always null cannot be mapped');
    default:
      throw new SchemaError(path, `type ${JSON.stringify(type)} cannot be mapped to XML`);
  }
}

function isScalarKind(t: unknown): t is ScalarKind {
  return t === 'string' || t === 'number' || t === 'integer' || t === 'boolean';
}

function inferType(schema: Json, path: string): string {
  if ('const' in schema) {
    const k = scalarKindOfValue(schema['const']);
    if (k === undefined || k === 'null') throw new SchemaError(path, 'const must be a string, number or boolean');
    return k;
  }
  const en = schema['enum'];
  if (Array.isArray(en) && en.length > 0) {
    let kind: ScalarKind | undefined;
    for (const v of en) {
      const k = scalarKindOfValue(v);
      if (k === undefined || k === 'null')
        throw new SchemaError(path, 'enum values must be strings, numbers or booleans');
      kind = kind === undefined ? k : joinKinds(kind, k, path);
    }
    return kind!;
  }
  if (isObj(schema['properties'])) return 'object';
  if (schema['items'] !== undefined) return 'array';
  throw new SchemaError(
    path,
    'schema has no type (Type.Any/Unknown cannot be mapped to XML; use rawPayload() for free-form XML)',
  );
}

function isNullSchema(s: unknown): boolean {
  return isObj(s) && (s['type'] === 'null' || ('const' in s && s['const'] === null));
}

function compileUnion(union: unknown, path: string, depth: number): ValuePlan {
  if (!Array.isArray(union) || union.length === 0) throw new SchemaError(path, 'anyOf/oneOf must be a non-empty array');
  const branches = union.filter((b) => !isNullSchema(b)) as Json[];
  const nullable = branches.length < union.length;
  if (branches.length === 0) throw new SchemaError(path, 'a value that is always null cannot be mapped');
  const plans = branches.map((b, i) => compileValue(b, `${path}/anyOf/${i}`, depth + 1));
  if (plans.length === 1) return { ...plans[0]!, nullable: nullable || plans[0]!.nullable };
  let kind: ScalarKind | undefined;
  for (const p of plans) {
    if (!isScalarKind(p.kind))
      throw new SchemaError(path, 'unions of objects or arrays cannot be told apart in XML; use optional properties');
    kind = kind === undefined ? p.kind : joinKinds(kind, p.kind, path);
  }
  return { kind: kind!, nullable: nullable || plans.some((p) => p.nullable) };
}

/** allOf (TypeBox Intersect): objects merge their properties; anything else is rejected. */
function compileAllOf(schema: Json, path: string, depth: number): ValuePlan {
  const parts = schema['allOf'];
  if (!Array.isArray(parts) || parts.length === 0) throw new SchemaError(path, 'allOf must be a non-empty array');
  const properties: Json = {};
  const required: string[] = [];
  let strict = false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as unknown;
    if (!isObj(p) || !(p['type'] === 'object' || isObj(p['properties'])))
      throw new SchemaError(`${path}/allOf/${i}`, 'allOf is supported only for objects');
    Object.assign(properties, p['properties'] ?? {});
    if (Array.isArray(p['required'])) required.push(...(p['required'] as string[]));
    if (p['additionalProperties'] === false) strict = true;
  }
  // Strictness of a merged object: TypeBox Intersect puts `unevaluatedProperties: false` on the allOf.
  if (schema['unevaluatedProperties'] === false || schema['additionalProperties'] === false) strict = true;
  return compileObject(
    { type: 'object', properties, required, additionalProperties: strict ? false : undefined },
    path,
    depth,
    false,
  );
}

function compileObject(schema: Json, path: string, depth: number, nullable: boolean): ObjectPlan {
  const props = schema['properties'] ?? {};
  if (!isObj(props)) throw new SchemaError(path, 'properties must be an object');
  const addl = schema['additionalProperties'];
  if (addl !== undefined && typeof addl !== 'boolean' && !(isObj(addl) && Object.keys(addl).length === 0))
    throw new SchemaError(path, 'additionalProperties with a schema (a map) cannot be mapped to XML');
  const req = new Set(Array.isArray(schema['required']) ? (schema['required'] as string[]) : []);
  const attrs: AttrProp[] = [];
  const elems: ElemProp[] = [];
  let text: TextProp | undefined;
  const seen = new Set<string>();
  const attrNames = new Set<string>();

  for (const key of Object.keys(props)) {
    const ps = props[key];
    const ppath = `${path}/properties/${pointerSegment(key)}`;
    if (!isObj(ps)) throw new SchemaError(ppath, 'boolean property schemas are not supported');
    if (key === '__proto__') throw new SchemaError(ppath, "a property cannot be named '__proto__'");
    const x = xmlOf(ps, ppath);
    const required = req.has(key);
    const seg = pointerSegment(key);
    const nodeType = x.nodeType ?? (x.attribute === true ? 'attribute' : 'element');
    const plan = compileValue(ps, ppath, depth + 1);

    if (nodeType === 'attribute') {
      if (plan.kind === 'object' || plan.kind === 'array')
        throw new SchemaError(ppath, 'only scalar properties can be attributes');
      if (plan.nullable) throw new SchemaError(ppath, 'an attribute cannot be null (make it optional instead)');
      const local = x.name ?? key;
      if (!NCNAME.test(local)) throw new SchemaError(ppath, `'${local}' is not an XML name: set xml.name`);
      if (local === 'xmlns') throw new SchemaError(ppath, "an attribute cannot be named 'xmlns'");
      // ltx keeps attributes in a plain object: `attrs.__proto__ = v` is dropped on both sides.
      if (local === '__proto__') throw new SchemaError(ppath, "an attribute cannot be named '__proto__'");
      const prefix = x.namespace !== undefined ? (x.prefix ?? `ns${attrs.length + 1}`) : undefined;
      const name = prefix !== undefined ? `${prefix}:${local}` : local;
      const id = `@${x.namespace ?? ''} ${local}`;
      if (seen.has(id)) throw new SchemaError(ppath, `two properties map to the attribute '${local}'`);
      seen.add(id);
      attrNames.add(name);
      const inherited = key in Object.prototype || name in Object.prototype;
      attrs.push({ key, inherited, seg, name, localName: local, ns: x.namespace, prefix, required, plan });
      continue;
    }
    if (nodeType === 'text') {
      if (plan.kind === 'object' || plan.kind === 'array')
        throw new SchemaError(ppath, 'only a scalar property can be the element text');
      if (plan.nullable) throw new SchemaError(ppath, 'the element text cannot be null');
      if (!required) throw new SchemaError(ppath, 'the element text property must be required');
      if (text !== undefined) throw new SchemaError(ppath, 'only one property can be the element text');
      text = { key, inherited: key in Object.prototype, seg, plan };
      continue;
    }

    let name: string;
    let ns: string | undefined;
    let unwrapped = false;
    let elemPlan: ValuePlan = plan;
    if (plan.kind === 'array') {
      const items = itemsSchemaOf(ps);
      const ix = items !== undefined ? xmlOf(items, `${ppath}/items`) : {};
      if (x.wrapped === true) {
        name = x.name ?? key;
        ns = x.namespace;
        // OpenAPI: items of a wrapped array are named after the property unless items.xml.name says otherwise.
        elemPlan = { ...plan, itemName: ix.name ?? key, itemNs: ix.namespace };
      } else {
        if (plan.nullable) throw new SchemaError(ppath, 'an unwrapped array cannot be null: set xml.wrapped');
        if (plan.item.kind === 'array')
          throw new SchemaError(ppath, 'an array of arrays must be wrapped (xml: { wrapped: true })');
        name = ix.name ?? x.name ?? key;
        ns = ix.namespace ?? x.namespace;
        unwrapped = true;
      }
    } else {
      name = x.name ?? key;
      ns = x.namespace;
    }
    if (!NCNAME.test(name)) throw new SchemaError(ppath, `'${name}' is not an XML element name: set xml.name`);
    const id = `${ns ?? ''} ${name}`;
    if (seen.has(id)) throw new SchemaError(ppath, `two properties map to the element <${name}>`);
    seen.add(id);
    elems.push({ key, inherited: key in Object.prototype, seg, name, ns, required, plan: elemPlan, unwrapped });
  }
  if (text !== undefined && elems.length > 0)
    throw new SchemaError(
      path,
      'an object with a text property can only have attributes besides it (no mixed content)',
    );

  const byName = new Map<string, ElemProp | ElemProp[]>();
  for (const e of elems) {
    const prev = byName.get(e.name);
    if (prev === undefined) byName.set(e.name, e);
    else if (Array.isArray(prev)) prev.push(e);
    else byName.set(e.name, [prev, e]);
  }
  return {
    kind: 'object',
    nullable,
    attrs,
    elems,
    byName,
    text,
    strict: addl === false,
    attrNames,
    emptyArrays: elems.filter((e) => e.unwrapped && e.required),
  };
}

function compileArray(schema: Json, path: string, depth: number, nullable: boolean, itemName: string): ArrayPlan {
  const items = schema['items'];
  if (!isObj(items)) throw new SchemaError(path, 'arrays need a single `items` schema (tuples are not supported)');
  if (schema['prefixItems'] !== undefined) throw new SchemaError(path, 'tuples (prefixItems) are not supported');
  const ix = xmlOf(items, `${path}/items`);
  const item = compileValue(items, `${path}/items`, depth + 1);
  const name = ix.name ?? itemName;
  return { kind: 'array', nullable, item, itemName: name, itemNs: ix.namespace };
}

/** The `items` schema of an array property, looking through a nullable union. */
function itemsSchemaOf(ps: Json): Json | undefined {
  const union = ps['anyOf'] ?? ps['oneOf'];
  if (Array.isArray(union)) {
    for (const b of union as unknown[]) if (isObj(b) && isObj(b['items'])) return b['items'];
    return undefined;
  }
  return isObj(ps['items']) ? ps['items'] : undefined;
}
