/** Public types of the Messenger shared by its units: send options, handler context, counters. */
import type { Element, Headers, HeadersInit, WaitOptions } from '@xmppbus/core';
import type { Duration } from './options.js';
import type { DeadLetterReason } from './store.js';
import type { QosLevel } from './wire.js';

/** Options of `messenger.send` (distinct from core's transport-level `SendOptions`). */
export interface MessageSendOptions extends WaitOptions {
  /** 0 at most once, 1 at least once, 2 exactly once (default: the messenger's `defaultQos`, 1). */
  qos?: QosLevel;
  /** Time to live from now; undelivered after it → dead letter `expired`. Also sent as XEP-0079 expire-at. */
  ttl?: Duration;
  /** Scheduled delivery: not sent before this instant. */
  deliverAt?: Date | number;
  /**
   * Message id (default: random). Sending again with an id still in the outbox is a no-op that
   * waits for the same message; for QoS 2 the receiver also drops ids it already delivered, so a
   * producer that retries with its own ids gets exactly-once end to end.
   */
  id?: string;
  /** XEP-0131 SHIM headers to carry (trace context, correlation id, …): a map, entry pairs or a record. */
  headers?: HeadersInit;
  /** XEP-0334 hint: `true` → `<store/>` (ask a server's offline storage to keep it), `false` → `<no-store/>`. */
  store?: boolean;
  /** XMPP message type of the (inner) message (default `normal`). */
  type?: 'normal' | 'chat' | 'headline';
}

/** Options of `messenger.enqueue`: like `send`, but the wait ends at acceptance. */
export type EnqueueOptions = MessageSendOptions;

/** What a handler learns about a message besides its payload (the shared handler context of docs/api.md). */
export interface MessageContext {
  /** Full JID of the sender (for QoS 1/2: the IQ's `from`, never the inner message's claim). */
  readonly from: string;
  /** SHIM headers, empty when none. */
  readonly headers: Headers;
  /** Fires when the messenger closes: a long handler should stop (the message is then redelivered). */
  readonly signal: AbortSignal;
  /** Original send time when the message waited (XEP-0203 `<delay/>`: our outbox, or a server's offline store). */
  readonly delayedFrom: Date | undefined;
  readonly to: string;
  readonly qos: QosLevel;
  /** Message id: the QoS 2 msgId, the QoS 1 IQ id, or the message's origin-id/id. */
  readonly id: string | undefined;
  /** Who delayed it: the sender (outbox replay) or the server (offline storage). */
  readonly delayedBy: string | undefined;
  /** The delay element's text (ejabberd: "Offline storage"). */
  readonly delayReason: string | undefined;
  /** XEP-0079 expiry the sender set. */
  readonly expiresAt: Date | undefined;
  /** The message element as received (to/from overwritten with the envelope's). */
  readonly stanza: Element;
}

export type MessageHandler<T> = (value: T, context: MessageContext) => void | Promise<void>;

export interface HandlerOptions {
  /**
   * QoS 2 only: run the handler synchronously and commit its effect atomically with the
   * delivered mark (requires a store with `inboxCompleteWith`, e.g. `@xmppbus/store-sqlite`;
   * write the side effect through the store's database). Then no crash can separate "effect
   * done" from "marked delivered". The handler must not return a promise.
   */
  transactional?: boolean;
}

/** Metrics-ready counters (monotonic unless noted). */
export interface MessengerCounters {
  /** Messages in the outbox now (gauge): queued, in flight, scheduled or awaiting `deliver`. */
  queued: number;
  /** QoS IQs awaiting a reply now (gauge). */
  inFlight: number;
  /** Outbound attempts written (first tries and retries). */
  sent: number;
  /** …of which travelled inside a batch (several messages per IQ, `urn:xmppbus:qos:batch:1`). */
  batched: number;
  /** Batch IQs written (`batched / batches` = messages per batch). */
  batches: number;
  /** Outbound messages that reached their guarantee (QoS 0 written, 1 acknowledged, 2 delivered). */
  completed: number;
  /** Outbound attempts that failed and will be retried. */
  retried: number;
  /** Outbound messages moved to the dead letters (any reason). */
  deadLettered: number;
  /** …of which because their TTL elapsed. */
  expired: number;
  /** Inbound messages handed to a handler successfully. */
  received: number;
  /** Inbound duplicates answered without running the handler. */
  duplicates: number;
  /** Inbound messages refused (policy, caps, expiry, invalid payload, no handler, draining). */
  refused: number;
  /** Inbound handler invocations that threw. */
  handlerErrors: number;
}

export function newCounters(): MessengerCounters {
  return {
    queued: 0,
    inFlight: 0,
    sent: 0,
    batched: 0,
    batches: 0,
    completed: 0,
    retried: 0,
    deadLettered: 0,
    expired: 0,
    received: 0,
    duplicates: 0,
    refused: 0,
    handlerErrors: 0,
  };
}

export type MessengerStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

/** A message the outbox gave up on, as `onDeadLetter` listeners see it. */
export interface DeadLetterEvent {
  readonly id: string;
  readonly to: string;
  readonly reason: DeadLetterReason;
  readonly error: Error;
}

/** `messenger.inboundUsage`: the receiving side's budgets in use. */
export interface InboundUsage {
  readonly queue: { readonly bytes: number; readonly count: number };
  readonly pending: { readonly bytes: number; readonly count: number };
  readonly evicted: number;
  readonly expired: number;
}
