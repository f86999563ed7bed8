/**
 * The per-peer dispatcher: for each recipient, sends the outbox's due messages in `seq` order
 * within a window of messages in flight, and runs the peer's state machine:
 *
 * - `running`: the window is open (one message at a time while `probing` after a failure);
 * - `paused`: an attempt failed; once the window settled, resume after the peer's backoff;
 * - `offline`: the peer is unreachable; probe after the backoff, or resume at once when its
 *   available presence (or our own link) comes back.
 *
 * When several messages to a peer are ready in the same turn it checks, in the session's shared
 * feature cache (`session.peerFeatures`, XEP-0030), whether the peer takes batches and, if so,
 * groups them into batches. QoS 2 `deliver`s go out strictly in seq order, only once every
 * earlier message of that peer was received.
 */
import { ExpiredError, bareJid, jidEquals, toError } from '@xmppbus/core';
import type { Element, Session } from '@xmppbus/core';
import { bySeq, type Entry, type Peer } from './entry.js';
import type { Settings } from './options.js';
import type { Outbox } from './outbox.js';
import { QosSender, type SenderEvents, type Verdict } from './qos-sender.js';
import { SeqQueue } from './seq-queue.js';
import type { MessengerCounters } from './types.js';
import { NS_BATCH } from './wire.js';

export interface DispatcherDeps {
  session: Session;
  outbox: Outbox;
  settings: Settings;
  counters: MessengerCounters;
}

export class PeerDispatcher implements SenderEvents {
  readonly #session: Session;
  readonly #outbox: Outbox;
  readonly #settings: Settings;
  readonly #sender: QosSender;
  readonly #peers = new Map<string, Peer>();
  #running = false;
  #closed = false;

  constructor(deps: DispatcherDeps) {
    this.#session = deps.session;
    this.#outbox = deps.outbox;
    this.#settings = deps.settings;
    this.#sender = new QosSender({ ...deps, events: this });
  }

  /** The state of peer `to` (created on first use). */
  peer(to: string): Peer {
    let peer = this.#peers.get(to);
    if (!peer) {
      peer = {
        to,
        queue: new SeqQueue<Entry>(bySeq),
        inFlight: 0,
        state: 'running',
        backoff: this.#settings.retry.backoff(),
        probing: false,
        timer: undefined,
        pumpQueued: false,
      };
      this.#peers.set(to, peer);
    }
    return peer;
  }

