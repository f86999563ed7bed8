/**
 * Subscriber operations: idempotent subscribe/unsubscribe, subscription lists and options, and
 * item retrieval (oldest first, XEP-0059 pages followed).
 */
import { StanzaError, bareJid, childElements, findChild, localName, xml } from '@xmppbus/core';
import type { WaitOptions } from '@xmppbus/core';
import { findForm, parseForm, submitForm, type DataForm, type FieldValue } from './forms.js';
import { NS_PUBSUB, NS_PUBSUB_SUBSCRIBE_OPTIONS, NS_RSM } from './ns.js';
import { parseSubscriptions } from './owner.js';
import { pubsubOf, type Requester } from './requester.js';
import type {
  Item,
  ItemsOptions,
  SubscribeOptions,
  Subscription,
  SubscriptionState,
  UnsubscribeOptions,
} from './types.js';

type Fields = ReadonlyMap<string, FieldValue> | Readonly<Record<string, FieldValue>>;

function toFieldMap(v: Fields): Map<string, FieldValue> {
  return v instanceof Map ? new Map(v) : new Map(Object.entries(v as Record<string, FieldValue>));
}

export class Subscriber {
  readonly #req: Requester;

  constructor(req: Requester) {
    this.#req = req;
  }

  async subscribe(node: string, options: SubscribeOptions): Promise<Subscription> {
    const req = this.#req;
    const jid = options.jid ?? req.jid;
    if (req.fromFor(jid) === jid || bareJid(jid) === req.jid) {
      const existing = (await this.subscriptions(jid, node, options)).find(
        (s) => s.node === node && s.jid === jid && s.state === 'subscribed',
      );
      if (existing && !options.options) return existing;
    }
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscribe', { node, jid }));
    if (options.options) {
      ps.cnode(xml('options', null, submitForm(NS_PUBSUB_SUBSCRIBE_OPTIONS, toFieldMap(options.options))));
    }
    const res = await req.request('set', ps, 'subscribe', node, options, jid);
    const s = findChild(pubsubOf(res) ?? res, 'subscription');
    return {
      node: s?.attrs['node'] ?? node,
      jid: s?.attrs['jid'] ?? jid,
      subid: s?.attrs['subid'],
      state: (s?.attrs['subscription'] ?? 'subscribed') as SubscriptionState,
    };
  }

  async unsubscribe(node: string, options: UnsubscribeOptions): Promise<void> {
    const jid = options.jid ?? this.#req.jid;
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('unsubscribe', { node, jid, subid: options.subid }));
    try {
      await this.#req.request('set', ps, 'unsubscribe', node, options, jid);
    } catch (err) {
      // `unexpected-request` + `<not-subscribed/>` (XEP-0060 §6.2.3.2): already the wanted state.
      if (err instanceof StanzaError && err.condition === 'unexpected-request') return;
      throw err;
    }
  }

  async subscriptions(
    jid: string | undefined,
    node: string | undefined,
    options: WaitOptions,
  ): Promise<Subscription[]> {
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscriptions', { node }));
    const res = await this.#req.request('get', ps, 'subscriptions', node, options, jid);
    const all = parseSubscriptions(res, node);
    return node === undefined ? all : all.filter((s) => s.node === node);
  }

  async getOptions(node: string, options: UnsubscribeOptions): Promise<DataForm> {
    const jid = options.jid ?? this.#req.jid;
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('options', { node, jid, subid: options.subid }));
    const res = await this.#req.request('get', ps, 'options', node, options, jid);
    const form = findForm(findChild(pubsubOf(res) ?? res, 'options'));
    return form ? parseForm(form) : { type: 'form', formType: undefined, fields: new Map() };
  }

  async setOptions(node: string, fields: Fields, options: UnsubscribeOptions): Promise<void> {
    const jid = options.jid ?? this.#req.jid;
    const form = submitForm(NS_PUBSUB_SUBSCRIBE_OPTIONS, toFieldMap(fields));
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('options', { node, jid, subid: options.subid }, form));
    await this.#req.request('set', ps, 'options', node, options, jid);
  }

  async items(node: string, options: ItemsOptions): Promise<Item[]> {
    const out: Item[] = [];
    let after: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const items = xml('items', { node, max_items: options.max });
      for (const id of options.ids ?? []) items.cnode(xml('item', { id }));
      const ps = xml('pubsub', { xmlns: NS_PUBSUB }, items);
      if (after !== undefined) ps.cnode(xml('set', { xmlns: NS_RSM }, xml('after', null, after)));
      const res = await this.#req.request('get', ps, 'items', node, options);
      const body = pubsubOf(res);
      const got = body ? findChild(body, 'items') : undefined;
      let n = 0;
      for (const i of got ? childElements(got) : []) {
        if (localName(i) !== 'item') continue;
        n++;
        out.push({ id: i.attrs['id'] ?? '', payload: childElements(i)[0], publisher: i.attrs['publisher'] });
      }
      // Follow RSM paging only for "all items" requests that came back incomplete.
      const set = body ? findChild(body, 'set', NS_RSM) : undefined;
      if (!set || options.max !== undefined || options.ids || n === 0) break;
      const count = Number(findChild(set, 'count')?.children[0] ?? NaN);
      const last = findChild(set, 'last');
      if (!last || !Number.isFinite(count) || out.length >= count) break;
      after = String(last.children[0] ?? '');
    }
    return out;
  }
}
