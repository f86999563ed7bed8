/**
 * RPC batches (`urn:xmppbus:rpc:batch:1`, docs/protocol.md §3.5): several calls to one peer in
 * one IQ, because an XMPP server's cost is per stanza (~30 µs on ejabberd), not per call. This
 * file holds the wire vocabulary and the serving side: one batch handler per session, shared by
 * the session's RpcServers, which runs every item through the same path as a single call (the
 * access check, then the serving RpcServer's admission, deadline, validation, handler and error
 * policy) and answers one IQ once every item has settled.
 */
import {
  Element,
  StanzaError,
  childElements,
  errorReply,
  findChild,
  localName,
  noHandlerError,
  resultReply,
  stanzaBytes,
  stanzaCost,
  type Session,
} from '@xmppbus/core';

/** The batch feature and element namespace. */
export const NS_RPC_BATCH = 'urn:xmppbus:rpc:batch:1';

/** Calls one batch may carry; a receiver refuses more with `modify/policy-violation`. */
export const MAX_BATCH_CALLS = 64;

/** One call of a batch: the id its outcome answers to, and the request element. */
export interface BatchItem {
  readonly id: string;
  readonly payload: Element;
}

/**
 * The `<batch/>` element carrying `payloads` (request elements with their headers), each inside
 * `<call id='…'>`: the id lives on a wrapper of our own, never on the request element, whose
 * attributes belong to its contract. The payloads are shared, not copied, and left untouched
 * (their `parent` too) for a later single attempt.
 */
export function batchRequest(ids: readonly string[], payloads: readonly Element[]): Element {
  const batch = new Element('batch');
  batch.attrs['xmlns'] = NS_RPC_BATCH;
  for (let i = 0; i < payloads.length; i++) {
    const call = new Element('call');
    call.attrs['id'] = ids[i];
    call.children.push(payloads[i]!);
    call.parent = batch;
    batch.children.push(call);
  }
  return batch;
}

/**
 * Reads a received `<batch/>`: the items (each `<call id>`'s one request element, exactly a
 * single call's), or the whole-IQ refusal: `bad-request` for a malformed batch (no items, an item
 * that is not a `<call/>` with an id and one element, a repeated id), `policy-violation` over
 * `maxCalls`. (Its cost is checked on the IQ, which the transport measured on the wire.)
 */
export function readBatchRequest(batch: Element, maxCalls: number): BatchItem[] | StanzaError {
  const items: BatchItem[] = [];
  const ids = new Set<string>();
  for (const call of childElements(batch)) {
    const id = call.attrs['id'];
    if (localName(call) !== 'call') return badRequest(`a batch item is <call/>, not <${localName(call)}/>`);
    if (typeof id !== 'string' || id === '' || ids.has(id))
      return badRequest(id === undefined || id === '' ? 'a batch item without id' : `batch item id ${id} repeated`);
    const inner = childElements(call);
    if (inner.length !== 1) return badRequest(`batch item ${id} holds ${inner.length} elements, not one request`);
    if (items.length === maxCalls) return policyViolation(`a batch carries at most ${maxCalls} calls`);
    ids.add(id);
    items.push({ id, payload: inner[0]! });
  }
  if (items.length === 0) return badRequest('an empty batch');
  return items;
}

function badRequest(text: string): StanzaError {
  return new StanzaError({ condition: 'bad-request', type: 'modify', text });
}

function policyViolation(text: string): StanzaError {
  return new StanzaError({ condition: 'policy-violation', type: 'modify', text });
}

/**
 * The outcome element of one item from the reply its single call would have got: `<result id>`
 * with the response element, or the reply's `<error/>` given the item's `id`.
 */
export function batchOutcome(id: string, reply: Element): Element {
  if (reply.attrs['type'] !== 'error') {
    const result = new Element('result');
    result.attrs['id'] = id;
    for (const c of reply.children) {
      if (typeof c !== 'string') c.parent = result;
      result.children.push(c);
    }
    return result;
  }
  const error = findChild(reply, 'error') ?? new StanzaError({ condition: 'undefined-condition' }).toElement();
  error.attrs['id'] = id;
  return error;
}

/** Serves one item through a unit's single-call path; false when the unit has no such method. */
export type BatchServe = (
  ns: string,
  name: string,
  iq: Element,
  payload: Element,
  answer: (reply: Element) => void,
) => boolean;

/** What one RpcServer offers the session's batch handler. */
export interface BatchMember {
  readonly serve: BatchServe;
  /** The largest batch cost this member accepts (its budget of calls in hand for one sender). */
  readonly maxCost: number;
  /**
   * Whether this member wants batches (`RpcServer({ batch })`). Every RpcServer of a session
   * serves its methods' items, so a batch never misses a method; the feature is advertised and
   * the handler registered while at least one member wants them.
   */
  readonly wanted: boolean;
}

/**
 * Collects the outcomes of one batch and answers its IQ when the last one settles. The answer
 * must fit the link's stanza cap although each response alone may: an outcome that would not
 * fit is replaced by `wait/resource-constraint` (the call ran; its response could not travel).
 */
class BatchAnswer {
  readonly #iq: Element;
  readonly #out = new Element('batch');
  readonly #send: (stanza: Element) => void;
  readonly #room: number;
  #left: number;
  /** UTF-8 bytes of the outcomes so far, at most: upper bounds until `#measured`, then exact plus bounds. */
  #used = 0;
  #measured = false;

