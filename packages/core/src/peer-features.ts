/**
 * What other entities support (XEP-0030 disco#info `<feature/>`s), asked once per JID and shared
 * by every unit of a session. rpc and messaging both ask "does this peer take batches?"; each
 * keeping its own answers would ask a peer used by both twice, and keep the same state machine
 * (unknown, asking, known, ask again later, forget) in two places.
 *
 * Only the features some unit registered with `want()` are kept, so what the cache holds is
 * bounded by units, not by what a peer lists (a disco#info answer may be a stanza's worth of
 * features). The session owns one (`session.peerFeatures`) and forgets a JID when its unavailable presence
 * arrives: whatever comes back at that address may be another implementation. Units forget a
 * JID themselves when a failure says the same (a bounce, a refused batch). No timers: every
 * delay is a timestamp on the session's clock, compared when next asked.
 */
import { withAbort, type WaitOptions } from './abort.js';
import type { Clock } from './clock.js';
import { fetchFeatures } from './disco-client.js';
import { toError } from './errors.js';
import type { IqCaller } from './iq.js';
import { jidEquals } from './jid.js';
import type { Logger } from './logger.js';

/** What a `PeerFeatures` needs of its session (a `Session` qualifies). */
export interface PeerFeaturesDeps {
  readonly caller: IqCaller;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** JIDs remembered at most; past it the oldest one is forgotten (and asked again when needed). */
const MAX_PEERS = 1024;
/**
 * How long a JID whose query failed, or that refused a feature it listed, is not asked again, ms.
 * A peer without disco, or one that is away, would otherwise be asked on every burst; meanwhile
 * units behave as for "unsupported".
 */
const RETRY_DELAY = 30_000;
/** Bound of one query, ms: shorter than a default IQ timeout, since units wait for no answer. */
const QUERY_TIMEOUT = 5_000;

interface Peer {
  /** The features it listed, once it answered. */
  features: ReadonlySet<string> | undefined;
  /** The query in flight, or the failed one until `retryAt` (its rejection is always handled). */
  query: Promise<ReadonlySet<string>> | undefined;
  /** After a failure: before this instant the JID is not asked again (0 = no failure to wait out). */
  retryAt: number;
  /** After a refusal: `features` holds until this instant, then the JID is asked again (0 = until forgotten). */
  staleAt: number;
}

const BARE = { bare: true } as const;
const SLASH = 0x2f;
const ignore = (): void => undefined;

export class PeerFeatures {
  readonly #deps: PeerFeaturesDeps;
  /** In insertion order, so the first key is the oldest. */
  readonly #peers = new Map<string, Peer>();
  /** The features kept from each answer (registered by units). */
  readonly #wanted = new Set<string>();

  constructor(deps: PeerFeaturesDeps) {
    this.#deps = deps;
  }

