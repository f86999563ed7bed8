/**
 * IQ plumbing of one session: `IqRouter` dispatches inbound get/set IQs by payload (namespace,
 * local name) and answers the rest (`service-unavailable`, plus built-in XEP-0030 disco and
 * XEP-0199 ping); `IqCaller` sends IQs and matches replies by id **and** sender, cleaning its
 * pending map on every outcome. The `Session` owns one of each and feeds them its stanzas.
 */
import { abortReason, type WaitOptions } from './abort.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { AccessPolicy } from './access.js';
import { DiscoRegistry, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, type DiscoVisibility } from './disco.js';
import { ClosedError, ConflictError, ConnectionError, TimeoutError } from './errors.js';
import { randomId } from './id.js';
import { bareJid, domainOf, jidEquals } from './jid.js';
import { ServiceUnavailableError, StanzaError, type StanzaErrorInit } from './stanza-error.js';
import type { Transport } from './transport.js';
import { Element, firstChildElement, localName, xml } from './xml.js';

/** Handles one inbound IQ get/set; must eventually reply (see `resultReply`/`errorReply`). */
export type IqHandler = (iq: Element, payload: Element) => void;

export class IqRouter {
  readonly #transport: Transport;
  readonly #disco: DiscoRegistry;
  readonly #access: AccessPolicy;
  /** namespace → local name (or '*') → handler: two lookups, no key string built per stanza. */
  readonly #handlers = new Map<string, Map<string, IqHandler>>();
  /** Namespaces whose unit checks access itself, per inner contract (QoS envelopes, batches). */
  readonly #unitChecked = new Set<string>();
  /** Inbound get/set IQs nobody handled (answered `service-unavailable`). */
  unhandled = 0;

  constructor(transport: Transport, disco: DiscoRegistry = new DiscoRegistry(), access = AccessPolicy.allowAll()) {
    this.#transport = transport;
    this.#disco = disco;
    this.#access = access;
  }

  /**
   * Routes IQ get/set whose payload is `<name xmlns=ns>` (or any local name in `ns` when `name`
   * is `'*'`) to `handler`. Returns the unregister function. One handler per key: a second one
   * throws ConflictError.
   */
  handle(ns: string, name: string, handler: IqHandler): () => void {
    let byName = this.#handlers.get(ns);
    if (byName?.has(name)) throw new ConflictError(`an IQ handler for {${ns}}${name} is already registered`);
    if (!byName) this.#handlers.set(ns, (byName = new Map()));
    byName.set(name, handler);
    return () => {
      const m = this.#handlers.get(ns);
      if (m?.get(name) !== handler) return;
      m.delete(name);
      if (m.size === 0) this.#handlers.delete(ns);
    };
  }

  /**
   * Leaves the access check of namespace `ns` to its unit: for envelopes (QoS, batches) whose
   * meaning is the contract inside, which the unit checks with `session.access`. Returns the remover.
   */
  delegateAccess(ns: string): () => void {
    this.#unitChecked.add(ns);
    return () => this.#unitChecked.delete(ns);
  }

  /** Whether some handler serves namespace `ns` (any local name). */
  handles(ns: string): boolean {
    return this.#handlers.has(ns);
  }

