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
  ClosedError,
  ConfigError,
  IqCaller,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PING,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  abortReason,
  bareJid,
  childElements,
  firstChildElement,
  localName,
  randomId,
  xml,
  type Element,
  type Transport,
} from '@xmppbus/core';
import type { MethodContract, RequestOf, ResponseOf } from '@xmppbus/schema';
import { attemptBudget, backoff, isRetryable, sleep } from './retry.js';
import type { CallOptions, RpcClient } from './rpc-client.js';
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

export interface ServiceOptions {
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
 * answer), filtered by `feature`.
 */
export async function discoverInstances(transport: Transport, options: DiscoverOptions): Promise<string[]> {
  const caller = IqCaller.for(transport);
  const timeout = options.timeout ?? 2000;
  const match = options.match;
  const test = typeof match === 'function' ? match : (j: string): boolean => match.test(j);
  const iq = (to: string, ns: string): Element =>
    xml('iq', { type: 'get', to, from: transport.address, id: randomId() }, xml('query', { xmlns: ns }));
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
        const info = await caller.request(iq(jid, NS_DISCO_INFO), { timeout });
        if (options.feature === undefined) return jid;
        const q = firstChildElement(info);
        const ok = q !== undefined && childElements(q).some((f) => f.attrs['var'] === options.feature);
        return ok ? jid : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  return live.filter((j): j is string => j !== undefined).sort();
}

/** Balances calls over a service's instances; created by `RpcClient.service()`. */
export class ServiceClient {
  readonly #client: RpcClient;
  readonly #transport: Transport;
  readonly #strategy: Strategy;
  readonly #probeInterval: number;
  readonly #probeTimeout: number;
  readonly #watch: boolean;
  readonly #discover: DiscoverOptions | undefined;
  #instances: Instance[] = [];
  readonly #byJid = new Map<string, Instance>();
  #cursor = 0;
  #closed = false;
  #ready: Promise<void> | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #rediscover: ReturnType<typeof setInterval> | undefined;
  readonly #offStanza: () => void;

  /** @internal use `RpcClient.service()` */
  constructor(client: RpcClient, target: ServiceTarget, options: ServiceOptions) {
    this.#client = client;
    this.#transport = client.transport;
    this.#strategy = options.strategy ?? 'least-in-flight';
    if (this.#strategy !== 'round-robin' && this.#strategy !== 'least-in-flight') {
      throw new ConfigError(`unknown strategy '${String(this.#strategy)}'`);
    }
    this.#probeInterval = options.probeInterval ?? 1000;
    this.#probeTimeout = options.probeTimeout ?? 2000;
    if (!(this.#probeInterval > 0) || !(this.#probeTimeout > 0)) throw new ConfigError('probe times must be > 0');
    this.#watch = options.watchPresence ?? true;
    this.#offStanza = this.#transport.onStanza((s) => {
      if (s.name === 'presence') this.#onPresence(s);
    });
    if (typeof target === 'string' || Array.isArray(target)) {
      const list = typeof target === 'string' ? [target] : (target as readonly string[]);
      if (list.length === 0) throw new ConfigError('a service needs at least one instance');
      for (const jid of list) this.add(jid);
    } else {
      this.#discover = (target as { discover: DiscoverOptions }).discover;
      this.#ready = this.refresh().catch(() => undefined);
      const every = options.rediscoverInterval ?? 30_000;
      if (every > 0) {
        this.#rediscover = setInterval(() => void this.refresh().catch(() => undefined), every);
        this.#rediscover.unref?.();
      }
    }
    this.#timer = setInterval(() => this.#tick(), this.#probeInterval);
    this.#timer.unref?.();
  }

  /** The known instances and their state. */
  get instances(): InstanceInfo[] {
    return this.#instances.map((i) => ({ jid: i.jid, state: i.state, inFlight: i.inFlight }));
  }

