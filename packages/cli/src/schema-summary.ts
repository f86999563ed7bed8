/** One-line TypeScript-like summaries of JSON Schemas, for `discover`'s listing. */
import type { JsonSchema } from '@xmppbus/core';

const MAX_DEPTH = 4;
const MAX_LENGTH = 160;

/** `{ sku: string, qty: integer, note?: string }`, shortened to one line. */
export function schemaSummary(schema: JsonSchema): string {
  const text = summary(schema, 0);
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text;
}

function isSchema(v: unknown): v is JsonSchema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function summary(s: JsonSchema, depth: number): string {
  if (s['x-xmppbus-raw'] === true) return '<raw XML>';
  if (depth > MAX_DEPTH) return '…';
  if (Array.isArray(s['enum'])) return s['enum'].map((v) => JSON.stringify(v)).join(' | ');
  if (s['const'] !== undefined) return JSON.stringify(s['const']);
  for (const key of ['anyOf', 'oneOf'] as const) {
    const list = s[key];
    if (Array.isArray(list)) return list.map((x) => (isSchema(x) ? summary(x, depth + 1) : '?')).join(' | ');
  }
  const type = s['type'];
  if (Array.isArray(type)) return type.map((t) => summary({ ...s, type: t }, depth)).join(' | ');
  switch (type) {
    case 'object': {
      const props = isSchema(s['properties']) ? s['properties'] : {};
      const required = new Set(Array.isArray(s['required']) ? (s['required'] as unknown[]) : []);
      const fields = Object.entries(props).map(
        ([k, v]) => `${k}${required.has(k) ? '' : '?'}: ${isSchema(v) ? summary(v, depth + 1) : '?'}`,
      );
      return fields.length === 0 ? '{}' : `{ ${fields.join(', ')} }`;
    }
    case 'array': {
      const item = isSchema(s['items']) ? summary(s['items'], depth + 1) : 'unknown';
      return /[ |]/.test(item) && !item.startsWith('{') ? `(${item})[]` : `${item}[]`;
    }
    case 'string':
      return typeof s['format'] === 'string' ? `string(${s['format']})` : 'string';
    case 'integer':
    case 'number':
    case 'boolean':
    case 'null':
      return type;
    default:
      return 'unknown';
  }
}
