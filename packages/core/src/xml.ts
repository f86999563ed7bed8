/**
 * XML element helpers over ltx, the element tree every @xmpp/* package emits. Stanzas travel
 * as ltx `Element`s end to end so nothing on the hot path re-serialises to a string.
 */
import { Element, isElement, parse as ltxParse } from 'ltx';
import { XmlError } from './errors.js';

export { Element };

export type Attrs = Record<string, string | number | boolean | null | undefined>;
export type Child = Element | string | number | null | undefined | false;

/** Builds an element: `xml('iq', { type: 'get' }, xml('ping', { xmlns: NS_PING }))`. */
export function xml(name: string, attrs?: Attrs | null, ...children: Child[]): Element {
  const el = new Element(name);
  if (attrs) {
    for (const key in attrs) {
      const v = attrs[key];
      if (v !== undefined && v !== null && v !== false) el.attrs[key] = String(v);
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (typeof c === 'object') {
      c.parent = el;
      el.children.push(c);
    } else {
      el.children.push(String(c));
    }
  }
  return el;
}

/** Local name without prefix. */
export function localName(el: Element): string {
  const n = el.name;
  const i = n.indexOf(':');
  return i < 0 ? n : n.slice(i + 1);
}

/** First child element, whatever its name (the payload of an IQ). */
export function firstChildElement(el: Element): Element | undefined {
  for (const c of el.children) if (typeof c !== 'string') return c;
  return undefined;
}

/** Child elements only (skips text). */
export function childElements(el: Element): Element[] {
  const out: Element[] = [];
  for (const c of el.children) if (typeof c !== 'string') out.push(c);
  return out;
}

/**
 * Finds a direct child by local name and, optionally, namespace. Matching by local name is
 * deliberate: peers send `<error xmlns='jabber:client'>` inside component stanzas, or omit
 * namespaces on nested elements (see design §2).
 */
export function findChild(el: Element, name: string, ns?: string): Element | undefined {
  for (const c of el.children) {
    if (typeof c === 'string') continue;
    if (localName(c) !== name) continue;
    if (ns === undefined || c.getNS() === ns) return c;
  }
  return undefined;
}

/** Concatenated text content of an element's direct text children. */
export function textOf(el: Element): string {
  const ch = el.children;
  if (ch.length === 1 && typeof ch[0] === 'string') return ch[0];
  let s = '';
  for (const c of ch) if (typeof c === 'string') s += c;
  return s;
}

export function isXmlElement(value: unknown): value is Element {
  return isElement(value as Element);
}

export interface ParseLimits {
  /** Max input length in characters (default 1 MiB). */
  maxLength?: number;
}

/**
 * Parses one XML document into an element tree. Refuses DOCTYPE/ENTITY declarations and
 * processing instructions (no entity expansion, no billion laughs) with a typed XmlError.
 */
export function parseXml(text: string, limits: ParseLimits = {}): Element {
  const max = limits.maxLength ?? 1024 * 1024;
  if (text.length > max) throw new XmlError(`XML text of ${text.length} chars exceeds ${max}`);
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new XmlError('DTDs and entity declarations are not allowed');
  try {
    const el = ltxParse(text);
    if (!el) throw new XmlError('no root element');
    return el;
  } catch (err) {
    if (err instanceof XmlError) throw err;
    throw new XmlError(`malformed XML: ${(err as Error).message}`, { cause: err });
  }
}

/** Serialises an element tree (ltx escapes text and attributes). */
export function serialize(el: Element): string {
  return el.toString();
}
