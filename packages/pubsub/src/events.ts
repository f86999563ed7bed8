/**
 * Parsing of XEP-0060 event notifications (`<message><event xmlns='…pubsub#event'>`). This is the
 * hot path: it walks the element tree once, keeps payloads as the original elements (no copy,
 * no re-serialisation) and allocates one small object per notification.
 */
import { findChild, localName, type Element } from '@xmppbus/core';
import { NS_DELAY, NS_PUBSUB_EVENT } from './ns.js';

/** One item of an `items` notification. */
export interface EventItem {
  readonly id: string;
  /** The payload element, absent when the node does not deliver payloads. */
  readonly payload: Element | undefined;
  /** `publisher` attribute, when the service reports it. */
  readonly publisher: string | undefined;
}

interface EventBase {
  /** The pub/sub service that sent the notification. */
  readonly service: string;
  readonly node: string;
  /** XEP-0203 original time when the notification was replayed (offline storage, last published item). */
  readonly delayedFrom: Date | undefined;
  /** The notification `<message>`. */
  readonly stanza: Element;
}

export interface ItemsEvent extends EventBase {
  readonly type: 'items';
  readonly items: readonly EventItem[];
}
export interface RetractEvent extends EventBase {
  readonly type: 'retract';
  readonly ids: readonly string[];
}
export interface PurgeEvent extends EventBase {
  readonly type: 'purge';
}
export interface DeleteEvent extends EventBase {
  readonly type: 'delete';
  /** `<redirect uri>` when the owner pointed subscribers at a replacement node. */
  readonly redirect: string | undefined;
}
export interface ConfigurationEvent extends EventBase {
  readonly type: 'configuration';
  /** The new configuration form, when the node sends it (`pubsub#deliver_payloads`). */
  readonly form: Element | undefined;
}

/** A pub/sub notification, one per notification element. */
export type PubSubEvent = ItemsEvent | RetractEvent | PurgeEvent | DeleteEvent | ConfigurationEvent;

function dateOf(stamp: string): Date | undefined {
  const d = new Date(stamp);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** The `<event>` child of a message, if it is a pub/sub notification. */
export function eventElementOf(message: Element): Element | undefined {
  for (const c of message.children) {
    if (typeof c === 'string') continue;
    if (c.attrs['xmlns'] === NS_PUBSUB_EVENT && localName(c) === 'event') return c;
  }
  return undefined;
}

/**
 * Parses a notification message into events (usually one). ejabberd sends a separate message for
 * the `<retract/>` of an evicted item; a single `<items>` may also mix items and retractions.
 */
export function parseEvents(message: Element, event: Element): PubSubEvent[] {
  const service = message.attrs['from'] ?? '';
  const stamp = findChild(message, 'delay', NS_DELAY)?.attrs['stamp'];
  const delayedFrom = stamp === undefined ? undefined : dateOf(stamp);
  const out: PubSubEvent[] = [];
  for (const c of event.children) {
    if (typeof c === 'string') continue;
    const node = c.attrs['node'] ?? '';
    switch (localName(c)) {
      case 'items': {
        let items: EventItem[] | undefined;
        let ids: string[] | undefined;
        for (const i of c.children) {
          if (typeof i === 'string') continue;
          const ln = localName(i);
          if (ln === 'item') {
            let payload: Element | undefined;
            for (const p of i.children) {
              if (typeof p !== 'string') {
                payload = p;
                break;
              }
            }
            (items ??= []).push({ id: i.attrs['id'] ?? '', payload, publisher: i.attrs['publisher'] });
          } else if (ln === 'retract') {
            (ids ??= []).push(i.attrs['id'] ?? '');
          }
        }
        if (items) out.push({ type: 'items', service, node, delayedFrom, stanza: message, items });
        if (ids) out.push({ type: 'retract', service, node, delayedFrom, stanza: message, ids });
        break;
      }
      case 'purge':
        out.push({ type: 'purge', service, node, delayedFrom, stanza: message });
        break;
      case 'delete': {
        const r = findChild(c, 'redirect');
        out.push({ type: 'delete', service, node, delayedFrom, stanza: message, redirect: r?.attrs['uri'] });
        break;
      }
      case 'configuration': {
        let form: Element | undefined;
        for (const f of c.children) if (typeof f !== 'string') form = f;
        out.push({ type: 'configuration', service, node, delayedFrom, stanza: message, form });
        break;
      }
      default:
        break;
    }
  }
  return out;
}
