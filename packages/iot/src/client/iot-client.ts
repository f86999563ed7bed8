/**
 * `IotClient`: the monitor side of the IoT protocols — read an agent, observe it, control it,
 * and send it commands that wait in the QoS outbox while it is offline. Usable on a c2s client
 * session (with a roster) or a component session (no roster: subscriptions are still answered).
 * Requests go out in the client's dialect (`nf` by default, `legacy` on request); answers are
 * read in whichever dialect the agent uses. Wire: docs/protocol.md §7.
 */
import {
  ConfigError,
  ServiceUnavailableError,
  StanzaError,
  bareJid,
  findChild,
  jidEquals,
  localName,
  randomId,
  withAbort,
  xml,
  type Element,
  type Session,
  type SessionUnit,
  type WaitOptions,
} from '@xmppbus/core';
import type { Messenger, MessageSendOptions } from '@xmppbus/messaging';
import { rawPayload } from '@xmppbus/schema';
import { LEGACY_CODEC, NF_CODEC } from '../dialects/codec.js';
import type { ControlOperation, DialectCodec, SubscribeRequest } from '../dialects/model.js';
import { formatParameter, kindOfValue } from '../agent/control.js';
import { Roster } from '../roster/roster.js';
import type {
  ControlOptions,
  ControlValues,
  Dialect,
  FieldSample,
  ObserveOptions,
  ParameterKind,
  PresenceChange,
  ReadOptions,
  Readout,
  ReadoutError,
} from '../types.js';
import { FAMILY, familyOf, type NamespaceFamily } from '../wire/namespaces.js';
import { CAT, CAT_ALL, categoryMask } from '../wire/values.js';
import { Observation, type ObservationControl } from './observation.js';

export const NS_LAST = 'jabber:iq:last';

export interface IotClientLimits {
  /** Readouts waiting for their messages. Default 256 (beyond: `QueueFull`-like `resource-constraint`). */
  readonly pendingReads?: number;
  /** Observations held. Default 1 000. */
  readonly observations?: number;
  /** Fields accepted per readout (over all its messages). Default 10 000. */
  readonly fieldsPerReadout?: number;
}

export interface IotClientOptions {
  session: Session;
  /** Dialect of outbound requests. Default `nf`. */
  dialect?: Dialect;
  /** Messenger of this session, for `sendCommand` (QoS 1/2 through the outbox). */
  messenger?: Messenger;
  /** Default wait for a readout or control answer, ms. Default 30 000. */
  timeout?: number;
  /** Approve presence subscription requests from these JIDs too (agents we befriended are approved). */
  approve?: (jid: string) => boolean;
  /** Load the server roster (c2s). Default: true on a client session (address with `@`). */
  roster?: boolean;
  /** Resource agents log in with, to address commands to an agent not seen online (QoS 1/2 need a full JID). */
  agentResource?: string;
  limits?: IotClientLimits;
}

/** Options of `client.sendCommand`. */
export interface CommandOptions extends Pick<
  MessageSendOptions,
  'qos' | 'ttl' | 'id' | 'signal' | 'timeout' | 'headers'
> {
  readonly node?: string;
  readonly dialect?: Dialect;
  /** Parameter kinds when a JS value is ambiguous (e.g. a whole number for a `double`). */
  readonly kinds?: Readonly<Record<string, ParameterKind>>;
}

interface PendingRead {
  readonly agent: string;
  readonly fields: FieldSample[];
  readonly errors: ReadoutError[];
  resolve(r: Readout): void;
  reject(e: Error): void;
}

interface Held {
  readonly observation: Observation;
  readonly family: NamespaceFamily;
  readonly codec: DialectCodec;
  readonly request: SubscribeRequest;
  readonly renewEvery: number;
  renewTimer: { cancel(): void } | undefined;
  /** An event split over several messages, gathered until its last part (bounded like a readout). */
  partial: { fields: FieldSample[]; errors: ReadoutError[] } | undefined;
}

const DEFAULT_RENEW = 5 * 60_000;
/** Readout errors kept per readout or split event (a peer's report parts each add some). */
const MAX_ERRORS = 64;

