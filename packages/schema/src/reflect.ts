/**
 * Contracts ⇄ reflection descriptors (docs/protocol.md §6). A service describes its contracts
 * with `describeMethod`; a peer that fetched them builds runtime contracts with
 * `methodFromDescriptor` / `payloadFromDescriptor`. The same JSON Schema drives the XML mapping
 * and ajv, so a rebuilt contract encodes, decodes and validates exactly as the original does.
 */
import type { TSchema } from '@sinclair/typebox';
import {
  defaultErrorType,
  type ErrorDescriptor,
  type EventDescriptor,
  type JsonSchema,
  type MessageDescriptor,
  type MethodDescriptor,
} from '@xmppbus/core';
import { pointerSegment, SchemaError } from './errors.js';
import { method, payload, type ErrorContract, type MethodContract, type PayloadContract } from './contract.js';
import { planOf } from './plan.js';

/** Plain JSON of a schema: what the wire carries (TypeBox's symbol keys drop out). */
function plain(schema: TSchema): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema;
}

/** The reflection descriptor of a method contract. */
export function describeMethod(m: MethodContract): MethodDescriptor {
  const errors: Record<string, ErrorDescriptor> = {};
  for (const [name, e] of Object.entries(m.errors)) {
    errors[name] =
      e.schema === undefined
        ? { condition: e.condition, type: defaultErrorType(e.condition) }
        : { condition: e.condition, type: defaultErrorType(e.condition), schema: plain(e.schema) };
  }
  return {
    kind: 'method',
    ns: m.ns,
    name: m.name,
    responseName: m.response.name,
    readOnly: m.readOnly,
    idempotent: m.idempotent,
    request: plain(m.request.schema),
    response: plain(m.response.schema),
    errors,
  };
}

/** The reflection descriptor of an event contract this endpoint publishes or consumes. */
export function describeEvent(
  contract: PayloadContract,
  role: EventDescriptor['role'],
  where: { node?: string; service?: string; batch?: string } = {},
): EventDescriptor {
  return {
    kind: 'event',
    ns: contract.ns,
    name: contract.name,
    schema: plain(contract.schema),
    role,
    ...(where.node !== undefined ? { node: where.node } : {}),
    ...(where.service !== undefined ? { service: where.service } : {}),
    ...(where.batch !== undefined ? { batch: where.batch } : {}),
  };
}

/** The reflection descriptor of a message contract this endpoint handles. */
export function describeMessage(contract: PayloadContract): MessageDescriptor {
  return { kind: 'message', ns: contract.ns, name: contract.name, schema: plain(contract.schema) };
}

/**
 * Limits on a schema that came over the wire. ajv compiles schemas as trusted code: a deeply
 * nested one overflows the stack, a huge one takes long to compile, and a long `pattern` is the
 * usual vehicle of a catastrophic regular expression. Our own contracts stay far below these.
 */
export const REFLECTED_SCHEMA_LIMITS = Object.freeze({ depth: 32, nodes: 10_000, patternLength: 512 });

function checkReflected(root: unknown): void {
  let nodes = 0;
  const walk = (value: unknown, path: string, depth: number): void => {
    if (typeof value !== 'object' || value === null) return;
    if (++nodes > REFLECTED_SCHEMA_LIMITS.nodes)
      throw new SchemaError(path, `more than ${REFLECTED_SCHEMA_LIMITS.nodes} schema nodes`);
    if (depth > REFLECTED_SCHEMA_LIMITS.depth)
      throw new SchemaError(path, `nested deeper than ${REFLECTED_SCHEMA_LIMITS.depth} levels`);
    for (const [key, child] of Object.entries(value)) {
      const at = `${path}/${pointerSegment(key)}`;
      if (key === 'pattern' && typeof child === 'string' && child.length > REFLECTED_SCHEMA_LIMITS.patternLength)
        throw new SchemaError(at, `pattern longer than ${REFLECTED_SCHEMA_LIMITS.patternLength} characters`);
      walk(child, at, depth + 1);
    }
  };
  walk(root, '', 0);
}

/** A reflected schema as a TypeBox-typed value: unknown statically, exact at run time. */
function asSchema(schema: JsonSchema): TSchema {
  checkReflected(schema);
  // Copied so the plan and ajv caches (keyed by object) never see a caller's later edits; the
  // plan is checked now, so a schema the codec cannot map fails here with SchemaError, not mid-call.
  const copy = JSON.parse(JSON.stringify(schema)) as TSchema;
  planOf(copy);
  return copy;
}

/**
 * A runtime method contract from a reflected descriptor: `RpcClient.call` with it encodes JSON
 * input to the same XML and validates it before sending, as the service's own contract would.
 * Throws SchemaError when a schema uses a construct the codec cannot map.
 */
export function methodFromDescriptor(d: MethodDescriptor): MethodContract {
  const errors: Record<string, ErrorContract> = {};
  for (const [name, e] of Object.entries(d.errors))
    errors[name] =
      e.schema === undefined ? { condition: e.condition } : { condition: e.condition, schema: asSchema(e.schema) };
  return method({
    ns: d.ns,
    name: d.name,
    responseName: d.responseName,
    readOnly: d.readOnly,
    idempotent: d.idempotent,
    request: asSchema(d.request),
    response: asSchema(d.response),
    errors,
  });
}

/** A runtime payload contract (event or message) from a reflected descriptor. */
export function payloadFromDescriptor(d: EventDescriptor | MessageDescriptor): PayloadContract {
  return payload({ ns: d.ns, name: d.name, schema: asSchema(d.schema) });
}
