/**
 * Competing consumers. XEP-0060 only broadcasts, so a group elects one **leader** through the
 * pub/sub service itself and the leader dispatches each event to exactly one live member:
 *
 * - Election: creating a node is atomic on every XEP-0060 service (the second creator gets
 *   `conflict`), so the member that creates `<state>/term/<n>` leads term n and announces
 *   `{term, jid}` as item `leader` of the group's state node `_xmppbus/groups/<group>/<node>`.
 * - The leader alone subscribes to the event node and runs a durable pipeline whose checkpoint is
 *   stored in the state node (item `checkpoint`), so a new leader resumes where the old one
 *   stopped, catching up from the persisted items.
 * - Members send `<join/>` to the leader every `heartbeatMs`; the leader dispatches events with
 *   `<deliver/>` IQs, round-robin over members heard from recently (itself included), and
 *   re-dispatches to another member when one does not answer. A member whose heartbeat fails, or
 *   that sees a vacant/newer `leader` item, runs the election again.
 *
 * Only IQs, node creation and items are used — no server-specific feature — so it works on
 * Prosody and ejabberd alike. Guarantee: exactly one member handles each event while members join
 * and leave gracefully (`drain()` then `close()`: a draining leader waits for the answers to what
 * it dispatched and saves the position before it leaves). An abrupt `close()` or a crash is
 * at-least-once: the next leader redoes the events whose answers the old one had not recorded. A
 * member remembers the ids it handled recently (`dedupeWindow`), so such a redelivery to the
 * member that handled it is answered without running the handler again.
 * Time (heartbeats, liveness, election pauses) comes from the session's clock.
 */
