/**
 * The serving side of RPC over IQ. An `RpcServer` serves methods on a session's `IqRouter`, so
 * pubsub and messaging on the same link keep answering their own IQs; several servers on one
 * session are separate concurrency pools.
 *
 * Per inbound call: deadline check → decode + validate the request → handler → validate + encode
 * the response → `result` IQ. Failures follow the one callee policy (docs/protocol.md, "Errors a
 * service answers") plus rpc's own refusals (draining, deadline passed, busy).
 */
import {
  ClosedError,
  ConfigError,
  ConflictError,
  HEADER,
  NS_DISCO_ITEMS,
  StanzaError,
  TimeoutError,
  WaitQueue,
  calleeError,
  emptyHeaders,
  errorReply,
  randomId,
  readHeaders,
  resultReply,
  toError,
  xml,
  type Clock,
  type Element,
  type Headers,
  type Logger,
  type Session,
  type StanzaErrorInit,
  type TimerHandle,
  type Transport,
  type WaitOptions,
} from '@xmppbus/core';
import { ValidationError, decode, encode, type MethodContract, type RequestOf, type ResponseOf } from '@xmppbus/schema';
import { parseDeadline } from './deadline.js';
import { RpcError } from './rpc-error.js';
import { NS_RPC, headersIndex, invalidElement, invalidText } from './wire.js';

const EMPTY_HEADERS: Headers = emptyHeaders();

/** What a handler learns about the call besides the request (the handler context of docs/api.md). */
export interface HandlerContext {
  /** Full JID of the caller. */
  readonly from: string;
  /** The address the call was sent to (the component domain or a JID in it). */
  readonly to: string;
  /** SHIM headers of the call (trace context, deadline, correlation id, custom ones); empty when none. */
  readonly headers: Headers;
  /**
   * Aborts when the caller's deadline passes (no one waits for the result any more) or the server
   * closes. Created on first access, so handlers that ignore it cost nothing.
   */
  readonly signal: AbortSignal;
  /** Always undefined: IQs are never stored for later delivery (kept for the common context shape). */
  readonly delayedFrom: Date | undefined;
  /** Absolute deadline (ms since epoch) from the caller's `xmppbus-deadline` header, if any. */
  readonly deadline: number | undefined;
}

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
  /** Validate responses before sending (default true); a failure answers `internal-server-error`. */
  validateResponses?: boolean;
  /** Extra time (ms) granted past the caller's deadline, for clock skew between hosts (default 250). */
  deadlineGrace?: number;
  /** Disco identity name (default: none). */
  name?: string;
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
}

/**
 * `idle` → `starting` → `ready` (serving) → `draining` (refuses new calls) → `closed`.
 * Instance presence reports `ready` as `serving` on the wire (docs/protocol.md §3.3).
 */
export type RpcServerStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

class CallContext implements HandlerContext {
  readonly from: string;
  readonly to: string;
  readonly deadline: number | undefined;
  readonly headers: Headers;
  readonly #grace: number;
  readonly #clock: Clock;
  #controller: AbortController | undefined;
  #timer: TimerHandle | undefined;

  constructor(from: string, to: string, deadline: number | undefined, headers: Headers, grace: number, clock: Clock) {
    this.from = from;
    this.to = to;
    this.deadline = deadline;
    this.headers = headers;
    this.#grace = grace;
    this.#clock = clock;
  }

