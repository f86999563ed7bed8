/**
 * Control parameters: the declared schema of each, and the validation of a set request against
 * it. A request is all or nothing: every operation is validated before any is applied. Errors
 * are the deployed ones (ControlServer.cs): an unknown parameter is `item-not-found`, a value of
 * the wrong type or out of range is `bad-request`, each with a `paramError` naming the parameter.
 */
import { ConfigError, StanzaError } from '@xmppbus/core';
import type { ControlOperation } from '../dialects/model.js';
import type { DialectCodec } from '../dialects/model.js';
import type { NamespaceFamily } from '../wire/namespaces.js';
import type { ParameterKind, ParameterSpec, ParameterValue } from '../types.js';
import { parseBool, parseDuration, parseInteger, parseNumber, parseTimestamp } from '../wire/values.js';
import { fieldKey } from './things.js';

export interface ParameterState {
  readonly spec: ParameterSpec;
  readonly pattern: RegExp | undefined;
  value: ParameterValue | undefined;
}

export class ParameterStore {
  readonly #params = new Map<string, ParameterState>();

  constructor(specs: readonly ParameterSpec[]) {
    for (const spec of specs) {
      if (typeof spec.name !== 'string' || spec.name.length === 0) throw new ConfigError('a parameter needs a name');
      const key = fieldKey(spec.node, spec.name);
      if (this.#params.has(key)) throw new ConfigError(`parameter ${spec.name} is declared twice`);
      if (spec.kind === 'enum' && (!spec.values || spec.values.length === 0))
        throw new ConfigError(`enum parameter ${spec.name} needs values`);
      if (spec.min !== undefined && spec.max !== undefined && spec.min > spec.max)
        throw new ConfigError(`parameter ${spec.name}: min > max`);
      let pattern: RegExp | undefined;
      try {
        pattern = spec.pattern === undefined ? undefined : new RegExp(`^(?:${spec.pattern})$`, 'u');
      } catch (err) {
        throw new ConfigError(`parameter ${spec.name}: bad pattern`, { cause: err });
      }
      this.#params.set(key, { spec, pattern, value: spec.initial });
    }
  }

  get(name: string, node?: string): ParameterState | undefined {
    return this.#params.get(fieldKey(node, name));
  }

  values(): IterableIterator<ParameterState> {
    return this.#params.values();
  }
}

/** A validated operation, ready to apply. */
export interface ValidOperation {
  readonly state: ParameterState;
  readonly value: ParameterValue;
  readonly node: string | undefined;
}

/** Which wire kinds may set a parameter of kind `target` (an enum may come as a legacy string; numbers widen). */
function compatible(target: ParameterKind, wire: ParameterKind): boolean {
  if (target === wire) return true;
  if (target === 'enum') return wire === 'string';
  if (target === 'double') return wire === 'int' || wire === 'long';
  if (target === 'long') return wire === 'int';
  return false;
}

export function paramError(
  codec: DialectCodec,
  family: NamespaceFamily,
  condition: 'bad-request' | 'item-not-found',
  name: string,
  text: string,
): StanzaError {
  return new StanzaError({
    condition,
    type: 'modify',
    text: `${name}: ${text}`,
    application: codec.paramError(family, name, text),
  });
}

/** Validates one operation; throws the dialect's StanzaError. */
export function validateOperation(
  store: ParameterStore,
  op: ControlOperation,
  node: string | undefined,
  codec: DialectCodec,
  family: NamespaceFamily,
): ValidOperation {
  const state = store.get(op.name, node);
  if (!state) throw paramError(codec, family, 'item-not-found', op.name, 'Parameter not found.');
  const { spec } = state;
  if (!compatible(spec.kind, op.kind))
    throw paramError(codec, family, 'bad-request', op.name, 'Invalid parameter type.');
  const value = parseParameter(spec, op.raw, state.pattern);
  if (value === undefined) throw paramError(codec, family, 'bad-request', op.name, 'Value not valid.');
  return { state, value, node };
}

/** The typed value of `raw` under `spec`, or undefined when it does not fit the schema. */
export function parseParameter(spec: ParameterSpec, raw: string, pattern?: RegExp): ParameterValue | undefined {
  const inRange = (n: number | undefined): number | undefined =>
    n === undefined || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)
      ? undefined
      : n;
  switch (spec.kind) {
    case 'boolean':
      return parseBool(raw);
    case 'int':
      return inRange(parseInteger(raw, 32));
    case 'long':
      return inRange(parseInteger(raw, 64));
    case 'double':
      return inRange(parseNumber(raw));
    case 'enum':
      return spec.values?.includes(raw) ? raw : undefined;
    case 'duration':
      return parseDuration(raw) === undefined ? undefined : raw;
    case 'dateTime':
    case 'date':
      return parseTimestamp(raw) === undefined ? undefined : raw;
    case 'time':
      return /^\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(raw) ? raw : undefined;
    case 'color':
      return /^[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(raw) ? raw : undefined;
    case 'string': {
      if (raw.length > (spec.maxLength ?? 1024)) return undefined;
      if (pattern && !pattern.test(raw)) return undefined;
      return raw;
    }
  }
}

/** The wire text of a parameter value (client side). */
export function formatParameter(value: ParameterValue): string {
  return String(value);
}

/** The parameter kind a JS value travels as when the client does not know the agent's schema. */
export function kindOfValue(value: ParameterValue): ParameterKind {
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) && Math.abs(value) <= 2147483647 ? 'int' : 'double';
  return 'string';
}
