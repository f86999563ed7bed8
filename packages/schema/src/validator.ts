/**
 * ajv, compiled once per schema object and cached in a WeakMap: validation on the hot path is a
 * single call into generated code.
 */
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import { pointerSegment, SchemaError } from './errors.js';
import type { ValidationIssue } from './errors.js';
import { RAW_MARK } from './plan.js';

/**
 * Instances for the process, compiled functions cached per schema below.
 * - `first` (received payloads): stops at the first failure. With `allErrors`, ajv keeps checking
 *   after a failure, and `uniqueItems` on a large object array is O(n²) even when `maxItems`
 *   already failed: 10 s of blocked event loop for one hostile 517 KiB request.
 * - `all` (values our own application sends): lists every issue, which helps the developer.
 * `ownProperties`: a property named `constructor` or `toString` must not see Object.prototype.
 * It costs (decode + validate of a medium payload ~15 % slower), so only schemas that name such
 * a property are compiled with it; for every other schema an inherited name cannot matter.
 * `xml` and our raw marker are declared so ajv's strict mode accepts OpenAPI-style annotations.
 */
function makeAjv(allErrors: boolean, ownProperties: boolean): Ajv {
  const ajv = new Ajv({ allErrors, ownProperties, strict: 'log', logger: false });
  // ajv-formats is CommonJS whose default export is the plugin function.
  (addFormatsPlugin as unknown as (a: Ajv) => Ajv)(ajv);
  ajv.addKeyword({ keyword: 'xml', metaSchema: { type: 'object' } });
  ajv.addKeyword({ keyword: RAW_MARK });
  return ajv;
}

export type ValidationMode = 'first' | 'all';

const instances = {
  first: makeAjv(false, false),
  all: makeAjv(true, false),
  firstOwn: makeAjv(false, true),
  allOwn: makeAjv(true, true),
};
const caches = { first: new WeakMap<object, ValidateFunction>(), all: new WeakMap<object, ValidateFunction>() };

/** Whether some `properties` of the schema names a member of Object.prototype. */
function namesInheritedProperty(schema: unknown, seen = new Set<unknown>()): boolean {
  if (typeof schema !== 'object' || schema === null || seen.has(schema)) return false;
  seen.add(schema);
  const props = (schema as { properties?: unknown }).properties;
  if (typeof props === 'object' && props !== null) {
    for (const k of Object.keys(props)) if (k in Object.prototype) return true;
  }
  for (const v of Object.values(schema)) if (namesInheritedProperty(v, seen)) return true;
  return false;
}

/** The compiled ajv function of a schema (compiled on first use, then cached). */
export function validatorOf(schema: object, mode: ValidationMode = 'first'): ValidateFunction {
  const cache = caches[mode];
  let fn = cache.get(schema);
  if (fn === undefined) {
    const ajv = namesInheritedProperty(schema) ? instances[mode === 'first' ? 'firstOwn' : 'allOwn'] : instances[mode];
    try {
      fn = ajv.compile(schema);
    } catch (err) {
      // An invalid schema or an unknown format: a contract bug, reported like the codec's own.
      throw new SchemaError('', `ajv cannot compile the schema: ${(err as Error).message}`, { cause: err });
    }
    // ajv keeps its own cache keyed by the schema object; ours is the one that matters, and
    // dropping ajv's lets two schemas reuse an `$id` and lets unused contracts be collected.
    ajv.removeSchema(schema);
    cache.set(schema, fn);
  }
  return fn;
}

/** ajv errors → issues with JSON-pointer paths that name the failing property. */
export function issuesOf(errors: readonly ErrorObject[] | null | undefined): ValidationIssue[] {
  if (!errors || errors.length === 0) return [{ path: '', message: 'invalid' }];
  const out: ValidationIssue[] = [];
  for (const e of errors) {
    let path = e.instancePath;
    const params = e.params as Record<string, unknown>;
    let message = e.message ?? 'invalid';
    if (e.keyword === 'required' && typeof params['missingProperty'] === 'string') {
      path += '/' + pointerSegment(params['missingProperty']);
      message = 'is required';
    } else if (e.keyword === 'additionalProperties' && typeof params['additionalProperty'] === 'string') {
      path += '/' + pointerSegment(params['additionalProperty']);
      message = 'is not allowed by the schema';
    }
    out.push({ path, message });
  }
  return out;
}
