/**
 * The calling side of RPC batches (`urn:xmppbus:rpc:batch:1`, docs/protocol.md §3.5). Calls to
 * a peer that advertises the feature wait one microtask: those issued in the same event-loop turn
 * go out as one batch IQ (capped by count and bytes), a lone call keeps the single form, so a
 * sequential caller's latency is unchanged. Each call still settles on its own: its result or
 * error item, its own timeout and abort, or the batch IQ's failure, mapped as for a single IQ.
 * Whether a peer takes batches comes from the session's shared disco#info cache
 * (`session.peerFeatures`), which forgets a peer that goes away; a peer is asked only once it
 * gets several calls in one turn, and one that refuses a batch gets single IQs for a while.
 */
import {
  ConfigError,
  Element,
  ProtocolError,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  abortReason,
  childElements,
  errorFromStanza,
  findChild,
  randomId,
  stanzaBytes,
  type Clock,
  type IqCaller,
  type Logger,
  type PeerFeatures,
  type Session,
  type TimerHandle,
} from '@xmppbus/core';
import { MAX_BATCH_CALLS, NS_RPC_BATCH, batchRequest } from './batch.js';

/** Batching of `RpcClient` and `ServiceClient` calls (negotiated per peer). */
export interface RpcBatchOptions {
  /**
   * Send calls issued together to one peer as one batch IQ when the peer takes them (default
   * true, but false when the client's `retry.attemptTimeout` is set; see `CallerOptions.batch`).
   */
  enabled?: boolean;
  /** Calls per batch IQ (default and at most 64, what receivers accept). */
  maxCalls?: number;
  /** Bytes of request elements per batch IQ (default 64 KiB, kept below the link's stanza cap). */
  maxBytes?: number;
}

/**
 * Whole-IQ answers that mean nothing in the batch ran: a peer that does not take the element,
 * or one whose budget refuses the batch as a whole (`policy-violation`, §3.5) — the calls may
 * still succeed one by one.
 */
const NOT_UNDERSTOOD = new Set(['feature-not-implemented', 'service-unavailable', 'bad-request', 'policy-violation']);
/** Peers whose calls are grouped, remembered at most (oldest forgotten first, unless it has calls queued). */
const MAX_PEERS = 1024;

interface Peer {
  readonly to: string;
  /** Calls sent in this event-loop turn to a peer whose features are unknown: the second one asks. */
  burst: number;
  queue: Item[];
}

interface Item {
  /** The call's single-form IQ; its id is the item's id. */
  readonly iq: Element;
  readonly payload: Element;
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (reply: Element) => void;
  readonly reject: (err: unknown) => void;
  timer: TimerHandle | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

export class CallBatcher {
  readonly #features: PeerFeatures;
  readonly #caller: IqCaller;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #maxCalls: number;
  readonly #maxBytes: number;
  readonly #peers = new Map<string, Peer>();
  /** Peers with calls waiting for the flush, or with a burst count to reset. */
  readonly #dirty = new Set<Peer>();
  #flushQueued = false;
  /** Batch IQs sent and the calls they carried (for tests and benchmarks). */
  readonly stats = { batches: 0, batchedCalls: 0 };

  constructor(session: Session, options: RpcBatchOptions, what = 'RpcClient') {
    const maxCalls = options.maxCalls ?? MAX_BATCH_CALLS;
    if (!Number.isInteger(maxCalls) || maxCalls < 2 || maxCalls > MAX_BATCH_CALLS)
      throw new ConfigError(`${what}: batch.maxCalls must be an integer in 2..${MAX_BATCH_CALLS}`);
    const maxBytes = options.maxBytes ?? 64 * 1024;
    if (!(maxBytes > 0)) throw new ConfigError(`${what}: batch.maxBytes must be > 0 (got ${String(maxBytes)})`);
    this.#features = session.peerFeatures;
    this.#features.want(NS_RPC_BATCH);
    this.#caller = session.caller;
    this.#clock = session.clock;
    this.#log = session.logger;
    this.#maxCalls = maxCalls;
    this.#maxBytes = Math.min(maxBytes, session.transport.maxStanzaBytes - 4096);
  }

