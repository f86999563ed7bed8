/**
 * A small in-memory XEP-0060 service for unit tests: give it a session over a MemoryHub (or any
 * transport), `await service.start()`, and it answers the IQs `PubSub` sends — create/configure/default/delete/purge,
 * publish (with publish-options preconditions and max_items eviction), retract, subscribe,
 * unsubscribe, subscriptions, options, items, affiliations, disco — and sends notifications the
 * way Prosody does (`headline` by default). Permissions follow Prosody: only `admins` create
 * nodes; publishing needs owner/publisher (or admin). Not for production.
 */
import {
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  StanzaError,
  bareJid,
  childElements,
  errorReply,
  findChild,
  localName,
  resultReply,
  xml,
  type Element,
  type Session,
} from '@xmppbus/core';
import { clone } from 'ltx';
import { findForm, parseForm } from '../forms.js';
import { NS_PUBSUB, NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT, NS_PUBSUB_NODE_CONFIG, NS_PUBSUB_OWNER } from '../ns.js';

export interface MemoryPubSubServiceOptions {
  /** JIDs that may create nodes and act as owner of every node (Prosody's `admins`). */
  admins?: readonly string[];
  /** Anyone may create nodes (ejabberd with `access_createnode: all`). Default false. */
  openCreate?: boolean;
  /** Default `pubsub#max_items` (Prosody: 20). */
  defaultMaxItems?: number;
  /** Cap for `max` (Prosody's `pubsub_max_items`, 1000). */
  maxItemsCap?: number;
  /**
   * Name each item's publisher (`<item publisher='…'>`) in notifications and item retrieval, like
   * Prosody's `expose_publisher = true`. Default false; a node configured with
   * `pubsub#itemreply` = `publisher` (ejabberd's way) names them too.
   */
  exposePublisher?: boolean;
}

interface MemNode {
  config: Map<string, string>;
  items: { id: string; payload: Element; publisher: string }[];
  subscribers: Map<string, string>; // jid -> subid
  affiliations: Map<string, string>;
}

const DEFAULTS: readonly [string, string][] = [
  ['pubsub#title', ''],
  ['pubsub#max_items', '20'],
  ['pubsub#persist_items', '1'],
  ['pubsub#access_model', 'open'],
  ['pubsub#publish_model', 'publishers'],
  ['pubsub#send_last_published_item', 'never'],
  ['pubsub#deliver_notifications', '1'],
  ['pubsub#deliver_payloads', '1'],
  ['pubsub#notification_type', 'headline'],
  ['pubsub#notify_delete', '1'],
  ['pubsub#notify_retract', '1'],
  ['pubsub#notify_config', '0'],
];

export class MemoryPubSubService implements AsyncDisposable {
  readonly session: Session;
  readonly nodes = new Map<string, MemNode>();
  readonly #admins: Set<string>;
  readonly #openCreate: boolean;
  readonly #cap: number;
  readonly #exposePublisher: boolean;
  readonly #defaults: Map<string, string>;
  #subSeq = 0;
  /** Publish requests answered (for assertions). */
  published = 0;

  #offs: (() => void)[] = [];

  constructor(session: Session, options: MemoryPubSubServiceOptions = {}) {
    this.session = session;
    this.#admins = new Set((options.admins ?? []).map(bareJid));
    this.#openCreate = options.openCreate ?? false;
    this.#cap = options.maxItemsCap ?? 1000;
    this.#exposePublisher = options.exposePublisher ?? false;
    this.#defaults = new Map(DEFAULTS);
    this.#defaults.set('pubsub#max_items', String(options.defaultMaxItems ?? 20));
  }

