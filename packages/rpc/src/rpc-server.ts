/**
 * The serving side of RPC over IQ. One `RpcServer` per transport (or several, for separate
 * concurrency pools) registers method handlers with the transport's shared `IqRouter`, so pubsub
 * and messaging on the same link keep answering their own IQs.
 *
 * Per inbound call: deadline check → decode + validate the request → handler → validate + encode
 * the response → `result` IQ. Failures become RFC 6120 stanza errors (see docs/protocol.md).
 */
import {
  ClosedError,
  ConfigError,
  HEADER,
  IqRouter,
  NS_DISCO_ITEMS,
  StanzaError,
  TimeoutError,
  errorReply,
  randomId,
  readHeaders,
  resultReply,
  toError,
  waitForStatus,
  withAbort,
  xml,
  deferred,
  type Deferred,
  type Element,
  type Headers,
  type Transport,
  type WaitOptions,
  type Logger,
  type StanzaErrorInit,
  silentLogger,
} from '@xmppbus/core';
import { ValidationError, decode, encode, type MethodContract, type RequestOf, type ResponseOf } from '@xmppbus/schema';
import { parseDeadline } from './deadline.js';
import { RpcError } from './rpc-error.js';
import { NS_RPC, headersIndex, invalidElement, invalidText } from './wire.js';

/** Console-compatible logger (`logger: console` works); silent by default. Same as core's `Logger`. */
export type RpcLogger = Logger;

const noop = (): void => {};
const EMPTY_HEADERS: Headers = new Map<string, string>();

/** What a handler learns about the call besides the request. */
export interface HandlerContext {
  /** Full JID of the caller. */
  readonly from: string;
  /** The address the call was sent to (the component domain or a JID in it). */
  readonly to: string;
  /** Absolute deadline (ms since epoch) from the caller's `xmppbus-deadline` header, if any. */
  readonly deadline: number | undefined;
  /** SHIM headers of the call (trace context, deadline, correlation id, custom ones). */
  readonly headers: Headers;
  /**
   * Aborts when the caller's deadline passes (no one waits for the result any more) or the server
   * closes. Created on first access, so handlers that ignore it cost nothing.
   */
  readonly signal: AbortSignal;
}

export type Handler<M extends MethodContract> = (
  request: RequestOf<M>,
  context: HandlerContext,
) => ResponseOf<M> | Promise<ResponseOf<M>>;

export interface RpcServerOptions {
  transport: Transport;
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
  logger?: RpcLogger;
}

interface Entry {
  readonly contract: MethodContract;
  readonly handler: Handler<MethodContract>;
}

interface Queued {
  entry: Entry;
  iq: Element;
  payload: Element;
}

/** The server's status: `serving` → `draining` (refuses new calls) → `closed`. */
export type RpcServerStatus = 'serving' | 'draining' | 'closed';

class CallContext implements HandlerContext {
  readonly from: string;
  readonly to: string;
  readonly deadline: number | undefined;
  readonly headers: Headers;
  readonly #grace: number;
  #controller: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(from: string, to: string, deadline: number | undefined, headers: Headers, grace: number) {
    this.from = from;
    this.to = to;
    this.deadline = deadline;
    this.headers = headers;
    this.#grace = grace;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      const c = (this.#controller = new AbortController());
      if (this.deadline !== undefined) {
        const ms = Math.max(0, this.deadline + this.#grace - Date.now());
        this.#timer = setTimeout(() => c.abort(new TimeoutError('the caller no longer waits (deadline passed)')), ms);
      }
    }
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    this.#controller ??= new AbortController();
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }
}

export class RpcServer {
  readonly #transport: Transport;
  readonly #router: IqRouter;
  readonly #concurrency: number;
  readonly #maxQueue: number;
  readonly #validateResponses: boolean;
  readonly #encodeOptions: { readonly validate: boolean };
  readonly #grace: number;
  readonly #log: RpcLogger;
  readonly #unregister = new Map<string, () => void>();
  /** Per namespace: [refcount, unregister of the wildcard + disco feature]. */
  readonly #namespaces = new Map<string, { count: number; off: () => void }>();
  readonly #active = new Set<CallContext>();
  #queue: Queued[] = [];
  #queueHead = 0;
  #running = 0;
  #status: RpcServerStatus = 'serving';
  #idle: Deferred<void>[] = [];
  /** Recent distinct callers, told by presence when this instance drains (bounded). */
  readonly #watchers = new Set<string>();
  readonly #offPresence: () => void;
  readonly #offFeature: () => void;
  /** Calls answered `resource-constraint` because the queue was full. */
  rejected = 0;

