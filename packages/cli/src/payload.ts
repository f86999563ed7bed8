/**
 * Payloads without a known schema. `inferContract` derives a schema from a JSON value so that the
 * codec encodes it exactly as a service's contract of the same shape would (properties become
 * child elements); `elementToJson` shows an element whose schema is unknown as plain JSON
 * (attributes and children become properties, repeated children arrays, leaves strings).
 */
import { childElements, localName, type Element, type JsonSchema } from '@xmppbus/core';
import { decode, payloadFromDescriptor, type PayloadContract } from '@xmppbus/schema';
import { UsageError } from './errors.js';

/** A JSON Schema describing `value` (every property required, arrays typed by their first item). */
export function inferSchema(value: unknown, path = ''): JsonSchema {
  if (typeof value === 'string') return { type: 'string' };
  if (typeof value === 'boolean') return { type: 'boolean' };
  if (typeof value === 'number') return { type: Number.isInteger(value) ? 'integer' : 'number' };
  if (Array.isArray(value)) {
    const first: unknown = value[0];
    return { type: 'array', items: first === undefined ? { type: 'string' } : inferSchema(first, `${path}/0`) };
  }
  if (typeof value === 'object' && value !== null) {
    const properties: Record<string, JsonSchema> = {};
    for (const [k, v] of Object.entries(value)) properties[k] = inferSchema(v, `${path}/${k}`);
    return { type: 'object', properties, required: Object.keys(properties) };
  }
  throw new UsageError(`input ${path || '(root)'}: null cannot be sent without the receiver's schema; omit the field`);
}

/** A contract for `value` under `{ns}name`, its schema inferred. */
export function inferContract(ns: string, name: string, value: unknown): PayloadContract {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError('input must be a JSON object (its properties become the payload element’s children)');
  return payloadFromDescriptor({ kind: 'message', ns, name, schema: inferSchema(value) });
}

/** A plain JSON view of an element whose schema is unknown. */
export function elementToJson(el: Element): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(el.attrs)) {
    if (k === 'xmlns' || k.startsWith('xmlns:') || v === undefined) continue;
    out[k] = String(v);
  }
  const children = childElements(el);
  if (children.length === 0) {
    const text = el.getText();
    return Object.keys(out).length === 0 ? text : text === '' ? out : { ...out, '#text': text };
  }
  const lists = new Set<string>();
  for (const c of children) {
    const key = localName(c);
    const value = elementToJson(c);
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (lists.has(key)) (prev as unknown[]).push(value);
    else {
      out[key] = [prev, value];
      lists.add(key);
    }
  }
  return out;
}

/** The payload decoded with `contract` when given and it matches, else the plain JSON view. */
export function payloadJson(el: Element, contract: PayloadContract | undefined): unknown {
  if (contract !== undefined) {
    try {
      return decode(contract, el);
    } catch {
      // Shown as it came: a tail or listener displays, it does not judge.
    }
  }
  return elementToJson(el);
}