  /** Adds an instance (optimistically `up`; the first failure or probe corrects that). */
  add(jid: string): void {
    if (this.#closed || this.#byJid.has(jid)) return;
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
    if (this.#watch) this.#sendPresence(jid, true);
  }

  /** Stops routing to an instance (calls in flight there finish). */
  remove(jid: string): void {
    const inst = this.#byJid.get(jid);
    if (!inst) return;
    inst.removed = true;
    this.#byJid.delete(jid);
    this.#instances = this.#instances.filter((i) => i !== inst);
    if (this.#watch) this.#sendPresence(jid, false);
  }

  /** Re-runs discovery (discovery targets only) and adds/removes instances accordingly. */
  async refresh(): Promise<void> {
    if (!this.#discover) return;
    const found = await discoverInstances(this.#transport, this.#discover);
    if (this.#closed) return;
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
    if (this.#closed) throw new ClosedError('service handle closed');
    if (this.#ready) {
      await this.#ready;
      this.#ready = undefined;
    }
    const client = this.#client;
    const prepared = client._prepare(method, request, options);
    const { retry, signal, deadline } = prepared;
    const idempotent = prepared.retries;
    const maxAttempts = idempotent ? Math.max(retry.attempts, this.#instances.length + 1) : 1;
    let avoid: Instance | undefined;
    for (let attempt = 1; ; attempt++) {
      const inst = this.#pick(avoid);
      if (!inst) throw new ServiceUnavailableError({ text: 'no instance of the service is known' });
      const budget = attemptBudget(retry, deadline);
      const a: Attempt = { started: Date.now(), controller: idempotent ? new AbortController() : undefined };
      let onAbort: (() => void) | undefined;
      if (a.controller && signal) {
        const c = a.controller;
        onAbort = () => c.abort(abortReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
      }
      inst.inFlight++;
      inst.attempts.add(a);
      try {
        const res = await client._attempt(method, inst.jid, prepared, budget, a.controller?.signal ?? signal);
        if (inst.state !== 'up' && !inst.removed && inst.state !== 'draining') this.#markUp(inst);
        return res;
      } catch (err) {
        this.#observe(inst, err);
        if (!idempotent || attempt >= maxAttempts || !isRetryable(err) || signal?.aborted) throw err;
        if (!this.#hasOther(inst)) {
          const wait = backoff(attempt, retry);
          if (Date.now() + wait >= deadline) throw err;
          await sleep(wait, signal);
        }
        avoid = inst;
      } finally {
        inst.inFlight--;
        inst.attempts.delete(a);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
      }
    }
  }

  /** Stops probes and presence watching; calls in flight finish. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#rediscover) clearInterval(this.#rediscover);
    this.#offStanza();
    if (this.#watch) for (const i of this.#instances) this.#sendPresence(i.jid, false);
  }

  [Symbol.dispose](): void {
    this.close();
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
    inst.nextProbe = Date.now() + 5 * this.#probeInterval;
  }

  #markDown(inst: Instance, reason: Error): void {
    const wasDown = inst.state === 'down';
    inst.state = 'down';
    inst.failures++;
    inst.nextProbe = Date.now() + Math.min(30_000, this.#probeInterval * 2 ** Math.min(inst.failures - 1, 5));
    if (wasDown) return;
    // Replies from a vanished instance will not come: move its idempotent calls elsewhere now.
    const abort = new ServiceUnavailableError({ text: `${inst.jid} went away (${reason.message})` });
    for (const a of inst.attempts) a.controller?.abort(abort);
  }

  #tick(): void {
    const now = Date.now();
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
    inst.lastProbe = Date.now();
    const iq = xml(
      'iq',
      { type: 'get', to: inst.jid, from: this.#transport.address, id: randomId() },
      xml('ping', { xmlns: NS_PING }),
    );
    try {
      await IqCaller.for(this.#transport).request(iq, { timeout: this.#probeTimeout });
      if (inst.state === 'down') this.#markUp(inst);
      else if (inst.state === 'draining') {
        // Alive, but still draining or restarted under the same name: only its presence answer tells.
        inst.nextProbe = Date.now() + 5 * this.#probeInterval;
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
      { to, from: this.#transport.address, type: available ? undefined : 'unavailable' },
      available ? xml('watch', { xmlns: NS_RPC }) : null,
    );
    this.#transport.send(p).catch(() => undefined); // best effort: probes cover a lost presence
  }
}
