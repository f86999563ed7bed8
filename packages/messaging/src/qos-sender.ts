/**
 * The QoS sender: the wire exchanges of one outbox message (QoS 0 message, QoS 1
 * `acknowledged`, QoS 2 `assured` then `deliver`) or of a batch of them, and what their
 * outcome means: success moves the message on in the outbox; a failure is classified (peer
 * offline, transient, retryable, rejected, expired) and becomes either a dead letter or a
 * retry, counted against `retry.attempts`. What the peer should do next (keep going, pause,
 * wait for it to come back) is reported to the dispatcher as a `Verdict`.
 */
import {
  ClosedError,
  ConnectionError,
  QueueFullError,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  XmppBusError,
  findChild,
  localName,
  randomId,
  toError,
  type Element,
  type Session,
} from '@xmppbus/core';
import type { Entry, Peer } from './entry.js';
import { RawMessage, xmlDepth } from './raw-message.js';
import type { Settings } from './options.js';
import type { Outbox } from './outbox.js';
import type { MessengerCounters } from './types.js';
import {
  acknowledgedIq,
  acknowledgedItem,
  append,
  assuredIq,
  assuredItem,
  batchIq,
  delayElement,
  deliverIq,
  deliverItem,
  readBatchResult,
  receivedMsgId,
} from './wire.js';

/** How a failure is handled. */
export type Failure =
  /** The peer is not reachable (unavailable conditions, unavailable presence): wait for it, no attempt counted. */
  | 'offline'
  /** The link or the peer is busy (timeout, lost link, resource-constraint): retry, no attempt counted. */
  | 'transient'
  /** A retryable error (`wait` type): retry, counted against `retry.attempts`. */
  | 'retry'
  /** Refused for good: dead letter `rejected`. */
  | 'reject'
  /** The receiver refused it as expired: dead letter `expired`. */
  | 'expired';

/** What an attempt's outcome means for its peer. */
export type Verdict =
  /** It went through: the peer works, send more. */
  | 'ok'
  /** The message is finished (dead letter); the peer's state is unchanged. */
  | 'done'
  /** The message was not attempted after all (a refused batch): send it again; the peer's state is unchanged. */
  | 'again'
  /** Retry later; the peer is unreachable. */
  | 'offline'
  /** Retry later; the peer is fine but this attempt failed. */
  | 'paused';

/** What the sender tells the dispatcher. */
export interface SenderEvents {
  /** An attempt of `entry` (to `entry.peer`) settled. */
  settled(peer: Peer, verdict: Verdict): void;
  /** The peer refused a batch as unknown: send it single envelopes from now on. */
  batchUnsupported(peer: Peer): void;
}

export interface SenderDeps {
  session: Session;
  outbox: Outbox;
  settings: Settings;
  counters: MessengerCounters;
  events: SenderEvents;
}

/** Classifies a failed attempt (docs/protocol.md §5.4 and "Errors a service answers"). */
export function classify(err: Error): Failure {
  if (err instanceof StanzaError) {
    const app = err.application ? localName(err.application) : undefined;
    if (app === 'expired') return 'expired';
    // Our receivers mark "no handler for this payload": an answer of the peer, not of a server.
    if (app === 'no-handler') return 'reject';
    if (err instanceof ServiceUnavailableError || err.unavailable) return 'offline';
    if (err.condition === 'resource-constraint') return 'transient';
    return err.retryable ? 'retry' : 'reject';
  }
  if (err instanceof TimeoutError || err instanceof ConnectionError || err instanceof QueueFullError)
    return 'transient';
  if (err instanceof ClosedError) return 'transient';
  // Ours, and final (a payload over the link's size or depth limit, XML we cannot write): never retried.
  if (err instanceof XmppBusError && !err.retryable) return 'reject';
  return 'retry';
}

export class QosSender {
  readonly #session: Session;
  readonly #outbox: Outbox;
  readonly #settings: Settings;
  readonly #counters: MessengerCounters;
  readonly #events: SenderEvents;
  readonly #bookkeepingFailed = (err: unknown): void =>
    this.#session.logger.error('outbox bookkeeping failed', toError(err));

  constructor(deps: SenderDeps) {
    this.#session = deps.session;
    this.#outbox = deps.outbox;
    this.#settings = deps.settings;
    this.#counters = deps.counters;
    this.#events = deps.events;
  }

