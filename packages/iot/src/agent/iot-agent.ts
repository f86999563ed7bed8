/**
 * `IotAgent`: a device or small process that logs in as an ordinary account (c2s) and reports
 * sensor values. It answers readout, observe and control in both IoT dialects, always in the
 * dialect of the request, and only to peers it shares a presence subscription with (roster
 * trust). Commands sent while it was offline arrive through `@xmppbus/messaging` (QoS 1/2)
 * when it logs in. Wire: docs/protocol.md §7.
 *
 * It is a `SessionUnit`: `start()` registers its handlers, loads the roster and sends presence;
 * `drain()` stops answering new requests; `close()` sends unavailable presence and releases
 * everything (subscriptions, deadlines).
 */
import {
  ConfigError,
  bareJid,
  domainOf,
  xml,
  type AccessRule,
  type Logger,
  type Session,
  type SessionUnit,
  type WaitOptions,
} from '@xmppbus/core';
import type { Messenger } from '@xmppbus/messaging';
import type {
  AgentAvailability,
  AgentLimits,
  FieldSample,
  FieldSpec,
  FieldValue,
  ParameterSpec,
  ParameterValue,
  PresenceChange,
  Provisioning,
  SubscriptionRequest,
} from '../types.js';
import { Roster } from '../roster/roster.js';
import { CTR_NAMESPACES, EVENTS_NAMESPACES, SD_NAMESPACES } from '../wire/namespaces.js';
import { ParameterStore } from './control.js';
import { IotScheduler } from './scheduler.js';
import { FieldStore, fieldKey, type SetValueOptions } from './things.js';
import { ObserveEngine } from './observe.js';
import { AgentHandlers, type ControlListener } from './handlers.js';

export type { SetValueOptions } from './things.js';

export interface IotAgentOptions {
  /**
   * The agent's session, over a c2s client transport the application created. Connect it with
   * `initialPresence: false`: the agent announces itself once its handlers are in place.
   */
  session: Session;
  fields?: readonly FieldSpec[];
  parameters?: readonly ParameterSpec[];
  /**
   * Owners (bare JIDs): their subscription requests are approved at once, and they are told
   * of queued requests by a chat message. Owners still need the mutual subscription to be answered.
   */
  owners?: readonly string[];
  /** Domains whose accounts' subscription requests are approved at once. */
  trustedDomains?: readonly string[];
  /**
   * Whom to answer: `roster` (default, the secure one) answers peers with a mutual (`both`)
   * presence subscription; `open` answers anyone — for development only, it logs a warning.
   */
  trust?: 'roster' | 'open';
  /** Delegated read/control decisions (XEP-0324 model), asked after the roster check. */
  provisioning?: Provisioning;
  /**
   * Messenger of this session: control commands sent with QoS 1/2 (`IotClient.sendCommand`)
   * are received through it, and plain `<message>` control too. Without it, `<message>`
   * control is read from the session directly (QoS 0 only).
   */
  messenger?: Messenger;
  /** Shared deadline scheduler (share one across many agents in a process). Default: one per agent. */
  scheduler?: IotScheduler;
  /** An observe subscription expires this long after its last (re)subscribe, ms. Default 15 min. */
  subscriptionTtl?: number;
  /** Tell owners about queued subscription requests by a chat message. Default true. */
  notifyOwners?: boolean;
  /** Presence sent at start. Default available. */
  presence?: { availability?: Exclude<AgentAvailability, 'unavailable'>; status?: string };
  limits?: AgentLimits;
  logger?: Logger;
}

export type IotAgentStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

const DEFAULT_TTL = 15 * 60_000;
/** Queued requests owners are told about by message; later ones wait silently in the queue. */
const OWNER_NOTICES = 10;

export class IotAgent implements SessionUnit, AsyncDisposable {
  readonly name = 'iot-agent';
  readonly session: Session;
  /** The roster: trust decisions, pending subscription requests, peer presence. */
  readonly roster: Roster;
  readonly #fields: FieldStore;
  readonly #params: ParameterStore;
  readonly #observe: ObserveEngine;
  readonly #scheduler: IotScheduler;
  readonly #ownScheduler: boolean;
  readonly #handlers: AgentHandlers;
  readonly #options: IotAgentOptions;
  readonly #logger: Logger;
  #status: IotAgentStatus = 'idle';
  #off: (() => void)[] = [];
  #starting: Promise<void> | undefined;
  #removeUnit: (() => void) | undefined;

