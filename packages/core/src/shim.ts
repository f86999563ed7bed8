/**
 * XEP-0131 Stanza Headers and Internet Metadata (SHIM). Cross-cutting metadata (trace
 * context, deadlines, QoS level, correlation) travels as `<headers xmlns='http://jabber.org/protocol/shim'>`.
 */
import type { Element } from './xml.js';
import { findChild, localName, textOf, xml } from './xml.js';

export const NS_SHIM = 'http://jabber.org/protocol/shim';

/** Header names xmppbus itself uses (documented in docs/protocol.md). */
export const HEADER = {
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /** Absolute deadline, RFC 3339 UTC, after which the caller no longer waits. */
  deadline: 'xmppbus-deadline',
  correlation: 'xmppbus-correlation-id',
} as const;

/** Headers as handlers receive them. */
export type Headers = ReadonlyMap<string, string>;

/** Headers as callers give them: a map, entry pairs or a plain record. */
export type HeadersInit = Headers | Iterable<readonly [string, string]> | Readonly<Record<string, string>>;

const NO_HEADERS: Headers = new Map();

/** Entry pairs of any `HeadersInit` (no copy for maps and arrays). */
export function headerEntries(init: HeadersInit | undefined): Iterable<readonly [string, string]> {
  if (init === undefined) return NO_HEADERS;
  if (Symbol.iterator in init) return init as Iterable<readonly [string, string]>;
  return Object.entries(init as Readonly<Record<string, string>>);
}

/** An empty, shared, read-only header set. */
export function emptyHeaders(): Headers {
  return NO_HEADERS;
}

/** Builds a `<headers/>` element; returns undefined for an empty set (send nothing). */
export function headersElement(headers: Iterable<readonly [string, string]>): Element | undefined {
  let el: Element | undefined;
  for (const [name, value] of headers) {
    el ??= xml('headers', { xmlns: NS_SHIM });
    el.children.push(xml('header', { name }, value));
  }
  return el;
}

/** Reads SHIM headers from a stanza (or from a `<headers/>` element itself). Last value wins. */
export function readHeaders(stanzaOrHeaders: Element): Map<string, string> {
  const out = new Map<string, string>();
  const h = localName(stanzaOrHeaders) === 'headers' ? stanzaOrHeaders : findChild(stanzaOrHeaders, 'headers', NS_SHIM);
  if (!h) return out;
  for (const c of h.children) {
    if (typeof c === 'string' || localName(c) !== 'header') continue;
    const name = c.attrs['name'];
    if (typeof name === 'string') out.set(name, textOf(c));
  }
  return out;
}

/** Adds (or extends) the stanza's SHIM headers in place. */
export function setHeaders(stanza: Element, headers: Iterable<readonly [string, string]>): Element {
  let h = findChild(stanza, 'headers', NS_SHIM);
  for (const [name, value] of headers) {
    if (!h) {
      h = xml('headers', { xmlns: NS_SHIM });
      h.parent = stanza;
      stanza.children.push(h);
    }
    h.children.push(xml('header', { name }, value));
  }
  return stanza;
}
