/**
 * The agent's fields: declared specs, the latest sample of each, and a small ring of past values
 * for historical readout. One object per new value (the sample), nothing else per change.
 */
import { ConfigError } from '@xmppbus/core';
import type { FieldKind, FieldQuality, FieldSample, FieldSpec, FieldValue } from '../types.js';
import {
  AUTOMATIC_READOUT,
  CAT,
  MISSING,
  categoriesOf,
  categoryMask,
  parseDuration,
  parseTimestamp,
} from '../wire/values.js';

export interface FieldState {
  readonly spec: FieldSpec;
  readonly key: string;
  readonly mask: number;
  /** A control parameter of the same name and node exists: samples carry `writable` (nf `ctr`). */
  readonly writable: boolean;
  current: FieldSample;
  /** Ring of past samples (historical readout), oldest first once full. */
  readonly ring: FieldSample[];
  ringStart: number;
}

export function fieldKey(node: string | undefined, name: string): string {
  return node === undefined ? name : `${node}\u0000${name}`;
}

/** Options of `agent.set`. */
export interface SetValueOptions {
  readonly node?: string;
  /** When the value was measured (default: now on the session clock). */
  readonly timestamp?: number;
  readonly quality?: readonly FieldQuality[];
}

export class FieldStore {
  readonly #fields = new Map<string, FieldState>();
  readonly #historyLimit: number;

  /** `writable`: keys (`fieldKey`) of the agent's control parameters. */
  constructor(
    specs: readonly FieldSpec[],
    options: { historyLimit: number; writable: ReadonlySet<string> },
    now: number,
  ) {
    this.#historyLimit = options.historyLimit;
    for (const spec of specs) {
      if (typeof spec.name !== 'string' || spec.name.length === 0) throw new ConfigError('a field needs a name');
      const key = fieldKey(spec.node, spec.name);
      if (this.#fields.has(key)) throw new ConfigError(`field ${spec.name} is declared twice`);
      if (spec.kind === 'enum' && (!spec.values || spec.values.length === 0))
        throw new ConfigError(`enum field ${spec.name} needs values`);
      const mask = categoryMask(spec.categories, CAT.momentary);
      const writable = options.writable.has(key);
      const current = missingSample(spec, mask, writable, now);
      const state: FieldState = { spec, key, mask, writable, current, ring: [], ringStart: 0 };
      if (spec.initial !== undefined)
        state.current = this.#sample(state, checkValue(spec, spec.initial), now, AUTOMATIC_READOUT);
      this.#fields.set(key, state);
    }
  }

  get size(): number {
    return this.#fields.size;
  }

  get(name: string, node?: string): FieldState | undefined {
    return this.#fields.get(fieldKey(node, name));
  }

  values(): IterableIterator<FieldState> {
    return this.#fields.values();
  }

  /** Records a new value; throws ConfigError for an unknown field or a value of the wrong kind. */
  set(name: string, value: FieldValue, options: SetValueOptions, now: number): FieldState {
    const state = this.#fields.get(fieldKey(options.node, name));
    if (!state) throw new ConfigError(`unknown field ${name}${options.node ? ` on node ${options.node}` : ''}`);
    const sample = this.#sample(
      state,
      checkValue(state.spec, value),
      options.timestamp ?? now,
      options.quality ?? AUTOMATIC_READOUT,
    );
    if (this.#historyLimit > 0 && !(state.current.quality as readonly string[]).includes('missing'))
      this.#remember(state, state.current);
    state.current = sample;
    return state;
  }

  /** Past samples of a field within [from, to] (plus the current one), oldest first. */
  history(state: FieldState, from: number, to: number): FieldSample[] {
    const out: FieldSample[] = [];
    const n = state.ring.length;
    for (let i = 0; i < n; i++) {
      const s = state.ring[(state.ringStart + i) % n]!;
      if (s.timestamp >= from && s.timestamp <= to) out.push(asHistorical(s));
    }
    const c = state.current;
    if (!(c.quality as readonly string[]).includes('missing') && c.timestamp >= from && c.timestamp <= to)
      out.push(asHistorical(c));
    return out;
  }

  #remember(state: FieldState, sample: FieldSample): void {
    if (state.ring.length < this.#historyLimit) {
      state.ring.push(sample);
      return;
    }
    state.ring[state.ringStart] = sample;
    state.ringStart = (state.ringStart + 1) % state.ring.length;
  }

  #sample(state: FieldState, value: FieldValue, timestamp: number, quality: readonly FieldQuality[]): FieldSample {
    const { spec } = state;
    return {
      node: spec.node,
      name: spec.name,
      kind: spec.kind,
      value,
      timestamp,
      unit: spec.unit,
      decimals: spec.decimals,
      enumType: spec.enumType,
      categories: categoriesOf(state.mask & ~CAT.historical || CAT.momentary),
      quality,
      ...(state.writable ? { writable: true } : {}),
    };
  }
}

function missingSample(spec: FieldSpec, mask: number, writable: boolean, now: number): FieldSample {
  const value: FieldValue = spec.kind === 'boolean' ? false : numericKind(spec.kind) ? 0 : '';
  return {
    node: spec.node,
    name: spec.name,
    kind: spec.kind,
    value,
    timestamp: now,
    unit: spec.unit,
    decimals: spec.decimals,
    enumType: spec.enumType,
    categories: categoriesOf(mask & ~CAT.historical || CAT.momentary),
    quality: MISSING,
    ...(writable ? { writable: true } : {}),
  };
}

function asHistorical(s: FieldSample): FieldSample {
  return { ...s, categories: categoriesOf(CAT.historical) };
}

function numericKind(kind: FieldKind): boolean {
  return kind === 'quantity' || kind === 'int' || kind === 'long';
}

/** Checks a value against its field's kind (a programming error throws ConfigError). */
export function checkValue(spec: FieldSpec, value: FieldValue): FieldValue {
  const fail = (): never => {
    throw new ConfigError(`value ${String(value)} does not fit ${spec.kind} field ${spec.name}`);
  };
  switch (spec.kind) {
    case 'quantity':
      return typeof value === 'number' && Number.isFinite(value) ? value : fail();
    case 'int':
    case 'long':
      return typeof value === 'number' && Number.isSafeInteger(value) ? value : fail();
    case 'boolean':
      return typeof value === 'boolean' ? value : fail();
    case 'enum':
      return typeof value === 'string' && spec.values?.includes(value) ? value : fail();
    case 'duration':
      return typeof value === 'string' && parseDuration(value) !== undefined ? value : fail();
    case 'dateTime':
    case 'date':
      return typeof value === 'string' && parseTimestamp(value) !== undefined ? value : fail();
    default:
      return typeof value === 'string' ? value : fail();
  }
}