  /**
   * Sends the call `iq` (single form, carrying `payload`): in a batch when its peer takes them,
   * else alone. Resolves with an element whose first child is the response element; rejects as
   * `IqCaller.request` does.
   */
  request(iq: Element, payload: Element, timeout: number, signal: AbortSignal | undefined): Promise<Element> {
    const to = iq.attrs['to'] as string;
    const peer = this.#peer(to);
    const features = this.#features.known(to);
    if (features === undefined || !features.has(NS_RPC_BATCH)) {
      // Only a peer called several times in one turn is asked: a sequential caller sends nothing more.
      // The cache keeps one query in flight per peer and waits out its failures before asking again.
      if (features === undefined) {
        if (++peer.burst === 2) void this.#features.lookup(to);
        else if (peer.burst === 1) this.#schedule(peer);
      }
      return this.#caller.request(iq, { timeout, signal });
    }
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<Element>((resolve, reject) => {
      const item: Item = {
        iq,
        payload,
        deadline: this.#clock.now() + timeout,
        signal,
        resolve,
        reject,
        timer: undefined,
        onAbort: undefined,
        done: false,
      };
      peer.queue.push(item);
      this.#schedule(peer);
    });
  }

  #schedule(peer: Peer): void {
    this.#dirty.add(peer);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Whether calls to `peer` may go in a batch IQ now. */
  #takesBatches(peer: Peer): boolean {
    return this.#features.known(peer.to)?.has(NS_RPC_BATCH) === true;
  }