  get delayedFrom(): Date | undefined {
    return undefined;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      const c = (this.#controller = new AbortController());
      if (this.deadline !== undefined) {
        const ms = Math.max(0, this.deadline + this.#grace - this.#clock.now());
        this.#timer = this.#clock.setTimeout(
          () => c.abort(new TimeoutError('the caller no longer waits (deadline passed)')),
          ms,
        );
      }
    }
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    this.#controller ??= new AbortController();
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  dispose(): void {
    this.#timer?.cancel();
  }
}

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
  readonly #entries = new Map<string, Entry>();
  readonly #active = new Set<CallContext>();
  readonly #idle: WaitQueue;
  #queue: Queued[] = [];
  #queueHead = 0;
  #running = 0;
  #status: RpcServerStatus = 'idle';
  #starting: Promise<void> | undefined;
  /** Recent distinct callers, told by presence when this instance drains (bounded). */
  readonly #watchers = new Set<string>();
  /** Removers of what `start()` registered (disco, presence listener, session membership). */
  #offStart: (() => void)[] = [];
  /** Calls answered `resource-constraint` because the queue was full. */
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
    this.#idle = new WaitQueue({ clock: this.#clock, what: 'RpcServer.drain' });
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
    return this.#queue.length - this.#queueHead;
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
    this.#offStart.push(
      this.#session.onPresence((p) => this.#onPresence(p)),
      this.#session.add(this),
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
    ];
    entry.off = () => {
      for (const f of offs) f();
    };
  }

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
    const from = iq.attrs['from'];
    if (typeof from === 'string' && this.#watchers.size < 1024) this.#watchers.add(from);
    if (this.#running < this.#concurrency) {
      this.#run(entry, iq, payload);
      return;
    }
    if (this.queued >= this.#maxQueue) {
      this.rejected++;
      this.#reject(iq, {
        condition: 'resource-constraint',
        type: 'wait',
        text: `too busy: ${this.#concurrency} calls running, ${this.#maxQueue} queued`,
      });
      return;
    }
    this.#queue.push({ entry, iq, payload });
  }

  #run(entry: Entry, iq: Element, payload: Element): void {
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
      this.#next();
      return;
    }
    const contract = entry.contract;
    let request: unknown;
    if (headersEl) payload.children.splice(hi, 1);
    try {
      request = decode(contract.request, payload);
    } catch (err) {
      this.#send(errorReply(iq, invalidRequest(err)));
      this.#next();
      return;
    } finally {
      if (headersEl) payload.children.splice(hi, 0, headersEl);
    }
    const ctx = new CallContext(
      iq.attrs['from'] ?? '',
      iq.attrs['to'] ?? '',
      deadline,
      headers,
      this.#grace,
      this.#clock,
    );
    this.#running++;
    this.#active.add(ctx);
    let result: unknown;
    try {
      result = entry.handler(request as RequestOf<MethodContract>, ctx);
    } catch (err) {
      this.#finish(entry, iq, ctx, err, true);
      return;
    }
    if (
      result instanceof Promise ||
      (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function')
    ) {
      Promise.resolve(result as PromiseLike<unknown>).then(
        (value: unknown) => this.#finish(entry, iq, ctx, value, false),
        (err: unknown) => this.#finish(entry, iq, ctx, err, true),
      );
    } else {
      this.#finish(entry, iq, ctx, result, false);
    }
  }

  #finish(entry: Entry, iq: Element, ctx: CallContext, outcome: unknown, failed: boolean): void {
    ctx.dispose();
    this.#active.delete(ctx);
    this.#running--;
    let reply: Element;
    if (failed) {
      reply = errorReply(iq, this.#handlerFailure(entry.contract, outcome));
    } else {
      try {
        const contract = entry.contract.response;
        reply = resultReply(iq, encode(contract, outcome as ResponseOf<MethodContract>, this.#encodeOptions));
      } catch (err) {
        reply = errorReply(iq, this.#invalidResponse(entry.contract, err));
      }
    }
    this.#send(reply);
    this.#next();
  }

  /** Starts queued calls while slots are free; wakes drain waiters when idle. */
  #next(): void {
    while (this.#running < this.#concurrency && this.#queueHead < this.#queue.length) {
      const q = this.#queue[this.#queueHead]!;
      this.#queue[this.#queueHead++] = undefined as unknown as Queued;
      if (this.#queueHead === this.#queue.length) {
        this.#queue = [];
        this.#queueHead = 0;
      } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#queueHead);
        this.#queueHead = 0;
      }
      this.#run(q.entry, q.iq, q.payload);
    }
    if (this.#running === 0 && this.#queueHead >= this.#queue.length && this.#idle.size > 0) this.#idle.wake();
  }

  #invalidResponse(contract: MethodContract, err: unknown): StanzaError {
    const ref = randomId().slice(0, 8);
    const e = toError(err);
    this.#log.error(`rpc: handler of {${contract.ns}}${contract.name} returned an invalid response (ref ${ref})`, e);
    if (err instanceof ValidationError) {
      return new StanzaError({
        condition: 'internal-server-error',
        type: 'cancel',
        text: `${invalidText('response', err.issues)} (ref ${ref})`,
        application: invalidElement('response', err.issues),
      });
    }
    return new StanzaError({ condition: 'internal-server-error', type: 'cancel', text: `internal error (ref ${ref})` });
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
      return this.#invalidResponse(contract, e);
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

  /** Answers `iq` with a stanza error (refusals decided before or instead of a handler). */
  #reject(iq: Element, init: StanzaErrorInit): void {
    this.#send(errorReply(iq, new StanzaError(init)));
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
    if (this.#watchers.size < 1024) this.#watchers.add(from);
    this.#send(this.#presence(to, from));
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
    if (this.#running === 0 && this.#queueHead >= this.#queue.length) return Promise.resolve();
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
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const q = this.#queue[i]!;
      this.#reject(q.iq, { condition: 'service-unavailable', text: 'server closed' });
    }
    this.#queue = [];
    this.#queueHead = 0;
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

function invalidRequest(err: unknown): StanzaError {
  if (err instanceof ValidationError) {
    return new StanzaError({
      condition: 'bad-request',
      type: 'modify',
      text: invalidText('request', err.issues),
      application: invalidElement('request', err.issues),
    });
  }
  // Malformed beyond the schema (too many elements, unmappable XML): still the caller's fault.
  return new StanzaError({
    condition: 'bad-request',
    type: 'modify',
    text: `invalid request: ${toError(err).message}`,
  });
}
