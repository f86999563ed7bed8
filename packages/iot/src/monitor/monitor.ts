import {
  ConfigError,
  XmppBusError,
  bareJid,
  RetryPolicy,
  silentLogger,
  type Clock,
  type Logger,
  type Session,
  type SessionUnit,
  type TimerHandle,
  type WaitOptions,
} from '@xmppbus/core';
import { IotClient } from '../client/iot-client.js';
import type { Observation } from '../client/observation.js';
import type { CommandOptions } from '../client/iot-client.js';
import type { FieldSample, ObserveEvent, ObserveOptions, PresenceChange } from '../types.js';
import { AlertEvent, alertEventPayload, type AlertPublisher } from './alert-event.js';
import { AlertEngine, type AlertRule, type AlertTransition } from './alerts.js';
import { CommandTracker } from './commands.js';
import type {
  AgentPresence,
  AlertView,
  ControlOutcome,
  ControlView,
  FleetEvent,
  FleetSnapshot,
  FleetSource,
  FleetValue,
} from './fleet.js';
import { FleetState } from './fleet-state.js';
import { LastSeenQueue } from './last-seen.js';

/** An agent the monitor watches whether or not it is on the roster. */
export interface MonitoredAgent {
  /** Bare JID. */
  jid: string;
  /** Display name (default: the JID's local part). */
  name?: string;
  /** Observe options for this agent (default: the monitor's `observe`). */
  observe?: ObserveOptions;
  /** Parameters to offer as controls, besides the fields the agent marks writable. */
  controls?: readonly ControlView[];
}

export interface MonitorOptions {
  /** The monitor's c2s session (agents answer only roster contacts: the monitor is an account). */
  session: Session;
  /**
   * The IoT client to read, observe and control with (default: one made on `session`). Pass your
   * own to share it, e.g. one with a `messenger` for QoS commands to offline agents.
   */
  client?: IotClient;
  /** Agents to watch from the start. */
  agents?: readonly (string | MonitoredAgent)[];
  /**
   * Also watch roster contacts and whoever sends presence (default true). A function decides per
   * bare JID (e.g. by domain).
   */
  discover?: boolean | ((jid: string) => boolean);
  /** Subscribe to configured agents' presence at start (default true; owners are auto-approved). */
  subscribe?: boolean;
  /** Observe options of every agent (default: all fields, any change, current values at once). */
  observe?: ObserveOptions;
  /** Alert rules (default none). */
  alerts?: readonly AlertRule[];
  /**
   * Publish alert raised/cleared events (`AlertEvent`) to this pub/sub node. `pubsub` is a
   * `PubSub` of `@xmppbus/pubsub` (on this session or another one).
   */
  publishAlerts?: { pubsub: AlertPublisher; node: string };
  /** Points of history per field (default 240). */
  historySize?: number;
  /** Agents tracked at most (default 10 000). */
  maxAgents?: number;
  /** Fields per agent (default 64). */
  maxFieldsPerAgent?: number;
  /** Bound of each observe/control request, ms (default 10 000). */
  timeout?: number;
  /**
   * Last-activity (XEP-0012) questions to the server in flight at most (default 4). The monitor
   * asks once about each agent it finds offline when it starts or discovers it.
   */
  lastSeenConcurrency?: number;
  /**
   * How long a command to an offline agent may wait in the outbox (default '1h'; needs a client
   * with a `messenger`). Past it the command is dead-lettered, never applied late.
   */
  commandTtl?: CommandOptions['ttl'];
  /** Commands queued for offline agents tracked at once (default 1 000). */
  maxQueuedCommands?: number;
  /** Times alerts (stale, offline grace) and history (default: the session's clock). */
  clock?: Clock;
  logger?: Logger;
}

export type MonitorStatus = 'idle' | 'starting' | 'running' | 'draining' | 'closed';

/** A value the monitor received (from an observe event or a readout). */
export interface MonitorValue {
  readonly agent: string;
  readonly field: string;
  readonly value: FleetValue;
  readonly unit?: string | undefined;
  readonly timestamp: number;
  /** The sample as the agent sent it. */
  readonly sample: FieldSample;
}