  /** Starts sending (after the outbox recovered): until then, due messages only queue up. */
  run(): void {
    this.#running = true;
    if (this.#settings.batchMax > 1) this.#session.peerFeatures.want(NS_BATCH);
    for (const peer of this.#peers.values()) this.#pump(peer);
  }

  /** `entry` may go now. */
  due(entry: Entry): void {
    entry.peer.queue.insert(entry);
    this.#pump(entry.peer);
  }

  /** `entry` left the outbox. */
  removed(entry: Entry): void {
    entry.peer.queue.remove(entry);
  }

  settled(peer: Peer, verdict: Verdict): void {
    if (this.#closed) return;
    switch (verdict) {
      case 'ok':
        if (peer.state === 'running') {
          peer.backoff.reset();
          peer.probing = false;
          this.#pump(peer);
        } else this.#scheduleResume(peer); // an earlier message of the window failed: resume in order
        return;
      case 'done':
      case 'again':
        if (peer.state === 'running') this.#pump(peer);
        else this.#scheduleResume(peer);
        return;
      case 'offline':
        peer.state = 'offline';
        // It went away: whatever comes back may be another implementation (features, refusal).
        this.#session.peerFeatures.forget(peer.to);
        this.#scheduleResume(peer);
        return;
      case 'paused':
        if (peer.state === 'running') peer.state = 'paused';
        this.#scheduleResume(peer);
        return;
    }
  }

  batchUnsupported(peer: Peer): void {
    // What the cache says of it is stale (say, replaced by another implementation), for every unit.
    this.#session.peerFeatures.refused(peer.to, NS_BATCH);
  }

  /**
   * Presence of a peer: available resumes it at once, unavailable takes it offline (the session
   * has already forgotten what it supports).
   */
  onPresence(p: Element): void {
    const from = p.attrs['from'];
    if (typeof from !== 'string') return;
    const type = p.attrs['type'];
    if (type !== undefined && type !== 'unavailable') return;
    const bare = bareJid(from);
    for (const peer of this.#peers.values()) {
      const match = jidEquals(peer.to, from) || (peer.to === bareJid(peer.to) && jidEquals(peer.to, bare));
      if (!match) continue;
      if (type === undefined) {
        if (peer.state !== 'running') {
          peer.backoff.reset();
          if (peer.inFlight === 0) this.#resume(peer);
        }
      } else {
        if (peer.state === 'running') {
          peer.state = 'offline';
          this.#scheduleResume(peer);
        }
      }
    }
  }

  /** Our link is back: every waiting peer is tried again at once. */
  resumeAll(): void {
    for (const peer of this.#peers.values()) {
      if (peer.state !== 'running' && peer.inFlight === 0) {
        peer.backoff.reset();
        this.#resume(peer);
      } else this.#pump(peer);
    }
  }

  close(): void {
    this.#closed = true;
    for (const peer of this.#peers.values()) {
      peer.timer?.cancel();
      peer.timer = undefined;
    }
  }

  /**
   * Queues a pump of `peer` for the end of the current turn: every message that becomes ready
   * in this turn (a burst of `send`s, a batch of acknowledgements) is then dispatched together
   * and can share a stanza. A microtask, not a timer: nothing waits for a batch to fill.
   */
  #pump(peer: Peer): void {
    if (peer.pumpQueued || this.#closed || !this.#running) return;
    peer.pumpQueued = true;
    queueMicrotask(() => {
      peer.pumpQueued = false;
      this.#pumpNow(peer);
    });
  }

  /** Sends what the peer's window and state allow, in seq order. */
  #pumpNow(peer: Peer): void {
    if (this.#closed || peer.state !== 'running' || this.#session.transport.status !== 'online') return;
    const now = this.#session.clock.now();
    const limit = peer.probing ? 1 : this.#settings.window;
    // `blocked`: an earlier message is not yet received by the peer, so no later `deliver` may go.
    let blocked = false;
    let expired: Entry[] | undefined;
    const ready: Entry[] = [];
    const q = peer.queue;
    for (let i = q.head; i < q.length && peer.inFlight + ready.length < limit; i++) {
      const e = q.items[i];
      if (e === undefined) continue; // removed (a hole)
      if (e.inFlight) {
        if (e.rec.state === 'queued') blocked = true;
        continue;
      }
      if (e.rec.state === 'queued') {
        if (this.#outbox.expired(e, now)) {
          // Dead-lettered after the loop: removing compacts the queue under the index.
          (expired ??= []).push(e);
          continue;
        }
        blocked = true;
        ready.push(e);
      } else if (!blocked) {
        ready.push(e);
      }
    }
    if (expired) {
      for (const e of expired) {
        const err = new ExpiredError(`message ${e.rec.id} to ${peer.to} expired before delivery`);
        void this.#outbox.deadLetter(e, 'expired', err).catch((x: unknown) => this.#bookkeepingFailed(x));
      }
    }
    if (ready.length === 0) return;
    if (ready.length === 1 || !this.#takesBatches(peer)) {
      for (const e of ready) this.#sender.attempt(e, now);
      return;
    }
    // Batches in seq order, each up to the count and byte caps; QoS 0 (scheduled) go alone.
    const { batchMax, batchBytes } = this.#settings;
    let chunk: Entry[] = [];
    let bytes = 0;
    for (const e of ready) {
      if (e.rec.qos === 0) {
        this.#sender.attempt(e, now);
        continue;
      }
      const size = this.#sender.sizeOf(e);
      if (chunk.length > 0 && (chunk.length >= batchMax || bytes + size > batchBytes)) {
        this.#sender.sendBatch(chunk, now);
        chunk = [];
        bytes = 0;
      }
      chunk.push(e);
      bytes += size;
    }
    if (chunk.length > 0) this.#sender.sendBatch(chunk, now);
  }

  #bookkeepingFailed(err: unknown): void {
    this.#session.logger.error('outbox bookkeeping failed', toError(err));
  }

  /**
   * Whether several messages to `peer` may share an IQ now. Not known yet: asks the peer through
   * the session's cache (XEP-0030; one query in flight per peer for every unit, a failed one not
   * repeated for a while) and pumps again if it says yes; meanwhile messages go one per IQ.
   */
  #takesBatches(peer: Peer): boolean {
    if (this.#settings.batchMax <= 1) return false;
    const features = this.#session.peerFeatures.known(peer.to);
    if (features !== undefined) return features.has(NS_BATCH);
    this.#session.peerFeatures.lookup(peer.to).then((f) => {
      if (f.has(NS_BATCH)) this.#pump(peer);
    }, ignoreFailure);
    return false;
  }

  /** Once the window has settled, resumes the peer (probing) after its backoff delay. */
  #scheduleResume(peer: Peer): void {
    if (peer.inFlight > 0 || peer.timer || this.#closed) return;
    peer.timer = this.#session.clock.setTimeout(() => {
      peer.timer = undefined;
      this.#resume(peer);
    }, peer.backoff.next());
  }

  #resume(peer: Peer): void {
    peer.timer?.cancel();
    peer.timer = undefined;
    if (peer.state !== 'running') {
      peer.state = 'running';
      peer.probing = true;
    }
    this.#pump(peer);
  }
}

/** A failed disco#info: the session's cache logged it and waits before asking again. */
const ignoreFailure = (): void => undefined;
