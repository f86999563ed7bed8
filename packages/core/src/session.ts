/**
 * One `Session` per connection. It is the single place where inbound stanzas enter: it owns the
 * IQ router and caller, the disco registry, the message and presence listeners, the clock and
 * the logger, and it orders the lifecycle of the units built on it (rpc, pubsub, messaging).
 * Nothing is registered behind the user's back: features take a session explicitly, and their
 * constructors do nothing until `start()`.
 *
 * Lifecycle (the same words on every long-lived object):
 * - `start()`: resolves once the transport is online and every unit is ready;
 * - `drain({ signal, timeout })`: units stop taking new work and finish what they hold, newest first;
 * - `close()`: releases everything (units in reverse order, then the transport); idempotent;
 * - `[Symbol.asyncDispose]` = `close()`.
 */
import { abortReason, type WaitOptions } from './abort.js';
import { AccessPolicy } from './access.js';
import { stanzaCost } from './admission.js';
import { systemClock, type Clock } from './clock.js';
import { DiscoRegistry } from './disco.js';
import { ClosedError, ConfigError, ConflictError, TimeoutError, toError } from './errors.js';
import { IqCaller, IqRouter, errorFromStanza, peerIsGone } from './iq.js';
import { noInstrumentation, type Instrumentation } from './instrumentation.js';
import { silentLogger, type Logger } from './logger.js';
import { PeerFeatures } from './peer-features.js';
import type { StanzaListener, Transport, TransportStatus } from './transport.js';
import { waitForStatus } from './base-transport.js';
import { SchemaRegistry } from './reflection.js';
import { ServiceUnavailableError } from './stanza-error.js';
import type { Element } from './xml.js';

export type SessionStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

/** A part of a session with a lifecycle (an RpcServer, a Messenger, a pub/sub consumer…). */
export interface SessionUnit {
  /** Name used in logs. */
  readonly name?: string;
  /** Gets ready (registers handlers, opens stores). Called by `session.start()` or when added to a started session. */
  start?(options?: WaitOptions): Promise<void>;
  /** Stops taking new work and waits for work in hand, within the options' bound. */
  drain?(options?: WaitOptions): Promise<void>;
  /** Releases everything. Must not throw for an already-closed unit. */
  close?(): Promise<void>;
}

export interface SessionOptions {
  transport: Transport;
  /** Time source of every unit on this session (default: the system clock). */
  clock?: Clock;
  /** Logger of every unit on this session (default: silent). */
  logger?: Logger;
  /** Default IQ request timeout, ms (default 30 000). */
  iqTimeout?: number;
  /**
   * A peer that leaves a request unanswered this long is pinged; if the ping bounces as
   * unavailable, the requests waiting on it fail at once (ms, default 5 000; 0 = never).
   */
  probeInterval?: number;
  /** Randomness for jitter (tests make it deterministic). */
  random?: () => number;
  /**
   * Who may reach what on this endpoint (default: the secure default — services of the same
   * organisation domain; user accounts and foreign domains need a rule). `AccessPolicy.allowAll()`
   * is for development and warns at start.
   */
  access?: AccessPolicy;
  /** Traces and metrics hooks of every unit (default: none; see `@xmppbus/telemetry`). */
  instrumentation?: Instrumentation;
}

export type TransportStatusListener = (status: TransportStatus, error?: Error) => void;

/**
 * Transports a started session is attached to. Not a registry features look things up in: it
 * only refuses a second session on one link, which would answer every inbound IQ twice.
 */
const attached = new WeakSet<Transport>();

export class Session implements AsyncDisposable {
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  readonly disco = new DiscoRegistry();
  readonly access: AccessPolicy;
  readonly router: IqRouter;
  readonly caller: IqCaller;
  /**
   * What peers support (disco#info), asked once per JID for every unit of this session (rpc and
   * messaging ask whether a peer takes batches); forgotten when the peer's unavailable presence arrives.
   */
  readonly peerFeatures: PeerFeatures;
  /** The contracts this endpoint reflects (`urn:xmppbus:schema:1`); rpc, pubsub and messaging add theirs. */
  readonly schemas: SchemaRegistry;
  /**
   * Hooks the units call at their key points (calls, events, messages, gauges). Default: the
   * shared no-op. Set it before the units start (`@xmppbus/telemetry`'s `instrument(session)`).
   */
  instrumentation: Instrumentation;
  #status: SessionStatus = 'idle';
  #units: SessionUnit[] = [];
  #messageListeners: StanzaListener[] = [];
  #presenceListeners: StanzaListener[] = [];
  #statusListeners: TransportStatusListener[] = [];
  #detach: (() => void)[] = [];
  #starting: Promise<void> | undefined;
  /** Requests and messages that arrived while the units were starting (see #receive). */
  #held: Element[] | undefined;
  /** What `#held` costs (`stanzaCost`), bounded like the admission's total budget. */
  #heldBytes = 0;
  #closing: Promise<void> | undefined;

