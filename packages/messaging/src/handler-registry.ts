/**
 * The handlers of a Messenger: one per contract (`handle`), found by the payload element's
 * namespace and local name, decoded and validated by the contract, and run with the shared
 * handler context. A handler's failure is answered by core's one callee policy (`calleeError`);
 * a payload nobody handles by `noHandlerError`, marked `<no-handler/>` so that senders
 * dead-letter it instead of waiting for the peer as for an unreachable one.
 */
import {
  ConflictError,
  ConfigError,
  StanzaError,
  calleeError,
  localName,
  noHandlerError,
  parseXml,
  readHeaders,
  toError,
  xml,
  type Element,
  type Session,
} from '@xmppbus/core';
import { decode, describeMessage, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import type { Settings } from './options.js';
import type { MessageStore } from './store.js';
import type { HandlerOptions, MessageContext, MessageHandler, MessengerCounters } from './types.js';
import { NS_MESSAGING, readDelay, readExpireAt, type QosLevel } from './wire.js';

export interface Registration {
  readonly contract: PayloadContract;
  readonly handler: MessageHandler<unknown>;
  readonly transactional: boolean;
}

/** A message whose payload has a handler. */
export interface Opened {
  message: Element;
  reg: Registration;
  el: Element;
}

/** What a QoS envelope is answered with: nothing (empty result), a payload, or a stanza error. */
export type Outcome = Element | StanzaError | undefined;

export interface RegistryDeps {
  session: Session;
  store: MessageStore;
  settings: Settings;
  counters: MessengerCounters;
}

export class HandlerRegistry {
  readonly #session: Session;
  readonly #store: MessageStore;
  readonly #settings: Settings;
  readonly #counters: MessengerCounters;
  /** namespace → local name → registration: two lookups, no key string built per message. */
  readonly #handlers = new Map<string, Map<string, Registration>>();
  readonly #abort = new AbortController();

  constructor(deps: RegistryDeps) {
    this.#session = deps.session;
    this.#store = deps.store;
    this.#settings = deps.settings;
    this.#counters = deps.counters;
  }

  /** The handler of `contract`'s messages (any QoS). A second one throws ConflictError. Returns the remover. */
  handle<C extends PayloadContract>(
    contract: C,
    handler: MessageHandler<PayloadOf<C>>,
    options: HandlerOptions = {},
  ): () => void {
    const ns = contract.ns ?? '';
    let byName = this.#handlers.get(ns);
    if (byName?.has(contract.name)) {
      throw new ConflictError(`a message handler for {${ns}}${contract.name} is already registered`);
    }
    if (options.transactional && !this.#store.inboxCompleteWith) {
      throw new ConfigError('transactional handlers need a store with inboxCompleteWith()');
    }
    const reg: Registration = {
      contract,
      handler: handler as MessageHandler<unknown>,
      transactional: options.transactional ?? false,
    };
    if (!byName) this.#handlers.set(ns, (byName = new Map()));
    byName.set(contract.name, reg);
    // Reflected to peers without our contracts (docs/protocol.md §6).
    const unreflect = this.#session.schemas.add(describeMessage(contract));
    return () => {
      const m = this.#handlers.get(ns);
      if (m?.get(contract.name) !== reg) return;
      unreflect();
      m.delete(contract.name);
      if (m.size === 0) this.#handlers.delete(ns);
    };
  }

  /** The first child of `message` that has a handler. */
  find(message: Element): { reg: Registration; el: Element } | undefined {
    if (this.#handlers.size === 0) return undefined;
    for (const c of message.children) {
      if (typeof c === 'string') continue;
      const reg = this.#handlers.get(c.attrs['xmlns'] ?? c.getNS())?.get(localName(c));
      if (reg) return { reg, el: c };
    }
    return undefined;
  }

  /**
   * The answer for a message nobody handles (the core policy): `service-unavailable` when no
   * handler serves any of its namespaces, `feature-not-implemented` when one does but not
   * that element; both carry `<no-handler xmlns='urn:xmppbus:messaging:1'/>`.
   */
  missing(message: Element): StanzaError {
    const { ns, name } = this.payloadOf(message);
    const e = noHandlerError(ns, name, this.#handlers.has(ns));
    return new StanzaError({
      condition: e.condition,
      type: e.type,
      text: e.text ?? 'no handler for this payload',
      application: xml('no-handler', { xmlns: NS_MESSAGING }),
    });
  }

  /** The payload's namespace and name (its first child that is not metadata): what access rules name. */
  payloadOf(message: Element): { ns: string; name: string } {
    for (const c of message.children) {
      if (typeof c === 'string' || METADATA.has(c.attrs['xmlns'] ?? '')) continue;
      return { ns: c.attrs['xmlns'] ?? c.getNS(), name: localName(c) };
    }
    return { ns: '', name: 'message' };
  }

  /** Decodes (and validates) the payload, or throws the `bad-request` to answer with. */
  decode(reg: Registration, el: Element): unknown {
    try {
      return decode(reg.contract, el, { validate: this.#settings.validate });
    } catch (err) {
      throw new StanzaError({ condition: 'bad-request', type: 'modify', text: toError(err).message });
    }
  }

  /**
   * The handler context of a message. With `text` (the message serialised), the context keeps
   * no reference to the tree: `stanza` is parsed from the text when a handler reads it, so a
   * stored QoS 2 message waits as text only.
   */
  context(message: Element, qos: QosLevel, id: string | undefined, text?: string): MessageContext {
    const delay = readDelay(message);
    const exp = readExpireAt(message);
    // Object literals built directly (no spread of a base object): one per message.
    const from = message.attrs['from'] ?? '';
    const headers = readHeaders(message);
    const signal = this.#abort.signal;
    const delayedFrom = delay ? new Date(delay.at) : undefined;
    const to = message.attrs['to'] ?? this.#session.address;
    const delayedBy = delay?.by;
    const delayReason = delay?.reason;
    const expiresAt = Number.isNaN(exp) ? undefined : new Date(exp);
    if (text === undefined) {
      return { from, headers, signal, delayedFrom, to, qos, id, delayedBy, delayReason, expiresAt, stanza: message };
    }
    let parsed: Element | undefined;
    return {
      from,
      headers,
      signal,
      delayedFrom,
      to,
      qos,
      id,
      delayedBy,
      delayReason,
      expiresAt,
      get stanza(): Element {
        return (parsed ??= parseXml(text));
      },
    };
  }

  /** Whether a context's XEP-0079 expiry passed. */
  contextExpired(context: MessageContext): boolean {
    return context.expiresAt !== undefined && context.expiresAt.getTime() <= this.#session.clock.now();
  }

  /** Whether the message's XEP-0079 expiry passed. */
  expired(message: Element): boolean {
    const exp = readExpireAt(message);
    return !Number.isNaN(exp) && exp <= this.#session.clock.now();
  }

  /** Runs the handler; a failure is counted and rethrown as the stanza error to answer with. */
  async run(reg: Registration, value: unknown, context: MessageContext): Promise<void> {
    const instr = this.#session.instrumentation;
    const scope = instr.enabled
      ? instr.processMessage(context.from, reg.contract.name, context.qos, context.headers)
      : undefined;
    try {
      await (scope ? scope.run(() => reg.handler(value, context)) : reg.handler(value, context));
      scope?.end();
    } catch (err) {
      this.#counters.handlerErrors++;
      // Logged inside the span, so the line carries its trace_id/span_id.
      const failure = scope ? scope.run(() => this.failure(err, reg)) : this.failure(err, reg);
      scope?.end(failure);
      throw failure;
    }
  }

  /**
   * The stanza error answering a failure (core's callee policy). A store that wraps the
   * effect's error (transactional handlers) passes it as `cause`.
   */
  failure(err: unknown, reg?: Registration): StanzaError {
    if (err instanceof StanzaError) return err;
    const cause = (err as { cause?: unknown } | undefined)?.cause;
    if (cause instanceof StanzaError) return cause;
    const what = reg ? `message handler of {${reg.contract.ns ?? ''}}${reg.contract.name}` : 'message handler';
    return calleeError(err, { logger: this.#session.logger, what });
  }

  /** Aborts the handlers' signal (the messenger closes). */
  close(): void {
    this.#abort.abort();
  }
}

/** Namespaces of a message's metadata children (never its payload). */
const METADATA: ReadonlySet<string> = new Set([
  'urn:xmpp:sid:0',
  'urn:xmpp:delay',
  'http://jabber.org/protocol/amp',
  'urn:xmpp:hints',
  'http://jabber.org/protocol/shim',
  'jabber:client',
  'jabber:component:accept',
]);
