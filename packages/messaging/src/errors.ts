import { QueueFullError, type XmppBusErrorOptions } from '@xmppbus/core';

/** The outbox holds `maxOutbox` messages and the overflow policy refused (or pushed out) one. */
export class OutboxFullError extends QueueFullError {
  constructor(limit: number, message = `outbox full (${limit} messages)`, options?: XmppBusErrorOptions) {
    super(limit, message, options);
  }
}
