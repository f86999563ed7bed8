/**
 * The QoS 2 receiving side (docs/protocol.md §5.3): `assured` stores the message durably
 * before answering `received`, and `deliver` runs its handler once, in per-sender order, then
 * commits the delivered mark; with a transactional handler the effect and the mark commit as
 * one unit (`inboxCompleteWith`). Re-sent `assured`/`deliver` are recognised by (sender bare
 * JID, msgId) and answered without running anything again.
 *
 * Admission (issue 9): a stored message waits for its `deliver` inside a byte and count budget
 * per sender and in total (`PendingIndex`), for at most `receive.pendingTtl`; a sender at its
 * cap loses its own oldest stale entry first. While it waits the receiver keeps its text and
 * decoded value, never its parsed tree. A payload that cannot be serialised is refused for good
 * (`cancel`), so no sender retries it forever. Delivered msgIds are remembered for
 * `receive.dedupeRetention`, a separate, longer clock.
 */
import { ConfigError, StanzaError, parseXml, toError, type Session, type TimerHandle } from '@xmppbus/core';
import type { HandlerRegistry, Opened, Outcome, Registration } from './handler-registry.js';
import type { Settings } from './options.js';
import { PendingIndex } from './pending-index.js';
import { serializeMessage } from './raw-message.js';
import type { SenderOrder } from './sender-order.js';
import type { InboxRecord, MessageStore } from './store.js';
import type { MessageContext, MessengerCounters } from './types.js';
import { expiredCondition, receivedElement } from './wire.js';

export interface InboxDeps {
  session: Session;
  store: MessageStore;
  settings: Settings;
  counters: MessengerCounters;
  registry: HandlerRegistry;
  order: SenderOrder;
}

/** What a pending message keeps for a fast `deliver` in the same process: no tree. */
interface Cached {
  reg: Registration;
  value: unknown;
  context: MessageContext;
}

const noop = (): void => {};

export class AssuredInbox {
  readonly #session: Session;
  readonly #store: MessageStore;
  readonly #settings: Settings;
  readonly #counters: MessengerCounters;
  readonly #registry: HandlerRegistry;
  readonly #order: SenderOrder;
  readonly #pending: PendingIndex<Cached>;
  /** Deliveries between handler start and committed delivered mark. */
  readonly #delivering = new Map<string, Promise<Outcome>>();
  #pruneTimer: TimerHandle | undefined;
  #closed = false;
  /** Pending entries dropped for their TTL or evicted for room (the sender's `deliver` then finds nothing). */
  expired = 0;
  evicted = 0;

  constructor(deps: InboxDeps) {
    this.#session = deps.session;
    this.#store = deps.store;
    this.#settings = deps.settings;
    this.#counters = deps.counters;
    this.#registry = deps.registry;
    this.#order = deps.order;
    this.#pending = new PendingIndex<Cached>(deps.settings.pending, deps.settings.pendingTtl);
  }

  /** Assured messages stored and awaiting `deliver`, per sender bare JID. */
  get pending(): ReadonlyMap<string, number> {
    return this.#pending.counts;
  }

  /** Bytes and messages awaiting `deliver` (the pending budget's usage). */
  get usage(): { bytes: number; count: number } {
    return this.#pending.budget.usage;
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

  /** Forgets delivered ids after `dedupeRetention` and pending entries after `pendingTtl`. */
  async #prune(): Promise<void> {
    if (this.#closed) return;
    const now = this.#session.clock.now();
    const { dedupeRetention, pendingTtl } = this.#settings;
    const pendingBefore = now - pendingTtl;
    try {
      this.expired += this.#pending.expire(pendingBefore);
      await this.#store.prune(now - dedupeRetention, pendingBefore);
      this.#pending.reconcile(await this.#store.inboxPendingCounts());
    } catch (err) {
      this.#session.logger.warn('prune failed', toError(err));
    }
    if (!this.#closed) {
      const every = Math.min(3_600_000, Math.max(1_000, Math.min(dedupeRetention, pendingTtl) / 24));
      this.#pruneTimer = this.#session.clock.setTimeout(() => void this.#prune(), every);
    }
  }

  #refusal(error: StanzaError): StanzaError {
    this.#counters.refused++;
    return error;
  }

