/**
 * Contracts: a payload is defined once — namespace + element name + JSON Schema — and both the
 * XML mapping and validation derive from it. Static types come from TypeBox (`Static<S>`); a
 * plain JSON Schema can be typed with `Type.Unsafe<T>(schema)`.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import type { StanzaErrorCondition } from '@xmppbus/core';

/** A schema-shaped XML payload: `<name xmlns='ns'>…</name>`. */
export interface PayloadContract<S extends TSchema = TSchema> {
  readonly kind: 'payload';
  readonly ns: string;
  readonly name: string;
  readonly schema: S;
}

/** The payload type a contract describes. */
export type PayloadOf<C> = C extends PayloadContract<infer S> ? Static<S> : never;

export interface PayloadInit<S extends TSchema> {
  ns: string;
  name: string;
  schema: S;
}

export function payload<S extends TSchema>(init: PayloadInit<S>): PayloadContract<S> {
  return Object.freeze({ kind: 'payload', ns: init.ns, name: init.name, schema: init.schema });
}

/** An event published through pub/sub or sent as a message: a payload contract by another name. */
export function event<S extends TSchema>(init: PayloadInit<S>): PayloadContract<S> {
  return payload(init);
}

/**
 * An application error a method declares. It travels as a stanza error with `condition` and
 * the application element `<name xmlns='<method ns>'>` carrying `schema`'s data.
 */
export interface ErrorContract<S extends TSchema = TSchema> {
  readonly condition: StanzaErrorCondition;
  readonly schema?: S;
}

export interface MethodInit<Req extends TSchema, Res extends TSchema, E extends Record<string, ErrorContract>> {
  ns: string;
  /** Local name of the request element; it names the method. */
  name: string;
  request: Req;
  response: Res;
  /** Local name of the response element (default: the same as the request, as XMPP protocols do). */
  responseName?: string;
  /** Read-only methods travel as IQ `get`, others as `set`. Default false. */
  readOnly?: boolean;
  /** Safe to retry: the client retries only idempotent methods, only on retryable errors. Default false. */
  idempotent?: boolean;
  errors?: E;
}

export interface MethodContract<
  Req extends TSchema = TSchema,
  Res extends TSchema = TSchema,
  E extends Record<string, ErrorContract> = Record<string, ErrorContract>,
> {
  readonly kind: 'method';
  readonly ns: string;
  readonly name: string;
  readonly request: PayloadContract<Req>;
  readonly response: PayloadContract<Res>;
  readonly readOnly: boolean;
  readonly idempotent: boolean;
  readonly errors: E;
}

export type RequestOf<M> =
  M extends MethodContract<infer Req, TSchema, Record<string, ErrorContract>> ? Static<Req> : never;
export type ResponseOf<M> =
  M extends MethodContract<TSchema, infer Res, Record<string, ErrorContract>> ? Static<Res> : never;

export function method<
  Req extends TSchema,
  Res extends TSchema,
  E extends Record<string, ErrorContract> = Record<never, ErrorContract>,
>(init: MethodInit<Req, Res, E>): MethodContract<Req, Res, E> {
  return Object.freeze({
    kind: 'method',
    ns: init.ns,
    name: init.name,
    request: payload({ ns: init.ns, name: init.name, schema: init.request }),
    response: payload({ ns: init.ns, name: init.responseName ?? init.name, schema: init.response }),
    readOnly: init.readOnly ?? false,
    idempotent: init.idempotent ?? false,
    errors: (init.errors ?? {}) as E,
  });
}
