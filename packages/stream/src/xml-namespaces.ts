/**
 * Namespace well-formedness (Namespaces in XML 1.0) and the RFC 6120 §4.8 stream header rules.
 * Each check throws a `StreamXmlError` naming the stream error condition to send.
 */
import type { Element } from 'ltx';
import { NS_ETHERX, StreamXmlError } from './stream-errors.js';

const NS_XML = 'http://www.w3.org/XML/1998/namespace';

export function prefixOf(name: string): string {
  const i = name.indexOf(':');
  return i < 0 ? '' : name.slice(0, i);
}

export function localPart(name: string): string {
  return name.slice(name.indexOf(':') + 1);
}

/** The namespace a prefix is bound to in scope of `el`, or undefined. */
export function resolvePrefix(el: Element, prefix: string): string | undefined {
  if (prefix === 'xml') return NS_XML;
  if (prefix === 'xmlns') return 'http://www.w3.org/2000/xmlns/';
  const key = prefix === '' ? 'xmlns' : `xmlns:${prefix}`;
  for (let e: Element | null | undefined = el; e; e = e.parent as Element | null | undefined) {
    const v = (e.attrs as Record<string, string | undefined>)[key];
    if (v !== undefined && Object.hasOwn(e.attrs, key)) return v;
  }
  return undefined;
}

/** The `stream` prefix bound to the streams namespace, and one of the expected content namespaces. */
export function checkStreamHeader(el: Element, contentNamespaces: readonly string[]): void {
  const name = el.name;
  if (localPart(name) !== 'stream') throw new StreamXmlError('bad-format', `expected a stream header, got <${name}>`);
  const prefix = prefixOf(name);
  const declared = el.attrs[prefix === '' ? 'xmlns' : `xmlns:${prefix}`] as string | undefined;
  if (prefix !== 'stream' || declared === undefined)
    throw new StreamXmlError(
      'bad-namespace-prefix',
      `the stream header must be <stream:stream xmlns:stream='${NS_ETHERX}'>`,
    );
  if (declared !== NS_ETHERX) throw new StreamXmlError('invalid-namespace', `stream namespace '${declared}'`);
  const content = el.attrs['xmlns'] as string | undefined;
  if (content === undefined || !contentNamespaces.includes(content))
    throw new StreamXmlError('invalid-namespace', `content namespace '${String(content)}'`);
  checkNamespaces(el);
}

/** A `<stream:stream>` (any prefix bound to the streams namespace) where a stanza should be. */
export function isStreamHeader(el: Element): boolean {
  return localPart(el.name) === 'stream' && resolvePrefix(el, prefixOf(el.name)) === NS_ETHERX;
}

/** Declarations are legal and every prefix used (element and attributes) is declared in scope. */
export function checkNamespaces(el: Element): void {
  const attrs = el.attrs as Record<string, string>;
  for (const k in attrs) {
    if (k.startsWith('xmlns:')) {
      const p = k.slice(6);
      const v = attrs[k]!;
      if (v === '' || p === 'xmlns' || (p === 'xml') !== (v === NS_XML))
        throw new StreamXmlError('not-well-formed', `illegal namespace declaration ${k}='${v}'`);
    } else if (k.indexOf(':') >= 0 && resolvePrefix(el, prefixOf(k)) === undefined) {
      throw new StreamXmlError('not-well-formed', `undeclared prefix in attribute '${k}'`);
    }
  }
  const p = prefixOf(el.name);
  if (p !== '' && resolvePrefix(el, p) === undefined)
    throw new StreamXmlError('not-well-formed', `undeclared prefix in <${el.name}>`);
}
