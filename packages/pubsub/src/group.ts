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
 * and leave gracefully; a member crashing mid-handler can lead to one redelivery (at-least-once).
 */
import {
  IqRouter,
  IqCaller,
  StanzaError,
  childElements,
  errorReply,
  randomId,
  resultReply,
  textOf,
  xml,
  type Element,
  type Transport,
  type WaitOptions,
} from '@xmppbus/core';
import { decode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';
import { Pipeline, type ConsumerStats, type EventHandler, type EventMeta, type InvalidEvent } from './consumer.js';
import type { PubSubEvent } from './events.js';
import { NS_XMPPBUS_PUBSUB } from './ns.js';
import type { PubSub } from './pubsub.js';

/** @internal */
export interface GroupMemberOptions<C extends PayloadContract> {
  pubsub: PubSub;
  node: string;
  contract: C;
  group: string;
  handler: EventHandler<PayloadOf<C>>;
  jid: string;
  subscribe: boolean;
  store: CheckpointStore;
  startFrom: 'latest' | 'earliest';
  dedupeWindow: number;
  concurrency: number;
  heartbeatMs: number;
  timeout: number | undefined;
  stats: ConsumerStats;
  onInvalid: (e: InvalidEvent) => void;
  onError: (e: Error, meta: EventMeta | undefined) => void;
  onEvent: ((e: PubSubEvent) => void) | undefined;
}

/** Name of a group's state node. */
export function groupStateNode(group: string, node: string): string {
  return `_xmppbus/groups/${group}/${node}`;
}

/**
 * The item with the highest term among `<prefix>-<term>` items of the state node. Each leader
 * writes items of its own term: ejabberd refuses to overwrite an item another JID published,
 * even on a `publish_model=open` node.
 */
async function latestOfTerm(
  pubsub: PubSub,
  node: string,
  prefix: string,
): Promise<{ term: number; el: Element } | undefined> {
  const items = await pubsub.items(node, { timeout: 10_000 });
  let best: { term: number; el: Element } | undefined;
  for (const it of items) {
    if (!it.id.startsWith(`${prefix}-`) || !it.payload) continue;
    const term = Number(it.id.slice(prefix.length + 1));
    if (Number.isFinite(term) && (!best || term > best.term)) best = { term, el: it.payload };
  }
  return best;
}

/** Group checkpoints live in the state node, so whichever member leads next can resume. */
class StateNodeStore implements CheckpointStore {
  constructor(
    readonly pubsub: PubSub,
    readonly node: string,
    readonly term: number,
  ) {}
  async load(): Promise<Checkpoint | undefined> {
    const el = (await latestOfTerm(this.pubsub, this.node, 'checkpoint'))?.el;
    if (!el) return undefined;
    return { lastId: el.attrs['last'] || undefined, recent: childElements(el).map((c) => textOf(c)) };
  }
  async save(_key: string, cp: Checkpoint): Promise<void> {
    // Coalesced by the pipeline (one save in flight); the pause bounds it to ~10 writes/s.
    await new Promise((r) => setTimeout(r, 100));
    const el = xml('checkpoint', { xmlns: NS_XMPPBUS_PUBSUB, last: cp.lastId });
    for (const id of cp.recent.slice(-200)) el.cnode(xml('id', null, id));
    await this.pubsub.publishElement(this.node, el, { id: `checkpoint-${this.term}`, timeout: 10_000 });
  }
}

interface Registry {
  members: Map<string, GroupMember<PayloadContract>>;
}
const registries = new WeakMap<Transport, Registry>();

/** One transport serves every group member on it: IQs are routed by (node, group). */
function registryOf(transport: Transport): Registry {
  let r = registries.get(transport);
  if (r) return r;
  const reg: Registry = { members: new Map() };
  registries.set(transport, reg);
  const router = IqRouter.for(transport);
  const route = (iq: Element, payload: Element): void => {
    const key = `${payload.attrs['node'] ?? ''}\u0000${payload.attrs['group'] ?? ''}`;
    const m = reg.members.get(key);
    if (!m) {
      void transport
        .send(errorReply(iq, new StanzaError({ condition: 'item-not-found', text: 'no such group member here' })))
        .catch(() => undefined);
      return;
    }
    m._onIq(iq, payload);
  };
  router.handle(NS_XMPPBUS_PUBSUB, 'join', route);
  router.handle(NS_XMPPBUS_PUBSUB, 'deliver', route);
  router.addFeature(NS_XMPPBUS_PUBSUB);
  return reg;
}

interface MemberInfo {
  jid: string;
  lastSeen: number;
  inFlight: number;
}

/** @internal one member of a competing-consumer group (see the module comment). */
export class GroupMember<C extends PayloadContract> {
  readonly #o: GroupMemberOptions<C>;
  readonly #state: string;
  readonly #me: string;
  readonly #key: string;
  readonly #iq: IqCaller;
  readonly #members = new Map<string, MemberInfo>();
  readonly #recent = new Set<string>();
  readonly #inProgress = new Set<string>();
  readonly #seen = new Set<string>();
  #term = 0;
  #leader: string | undefined;
  #pipeline: Pipeline<C> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #electing: Promise<void> | undefined;
  #closed = false;
  #rr = 0;
  #offState: (() => void) | undefined;

  constructor(options: GroupMemberOptions<C>) {
    this.#o = options;
    this.#state = groupStateNode(options.group, options.node);
    this.#me = options.pubsub.transport.address;
    this.#key = `${options.node}\u0000${options.group}`;
    this.#iq = IqCaller.for(options.pubsub.transport);
  }

  get isLeader(): boolean {
    return this.#leader === this.#me && this.#pipeline !== undefined;
  }

  async start(): Promise<void> {
    const o = this.#o;
    const reg = registryOf(o.pubsub.transport);
    if (reg.members.has(this.#key))
      throw new Error(`a member of group '${o.group}' on '${o.node}' already runs on this transport`);
    reg.members.set(this.#key, this as unknown as GroupMember<PayloadContract>);
    const opts = { timeout: o.timeout ?? 30_000 };
    await o.pubsub.ensureNode(
      this.#state,
      { persistItems: true, maxItems: 20, accessModel: 'open', publishModel: 'open' },
      {
        ...opts,
        reconfigure: false,
      },
    );
    this.#offState = o.pubsub.onNode(this.#state, (e) => this.#onStateEvent(e));
    await o.pubsub.subscribe(this.#state, opts);
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
          if (!jid) void this.#elect().catch((err: unknown) => this.#o.onError(err as Error, undefined));
          else void this.#heartbeat();
        });
      }
    }
  }

  async #readLeader(): Promise<{ term: number; jid: string } | undefined> {
    const best = await latestOfTerm(this.#o.pubsub, this.#state, 'leader');
    return best ? { term: best.term, jid: best.el.attrs['jid'] ?? '' } : undefined;
  }

  #elect(): Promise<void> {
    this.#electing ??= this.#runElection().finally(() => {
      this.#electing = undefined;
    });
    return this.#electing;
  }

  async #runElection(): Promise<void> {
    const o = this.#o;
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
        await o.pubsub.createNode(`${this.#state}/term/${term}`, { persistItems: false }, { timeout: 10_000 });
      } catch (err) {
        // (ejabberd's "Database failure" for a concurrent creation is retried by createNode,
        // whose next attempt answers `conflict` like Prosody does.)
        if (!(err instanceof StanzaError) || err.condition !== 'conflict') throw err;
        // Someone else won this term: give it time to announce itself; if it never does (it
        // died right after winning), move past that term.
        conflicts = term === lastConflict ? conflicts + 1 : 1;
        lastConflict = term;
        if (conflicts >= 5) floor = term + 1;
        await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 200)));
        continue;
      }
      this.#term = term;
      this.#leader = this.#me;
      await this.#announce(this.#me);
      void o.pubsub.deleteNode(`${this.#state}/term/${term - 1}`, { timeout: 10_000 }).catch(() => undefined);
      await this.#lead(st?.jid);
      return;
    }
  }

  #announce(jid: string): Promise<string> {
    return this.#o.pubsub.publishElement(
      this.#state,
      xml('leader', { xmlns: NS_XMPPBUS_PUBSUB, term: this.#term, jid }),
      { id: `leader-${this.#term}`, timeout: 10_000 },
    );
  }

  async #lead(previous?: string): Promise<void> {
    const o = this.#o;
    this.#leader = this.#me;
    if (previous && previous !== this.#me) {
      // The old leader's subscription would keep receiving (and bouncing) events.
      await o.pubsub.unsubscribe(o.node, { jid: previous, timeout: 10_000 }).catch(() => undefined);
    }
    const stats: ConsumerStats = { handled: 0, invalid: 0, failed: 0, duplicates: 0, replayed: 0 };
    const pipeline = new Pipeline<C>({
      pubsub: o.pubsub,
      node: o.node,
      contract: o.contract,
      jid: o.jid,
      subscribe: o.subscribe,
      durableKey: `group:${o.group}`,
      store: new StateNodeStore(o.pubsub, this.#state, this.#term),
      startFrom: o.startFrom,
      dedupeWindow: 200,
      concurrency: o.concurrency,
      timeout: o.timeout,
      stats,
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
        const iq = xml(
          'iq',
          { type: 'set', to: m.jid, from: this.#me, id: randomId() },
          xml('deliver', { xmlns: NS_XMPPBUS_PUBSUB, node: this.#o.node, group: this.#o.group, id: meta.id }, payload),
        );
        await this.#iq.request(iq, { timeout: 30_000, signal: meta.signal });
        return;
      } catch (err) {
        if (err instanceof StanzaError && err.application?.name === 'handler-failed') {
          return; // the member ran the handler and it failed: reported there, not redelivered
        }
        if (meta.signal.aborted) throw err;
        this.#members.delete(m.jid);
      } finally {
        m.inFlight--;
      }
    }
  }

  #pick(tried: Set<string>): MemberInfo | undefined {
    const now = Date.now();
    const live: (MemberInfo | undefined)[] = [undefined]; // undefined = this instance
    for (const m of this.#members.values()) {
      if (now - m.lastSeen > 3 * this.#o.heartbeatMs) this.#members.delete(m.jid);
      else if (!tried.has(m.jid)) live.push(m);
    }
    if (tried.has(this.#me) || this.#closed) live.shift();
    if (live.length === 0) return undefined;
    const pick = live[this.#rr++ % live.length];
    if (pick === undefined) tried.add(this.#me);
    return pick;
  }

  async #handleLocal(value: PayloadOf<C>, meta: EventMeta): Promise<void> {
    const o = this.#o;
    try {
      await o.handler(value, meta);
      o.stats.handled++;
    } catch (err) {
      o.stats.failed++;
      o.onError(err as Error, meta);
    }
  }

  /** @internal an IQ addressed to this member (routed by node and group). */
  _onIq(iq: Element, payload: Element): void {
    const t = this.#o.pubsub.transport;
    const reply = (el: Element): void => void t.send(el).catch(() => undefined);
    if (payload.name === 'join') {
      // A closing leader still answers until it has saved its position and announced the
      // vacancy: a member electing earlier would resume from a stale checkpoint.
      if (this.#leader !== this.#me) {
        reply(errorReply(iq, new StanzaError({ condition: 'unexpected-request', text: 'not the group leader' })));
        return;
      }
      const from = iq.attrs['from'] ?? '';
      const m = this.#members.get(from);
      if (m) m.lastSeen = Date.now();
      else this.#members.set(from, { jid: from, lastSeen: Date.now(), inFlight: 0 });
      reply(resultReply(iq));
      return;
    }
    // deliver
    const id = payload.attrs['id'] ?? '';
    const el = childElements(payload)[0];
    if (this.#closed || !el) {
      reply(errorReply(iq, new StanzaError({ condition: 'service-unavailable', text: 'member closing' })));
      return;
    }
    if (this.#recent.has(id) || this.#inProgress.has(id)) {
      reply(resultReply(iq)); // a redelivery of something handled here already
      return;
    }
    const o = this.#o;
    let value: PayloadOf<C>;
    try {
      value = decode(o.contract, el);
    } catch (err) {
      o.stats.invalid++;
      o.onInvalid({ id, node: o.node, payload: el, error: err as Error });
      reply(resultReply(iq));
      return;
    }
    this.#inProgress.add(id);
    const meta: EventMeta = {
      id,
      node: o.node,
      service: o.pubsub.service,
      publisher: undefined,
      delayed: undefined,
      replay: false,
      signal: AbortSignal.timeout(60_000),
    };
    void (async () => {
      let failed = false;
      try {
        await o.handler(value, meta);
        o.stats.handled++;
      } catch (err) {
        failed = true;
        o.stats.failed++;
        o.onError(err as Error, meta);
      }
      this.#inProgress.delete(id);
      this.#recent.add(id);
      if (this.#recent.size > o.dedupeWindow) this.#recent.delete(this.#recent.values().next().value!);
      reply(
        failed
          ? errorReply(
              iq,
              new StanzaError({
                condition: 'internal-server-error',
                text: 'handler failed',
                application: xml('handler-failed', { xmlns: NS_XMPPBUS_PUBSUB }),
              }),
            )
          : resultReply(iq),
      );
    })();
  }

  async #join(leader: string): Promise<boolean> {
    try {
      const iq = xml(
        'iq',
        { type: 'set', to: leader, from: this.#me, id: randomId() },
        xml('join', { xmlns: NS_XMPPBUS_PUBSUB, node: this.#o.node, group: this.#o.group }),
      );
      await this.#iq.request(iq, { timeout: Math.max(2_000, 2 * this.#o.heartbeatMs) });
      return true;
    } catch {
      return false;
    }
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed || this.#electing || this.isLeader) return;
    const leader = this.#leader;
    if (leader && leader !== this.#me && (await this.#join(leader))) return;
    if (!this.#closed) await this.#elect().catch((err: unknown) => this.#o.onError(err as Error, undefined));
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.#heartbeat().finally(() => this.#schedule());
    }, this.#o.heartbeatMs);
  }

  async close(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#offState?.();
    await this.#electing?.catch(() => undefined);
    if (this.#pipeline) {
      await this.#stepDown();
      // Hand over at once: unsubscribe and announce the vacancy (members elect on the notification).
      await this.#o.pubsub
        .unsubscribe(this.#o.node, { jid: this.#o.jid, timeout: options.timeout ?? 5_000 })
        .catch(() => undefined);
      await this.#announce('').catch(() => undefined);
    }
    this.#leader = undefined;
    const reg = registryOf(this.#o.pubsub.transport);
    if (reg.members.get(this.#key) === (this as unknown as GroupMember<PayloadContract>)) reg.members.delete(this.#key);
    while (this.#inProgress.size > 0) await new Promise((r) => setTimeout(r, 10));
  }
}
