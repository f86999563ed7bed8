/**
 * An in-process stand-in for an XMPP server, for unit tests: endpoints connect under a JID and
 * the hub routes stanzas between them the way a server does (exact JID, then the component
 * that owns the domain, then a client session of a bare JID; nobody → `service-unavailable`
 * bounced to the sender). Faults are injectable: latency, random drops, and disconnects.
 * Always an instance — never a global — so tests stay independent.
 */
import {
  BaseTransport,
  ConflictError,
  ConnectionError,
  Element,
  StanzaError,
  bareJid,
  domainOf,
  type BaseTransportOptions,
} from '@xmppbus/core';
import { clone } from 'ltx';

export interface MemoryHubOptions {
  /** Delay per delivered stanza in ms (0 = next microtask). */
  latencyMs?: number;
  /** Probability in [0, 1) that a stanza is silently lost. */
  dropRate?: number;
  /** Random source for drops and spreading (inject for determinism). */
  random?: () => number;
  /**
   * What a second endpoint with an address already connected gets: `conflict` (Prosody's
   * behaviour: ConflictError) or `spread` (ejabberd's: stanzas alternate between them).
   */
  duplicates?: 'conflict' | 'spread';
  /** Largest stanza the hub accepts (bytes); larger ones bounce with `policy-violation`. */
  maxStanzaBytes?: number;
}

export interface MemoryConnectOptions extends Omit<BaseTransportOptions, 'maxStanzaBytes'> {}

export class MemoryHub {
  latencyMs: number;
  dropRate: number;
  readonly #random: () => number;
  readonly #duplicates: 'conflict' | 'spread';
  readonly #maxStanzaBytes: number;
  readonly #endpoints = new Map<string, MemoryTransport[]>();
  #spread = 0;
  /** Stanzas routed (delivered or bounced), for assertions. */
  routed = 0;
  /** Stanzas dropped by the injected drop rate. */
  dropped = 0;

  constructor(options: MemoryHubOptions = {}) {
    this.latencyMs = options.latencyMs ?? 0;
    this.dropRate = options.dropRate ?? 0;
    this.#random = options.random ?? Math.random;
    this.#duplicates = options.duplicates ?? 'conflict';
    this.#maxStanzaBytes = options.maxStanzaBytes ?? 256 * 1024;
  }

