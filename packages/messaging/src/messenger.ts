/**
 * The Messenger: QoS 0/1/2 messages over a session, with a durable outbox on the sending side
 * and a durable assured inbox + dedupe log on the receiving side. A facade: it checks options
 * and wires the units, each with one job —
 * `Outbox` (admission, durable records, schedule), `PeerDispatcher` (per-peer window and state,
 * batching) with its `QosSender` (wire exchanges, failure → retry or dead letter),
 * `HandlerRegistry`, `QosReceiver` and `AssuredInbox` (the receiving side), `DeadLetters` — and
 * runs the lifecycle of docs/api.md.
 */
import { ClosedError, WaitQueue, withAbort, type Session, type SessionUnit, type WaitOptions } from '@xmppbus/core';
import type { PayloadContract, PayloadOf } from '@xmppbus/schema';
import { AssuredInbox } from './assured-inbox.js';
import { DeadLetters } from './dead-letters.js';
import { HandlerRegistry } from './handler-registry.js';
import { memoryStore } from './memory-store.js';
import { resolveOptions, type MessengerOptions } from './options.js';
import { Outbox } from './outbox.js';
import { PeerDispatcher } from './peer-dispatcher.js';
import { QosReceiver } from './qos-receiver.js';
import { SenderOrder } from './sender-order.js';
import type { MessageStore } from './store.js';
import {
  newCounters,
  type DeadLetterEvent,
  type InboundUsage,
  type MessengerStatus,
  type HandlerOptions,
  type MessageHandler,
  type MessageSendOptions,
  type MessengerCounters,
} from './types.js';

export class Messenger implements SessionUnit, AsyncDisposable {
  readonly name = 'messenger';
  /** Metrics-ready counters. */
  readonly counters: MessengerCounters = newCounters();
  /** Lists, inspects, replays and removes messages the outbox gave up on. */
  readonly deadLetters: DeadLetters;
  readonly #session: Session;
  readonly #store: MessageStore;
  readonly #closeStore: boolean;
  readonly #outbox: Outbox;
  readonly #dispatcher: PeerDispatcher;
  readonly #registry: HandlerRegistry;
  readonly #order: SenderOrder;
  readonly #inbox: AssuredInbox;
  readonly #receiver: QosReceiver;
  readonly #settled: WaitQueue;
  #deadLetterListeners: ((event: DeadLetterEvent) => void)[] = [];
  #status: MessengerStatus = 'idle';
  #setup: Promise<void> | undefined;
  #removeUnit: (() => void) | undefined;
  #listeners: (() => void)[] = [];

