/**
 * The one callee error policy (docs/protocol.md, "Errors a service answers"): what a handler's
 * failure becomes on the wire, the same in rpc, messaging and pub/sub.
 * - a thrown `StanzaError` is sent as it is (the handler chose the condition);
 * - a validation failure (`ERR_VALIDATION`) is `modify/bad-request` with the message;
 * - anything else is `internal-server-error`, logged once with a reference id that the error
 *   text carries too (never a stack trace on the wire). Its type is `wait` when the thrown error
 *   says it is retryable (an `XmppBusError` with `retryable: true`), else `cancel`.
 * A payload nobody handles is answered by `noHandlerError` (iq.ts).
 */
import { XmppBusError, toError } from './errors.js';
import { randomId } from './id.js';
import type { Logger } from './logger.js';
import { StanzaError } from './stanza-error.js';

export interface CalleeErrorContext {
  logger: Logger;
  /** What failed, for the log line: e.g. `handler of {urn:example:orders:1}create`. */
  what: string;
}

export function calleeError(thrown: unknown, context: CalleeErrorContext): StanzaError {
  if (thrown instanceof StanzaError) return thrown;
  if (thrown instanceof XmppBusError && thrown.code === 'ERR_VALIDATION')
    return new StanzaError({ condition: 'bad-request', type: 'modify', text: thrown.message });
  const ref = randomId().slice(0, 8);
  const err = toError(thrown);
  context.logger.error(`${context.what} failed (ref ${ref}): ${err.message}`, err);
  const retryable = thrown instanceof XmppBusError && thrown.retryable;
  return new StanzaError({
    condition: 'internal-server-error',
    type: retryable ? 'wait' : 'cancel',
    text: `internal error (ref ${ref})`,
  });
}
