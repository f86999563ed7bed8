/**
 * Observe subscriptions of one agent, evaluated on every value change.
 *
 * Semantics (docs/protocol.md §7.4), following the deployed implementation where it is clear:
 * - a rule fires when |v − ref| ≥ changedBy, v − ref ≥ changedUp, or ref − v ≥ changedDown; a
 *   rule without thresholds (or a non-numeric field) fires on any change. `ref` is the value last
 *   reported to this subscriber (or the rule's `currentValue` before the first event);
 * - minInterval: at most one event per interval; a change inside it marks the subscription and
 *   one event with the latest values goes out when the interval ends (coalescing);
 * - maxInterval: an event goes out when nothing was sent for that long (heartbeat);
 * - maxAge: values older than it are left out of events;
 * - a subscription lives `ttl` unless renewed (the same id subscribed again), then expires.
 * Deadlines go through the shared `IotScheduler`: an idle subscription holds no timer of its own.
 */
import type { FieldSample, FieldValue, ObserveRule } from '../types.js';
import type { DialectCodec, SubscribeRequest } from '../dialects/model.js';
import type { NamespaceFamily } from '../wire/namespaces.js';
import { CAT } from '../wire/values.js';
import type { IotScheduler, ScheduledTask } from './scheduler.js';
import type { FieldState, FieldStore } from './things.js';

export interface Subscription {
  readonly id: string;
  /** Subscriber's full JID (events go there). */
  readonly peer: string;
  readonly bare: string;
  readonly family: NamespaceFamily;
  readonly codec: DialectCodec;
  readonly request: SubscribeRequest;
  readonly fields: ReadonlySet<string> | undefined;
  readonly nodes: ReadonlySet<string> | undefined;
  readonly rules: ReadonlyMap<string, ObserveRule> | undefined;
  /** Field key → value last reported (the change reference). */
  readonly reported: Map<string, FieldValue>;
  lastSent: number;
  /** Whether any event went out yet (the first change is never held back by minInterval). */
  sentAny: boolean;
  pending: boolean;
  flushTask: ScheduledTask | undefined;
  heartbeatTask: ScheduledTask | undefined;
  expiryTask: ScheduledTask | undefined;
}

/** Sends an event to a subscriber (the agent owns the session). */
export type EventSink = (sub: Subscription, fields: FieldSample[]) => void;

export class ObserveEngine {
  readonly #subs = new Map<string, Subscription>();
  readonly #perPeer = new Map<string, number>();
  readonly #scheduler: IotScheduler;
  readonly #store: FieldStore;
  readonly #sink: EventSink;
  readonly #ttl: number;
  /** Events sent (counter). */
  sent = 0;

  constructor(options: { scheduler: IotScheduler; store: FieldStore; sink: EventSink; ttl: number }) {
    this.#scheduler = options.scheduler;
    this.#store = options.store;
    this.#sink = options.sink;
    this.#ttl = options.ttl;
  }

  get size(): number {
    return this.#subs.size;
  }

  countFor(bare: string): number {
    return this.#perPeer.get(bare) ?? 0;
  }

  has(peer: string, id: string): boolean {
    return this.#subs.has(`${peer} ${id}`);
  }

  /** Adds (or renews: same peer and id) a subscription. The caller checked the bounds. */
  add(init: {
    id: string;
    peer: string;
    bare: string;
    family: NamespaceFamily;
    codec: DialectCodec;
    request: SubscribeRequest;
  }): Subscription {
    const key = `${init.peer} ${init.id}`;
    const old = this.#subs.get(key);
    const { request } = init;
    const sub: Subscription = {
      ...init,
      fields: request.fields ? new Set(request.fields) : undefined,
      nodes: request.nodes ? new Set(request.nodes) : undefined,
      rules: request.rules ? new Map(request.rules.map((r) => [r.field, r])) : undefined,
      reported: old?.reported ?? new Map(),
      lastSent: old?.lastSent ?? this.#scheduler.clock.now(),
      sentAny: old?.sentAny ?? false,
      pending: false,
      flushTask: undefined,
      heartbeatTask: undefined,
      expiryTask: undefined,
    };
    if (old) this.#cancelTasks(old);
    else this.#perPeer.set(init.bare, this.countFor(init.bare) + 1);
    this.#subs.set(key, sub);
    if (!old) this.#seedReferences(sub);
    const now = this.#scheduler.clock.now();
    sub.expiryTask = this.#scheduler.at(now + this.#ttl, () => this.remove(sub.peer, sub.id));
    this.#armHeartbeat(sub);
    return sub;
  }