  /** Registers the service's IQ handlers and starts the session. */
  async start(): Promise<void> {
    if (this.#offs.length === 0) {
      const router = this.session.router;
      this.#offs.push(
        router.handle(NS_PUBSUB, 'pubsub', (iq, p) => this.#safe(iq, () => this.#pubsub(iq, p))),
        router.handle(NS_PUBSUB_OWNER, 'pubsub', (iq, p) => this.#safe(iq, () => this.#owner(iq, p))),
        router.handle(NS_DISCO_ITEMS, 'query', (iq, p) => this.#safe(iq, () => this.#discoItems(p))),
        router.handle(NS_DISCO_INFO, 'query', (iq, p) => this.#safe(iq, () => this.#discoInfo(p))),
      );
    }
    await this.session.start();
  }

  /** Stops answering and closes the session. */
  async close(): Promise<void> {
    for (const off of this.#offs.splice(0)) off();
    await this.session.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #safe(iq: Element, fn: () => Element | undefined): void {
    let reply: Element;
    try {
      reply = resultReply(iq, fn());
    } catch (err) {
      reply = errorReply(
        iq,
        err instanceof StanzaError ? err : new StanzaError({ condition: 'internal-server-error', text: String(err) }),
      );
    }
    void this.session.send(reply).catch(() => undefined);
  }

  #node(name: string | undefined): MemNode {
    const n = name === undefined ? undefined : this.nodes.get(name);
    if (!n) throw new StanzaError({ condition: 'item-not-found', text: `no node ${name ?? ''}` });
    return n;
  }

  #aff(n: MemNode, jid: string): string {
    if (this.#admins.has(bareJid(jid))) return 'owner';
    return n.affiliations.get(bareJid(jid)) ?? 'none';
  }

  #requireOwner(n: MemNode, jid: string): void {
    if (this.#aff(n, jid) !== 'owner') throw new StanzaError({ condition: 'forbidden', text: 'owner only' });
  }

  #applyForm(config: Map<string, string>, x: Element | undefined): void {
    if (!x) return;
    for (const [k, f] of parseForm(x).fields) {
      if (k === 'FORM_TYPE') continue;
      let v = f.values[0] ?? '';
      if (k === 'pubsub#max_items') {
        if (v === 'max') v = String(this.#cap);
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > this.#cap)
          throw new StanzaError({ condition: 'not-acceptable', text: `bad max_items ${v}` });
      }
      config.set(k, v);
    }
  }

  #configForm(config: Map<string, string>): Element {
    const x = xml('x', { xmlns: 'jabber:x:data', type: 'form' });
    x.cnode(xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', null, NS_PUBSUB_NODE_CONFIG)));
    for (const [k, v] of config) x.cnode(xml('field', { var: k }, xml('value', null, v)));
    return x;
  }

  #exposes(n: MemNode): boolean {
    return this.#exposePublisher || n.config.get('pubsub#itemreply') === 'publisher';
  }

  #notify(name: string, n: MemNode, child: Element, except?: string): void {
    const type = n.config.get('pubsub#notification_type') ?? 'headline';
    for (const jid of n.subscribers.keys()) {
      if (jid === except) continue;
      const msg = xml(
        'message',
        { from: this.session.address, to: jid, type },
        xml('event', { xmlns: NS_PUBSUB_EVENT }, clone(child)),
      );
      void this.session.send(msg).catch(() => undefined);
    }
    void name;
  }

  #pubsub(iq: Element, ps: Element): Element | undefined {
    const from = iq.attrs['from'] ?? '';
    const op = childElements(ps)[0];
    if (!op) throw new StanzaError({ condition: 'bad-request' });
    const node = op.attrs['node'];
    switch (localName(op)) {
      case 'create': {
        if (node === undefined)
          throw new StanzaError({ condition: 'not-acceptable', text: 'instant nodes unsupported' });
        if (!this.#openCreate && !this.#admins.has(bareJid(from))) throw new StanzaError({ condition: 'forbidden' });
        if (this.nodes.has(node)) throw new StanzaError({ condition: 'conflict', text: 'node exists' });
        const config = new Map(this.#defaults);
        this.#applyForm(config, findForm(findChild(ps, 'configure')));
        this.nodes.set(node, {
          config,
          items: [],
          subscribers: new Map(),
          affiliations: new Map([[bareJid(from), 'owner']]),
        });
        return undefined;
      }
      case 'publish': {
        const n = this.#node(node);
        const aff = this.#aff(n, from);
        const model = n.config.get('pubsub#publish_model');
        const allowed =
          aff === 'owner' ||
          aff === 'publisher' ||
          model === 'open' ||
          (model === 'subscribers' && n.subscribers.has(from));
        if (!allowed) throw new StanzaError({ condition: 'forbidden' });
        const po = findForm(findChild(ps, 'publish-options'));
        if (po) {
          for (const [k, f] of parseForm(po).fields) {
            if (k === 'FORM_TYPE') continue;
            if ((n.config.get(k) ?? '') !== (f.values[0] ?? '')) {
              throw new StanzaError({
                condition: 'conflict',
                text: `Field does not match: ${k}`,
                application: xml('precondition-not-met', { xmlns: NS_PUBSUB_ERRORS }),
              });
            }
          }
        }
        const item = findChild(op, 'item');
        const payload = item ? childElements(item)[0] : undefined;
        if (!item || !payload)
          throw new StanzaError({ condition: 'bad-request', text: 'item with one payload required' });
        const id = item.attrs['id'] ?? String(++this.#subSeq);
        this.published++;
        if (n.config.get('pubsub#persist_items') !== '0') {
          const i = n.items.findIndex((x) => x.id === id);
          if (i >= 0) n.items.splice(i, 1); // Prosody moves a replaced item to the end
          n.items.push({ id, payload: clone(payload), publisher: bareJid(from) });
          const max = Number(n.config.get('pubsub#max_items') ?? 20);
          while (n.items.length > max) n.items.shift();
        }
        const publisher = this.#exposes(n) ? bareJid(from) : undefined;
        this.#notify(node!, n, xml('items', { node }, xml('item', { id, publisher }, clone(payload))));
        return xml('pubsub', { xmlns: NS_PUBSUB }, xml('publish', { node }, xml('item', { id })));
      }
      case 'retract': {
        const n = this.#node(node);
        const aff = this.#aff(n, from);
        if (aff !== 'owner' && aff !== 'publisher') throw new StanzaError({ condition: 'forbidden' });
        const id = findChild(op, 'item')?.attrs['id'];
        const i = n.items.findIndex((x) => x.id === id);
        if (i < 0) throw new StanzaError({ condition: 'item-not-found' });
        n.items.splice(i, 1);
        const notify = op.attrs['notify'] === 'true' || op.attrs['notify'] === '1';
        if (notify) this.#notify(node!, n, xml('items', { node }, xml('retract', { id })));
        return undefined;
      }
      case 'subscribe': {
        const n = this.#node(node);
        const jid = op.attrs['jid'] ?? from;
        if (n.config.get('pubsub#access_model') === 'whitelist' && this.#aff(n, jid) === 'none') {
          throw new StanzaError({
            condition: 'not-allowed',
            application: xml('closed-node', { xmlns: NS_PUBSUB_ERRORS }),
          });
        }
        let subid = n.subscribers.get(jid);
        if (!subid) n.subscribers.set(jid, (subid = `s${++this.#subSeq}`));
        return xml(
          'pubsub',
          { xmlns: NS_PUBSUB },
          xml('subscription', { node, jid, subid, subscription: 'subscribed' }),
        );
      }
      case 'unsubscribe': {
        const n = this.#node(node);
        const jid = op.attrs['jid'] ?? from;
        if (!n.subscribers.delete(jid)) {
          throw new StanzaError({
            condition: 'unexpected-request',
            application: xml('not-subscribed', { xmlns: NS_PUBSUB_ERRORS }),
          });
        }
        return undefined;
      }
      case 'subscriptions': {
        const subs = xml('subscriptions');
        for (const [name, n] of this.nodes) {
          if (node !== undefined && name !== node) continue;
          for (const [jid, subid] of n.subscribers) {
            if (bareJid(jid) === bareJid(from)) {
              subs.cnode(xml('subscription', { node: name, jid, subid, subscription: 'subscribed' }));
            }
          }
        }
        return xml('pubsub', { xmlns: NS_PUBSUB }, subs);
      }
      case 'options':
        throw new StanzaError({
          condition: 'feature-not-implemented',
          application: xml('unsupported', { xmlns: NS_PUBSUB_ERRORS, feature: 'subscription-options' }),
        });
      case 'items': {
        const n = this.#node(node);
        const ids = childElements(op).map((i) => i.attrs['id']);
        let list = n.items;
        if (ids.length > 0) list = list.filter((i) => ids.includes(i.id));
        const max = op.attrs['max_items'];
        if (max !== undefined) list = list.slice(-Number(max));
        const items = xml('items', { node });
        const expose = this.#exposes(n);
        for (const i of list)
          items.cnode(xml('item', { id: i.id, publisher: expose ? i.publisher : undefined }, clone(i.payload)));
        return xml('pubsub', { xmlns: NS_PUBSUB }, items);
      }
      default:
        throw new StanzaError({ condition: 'feature-not-implemented' });
    }
  }

  #owner(iq: Element, ps: Element): Element | undefined {
    const from = iq.attrs['from'] ?? '';
    const op = childElements(ps)[0];
    if (!op) throw new StanzaError({ condition: 'bad-request' });
    const node = op.attrs['node'];
    switch (localName(op)) {
      case 'default':
        return xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('default', null, this.#configForm(this.#defaults)));
      case 'configure': {
        const n = this.#node(node);
        this.#requireOwner(n, from);
        const form = findForm(op);
        if (!form || iq.attrs['type'] === 'get') {
          return xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node }, this.#configForm(n.config)));
        }
        this.#applyForm(n.config, form);
        if (n.config.get('pubsub#notify_config') === '1') this.#notify(node!, n, xml('configuration', { node }));
        return undefined;
      }
      case 'delete': {
        const n = this.#node(node);
        this.#requireOwner(n, from);
        this.nodes.delete(node!);
        if (n.config.get('pubsub#notify_delete') !== '0') this.#notify(node!, n, xml('delete', { node }));
        return undefined;
      }
      case 'purge': {
        const n = this.#node(node);
        this.#requireOwner(n, from);
        n.items = [];
        this.#notify(node!, n, xml('purge', { node }));
        return undefined;
      }
      case 'affiliations': {
        const n = this.#node(node);
        this.#requireOwner(n, from);
        if (iq.attrs['type'] === 'get') {
          const affs = xml('affiliations', { node });
          for (const [jid, a] of n.affiliations) affs.cnode(xml('affiliation', { jid, affiliation: a }));
          return xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, affs);
        }
        for (const a of childElements(op)) {
          const jid = bareJid(a.attrs['jid'] ?? '');
          const v = a.attrs['affiliation'] ?? 'none';
          if (v === 'none') n.affiliations.delete(jid);
          else n.affiliations.set(jid, v);
        }
        return undefined;
      }
      case 'subscriptions': {
        const n = this.#node(node);
        this.#requireOwner(n, from);
        const subs = xml('subscriptions', { node });
        for (const [jid, subid] of n.subscribers)
          subs.cnode(xml('subscription', { jid, subid, subscription: 'subscribed' }));
        return xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, subs);
      }
      default:
        throw new StanzaError({ condition: 'feature-not-implemented' });
    }
  }

  #discoItems(q: Element): Element {
    const out = xml('query', { xmlns: NS_DISCO_ITEMS, node: q.attrs['node'] });
    if (q.attrs['node'] === undefined) {
      for (const name of this.nodes.keys()) out.cnode(xml('item', { jid: this.session.address, node: name }));
    }
    return out;
  }

  #discoInfo(q: Element): Element {
    const node = q.attrs['node'];
    if (node !== undefined) {
      this.#node(node);
      return xml('query', { xmlns: NS_DISCO_INFO, node }, xml('identity', { category: 'pubsub', type: 'leaf' }));
    }
    const features = ['publish', 'subscribe', 'create-nodes', 'retrieve-items', 'publish-options', 'retrieve-default'];
    return xml(
      'query',
      { xmlns: NS_DISCO_INFO },
      xml('identity', { category: 'pubsub', type: 'service', name: 'xmppbus memory pubsub' }),
      xml('feature', { var: NS_PUBSUB }),
      ...features.map((f) => xml('feature', { var: `${NS_PUBSUB}#${f}` })),
    );
  }
}