  /** Dispatches an inbound IQ get/set (other stanzas are ignored). */
  dispatch(stanza: Element): void {
    const type = stanza.attrs['type'];
    if (type !== 'get' && type !== 'set') return;
    const payload = firstChildElement(stanza);
    if (!payload) {
      this.#reply(stanza, new StanzaError({ condition: 'bad-request', text: 'IQ without payload' }));
      return;
    }
    const ns = payload.attrs['xmlns'] ?? '';
    const name = localName(payload);
    const from = stanza.attrs['from'];
    const byName = this.#handlers.get(ns);
    const handler = byName === undefined ? undefined : (byName.get(name) ?? byName.get('*'));
    if (handler === undefined) {
      // Built-ins answer anyone: ping, and disco filtered by what the requester may reach.
      if (ns === NS_PING && name === 'ping') return this.#reply(stanza);
      if (ns === NS_DISCO_INFO && name === 'query' && type === 'get')
        return this.#reply(stanza, this.#disco.infoQuery(payload, this.#visibleTo(from)));
      if (ns === NS_DISCO_ITEMS && name === 'query' && type === 'get') {
        const me = stanza.attrs['to'] ?? this.#transport.address;
        return this.#reply(stanza, this.#disco.itemsQuery(payload, me, this.#visibleTo(from), from));
      }
    }
    // The one access check of inbound requests, before any unit sees the payload.
    if (!this.#unitChecked.has(ns) && !this.#access.check(from, this.#transport.address, ns, name)) {
      const text = `${from ?? 'this sender'} may not use {${ns}}${name}`;
      this.#reply(stanza, new StanzaError({ condition: 'forbidden', type: 'auth', text }));
      return;
    }
    if (handler) {
      handler(stanza, payload);
      return;
    }
    this.unhandled++;
    this.#reply(stanza, noHandlerError(ns, name, byName !== undefined));
  }

  #visibleTo(from: string | undefined): DiscoVisibility {
    return (guard) => this.#access.allows(from, this.#transport.address, guard.ns, guard.name);
  }

  #reply(iq: Element, result?: Element | StanzaError): void {
    const reply = result instanceof StanzaError ? errorReply(iq, result) : resultReply(iq, result);
    this.#transport.send(reply).catch(() => undefined); // a reply lost to a dropped link is the caller's timeout
  }
}

/**
 * The callee policy for a payload nobody handles (docs/protocol.md): an unknown namespace is
 * `cancel/service-unavailable` (RFC 6120 §8.4); a known namespace with an unknown element is
 * `cancel/feature-not-implemented`.
 */
export function noHandlerError(ns: string, name: string, namespaceKnown: boolean): StanzaError {
  return namespaceKnown
    ? new StanzaError({ condition: 'feature-not-implemented', type: 'cancel', text: `no handler for {${ns}}${name}` })
    : new StanzaError({ condition: 'service-unavailable', type: 'cancel', text: `no handler for {${ns}}${name}` });
}

/** Builds the `result` IQ answering `iq` (to/from swapped, same id). */
export function resultReply(iq: Element, payload?: Element): Element {
  // Built directly (not through xml()): this runs once per RPC call on the serving side.
  const reply = new Element('iq');
  const a = reply.attrs;
  const req = iq.attrs;
  a['type'] = 'result';
  if (req['id'] !== undefined) a['id'] = req['id'];
  if (req['from'] !== undefined) a['to'] = req['from'];
  if (req['to'] !== undefined) a['from'] = req['to'];
  if (payload) {
    payload.parent = reply;
    reply.children.push(payload);
  }
  return reply;
}

/** Builds the `error` IQ answering `iq`. The request payload is not echoed (keeps errors small). */
export function errorReply(iq: Element, error: StanzaError): Element {
  return xml(
    'iq',
    { type: 'error', id: iq.attrs['id'], to: iq.attrs['from'], from: iq.attrs['to'] },
    error.toElement(),
  );
}

/**
 * Turns an error stanza into a typed error. Besides RFC 6120's unavailable conditions, two
 * server-specific answers mean "that service is not connected": ejabberd with s2s disabled says
 * `forbidden` "Access denied by service policy"; Prosody says `not-allowed` "Communication with
 * remote domains is not enabled" for a domain it does not host.
 */
export function errorFromStanza(stanza: Element): StanzaError {
  const e = StanzaError.fromElement(stanza);
  if (
    (e.condition === 'forbidden' && e.text !== undefined && /access denied by service policy/i.test(e.text)) ||
    (e.condition === 'not-allowed' && e.text !== undefined && /remote domains is not enabled/i.test(e.text))
  ) {
    const init: ConstructorParameters<typeof ServiceUnavailableError>[0] = { condition: e.condition, type: e.type };
    if (e.text !== undefined) init.text = e.text;
    // ejabberd's answer is for a component that is not connected now (it may come back);
    // Prosody's is for a domain it does not serve at all (retrying will not help).
    return new ServiceUnavailableError(init, { retryable: e.condition === 'forbidden' });
  }
  return e;
}