  constructor(options: RpcServerOptions) {
    if (!options || typeof options !== 'object' || !options.transport) {
      throw new ConfigError('RpcServer: options.transport is required');
    }
    const concurrency = options.concurrency ?? 64;
    const maxQueue = options.maxQueue ?? 1024;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ConfigError(`RpcServer: concurrency must be an integer >= 1 (got ${String(concurrency)})`);
    }
    if (!Number.isInteger(maxQueue) || maxQueue < 0) {
      throw new ConfigError(`RpcServer: maxQueue must be an integer >= 0 (got ${String(maxQueue)})`);
    }
    this.#transport = options.transport;
    this.#router = IqRouter.for(options.transport);
    this.#concurrency = concurrency;
    this.#maxQueue = maxQueue;
    this.#validateResponses = options.validateResponses ?? true;
    this.#encodeOptions = { validate: this.#validateResponses };
    this.#grace = options.deadlineGrace ?? 250;
    this.#log = options.logger ?? silentLogger;
    const offRpc = this.#router.addFeature(NS_RPC);
    const offItems = this.#router.addFeature(NS_DISCO_ITEMS);
    this.#offFeature = () => {
      offRpc();
      offItems();
    };
    if (options.name !== undefined)
      this.#router.addIdentity({ category: 'component', type: 'generic', name: options.name });
    this.#offPresence = this.#transport.onStanza((s) => {
      if (s.name === 'presence') this.#onPresence(s);
    });
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
    return [...this.#unregister.keys()];
  }

  /**
   * Serves `method` with `handler`. The request is validated before the handler runs and the
   * response after it. Returns the unregister function. One handler per method per transport.
   */
  handle<M extends MethodContract>(method: M, handler: Handler<M>): () => void {
    if (this.#status === 'closed') throw new ClosedError('RpcServer is closed');
    const key = `{${method.ns}}${method.name}`;
    const entry: Entry = { contract: method, handler: handler as unknown as Handler<MethodContract> };
    let off: () => void;
    try {
      off = this.#router.handle(method.ns, method.name, (iq, payload) => this.#onCall(entry, iq, payload));
    } catch (err) {
      throw new ConfigError(`${key} already has a handler on this transport`, { cause: err });
    }
    const ns = this.#namespaces.get(method.ns);
    if (ns) ns.count++;
    else this.#namespaces.set(method.ns, { count: 1, off: this.#serveNamespace(method.ns) });
    const offItem = this.#router.addDiscoItem({ node: `${method.ns}#${method.name}`, name: method.name });
    const offNode = this.#router.addNodeInfo(`${method.ns}#${method.name}`, {
      identities: [{ category: 'automation', type: 'rpc', name: method.name }],
      features: [method.ns, NS_RPC],
    });
    const unregister = (): void => {
      if (this.#unregister.get(key) !== unregister) return;
      this.#unregister.delete(key);
      off();
      offItem();
      offNode();
      const n = this.#namespaces.get(method.ns);
      if (n && --n.count === 0) {
        this.#namespaces.delete(method.ns);
        n.off();
      }
    };
    this.#unregister.set(key, unregister);
    return unregister;
  }

  /** Advertises the namespace and answers unknown methods in it with `feature-not-implemented`. */
  #serveNamespace(ns: string): () => void {
    const offFeature = this.#router.addFeature(ns);
    let offWildcard: () => void = noop;
    try {
      offWildcard = this.#router.handle(ns, '*', (iq, payload) => {
        this.#reject(iq, {
          condition: 'feature-not-implemented',
          type: 'cancel',
          text: `method {${ns}}${payload.getName()} is not implemented here`,
        });
      });
    } catch {
      // Another server on this transport already answers unknown methods of this namespace.
    }
    return () => {
      offFeature();
      offWildcard();
    };
  }

  #onCall(entry: Entry, iq: Element, payload: Element): void {
    if (this.#status !== 'serving') {
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
    if (deadline !== undefined && deadline + this.#grace < Date.now()) {
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
      this.#send(errorReply(iq, this.#invalidRequest(err)));
      this.#next();
      return;
    } finally {
      if (headersEl) payload.children.splice(hi, 0, headersEl);
    }
    const ctx = new CallContext(iq.attrs['from'] ?? '', iq.attrs['to'] ?? '', deadline, headers, this.#grace);
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
      reply = errorReply(iq, this.#handlerFailure(entry, outcome));
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

  /** Starts queued calls while slots are free; settles drain waiters when idle. */
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
    if (this.#running === 0 && this.#queueHead >= this.#queue.length && this.#idle.length > 0) {
      const waiters = this.#idle;
      this.#idle = [];
      for (const w of waiters) w.resolve();
    }
  }

  #invalidRequest(err: unknown): StanzaError {
    if (err instanceof ValidationError) {
      return new StanzaError({
        condition: 'bad-request',
        type: 'modify',
        text: invalidText('request', err.issues),
        application: invalidElement('request', err.issues),
      });
    }
    // Malformed beyond the schema (too many elements, unmappable XML): still the caller's fault.
    const e = toError(err);
    return new StanzaError({ condition: 'bad-request', type: 'modify', text: `invalid request: ${e.message}` });
  }

  #invalidResponse(contract: MethodContract, err: unknown): StanzaError {
    const ref = randomId().slice(0, 8);
    this.#log.error(`rpc: handler of {${contract.ns}}${contract.name} returned an invalid response (ref ${ref})`, err);
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

  #handlerFailure(entry: Entry, thrown: unknown): StanzaError {
    const contract = entry.contract;
    if (thrown instanceof RpcError) {
      if (thrown.method.ns === contract.ns && thrown.method.name === contract.name) {
        return this.#declaredError(contract, thrown);
      }
      // Declared by another method (e.g. rethrown from a downstream call): not part of this contract.
    } else if (thrown instanceof StanzaError && !(thrown instanceof ValidationError)) {
      // A deliberate stanza error (item-not-found, not-authorized, …) travels as is, minus `by`.
      const init: StanzaErrorInit = { condition: thrown.condition, type: thrown.type };
      if (thrown.text !== undefined) init.text = thrown.text;
      if (thrown.application) init.application = thrown.application;
      return new StanzaError(init);
    }
    const ref = randomId().slice(0, 8);
    this.#log.error(`rpc: handler of {${contract.ns}}${contract.name} failed (ref ${ref})`, thrown);
    // Never a stack trace or message on the wire: handlers' errors may hold internals.
    return new StanzaError({ condition: 'internal-server-error', type: 'cancel', text: `internal error (ref ${ref})` });
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
    const init: StanzaErrorInit = {
      condition: err.condition,
      type: err.type,
      application,
    };
    if (err.text !== undefined) init.text = err.text;
    return new StanzaError(init);
  }

  /** A reply lost to a dropped link surfaces as the caller's timeout or ConnectionError. */
  readonly #onSendError = (err: unknown): void => this.#log.debug('rpc: reply not sent', err);

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
    const serving = this.#status === 'serving';
    return xml(
      'presence',
      { from, to, type: serving ? undefined : 'unavailable' },
      xml('instance', { xmlns: NS_RPC, state: this.#status, running: this.#running, queued: this.queued }),
    );
  }

  /**
   * Stops accepting calls (new ones get `service-unavailable` with `<draining/>`; watching clients
   * are told by presence so they route elsewhere) and resolves once every running and queued call
   * has been answered. On timeout/abort it rejects; the calls keep running.
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'serving') {
      this.#status = 'draining';
      const from = this.#transport.address;
      for (const w of this.#watchers) this.#send(this.#presence(from, w));
    }
    if (this.#running === 0 && this.#queueHead >= this.#queue.length) return;
    const d = deferred<void>();
    this.#idle.push(d);
    try {
      await withAbort(d.promise, options, 'RpcServer.drain');
    } finally {
      const i = this.#idle.indexOf(d);
      if (i >= 0) this.#idle.splice(i, 1);
    }
  }

  /**
   * Drains (bounded by `options`), then aborts the signal of any handler still running, answers
   * still-queued calls with `service-unavailable`, and unregisters every method.
   */
  async close(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return;
    try {
      await this.drain(options);
    } catch {
      // Timed out: fall through and cut the remaining calls short.
    }
    this.#status = 'closed';
    const reason = new ClosedError('RpcServer closed');
    for (const ctx of this.#active) ctx.abort(reason);
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const q = this.#queue[i]!;
      this.#reject(q.iq, { condition: 'service-unavailable', text: 'server closed' });
    }
    this.#queue = [];
    this.#queueHead = 0;
    for (const off of [...this.#unregister.values()]) off();
    this.#offPresence();
    this.#offFeature();
  }

  /** Resolves when the transport is online (convenience for start-up ordering). */
  ready(options: WaitOptions = {}): Promise<void> {
    return waitForStatus(this.#transport, 'online', options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