  constructor(options: IotAgentOptions) {
    if (!options?.session) throw new ConfigError('IotAgent needs a session');
    const ttl = options.subscriptionTtl ?? DEFAULT_TTL;
    if (!(ttl > 0)) throw new ConfigError('subscriptionTtl must be > 0');
    this.#options = options;
    this.session = options.session;
    this.#logger = options.logger ?? options.session.logger;
    const limits = options.limits ?? {};
    const now = this.session.clock.now();
    this.#params = new ParameterStore(options.parameters ?? []);
    const writable = new Set([...this.#params.values()].map((p) => fieldKey(p.spec.node, p.spec.name)));
    this.#fields = new FieldStore(options.fields ?? [], { historyLimit: limits.historyPerField ?? 32, writable }, now);
    this.#ownScheduler = options.scheduler === undefined;
    this.#scheduler = options.scheduler ?? new IotScheduler(this.session.clock);
    const owners = new Set((options.owners ?? []).map(bareJid));
    const domains = new Set(options.trustedDomains ?? []);
    this.roster = new Roster({
      session: this.session,
      // An open agent trusts nobody's roster: it needs none (and works on a memory hub).
      load: options.trust !== 'open',
      maxPending: limits.pendingRequests ?? 100,
      policy: (jid) => (owners.has(jid) || domains.has(domainOf(jid)) ? 'approve' : 'queue'),
    });
    this.#handlers = new AgentHandlers({
      agent: this,
      session: this.session,
      fields: this.#fields,
      params: this.#params,
      roster: this.roster,
      open: options.trust === 'open',
      provisioning: options.provisioning,
      limits,
      logger: this.#logger,
      onSet: (name, value, node) => this.set(name, value, node === undefined ? {} : { node }),
    });
    this.#observe = new ObserveEngine({
      scheduler: this.#scheduler,
      store: this.#fields,
      ttl,
      sink: (sub, fields) => this.#handlers.sendEvent(sub, fields),
    });
    this.#handlers.observe = this.#observe;
  }

  get status(): IotAgentStatus {
    return this.#status;
  }

  /** Observe subscriptions held now. */
  get subscriptionCount(): number {
    return this.#observe.size;
  }

  /** Observe events sent so far. */
  get eventsSent(): number {
    return this.#observe.sent;
  }

  /**
   * Registers the handlers (both dialects), loads the roster and announces presence. Waits for
   * the session to be online. Idempotent.
   */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return Promise.reject(new ConfigError('agent is closed'));
    this.#removeUnit ??= this.session.add(this);
    // The session starts its units itself (this method again): never await it from inside that.
    if (this.session.status === 'idle') return this.session.start(options);
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options: WaitOptions): Promise<void> {
    this.#status = 'starting';
    if (this.#options.trust === 'open')
      this.#logger.warn(`IoT agent ${this.session.address} answers anyone (trust: 'open'): development only`);
    this.#off.push(...this.#handlers.register(this.#options.messenger));
    this.#off.push(
      this.roster.onPresence((p) => this.#onPeerPresence(p)),
      this.roster.onChange((item) => {
        if (item.subscription !== 'both') this.#observe.removePeer(item.jid, true);
      }),
      this.roster.onPendingRequest((r) => this.#notifyOwners(r)),
      this.session.onTransportStatus((status) => {
        if (status === 'online') void this.#onReconnected();
      }),
    );
    // Commands may arrive as soon as peers see us: take them before announcing presence.
    await this.#options.messenger?.start(options);
    await this.roster.start(options);
    const p = this.#options.presence ?? {};
    await this.setPresence(p.availability ?? 'available', p.status);
    if (this.#status === 'starting') this.#status = 'ready';
  }

  /** Records a new value of a field and evaluates every observe subscription on it. */
  set(name: string, value: FieldValue, options: SetValueOptions = {}): FieldSample {
    const state = this.#fields.set(name, value, options, this.session.clock.now());
    if (this.#status !== 'closed') this.#observe.changed(state);
    return state.current;
  }

  /** The current sample of a field. */
  value(name: string, node?: string): FieldSample | undefined {
    return this.#fields.get(name, node)?.current;
  }

  /** The current value of a control parameter. */
  parameter(name: string, node?: string): ParameterValue | undefined {
    return this.#params.get(name, node)?.value;
  }

  /** Called after a control operation was applied (by IQ, message or command). Returns the remover. */
  onControl(listener: ControlListener): () => void {
    return this.#handlers.onControl(listener);
  }

  /** Announces liveness: available/away/xa/dnd/chat, or unavailable. */
  async setPresence(availability: AgentAvailability, status?: string): Promise<void> {
    const show = availability === 'available' || availability === 'unavailable' ? undefined : availability;
    const p = xml(
      'presence',
      availability === 'unavailable' ? { type: 'unavailable' } : null,
      show ? xml('show', null, show) : undefined,
      status !== undefined ? xml('status', null, status) : undefined,
    );
    await this.session.send(p);
  }

  /** Subscription requests waiting for an owner's decision. */
  pendingRequests(): readonly SubscriptionRequest[] {
    return this.roster.pending;
  }

  /** Approves a subscription request (and asks for the peer's presence in return: mutual). */
  approve(jid: string): Promise<void> {
    return this.roster.approve(jid);
  }

  deny(jid: string): Promise<void> {
    return this.roster.deny(jid);
  }

  /** Whether a peer would be answered (roster trust, or `trust: 'open'`). */
  isTrusted(jid: string): boolean {
    return this.#handlers.trusted(jid);
  }

  /** Stops answering new requests; subscriptions stay until close. */
  async drain(options: WaitOptions = {}): Promise<void> {
    void options;
    if (this.#status === 'closed') return;
    this.#status = 'draining';
    this.#handlers.draining = true;
  }

  /** Sends unavailable presence (if the link is up) and releases everything. Idempotent. */
  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    this.#status = 'closed';
    if (this.session.transport.status === 'online') await this.setPresence('unavailable').catch(() => undefined);
    for (const off of this.#off) off();
    this.#off = [];
    this.#removeUnit?.();
    this.roster.stop();
    this.#observe.clear();
    if (this.#ownScheduler) this.#scheduler.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onPeerPresence(p: PresenceChange): void {
    // A subscriber that went offline loses its subscriptions; its client restores them when back.
    if (p.availability === 'unavailable') this.#observe.removePeer(p.jid);
  }

  async #onReconnected(): Promise<void> {
    if (this.#status !== 'ready') return;
    try {
      await this.roster.reload();
      const p = this.#options.presence ?? {};
      await this.setPresence(p.availability ?? 'available', p.status);
    } catch (err) {
      this.#logger.warn('IoT agent: re-announcing after reconnect failed', err as Error);
    }
  }

  #notifyOwners(request: SubscriptionRequest): void {
    if (this.#options.notifyOwners === false) return;
    // A flood of requests must not become a flood of messages: owners hear of the first few.
    if (this.roster.pending.length > OWNER_NOTICES) return;
    for (const owner of this.#options.owners ?? []) {
      const body = `${request.jid} asks to read ${bareJid(this.session.address)}. Approve or deny it with the agent's API.`;
      void this.session
        .send(xml('message', { to: owner, type: 'chat' }, xml('body', null, body)))
        .catch(() => undefined);
    }
  }
}

/**
 * Access rules an agent's session needs so that IoT requests reach the agent, which then applies
 * roster trust itself (the session's default admits only services of its own domain). Pass
 * them to `new Session({ access: new AccessPolicy({ rules: iotAccessRules() }) })`.
 */
export function iotAccessRules(): AccessRule[] {
  return [{ from: '*', to: [...SD_NAMESPACES, ...EVENTS_NAMESPACES, ...CTR_NAMESPACES] }];
}