  constructor(options: SessionOptions) {
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.access = options.access ?? new AccessPolicy();
    this.instrumentation = options.instrumentation ?? noInstrumentation;
    this.router = new IqRouter(this.transport, this.disco, this.access);
    this.caller = new IqCaller(this.transport, this.clock);
    this.peerFeatures = new PeerFeatures({ caller: this.caller, clock: this.clock, logger: this.logger });
    this.schemas = new SchemaRegistry({
      router: this.router,
      disco: this.disco,
      access: this.access,
      transport: this.transport,
    });
    if (options.iqTimeout !== undefined) this.caller.defaultTimeout = options.iqTimeout;
    if (options.probeInterval !== undefined) {
      // NaN would wake a waiting call every millisecond; a negative value means nothing.
      if (!(options.probeInterval >= 0))
        throw new ConfigError(`Session: probeInterval must be >= 0 ms (0 = no probes), got ${options.probeInterval}`);
      this.caller.probeInterval = options.probeInterval;
    }
  }

  /** The address this session speaks as (the transport's). */
  get address(): string {
    return this.transport.address;
  }

  get status(): SessionStatus {
    return this.#status;
  }

  /**
   * Attaches to the transport, waits until it is online, then starts every unit in the order
   * they were added. Idempotent; rejects with ClosedError once closed.
   */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining')
      return Promise.reject(new ClosedError(`session is ${this.#status}`));
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options: WaitOptions): Promise<void> {
    this.#status = 'starting';
    try {
      this.#attach();
      this.access.warnIfOpen(this.logger, this.transport.address);
      if (this.transport.status !== 'online') await waitForStatus(this.transport, 'online', options);
      for (const unit of [...this.#units]) await unit.start?.(options);
    } catch (err) {
      this.#starting = undefined;
      if (this.#status === 'starting') this.#status = 'idle';
      this.#release();
      throw err;
    }
    if (this.#status === 'starting') this.#status = 'ready';
    this.#release();
  }

  /**
   * Adds a unit. Units added to a started session are started by their own `start()` (which
   * usually awaits `session.start()` first). Returns the remover.
   */
  add(unit: SessionUnit): () => void {
    if (this.#status === 'closed') throw new ClosedError('session is closed');
    this.#units.push(unit);
    return () => {
      const i = this.#units.indexOf(unit);
      if (i >= 0) this.#units.splice(i, 1);
    };
  }

  /** Sends a stanza on the transport. */
  send(stanza: Element, options?: { signal?: AbortSignal | undefined }): Promise<void> {
    return this.transport.send(stanza, options);
  }

  /** Inbound `<message/>` stanzas (after the session's own checks). Returns the remover. */
  onMessage(listener: StanzaListener): () => void {
    return addListener(this.#messageListeners, listener);
  }

  /** Inbound `<presence/>` stanzas. Returns the remover. */
  onPresence(listener: StanzaListener): () => void {
    return addListener(this.#presenceListeners, listener);
  }

  /** Transport status changes (online, reconnecting, closed). Returns the remover. */
  onTransportStatus(listener: TransportStatusListener): () => void {
    return addListener(this.#statusListeners, listener);
  }

  /**
   * Units stop taking new work and finish what they hold, newest unit first; then the
   * transport's queued sends are flushed. Bounded by `timeout`/`signal`: when either fires, the
   * drain rejects and the caller decides (usually `close()`).
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return;
    if (options.signal?.aborted) throw abortReason(options.signal);
    this.#status = 'draining';
    const bounded = withDeadline(options, this.clock);
    try {
      for (const unit of [...this.#units].reverse()) await unit.drain?.(bounded.options);
      await this.transport.drain(bounded.options);
    } finally {
      bounded.dispose();
    }
  }

  /** Closes every unit (newest first), then the transport. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#status = 'closed';
    for (const unit of [...this.#units].reverse()) {
      try {
        await unit.close?.();
      } catch (err) {
        this.logger.error(`closing ${unit.name ?? 'a unit'} failed`, toError(err));
      }
    }
    this.#units = [];
    await this.transport.close();
    for (const off of this.#detach) off();
    this.#detach = [];
    this.#messageListeners = [];
    this.#presenceListeners = [];
    this.#statusListeners = [];
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #attach(): void {
    if (this.#detach.length > 0) return;
    if (attached.has(this.transport))
      throw new ConflictError(`transport ${this.transport.address} already has a started session; share that one`);
    attached.add(this.transport);
    this.#detach.push(() => attached.delete(this.transport));
    this.#detach.push(
      this.transport.onStanza((s) => this.#receive(s)),
      this.transport.onStatus((status, err) => {
        if (status === 'reconnecting' || status === 'closed') this.caller.linkLost(status, err);
        for (const l of this.#statusListeners) l(status, err);
      }),
    );
  }

  /** A message to a peer bounced as "gone": requests waiting on that peer fail now. */
  #learnFromBounce(message: Element): void {
    const from = message.attrs['from'];
    if (from === undefined || this.caller.pending === 0) return;
    const err = errorFromStanza(message);
    if (peerIsGone(err)) this.caller.peerGone(from, err);
  }

  /**
   * A JID went offline: what it supports is forgotten, since whatever comes back there may be
   * another implementation. A full JID (c2s peers we exchanged presence with): requests waiting
   * on it fail now. Servers send this only to those the peer sent presence to (RFC 6121 §4.6).
   */
  #learnFromPresence(presence: Element): void {
    const from = presence.attrs['from'];
    if (from === undefined) return;
    this.peerFeatures.forget(from);
    if (from.indexOf('/') < 0 || this.caller.pending === 0) return;
    if (isXmppbusAnnouncement(presence)) return;
    const text = 'went offline (presence unavailable)';
    this.caller.peerGone(from, new ServiceUnavailableError({ condition: 'recipient-unavailable', text }));
  }

  /**
   * While the units start (a messenger opening its store, a handler being registered), a request
   * or message for them would be refused as unhandled, and a refusal is final for its sender. So
   * requests (iq get/set) and messages wait, bounded, until every unit has started; answers,
   * bounces and presence pass at once, since a unit's start may be waiting for them.
   */
  #receive(stanza: Element): void {
    if (this.#status === 'starting' && isRequest(stanza)) {
      const held = (this.#held ??= []);
      const cost = stanzaCost(stanza);
      if (held.length < MAX_HELD_WHILE_STARTING && this.#heldBytes + cost <= MAX_HELD_BYTES_WHILE_STARTING) {
        held.push(stanza);
        this.#heldBytes += cost;
        return;
      }
    }
    this.#dispatch(stanza);
  }

  #release(): void {
    const held = this.#held;
    this.#held = undefined;
    this.#heldBytes = 0;
    if (held && this.#status !== 'closed') for (const s of held) this.#dispatch(s);
  }

  /** The one entry of inbound stanzas: every feature sees them through here. */
  #dispatch(stanza: Element): void {
    switch (stanza.name) {
      case 'iq': {
        const type = stanza.attrs['type'];
        if (type === 'result' || type === 'error') this.caller.dispatch(stanza);
        else this.router.dispatch(stanza);
        return;
      }
      case 'message':
        if (stanza.attrs['type'] === 'error') this.#learnFromBounce(stanza);
        for (const l of this.#messageListeners) l(stanza);
        return;
      case 'presence':
        if (stanza.attrs['type'] === 'unavailable') this.#learnFromPresence(stanza);
        for (const l of this.#presenceListeners) l(stanza);
        return;
    }
  }
}

/** Past this many, or this many bytes, stanzas arriving during start are dispatched (and refused) as before. */
const MAX_HELD_WHILE_STARTING = 1024;
const MAX_HELD_BYTES_WHILE_STARTING = 16 * 1024 * 1024;

function isRequest(stanza: Element): boolean {
  const type = stanza.attrs['type'];
  if (stanza.name === 'iq') return type === 'get' || type === 'set';
  return stanza.name === 'message' && type !== 'error';
}

/** An unavailable presence of an xmppbus instance that drains (it still answers the calls in hand). */
function isXmppbusAnnouncement(presence: Element): boolean {
  for (const c of presence.children)
    if (typeof c !== 'string' && String(c.attrs['xmlns'] ?? '').startsWith('urn:xmppbus:')) return true;
  return false;
}

function addListener<T>(list: T[], listener: T): () => void {
  list.push(listener);
  return () => {
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
  };
}

/** Turns a relative timeout into one signal shared by every step of a drain. */
function withDeadline(options: WaitOptions, clock: Clock): { options: WaitOptions; dispose: () => void } {
  if (options.timeout === undefined) return { options, dispose: () => undefined };
  const controller = new AbortController();
  const timer = clock.setTimeout(
    () => controller.abort(new TimeoutError(`drain timed out after ${options.timeout} ms`)),
    options.timeout,
  );
  const outer = options.signal;
  const onOuter = (): void => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onOuter, { once: true });
  return {
    options: { signal: controller.signal },
    dispose: () => {
      timer.cancel();
      outer?.removeEventListener('abort', onOuter);
    },
  };
}
