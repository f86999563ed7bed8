/**
 * Element → XML text for the send path. Produces exactly ltx's `Element#toString()` output
 * (double-quoted attributes; `"&'<>` escaped in attributes, `&<>` in text; `null`/`undefined`
 * attributes and children skipped) but without ltx's writer callback per token and without a
 * regex replace on every value: values are tested first and only escaped when they need it.
 * Measured on the RPC round trip: ~2.5× faster than `toString()` for a typical IQ.
 *
 * Iterative, with an explicit stack: no tree, however deep, overflows the call stack (a
 * recursive version crashed at ~10k levels). `maxDepth` refuses deep trees before any text is
 * written anywhere: some servers crash on them (ejabberd 23.01 at ~5,000 levels).
 *
 * A child with a string `rawXml` (pre-serialised XML, e.g. a stored outbox message: see
 * `RawMessage` in @xmppbus/messaging) is written verbatim, its `rawDepth` (element levels below
 * it) counted against `maxDepth`: text serialised once is not serialised again.
 */
import { Element, escapeXML, escapeXMLText } from 'ltx';
import { PayloadTooLargeError } from '@xmppbus/core';

const NEEDS_ATTR_ESCAPE = /["&'<>]/;
const NEEDS_TEXT_ESCAPE = /[&<>]/;
const ltxWrite = Element.prototype.write;

interface Writable {
  write(writer: (s: string) => void): void;
}

/** Pre-serialised XML written verbatim; `rawDepth` = element levels below its root. */
interface RawXml {
  rawXml: string;
  rawDepth: number;
}

function isRaw(c: unknown): c is RawXml {
  return typeof (c as Partial<RawXml>).rawXml === 'string';
}

function depthError(level: number, maxDepth: number, rootName: string): PayloadTooLargeError {
  return new PayloadTooLargeError(level, maxDepth, `element nesting exceeds ${maxDepth} levels below <${rootName}>`);
}

export interface SerializeOptions {
  /** Levels of elements allowed below `el` (its children are level 1); deeper → PayloadTooLargeError. */
  maxDepth?: number;
}

function startTag(el: Element): string {
  let s = '<' + el.name;
  const attrs = el.attrs as Record<string, unknown>;
  for (const k in attrs) {
    const v = attrs[k];
    if (v === null || v === undefined) continue;
    const t = typeof v === 'string' ? v : (v as number).toString(10);
    s += ' ' + k + '="' + (NEEDS_ATTR_ESCAPE.test(t) ? escapeXML(t) : t) + '"';
  }
  return s;
}

/** Depth up to which the recursive writer is used: far below any call-stack limit. */
const RECURSION_SAFE_DEPTH = 1000;

export function serializeElement(el: Element, options?: SerializeOptions): string {
  const maxDepth = options?.maxDepth ?? Infinity;
  if (isRaw(el)) {
    if (el.rawDepth > maxDepth) throw depthError(el.rawDepth, maxDepth, el.name);
    return el.rawXml;
  }
  // The send path's limit (64 by default) keeps recursion shallow, and recursion is the faster
  // writer (no explicit stacks); an unbounded or huge limit takes the iterative one.
  if (maxDepth <= RECURSION_SAFE_DEPTH) return writeBounded(el, 0, maxDepth, el.name);
  return writeIterative(el, maxDepth);
}

function writeBounded(el: Element, depth: number, maxDepth: number, rootName: string): string {
  let s = startTag(el);
  const ch = el.children as unknown[];
  const n = ch.length;
  if (n === 0) return s + '/>';
  s += '>';
  for (let i = 0; i < n; i++) {
    const c = ch[i];
    if (c === null || c === undefined) continue;
    if (typeof c === 'string') {
      s += NEEDS_TEXT_ESCAPE.test(c) ? escapeXMLText(c) : c;
    } else if (isRaw(c)) {
      if (depth + 1 + c.rawDepth > maxDepth) throw depthError(depth + 1 + c.rawDepth, maxDepth, rootName);
      s += c.rawXml;
    } else if (typeof (c as Writable).write === 'function') {
      if ((c as Writable).write !== ltxWrite) {
        s += writeGeneric(c as Writable);
        continue;
      }
      if (depth >= maxDepth) {
        throw new PayloadTooLargeError(
          depth + 1,
          maxDepth,
          `element nesting exceeds ${maxDepth} levels below <${rootName}>`,
        );
      }
      s += writeBounded(c as Element, depth + 1, maxDepth, rootName);
    } else {
      const t = (c as number).toString(10);
      s += NEEDS_TEXT_ESCAPE.test(t) ? escapeXMLText(t) : t;
    }
  }
  return s + '</' + el.name + '>';
}

function writeIterative(el: Element, maxDepth: number): string {
  let s = startTag(el);
  if (el.children.length === 0) return s + '/>';
  s += '>';
  // The open elements and, for each, the index of its next child.
  const open: Element[] = [el];
  const next: number[] = [0];
  while (open.length > 0) {
    const top = open.length - 1;
    const cur = open[top]!;
    const ch = cur.children as unknown[];
    const n = ch.length;
    let i = next[top]!;
    let descended = false;
    while (i < n) {
      const c = ch[i++];
      if (c === null || c === undefined) continue;
      if (typeof c === 'string') {
        s += NEEDS_TEXT_ESCAPE.test(c) ? escapeXMLText(c) : c;
      } else if (isRaw(c)) {
        if (open.length + c.rawDepth > maxDepth) throw depthError(open.length + c.rawDepth, maxDepth, el.name);
        s += c.rawXml;
      } else if (typeof (c as Writable).write === 'function') {
        if ((c as Writable).write !== ltxWrite) {
          // Subclasses overriding write() (none in this repository) get the generic path.
          s += writeGeneric(c as Writable);
          continue;
        }
        const child = c as Element;
        if (open.length > maxDepth) {
          throw new PayloadTooLargeError(
            open.length,
            maxDepth,
            `element nesting exceeds ${maxDepth} levels below <${el.name}>`,
          );
        }
        s += startTag(child);
        if (child.children.length === 0) {
          s += '/>';
          continue;
        }
        s += '>';
        next[top] = i;
        open.push(child);
        next.push(0);
        descended = true;
        break;
      } else {
        const t = (c as number).toString(10);
        s += NEEDS_TEXT_ESCAPE.test(t) ? escapeXMLText(t) : t;
      }
    }
    if (!descended) {
      s += '</' + cur.name + '>';
      open.pop();
      next.pop();
    }
  }
  return s;
}

function writeGeneric(el: Writable): string {
  let s = '';
  el.write((c) => {
    s += c;
  });
  return s;
}
