/**
 * Client-side balancing over the instances of one service. An instance is any address that
 * serves the methods: usually its own component (`orders-1.example`, `orders-2.example`), which
 * works on every server — Prosody only routes configured component names and refuses a second
 * connection under one name, so it cannot balance for us; ejabberd can (several connections under
 * one name, IQs spread at random), and such a shared name is simply one more instance here.
 *
 * Liveness, without any server support beyond routing:
 * - call outcomes: an "unavailable" answer (Prosody `remote-server-timeout`, ejabberd `forbidden`
 *   or `remote-server-not-found`, `service-unavailable`) marks the instance down at once; a
 *   `<draining/>` refusal marks it draining;
 * - presence: the client sends `<presence><watch xmlns='urn:xmppbus:rpc:1'/></presence>` to each
 *   instance; an `RpcServer` answers with its state and sends `unavailable` when it drains;
 * - probes: XEP-0199 pings to instances marked down (with backoff), and to instances whose calls
 *   have been outstanding for a while (a dead instance never answers them).
 * Idempotent calls on an instance found dead are aborted and retried on another one; non-idempotent
 * calls are never retried (the first attempt may have had effects).
 */
import {
  ConfigError,
  fetchFeatures,
  NS_DISCO_ITEMS,
  NS_PING,
  RetryPolicy,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  abortReason,
  bareJid,
  childElements,
  firstChildElement,
  localName,
  randomId,
  toError,
  xml,
  type Clock,
  type Element,
  type Session,
  type TimerHandle,
  type WaitOptions,
} from '@xmppbus/core';
import type { MethodContract, RequestOf, ResponseOf } from '@xmppbus/schema';
import {
  CallEngine,
  checkSignal,
  isRetryable,
  type CallOptions,
  type CallerOptions,
  type CallerStatus,
} from './call.js';
import { NS_RPC, rpcDetail } from './wire.js';

export type Strategy = 'round-robin' | 'least-in-flight';

export interface DiscoverOptions {
  /** The server's domain, whose disco#items lists its components (e.g. `localhost`). */
  server: string;
  /** Which listed JIDs are instances of this service. */
  match: RegExp | ((jid: string) => boolean);
  /** Keep only instances whose disco#info lists this feature (e.g. the contract namespace). */
  feature?: string;
  /** Timeout of each disco query, ms (default 2 000). */
  timeout?: number;
}

/** One instance JID, several, or a discovery spec (refreshed every `rediscoverInterval`). */
export type ServiceTarget = string | readonly string[] | { discover: DiscoverOptions };

export interface ServiceClientOptions extends CallerOptions {
  /** The instances: one JID, several, or a discovery spec (refreshed every `rediscoverInterval`). */
  target: ServiceTarget;
  /** How to choose among live instances (default `least-in-flight`). */
  strategy?: Strategy;
  /** Health-check period, ms (default 1 000): probes down instances and calls outstanding this long. */
  probeInterval?: number;
  /** Timeout of one probe, ms (default 2 000); no answer marks the instance down. */
  probeTimeout?: number;
  /** Watch instances through presence (default true). */
  watchPresence?: boolean;
  /** With a discovery target: re-run discovery every N ms (default 30 000; 0 = once). */
  rediscoverInterval?: number;
}

export type InstanceState = 'up' | 'down' | 'draining';

/** A snapshot of one instance, for dashboards and tests. */
export interface InstanceInfo {
  readonly jid: string;
  readonly state: InstanceState;
  readonly inFlight: number;
}

interface Attempt {
  readonly started: number;
  readonly controller: AbortController | undefined;
}

interface Instance {
  readonly jid: string;
  state: InstanceState;
  inFlight: number;
  readonly attempts: Set<Attempt>;
  failures: number;
  nextProbe: number;
  lastProbe: number;
  probing: boolean;
  removed: boolean;
}

/**
 * Finds live instances through the server: disco#items of `server` (Prosody and ejabberd list
 * their components there), filtered by `match`, then disco#info of each (only connected ones
 * answer), filtered by `feature`. The session must be started.
 */