  /** Bytes `entry` adds to a batch (for the byte cap). */
  sizeOf(e: Entry): number {
    if (e.rec.qos === 2 && e.rec.state === 'received') return 96; // a <deliver/>
    if (e.bytes < 0) e.bytes = Buffer.byteLength(e.rec.stanza) + 96;
    return e.bytes;
  }

  /** One attempt of one message, in its single (unbatched) form. */
  attempt(e: Entry, now: number): void {
    this.#begin(e);
    const rec = e.rec;
    const me = this.#session.address;
    const ns = this.#settings.ns;
    const options = { timeout: this.#settings.attemptTimeout };
    let p: Promise<unknown>;
    try {
      if (rec.qos === 0) p = this.#session.send(this.#messageOf(e, now));
      else if (rec.qos === 1)
        p = this.#session.caller.request(acknowledgedIq(rec.id, me, rec.to, this.#messageOf(e, now), ns), options);
      else if (rec.state === 'queued')
        p = this.#session.caller.request(assuredIq(rec.id, me, rec.to, rec.id, this.#messageOf(e, now), ns), options);
      else p = this.#session.caller.request(deliverIq(`${rec.id}.d`, me, rec.to, rec.id, ns), options);
    } catch (err) {
      p = Promise.reject(toError(err));
    }
    p.then(
      (reply) => this.#succeeded(e, reply ? receivedMsgId(reply as Element) : undefined),
      (err: unknown) => this.#failed(e, toError(err)),
    ).catch(this.#bookkeepingFailed);
  }

  /** Several messages in one IQ (`urn:xmppbus:qos:batch:1`); each settles by its own outcome. */
  sendBatch(chunk: Entry[], now: number): void {
    if (chunk.length === 1) {
      this.attempt(chunk[0]!, now);
      return;
    }
    const ns = this.#settings.ns;
    const items: Element[] = [];
    this.#counters.batched += chunk.length;
    this.#counters.batches++;
    for (const e of chunk) {
      this.#begin(e);
      const rec = e.rec;
      if (rec.qos === 1) items.push(acknowledgedItem(rec.id, this.#messageOf(e, now), ns));
      else if (rec.state === 'queued') items.push(assuredItem(rec.id, this.#messageOf(e, now), ns));
      else items.push(deliverItem(rec.id, ns));
    }
    const peer = chunk[0]!.peer;
    let p: Promise<Element>;
    try {
      p = this.#session.caller.request(batchIq(randomId(), this.#session.address, peer.to, items), {
        timeout: this.#settings.attemptTimeout,
      });
    } catch (err) {
      p = Promise.reject(toError(err));
    }
    p.then(
      (reply) => {
        const outcomes = readBatchResult(reply);
        // The successes take one store write per kind for the whole batch (no promise per message).
        let completed: Entry[] | undefined;
        let received: Entry[] | undefined;
        for (const e of chunk) {
          const o = outcomes.get(e.rec.id);
          if (o === true) {
            if (e.rec.qos === 2 && e.rec.state === 'queued') (received ??= []).push(e);
            else (completed ??= []).push(e);
          } else {
            const err =
              o ??
              new StanzaError({ condition: 'undefined-condition', type: 'wait', text: 'no outcome in batch result' });
            this.#failed(e, err).catch(this.#bookkeepingFailed);
          }
        }
        if (completed) this.#completedAll(completed);
        if (received) this.#receivedAll(received);
      },
      (err: unknown) => {
        const error = toError(err);
        if (
          error instanceof StanzaError &&
          !error.unavailable &&
          (error.condition === 'feature-not-implemented' || error.condition === 'bad-request')
        ) {
          // The peer does not understand batches after all (say, replaced by another implementation)
          // and ran none of these: they go again one per IQ, no attempt counted (docs §5.6).
          this.#events.batchUnsupported(peer);
          for (const e of chunk) this.#end(e);
          if (!this.#outbox.closed) for (const e of chunk) this.#events.settled(e.peer, 'again');
          return;
        }
        for (const e of chunk) this.#failed(e, error).catch(this.#bookkeepingFailed);
      },
    );
  }

  /** The inner message to send, with `<delay/>` once it waited past the threshold. */
  #messageOf(e: Entry, now: number): Element {
    let m = e.message;
    if (!m) {
      // After a restart: the stored text goes out as it is, never parsed here.
      const text = e.rec.stanza;
      m = RawMessage.of(text, xmlDepth(text));
      e.message = m;
    }
    if (!e.delayed && now - e.rec.createdAt >= this.#settings.delayThreshold) {
      e.delayed = true;
      const delay = delayElement(e.rec.createdAt, this.#session.address);
      const withDelay = m instanceof RawMessage ? m.withChild(delay) : undefined;
      if (withDelay) m = e.message = withDelay;
      else if (!findChild(m, 'delay')) append(m, delay);
    }
    return m;
  }

  #begin(e: Entry): void {
    e.inFlight = true;
    e.peer.inFlight++;
    this.#counters.inFlight++;
    this.#counters.sent++;
  }

  #end(e: Entry): void {
    e.inFlight = false;
    e.peer.inFlight--;
    this.#counters.inFlight--;
  }

  /** The attempt reached its goal; `received` is the msgId of a QoS 2 `received` answer, if any. */
  async #succeeded(e: Entry, received: string | undefined): Promise<void> {
    const rec = e.rec;
    try {
      if (rec.qos === 2 && rec.state === 'queued') {
        if (received !== undefined && received !== rec.id) {
          this.#session.logger.warn(`peer ${rec.to} answered assured ${rec.id} with received ${received}`);
        }
        await this.#outbox.storeReceived(e);
        // `received` and the end of the attempt (below) in one step: in between, the dispatcher
        // would take the message for one whose `deliver` is in flight, not one that blocks later
        // `deliver`s, and let them overtake it.
        this.#outbox.received(e);
      } else {
        await this.#outbox.complete(e);
      }
    } catch (err) {
      // The store did not take the step: the message stays as it was and goes again (same id).
      this.#end(e);
      this.#bookkeepingFailed(err);
      if (!this.#outbox.closed) this.#events.settled(e.peer, 'paused');
      return;
    }
    this.#end(e);
    this.#events.settled(e.peer, 'ok');
  }

  /** Batch items that reached their guarantee: removed from the store in one write. */
  #completedAll(entries: Entry[]): void {
    this.#outbox.completeAll(entries).then(
      () => this.#endAll(entries, 'ok'),
      (err: unknown) => this.#storeFailed(entries, err),
    );
  }

  /** QoS 2 batch items the peer stored: marked `received` in one write, then their `deliver`s may go. */
  #receivedAll(entries: Entry[]): void {
    this.#outbox.storeReceivedAll(entries).then(
      () => {
        // As in #succeeded: `received` and the end of the attempt in one step.
        for (const e of entries) this.#outbox.received(e);
        this.#endAll(entries, 'ok');
      },
      (err: unknown) => this.#storeFailed(entries, err),
    );
  }

  #endAll(entries: Entry[], verdict: Verdict): void {
    for (const e of entries) {
      this.#end(e);
      this.#events.settled(e.peer, verdict);
    }
  }

  /** The store did not take the step: the messages stay as they were and go again (same ids). */
  #storeFailed(entries: Entry[], err: unknown): void {
    this.#bookkeepingFailed(err);
    if (this.#outbox.closed) for (const e of entries) this.#end(e);
    else this.#endAll(entries, 'paused');
  }

  async #failed(e: Entry, err: Error): Promise<void> {
    this.#end(e);
    if (this.#outbox.closed) return;
    const kind = classify(err);
    const rec = e.rec;
    this.#session.logger.debug(`attempt of ${rec.id} to ${rec.to} failed (${kind}): ${err.message}`);
    const lostDeliver = rec.qos === 2 && rec.state === 'received' && isNotFound(err);
    if (kind === 'reject' || kind === 'expired' || lostDeliver) {
      await this.#outbox.deadLetter(e, kind === 'expired' ? 'expired' : 'rejected', err);
      this.#events.settled(e.peer, 'done');
      return;
    }
    if (kind === 'retry' && !this.#settings.retry.canRetry(++e.failures)) {
      await this.#outbox.deadLetter(e, 'max-attempts', err);
      this.#events.settled(e.peer, 'done');
      return;
    }
    this.#counters.retried++;
    this.#outbox.recordAttempt(e);
    this.#events.settled(e.peer, kind === 'offline' ? 'offline' : 'paused');
  }
}

function isNotFound(err: Error): boolean {
  return err instanceof StanzaError && err.condition === 'item-not-found';
}
