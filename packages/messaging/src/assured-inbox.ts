/**
 * The QoS 2 receiving side (docs/protocol.md §5.3): `assured` stores the message durably
 * before answering `received` (capped per sender and in total), and `deliver` runs its handler
 * once, in per-sender order, then commits the delivered mark; with a transactional handler the
 * effect and the mark commit as one unit (`inboxCompleteWith`). Re-sent `assured`/`deliver`
 * are recognised by (sender bare JID, msgId) and answered without running anything again.
 * Delivered msgIds are pruned after `receive.dedupeRetention`.
 */
import { ConfigError, StanzaError, deferred, parseXml, toError, type Session, type TimerHandle } from '@xmppbus/core';
import type { HandlerRegistry, Opened, Outcome, Registration } from './handler-registry.js';
import type { Settings } from './options.js';
import type { SenderOrder } from './sender-order.js';
import type { InboxRecord, MessageStore } from './store.js';
import type { MessengerCounters } from './types.js';
import { expiredCondition, receivedElement } from './wire.js';

export interface InboxDeps {
  session: Session;
  store: MessageStore;
  settings: Settings;
  counters: MessengerCounters;
  registry: HandlerRegistry;
  order: SenderOrder;
}

interface Cached {
  message: Opened['message'];
  reg: Registration;
  value: unknown;
}

const noop = (): void => {};

export class AssuredInbox {
  readonly #session: Session;
  readonly #store: MessageStore;
  readonly #settings: Settings;
  readonly #counters: MessengerCounters;
  readonly #registry: HandlerRegistry;
  readonly #order: SenderOrder;
  /** Decoded values of stored messages, so a `deliver` in the same process skips parsing. */
  readonly #cache = new Map<string, Cached>();
  /** Deliveries between handler start and committed delivered mark. */
  readonly #delivering = new Map<string, Promise<void>>();
  #pendingBySender = new Map<string, number>();
  #pendingTotal = 0;
  #pruneTimer: TimerHandle | undefined;
  #closed = false;

  constructor(deps: InboxDeps) {
    this.#session = deps.session;
    this.#store = deps.store;
    this.#settings = deps.settings;
    this.#counters = deps.counters;
    this.#registry = deps.registry;
    this.#order = deps.order;
  }

  /** Assured messages stored and awaiting `deliver`, per sender bare JID. */
  get pending(): ReadonlyMap<string, number> {
    return this.#pendingBySender;
  }

  /** Restores the caps' counts and starts pruning (after the store opened). */
  async start(): Promise<void> {
    await this.#prune();
  }

  close(): void {
    this.#closed = true;
    this.#pruneTimer?.cancel();
    this.#pruneTimer = undefined;
  }

  async #prune(): Promise<void> {
    if (this.#closed) return;
    const now = this.#session.clock.now();
    const before = now - this.#settings.dedupeRetention;
    try {
      await this.#store.prune(before, before);
      const counts = await this.#store.inboxPendingCounts();
      this.#pendingBySender = counts;
      this.#pendingTotal = 0;
      for (const n of counts.values()) this.#pendingTotal += n;
    } catch (err) {
      this.#session.logger.warn('prune failed', toError(err));
    }
    if (!this.#closed) {
      const every = Math.min(3_600_000, Math.max(60_000, this.#settings.dedupeRetention / 24));
      this.#pruneTimer = this.#session.clock.setTimeout(() => void this.#prune(), every);
    }
  }

  #refusal(error: StanzaError): StanzaError {
    this.#counters.refused++;
    return error;
  }

  /** QoS 2 first half: stores the message durably (unless known) and answers `received`. */
  async assured(from: string, sender: string, msgId: string, ns: string, opened: Opened): Promise<Outcome> {
    const settings = this.#settings;
    let value: unknown;
    try {
      value = this.#registry.decode(opened.reg, opened.el); // refuse invalid payloads before storing them
    } catch (err) {
      return this.#refusal(err as StanzaError);
    }
    const pending = this.#pendingBySender.get(sender) ?? 0;
    let reserved = false;
    try {
      if (pending >= settings.maxPendingPerSender || this.#pendingTotal >= settings.maxPendingTotal) {
        // Full — unless this is a re-sent assured we already hold or delivered.
        const known = await this.#store.inboxGet(sender, msgId);
        if (known === undefined) {
          return this.#refusal(
            new StanzaError({
              condition: 'resource-constraint',
              type: 'wait',
              text:
                pending >= settings.maxPendingPerSender
                  ? `more than ${settings.maxPendingPerSender} assured messages pending from ${sender}`
                  : `more than ${settings.maxPendingTotal} assured messages pending`,
            }),
          );
        }
        this.#counters.duplicates++;
        return receivedElement(msgId, ns);
      }
      const record: InboxRecord = {
        sender,
        msgId,
        from,
        stanza: opened.message.toString(),
        ns,
        receivedAt: this.#session.clock.now(),
      };
      // Reserve the slot before the (asynchronous) store write, so the items of a batch or a
      // pipelined window cannot all pass the cap check together.
      this.#pendingBySender.set(sender, pending + 1);
      this.#pendingTotal++;
      reserved = true;
      const result = await this.#store.inboxPut(record);
      if (result === 'stored') {
        this.#cache.set(`${sender}\n${msgId}`, { message: opened.message, reg: opened.reg, value });
      } else {
        this.#counters.duplicates++;
        this.#release(sender);
      }
      return receivedElement(msgId, ns);
    } catch (err) {
      if (reserved) this.#release(sender);
      this.#session.logger.error('storing an assured message failed', toError(err));
      // The receiver's own storage: the sender keeps the message and tries again.
      return this.#refusal(new StanzaError({ condition: 'internal-server-error', type: 'wait', text: 'store failed' }));
    }
  }