export interface MonitorPresence {
  readonly agent: string;
  readonly presence: AgentPresence;
  readonly at: number;
}

/** Counters for summaries and health checks. */
export interface MonitorStats {
  agents: number;
  online: number;
  /** Observe events received. */
  notifications: number;
  /** Field values received. */
  values: number;
  alertsRaised: number;
  alertsCleared: number;
  commandsSent: number;
  commandsFailed: number;
  /** Commands queued for offline agents, and those of them delivered. */
  commandsQueued: number;
  commandsDelivered: number;
  alertPublishFailures: number;
  /** Last-activity questions sent to the server. */
  lastSeenQueries: number;
}

type Listener<T> = (value: T) => void;

function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`monitor: ${name} must be an integer >= 1`);
  return v;
}

/**
 * Watches a fleet of agents: finds them (configured list, roster, presence), observes their
 * fields, keeps a bounded history per field, evaluates alert rules (thresholds with hysteresis,
 * stale data, offline) and publishes alert events. A typed in-process API (`onValue`,
 * `onAlert`, `onPresence`, `snapshot`) feeds dashboards; `control()` sends commands.
 *
 * A unit of its session: `session.add(monitor)` starts and closes it with the session.
 */
export class Monitor implements FleetSource, SessionUnit, AsyncDisposable {
  readonly name = 'iot-monitor';
  readonly #session: Session;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #options: MonitorOptions;
  readonly #timeout: number;
  readonly #state: FleetState;
  readonly #alerts: AlertEngine;
  readonly #client: IotClient;
  readonly #ownClient: boolean;
  /** Agent (bare JID) → its observation, or the attempt in flight. */
  readonly #observations = new Map<string, Promise<Observation | undefined>>();
  /** Agents whose observe failed (e.g. trust not mutual yet): the next try, and how many so far. */
  readonly #retries = new Map<string, { timer: TimerHandle | undefined; attempts: number }>();
  readonly #retryPolicy = new RetryPolicy({ initialDelay: 500, maxDelay: 30_000, factor: 2, jitter: 0 });
  readonly #configured = new Map<string, MonitoredAgent>();
  readonly #valueListeners = new Set<Listener<MonitorValue>>();
  readonly #alertListeners = new Set<Listener<AlertTransition>>();
  readonly #presenceListeners = new Set<Listener<MonitorPresence>>();
  readonly #fleetListeners = new Set<Listener<FleetEvent>>();
  readonly #detach: (() => void)[] = [];
  readonly #lastSeen: LastSeenQueue;
  readonly #commands: CommandTracker;
  #status: MonitorStatus = 'idle';
  #publishing: Promise<unknown> = Promise.resolve();
  readonly stats: MonitorStats = {
    agents: 0,
    online: 0,
    notifications: 0,
    values: 0,
    alertsRaised: 0,
    alertsCleared: 0,
    commandsSent: 0,
    commandsFailed: 0,
    commandsQueued: 0,
    commandsDelivered: 0,
    alertPublishFailures: 0,
    lastSeenQueries: 0,
  };

