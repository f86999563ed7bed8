import type { JsonSchema } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { SchemaError } from './errors.js';
import { payloadFromDescriptor, REFLECTED_SCHEMA_LIMITS } from './reflect.js';

function nested(levels: number): JsonSchema {
  let schema: JsonSchema = { type: 'string' };
  for (let i = 0; i < levels; i++) schema = { type: 'object', properties: { a: schema }, required: ['a'] };
  return schema;
}

const event = (schema: JsonSchema) => payloadFromDescriptor({ kind: 'message', ns: 'urn:peer:1', name: 'x', schema });

describe('reflected schemas from a peer', () => {
  it('builds a contract from a reasonable schema', () => {
    expect(event(nested(4)).name).toBe('x');
  });

  it('refuses a schema nested too deep, too large, or with a long pattern (ajv compiles schemas as trusted code)', () => {
    expect(() => event(nested(REFLECTED_SCHEMA_LIMITS.depth))).toThrow(SchemaError);
    const wide: Record<string, JsonSchema> = {};
    for (let i = 0; i <= REFLECTED_SCHEMA_LIMITS.nodes; i++) wide[`p${i}`] = { type: 'string' };
    expect(() => event({ type: 'object', properties: wide })).toThrow(/schema nodes/);
    const pattern = `^(a+)+${'x'.repeat(REFLECTED_SCHEMA_LIMITS.patternLength)}$`;
    expect(() => event({ type: 'object', properties: { s: { type: 'string', pattern } }, required: ['s'] })).toThrow(
      /pattern longer/,
    );
  });
});