export async function discoverInstances(session: Session, options: DiscoverOptions): Promise<string[]> {
  const caller = session.caller;
  const timeout = options.timeout ?? 2000;
  const match = options.match;
  const test = typeof match === 'function' ? match : (j: string): boolean => match.test(j);
  const iq = (to: string, ns: string): Element =>
    xml('iq', { type: 'get', to, from: session.address, id: randomId() }, xml('query', { xmlns: ns }));
  const items = await caller.request(iq(options.server, NS_DISCO_ITEMS), { timeout });
  const query = firstChildElement(items);
  const jids = query
    ? childElements(query)
        .filter((i) => localName(i) === 'item' && i.attrs['node'] === undefined)
        .map((i) => i.attrs['jid'])
        .filter((j): j is string => typeof j === 'string' && test(j))
    : [];
  const live = await Promise.all(
    [...new Set(jids)].map(async (jid) => {
      try {
        const features = await fetchFeatures(session, jid, { timeout });
        return options.feature === undefined || features.has(options.feature) ? jid : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  return live.filter((j): j is string => j !== undefined).sort();
}

/** Longest wait between probes of an instance that stays down, ms. */
const MAX_PROBE_BACKOFF = 30_000;

/** Balances calls over a service's instances. */
export class ServiceClient implements AsyncDisposable {
  readonly name = 'ServiceClient';
  readonly #engine: CallEngine;
  readonly #session: Session;
  readonly #clock: Clock;
  readonly #strategy: Strategy;
  readonly #probeInterval: number;
  readonly #probeTimeout: number;
  /** Delays between probes of a down instance (no jitter: each instance has its own schedule). */
  readonly #probeBackoff: RetryPolicy;
  readonly #watch: boolean;
  readonly #discover: DiscoverOptions | undefined;
  readonly #rediscoverEvery: number;
  #instances: Instance[] = [];
  readonly #byJid = new Map<string, Instance>();
  #cursor = 0;
  #status: CallerStatus = 'idle';
  #starting: Promise<void> | undefined;
  #tickTimer: TimerHandle | undefined;
  #rediscoverTimer: TimerHandle | undefined;
  #offStart: (() => void)[] = [];
  readonly #isClosed = (): boolean => this.#status === 'closed';

  /** Validates the options; sends nothing until `start()`. */
  constructor(options: ServiceClientOptions) {
    this.#engine = new CallEngine(options, 'ServiceClient');
    this.#session = options.session;
    this.#clock = options.session.clock;
    this.#strategy = options.strategy ?? 'least-in-flight';
    if (this.#strategy !== 'round-robin' && this.#strategy !== 'least-in-flight')
      throw new ConfigError(`ServiceClient: unknown strategy '${String(this.#strategy)}'`);
    this.#probeInterval = options.probeInterval ?? 1000;
    this.#probeTimeout = options.probeTimeout ?? 2000;
    if (!(this.#probeInterval > 0) || !(this.#probeTimeout > 0))
      throw new ConfigError('ServiceClient: probeInterval and probeTimeout must be > 0 ms');
    this.#probeBackoff = new RetryPolicy(
      { initialDelay: this.#probeInterval, maxDelay: Math.max(MAX_PROBE_BACKOFF, this.#probeInterval), jitter: 0 },
      {},
      options.session.random,
      'probe',
    );
    this.#watch = options.watchPresence ?? true;
    this.#rediscoverEvery = options.rediscoverInterval ?? 30_000;
    if (!(this.#rediscoverEvery >= 0))
      throw new ConfigError('ServiceClient: rediscoverInterval must be >= 0 ms (0 = discover once)');
    const target = options.target;
    if (typeof target === 'string' || Array.isArray(target)) {
      const list = typeof target === 'string' ? [target] : (target as readonly string[]);
      if (list.length === 0) throw new ConfigError('ServiceClient: a service needs at least one instance');
      for (const jid of list) this.add(jid);
    } else if (target && typeof target === 'object' && 'discover' in target) {
      this.#discover = target.discover;
    } else {
      throw new ConfigError('ServiceClient: target must be a JID, a list of JIDs or { discover }');
    }
  }

  get status(): CallerStatus {
    return this.#status;
  }

  /** Calls awaiting their outcome (retries and failover included). */
  get inFlight(): number {
    return this.#engine.inFlight;
  }

  /** Batch IQs sent and the calls they carried, all instances together (see `CallerOptions.batch`). */
  get batchStats(): { readonly batches: number; readonly batchedCalls: number } {
    return this.#engine.batchStats;
  }

  /** The known instances and their state. */
  get instances(): InstanceInfo[] {
    return this.#instances.map((i) => ({ jid: i.jid, state: i.state, inFlight: i.inFlight }));
  }

  /**
   * Becomes ready: waits for the session, starts watching the instances by presence and the
   * health probes, and with a discovery target runs the first discovery (a failed one is logged;
   * the next round retries). Idempotent.
   */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining')
      return Promise.reject(this.#engine.refusal(this.#status));
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options: WaitOptions): Promise<void> {
    this.#status = 'starting';
    try {
      await this.#session.start(options);
    } catch (err) {
      this.#starting = undefined;
      if (this.#status === 'starting') this.#status = 'idle';
      throw err;
    }
    if (this.#status !== 'starting') return;
    this.#offStart.push(
      this.#session.onPresence((p) => this.#onPresence(p)),
      this.#session.add(this),
    );
    if (this.#watch) for (const i of this.#instances) this.#sendPresence(i.jid, true);
    this.#scheduleTick();
    if (this.#discover) {
      await this.#rediscover();
      if (this.#status !== 'starting') return;
    }
    this.#status = 'ready';
  }

  /** Adds an instance (optimistically `up`; the first failure or probe corrects that). */
  add(jid: string): void {
    if (this.#status === 'closed' || this.#byJid.has(jid)) return;
    const inst: Instance = {
      jid,
      state: 'up',
      inFlight: 0,
      attempts: new Set(),
      failures: 0,
      nextProbe: 0,
      lastProbe: 0,
      probing: false,
      removed: false,
    };
    this.#byJid.set(jid, inst);
    this.#instances = [...this.#instances, inst];
    if (this.#watch && this.#started) this.#sendPresence(jid, true);
  }

  /** Stops routing to an instance (calls in flight there finish). */
  remove(jid: string): void {
    const inst = this.#byJid.get(jid);
    if (!inst) return;
    inst.removed = true;
    this.#byJid.delete(jid);
    this.#instances = this.#instances.filter((i) => i !== inst);
    if (this.#watch && this.#started) this.#sendPresence(jid, false);
  }

  /** Re-runs discovery (discovery targets only) and adds/removes instances accordingly. */
  async refresh(): Promise<void> {
    if (!this.#discover) return;
    const found = await discoverInstances(this.#session, this.#discover);
    if (this.#status === 'closed') return;
    const set = new Set(found);
    for (const jid of found) this.add(jid);
    for (const inst of this.#instances) if (!set.has(inst.jid) && inst.state !== 'up') this.remove(inst.jid);
  }

  /**
   * Calls `method` on one live instance. Idempotent methods move to another instance when one
   * fails with a retryable error (unavailable, draining, busy, its link dropped), within `timeout`.
   */
  async call<M extends MethodContract>(
    method: M,
    request: RequestOf<M>,
    options: CallOptions = {},
  ): Promise<ResponseOf<M>> {
    const engine = this.#engine;
    if (this.#status !== 'ready') throw engine.refusal(this.#status);
    const timeout = engine.timeoutOf(options);
    const signal = options.signal;
    checkSignal(signal);
    const deadline = this.#clock.now() + timeout;
    const payload = engine.encode(method, request, options, deadline);
    const retry = engine.retriesOf(method, options);
    engine.started();
    try {
      if (retry === false)
        return await this.#attempt<ResponseOf<M>>(method, payload, signal, undefined, false, deadline);
      let avoid: Instance | undefined;
      let last: Instance | undefined;
      return await engine.withRetries<ResponseOf<M>>(
        retry,
        deadline,
        signal,
        this.#isClosed,
        (budget) => {
          avoid = last;
          return this.#attempt<ResponseOf<M>>(method, payload, signal, avoid, true, budget, (i) => (last = i));
        },
        Math.max(retry.policy.attempts, this.#instances.length + 1),
        // Another live instance is tried at once; with none, back off before the next attempt.
        () => last === undefined || !this.#hasOther(last),
        // An instance that is gone (even for good) leaves the others: try them.
        (err) => isRetryable(err) || (err instanceof StanzaError && err.unavailable),
      );
    } finally {
      engine.settled();
    }
  }

  /**
   * One attempt on the instance picked (avoiding `avoid`). For a single attempt `budgetOrDeadline`
   * is the deadline, else the attempt's budget. Idempotent attempts get their own controller so a
   * vanished instance's calls can be moved elsewhere at once.
   */
  async #attempt<R>(
    method: MethodContract,
    payload: Element,
    signal: AbortSignal | undefined,
    avoid: Instance | undefined,
    idempotent: boolean,
    budgetOrDeadline: number,
    picked?: (inst: Instance) => void,
  ): Promise<R> {
    const inst = this.#pick(avoid);
    if (!inst) throw new ServiceUnavailableError({ text: 'no instance of the service is known' });
    picked?.(inst);
    const budget = idempotent ? budgetOrDeadline : budgetOrDeadline - this.#clock.now();
    const a: Attempt = { started: this.#clock.now(), controller: idempotent ? new AbortController() : undefined };
    let onAbort: (() => void) | undefined;
    if (a.controller && signal) {
      const c = a.controller;
      onAbort = () => c.abort(abortReason(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    }
    inst.inFlight++;
    inst.attempts.add(a);
    try {
      const res = await this.#engine.attempt<R>(
        method,
        inst.jid,
        payload,
        budget,
        a.controller?.signal ?? signal,
        false,
      );
      if (inst.state === 'down' && !inst.removed) this.#markUp(inst);
      return res;
    } catch (err) {
      this.#observe(inst, err);
      throw err;
    } finally {
      inst.inFlight--;
      inst.attempts.delete(a);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Stops taking calls (new ones reject with `ClosedError`) and waits for the calls in flight,
   * bounded by `options`.
   */
  drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return Promise.resolve();
    this.#status = 'draining';
    return this.#engine.idle(options);
  }

  /** Stops probes, discovery and presence watching at once; calls in flight finish. Idempotent. */
  close(): Promise<void> {
    if (this.#status === 'closed') return Promise.resolve();
    const started = this.#started;
    this.#status = 'closed';
    this.#tickTimer?.cancel();
    this.#rediscoverTimer?.cancel();
    for (const off of this.#offStart) off();
    this.#offStart = [];
    if (this.#watch && started) for (const i of this.#instances) this.#sendPresence(i.jid, false);
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Whether `start()` got past the session (presence may be sent). */
  get #started(): boolean {
    return this.#offStart.length > 0;
  }

  async #rediscover(): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      this.#session.logger.warn('rpc: service discovery failed; retrying at the next round', toError(err));
    }
    if (this.#rediscoverEvery > 0 && this.#status !== 'closed') {
      this.#rediscoverTimer = this.#clock.setTimeout(() => void this.#rediscover(), this.#rediscoverEvery);
    }
  }

  #scheduleTick(): void {
    this.#tickTimer = this.#clock.setTimeout(() => {
      if (this.#status === 'closed') return;
      this.#tick();
      this.#scheduleTick();
    }, this.#probeInterval);
  }

  #pick(avoid: Instance | undefined): Instance | undefined {
    const all = this.#instances;
    const n = all.length;
    if (n === 0) return undefined;
    let best: Instance | undefined;
    const start = this.#cursor++ % n;
    for (let k = 0; k < n; k++) {
      const i = all[(start + k) % n]!;
      if (i.state !== 'up' || i === avoid) continue;
      if (this.#strategy === 'round-robin') return i;
      if (!best || i.inFlight < best.inFlight) best = i;
    }
    if (best) return best;
    if (avoid && avoid.state === 'up') return avoid;
    // Nothing known to be up: try the one that failed longest ago (the server gives the verdict).
    let fallback: Instance | undefined;
    for (const i of all) if (i !== avoid && (!fallback || i.nextProbe < fallback.nextProbe)) fallback = i;
    return fallback ?? avoid;
  }

  #hasOther(inst: Instance): boolean {
    for (const i of this.#instances) if (i !== inst && i.state === 'up') return true;
    return false;
  }

  /** Learns from a failed attempt. */
  #observe(inst: Instance, err: unknown): void {
    // ServiceUnavailableError covers every server's way of saying "not connected" (see core's errorFromStanza).
    if (!(err instanceof StanzaError) || !err.unavailable) return;
    const detail = rpcDetail(err);
    if (detail && localName(detail) === 'draining') this.#markDraining(inst);
    else this.#markDown(inst, err);
  }

  #markUp(inst: Instance): void {
    inst.state = 'up';
    inst.failures = 0;
  }

  #markDraining(inst: Instance): void {
    if (inst.state === 'down') return;
    inst.state = 'draining';
    // A draining instance finishes its calls: leave them be; look again later.
    inst.nextProbe = this.#clock.now() + 5 * this.#probeInterval;
  }

  #markDown(inst: Instance, reason: Error): void {
    const wasDown = inst.state === 'down';
    inst.state = 'down';
    inst.nextProbe = this.#clock.now() + this.#probeBackoff.delay(inst.failures++);
    if (wasDown) return;
    // Replies from a vanished instance will not come: move its idempotent calls elsewhere now.
    const abort = new ServiceUnavailableError({ text: `${inst.jid} went away (${reason.message})` });
    for (const a of inst.attempts) a.controller?.abort(abort);
  }

  #tick(): void {
    const now = this.#clock.now();
    for (const inst of this.#instances) {
      if (inst.probing) continue;
      if (inst.state !== 'up') {
        if (now >= inst.nextProbe) void this.#probe(inst);
        continue;
      }
      if (inst.inFlight === 0 || now - inst.lastProbe < this.#probeInterval) continue;
      for (const a of inst.attempts) {
        if (now - a.started >= this.#probeInterval) {
          void this.#probe(inst);
          break;
        }
      }
    }
  }

  async #probe(inst: Instance): Promise<void> {
    inst.probing = true;
    inst.lastProbe = this.#clock.now();
    const iq = xml(
      'iq',
      { type: 'get', to: inst.jid, from: this.#session.address, id: randomId() },
      xml('ping', { xmlns: NS_PING }),
    );
    try {
      await this.#session.caller.request(iq, { timeout: this.#probeTimeout });
      if (inst.state === 'down') this.#markUp(inst);
      else if (inst.state === 'draining') {
        // Alive, but still draining or restarted under the same name: only its presence answer tells.
        inst.nextProbe = this.#clock.now() + 5 * this.#probeInterval;
        this.#sendPresence(inst.jid, true);
      }
    } catch (err) {
      if (err instanceof TimeoutError || (err instanceof StanzaError && err.unavailable)) this.#markDown(inst, err);
      else if (err instanceof StanzaError && inst.state === 'down') this.#markUp(inst); // it answered: alive
    } finally {
      inst.probing = false;
    }
  }

  #onPresence(p: Element): void {
    const from = p.attrs['from'];
    if (typeof from !== 'string') return;
    const inst = this.#byJid.get(from) ?? this.#byJid.get(bareJid(from));
    if (!inst) return;
    const type = p.attrs['type'];
    if (type === undefined) {
      if (p.getChild('instance', NS_RPC)) this.#markUp(inst);
    } else if (type === 'unavailable') {
      this.#markDraining(inst);
    }
  }

  #sendPresence(to: string, available: boolean): void {
    const p = xml(
      'presence',
      { to, from: this.#session.address, type: available ? undefined : 'unavailable' },
      available ? xml('watch', { xmlns: NS_RPC }) : null,
    );
    this.#session.send(p).catch(() => undefined); // best effort: probes cover a lost presence
  }
}