  constructor(iq: Element, count: number, maxBytes: number, send: (stanza: Element) => void) {
    this.#iq = iq;
    this.#out.attrs['xmlns'] = NS_RPC_BATCH;
    this.#left = count;
    this.#room = maxBytes;
    this.#send = send;
  }

  settle(id: string, reply: Element): void {
    let el = batchOutcome(id, reply);
    let size = this.#fit(el);
    if (size < 0) {
      const text = `the response (${-size} bytes) does not fit in the batch result; the call ran — call it alone`;
      el = batchOutcome(
        id,
        errorReply(this.#iq, new StanzaError({ condition: 'resource-constraint', type: 'wait', text })),
      );
      size = Buffer.byteLength(el.toString());
    }
    this.#used += size;
    el.parent = this.#out;
    this.#out.children.push(el);
    if (--this.#left === 0) this.#send(resultReply(this.#iq, this.#out));
  }

  /**
   * The UTF-8 bytes `el` adds as the link will count them (an upper bound), or minus its exact
   * size when it does not fit (an answer over the cap would be refused whole). `stanzaBytes`
   * counts UTF-16 units, up to 3× fewer than the bytes of non-ASCII text: while 3× that fits,
   * nothing is serialised; past it, the answer so far (once) and `el` are measured exactly.
   */
  #fit(el: Element): number {
    const bound = 3 * stanzaBytes(el);
    if (this.#used + bound <= this.#room) return bound;
    if (!this.#measured) {
      this.#measured = true;
      this.#used = Buffer.byteLength(this.#out.toString());
    }
    const size = Buffer.byteLength(el.toString());
    return this.#used + size <= this.#room ? size : -size;
  }
}

/** The session's batch handler, registered while at least one of its RpcServers wants batches. */
class BatchHub {
  readonly #session: Session;
  readonly #members: BatchMember[] = [];
  #wanted = 0;
  #off: (() => void)[] = [];

  constructor(session: Session) {
    this.#session = session;
  }

  join(member: BatchMember): () => void {
    this.#members.push(member);
    if (member.wanted && ++this.#wanted === 1) {
      const s = this.#session;
      this.#off = [
        s.router.handle(NS_RPC_BATCH, 'batch', (iq, batch) => this.#onBatch(iq, batch)),
        // The batch itself is only an envelope: each item is checked against its own method.
        s.router.delegateAccess(NS_RPC_BATCH),
        s.disco.addFeature(NS_RPC_BATCH),
      ];
    }
    return () => {
      const i = this.#members.indexOf(member);
      if (i < 0) return;
      this.#members.splice(i, 1);
      if (!member.wanted || --this.#wanted > 0) return;
      for (const off of this.#off) off();
      this.#off = [];
    };
  }

  #onBatch(iq: Element, batch: Element): void {
    const session = this.#session;
    const items = readBatchRequest(batch, MAX_BATCH_CALLS);
    if (items instanceof StanzaError) return this.#send(errorReply(iq, items));
    // The IQ's cost as admission counts it: a property read for a stanza off the wire (the
    // transport recorded its size), where the batch element alone would be walked node by node.
    const cost = stanzaCost(iq);
    let maxCost = 0;
    for (const m of this.#members) maxCost = Math.max(maxCost, m.maxCost);
    if (cost > maxCost) {
      const text = `batch too large: costs ${cost} bytes, at most ${maxCost} are accepted`;
      return this.#send(errorReply(iq, policyViolation(text)));
    }
    const from = iq.attrs['from'];
    const self = session.transport.address;
    // Room for the answer: the link's cap less the IQ envelope and what the error items may need.
    const room = session.transport.maxStanzaBytes - 1024 - 256 * items.length;
    const answer = new BatchAnswer(iq, items.length, room, (stanza) => this.#send(stanza));
    for (const { id, payload } of items) {
      // The IQ this call would have come in alone: replies are built from it, budgets charge it.
      const single = new Element('iq');
      const a = single.attrs;
      a['type'] = 'set';
      a['id'] = id;
      if (from !== undefined) a['from'] = from;
      if (iq.attrs['to'] !== undefined) a['to'] = iq.attrs['to'];
      single.children.push(payload);
      const settle = (reply: Element): void => answer.settle(id, reply);
      const ns = payload.attrs['xmlns'] ?? '';
      const name = localName(payload);
      if (!session.access.check(from, self, ns, name)) {
        const text = `${from ?? 'this sender'} may not use {${ns}}${name}`;
        settle(errorReply(single, new StanzaError({ condition: 'forbidden', type: 'auth', text })));
        continue;
      }
      if (!this.#members.some((m) => m.serve(ns, name, single, payload, settle)))
        settle(errorReply(single, noHandlerError(ns, name, session.router.handles(ns))));
    }
  }

  #send(stanza: Element): void {
    // A lost reply is the caller's timeout, as for a single call.
    this.#session.transport.send(stanza).catch((err: unknown) => {
      this.#session.logger.warn(`rpc: a batch answer to ${String(stanza.attrs['to'])} was not sent`, err as Error);
    });
  }
}

const hubs = new WeakMap<Session, BatchHub>();

/** Adds `member` to the session's batch handler (registered with the first). Returns the remover. */
export function joinBatches(session: Session, member: BatchMember): () => void {
  let hub = hubs.get(session);
  if (!hub) hubs.set(session, (hub = new BatchHub(session)));
  return hub.join(member);
}
