/**
 * The serving side of RPC over IQ. An `RpcServer` serves methods on a session's `IqRouter`, so
 * pubsub and messaging on the same link keep answering their own IQs; several servers on one
 * session are separate concurrency pools.
 *
 * Per inbound call (the session's router has already checked access): budget → run at once, or
 * wait in a queue that serves senders in turn → deadline check → decode + validate the request →
 * handler → validate + encode the response → `result` IQ. Failures follow the one callee policy (docs/protocol.md, "Errors a
 * service answers") plus rpc's own refusals (draining, deadline passed, busy).
 */
import {
  ClosedError,
  ConfigError,
  ConflictError,
  FairQueue,
  HEADER,
  NS_DISCO_ITEMS,
  SenderBudget,
  stanzaCost,
  StanzaError,
  WaitQueue,
  calleeError,
  emptyHeaders,
  errorReply,
  readHeaders,
  resultReply,
  toError,
  xml,
  type Clock,
  type Element,
  type Headers,
  type Logger,
  type OperationScope,
  type Session,
  type StanzaErrorInit,
  type Transport,
  type WaitOptions,
} from '@xmppbus/core';
import { decode, describeMethod, encode, type MethodContract, type RequestOf, type ResponseOf } from '@xmppbus/schema';
import { budgetLimits, type RpcLimits } from './call-admission.js';
import { CallContext, type HandlerContext } from './call-context.js';
import { parseDeadline } from './deadline.js';
import { RpcError } from './rpc-error.js';
import { joinBatches } from './batch.js';
import { NS_RPC, headersIndex, invalidRequest, invalidResponse } from './wire.js';

const EMPTY_HEADERS: Headers = emptyHeaders();

export type Handler<M extends MethodContract> = (
  request: RequestOf<M>,
  context: HandlerContext,
) => ResponseOf<M> | Promise<ResponseOf<M>>;

export interface RpcServerOptions {
  session: Session;
  /** Handlers running at once, across all methods of this server (default 64). */
  concurrency?: number;
  /** Calls waiting for a free slot before new ones get `wait/resource-constraint` (default 1024). */
  maxQueue?: number;
  /**
   * Byte and count budgets of the calls in hand (running and queued), per sender (bare JID) and
   * in total; over budget → `wait/resource-constraint`, a call no budget can ever hold →
   * `modify/policy-violation`. Defaults: 1 MiB / 64 per sender, 16 MiB / 1024 in total.
   */
  limits?: RpcLimits;
  /** Validate responses before sending (default true); a failure answers `internal-server-error`. */
  validateResponses?: boolean;
  /** Extra time (ms) granted past the caller's deadline, for clock skew between hosts (default 250). */
  deadlineGrace?: number;
  /** Disco identity name (default: none). */
  name?: string;
  /**
   * Serve `urn:xmppbus:rpc:batch:1` (several calls per IQ, docs/protocol.md §3.5; default true):
   * advertised in disco#info, each call run exactly as if it came alone. `false`: not advertised
   * (unless another RpcServer of the session takes batches: then this one's calls are served in them too).
   */
  batch?: boolean;
}

interface Entry {
  readonly contract: MethodContract;
  readonly handler: Handler<MethodContract>;
  /** Removes the router handler and disco entries once started; undefined before. */
  off: (() => void) | undefined;
}

interface Queued {
  entry: Entry;
  iq: Element;
  payload: Element;
  from: string;
  cost: number;
}

/**
 * `idle` → `starting` → `ready` (serving) → `draining` (refuses new calls) → `closed`.
 * Instance presence reports `ready` as `serving` on the wire (docs/protocol.md §3.3).
 */
export type RpcServerStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

export class RpcServer implements AsyncDisposable {
  readonly name = 'RpcServer';
  readonly #session: Session;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #concurrency: number;
  readonly #maxQueue: number;
  readonly #encodeOptions: { readonly validate: boolean };
  readonly #grace: number;
  readonly #identityName: string | undefined;
  readonly #batch: boolean;
  /** Calls that came in a batch, by the IQ they would have come in alone: their replies join the batch's answer. */
  readonly #batchReplies = new Map<Element, (reply: Element) => void>();
  readonly #entries = new Map<string, Entry>();
  readonly #active = new Set<CallContext>();
  readonly #idle: WaitQueue;
  readonly #budget: SenderBudget;
  /** Calls waiting for a slot, served one sender at a time so a flood cannot starve the others. */
  readonly #queue = new FairQueue<Queued>();
  #running = 0;
  #status: RpcServerStatus = 'idle';
  #starting: Promise<void> | undefined;
  /** Recent distinct callers, told by presence when this instance drains (bounded). */
  readonly #watchers = new Set<string>();
  /** Removers of what `start()` registered (disco, presence listener, session membership). */
  #offStart: (() => void)[] = [];
  /** Calls refused for being over a budget or the queue being full. */
  rejected = 0;