  remove(peer: string, id: string): boolean {
    const key = `${peer} ${id}`;
    const sub = this.#subs.get(key);
    if (!sub) return false;
    this.#subs.delete(key);
    this.#cancelTasks(sub);
    const n = this.countFor(sub.bare) - 1;
    if (n <= 0) this.#perPeer.delete(sub.bare);
    else this.#perPeer.set(sub.bare, n);
    return true;
  }

  /** Drops every subscription of a full JID (it went offline) or, with `bare`, of an account. */
  removePeer(jid: string, bare = false): number {
    let n = 0;
    for (const sub of [...this.#subs.values()])
      if ((bare ? sub.bare : sub.peer) === jid && this.remove(sub.peer, sub.id)) n++;
    return n;
  }

  clear(): void {
    for (const sub of this.#subs.values()) this.#cancelTasks(sub);
    this.#subs.clear();
    this.#perPeer.clear();
  }

  /** Evaluates every subscription against a changed field (called on each `agent.set`). */
  changed(state: FieldState): void {
    if (this.#subs.size === 0) return;
    const sample = state.current;
    for (const sub of this.#subs.values()) {
      if (!covers(sub, state)) continue;
      if (!this.#fires(sub, state.key, sample)) continue;
      const now = this.#scheduler.clock.now();
      const min = sub.request.minInterval;
      if (min !== undefined && sub.sentAny && now < sub.lastSent + min) {
        sub.pending = true;
        sub.flushTask ??= this.#scheduler.at(sub.lastSent + min, () => {
          sub.flushTask = undefined;
          if (sub.pending) this.send(sub);
        });
        continue;
      }
      this.send(sub);
    }
  }

  /** Sends the current values of the subscription's fields now (also the immediate `req` readout). */
  send(sub: Subscription): void {
    const now = this.#scheduler.clock.now();
    const maxAge = sub.request.maxAge;
    const fields: FieldSample[] = [];
    for (const state of this.#store.values()) {
      if (!covers(sub, state)) continue;
      const s = state.current;
      if ((s.quality as readonly string[]).includes('missing')) continue;
      if (maxAge !== undefined && s.timestamp < now - maxAge) continue;
      fields.push(s);
      sub.reported.set(state.key, s.value);
    }
    sub.lastSent = now;
    sub.sentAny = true;
    sub.pending = false;
    sub.flushTask?.cancel();
    sub.flushTask = undefined;
    this.#armHeartbeat(sub);
    this.sent++;
    this.#sink(sub, fields);
  }

  #fires(sub: Subscription, key: string, sample: FieldSample): boolean {
    const rule = sub.rules?.get(sample.name);
    const ref = sub.reported.get(key);
    const v = sample.value;
    if (ref === undefined) return true;
    if (typeof v !== 'number' || typeof ref !== 'number' || !rule) return v !== ref;
    const { changedBy, changedUp, changedDown } = rule;
    if (changedBy === undefined && changedUp === undefined && changedDown === undefined) return v !== ref;
    const diff = v - ref;
    return (
      (changedBy !== undefined && Math.abs(diff) >= changedBy) ||
      (changedUp !== undefined && diff >= changedUp) ||
      (changedDown !== undefined && -diff >= changedDown)
    );
  }

  #seedReferences(sub: Subscription): void {
    // The reference before the first event: the rule's currentValue, else the value now.
    for (const state of this.#store.values()) {
      if (!covers(sub, state)) continue;
      const cur = sub.rules?.get(state.spec.name)?.currentValue;
      if (cur !== undefined) sub.reported.set(state.key, cur);
      else if (!(state.current.quality as readonly string[]).includes('missing'))
        sub.reported.set(state.key, state.current.value);
    }
  }

  #armHeartbeat(sub: Subscription): void {
    const max = sub.request.maxInterval;
    if (max === undefined) return;
    sub.heartbeatTask?.cancel();
    sub.heartbeatTask = this.#scheduler.at(sub.lastSent + max, () => {
      sub.heartbeatTask = undefined;
      this.send(sub);
    });
  }

  #cancelTasks(sub: Subscription): void {
    sub.flushTask?.cancel();
    sub.heartbeatTask?.cancel();
    sub.expiryTask?.cancel();
    sub.flushTask = sub.heartbeatTask = sub.expiryTask = undefined;
  }
}

function covers(sub: Subscription, state: FieldState): boolean {
  if (sub.fields && !sub.fields.has(state.spec.name)) return false;
  const node = state.spec.node;
  // No nodes named: every field (a simple agent is its own single node).
  if (sub.nodes && (node === undefined || !sub.nodes.has(node))) return false;
  return (state.mask & sub.request.categories & ~CAT.historical) !== 0 || sub.request.categories === 0;
}