export interface IqRequestOptions extends WaitOptions {}

/**
 * An error that means the peer itself is gone (not merely "no handler"): the server's bounces for
 * a disconnected component or an absent recipient, and ejabberd's "Access denied by service
 * policy" for a component that is not connected (a retryable ServiceUnavailableError).
 */
export function peerIsGone(err: StanzaError): boolean {
  const c = err.condition;
  return (
    c === 'remote-server-timeout' ||
    c === 'remote-server-not-found' ||
    c === 'recipient-unavailable' ||
    (err instanceof ServiceUnavailableError && c === 'forbidden')
  );
}

/** Whether a request to `to` waits on `peer`: the same JID, or any JID of `peer` when it is a bare domain. */
function affects(to: string, peer: string): boolean {
  if (jidEquals(to, peer)) return true;
  return peer.indexOf('@') < 0 && peer.indexOf('/') < 0 && domainOf(to).toLowerCase() === peer.toLowerCase();
}

interface Pending {
  to: string | undefined;
  /** A liveness ping of ours (never probed itself). */
  probe: boolean;
  resolve: (iq: Element) => void;
  reject: (err: Error) => void;
  timer: TimerHandle | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class IqCaller {
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #pending = new Map<string, Pending>();
  /** Default timeout in ms when a request gives none. */
  defaultTimeout = 30_000;
  /**
   * A peer that leaves a request unanswered this long (ms) is pinged (XEP-0199); when the ping
   * bounces as unavailable, its pending requests fail at once with ServiceUnavailableError
   * instead of waiting out their timeouts. 0 turns probing off (set it before the first request).
   */
  probeInterval = 5_000;
  readonly #probing = new Set<string>();

  constructor(transport: Transport, clock: Clock = systemClock) {
    this.#transport = transport;
    this.#clock = clock;
  }

  /** Fails every pending request: a reply cannot arrive over a link that dropped (servers do not store IQs). */
  linkLost(status: 'reconnecting' | 'closed', cause?: Error): void {
    this.#rejectAll(
      status === 'closed'
        ? new ClosedError('transport closed while waiting for the reply', { cause })
        : new ConnectionError('connection lost while waiting for the reply', { cause }),
    );
  }

  /** Requests awaiting a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Sends an IQ get/set (an `id` is assigned when absent) and resolves with the `result` IQ.
   * Rejects with StanzaError / ServiceUnavailableError on an `error` reply, TimeoutError,
   * the abort reason, ConnectionError when the link drops, or the send failure.
   */
  request(iq: Element, options: IqRequestOptions = {}): Promise<Element> {
    return this.#request(iq, options, false);
  }