  /** Validates the options; registers nothing until `start()`. */
  constructor(options: RpcServerOptions) {
    if (!options || typeof options !== 'object' || !options.session)
      throw new ConfigError('RpcServer: options.session is required');
    const concurrency = options.concurrency ?? 64;
    const maxQueue = options.maxQueue ?? 1024;
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new ConfigError(`RpcServer: concurrency must be an integer >= 1 (got ${String(concurrency)})`);
    if (!Number.isInteger(maxQueue) || maxQueue < 0)
      throw new ConfigError(`RpcServer: maxQueue must be an integer >= 0 (got ${String(maxQueue)})`);
    const grace = options.deadlineGrace ?? 250;
    if (!(grace >= 0)) throw new ConfigError(`RpcServer: deadlineGrace must be >= 0 ms (got ${String(grace)})`);
    this.#session = options.session;
    this.#transport = options.session.transport;
    this.#clock = options.session.clock;
    this.#log = options.session.logger;
    this.#concurrency = concurrency;
    this.#maxQueue = maxQueue;
    this.#encodeOptions = { validate: options.validateResponses ?? true };
    this.#grace = grace;
    this.#identityName = options.name;
    this.#batch = options.batch ?? true;
    this.#idle = new WaitQueue({ clock: this.#clock, what: 'RpcServer.drain' });
    this.#budget = new SenderBudget(budgetLimits(options.limits), 'RpcServer.limits');
  }

  get status(): RpcServerStatus {
    return this.#status;
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running;
  }

  /** Calls waiting for a free concurrency slot. */
  get queued(): number {
    return this.#queue.size;
  }

  /** What the calls in hand (running and queued) hold of the budgets: cost in bytes, and calls. */
  get usage(): { bytes: number; count: number } {
    return this.#budget.usage;
  }

  /** What `sender`'s calls in hand hold (by bare JID). */
  usageOf(sender: string): { bytes: number; count: number } {
    return this.#budget.usageOf(sender);
  }