import {
  ClosedError,
  RetryPolicy,
  StanzaError,
  WaitQueue,
  calleeError,
  childElements,
  deferred,
  errorReply,
  randomId,
  resultReply,
  sleep,
  xml,
  type Element,
  type TimerHandle,
  type WaitOptions,
} from '@xmppbus/core';
import { decode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import type { PubSubEvent } from './events.js';
import { isBatch } from './batch.js';
import { DeliveryBatcher, deliverBatch, type DeliverOne } from './group-delivery.js';
import { STATE_TIMEOUT, StateNodeStore, latestOfTerm } from './group-state.js';
import { NS_XMPPBUS_PUBSUB } from './ns.js';
import { headersOf, restoreHeaders, takeHeaders } from './payload-headers.js';
import { Pipeline } from './pipeline.js';
import type { ConsumerHost, ConsumerStats, EventHandler, EventMeta, InvalidEvent } from './types.js';

export interface GroupMemberOptions<C extends PayloadContract> {
  host: ConsumerHost;
  node: string;
  contract: C;
  group: string;
  handler: EventHandler<PayloadOf<C>>;
  jid: string;
  subscribe: boolean;
  startFrom: 'latest' | 'earliest';
  dedupeWindow: number;
  maxBatchEvents: number;
  concurrency: number;
  heartbeatMs: number;
  timeout: number | undefined;
  retry: RetryPolicy;
  stats: ConsumerStats;
  onInvalid: (e: InvalidEvent) => void;
  onError: (e: Error, meta: EventMeta | undefined) => void;
  onEvent: ((e: PubSubEvent) => void) | undefined;
}

/** Name of a group's state node. */
export function groupStateNode(group: string, node: string): string {
  return `_xmppbus/groups/${group}/${node}`;
}

/** Pause after losing an election race before reading the state again: 100–300 ms. */
const ELECTION_PAUSE = { initialDelay: 300, maxDelay: 300, factor: 1, jitter: 2 / 3 } as const;
/** Group checkpoints are written at most ~10 times per second (they are pub/sub items). */
const CHECKPOINT_INTERVAL = 100;
interface MemberInfo {
  jid: string;
  lastSeen: number;
  inFlight: number;
  /** It takes batched `<deliver/>`s (group-delivery.ts). */
  batches: boolean;
}

/** How a handler run here ended; `cut`: cut short by close (or a step-down), so not handled. */
type Outcome = { ok: true } | { ok: false; err: unknown; cut: boolean };

/** One member of a competing-consumer group (see the module comment). */
export class GroupMember<C extends PayloadContract> {
  readonly #o: GroupMemberOptions<C>;
  readonly #host: ConsumerHost;
  readonly #state: string;
  readonly #me: string;
  readonly #members = new Map<string, MemberInfo>();
  /** Ids handled here recently (delivered or, as leader, handled locally), oldest first. */
  readonly #recent = new Set<string>();
  /** Handlers running here, by event id: settles once the outcome is recorded. */
  readonly #inProgress = new Map<string, Promise<void>>();
  readonly #seen = new Set<string>();
  /** Aborted on close: pending elections, and the handlers of deliveries to this member. */
  readonly #ac = new AbortController();
  readonly #idle: WaitQueue;
  readonly #pause: RetryPolicy;
  readonly #batcher: DeliveryBatcher;
  #term = 0;
  #leader: string | undefined;
  #pipeline: Pipeline<C> | undefined;
  #timer: TimerHandle | undefined;
  #electing: Promise<void> | undefined;
  #closed = false;
  #draining = false;
  #rr = 0;
  #offs: (() => void)[] = [];

  constructor(options: GroupMemberOptions<C>) {
    this.#o = options;
    this.#host = options.host;
    this.#state = groupStateNode(options.group, options.node);
    this.#me = options.host.session.address;
    this.#idle = new WaitQueue({ clock: options.host.session.clock, what: `drain of group '${options.group}'` });
    this.#pause = new RetryPolicy(ELECTION_PAUSE, {}, options.host.session.random, 'election pause');
    this.#batcher = new DeliveryBatcher(options.host.session.caller, this.#me, {
      node: options.node,
      group: options.group,
    });
  }

  get isLeader(): boolean {
    return this.#leader === this.#me && this.#pipeline !== undefined;
  }

  async start(): Promise<void> {
    const o = this.#o;
    this.#offs.push(this.#host.groups.add(o.node, o.group, (iq, p) => this.#onIq(iq, p)));
    const opts = { timeout: o.timeout ?? 30_000, signal: this.#ac.signal };
    const stateConfig = { persistItems: true, maxItems: 20, accessModel: 'open', publishModel: 'open' } as const;
    await this.#host.ensureNode(this.#state, stateConfig, { ...opts, reconfigure: false });
    this.#offs.push(this.#host.onNode(this.#state, (e) => this.#onStateEvent(e)));
    await this.#host.subscribe(this.#state, opts);
    await this.#elect();
    this.#schedule();
  }

  #onStateEvent(e: PubSubEvent): void {
    if (e.type !== 'items' || this.#closed) return;
    for (const it of e.items) {
      if (!it.id.startsWith('leader-') || !it.payload) continue;
      const term = Number(it.payload.attrs['term'] ?? 0);
      const jid = it.payload.attrs['jid'] ?? '';
      if (term > this.#term || (term === this.#term && jid !== this.#leader)) {
        // A newer leader (or a vacancy): step down if we led, then follow or elect.
        void this.#stepDown().then(() => {
          this.#term = Math.max(this.#term, term);
          this.#leader = jid || undefined;
          // A draining member takes no new work, so it does not run for leader either.
          if (!jid) {
            if (!this.#draining) void this.#elect().catch((err: unknown) => this.#backgroundError(err));
          } else void this.#heartbeat();
        });
      }
    }
  }

  #backgroundError(err: unknown): void {
    if (!this.#closed) this.#o.onError(err as Error, undefined);
  }

  async #readLeader(): Promise<{ term: number; jid: string } | undefined> {
    const opts = { timeout: STATE_TIMEOUT, signal: this.#ac.signal };
    const best = await latestOfTerm(this.#host, this.#state, 'leader', opts);
    return best ? { term: best.term, jid: best.el.attrs['jid'] ?? '' } : undefined;
  }

  #elect(): Promise<void> {
    this.#electing ??= this.#runElection().finally(() => {
      this.#electing = undefined;
    });
    return this.#electing;
  }

  async #runElection(): Promise<void> {
    const pause = this.#pause.backoff();
    const clock = this.#host.session.clock;
    const signal = this.#ac.signal;
    let floor = 0;
    let lastConflict = 0;
    let conflicts = 0;
    while (!this.#closed) {
      const st = await this.#readLeader();
      if (st && st.jid && st.jid !== this.#me && (await this.#join(st.jid))) {
        this.#term = st.term;
        this.#leader = st.jid;
        return;
      }
      if (st && st.jid === this.#me && st.term >= this.#term) {
        this.#term = st.term;
        await this.#lead();
        return;
      }
      const term = Math.max((st?.term ?? 0) + 1, floor);
      try {
        await this.#host.createNode(
          `${this.#state}/term/${term}`,
          { persistItems: false },
          { timeout: STATE_TIMEOUT, signal },
        );
      } catch (err) {
        // (ejabberd's "Database failure" for a concurrent creation is retried by createNode,
        // whose next attempt answers `conflict` like Prosody does.)
        if (!(err instanceof StanzaError) || err.condition !== 'conflict') throw err;
        // Someone else won this term: give it time to announce itself; if it never does (it
        // died right after winning), move past that term.
        conflicts = term === lastConflict ? conflicts + 1 : 1;
        lastConflict = term;
        if (conflicts >= 5) floor = term + 1;
        await sleep(pause.next(), { signal, clock });
        continue;
      }
      this.#term = term;
      this.#leader = this.#me;
      await this.#announce(this.#me);
      void this.#host.deleteNode(`${this.#state}/term/${term - 1}`, { timeout: STATE_TIMEOUT }).catch(() => undefined);
      await this.#lead(st?.jid);
      return;
    }
  }

  #announce(jid: string): Promise<string> {
    const el = xml('leader', { xmlns: NS_XMPPBUS_PUBSUB, term: this.#term, jid });
    return this.#host.publishElement(this.#state, el, { id: `leader-${this.#term}`, timeout: STATE_TIMEOUT });
  }

  async #lead(previous?: string): Promise<void> {
    const o = this.#o;
    this.#leader = this.#me;
    if (previous && previous !== this.#me) {
      // The old leader's subscription would keep receiving (and bouncing) events.
      await this.#host.unsubscribe(o.node, { jid: previous, timeout: STATE_TIMEOUT }).catch(() => undefined);
    }
    const pipeline = new Pipeline<C>({
      host: this.#host,
      node: o.node,
      contract: o.contract,
      jid: o.jid,
      subscribe: o.subscribe,
      durableKey: `group:${o.group}`,
      store: new StateNodeStore(this.#host, this.#state, this.#term),
      startFrom: o.startFrom,
      dedupeWindow: 200,
      maxBatchEvents: o.maxBatchEvents,
      concurrency: o.concurrency,
      timeout: o.timeout,
      retry: o.retry,
      minSaveInterval: CHECKPOINT_INTERVAL,
      // The leader's pipeline only dispatches: members count what they handle.
      stats: { handled: 0, invalid: 0, failed: 0, duplicates: 0, replayed: 0 },
      seen: this.#seen,
      onInvalid: (e) => {
        o.stats.invalid++;
        o.onInvalid(e);
      },
      onError: o.onError,
      onEvent: o.onEvent,
      process: (value, meta, payload) => this.#dispatch(value, meta, payload),
    });
    this.#pipeline = pipeline;
    await pipeline.start();
    await pipeline.ready;
  }

  async #stepDown(): Promise<void> {
    const p = this.#pipeline;
    if (!p) return;
    this.#pipeline = undefined;
    await p.close();
  }

  /** Leader: hands one event to one live member; another member gets it if that one fails. */
  async #dispatch(value: PayloadOf<C>, meta: EventMeta, payload: Element): Promise<void> {
    const tried = new Set<string>();
    for (;;) {
      const m = this.#pick(tried);
      if (!m) return this.#handleLocal(value, meta);
      tried.add(m.jid);
      m.inFlight++;
      try {
        // Batched ids are a space-separated list: an item id with whitespace travels alone.
        if (m.batches && !/\s/.test(meta.id)) {
          await this.#batcher.deliver(m.jid, meta.id, payload, meta.signal);
          return;
        }
        const iq = xml(
          'iq',
          { type: 'set', to: m.jid, from: this.#me, id: randomId() },
          xml('deliver', { xmlns: NS_XMPPBUS_PUBSUB, node: this.#o.node, group: this.#o.group, id: meta.id }, payload),
        );
        await this.#host.session.caller.request(iq, { timeout: 30_000, signal: meta.signal });
        return;
      } catch (err) {
        if (err instanceof StanzaError && err.application?.name === 'handler-failed') {
          return; // the member ran the handler and it failed: reported there, not redelivered
        }
        if (meta.signal.aborted) throw err;
        // A member that refuses our batch as malformed is alive: it gets single deliveries.
        if (err instanceof StanzaError && err.type === 'modify' && m.batches) m.batches = false;
        else this.#members.delete(m.jid);
      } finally {
        m.inFlight--;
      }
    }
  }

  #pick(tried: Set<string>): MemberInfo | undefined {
    const now = this.#host.session.clock.now();
    const live: (MemberInfo | undefined)[] = [undefined]; // undefined = this instance
    for (const m of this.#members.values()) {
      if (now - m.lastSeen > 3 * this.#o.heartbeatMs) this.#members.delete(m.jid);
      else if (!tried.has(m.jid)) live.push(m);
    }
    if (tried.has(this.#me) || this.#closed || this.#draining) live.shift();
    if (live.length === 0) return undefined;
    const pick = live[this.#rr++ % live.length];
    if (pick === undefined) tried.add(this.#me);
    return pick;
  }

  /**
   * Leader: handles one event here. The previous leader may have delivered it to this member
   * already (its answer unrecorded when it left): handled recently → skipped; still running →
   * looked at again once it ends. Rejects only when cut short, so the pipeline does not record it.
   */
  async #handleLocal(value: PayloadOf<C>, meta: EventMeta): Promise<void> {
    const running = this.#inProgress.get(meta.id);
    if (running) {
      await running;
      return this.#handleLocal(value, meta);
    }
    if (this.#recent.has(meta.id)) {
      this.#o.stats.duplicates++;
      return;
    }
    const r = await this.#run(value, meta, (r) => {
      if (r.ok || r.cut) return;
      this.#o.stats.failed++;
      this.#o.onError(r.err as Error, meta);
    });
    if (!r.ok && r.cut) throw r.err;
  }

  /**
   * Runs the handler for one event, tracked in `#inProgress` and then (unless cut short) kept in
   * `#recent`; `settle` reports the outcome before a drain waiting for this member can go on.
   */
  async #run(value: PayloadOf<C>, meta: EventMeta, settle: (r: Outcome) => void): Promise<Outcome> {
    const o = this.#o;
    const settled = deferred<void>();
    this.#inProgress.set(meta.id, settled.promise);
    let r: Outcome;
    try {
      await o.handler(value, meta);
      o.stats.handled++;
      r = { ok: true };
    } catch (err) {
      // Cut short by close/step-down: not handled, so whoever leads next redoes it.
      r = { ok: false, err, cut: meta.signal.aborted };
    }
    try {
      settle(r);
    } finally {
      this.#inProgress.delete(meta.id);
      if (r.ok || !r.cut) this.#remember(meta.id);
      settled.resolve();
      if (this.#inProgress.size === 0) this.#idle.wake();
    }
    return r;
  }

  /** Bounded by `dedupeWindow`: the oldest id goes first. */
  #remember(id: string): void {
    this.#recent.delete(id);
    this.#recent.add(id);
    if (this.#recent.size > this.#o.dedupeWindow) this.#recent.delete(this.#recent.values().next().value!);
  }

  #reply(el: Element): void {
    this.#host.session.send(el).catch(() => undefined);
  }

  /** An IQ addressed to this member (routed by node and group). */
  #onIq(iq: Element, payload: Element): void {
    if (payload.name === 'join') {
      // A closing leader still answers until it has saved its position and announced the
      // vacancy: a member electing earlier would resume from a stale checkpoint.
      if (this.#leader !== this.#me) {
        this.#reply(errorReply(iq, new StanzaError({ condition: 'unexpected-request', text: 'not the group leader' })));
        return;
      }
      const from = iq.attrs['from'] ?? '';
      const now = this.#host.session.clock.now();
      const m = this.#members.get(from);
      const batches = payload.attrs['batches'] === 'true';
      if (m) {
        m.lastSeen = now;
        m.batches = batches;
      } else this.#members.set(from, { jid: from, lastSeen: now, inFlight: 0, batches });
      this.#reply(resultReply(iq));
      return;
    }
    this.#onDeliver(iq, payload);
  }

  #onDeliver(iq: Element, payload: Element): void {
    const el = childElements(payload)[0];
    if (isBatch(el)) {
      const hold = (): (() => void) => {
        const key = `\u0000deliver ${iq.attrs['id'] ?? ''}`; // never an event id
        const done = deferred<void>();
        this.#inProgress.set(key, done.promise);
        return () => {
          this.#inProgress.delete(key);
          done.resolve();
          if (this.#inProgress.size === 0) this.#idle.wake();
        };
      };
      const one: DeliverOne = (id, event, answer) => this.#deliverOne(id, event, answer);
      const reply = (r: Element): void => this.#reply(r);
      return deliverBatch(iq, payload, el, { one, reply, hold, maxEvents: this.#o.maxBatchEvents });
    }
    this.#deliverOne(payload.attrs['id'] ?? '', el, (error) =>
      this.#reply(error ? errorReply(iq, error) : resultReply(iq)),
    );
  }

  /** Handles one delivered event here; `answer` gets the error to answer with, or undefined. */
  #deliverOne(id: string, el: Element | undefined, answer: (error: StanzaError | undefined) => void): void {
    // A redelivery (a new leader redoing what the previous one had not recorded) of an event
    // handled here is answered without running the handler again, even while draining; one
    // still running here is answered once it ends.
    const running = this.#inProgress.get(id);
    if (running) {
      void running.then(() => this.#deliverOne(id, el, answer));
      return;
    }
    if (this.#recent.has(id)) {
      this.#o.stats.duplicates++;
      return answer(undefined);
    }
    if (this.#closed || this.#draining || !el) {
      return answer(new StanzaError({ condition: 'service-unavailable', text: 'member closing' }));
    }
    const o = this.#o;
    let value: PayloadOf<C>;
    const headersEl = takeHeaders(el);
    try {
      value = decode(o.contract, el);
    } catch (err) {
      o.stats.invalid++;
      o.onInvalid({ id, node: o.node, payload: el, error: err as Error });
      return answer(undefined);
    } finally {
      restoreHeaders(el, headersEl);
    }
    const meta: EventMeta = {
      id,
      node: o.node,
      from: this.#host.service,
      publisher: undefined,
      headers: headersOf(headersEl),
      delayedFrom: undefined,
      replay: false,
      signal: this.#ac.signal,
    };
    void this.#run(value, meta, (r) => answer(this.#answerOf(meta, r)));
  }

  #answerOf(meta: EventMeta, r: Outcome): StanzaError | undefined {
    const o = this.#o;
    if (r.ok) return undefined;
    // Cut short by close: not handled, so the leader gives it to another member.
    if (r.cut) return new StanzaError({ condition: 'service-unavailable', text: 'member closing' });
    o.stats.failed++;
    o.onError(r.err as Error, meta);
    // The one callee policy decides the condition; the marker tells the leader not to redeliver.
    const e = calleeError(r.err, { logger: this.#host.session.logger, what: `handler of group '${o.group}'` });
    const application = xml('handler-failed', { xmlns: NS_XMPPBUS_PUBSUB });
    const init = { condition: e.condition, type: e.type, application, ...(e.text ? { text: e.text } : {}) };
    return new StanzaError(init);
  }

  async #join(leader: string): Promise<boolean> {
    try {
      const iq = xml(
        'iq',
        { type: 'set', to: leader, from: this.#me, id: randomId() },
        xml('join', { xmlns: NS_XMPPBUS_PUBSUB, node: this.#o.node, group: this.#o.group, batches: 'true' }),
      );
      const timeout = Math.max(2_000, 2 * this.#o.heartbeatMs);
      await this.#host.session.caller.request(iq, { timeout, signal: this.#ac.signal });
      return true;
    } catch {
      return false;
    }
  }

  async #heartbeat(): Promise<void> {
    // A draining member stops joining: the leader drops it after 3 beats (it refuses deliveries meanwhile).
    if (this.#closed || this.#draining || this.#electing || this.isLeader) return;
    const leader = this.#leader;
    if (leader && leader !== this.#me && (await this.#join(leader))) return;
    if (!this.#closed) await this.#elect().catch((err: unknown) => this.#backgroundError(err));
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#host.session.clock.setTimeout(() => {
      void this.#heartbeat().finally(() => this.#schedule());
    }, this.#o.heartbeatMs);
  }

  /**
   * The graceful leave. Stops taking deliveries (the leader sends them elsewhere) and running for
   * leader, and waits, within `options`, for the handlers running here and, when leading, for the
   * answers to the events it dispatched and the write of the group's position — so after
   * `close()` the next leader resumes exactly after them.
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#draining = true;
    if (this.#pipeline) await this.#pipeline.drain(options);
    if (this.#inProgress.size > 0) await this.#idle.wait(options);
  }

  /**
   * Leaves the group at once: handlers running here see their signal abort and their events are
   * answered as not handled (the leader gives them to another member). A leader saves the group's
   * position, unsubscribes and announces the vacancy (each request bounded); events it dispatched
   * whose answers had not come are not in that position, so the next leader redoes them
   * (at-least-once; a member that handled one skips it). `drain()` first for a clean hand-over.
   */
  async close(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    const closed = new ClosedError('consumer closed');
    this.#ac.abort(closed);
    this.#idle.fail(closed);
    await this.#electing?.catch(() => undefined);
    if (this.#pipeline) {
      await this.#stepDown();
      // Hand over at once: unsubscribe and announce the vacancy (members elect on the notification).
      const bound = { timeout: options.timeout ?? 5_000 };
      await this.#host.unsubscribe(this.#o.node, { ...bound, jid: this.#o.jid }).catch(() => undefined);
      await this.#announce('').catch(() => undefined);
    }
    this.#leader = undefined;
    for (const off of this.#offs) off();
    this.#offs = [];
  }
}
