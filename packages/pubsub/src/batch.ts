/**
 * The wire form of an event batch (docs/protocol.md §4): an `<item>` holds one element only
 * (Prosody refuses a second child), so several events travel in one wrapper,
 * `<events xmlns='urn:xmppbus:events:batch:1' count='n'>`, one child element per event in
 * publish order, each with its own SHIM headers as its last child. Event `i` (from 0) of item
 * `b1` has the id `b1#i`: that is its identity for deduplication and the position checkpoints
 * record, so a resume can land in the middle of a batch.
 */
import { NS_SHIM, ProtocolError, localName, type Element } from '@xmppbus/core';
import { NS_EVENTS_BATCH } from './ns.js';

/** Most events a consumer accepts in one batch item unless told otherwise. */
export const DEFAULT_MAX_BATCH_EVENTS = 4_096;

/** True when `payload` is a batch wrapper rather than an event element. */
export function isBatch(payload: Element | undefined): payload is Element {
  return payload !== undefined && payload.name === 'events' && payload.attrs['xmlns'] === NS_EVENTS_BATCH;
}

/** The id of event `index` of batch item `itemId`. */
export function batchEventId(itemId: string, index: number): string {
  return `${itemId}#${index}`;
}

export interface UnwrappedBatch {
  /** The event elements, in publish order. */
  readonly events: Element[];
  /** A trailing `<headers/>` of the wrapper: headers of the item (e.g. the publish's trace context). */
  readonly headers: Element | undefined;
}

/**
 * The events of a batch wrapper. Throws ProtocolError (and takes nothing) when the wrapper holds
 * more than `maxEvents` events or its `count` does not match them: a truncated or hostile item
 * is refused as a whole, since its events' positions could not be trusted.
 */
export function unwrapBatch(wrapper: Element, maxEvents: number): UnwrappedBatch {
  const events: Element[] = [];
  let headers: Element | undefined;
  for (const c of wrapper.children) {
    if (typeof c === 'string') continue;
    if (headers !== undefined) events.push(headers); // headers only count as such when last
    headers = undefined;
    if (c.attrs['xmlns'] === NS_SHIM && localName(c) === 'headers') headers = c;
    else events.push(c);
    if (events.length > maxEvents)
      throw new ProtocolError(`event batch holds more than ${maxEvents} events (maxBatchEvents)`);
  }
  const count = wrapper.attrs['count'];
  if (count !== undefined && count !== String(events.length))
    throw new ProtocolError(`event batch says count='${count}' but holds ${events.length} events`);
  return { events, headers };
}
