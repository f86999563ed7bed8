/**
 * Discovery (XEP-0030) and owner operations (create, configure, delete, purge, affiliations,
 * subscribers) of one pub/sub service. Server differences in node configuration are absorbed
 * here: fields the service does not know are filtered out against its `<default/>` form, and
 * ejabberd's transient "Database failure" on concurrent creations is retried.
 */
import {
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  RetryPolicy,
  StanzaError,
  bareJid,
  childElements,
  findChild,
  localName,
  sleep,
  xml,
} from '@xmppbus/core';
import type { Element, WaitOptions } from '@xmppbus/core';
import { findForm, parseForm, submitForm, type DataForm, type FieldValue } from './forms.js';
import { configFromForm, configToFields, type NodeConfig } from './node-config.js';
import { NS_PUBSUB, NS_PUBSUB_NODE_CONFIG, NS_PUBSUB_OWNER } from './ns.js';
import { pubsubOf, type Requester } from './requester.js';
import type { Affiliation, NodeRef, ServerFlavor, ServiceInfo, Subscription, SubscriptionState } from './types.js';

/** ejabberd's "Database failure" on concurrent creations: a few quick retries, jittered. */
const CREATE_RETRY = { attempts: 4, initialDelay: 20, maxDelay: 200, factor: 2, jitter: 0.5 } as const;

export class NodeOwner {
  readonly #req: Requester;
  readonly #nodeDefaults: NodeConfig | undefined;
  readonly #createRetry: RetryPolicy;
  #info: Promise<ServiceInfo> | undefined;
  #supportedFields: Promise<Set<string> | undefined> | undefined;

  constructor(req: Requester, nodeDefaults: NodeConfig | undefined) {
    this.#req = req;
    this.#nodeDefaults = nodeDefaults;
    this.#createRetry = new RetryPolicy(CREATE_RETRY, {}, req.session.random, 'createNode retry');
  }

  // ---------------------------------------------------------------------------------------------
  // Discovery

  info(options: WaitOptions): Promise<ServiceInfo> {
    if (!this.#info) {
      const p = this.#req
        .request('get', xml('query', { xmlns: NS_DISCO_INFO }), 'discover', undefined, options)
        .then(parseInfo);
      this.#info = p;
      p.catch(() => {
        if (this.#info === p) this.#info = undefined; // retry next time
      });
    }
    return this.#info;
  }

  async discoverNodes(options: WaitOptions & { node?: string }): Promise<NodeRef[]> {
    const query = xml('query', { xmlns: NS_DISCO_ITEMS, node: options.node });
    const res = await this.#req.request('get', query, 'discover', options.node, options);
    const q = findChild(res, 'query');
    const out: NodeRef[] = [];
    for (const c of q ? childElements(q) : []) {
      const node = c.attrs['node'];
      if (localName(c) === 'item' && node !== undefined) out.push({ node, name: c.attrs['name'] });
    }
    return out;
  }

  async nodeInfo(node: string, options: WaitOptions): Promise<{ type: string; meta: DataForm | undefined }> {
    const res = await this.#req.request('get', xml('query', { xmlns: NS_DISCO_INFO, node }), 'discover', node, options);
    const q = findChild(res, 'query');
    const identity = q ? findChild(q, 'identity') : undefined;
    const form = findForm(q);
    return { type: identity?.attrs['type'] ?? 'leaf', meta: form ? parseForm(form) : undefined };
  }

  async nodeExists(node: string, options: WaitOptions): Promise<boolean> {
    try {
      await this.nodeInfo(node, options);
      return true;
    } catch (err) {
      if (err instanceof StanzaError && err.condition === 'item-not-found') return false;
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Node configuration

  /** Config fields the server knows (from its default node config form), or undefined if it will not say. */
  #knownFields(options: WaitOptions): Promise<Set<string> | undefined> {
    if (!this.#supportedFields) {
      const p = this.#req
        .request('get', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('default')), 'configure', undefined, options)
        .then((res) => {
          const form = findForm(findChild(pubsubOf(res) ?? res, 'default'));
          return form ? new Set(parseForm(form).fields.keys()) : undefined;
        })
        .catch((err: unknown) => {
          if (err instanceof StanzaError && !err.retryable) return undefined; // no <default/>: send everything
          throw err;
        });
      this.#supportedFields = p;
      p.catch(() => {
        if (this.#supportedFields === p) this.#supportedFields = undefined;
      });
    }
    return this.#supportedFields;
  }

  /**
   * Wire fields for `config`, dropping those the server does not know (ejabberd rejects a whole
   * form with an unknown field; Prosody ignores them) with a warning naming them.
   */
  async #configFields(config: NodeConfig, options: WaitOptions): Promise<Map<string, FieldValue>> {
    const fields = configToFields(config);
    const known = await this.#knownFields(options);
    if (!known) return fields;
    const dropped: string[] = [];
    for (const k of fields.keys()) {
      if (!known.has(k)) {
        fields.delete(k);
        dropped.push(k);
      }
    }
    if (dropped.length > 0)
      this.#req.session.logger.warn(`pubsub: ${this.#req.service} does not support ${dropped.join(', ')}; not sent`);
    return fields;
  }

  #withDefaults(config: NodeConfig | undefined): NodeConfig {
    if (!this.#nodeDefaults) return config ?? {};
    return { ...this.#nodeDefaults, ...config, extra: { ...this.#nodeDefaults.extra, ...config?.extra } };
  }

  async createNode(node: string, config: NodeConfig | undefined, options: WaitOptions): Promise<void> {
    const fields = await this.#configFields(this.#withDefaults(config), options);
    const configure = xml('configure');
    if (fields.size > 0) configure.cnode(submitForm(NS_PUBSUB_NODE_CONFIG, fields));
    const create = xml('pubsub', { xmlns: NS_PUBSUB }, xml('create', { node }), configure);
    const backoff = this.#createRetry.backoff();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#req.request('set', create, 'create', node, options);
        return;
      } catch (err) {
        // ejabberd aborts concurrent node creations (a mnesia lock cycle on its node index) with
        // `internal-server-error` "Database failure"; nothing was created, so trying again is safe.
        const transient =
          err instanceof StanzaError &&
          err.condition === 'internal-server-error' &&
          /database failure/i.test(err.text ?? '');
        if (!transient || !this.#createRetry.canRetry(attempt) || options.signal?.aborted) throw err;
        await sleep(backoff.next(), { signal: options.signal, clock: this.#req.session.clock });
      }
    }
  }

  async ensureNode(
    node: string,
    config: NodeConfig | undefined,
    options: WaitOptions & { reconfigure?: boolean },
  ): Promise<boolean> {
    try {
      await this.createNode(node, config, options);
      return true;
    } catch (err) {
      if (!(err instanceof StanzaError) || err.condition !== 'conflict') throw err;
    }
    if (options.reconfigure !== false && config && Object.keys(config).length > 0) {
      await this.configureNode(node, config, options);
    }
    return false;
  }

  async getNodeConfig(node: string, options: WaitOptions): Promise<NodeConfig> {
    const ps = xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node }));
    const res = await this.#req.request('get', ps, 'configure', node, options);
    const form = findForm(findChild(pubsubOf(res) ?? res, 'configure'));
    if (!form) return {};
    return configFromForm(parseForm(form));
  }