  #peer(to: string): Peer {
    let peer = this.#peers.get(to);
    if (peer === undefined) {
      if (this.#peers.size >= MAX_PEERS) {
        const oldest = this.#peers.keys().next().value as string;
        if (this.#peers.get(oldest)!.queue.length === 0) this.#peers.delete(oldest);
      }
      peer = { to, burst: 0, queue: [] };
      this.#peers.set(to, peer);
    }
    return peer;
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    for (const peer of this.#dirty) {
      peer.burst = 0;
      if (peer.queue.length === 0) continue;
      const queue = peer.queue;
      peer.queue = [];
      if (queue.length === 1) {
        // The common sequential case: nothing to size or group.
        const item = queue[0]!;
        if (item.signal?.aborted) item.reject(abortReason(item.signal));
        else this.#single(item, this.#clock.now());
        continue;
      }
      // One batch per method: a batch is answered when its slowest call settles, and calls of one
      // method take alike, so a quick call never waits on another method's slow one.
      const chunks = new Map<string, { items: Item[]; bytes: number }>();
      for (const item of queue) {
        if (item.signal?.aborted) {
          item.reject(abortReason(item.signal));
          continue;
        }
        const method = `${item.payload.attrs['xmlns'] ?? ''} ${item.payload.name}`;
        let chunk = chunks.get(method);
        if (chunk === undefined) chunks.set(method, (chunk = { items: [], bytes: 0 }));
        const size = stanzaBytes(item.payload);
        if (chunk.items.length > 0 && (chunk.items.length === this.#maxCalls || chunk.bytes + size > this.#maxBytes)) {
          this.#send(peer, chunk.items);
          chunk.items = [];
          chunk.bytes = 0;
        }
        chunk.items.push(item);
        chunk.bytes += size;
      }
      for (const chunk of chunks.values()) if (chunk.items.length > 0) this.#send(peer, chunk.items);
    }
    this.#dirty.clear();
  };

  #send(peer: Peer, items: Item[]): void {
    const now = this.#clock.now();
    // The peer may have gone away, or refused another batch, since these calls were queued.
    if (items.length === 1 || !this.#takesBatches(peer)) {
      for (const item of items) this.#single(item, now);
      return;
    }
    const first = items[0]!.iq;
    let latest = 0;
    const ids: string[] = [];
    const payloads: Element[] = [];
    for (const item of items) {
      latest = Math.max(latest, item.deadline);
      ids.push(item.iq.attrs['id'] as string);
      payloads.push(item.payload);
    }
    const iq = new Element('iq');
    const a = iq.attrs;
    a['type'] = 'set';
    a['to'] = first.attrs['to'];
    a['from'] = first.attrs['from'];
    a['id'] = randomId();
    const batch = batchRequest(ids, payloads);
    batch.parent = iq;
    iq.children.push(batch);
    for (const item of items) this.#watch(item, latest, now);
    this.stats.batches++;
    this.stats.batchedCalls += items.length;
    this.#caller.request(iq, { timeout: latest - now }).then(
      (reply) => this.#answered(items, reply),
      (err: unknown) => this.#failed(peer, items, err),
    );
  }

  /** A call sent alone: the IqCaller keeps its timeout and abort. */
  #single(item: Item, now: number): void {
    item.done = true;
    this.#caller
      .request(item.iq, { timeout: item.deadline - now, signal: item.signal })
      .then(item.resolve, item.reject);
  }

  /** An item's own timeout (when earlier than the batch's) and abort: it settles, its answer is ignored. */
  #watch(item: Item, latest: number, now: number): void {
    if (item.deadline < latest) {
      const timeout = item.deadline - now;
      item.timer = this.#clock.setTimeout(
        () =>
          this.#settle(item, new TimeoutError(`no reply to IQ ${String(item.iq.attrs['id'])} within ${timeout} ms`)),
        timeout,
      );
    }
    const signal = item.signal;
    if (signal) {
      item.onAbort = () => this.#settle(item, abortReason(signal));
      signal.addEventListener('abort', item.onAbort, { once: true });
    }
  }

  #settle(item: Item, outcome: Element | Error): void {
    if (item.done) return;
    item.done = true;
    item.timer?.cancel();
    if (item.onAbort) item.signal!.removeEventListener('abort', item.onAbort);
    if (outcome instanceof Error) item.reject(outcome);
    else item.resolve(outcome);
  }

  #answered(items: Item[], reply: Element): void {
    const batch = findChild(reply, 'batch', NS_RPC_BATCH);
    const outcomes = new Map<string, Element>();
    if (batch) for (const el of childElements(batch)) outcomes.set(el.attrs['id'] as string, el);
    for (const item of items) {
      if (item.done) continue;
      const id = item.iq.attrs['id'] as string;
      const el = outcomes.get(id);
      if (el === undefined)
        this.#settle(item, new ProtocolError(`${String(reply.attrs['from'])} answered a batch without call ${id}`));
      else if (el.name === 'error') this.#settle(item, errorFromStanza(el));
      else this.#settle(item, el);
    }
  }

  /**
   * The batch IQ failed as a whole. A peer that does not understand the element ran none of its
   * calls (RFC 6120 §8.4: it refuses the IQ unprocessed), so they are sent again one per IQ, once;
   * any other failure (timeout, lost link, the peer gone) fails each call as it fails a single IQ.
   */
  #failed(peer: Peer, items: Item[], err: unknown): void {
    if (err instanceof StanzaError && NOT_UNDERSTOOD.has(err.condition)) {
      // Single IQs for a while, then ask again: `service-unavailable` may also have been a peer
      // that was briefly away, and a replaced peer may take batches again. The session's cache
      // holds that for every unit.
      const now = this.#clock.now();
      this.#features.refused(peer.to, NS_RPC_BATCH);
      for (const item of items) {
        if (item.done) continue;
        item.timer?.cancel();
        if (item.onAbort) item.signal!.removeEventListener('abort', item.onAbort);
        if (item.deadline <= now) {
          // Its time ran out while the batch was refused: it never ran, so it times out as a lone call would.
          item.done = true;
          item.reject(
            new TimeoutError(`no reply to IQ ${String(item.iq.attrs['id'])} in time (its batch was refused)`),
          );
        } else this.#single(item, now);
      }
      this.#log.debug(`rpc: ${peer.to} refused a batch (${err.condition}): one call per IQ for a while`);
      return;
    }
    if (err instanceof ServiceUnavailableError) this.#features.forget(peer.to);
    for (const item of items) this.#settle(item, err as Error);
  }
}
