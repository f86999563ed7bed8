/**
 * Where a competing-consumer group keeps its shared state: items `<prefix>-<term>` of the group's
 * state node (docs/protocol.md §4), read by whichever member leads next.
 */
import { childElements, textOf, xml, type Element, type WaitOptions } from '@xmppbus/core';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';
import { NS_XMPPBUS_PUBSUB } from './ns.js';
import type { ConsumerHost } from './types.js';

/** Bound of each coordination request (state reads and writes, term nodes). */
export const STATE_TIMEOUT = 10_000;

/**
 * The item with the highest term among `<prefix>-<term>` items of the state node. Each leader
 * writes items of its own term: ejabberd refuses to overwrite an item another JID published,
 * even on a `publish_model=open` node.
 */
export async function latestOfTerm(
  host: ConsumerHost,
  node: string,
  prefix: string,
  options: WaitOptions,
): Promise<{ term: number; el: Element } | undefined> {
  const items = await host.items(node, options);
  let best: { term: number; el: Element } | undefined;
  for (const it of items) {
    if (!it.id.startsWith(`${prefix}-`) || !it.payload) continue;
    const term = Number(it.id.slice(prefix.length + 1));
    if (Number.isFinite(term) && (!best || term > best.term)) best = { term, el: it.payload };
  }
  return best;
}

/** Group checkpoints live in the state node, so whichever member leads next can resume. */
export class StateNodeStore implements CheckpointStore {
  constructor(
    readonly host: ConsumerHost,
    readonly node: string,
    readonly term: number,
  ) {}
  async load(): Promise<Checkpoint | undefined> {
    const el = (await latestOfTerm(this.host, this.node, 'checkpoint', { timeout: STATE_TIMEOUT }))?.el;
    if (!el) return undefined;
    return { lastId: el.attrs['last'] || undefined, recent: childElements(el).map((c) => textOf(c)) };
  }
  async save(_key: string, cp: Checkpoint): Promise<void> {
    const el = xml('checkpoint', { xmlns: NS_XMPPBUS_PUBSUB, last: cp.lastId });
    for (const id of cp.recent.slice(-200)) el.cnode(xml('id', null, id));
    await this.host.publishElement(this.node, el, { id: `checkpoint-${this.term}`, timeout: STATE_TIMEOUT });
  }
}