  async configureNode(node: string, config: NodeConfig, options: WaitOptions): Promise<void> {
    const fields = await this.#configFields(config, options);
    const form = submitForm(NS_PUBSUB_NODE_CONFIG, fields);
    const ps = xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node }, form));
    await this.#req.request('set', ps, 'configure', node, options);
  }

  async deleteNode(node: string, options: WaitOptions & { redirect?: string }): Promise<void> {
    const del = xml('delete', { node }, options.redirect ? xml('redirect', { uri: options.redirect }) : null);
    await this.#req.request('set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, del), 'delete', node, options);
  }

  async purgeNode(node: string, options: WaitOptions): Promise<void> {
    const ps = xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('purge', { node }));
    await this.#req.request('set', ps, 'purge', node, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Affiliations and subscribers

  async getAffiliations(node: string, options: WaitOptions): Promise<Map<string, Affiliation>> {
    const ps = xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('affiliations', { node }));
    const res = await this.#req.request('get', ps, 'affiliations', node, options);
    const out = new Map<string, Affiliation>();
    const affs = findChild(pubsubOf(res) ?? res, 'affiliations');
    for (const a of affs ? childElements(affs) : []) {
      const jid = a.attrs['jid'];
      if (jid) out.set(jid, (a.attrs['affiliation'] ?? 'none') as Affiliation);
    }
    return out;
  }

  async setAffiliations(
    node: string,
    affiliations: Readonly<Record<string, Affiliation>>,
    options: WaitOptions,
  ): Promise<void> {
    const el = xml('affiliations', { node });
    for (const [jid, affiliation] of Object.entries(affiliations)) el.cnode(xml('affiliation', { jid, affiliation }));
    await this.#req.request('set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, el), 'affiliations', node, options);
  }

  async ensurePublishers(node: string, jids: readonly string[], options: WaitOptions): Promise<void> {
    const current = await this.getAffiliations(node, options);
    const grant: Record<string, Affiliation> = {};
    for (const j of jids) {
      const a = current.get(j) ?? current.get(bareJid(j));
      if (a !== 'owner' && a !== 'publisher') grant[bareJid(j)] = 'publisher';
    }
    if (Object.keys(grant).length > 0) await this.setAffiliations(node, grant, options);
  }

  async getSubscribers(node: string, options: WaitOptions): Promise<Subscription[]> {
    const ps = xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('subscriptions', { node }));
    const res = await this.#req.request('get', ps, 'subscriptions', node, options);
    return parseSubscriptions(res, node);
  }
}

function parseInfo(res: Element): ServiceInfo {
  const q = findChild(res, 'query');
  const identities: ServiceInfo['identities'] = [];
  const features = new Set<string>();
  for (const c of q ? childElements(q) : []) {
    if (localName(c) === 'identity') {
      identities.push({ category: c.attrs['category'] ?? '', type: c.attrs['type'] ?? '', name: c.attrs['name'] });
    } else if (localName(c) === 'feature' && c.attrs['var']) features.add(c.attrs['var']);
  }
  const names = identities.map((i) => i.name ?? '').join(' ');
  const flavor: ServerFlavor = /prosody/i.test(names)
    ? 'prosody'
    : names.includes('Publish-Subscribe') && features.has(`${NS_PUBSUB}#shim`)
      ? 'ejabberd'
      : 'generic';
  return { flavor, identities, features };
}

/** The `<subscription/>` entries of a subscriptions result (owner or subscriber form). */
export function parseSubscriptions(res: Element, node?: string): Subscription[] {
  const ps = pubsubOf(res) ?? res;
  const subs = findChild(ps, 'subscriptions');
  const out: Subscription[] = [];
  for (const s of subs ? childElements(subs) : []) {
    if (localName(s) !== 'subscription') continue;
    out.push({
      node: s.attrs['node'] ?? subs?.attrs['node'] ?? node ?? '',
      jid: s.attrs['jid'] ?? '',
      subid: s.attrs['subid'],
      state: (s.attrs['subscription'] ?? 'subscribed') as SubscriptionState,
    });
  }
  return out;
}