  /** The methods served, as `{ns}name` keys. */
  get methods(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * Serves `method` with `handler` (registered with the session's router at `start()`, or at once
   * when started). The request is validated before the handler runs and the response after it.
   * Returns the remover. One handler per method: a second throws `ConflictError`.
   */
  handle<M extends MethodContract>(method: M, handler: Handler<M>): () => void {
    if (this.#status === 'closed') throw new ClosedError('RpcServer is closed');
    const key = `{${method.ns}}${method.name}`;
    if (this.#entries.has(key)) throw new ConflictError(`${key} already has a handler on this server`);
    const entry: Entry = { contract: method, handler: handler as unknown as Handler<MethodContract>, off: undefined };
    if (this.#status === 'ready' || this.#status === 'draining') this.#register(entry);
    this.#entries.set(key, entry);
    return () => {
      if (this.#entries.get(key) !== entry) return;
      this.#entries.delete(key);
      entry.off?.();
      entry.off = undefined;
    };
  }

  /**
   * Becomes ready: waits for the session, then registers the methods, the disco features and
   * identity and the presence listener, and joins the session's lifecycle. Idempotent.
   */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining')
      return Promise.reject(new ClosedError(`RpcServer is ${this.#status}`));
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
    if (this.#status !== 'starting') return; // closed meanwhile
    const registered: Entry[] = [];
    try {
      for (const entry of this.#entries.values()) {
        this.#register(entry);
        registered.push(entry);
      }
    } catch (err) {
      for (const e of registered) e.off?.();
      this.#starting = undefined;
      this.#status = 'idle';
      throw err;
    }
    const disco = this.#session.disco;
    this.#offStart.push(disco.addFeature(NS_RPC), disco.addFeature(NS_DISCO_ITEMS));
    if (this.#identityName !== undefined)
      this.#offStart.push(disco.addIdentity({ category: 'component', type: 'generic', name: this.#identityName }));
    const b = this.#budget;
    const maxCost = Math.min(b.perSenderBytes, b.totalBytes);
    this.#offStart.push(joinBatches(this.#session, { serve: this.#serveBatchItem, maxCost, wanted: this.#batch }));
    this.#offStart.push(
      this.#session.onPresence((p) => this.#onPresence(p)),
      this.#session.add(this),
      this.#session.instrumentation.observe('rpc-server', () => ({
        inFlight: this.#running,
        queueDepth: this.#queue.size,
        queueBytes: this.#budget.usage.bytes,
      })),
    );
    this.#status = 'ready';
  }

  #register(entry: Entry): void {
    const { ns, name } = entry.contract;
    // Throws ConflictError when another unit of the session serves this method.
    const off = this.#session.router.handle(ns, name, (iq, payload) => this.#onCall(entry, iq, payload));
    const disco = this.#session.disco;
    const node = `${ns}#${name}`;
    // Features are reference counted: the namespace stays advertised while one method serves it.
    const offs = [
      off,
      disco.addFeature(ns),
      // Listed only to requesters the session's access policy lets call the method.
      disco.addItem({ node, name, guard: { ns, name } }),
      disco.addNodeInfo(node, {
        identities: [{ category: 'automation', type: 'rpc', name }],
        features: [ns, NS_RPC],
        guard: { ns, name },
      }),
      // Reflected to peers without our contracts (docs/protocol.md §6); described once, here.
      this.#session.schemas.add(describeMethod(entry.contract)),
    ];
    entry.off = () => {
      for (const f of offs) f();
    };
  }

  /** A call of a batch: taken through `#onCall` like a single one when this server has the method. */
  readonly #serveBatchItem = (
    ns: string,
    name: string,
    iq: Element,
    payload: Element,
    answer: (reply: Element) => void,
  ): boolean => {
    const entry = this.#entries.get(`{${ns}}${name}`);
    if (entry?.off === undefined) return false;
    this.#batchReplies.set(iq, answer);
    this.#onCall(entry, iq, payload);
    return true;
  };