  /** QoS 2 second half: runs the handler of a stored message once (in per-sender order). */
  deliver(sender: string, msgId: string): Promise<Outcome> {
    const key = `${sender}\n${msgId}`;
    const running = this.#delivering.get(key);
    if (running) {
      // A repeated deliver while the first is still committing: answer with its outcome.
      this.#counters.duplicates++;
      return running.then(
        () => undefined,
        (err: unknown) => this.#refusal(this.#registry.failure(err)),
      );
    }
    const done = deferred<void>();
    done.promise.catch(noop);
    this.#delivering.set(key, done.promise);
    const release = this.#order.hold();
    // Only the handler invocation is serialised per sender (order); the commit of the
    // delivered mark is a group commit awaited outside the chain, so deliveries pipeline.
    void this.#order.run(sender, async () => {
      try {
        const { commit } = await this.#step(sender, msgId, key);
        commit.then(done.resolve, done.reject);
      } catch (err) {
        done.reject(err);
      }
    });
    return done.promise
      .then(
        (): Outcome => undefined,
        (err: unknown) => this.#refusal(this.#registry.failure(err)),
      )
      .finally(() => {
        this.#delivering.delete(key);
        release();
      });
  }

  /** Runs the handler of a stored message (in order); `commit` settles once it is marked delivered. */
  async #step(sender: string, msgId: string, key: string): Promise<{ commit: Promise<void> }> {
    let cached = this.#cache.get(key);
    if (!cached) {
      const rec = await this.#store.inboxGet(sender, msgId);
      if (rec === 'delivered') {
        this.#counters.duplicates++;
        return { commit: Promise.resolve() };
      }
      if (rec === undefined)
        throw new StanzaError({ condition: 'item-not-found', text: `no assured message ${msgId}` });
      const message = parseXml(rec.stanza);
      const found = this.#registry.find(message);
      if (!found) throw this.#registry.missing(message);
      cached = { message, reg: found.reg, value: this.#registry.decode(found.reg, found.el) };
    }
    const { message, reg, value } = cached;
    const now = this.#session.clock.now();
    const forget = (): void => {
      this.#cache.delete(key);
      this.#release(sender);
    };
    if (this.#registry.expired(message)) {
      const commit = this.#store.inboxComplete(sender, msgId, now).then(() => {
        forget();
        throw new StanzaError({
          condition: 'not-acceptable',
          text: 'message expired',
          application: expiredCondition(),
        });
      });
      return { commit };
    }
    const context = this.#registry.context(message, 2, msgId);
    let commit: Promise<void>;
    if (reg.transactional) {
      const effect = (): void => {
        const r = reg.handler(value, context);
        if (r && typeof (r as Promise<void>).then === 'function') {
          throw new ConfigError('a transactional handler must be synchronous');
        }
      };
      commit = this.#store.inboxCompleteWith!(sender, msgId, now, effect).catch((err: unknown) => {
        this.#counters.handlerErrors++;
        throw this.#registry.failure(err, reg);
      });
    } else {
      await this.#registry.run(reg, value, context);
      commit = this.#store.inboxComplete(sender, msgId, now);
    }
    return {
      // Not awaited here: an async function would flatten it into the chain and serialise the commits.
      commit: commit.then(() => {
        forget();
        this.#counters.received++;
      }),
    };
  }

  #release(sender: string): void {
    const n = (this.#pendingBySender.get(sender) ?? 1) - 1;
    if (n <= 0) this.#pendingBySender.delete(sender);
    else this.#pendingBySender.set(sender, n);
    this.#pendingTotal = Math.max(0, this.#pendingTotal - 1);
  }
}