export class IotClient implements SessionUnit, AsyncDisposable {
  readonly name = 'iot-client';
  readonly session: Session;
  readonly roster: Roster;
  readonly #dialect: Dialect;
  readonly #messenger: Messenger | undefined;
  readonly #timeout: number;
  readonly #agentResource: string | undefined;
  readonly #limits: Required<IotClientLimits>;
  readonly #reads = new Map<string, PendingRead>();
  readonly #observations = new Map<string, Held>();
  #seq = 0;
  #off: (() => void)[] = [];
  #closed = false;
  #started: Promise<void> | undefined;
  #removeUnit: (() => void) | undefined;
  #wasOffline = false;

  constructor(options: IotClientOptions) {
    if (!options?.session) throw new ConfigError('IotClient needs a session');
    const dialect = options.dialect ?? 'nf';
    if (dialect !== 'nf' && dialect !== 'legacy') throw new ConfigError(`unknown dialect ${String(dialect)}`);
    this.session = options.session;
    this.#dialect = dialect;
    this.#messenger = options.messenger;
    this.#timeout = options.timeout ?? 30_000;
    this.#agentResource = options.agentResource;
    this.#limits = {
      pendingReads: options.limits?.pendingReads ?? 256,
      observations: options.limits?.observations ?? 1000,
      fieldsPerReadout: options.limits?.fieldsPerReadout ?? 10_000,
    };
    const approve = options.approve;
    this.roster = new Roster({
      session: this.session,
      load: options.roster ?? this.session.address.includes('@'),
      policy: (jid) => (approve?.(jid) ? 'approve' : 'deny'),
    });
  }

  /** Listens for reports and presence; loads the roster on a client session. Idempotent. */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new ConfigError('client is closed'));
    this.#removeUnit ??= this.session.add(this);
    // The session starts its units itself (this method again): never await it from inside that.
    if (this.session.status === 'idle') return this.session.start(options);
    this.#started ??= this.#start(options);
    return this.#started;
  }

  async #start(options: WaitOptions): Promise<void> {
    this.#off.push(
      this.session.onMessage((m) => this.#onMessage(m)),
      this.roster.onPresence((p) => this.#onAgentPresence(p)),
      this.session.onTransportStatus((status) => {
        if (status === 'reconnecting') this.#wasOffline = true;
        else if (status === 'online' && this.#wasOffline) {
          this.#wasOffline = false;
          void this.#announce()
            .catch(() => undefined)
            .then(() => this.#restore());
        }
      }),
    );
    await this.roster.start(options);
    await this.#announce();
  }

  /** A client session announces itself (again after a reconnect) so it sees its agents' presence. */
  async #announce(): Promise<void> {
    if (this.session.address.includes('@')) await this.session.send(xml('presence'));
  }

  /** Asks an agent for a presence subscription (its approval, mutual, makes it answer us). */
  befriend(agent: string): Promise<void> {
    return this.roster.subscribe(agent);
  }

  unfriend(agent: string): Promise<void> {
    return this.roster.unsubscribe(agent);
  }

  /** Presence changes of peers (agents). Returns the remover. */
  onPresence(listener: (change: PresenceChange) => void): () => void {
    return this.roster.onPresence(listener);
  }

  /** Latest presence of an agent's resources that are online (empty when offline). */
  presenceOf(agent: string): PresenceChange[] {
    const bare = bareJid(agent);
    return this.roster.online.filter((p) => bareJid(p.jid) === bare);
  }

  /** Reads an agent (momentary values by default, or a historical range). */
  async read(agentJid: string, options: ReadOptions = {}): Promise<Readout> {
    await this.start();
    const agent = this.#fullJid(agentJid);
    if (this.#reads.size >= this.#limits.pendingReads)
      throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'too many readouts in progress' });
    const dialect = options.dialect ?? this.#dialect;
    const family = FAMILY[dialect];
    const codec = codecFor(dialect);
    const id = this.#nextId(dialect);
    let categories = categoryMask(options.categories, 0);
    if (options.momentary ?? options.historical === undefined) categories |= CAT.momentary;
    if (options.historical) categories |= CAT.historical;
    const request = {
      id,
      categories: categories === 0 ? CAT_ALL : categories,
      from: toMs(options.historical?.from),
      to: toMs(options.historical?.to),
      nodes: options.nodes,
      fields: options.fields,
    };
    const done = new Promise<Readout>((resolve, reject) =>
      this.#reads.set(id, { agent, fields: [], errors: [], resolve, reject }),
    );
    done.catch(() => undefined);
    const wait = { signal: options.signal, timeout: options.timeout ?? this.#timeout };
    try {
      const result = await this.session.caller.request(
        xml('iq', { type: 'get', to: agent }, codec.buildRead(family, id, request)),
        wait,
      );
      const payload = result.children.find((c): c is Element => typeof c !== 'string');
      if (payload) this.#onReport(payload, result.attrs['from'] ?? agent);
      return await withAbort(done, wait);
    } finally {
      this.#reads.delete(id);
    }
  }

  /** Subscribes to an agent's changes. Resolves once the agent accepted the subscription. */
  async observe(agentJid: string, options: ObserveOptions = {}): Promise<Observation> {
    await this.start();
    const agent = this.#fullJid(agentJid);
    if (this.#observations.size >= this.#limits.observations)
      throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'too many observations' });
    const dialect = options.dialect ?? this.#dialect;
    const id = this.#nextId(dialect);
    const request: SubscribeRequest = {
      id,
      categories: CAT.momentary,
      nodes: options.nodes,
      fields: options.rules?.map((r) => r.field),
      rules: options.rules,
      minInterval: options.minInterval,
      maxInterval: options.maxInterval,
      maxAge: options.maxAge,
      immediate: options.immediate ?? true,
    };
    const observation = new Observation(id, agent, this.#observationControl, options.bufferSize ?? 1000);
    if (options.onEvent) observation.on(options.onEvent);
    const held: Held = {
      observation,
      family: FAMILY[dialect],
      codec: codecFor(dialect),
      request,
      renewEvery: options.renewEvery ?? DEFAULT_RENEW,
      renewTimer: undefined,
      partial: undefined,
    };
    this.#observations.set(id, held);
    try {
      await this.#subscribe(held, request.immediate, options);
    } catch (err) {
      this.#observations.delete(id);
      observation.end();
      throw err;
    }
    this.#scheduleRenew(held);
    return observation;
  }

  /** Observations held now. */
  get observations(): number {
    return this.#observations.size;
  }

  /** Readouts waiting for messages now. */
  get pendingReads(): number {
    return this.#reads.size;
  }

  /** Whether `sendCommand` can queue commands (the client has a messenger). */
  get canQueue(): boolean {
    return this.#messenger !== undefined;
  }

  /**
   * Sets control parameters. As an IQ (default) it resolves when the agent applied them and
   * rejects with the agent's StanzaError (`bad-request`/`item-not-found` with a `paramError`
   * naming the parameter, or `forbidden`); `asMessage` sends and forgets.
   */
  async control(
    agentJid: string,
    values: ControlValues,
    options: ControlOptions & { kinds?: Readonly<Record<string, ParameterKind>> } = {},
  ): Promise<void> {
    await this.start();
    const agent = this.#fullJid(agentJid);
    const dialect = options.dialect ?? this.#dialect;
    const set = this.#controlElement(dialect, values, options.node, options.kinds);
    if (options.asMessage) {
      await this.session.send(xml('message', { to: agent, type: 'normal' }, set), { signal: options.signal });
      return;
    }
    await this.session.caller.request(xml('iq', { type: 'set', to: agent }, set), {
      signal: options.signal,
      timeout: options.timeout ?? this.#timeout,
    });
  }

  /**
   * Sends a control command through the messenger's outbox (QoS 1/2 by default 2), so it reaches
   * an agent that is offline now when it logs in; it is dead-lettered once `ttl` passes. QoS 1/2
   * travel in IQs, which need a full JID: a bare JID is resolved to the resource last seen
   * online, else to `agentResource`.
   */
  async sendCommand(agent: string, values: ControlValues, options: CommandOptions = {}): Promise<void> {
    const messenger = this.#messenger;
    if (!messenger) throw new ConfigError('sendCommand needs a messenger (new IotClient({ messenger }))');
    const to = this.#fullJid(agent);
    const dialect = options.dialect ?? this.#dialect;
    const set = this.#controlElement(dialect, values, options.node, options.kinds);
    const contract = rawPayload({ ns: FAMILY[dialect].ctr, name: 'set' });
    const { node: _node, dialect: _dialect, kinds: _kinds, ...send } = options;
    await messenger.send(contract, to, set, { qos: 2, ...send });
  }

  /**
   * Seconds since an offline agent was last seen (XEP-0012 `jabber:iq:last`, answered by the
   * server for accounts whose presence we are subscribed to); undefined when it is online.
   */
  async lastSeen(agent: string, options: WaitOptions = {}): Promise<{ seconds: number; status?: string } | undefined> {
    const result = await this.session.caller.request(
      xml('iq', { type: 'get', to: bareJid(agent) }, xml('query', { xmlns: NS_LAST })),
      { signal: options.signal, timeout: options.timeout ?? this.#timeout },
    );
    const q = findChild(result, 'query');
    const seconds = Number(q?.attrs['seconds']);
    if (!q || !Number.isFinite(seconds)) return undefined;
    const status = q.getText();
    return status ? { seconds, status } : { seconds };
  }

  async drain(options: WaitOptions = {}): Promise<void> {
    void options;
  }

  /** Ends every observation (unsubscribing while the link is up) and fails pending readouts. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const online = this.session.transport.status === 'online';
    for (const held of [...this.#observations.values()]) {
      held.renewTimer?.cancel();
      held.observation.end();
      if (online)
        await this.session
          .send(
            xml(
              'iq',
              { type: 'set', to: held.observation.agent, id: randomId() },
              held.codec.buildUnsubscribe(held.family, held.observation.id),
            ),
          )
          .catch(() => undefined);
    }
    this.#observations.clear();
    for (const r of this.#reads.values()) r.reject(new ConfigError('client closed'));
    this.#reads.clear();
    for (const off of this.#off) off();
    this.#off = [];
    this.#removeUnit?.();
    this.roster.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  readonly #observationControl: ObservationControl = {
    renew: async (o) => {
      const held = this.#observations.get(o.id);
      if (!held) throw new ConfigError('observation was cancelled');
      await this.#subscribe(held, false, {});
      this.#scheduleRenew(held);
    },
    cancel: async (o) => {
      const held = this.#observations.get(o.id);
      if (!held) return;
      this.#observations.delete(o.id);
      held.renewTimer?.cancel();
      await this.session.caller
        .request(xml('iq', { type: 'set', to: o.agent }, held.codec.buildUnsubscribe(held.family, o.id)), {
          timeout: this.#timeout,
        })
        .catch(() => undefined); // the agent forgets it at its ttl anyway
    },
  };

  async #subscribe(held: Held, immediate: boolean, wait: WaitOptions): Promise<void> {
    const el = held.codec.buildSubscribe(held.family, held.observation.id, { ...held.request, immediate });
    await this.session.caller.request(xml('iq', { type: 'get', to: held.observation.agent }, el), {
      signal: wait.signal,
      timeout: wait.timeout ?? this.#timeout,
    });
  }

  #scheduleRenew(held: Held): void {
    held.renewTimer?.cancel();
    held.renewTimer = this.session.clock.setTimeout(() => {
      held.renewTimer = undefined;
      if (held.observation.closed) return;
      held.observation.renew().catch(() => this.#scheduleRenew(held));
    }, held.renewEvery);
  }

  /** After a reconnect (ours or the agent's): subscribe again, with the current values at once. */
  async #restore(agent?: string): Promise<void> {
    for (const held of [...this.#observations.values()]) {
      const bare = bareJid(held.observation.agent);
      if (agent !== undefined && bare !== agent) continue;
      // An agent not back yet is subscribed again when its available presence arrives.
      await this.#subscribe(held, true, {}).catch(() => this.#seenOffline.add(bare));
    }
  }

  #onAgentPresence(p: PresenceChange): void {
    // An agent that comes back may have restarted and forgotten our subscriptions.
    if (p.availability !== 'unavailable' && !this.#closed) {
      const bare = bareJid(p.jid);
      if (this.#seenOffline.delete(bare)) void this.#restore(bare);
    } else if (this.#observes(bareJid(p.jid))) this.#seenOffline.add(bareJid(p.jid)); // bounded by the observations
  }

  #observes(bare: string): boolean {
    for (const held of this.#observations.values()) if (bareJid(held.observation.agent) === bare) return true;
    return false;
  }

  readonly #seenOffline = new Set<string>();

  #onMessage(m: Element): void {
    if (m.attrs['type'] === 'error') return;
    const from = m.attrs['from'];
    if (typeof from !== 'string') return;
    for (const c of m.children) if (typeof c !== 'string' && familyOf(c.attrs['xmlns'])) this.#onReport(c, from);
  }

  #onReport(el: Element, from: string): void {
    const family = familyOf(el.attrs['xmlns']);
    if (!family) return;
    const codec = codecFor(family.dialect);
    const name = localName(el);
    if (name === 'accepted' || name === 'started') return;
    const report = codec.parseReport(el, this.#limits.fieldsPerReadout);
    if (!report) return;
    const read = this.#reads.get(report.id);
    if (read && sameAgent(read.agent, from)) {
      const room = this.#limits.fieldsPerReadout - read.fields.length;
      read.fields.push(...report.fields.slice(0, Math.max(0, room)));
      read.errors.push(...report.errors.slice(0, Math.max(0, MAX_ERRORS - read.errors.length)));
      if (report.done) read.resolve({ agent: from, fields: read.fields, errors: read.errors });
      return;
    }
    const held = this.#observations.get(report.id);
    if (!held || !sameAgent(held.observation.agent, from)) return;
    let { fields, errors } = report;
    if (held.partial || !report.done) {
      const p = (held.partial ??= { fields: [], errors: [] });
      p.fields.push(...fields.slice(0, Math.max(0, this.#limits.fieldsPerReadout - p.fields.length)));
      p.errors.push(...errors.slice(0, Math.max(0, MAX_ERRORS - p.errors.length)));
      if (!report.done) return;
      ({ fields, errors } = p);
      held.partial = undefined;
    }
    held.observation.push({ agent: from, subscription: report.id, fields, errors });
  }

  #controlElement(
    dialect: Dialect,
    values: ControlValues,
    node: string | undefined,
    kinds: Readonly<Record<string, ParameterKind>> | undefined,
  ): Element {
    const operations: ControlOperation[] = [];
    for (const [name, value] of Object.entries(values)) {
      if (typeof value !== 'number' && typeof value !== 'boolean' && typeof value !== 'string')
        throw new ConfigError(`parameter ${name}: unsupported value`);
      operations.push({ name, kind: kinds?.[name] ?? kindOfValue(value), raw: formatParameter(value) });
    }
    if (operations.length === 0) throw new ConfigError('no parameter to set');
    return codecFor(dialect).buildControl(
      FAMILY[dialect],
      node === undefined ? { operations } : { nodes: [node], operations },
    );
  }

  #fullJid(agent: string): string {
    if (agent !== bareJid(agent)) return agent;
    const online = this.presenceOf(agent)[0];
    if (online) return online.jid;
    if (this.#agentResource !== undefined) return `${agent}/${this.#agentResource}`;
    // An IQ to a bare JID is answered by the server, never routed to the agent.
    throw new ServiceUnavailableError({
      condition: 'service-unavailable',
      text: `${agent} is not online (address a full JID, or set agentResource)`,
    });
  }

  #nextId(dialect: Dialect): string {
    // XEP-0323's seqnr is an xs:int; the deployed id is any string.
    return dialect === 'legacy' ? String(++this.#seq) : randomId();
  }
}

function codecFor(dialect: Dialect): DialectCodec {
  return dialect === 'nf' ? NF_CODEC : LEGACY_CODEC;
}

function toMs(t: number | Date | undefined): number | undefined {
  return t === undefined ? undefined : typeof t === 'number' ? t : t.getTime();
}

/** A report belongs to a request when it comes from the agent asked (any resource of a bare JID). */
function sameAgent(asked: string, from: string): boolean {
  return asked === bareJid(asked) ? jidEquals(bareJid(from), asked) : jidEquals(from, asked);
}
