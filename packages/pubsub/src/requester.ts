/**
 * How every pub/sub operation reaches the service: one IQ through the session's `IqCaller`
 * (replies matched by id and sender, every wait cancellable), failures translated into the
 * pub/sub error classes. Shared by the operation modules (owner.ts, subscriber.ts) and `PubSub`.
 */
import { ClosedError, bareJid, domainOf, findChild, randomId, xml } from '@xmppbus/core';
import type { Element, Session, WaitOptions } from '@xmppbus/core';
import { translateError, type PubSubOperation } from './errors.js';

export class Requester {
  readonly session: Session;
  readonly service: string;
  readonly #timeout: number;
  /** Set by the owner once it is started; requests before that start it first. */
  ensureStarted: (options: WaitOptions) => Promise<void> = () => Promise.resolve();
  started = false;
  closed = false;

  constructor(session: Session, service: string, timeout: number) {
    this.session = session;
    this.service = service;
    this.#timeout = timeout;
  }

  /** The bare JID requests act as by default. */
  get jid(): string {
    return bareJid(this.session.address);
  }

  // Not async: one promise per request (publish is a hot path), errors translated on rejection.
  request(
    type: 'get' | 'set',
    payload: Element,
    op: PubSubOperation,
    node: string | undefined,
    options: WaitOptions = {},
    as?: string,
  ): Promise<Element> {
    if (this.closed) return Promise.reject(new ClosedError('PubSub is closed'));
    if (!this.started)
      return this.ensureStarted(options).then(() => this.request(type, payload, op, node, options, as));
    const iq = xml('iq', { type, to: this.service, from: this.fromFor(as), id: randomId() }, payload);
    return this.session.caller
      .request(iq, { signal: options.signal, timeout: options.timeout ?? this.#timeout })
      .catch((err: unknown) => {
        throw translateError(err, op, node, this.jid);
      });
  }

  /**
   * The `from` to act as `jid`: a component may speak for any JID of its domain, and services
   * require the subscriber's own JID on subscription requests (else `invalid-jid`).
   */
  fromFor(jid: string | undefined): string {
    const me = this.session.address;
    if (jid === undefined || jid === me || me.includes('@') || domainOf(jid) !== me) return me;
    return jid;
  }
}

/** The `<pubsub>` child of a result (or undefined when the server sent an empty result). */
export function pubsubOf(result: Element): Element | undefined {
  return findChild(result, 'pubsub');
}