  /** Checks the options and builds the units; nothing is opened, registered or sent. */
  constructor(options: MessengerOptions) {
    const settings = resolveOptions(options);
    const session = (this.#session = options.session);
    const store = (this.#store = options.store ?? memoryStore());
    this.#closeStore = settings.closeStore;
    const counters = this.counters;
    this.#settled = new WaitQueue({ clock: session.clock, what: 'messenger drain' });
    this.#outbox = new Outbox({
      session,
      store,
      settings,
      counters,
      events: {
        peerOf: (to) => this.#dispatcher.peer(to),
        due: (entry) => this.#dispatcher.due(entry),
        removed: (entry) => {
          this.#dispatcher.removed(entry);
          this.#checkSettled();
        },
        deadLettered: (entry, reason, error) => {
          const event: DeadLetterEvent = { id: entry.rec.id, to: entry.rec.to, reason, error };
          for (const l of [...this.#deadLetterListeners]) l(event);
        },
      },
    });
    this.#dispatcher = new PeerDispatcher({ session, outbox: this.#outbox, settings, counters });
    this.#registry = new HandlerRegistry({ session, store, settings, counters });
    this.#order = new SenderOrder(() => this.#checkSettled(), settings.concurrency);
    this.#inbox = new AssuredInbox({
      session,
      store,
      settings,
      counters,
      registry: this.#registry,
      order: this.#order,
    });
    this.#receiver = new QosReceiver({
      session,
      settings,
      counters,
      registry: this.#registry,
      order: this.#order,
      inbox: this.#inbox,
    });
    this.deadLetters = new DeadLetters({ store, outbox: this.#outbox, ready: (o) => this.#started(o) });
  }

  get status(): MessengerStatus {
    return this.#status;
  }

  /** Assured messages stored and awaiting `deliver`, per sender bare JID. */
  get pendingInbound(): ReadonlyMap<string, number> {
    return this.#inbox.pending;
  }

  /**
   * What the receiving side holds now, against its budgets: `queue` = bytes (on the wire) and
   * messages waiting for or in a handler, `pending` = QoS 2 messages awaiting `deliver`;
   * `evicted`/`expired` = pending messages dropped for room or after `receive.pendingTtl`.
   */
  get inboundUsage(): InboundUsage {
    return {
      queue: this.#receiver.queue.usage,
      pending: this.#inbox.usage,
      evicted: this.#inbox.evicted,
      expired: this.#inbox.expired,
    };
  }

  /**
   * Becomes ready: joins the session's lifecycle, starts the session if needed (its transport
   * online), opens the store, recovers the outbox and registers the QoS handlers. Rejects with
   * ConflictError when another Messenger serves this session. Idempotent.
   */
  async start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining') throw new ClosedError(`messenger is ${this.#status}`);
    this.#removeUnit ??= this.#session.add(this);
    // The session starts its units itself (this method again): never await it from inside that.
    if (this.#session.status === 'idle') await this.#session.start(options);
    else await this.#started(options);
  }

  /** The unit's own setup, once. */
  #started(options: WaitOptions = {}): Promise<void> {
    if (!this.#setup) {
      this.#status = 'starting';
      this.#setup = this.#open();
      this.#setup.catch(() => undefined);
    }
    return withAbort(this.#setup, options, 'messenger start');
  }

  async #open(): Promise<void> {
    await this.#store.open();
    await this.#outbox.recover();
    await this.#inbox.start();
    this.#receiver.start(); // throws ConflictError when another messenger holds the handlers
    const session = this.#session;
    this.#listeners.push(
      session.onPresence((p) => this.#dispatcher.onPresence(p)),
      session.onTransportStatus((status) => {
        if (status === 'online') this.#dispatcher.resumeAll();
      }),
      session.instrumentation.observe('messenger', () => {
        const queue = this.#receiver.queue.usage;
        const c = this.counters;
        return {
          inFlight: c.inFlight,
          queueDepth: queue.count,
          queueBytes: queue.bytes,
          outbox: this.#outbox.size,
          pendingInbound: this.#inbox.usage.count,
          retries: c.retried,
          deadLetters: c.deadLettered,
        };
      }),
    );
    this.#dispatcher.run();
    if (this.#status === 'starting') this.#status = 'ready';
  }

  #checkStarted(): void {
    if (this.#removeUnit === undefined)
      throw new ClosedError('messenger not started: call start() first', { retryable: false });
  }

  /**
   * Sends `value` as `contract`'s payload to `to`. Resolves when the level's guarantee is met:
   * QoS 0 written to the link, QoS 1 acknowledged by the receiver, QoS 2 stored by the receiver
   * (`received`; the exactly-once `deliver` follows from the outbox). Until then the message is
   * in the (durable) outbox: `signal`/`timeout` end the wait, not the message.
   */
  async send<C extends PayloadContract>(
    contract: C,
    to: string,
    value: PayloadOf<C>,
    options: MessageSendOptions = {},
  ): Promise<void> {
    this.#checkStarted();
    await this.#started(options);
    const { done } = await this.#outbox.acceptTraced(contract, to, value, options, true);
    if (done) await withAbort(done, options, `send to ${to}`);
  }

  /**
   * Like `send`, but resolves with the message id as soon as the message is accepted (durably
   * queued for QoS 1/2 and scheduled messages; written for QoS 0). Watch `counters`, `drain()`,
   * `onDeadLetter` and the dead letters for the outcome.
   */
  async enqueue<C extends PayloadContract>(
    contract: C,
    to: string,
    value: PayloadOf<C>,
    options: MessageSendOptions = {},
  ): Promise<string> {
    this.#checkStarted();
    await this.#started(options);
    const { id } = await this.#outbox.acceptTraced(contract, to, value, options, false);
    return id;
  }

  /** Registers the handler of `contract`'s messages (any QoS); a second one throws ConflictError. Returns the remover. */
  handle<C extends PayloadContract>(
    contract: C,
    handler: MessageHandler<PayloadOf<C>>,
    options?: HandlerOptions,
  ): () => void {
    return this.#registry.handle(contract, handler, options);
  }

  /** Listens to messages moved to the dead letters. Returns the remover. */
  onDeadLetter(listener: (event: DeadLetterEvent) => void): () => void {
    this.#deadLetterListeners.push(listener);
    return () => {
      this.#deadLetterListeners = this.#deadLetterListeners.filter((l) => l !== listener);
    };
  }

  #idle(): boolean {
    return this.#outbox.size === 0 && this.#order.active === 0;
  }

  #checkSettled(): void {
    if (this.#settled.size > 0 && this.#idle()) this.#settled.wake();
  }

  /**
   * Stops taking new work (`send` rejects with ClosedError, new inbound envelopes are answered
   * as unavailable) and waits until the outbox is empty (every message acknowledged, delivered
   * or dead-lettered) and no inbound handler runs — bounded by `timeout`/`signal` (an
   * unreachable peer keeps messages waiting: then it rejects with TimeoutError / the abort
   * reason, and the messages stay in the store).
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return;
    this.#status = 'draining';
    this.#outbox.refuseNew('messenger is draining');
    this.#receiver.refuseNew();
    await this.flush(options);
  }

  /**
   * Waits, like `drain` but without stopping intake, until the outbox is empty and no inbound
   * handler runs; bounded by `timeout`/`signal`.
   */
  async flush(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return;
    if (this.#setup) await withAbort(this.#setup, options, 'messenger flush');
    while (!this.#idle()) await this.#settled.wait(options);
  }

  /**
   * Stops sending and receiving at once. Messages not yet acknowledged stay in the store and go
   * out after the next start; pending `send`s reject with ClosedError; running handlers see
   * their signal abort. Closes the store unless `closeStore: false`. Idempotent, never waits
   * for a peer or a handler.
   */
  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    this.#status = 'closed';
    this.#removeUnit?.();
    const err = new ClosedError('messenger closed; the message stays in the outbox');
    for (const off of this.#listeners.splice(0)) off();
    this.#receiver.close();
    this.#dispatcher.close();
    this.#outbox.close(err);
    this.#inbox.close();
    this.#registry.close();
    this.#settled.fail(err);
    // The store finishes the writes already called before it closes (its contract).
    if (this.#setup) await this.#setup.catch(() => undefined);
    if (this.#closeStore) await this.#store.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
