/**
 * Declared application errors. A method lists the errors it may raise (`errors: { outOfStock:
 * { condition: 'conflict', schema } }`); a handler throws `new RpcError(Method, 'outOfStock', data)`
 * and the caller catches the same class, with `errorName` and typed `data`.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { ConfigError, StanzaError, type XmppBusErrorOptions } from '@xmppbus/core';
import type { ErrorContract, MethodContract } from '@xmppbus/schema';

/** Names of the errors a method declares. */
export type ErrorNameOf<M> = M extends MethodContract<TSchema, TSchema, infer E> ? keyof E & string : never;

/** The data type of declared error `K` of method `M` (undefined when it declares no schema). */
export type ErrorDataOf<M, K extends string> =
  M extends MethodContract<TSchema, TSchema, infer E>
    ? K extends keyof E
      ? E[K] extends ErrorContract<infer S>
        ? E[K]['schema'] extends TSchema
          ? Static<S>
          : undefined
        : never
      : never
    : never;

export interface RpcErrorOptions extends XmppBusErrorOptions {
  /** Human-readable `<text/>` (default: the error name). Sent over the wire: no secrets. */
  text?: string;
}

/** A declared application error of method `M`, raised by a handler and rethrown at the caller. */
export class RpcError<M extends MethodContract = MethodContract, K extends string = string> extends StanzaError {
  /** The method that declared this error. */
  readonly method: M;
  /** Key of the error in the method's `errors`. */
  readonly errorName: K;
  /** The error's data, validated against the declared schema. */
  readonly data: ErrorDataOf<M, K>;

  constructor(
    method: M,
    errorName: K & ErrorNameOf<M>,
    ...rest: ErrorDataOf<M, K> extends undefined
      ? [data?: undefined, options?: RpcErrorOptions]
      : [data: ErrorDataOf<M, K>, options?: RpcErrorOptions]
  ) {
    const [data, options] = rest;
    const declared = method.errors[errorName];
    if (!declared) throw new ConfigError(`method {${method.ns}}${method.name} declares no error '${errorName}'`);
    super({ condition: declared.condition, text: options?.text ?? errorName }, options);
    this.method = method;
    this.errorName = errorName;
    this.data = data as ErrorDataOf<M, K>;
  }

  /** Type guard: `if (RpcError.is(err, CreateOrder, 'outOfStock')) err.data.sku`. */
  static is<M extends MethodContract, K extends ErrorNameOf<M>>(
    err: unknown,
    method: M,
    errorName?: K,
  ): err is RpcError<M, K> {
    return (
      err instanceof RpcError &&
      err.method.ns === method.ns &&
      err.method.name === method.name &&
      (errorName === undefined || err.errorName === errorName)
    );
  }
}