  /**
   * Registers a feature a unit will ask about (rpc and messaging: their batch namespaces): only
   * registered features are kept from answers, and what `known`/`lookup` return lists only those.
   * A new registration forgets every answer, since they were kept without it.
   */
  want(feature: string): void {
    if (this.#wanted.has(feature)) return;
    this.#wanted.add(feature);
    this.#peers.clear();
  }

  /**
   * The registered features `jid` listed, if it answered and was not forgotten since; `undefined` when not
   * (yet) known. For the hot path of every call and message: one Map lookup, no allocation, no
   * query. A unit that needs the answer calls `lookup`.
   */
  known(jid: string): ReadonlySet<string> | undefined {
    const peer = this.#peers.get(jid);
    if (peer === undefined || peer.staleAt === 0) return peer?.features;
    return this.#fresh(jid, peer)?.features;
  }

  /**
   * `jid` refused what it listed `feature` for (say, a batch answered `feature-not-implemented`:
   * it was replaced by another implementation, or the answer was stale). For 30 s it counts as
   * not listing it, for every unit, and is not asked; then it is asked again. Its unavailable
   * presence (`forget`) ends that sooner.
   */
  refused(jid: string, feature: string): void {
    const peer = this.#peers.get(jid) ?? this.#remember(jid);
    const features = new Set(peer.features);
    features.delete(feature);
    peer.features = features;
    peer.query = undefined;
    peer.retryAt = 0;
    peer.staleAt = this.#deps.clock.now() + RETRY_DELAY;
  }

  /** `peer`, unless its refusal period is over: then it is forgotten (asked again when needed). */
  #fresh(jid: string, peer: Peer): Peer | undefined {
    if (peer.staleAt === 0 || this.#deps.clock.now() < peer.staleAt) return peer;
    this.#peers.delete(jid);
    return undefined;
  }

  /**
   * The registered features `jid` lists in its disco#info, from the cache or from one query: however many
   * callers ask at once, one query is in flight per JID. A failure is not cached, but the JID is
   * not asked again for 30 s: until then `lookup` rejects at once with that failure (the peer's
   * StanzaError, a TimeoutError…). `options` bound only this caller's wait; the query itself,
   * shared, has its own 5 s bound. The returned promise may be dropped (`void`) by a caller that
   * only wants the cache filled: its rejection is handled.
   */
  lookup(jid: string, options: WaitOptions = {}): Promise<ReadonlySet<string>> {
    const stored = this.#peers.get(jid);
    const peer = stored === undefined ? undefined : this.#fresh(jid, stored);
    if (peer?.features !== undefined) return Promise.resolve(peer.features);
    const pending = peer?.query;
    const query =
      pending !== undefined && (peer!.retryAt === 0 || this.#deps.clock.now() < peer!.retryAt)
        ? pending
        : this.#ask(jid, peer);
    if (options.signal === undefined && options.timeout === undefined) return query;
    const waited = withAbort(query, options, 'disco#info', this.#deps.clock);
    waited.catch(ignore); // droppable too: the caller's own bound may fire with nobody listening
    return waited;
  }

  /**
   * Forgets what is known of `jid`, so the next `lookup` asks again; a query in flight still
   * answers its callers but is not cached. A bare JID or a domain also forgets its full JIDs
   * (all its resources went away); a full JID also forgets its bare JID (which the server may
   * have routed to that resource). Local part and domain compare case-insensitively.
   */
  forget(jid: string): void {
    if (this.#peers.size === 0) return;
    this.#peers.delete(jid);
    const slash = jid.indexOf('/');
    const bareLength = slash < 0 ? jid.length : slash;
    for (const key of this.#peers.keys()) if (covers(key, jid, bareLength)) this.#peers.delete(key);
  }

  /** JIDs remembered (answered, being asked, or waiting out a failure). */
  get size(): number {
    return this.#peers.size;
  }

  #ask(jid: string, existing: Peer | undefined): Promise<ReadonlySet<string>> {
    const peer = existing ?? this.#remember(jid);
    peer.retryAt = 0;
    const query = fetchFeatures(this.#deps, jid, { timeout: QUERY_TIMEOUT }).then(
      (listed): ReadonlySet<string> => {
        const features = new Set<string>();
        for (const f of this.#wanted) if (listed.has(f)) features.add(f);
        // Forgotten meanwhile (it went away, or was evicted): the answer may be stale.
        if (this.#peers.get(jid) === peer) {
          peer.features = features;
          peer.query = undefined;
        }
        return features;
      },
      (err: unknown) => {
        const error = toError(err);
        if (this.#peers.get(jid) === peer) peer.retryAt = this.#deps.clock.now() + RETRY_DELAY;
        this.#deps.logger.debug(`disco#info of ${jid} failed, not asked again for ${RETRY_DELAY} ms: ${error.message}`);
        throw error;
      },
    );
    query.catch(ignore);
    peer.query = query;
    return query;
  }

  #remember(jid: string): Peer {
    if (this.#peers.size >= MAX_PEERS) this.#peers.delete(this.#peers.keys().next().value as string);
    const peer: Peer = { features: undefined, query: undefined, retryAt: 0, staleAt: 0 };
    this.#peers.set(jid, peer);
    return peer;
  }
}

/**
 * Does forgetting `jid` (whose bare part is `bareLength` long) forget `key`? The same JID, or
 * one of the two bare and the other a full JID at it. Lengths filter first, so the scan of a
 * forget allocates nothing for keys that cannot match.
 */
function covers(key: string, jid: string, bareLength: number): boolean {
  if (key.length === jid.length) return jidEquals(key, jid);
  if (bareLength === jid.length) return key.charCodeAt(bareLength) === SLASH && jidEquals(key, jid, BARE);
  return key.length === bareLength && jidEquals(key, jid, BARE);
}
