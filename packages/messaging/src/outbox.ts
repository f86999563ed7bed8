/**
 * The outbox: every QoS 1/2 message (and every scheduled message) from `send` until the peer
 * acknowledged it, confirmed `deliver`, or it went to the dead letters. It admits messages
 * (size and capacity checks, the overflow policy), keeps their durable records in the
 * `MessageStore`, holds scheduled messages until they are due (one timer on the session's
 * clock), and settles the `send` calls waiting for each message. Which peer gets what, and
 * when, is the dispatcher's job (`OutboxEvents`).
 */
import {
  ClosedError,
  ConfigError,
  ExpiredError,
  PayloadTooLargeError,
  StanzaError,
  WaitQueue,
  deferred,
  findChild,
  parseXml,
  randomId,
  setHeaders,
  toError,
  xml,
  headerEntries,
  type Element,
  type Session,
  type TimerHandle,
  type WaitOptions,
} from '@xmppbus/core';
import { encode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import type { Entry, Peer } from './entry.js';
import { OutboxFullError } from './errors.js';
import { toMs, type Duration, type Settings } from './options.js';
import type { DeadLetterReason, MessageStore, OutboxRecord } from './store.js';
import type { MessageSendOptions, MessengerCounters } from './types.js';
import { RawMessage, serializeMessage } from './raw-message.js';
import { append, expireElement, hintElement, originIdElement } from './wire.js';

/** What the outbox tells the dispatcher. */
export interface OutboxEvents {
  /** The peer state of `to` (created on first use). */
  peerOf(to: string): Peer;
  /** `entry` may be sent now (newly admitted, recovered, or its scheduled time came). */
  due(entry: Entry): void;
  /** `entry` left the outbox (completed or dead-lettered). */
  removed(entry: Entry): void;
  /** `entry` went to the dead letters. */
  deadLettered(entry: Entry, reason: DeadLetterReason, error: Error): void;
}

export interface OutboxDeps {
  session: Session;
  store: MessageStore;
  settings: Settings;
  counters: MessengerCounters;
  events: OutboxEvents;
}

export interface Accepted {
  id: string;
  /** Settles when the level's guarantee is met; undefined for QoS 0 sent at once. */
  done: Promise<void> | undefined;
}

const noop = (): void => {};

export class Outbox {
  readonly #session: Session;
  readonly #store: MessageStore;
  readonly #settings: Settings;
  readonly #counters: MessengerCounters;
  readonly #events: OutboxEvents;
  /** Every message by id, in insertion (≈ seq) order: the overflow policy's "oldest". */
  readonly #entries = new Map<string, Entry>();
  /** Messages not yet due, sorted by `notBefore` then `seq`. */
  #scheduled: Entry[] = [];
  #scheduleTimer: TimerHandle | undefined;
  #scheduleAt = Infinity;
  /** Sends between the capacity check and their store insert (keeps the bound exact). */
  #accepting = 0;
  readonly #room: WaitQueue;
  #refusing: string | undefined;
  #closed = false;
  #idCounter = 0;

  constructor(deps: OutboxDeps) {
    this.#session = deps.session;
    this.#store = deps.store;
    this.#settings = deps.settings;
    this.#counters = deps.counters;
    this.#events = deps.events;
    this.#room = new WaitQueue({ clock: deps.session.clock, what: 'waiting for room in the outbox' });
  }

  /** Messages in the outbox. */
  get size(): number {
    return this.#entries.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Recovers the records a previous run left (after the store opened). */
  async recover(): Promise<void> {
    for (const rec of await this.#store.loadOutbox()) this.#admit(rec, undefined);
  }

  /** New `send`s reject with ClosedError from now on (drain); messages in hand still go. */
  refuseNew(reason: string): void {
    this.#refusing = reason;
  }

  /**
   * Admits a message: QoS 0 due now goes straight to the link; anything else is written to the
   * store first and then handed to the dispatcher. `wait` asks for the `done` promise.
   */
  /** `accept`, inside a send span when instrumented (the trace context is stored with the message). */
  async acceptTraced<C extends PayloadContract>(
    contract: C,
    to: string,
    value: PayloadOf<C>,
    options: MessageSendOptions,
    wait: boolean,
  ): Promise<Accepted> {
    const instr = this.#session.instrumentation;
    if (!instr.enabled) return this.accept(contract, to, value, options, wait);
    const scope = instr.sendMessage(to, contract.name, options.qos ?? this.#settings.defaultQos);
    try {
      const headers = scope.headers(options.headers);
      const accepted = await this.accept(
        contract,
        to,
        value,
        headers === undefined ? options : { ...options, headers },
        wait,
      );
      scope.end();
      return accepted;
    } catch (err) {
      scope.end(err);
      throw err;
    }
  }

  async accept<C extends PayloadContract>(
    contract: C,
    to: string,
    value: PayloadOf<C>,
    options: MessageSendOptions,
    wait: boolean,
  ): Promise<Accepted> {
    this.#checkOpen();
    if (typeof to !== 'string' || to === '') throw new ConfigError('send needs a recipient JID');
    const settings = this.#settings;
    const qos = options.qos ?? settings.defaultQos;
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new ConfigError('qos must be 0, 1 or 2');
    const now = this.#session.clock.now();
    const ttl = options.ttl !== undefined ? toMs(options.ttl, 'ttl') : settings.defaultTtl;
    const expiresAt = ttl !== undefined ? now + ttl : null;
    const deliverAt = instant(options.deliverAt, now);
    const id = options.id ?? this.#messageId(now);
    const address = this.#session.address;

    const payload = encode(contract, value, { validate: settings.validate });
    const message = xml('message', { to, from: address, id, type: options.type ?? 'normal' }, payload);
    append(message, originIdElement(id));
    if (options.headers !== undefined) setHeaders(message, headerEntries(options.headers));
    if (expiresAt !== null) append(message, expireElement(expiresAt));
    if (options.store !== undefined) append(message, hintElement(options.store ? 'store' : 'no-store'));

    if (qos === 0 && deliverAt <= now) {
      // At most once: straight to the link, no outbox (the transport queues while reconnecting).
      this.#counters.sent++;
      await this.#session.send(message, { signal: options.signal });
      this.#counters.completed++;
      return { id, done: undefined };
    }

    let stanza: string;
    let depth: number;
    try {
      ({ text: stanza, depth } = serializeMessage(message));
    } catch (err) {
      // A tree too deep to serialise (the recursive writer overflows): it could never be sent.
      throw new PayloadTooLargeError(0, 0, `message cannot be serialised: ${toError(err).message}`, { cause: err });
    }
    const max = this.#session.transport.maxStanzaBytes;
    const size = Buffer.byteLength(stanza) + 512;
    if (size > max) throw new PayloadTooLargeError(size, max);
    const existing = this.#entries.get(id);
    if (existing) return { id, done: wait ? this.#waitFor(existing) : undefined };

    if (this.#entries.size + this.#accepting >= settings.maxOutbox) await this.#makeRoom(options);
    this.#accepting++;
    let rec: OutboxRecord;
    try {
      rec = await this.#store.enqueue({
        id,
        to,
        qos,
        stanza,
        payload: `{${contract.ns}}${contract.name}`,
        createdAt: now,
        notBefore: deliverAt,
        expiresAt,
        attempts: 0,
        state: 'queued',
      });
    } finally {
      this.#accepting--;
    }
    this.#checkOpen();
    // A concurrent send with the same id may have admitted it meanwhile.
    // The wire gets the stored text verbatim: serialised once, for the store and the wire alike.
    const entry = this.#entries.get(rec.id) ?? this.#admit(rec, RawMessage.of(stanza, depth, message.attrs));
    return { id, done: wait ? this.#waitFor(entry) : undefined };
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('messenger is closed');
    if (this.#refusing !== undefined) throw new ClosedError(this.#refusing);
  }

  /**
   * A message id that sorts by creation time (ms in base36, a counter, then 96 random bits):
   * the outbox's id index and the receiver's inbox/delivered keys then grow at one end instead
   * of at random pages. Measured with a 40 000-message backlog: a delete costs 7 µs instead of 22 µs.
   */
  #messageId(now: number): string {
    this.#idCounter = (this.#idCounter + 1) % 1_679_616; // 36^4
    return now.toString(36) + this.#idCounter.toString(36).padStart(4, '0') + randomId();
  }

  #waitFor(entry: Entry): Promise<void> {
    const d = deferred<void>();
    (entry.waiters ??= []).push(d);
    return d.promise;
  }

  async #makeRoom(options: WaitOptions): Promise<void> {
    const { overflow, maxOutbox } = this.#settings;
    if (overflow === 'reject') throw new OutboxFullError(maxOutbox);
    if (overflow === 'drop-oldest') {
      for (const e of this.#entries.values()) {
        if (!e.inFlight && e.rec.state === 'queued') {
          await this.deadLetter(e, 'overflow', new OutboxFullError(maxOutbox, 'pushed out of a full outbox'));
          return;
        }
      }
      throw new OutboxFullError(maxOutbox);
    }
    while (this.#entries.size + this.#accepting >= maxOutbox) {
      this.#checkOpen();
      await this.#room.wait(options);
    }
  }

  /** Puts a stored record into memory and hands it to the dispatcher (or the schedule). */
  #admit(rec: OutboxRecord, message: Element | undefined): Entry {
    const entry: Entry = {
      rec,
      message,
      waiters: undefined,
      delayed: false,
      inFlight: false,
      scheduled: false,
      failures: 0,
      peer: this.#events.peerOf(rec.to),
      bytes: -1,
    };
    this.#entries.set(rec.id, entry);
    this.#counters.queued = this.#entries.size;
    const now = this.#session.clock.now();
    if (rec.notBefore > now && rec.state === 'queued') this.#schedule(entry, now);
    else this.#events.due(entry);
    return entry;
  }

  #schedule(entry: Entry, now: number): void {
    entry.scheduled = true;
    const list = this.#scheduled;
    let i = list.length;
    while (i > 0 && compareDue(list[i - 1]!, entry) > 0) i--;
    list.splice(i, 0, entry);
    this.#armSchedule(now);
  }

  /** Hands due scheduled messages to the dispatcher and arms the timer for the next one. */
  #promote(): void {
    const now = this.#session.clock.now();
    let n = 0;
    while (n < this.#scheduled.length && this.#scheduled[n]!.rec.notBefore <= now) n++;
    const due = this.#scheduled.splice(0, n);
    for (const e of due) {
      e.scheduled = false;
      this.#events.due(e);
    }
    this.#armSchedule(now);
  }

  #armSchedule(now: number): void {
    const next = this.#scheduled[0]?.rec.notBefore ?? Infinity;
    if (next === this.#scheduleAt || this.#closed) return;
    this.#scheduleTimer?.cancel();
    this.#scheduleTimer = undefined;
    this.#scheduleAt = next;
    if (next === Infinity) return;
    this.#scheduleTimer = this.#session.clock.setTimeout(
      () => {
        this.#scheduleTimer = undefined;
        this.#scheduleAt = Infinity;
        this.#promote();
      },
      Math.max(0, next - now),
    );
  }

  /** Whether the message's TTL elapsed (checked at dequeue). */
  expired(entry: Entry, now: number): boolean {
    return entry.rec.expiresAt !== null && entry.rec.expiresAt <= now;
  }

  /** The message reached its guarantee (QoS 0 written, 1 acknowledged, 2 delivered). */
  async complete(entry: Entry): Promise<void> {
    if (!this.#closed) await this.#store.remove(entry.rec.id);
    this.#remove(entry);
    this.#counters.completed++;
    settle(entry);
  }

  /**
   * `complete` for several messages (a batch's acknowledgements) with one store write; resolves
   * once all are removed and settled, rejects (nothing settled) if the store failed.
   */
  async completeAll(entries: readonly Entry[]): Promise<void> {
    if (!this.#closed) {
      const store = this.#store;
      const ids = entries.map(idOf);
      if (store.removeMany) await store.removeMany(ids);
      else await Promise.all(ids.map((id) => store.remove(id)));
    }
    for (const entry of entries) {
      this.#remove(entry);
      this.#counters.completed++;
      settle(entry);
    }
  }

  /** `storeReceived` for several messages with one store write. */
  async storeReceivedAll(entries: readonly Entry[]): Promise<void> {
    if (this.#closed) return;
    const store = this.#store;
    const ids = entries.map(idOf);
    if (store.markReceivedMany) await store.markReceivedMany(ids);
    else await Promise.all(ids.map((id) => store.markReceived(id)));
  }

  /** QoS 2: writes that the peer stored it (`received`); then `received(entry)` records it in memory. */
  async storeReceived(entry: Entry): Promise<void> {
    if (!this.#closed) await this.#store.markReceived(entry.rec.id);
  }

  /**
   * QoS 2: the peer stored it (`received`); the `deliver` is still to go. Synchronous, so the
   * sender ends the attempt in the same step (see `QosSender`).
   */
  received(entry: Entry): void {
    entry.rec.state = 'received';
    settle(entry);
  }

  /** Records a failed attempt that will be retried (best effort: the count is advisory). */
  recordAttempt(entry: Entry): void {
    const rec = entry.rec;
    rec.attempts++;
    if (!this.#closed) this.#store.recordAttempt(rec.id, rec.attempts, rec.notBefore).catch(noop);
  }

  /** Moves the message to the dead letters and fails its waiting `send`s with `err`. */
  async deadLetter(entry: Entry, reason: DeadLetterReason, err: Error): Promise<void> {
    const rec = entry.rec;
    if (this.#entries.get(rec.id) !== entry) return;
    this.#remove(entry);
    this.#counters.deadLettered++;
    if (reason === 'expired') this.#counters.expired++;
    const text = describeError(err);
    this.#session.logger.warn(`dead letter ${rec.id} to ${rec.to}: ${reason} (${text})`);
    const settleWith =
      reason === 'expired' && !(err instanceof ExpiredError)
        ? new ExpiredError(`message ${rec.id} expired: ${text}`, { cause: err })
        : err;
    try {
      if (!this.#closed) await this.#store.deadLetter(rec.id, reason, text, this.#session.clock.now());
    } finally {
      settle(entry, settleWith);
      this.#events.deadLettered(entry, reason, settleWith);
    }
  }

  /**
   * Puts a dead letter back (same id, a new place at the end of its peer's order, attempts
   * reset, the old expiry dropped unless `ttl` is given). False if there is no such dead letter.
   */
  async replay(id: string, options: { deliverAt?: Date | number; ttl?: Duration }): Promise<boolean> {
    this.#checkOpen();
    const now = this.#session.clock.now();
    const expiresAt = options.ttl !== undefined ? now + toMs(options.ttl, 'ttl') : null;
    const rec = await this.#store.replayDeadLetter(id, instant(options.deliverAt, now), expiresAt);
    if (!rec) return false;
    this.#checkOpen();
    const message = parseXml(rec.stanza);
    const amp = findChild(message, 'amp');
    if (amp) message.children.splice(message.children.indexOf(amp), 1);
    if (expiresAt !== null) append(message, expireElement(expiresAt));
    this.#admit(rec, message);
    return true;
  }

  #remove(entry: Entry): void {
    this.#entries.delete(entry.rec.id);
    this.#counters.queued = this.#entries.size;
    if (entry.scheduled) {
      entry.scheduled = false;
      const i = this.#scheduled.indexOf(entry);
      if (i >= 0) this.#scheduled.splice(i, 1);
    }
    if (this.#room.size > 0 && this.#entries.size + this.#accepting < this.#settings.maxOutbox) this.#room.wake();
    this.#events.removed(entry);
  }

  /** Stops everything; waiting `send`s reject with `err` (their messages stay in the store). */
  close(err: Error): void {
    this.#closed = true;
    this.#scheduleTimer?.cancel();
    this.#scheduleTimer = undefined;
    for (const e of this.#entries.values()) settle(e, err);
    this.#room.fail(err);
  }
}

function settle(entry: Entry, err?: Error): void {
  const ws = entry.waiters;
  if (!ws) return;
  entry.waiters = undefined;
  for (const w of ws) {
    if (err) w.reject(err);
    else w.resolve();
  }
}

const idOf = (e: Entry): string => e.rec.id;

function instant(at: Date | number | undefined, now: number): number {
  return at === undefined ? now : typeof at === 'number' ? at : at.getTime();
}

function compareDue(a: Entry, b: Entry): number {
  return a.rec.notBefore - b.rec.notBefore || a.rec.seq - b.rec.seq;
}

export function describeError(err: Error): string {
  if (err instanceof StanzaError) return err.text ? `${err.condition}: ${err.text}` : err.condition;
  return err.message;
}
