/**
 * SHIM headers of an event (XEP-0131). Item storage keeps one element per item (Prosody refuses
 * an `<item>` with two children), so the `<headers/>` element rides as the **last child of the
 * payload element**, the same place rpc puts them: stored with the item, replayed on catch-up,
 * and carried in every notification. Consumers take it out before decoding.
 */
import { NS_SHIM, emptyHeaders, headerEntries, headersElement, localName, readHeaders } from '@xmppbus/core';
import type { Element, Headers, HeadersInit } from '@xmppbus/core';

/** Appends `headers` to `payload` (nothing for an empty set). */
export function appendHeaders(payload: Element, headers: HeadersInit): void {
  const h = headersElement(headerEntries(headers));
  if (!h) return;
  h.parent = payload;
  payload.children.push(h);
}

/**
 * Removes the trailing `<headers xmlns='…shim'/>` of `payload` and returns it, or undefined.
 * The caller puts it back with `restoreHeaders` once it decoded the payload, so the element
 * handed to listeners stays as received.
 */
export function takeHeaders(payload: Element): Element | undefined {
  const ch = payload.children;
  for (let i = ch.length - 1; i >= 0; i--) {
    const c = ch[i];
    if (typeof c === 'string') continue; // trailing whitespace
    if (c === undefined || c.attrs['xmlns'] !== NS_SHIM || localName(c) !== 'headers') return undefined;
    ch.splice(i, 1);
    return c;
  }
  return undefined;
}

export function restoreHeaders(payload: Element, headers: Element | undefined): void {
  if (headers) payload.children.push(headers);
}

/** The headers of a taken `<headers/>` element (a shared empty set when none). */
export function headersOf(el: Element | undefined): Headers {
  return el ? readHeaders(el) : emptyHeaders();
}