  /** Connects an endpoint; it is online at once. */
  connect(address: string, options: MemoryConnectOptions = {}): MemoryTransport {
    const list = this.#endpoints.get(address) ?? [];
    if (list.some((t) => t.status === 'online') && this.#duplicates === 'conflict') {
      throw new ConflictError(`${address} is already connected`);
    }
    const t = new MemoryTransport(this, address, { ...options, maxStanzaBytes: this.#maxStanzaBytes });
    list.push(t);
    this.#endpoints.set(address, list);
    t._online();
    return t;
  }

  /** Simulates a dropped link: the endpoint goes `reconnecting` and stanzas to it bounce. */
  disconnect(address: string): void {
    for (const t of this.#endpoints.get(address) ?? []) t._lost();
  }

  /** Ends a simulated outage: the endpoints of `address` come back online. */
  reconnect(address: string): void {
    for (const t of this.#endpoints.get(address) ?? []) t._online();
  }

  /** @internal */
  _remove(t: MemoryTransport): void {
    const list = this.#endpoints.get(t.address);
    if (!list) return;
    const rest = list.filter((x) => x !== t);
    if (rest.length === 0) this.#endpoints.delete(t.address);
    else this.#endpoints.set(t.address, rest);
  }

  #pick(address: string): MemoryTransport | undefined {
    const list = this.#endpoints.get(address);
    if (!list) return undefined;
    const online = list.filter((t) => t.status === 'online');
    if (online.length === 0) return undefined;
    if (online.length === 1) return online[0];
    return online[this.#spread++ % online.length];
  }

  #resolve(to: string): MemoryTransport | undefined {
    const exact = this.#pick(to);
    if (exact) return exact;
    const bare = bareJid(to);
    // A component owns every JID of its domain.
    const owner = this.#pick(domainOf(to));
    if (owner) return owner;
    if (bare !== to) return undefined; // full JID of an absent client session
    for (const [addr] of this.#endpoints) {
      if (bareJid(addr) === bare) {
        const t = this.#pick(addr);
        if (t) return t;
      }
    }
    return undefined;
  }

  /** @internal Routes one stanza written by `sender`. */
  _route(sender: MemoryTransport, stanza: Element): void {
    this.routed++;
    if (this.dropRate > 0 && this.#random() < this.dropRate) {
      this.dropped++;
      return;
    }
    // Deliver a copy, stamped with the sender's address, as a server would: a component may
    // speak for any JID of its domain, a client session only as itself.
    const copy = clone(stanza);
    const from = copy.attrs['from'];
    if (!from || sender.address.includes('@') || domainOf(from) !== sender.address) copy.attrs['from'] = sender.address;
    const to = copy.attrs['to'];
    const size = Buffer.byteLength(copy.toString());
    let target: MemoryTransport | undefined;
    let bounce: StanzaError | undefined;
    if (size > this.#maxStanzaBytes) {
      bounce = new StanzaError({
        condition: 'policy-violation',
        text: `stanza of ${size} bytes exceeds ${this.#maxStanzaBytes}`,
      });
    } else if (typeof to !== 'string' || to === '') {
      bounce = new StanzaError({ condition: 'bad-request', text: 'stanza without to' });
    } else {
      target = this.#resolve(to);
      // As Prosody answers for a declared component that is not connected (measured): wait/remote-server-timeout.
      if (!target) bounce = new StanzaError({ condition: 'remote-server-timeout', text: `${to} is not connected` });
    }
    if (target) {
      this.#deliver(target, copy);
      return;
    }
    if (bounce && copy.attrs['type'] !== 'error' && copy.name !== 'presence' && sender.status === 'online') {
      // RFC 6120 §8.3.1: the error reply swaps to/from and keeps the id.
      const err = new Element(copy.name, {
        type: 'error',
        from: to ?? '',
        to: copy.attrs['from'],
        id: copy.attrs['id'],
      });
      // `copy` is ours and discarded here: move its children rather than cloning them again.
      for (const c of copy.children) if (typeof c !== 'string') err.cnode(c);
      err.cnode(bounce.toElement());
      this.#deliver(sender, err);
    }
  }

  #deliver(target: MemoryTransport, stanza: Element): void {
    if (this.latencyMs > 0) setTimeout(() => target._receive(stanza), this.latencyMs);
    else queueMicrotask(() => target._receive(stanza));
  }
}

/** One endpoint of a MemoryHub, implementing the common `Transport` interface. */
export class MemoryTransport extends BaseTransport {
  readonly address: string;
  readonly #hub: MemoryHub;

  /** @internal use `hub.connect()` */
  constructor(hub: MemoryHub, address: string, options: BaseTransportOptions) {
    super(options);
    this.#hub = hub;
    this.address = address;
  }

  protected _write(stanza: Element): Promise<void> {
    if (this.status !== 'online') return Promise.reject(new ConnectionError(`${this.address} is not connected`));
    this.#hub._route(this, stanza);
    return Promise.resolve();
  }

  protected _close(): Promise<void> {
    this.#hub._remove(this);
    return Promise.resolve();
  }

  /** @internal */
  _receive(stanza: Element): void {
    if (this.status === 'online') this._emitStanza(stanza);
  }

  /** @internal */
  _online(): void {
    this._setStatus('online');
  }

  /** @internal */
  _lost(): void {
    this._setStatus('reconnecting', new ConnectionError('link lost (injected)'));
  }
}

/** Creates a fresh hub instance. */
export function memoryHub(options?: MemoryHubOptions): MemoryHub {
  return new MemoryHub(options);
}