  #request(iq: Element, options: IqRequestOptions, probe: boolean): Promise<Element> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = (iq.attrs['id'] ??= randomId());
    // ejabberd closes a component stream that sends a stanza without `from` (observed).
    if (iq.attrs['from'] === undefined && this.#transport.address) iq.attrs['from'] = this.#transport.address;
    if (this.#pending.has(id)) return Promise.reject(new ConflictError(`IQ id ${id} is already pending`));
    const timeout = options.timeout ?? this.defaultTimeout;
    return new Promise<Element>((resolve, reject) => {
      const p: Pending = {
        to: iq.attrs['to'],
        probe,
        resolve,
        reject,
        timer: undefined,
        signal,
        onAbort: undefined,
      };
      this.#pending.set(id, p);
      if (timeout > 0 && Number.isFinite(timeout)) p.timer = this.#arm(id, p, timeout, timeout);
      if (signal) {
        p.onAbort = () => this.#settle(id, abortReason(signal));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#transport.send(iq, { signal }).catch((err: unknown) => this.#settle(id, err as Error));
    });
  }

  #settle(id: string, outcome: Element | Error): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    p.timer?.cancel();
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  #rejectAll(err: Error): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, err);
  }

  /** Matches an inbound IQ result/error to its request (other stanzas are ignored). */
  dispatch(stanza: Element): void {
    const type = stanza.attrs['type'];
    if (type !== 'result' && type !== 'error') return;
    const id = stanza.attrs['id'];
    if (id === undefined) return;
    const p = this.#pending.get(id);
    if (!p || !this.#fromMatches(p.to, stanza.attrs['from'])) return; // spoofed or stray reply: ignore
    if (type === 'result') return this.#settle(id, stanza);
    const err = errorFromStanza(stanza);
    this.#settle(id, err);
    // The server said the peer is gone: its other requests will not be answered either.
    const peer = stanza.attrs['from'] ?? p.to;
    if (peer !== undefined && peerIsGone(err)) this.peerGone(peer, err);
  }

  /**
   * Fails at once the requests waiting on `peer` (that full JID; for a bare domain, every JID
   * of that domain: a component), because the session learned it is unavailable: a bounce, a
   * failed probe, its unavailable presence. `cause` says how it was learned.
   */
  peerGone(peer: string, cause: StanzaError): void {
    for (const [id, p] of this.#pending) {
      if (p.probe || p.to === undefined || !affects(p.to, peer)) continue;
      const init: StanzaErrorInit = {
        condition: cause.condition,
        type: cause.type,
        text: `${peer} became unavailable while this request waited for its reply (${cause.message})`,
      };
      this.#settle(id, new ServiceUnavailableError(init, { cause, retryable: cause.retryable }));
    }
  }

  /**
   * The request's one timer. A request that may wait longer than `probeInterval` wakes to ping
   * its peer after one interval, then after intervals doubling up to 64 (a call of days wakes a
   * few hundred times, not every 5 s). No extra timer per request, and none for quick ones.
   */
  #arm(id: string, p: Pending, left: number, timeout: number, step = this.probeInterval): TimerHandle {
    if (p.probe || step <= 0 || left <= step)
      return this.#clock.setTimeout(
        () => this.#settle(id, new TimeoutError(`no reply to IQ ${id} within ${timeout} ms`)),
        left,
      );
    return this.#clock.setTimeout(() => {
      if (this.#pending.get(id) !== p) return;
      p.timer = this.#arm(id, p, left - step, timeout, Math.min(step * 2, this.probeInterval * 64));
      if (p.to !== undefined && !this.#probing.has(p.to)) this.#probe(p.to);
    }, step);
  }

  #probe(peer: string): void {
    this.#probing.add(peer);
    const ping = xml('iq', { type: 'get', to: peer }, xml('ping', { xmlns: NS_PING }));
    this.#request(ping, { timeout: this.probeInterval }, true).then(
      () => this.#probing.delete(peer),
      (err: unknown) => {
        this.#probing.delete(peer);
        // Every xmppbus session answers ping; a server answers for a peer that is gone:
        // `service-unavailable` for a c2s resource no longer there (measured, both servers).
        // From a bare JID or a domain the same condition is the live entity's own "no ping
        // here" (the servers' pub/sub services answer so, measured): not a sign it is gone.
        if (
          err instanceof StanzaError &&
          (peerIsGone(err) || (err.condition === 'service-unavailable' && peer.includes('/')))
        )
          this.peerGone(peer, err);
      },
    );
  }

  #fromMatches(to: string | undefined, from: string | undefined): boolean {
    const me = this.#transport.address;
    if (to === undefined) {
      // Addressed to our own server/account: the reply comes from it, or carries no from.
      return from === undefined || jidEquals(from, bareJid(me)) || jidEquals(from, domainOf(me));
    }
    if (from === undefined) return jidEquals(to, bareJid(me));
    return jidEquals(from, to);
  }
}
