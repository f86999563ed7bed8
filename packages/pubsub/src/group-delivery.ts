/**
 * Batched `<deliver/>` IQs of competing-consumer groups (docs/protocol.md §4). A member that says
 * so in its `<join batches='true'/>` gets the events the leader hands it within one tick in one IQ:
 * `<deliver ids='b1#0 b1#1'><events xmlns='urn:xmppbus:events:batch:1' count='2'>…</events></deliver>`.
 * It handles them in order and answers once, with a `<failed id>` (holding the stanza error a
 * single `<deliver/>` would have been answered with) for each event that was not handled cleanly.
 * So a group at volume costs the server one IQ round trip per batch, not per event.
 */
import {
  StanzaError,
  childElements,
  errorReply,
  findChild,
  localName,
  randomId,
  resultReply,
  xml,
  type Element,
  type IqCaller,
} from '@xmppbus/core';
import { unwrapBatch } from './batch.js';
import { NS_EVENTS_BATCH, NS_XMPPBUS_PUBSUB } from './ns.js';

/** Most events a leader puts in one `<deliver/>`. */
const MAX_DELIVERY_EVENTS = 256;

interface Entry {
  id: string;
  payload: Element;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Leader side: gathers the deliveries of one tick per member into one IQ. */
export class DeliveryBatcher {
  readonly #pending = new Map<string, Entry[]>();
  readonly #caller: IqCaller;
  readonly #from: string;
  readonly #deliver: { node: string; group: string };

  constructor(caller: IqCaller, from: string, deliver: { node: string; group: string }) {
    this.#caller = caller;
    this.#from = from;
    this.#deliver = deliver;
  }

  /**
   * Resolves once `member` handled the event; rejects with the StanzaError a single `<deliver/>`
   * would have got (`handler-failed` marked: not to be redelivered), or the IQ's failure.
   */
  deliver(member: string, id: string, payload: Element, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let list = this.#pending.get(member);
      if (list === undefined) {
        this.#pending.set(member, (list = []));
        queueMicrotask(() => this.#flush(member, signal));
      }
      list.push({ id, payload, resolve, reject });
      if (list.length >= MAX_DELIVERY_EVENTS) this.#flush(member, signal);
    });
  }

  #flush(member: string, signal: AbortSignal): void {
    const entries = this.#pending.get(member);
    if (entries === undefined) return;
    this.#pending.delete(member);
    const wrapper = xml('events', { xmlns: NS_EVENTS_BATCH, count: String(entries.length) });
    for (const e of entries) wrapper.cnode(e.payload);
    const iq = xml(
      'iq',
      { type: 'set', to: member, from: this.#from, id: randomId() },
      xml('deliver', { xmlns: NS_XMPPBUS_PUBSUB, ...this.#deliver, ids: entries.map((e) => e.id).join(' ') }, wrapper),
    );
    // The member handles the events one after another: 30 s as for a single event, plus 1 s each.
    this.#caller.request(iq, { timeout: 30_000 + 1_000 * entries.length, signal }).then(
      (res) => {
        const failed = new Map<string, StanzaError>();
        const body = findChild(res, 'delivered');
        for (const f of body ? childElements(body) : []) {
          // By local name, as every <error/> (design §2: peers send it in jabber:client).
          const err = localName(f) === 'failed' ? findChild(f, 'error') : undefined;
          if (err) failed.set(f.attrs['id'] ?? '', StanzaError.fromElement(err));
        }
        for (const e of entries) {
          const err = failed.get(e.id);
          if (err) e.reject(err);
          else e.resolve();
        }
      },
      (err: unknown) => {
        for (const e of entries) e.reject(err as Error);
      },
    );
  }
}

/** What the member does with one delivered event; `answer` is called once, with undefined when handled. */
export type DeliverOne = (id: string, event: Element, answer: (error: StanzaError | undefined) => void) => void;

/**
 * Member side: handles a batched `<deliver/>` event by event, in order, and answers once.
 * `hold()` keeps the member busy (its drain waits) until the answer is sent; it returns the release.
 */
export function deliverBatch(
  iq: Element,
  deliver: Element,
  wrapper: Element,
  member: { one: DeliverOne; reply: (el: Element) => void; hold: () => () => void; maxEvents: number },
): void {
  let events: Element[];
  try {
    events = unwrapBatch(wrapper, member.maxEvents).events;
  } catch (err) {
    member.reply(errorReply(iq, new StanzaError({ condition: 'bad-request', text: (err as Error).message })));
    return;
  }
  const list = deliver.attrs['ids'];
  const ids = typeof list === 'string' && list !== '' ? list.split(' ') : [];
  if (ids.length !== events.length) {
    const text = `deliver has ${ids.length} ids for ${events.length} events`;
    member.reply(errorReply(iq, new StanzaError({ condition: 'bad-request', text })));
    return;
  }
  const release = member.hold();
  const body = xml('delivered', { xmlns: NS_XMPPBUS_PUBSUB });
  let i = 0;
  const next = (): void => {
    if (i === events.length) {
      member.reply(resultReply(iq, body));
      release();
      return;
    }
    const id = ids[i]!;
    member.one(id, events[i++]!, (error) => {
      if (error) body.cnode(xml('failed', { id }, error.toElement()));
      queueMicrotask(next);
    });
  };
  next();
}