  /**
   * QoS 2 first half: stores the message durably (unless known) and answers `received`.
   * `bytes` is the envelope's size on the wire, accounted until it is delivered or dropped.
   */
  async assured(
    from: string,
    sender: string,
    msgId: string,
    ns: string,
    opened: Opened,
    bytes: number,
  ): Promise<Outcome> {
    if (this.#pending.has(sender, msgId)) {
      this.#counters.duplicates++; // a re-sent assured we hold
      return receivedElement(msgId, ns);
    }
    let value: unknown;
    try {
      value = this.#registry.decode(opened.reg, opened.el); // refuse invalid payloads before storing them
    } catch (err) {
      return this.#refusal(err as StanzaError);
    }
    let text: string;
    try {
      text = serializeMessage(opened.message).text;
    } catch (err) {
      // E.g. nesting too deep to serialise: storing can never succeed, so refuse it for good.
      this.#session.logger.warn(`assured ${msgId} from ${from} cannot be stored: ${toError(err).message}`);
      return this.#refusal(
        new StanzaError({ condition: 'not-acceptable', type: 'cancel', text: 'payload cannot be stored' }),
      );
    }
    const now = this.#session.clock.now();
    const context = this.#registry.context(opened.message, 2, msgId, text);
    const cached: Cached = { reg: opened.reg, value, context };
    const canEvict = this.#store.inboxDiscard !== undefined;
    const admission = this.#pending.admit(sender, msgId, Math.max(bytes, text.length), now, cached, canEvict);
    if (!admission.ok) {
      // Full — unless this is a re-sent assured we already stored (earlier process) or delivered.
      const known = admission.never ? undefined : await this.#store.inboxGet(sender, msgId).catch(noop);
      if (known !== undefined) {
        this.#counters.duplicates++;
        return receivedElement(msgId, ns);
      }
      return this.#refusal(
        new StanzaError({
          condition: 'resource-constraint',
          type: admission.never ? 'cancel' : 'wait',
          text: admission.text,
        }),
      );
    }
    for (const [victim, id] of admission.evicted) {
      this.evicted++;
      this.#store.inboxDiscard!(victim, id).catch((err: unknown) =>
        this.#session.logger.warn('discarding an evicted assured message failed', toError(err)),
      );
    }
    const record: InboxRecord = { sender, msgId, from, stanza: text, ns, receivedAt: now };
    try {
      const result = await this.#store.inboxPut(record);
      if (result !== 'stored') {
        this.#counters.duplicates++;
        this.#pending.remove(sender, msgId);
      }
      return receivedElement(msgId, ns);
    } catch (err) {
      this.#pending.remove(sender, msgId);
      this.#session.logger.error('storing an assured message failed', toError(err));
      // The receiver's own storage: the sender keeps the message and tries again (its
      // `retry.attempts` bound the tries, then it dead-letters the message with this reason).
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
      return running.then((o) => (o instanceof StanzaError ? this.#refusal(o) : undefined));
    }
    const release = this.#order.hold();
    let answer: (o: Outcome) => void = noop;
    const outcome = new Promise<Outcome>((resolve) => (answer = resolve));
    this.#delivering.set(key, outcome);
    const finish = (failed: boolean, err?: unknown): void => {
      this.#delivering.delete(key);
      release();
      answer(failed ? this.#refusal(this.#registry.failure(err)) : undefined);
    };
    // Only the handler invocation is serialised per sender (order); the commit of the
    // delivered mark is a group commit awaited outside the chain, so deliveries pipeline.
    void this.#order.run(sender, () =>
      this.#step(sender, msgId).then(
        ({ commit }) =>
          void commit.then(
            () => finish(false),
            (err: unknown) => finish(true, err),
          ),
        (err: unknown) => finish(true, err),
      ),
    );
    return outcome;
  }

  /** Runs the handler of a stored message (in order); `commit` settles once it is marked delivered. */
  async #step(sender: string, msgId: string): Promise<{ commit: Promise<void> }> {
    let cached = this.#pending.get(sender, msgId);
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
      const value = this.#registry.decode(found.reg, found.el);
      cached = { reg: found.reg, value, context: this.#registry.context(message, 2, msgId) };
    }
    const { reg, value, context } = cached;
    const now = this.#session.clock.now();
    const forget = (): void => {
      if (!this.#pending.remove(sender, msgId)) this.#pending.removeRestored(sender);
    };
    if (this.#registry.contextExpired(context)) {
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
}