  constructor(options: MonitorOptions) {
    if (!options?.session) throw new ConfigError('monitor: session is required');
    this.#options = options;
    this.#session = options.session;
    this.#clock = options.clock ?? options.session.clock;
    this.#logger = options.logger ?? options.session.logger ?? silentLogger;
    this.#timeout = positive('timeout', options.timeout, 10_000);
    this.#state = new FleetState({
      historySize: positive('historySize', options.historySize, 240),
      maxAgents: positive('maxAgents', options.maxAgents, 10_000),
      maxFieldsPerAgent: positive('maxFieldsPerAgent', options.maxFieldsPerAgent, 64),
    });
    const names = new Set<string>();
    for (const rule of options.alerts ?? []) {
      if (!rule.name || rule.name.includes('/') || names.has(rule.name))
        throw new ConfigError(`monitor: alert rule names must be unique and free of '/' (${rule.name})`);
      names.add(rule.name);
      if (rule.kind === 'stale') positive(`alert ${rule.name} maxInterval`, rule.maxInterval, 1);
    }
    this.#alerts = new AlertEngine({ rules: options.alerts ?? [], clock: this.#clock, emit: (t) => this.#onAlert(t) });
    this.#lastSeen = new LastSeenQueue({
      concurrency: positive('lastSeenConcurrency', options.lastSeenConcurrency, 4),
      wanted: (jid) =>
        this.#status === 'running' &&
        this.#state.presence(jid) === 'offline' &&
        this.#client.presenceOf(jid).length === 0,
      ask: (jid) => this.#askLastSeen(jid),
    });
    const ttl = options.commandTtl ?? '1h';
    this.#commands = new CommandTracker({
      max: positive('maxQueuedCommands', options.maxQueuedCommands, 1000),
      // QoS 1/2 need a full JID: the resource the agent was last seen online with.
      send: (jid, parameter, value, id) =>
        this.#client.sendCommand(this.#state.address(jid) ?? jid, { [parameter]: value }, { qos: 2, ttl, id }),
      valueOf: (jid, field) => this.#state.value(jid, field),
      now: () => this.#clock.now(),
      emit: (command) => {
        if (command.state === 'queued') this.stats.commandsQueued++;
        else if (command.state === 'delivered') this.stats.commandsDelivered++;
        else this.stats.commandsFailed++;
        this.#emitFleet({ type: 'command', command });
      },
    });
    this.#ownClient = options.client === undefined;
    this.#client =
      options.client ??
      new IotClient({
        session: this.#session,
        timeout: this.#timeout,
        // Agents reciprocate our subscription request; approve theirs so trust is mutual.
        approve: (jid) => this.#discoverable(bareJid(jid)),
      });
    for (const a of options.agents ?? []) {
      const agent: MonitoredAgent = typeof a === 'string' ? { jid: a } : a;
      this.#configured.set(bareJid(agent.jid), { ...agent, jid: bareJid(agent.jid) });
    }
  }

  get status(): MonitorStatus {
    return this.#status;
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────

  /** The IoT client the monitor uses (read, observe, control, sendCommand, lastSeen). */
  get client(): IotClient {
    return this.#client;
  }

  async start(options: WaitOptions = {}): Promise<void> {
    if (this.#status !== 'idle') return;
    this.#status = 'starting';
    this.#detach.push(
      this.#client.onPresence((p) => this.#onPresenceChange(p)),
      this.#client.roster.onChange((item) => {
        const jid = bareJid(item.jid);
        if ((item.subscription === 'to' || item.subscription === 'both') && this.#discoverable(jid)) this.#track(jid);
        // Trust just became mutual: an observe the agent refused a moment ago is worth a new try.
        if (item.subscription === 'both' && this.#retries.has(jid)) this.#retryNow(jid);
      }),
    );
    await this.#client.start(options);
    for (const agent of this.#configured.values()) this.#track(agent.jid, agent.name);
    if (this.#options.discover ?? true) {
      for (const item of this.#client.roster.items)
        if ((item.subscription === 'to' || item.subscription === 'both') && this.#discoverable(item.jid))
          this.#track(bareJid(item.jid));
    }
    if (this.#options.subscribe ?? true) {
      for (const jid of this.#configured.keys()) {
        const sub = this.#client.roster.item(jid)?.subscription;
        if (sub !== 'both') await this.#client.befriend(jid);
      }
    }
    this.#status = 'running';
    // Agents already online get observed now; later ones when their presence arrives.
    for (const jid of this.#state.jids()) {
      this.#refreshPresence(jid);
      if (this.#state.presence(jid) !== 'offline') this.#observe(jid);
      else this.#lastSeen.request(jid);
    }
  }

  /** Stops observing (ends subscriptions at the agents) and waits for alert events in flight. */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining') return;
    this.#status = 'draining';
    void options;
    await Promise.all(
      [...this.#observations.values()].map(async (o) => {
        await (await o.catch(() => undefined))?.cancel().catch(() => undefined);
      }),
    );
    this.#observations.clear();
    await this.#publishing;
  }

  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    this.#status = 'closed';
    for (const d of this.#detach.splice(0)) d();
    this.#alerts.close();
    this.#lastSeen.close();
    this.#commands.close();
    for (const r of this.#retries.values()) r.timer?.cancel();
    this.#retries.clear();
    for (const o of this.#observations.values()) void o.then((x) => x?.cancel()).catch(() => undefined);
    this.#observations.clear();
    if (this.#ownClient) await this.#client.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.drain({ timeout: this.#timeout });
    await this.close();
  }

  // ── typed in-process API ───────────────────────────────────────────────────────────────

  onValue(listener: Listener<MonitorValue>): () => void {
    this.#valueListeners.add(listener);
    return () => void this.#valueListeners.delete(listener);
  }

  onAlert(listener: Listener<AlertTransition>): () => void {
    this.#alertListeners.add(listener);
    return () => void this.#alertListeners.delete(listener);
  }

  onPresence(listener: Listener<MonitorPresence>): () => void {
    this.#presenceListeners.add(listener);
    return () => void this.#presenceListeners.delete(listener);
  }

  /** Every change as a `FleetEvent` (what the dashboard streams). */
  subscribe(listener: Listener<FleetEvent>): () => void {
    this.#fleetListeners.add(listener);
    return () => void this.#fleetListeners.delete(listener);
  }

  snapshot(): FleetSnapshot {
    const commands = this.#commands.views();
    return { at: this.#clock.now(), agents: this.#state.views(), alerts: this.#alerts.active(), commands };
  }

  activeAlerts(): AlertView[] {
    return this.#alerts.active();
  }

  /** The latest value of a field, if any. */
  value(agent: string, field: string): FleetValue | undefined {
    return this.#state.value(bareJid(agent), field);
  }

  /** Starts watching an agent (and asks for its presence). */
  async watch(agent: string | MonitoredAgent): Promise<void> {
    const a: MonitoredAgent = typeof agent === 'string' ? { jid: agent } : agent;
    const jid = bareJid(a.jid);
    this.#configured.set(jid, { ...a, jid });
    if (!this.#track(jid, a.name)) throw new XmppBusError('ERR_QUEUE_FULL', `monitor: maxAgents reached`);
    if (this.#client.roster.item(jid)?.subscription !== 'both') await this.#client.befriend(jid);
    this.#refreshPresence(jid);
    if (this.#state.presence(jid) !== 'offline') this.#observe(jid);
  }

  /**
   * Sets a parameter on an agent. Online: control as an IQ, resolving `applied` when the agent
   * accepted it and rejecting with its typed error. Offline, with a client that has a messenger:
   * a QoS 2 command with `commandTtl`, resolving `queued` at once; its progress comes as
   * `command` fleet events (delivered when the agent took it and reported the value).
   */
  async control(
    agent: string,
    parameter: string,
    value: FleetValue,
    options: { signal?: AbortSignal; timeout?: number } = {},
  ): Promise<ControlOutcome> {
    const jid = bareJid(agent);
    if (this.#state.presence(jid) === 'offline' && this.#client.canQueue)
      return this.#commands.queue(jid, parameter, value);
    try {
      await this.#client.control(jid, { [parameter]: value }, { timeout: this.#timeout, ...options });
      this.stats.commandsSent++;
      this.#emitFleet({ type: 'control', agent: jid, parameter, value, ok: true });
      return { state: 'applied' };
    } catch (err) {
      this.stats.commandsFailed++;
      this.#emitFleet({ type: 'control', agent: jid, parameter, value, ok: false, error: (err as Error).message });
      throw err;
    }
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────

  #discoverable(jid: string): boolean {
    if (jid === bareJid(this.#session.address) || !jid.includes('@')) return false;
    if (this.#configured.has(jid)) return true;
    const d = this.#options.discover ?? true;
    return typeof d === 'function' ? d(jid) : d;
  }

  /** Adds an agent to the fleet (once); returns whether it is tracked. */
  #track(jid: string, name?: string): boolean {
    if (this.#state.has(jid)) return true;
    if (!this.#state.add(jid, name ?? this.#configured.get(jid)?.name)) return false;
    const controls = this.#configured.get(jid)?.controls;
    if (controls) this.#state.setControls(jid, controls);
    this.stats.agents = this.#state.size;
    const view = this.#state.view(jid);
    if (view) this.#emitFleet({ type: 'agent', agent: view });
    // Found while running and not online (not found by its presence): the server may know when it was last seen.
    if (this.#status === 'running' && this.#client.presenceOf(jid).length === 0) this.#lastSeen.request(jid);
    return true;
  }

  #observe(jid: string): void {
    if (this.#status !== 'running' || this.#observations.has(jid)) return;
    const options = this.#configured.get(jid)?.observe ?? this.#options.observe ?? {};
    // The client keeps an observation alive (renewals, re-subscribing when the agent is back):
    // one per agent for the monitor's lifetime.
    const attempt = this.#client.observe(jid, { bufferSize: 256, ...options }).then(
      (o) => {
        this.#retries.get(jid)?.timer?.cancel();
        this.#retries.delete(jid);
        if (this.#status === 'closed') void o.cancel().catch(() => undefined);
        // The iterator, not a listener: the first event (current values) can arrive with the
        // subscription's answer, before a listener could be attached; the iterator buffers it.
        else void this.#consume(o);
        return o;
      },
      (err: unknown) => {
        this.#observations.delete(jid);
        this.#logger.debug(`monitor: observing ${jid} failed: ${(err as Error).message}`);
        this.#scheduleRetry(jid);
        return undefined;
      },
    );
    this.#observations.set(jid, attempt);
  }

  async #consume(o: Observation): Promise<void> {
    try {
      for await (const e of o) this.#onObserve(e);
    } catch (err) {
      this.#logger.warn(`monitor: observation of ${o.agent} ended: ${(err as Error).message}`);
    }
  }

  /**
   * Tries again with backoff (0.5 s doubling to 30 s) while the agent is online: right after a
   * subscription is approved the agent may not have seen the mutual roster state yet, and
   * answers `forbidden` for a moment.
   */
  #scheduleRetry(jid: string): void {
    if (this.#status !== 'running' || this.#state.presence(jid) === 'offline') return;
    const r = this.#retries.get(jid) ?? { timer: undefined, attempts: 0 };
    r.timer?.cancel();
    const delay = this.#retryPolicy.delay(r.attempts++);
    // Network pacing, so the session's clock (the monitor's `clock` times alerts and history).
    r.timer = this.#session.clock.setTimeout(() => this.#retryNow(jid), delay);
    this.#retries.set(jid, r);
  }

  #retryNow(jid: string): void {
    const r = this.#retries.get(jid);
    if (r) {
      r.timer?.cancel();
      r.timer = undefined;
    }
    if (this.#state.presence(jid) !== 'offline') this.#observe(jid);
  }

  /** Server-side last activity (XEP-0012) of an offline agent, where the server offers it. */
  async #askLastSeen(jid: string): Promise<void> {
    this.stats.lastSeenQueries++;
    try {
      const last = await this.#client.lastSeen(jid, { timeout: this.#timeout });
      if (!last || this.#status !== 'running') return;
      // Ignored if the agent came online meanwhile (the monitor's own sighting is newer).
      if (!this.#state.setServerLastSeen(jid, this.#clock.now() - last.seconds * 1000)) return;
      const view = this.#state.view(jid);
      if (view) this.#emitFleet({ type: 'agent', agent: view });
    } catch (err) {
      // Not offered by this server, or not allowed: last seen stays unknown.
      this.#logger.debug(`monitor: last activity of ${jid}: ${(err as Error).message}`);
    }
  }

  #onPresenceChange(p: PresenceChange): void {
    const jid = bareJid(p.jid);
    if (jid === bareJid(this.#session.address)) return;
    if (!this.#state.has(jid)) {
      if (p.availability === 'unavailable' || !this.#discoverable(jid) || !this.#track(jid)) return;
    }
    if (p.availability !== 'unavailable' && p.jid !== jid) this.#state.setAddress(jid, p.jid);
    this.#refreshPresence(jid, p.at);
  }

  /** Presence of an agent over all its resources: any available → online, only away ones → away. */
  #refreshPresence(jid: string, at = this.#clock.now()): void {
    const resources = this.#client.presenceOf(jid);
    const presence: AgentPresence =
      resources.length === 0
        ? 'offline'
        : resources.some((r) => r.availability === 'available' || r.availability === 'chat')
          ? 'online'
          : 'away';
    const was = this.#state.presence(jid);
    if (!this.#state.setPresence(jid, presence, at)) return;
    this.stats.online += (presence !== 'offline' ? 1 : 0) - (was !== 'offline' ? 1 : 0);
    const event: MonitorPresence = { agent: jid, presence, at };
    for (const l of this.#presenceListeners) l(event);
    this.#emitFleet({ type: 'presence', agent: jid, presence, lastSeen: at });
    this.#alerts.onPresence(jid, presence);
    if (presence !== 'offline') this.#observe(jid);
  }

  #onObserve(e: ObserveEvent): void {
    const jid = bareJid(e.agent);
    if (!this.#state.has(jid)) return;
    this.stats.notifications++;
    const at = this.#clock.now();
    let controlsChanged = false;
    for (const f of e.fields) {
      if (f.node !== undefined && f.node !== '') continue; // concentrator nodes: not shown here
      if (!this.#state.setValue(jid, f.name, f.value, f.unit, f.timestamp, at)) {
        // A repeated sample (a heartbeat) is not news, but it proves the field is not stale.
        if (this.#state.value(jid, f.name) !== undefined) this.#alerts.onValue(jid, f.name, f.value, f.unit);
        continue;
      }
      this.stats.values++;
      this.#commands.onValue(jid, f.name, f.value);
      if (f.writable && this.#state.learnControl(jid, f)) controlsChanged = true;
      const value: MonitorValue = {
        agent: jid,
        field: f.name,
        value: f.value,
        unit: f.unit,
        timestamp: f.timestamp,
        sample: f,
      };
      for (const l of this.#valueListeners) l(value);
      this.#emitFleet({
        type: 'value',
        agent: jid,
        field: f.name,
        value: f.value,
        unit: f.unit,
        timestamp: f.timestamp,
      });
      this.#alerts.onValue(jid, f.name, f.value, f.unit);
    }
    if (controlsChanged) {
      const view = this.#state.view(jid);
      if (view) this.#emitFleet({ type: 'agent', agent: view });
    }
  }

  #onAlert(t: AlertTransition): void {
    if (t.state === 'raised') this.stats.alertsRaised++;
    else this.stats.alertsCleared++;
    for (const l of this.#alertListeners) l(t);
    this.#emitFleet({ type: 'alert', state: t.state, alert: t.alert, at: t.at });
    const target = this.#options.publishAlerts;
    if (!target) return;
    const a = t.alert;
    // Published one after another, so the node sees raise and clear in order.
    this.#publishing = this.#publishing.then(() =>
      target.pubsub
        .publish(AlertEvent, target.node, alertEventPayload(t), { id: a.id, timeout: this.#timeout })
        .catch((err: unknown) => {
          this.stats.alertPublishFailures++;
          this.#logger.warn(`monitor: publishing alert ${a.id} failed: ${(err as Error).message}`);
        }),
    );
  }

  #emitFleet(e: FleetEvent): void {
    for (const l of this.#fleetListeners) {
      try {
        l(e);
      } catch (err) {
        this.#logger.error('monitor: a fleet listener threw', err);
      }
    }
  }
}