  #onCall(entry: Entry, iq: Element, payload: Element): void {
    if (this.#status !== 'ready') {
      this.#reject(iq, {
        condition: 'service-unavailable',
        type: 'cancel',
        text: 'this instance is shutting down',
        application: xml('draining', { xmlns: NS_RPC }),
      });
      return;
    }
    const from = iq.attrs['from'] ?? '';
    if (from !== '' && this.#watchers.size < 1024) this.#watchers.add(from);
    // Every call in hand is charged until answered: one flood cannot hold unbounded memory.
    const cost = stanzaCost(iq);
    if (!this.#budget.tryTake(from, cost)) {
      this.#overBudget(iq, cost);
      return;
    }
    if (this.#running < this.#concurrency) {
      this.#run(entry, iq, payload, from, cost);
      return;
    }
    if (this.#queue.size >= this.#maxQueue) {
      this.#budget.give(from, cost);
      this.rejected++;
      this.#reject(iq, {
        condition: 'resource-constraint',
        type: 'wait',
        text: `too busy: ${this.#concurrency} calls running, ${this.#maxQueue} queued`,
      });
      return;
    }
    this.#queue.push(from, { entry, iq, payload, from, cost });
  }

  #overBudget(iq: Element, cost: number): void {
    this.rejected++;
    const b = this.#budget;
    const most = Math.min(b.perSenderBytes, b.totalBytes);
    if (cost > most) {
      // No budget can ever hold it: retrying would not help.
      this.#reject(iq, {
        condition: 'policy-violation',
        type: 'modify',
        text: `request too large: costs ${cost} bytes, at most ${most} are accepted`,
      });
      return;
    }
    this.#reject(iq, {
      condition: 'resource-constraint',
      type: 'wait',
      text: 'too busy: over the budget of calls in hand (for this sender or in total)',
    });
  }

  #run(entry: Entry, iq: Element, payload: Element, from: string, cost: number): void {
    // The headers ride inside the request element; hide them from the (possibly strict) decoder
    // for the duration of the synchronous decode, without leaving the inbound stanza changed.
    const hi = headersIndex(payload);
    let headersEl: Element | undefined;
    let headers = EMPTY_HEADERS;
    let deadline: number | undefined;
    if (hi >= 0) {
      headersEl = payload.children[hi] as Element;
      headers = readHeaders(headersEl);
      const d = headers.get(HEADER.deadline);
      if (d !== undefined) {
        const t = parseDeadline(d);
        if (!Number.isNaN(t)) deadline = t;
      }
    }
    if (deadline !== undefined && deadline + this.#grace < this.#clock.now()) {
      this.#reject(iq, {
        condition: 'resource-constraint',
        type: 'wait',
        text: 'the deadline passed before the call could start',
        application: xml('deadline-exceeded', { xmlns: NS_RPC }),
      });
      this.#budget.give(from, cost);
      this.#next();
      return;
    }
    const contract = entry.contract;
    let request: unknown;
    if (headersEl) payload.children.splice(hi, 1);
    try {
      request = decode(contract.request, payload);
    } catch (err) {
      this.#answer(iq, errorReply(iq, invalidRequest(err)));
      this.#budget.give(from, cost);
      this.#next();
      return;
    } finally {
      if (headersEl) payload.children.splice(hi, 0, headersEl);
    }
    const ctx = new CallContext(from, iq.attrs['to'] ?? '', deadline, headers, cost, this.#grace, this.#clock);
    this.#running++;
    this.#active.add(ctx);
    const instr = this.#session.instrumentation;
    const scope = instr.enabled ? instr.rpcServerCall(contract.ns, contract.name, from, headers) : undefined;
    let result: unknown;
    try {
      result = scope
        ? scope.run(() => entry.handler(request as RequestOf<MethodContract>, ctx))
        : entry.handler(request as RequestOf<MethodContract>, ctx);
    } catch (err) {
      this.#finish(entry, iq, ctx, err, true, scope);
      return;
    }
    if (
      result instanceof Promise ||
      (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function')
    ) {
      Promise.resolve(result as PromiseLike<unknown>).then(
        (value: unknown) => this.#finish(entry, iq, ctx, value, false, scope),
        (err: unknown) => this.#finish(entry, iq, ctx, err, true, scope),
      );
    } else {
      this.#finish(entry, iq, ctx, result, false, scope);
    }
  }

  #finish(
    entry: Entry,
    iq: Element,
    ctx: CallContext,
    outcome: unknown,
    failed: boolean,
    scope: OperationScope | undefined,
  ): void {
    ctx.dispose();
    this.#active.delete(ctx);
    this.#running--;
    this.#budget.give(ctx.from, ctx.cost);
    let reply: Element;
    if (failed) {
      // Logged inside the call's span, so the log line carries its trace_id/span_id.
      const error = scope
        ? scope.run(() => this.#handlerFailure(entry.contract, outcome))
        : this.#handlerFailure(entry.contract, outcome);
      scope?.end(error);
      reply = errorReply(iq, error);
    } else {
      try {
        const contract = entry.contract.response;
        reply = resultReply(iq, encode(contract, outcome as ResponseOf<MethodContract>, this.#encodeOptions));
        scope?.end();
      } catch (err) {
        const error = invalidResponse(entry.contract, err, this.#log);
        scope?.end(error);
        reply = errorReply(iq, error);
      }
    }
    this.#answer(iq, reply);
    this.#next();
  }

  /** Starts queued calls while slots are free; wakes drain waiters when idle. */
  #next(): void {
    while (this.#running < this.#concurrency && this.#queue.size > 0) {
      const q = this.#queue.shift()!;
      this.#run(q.entry, q.iq, q.payload, q.from, q.cost);
    }
    if (this.#running === 0 && this.#queue.size === 0 && this.#idle.size > 0) this.#idle.wake();
  }

  /** A declared error of this method travels with its data; anything else follows core's callee policy. */
  #handlerFailure(contract: MethodContract, thrown: unknown): StanzaError {
    if (thrown instanceof RpcError && thrown.method.ns === contract.ns && thrown.method.name === contract.name)
      return this.#declaredError(contract, thrown);
    return calleeError(thrown, { logger: this.#log, what: `rpc: handler of {${contract.ns}}${contract.name}` });
  }

  #declaredError(contract: MethodContract, err: RpcError): StanzaError {
    const declared = contract.errors[err.errorName];
    let application: Element;
    try {
      application = declared?.schema
        ? encode({ kind: 'payload', ns: contract.ns, name: err.errorName, schema: declared.schema }, err.data as never)
        : xml(err.errorName, { xmlns: contract.ns });
    } catch (e) {
      return invalidResponse(contract, e, this.#log);
    }
    const init: StanzaErrorInit = { condition: err.condition, type: err.type, application };
    if (err.text !== undefined) init.text = err.text;
    return new StanzaError(init);
  }

  /** A reply lost to a dropped link surfaces as the caller's timeout or ConnectionError. */
  readonly #onSendError = (err: unknown): void => this.#log.debug('rpc: reply not sent', toError(err));

  #send(stanza: Element): void {
    this.#transport.send(stanza).catch(this.#onSendError);
  }

  /** Sends the reply to a call, or hands it to the batch answer when the call came in one. */
  #answer(iq: Element, reply: Element): void {
    const batched = this.#batchReplies.size === 0 ? undefined : this.#batchReplies.get(iq);
    if (batched === undefined) return this.#send(reply);
    this.#batchReplies.delete(iq);
    batched(reply);
  }

  /** Answers `iq` with a stanza error (refusals decided before or instead of a handler). */
  #reject(iq: Element, init: StanzaErrorInit): void {
    this.#answer(iq, errorReply(iq, new StanzaError(init)));
  }

  #onPresence(p: Element): void {
    // An RpcClient watching this instance says hello with <watch xmlns='urn:xmppbus:rpc:1'/>.
    const from = p.attrs['from'];
    const to = p.attrs['to'];
    if (typeof from !== 'string' || typeof to !== 'string') return;
    const type = p.attrs['type'];
    if (type !== undefined && type !== 'probe') {
      if (type === 'unavailable') this.#watchers.delete(from);
      return;
    }
    if (type === undefined && !p.getChild('watch', NS_RPC)) return;
    // State and load are told only to those who may call something here.
    if (!this.#mayCallAny(from)) return;
    if (this.#watchers.size < 1024) this.#watchers.add(from);
    this.#send(this.#presence(to, from));
  }

  #mayCallAny(from: string): boolean {
    const access = this.#session.access;
    const self = this.#session.address;
    for (const { contract } of this.#entries.values())
      if (access.allows(from, self, contract.ns, contract.name)) return true;
    return false;
  }

  #presence(from: string, to: string): Element {
    const serving = this.#status === 'ready';
    return xml(
      'presence',
      { from, to, type: serving ? undefined : 'unavailable' },
      xml('instance', {
        xmlns: NS_RPC,
        state: serving ? 'serving' : this.#status,
        running: this.#running,
        queued: this.queued,
      }),
    );
  }

  /**
   * Stops accepting calls (new ones get `service-unavailable` with `<draining/>`; watching clients
   * are told by presence so they route elsewhere) and resolves once every running and queued call
   * has been answered. On timeout/abort it rejects; the calls keep running until `close()`.
   */
  drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return Promise.resolve();
    if (this.#status !== 'draining') {
      const wasServing = this.#status === 'ready';
      this.#status = 'draining';
      if (wasServing) {
        const from = this.#session.address;
        for (const w of this.#watchers) this.#send(this.#presence(from, w));
      }
    }
    if (this.#running === 0 && this.#queue.size === 0) return Promise.resolve();
    return this.#idle.wait(options);
  }

  /**
   * Releases everything at once: aborts the signal of every handler still running (their late
   * answers are still sent), answers queued calls with `service-unavailable`, unregisters the
   * methods, disco entries and presence listener. Drain first for a graceful stop. Idempotent.
   */
  close(): Promise<void> {
    if (this.#status === 'closed') return Promise.resolve();
    this.#status = 'closed';
    const reason = new ClosedError('RpcServer closed');
    for (const ctx of this.#active) ctx.abort(reason);
    for (const q of this.#queue.clear()) {
      this.#budget.give(q.from, q.cost);
      this.#reject(q.iq, { condition: 'service-unavailable', text: 'server closed' });
    }
    for (const entry of this.#entries.values()) entry.off?.();
    this.#entries.clear();
    for (const off of this.#offStart) off();
    this.#offStart = [];
    this.#idle.fail(reason);
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
