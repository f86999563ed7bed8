/**
 * Incremental XMPP stream parser over ltx's SAX tokenizer: reports the stream header
 * (`<stream:stream …>`), each complete top-level element (a stanza, `<handshake/>`,
 * `<stream:features>`…) and the end of the stream. Elements are ltx `Element`s, the same class
 * core works with, so nothing is re-serialised on the way in.
 *
 * Feed it strings (the socket must use `setEncoding('utf8')` so multi-byte characters split
 * across TCP segments are decoded correctly). After a stream restart (STARTTLS, SASL) make a
 * new parser.
 */
import { Element } from 'ltx';
import SaxLtx from 'ltx/src/parsers/ltx.js';
import { XmlError } from '@xmppbus/core';

export interface StreamParserHandlers {
  /** The stream header; its attributes carry `id`, `from`, `version`. */
  header(el: Element): void;
  /** A complete top-level element (parented to the header so `getNS()` resolves). */
  element(el: Element): void;
  /** `</stream:stream>` from the peer. */
  end(): void;
  /** Malformed XML; the stream is unusable afterwards. */
  error(err: XmlError): void;
}

interface Sax {
  on(event: 'startElement', fn: (name: string, attrs: Record<string, string>) => void): void;
  on(event: 'endElement', fn: (name: string) => void): void;
  on(event: 'text', fn: (text: string) => void): void;
  write(data: string): void;
}

export interface StreamParserOptions {
  /**
   * Largest top-level element accepted, in characters of input (default 1 MiB + 64 KiB): a peer
   * that streams an endless element is cut off instead of growing memory without bound.
   */
  maxElementChars?: number;
}

export class StreamParser {
  readonly #sax: Sax;
  readonly #h: StreamParserHandlers;
  readonly #maxChars: number;
  #root: Element | undefined;
  #cursor: Element | undefined;
  #failed = false;
  /** Characters written since the current top-level element began (approximate bound). */
  #elementChars = 0;

  constructor(handlers: StreamParserHandlers, options: StreamParserOptions = {}) {
    this.#h = handlers;
    this.#maxChars = options.maxElementChars ?? 1024 * 1024 + 64 * 1024;
    const sax = new (SaxLtx as unknown as new () => Sax)();
    sax.on('startElement', (name, attrs) => this.#start(name, attrs));
    sax.on('endElement', (name) => this.#end(name));
    sax.on('text', (text) => this.#text(text));
    this.#sax = sax;
  }

  write(data: string): void {
    if (this.#failed) return;
    if (this.#cursor !== this.#root) {
      this.#elementChars += data.length;
      if (this.#elementChars > this.#maxChars) {
        this.#fail(`element exceeds ${this.#maxChars} characters`);
        return;
      }
    }
    this.#sax.write(data);
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#h.error(new XmlError(message));
  }

  #start(name: string, attrs: Record<string, string>): void {
    if (this.#failed) return;
    // The tokenizer hands us a fresh object: adopt it instead of letting ltx copy it.
    const el = new Element(name);
    el.attrs = attrs;
    const root = this.#root;
    if (!root) {
      if (name !== 'stream:stream' && !name.endsWith(':stream') && name !== 'stream') {
        this.#fail(`expected a stream header, got <${name}>`);
        return;
      }
      this.#root = el;
      this.#cursor = el;
      this.#h.header(el);
      return;
    }
    const cursor = this.#cursor!;
    if (cursor === root) {
      this.#elementChars = 0;
    } else {
      // Append without ltx's `cnode` to keep the top-level element detached until complete.
      el.parent = cursor;
      cursor.children.push(el);
    }
    this.#cursor = el;
  }

  #end(name: string): void {
    if (this.#failed) return;
    const cursor = this.#cursor;
    const root = this.#root;
    if (!cursor || !root) {
      this.#fail(`unexpected </${name}>`);
      return;
    }
    if (name !== cursor.name) {
      this.#fail(`<${cursor.name}> closed by </${name}>`);
      return;
    }
    if (cursor === root) {
      this.#failed = true; // nothing may follow the stream's end
      this.#h.end();
      return;
    }
    if (cursor.parent === null || cursor.parent === undefined) {
      cursor.parent = root;
      this.#cursor = root;
      this.#h.element(cursor);
      return;
    }
    this.#cursor = cursor.parent as Element;
  }

  #text(text: string): void {
    if (this.#failed) return;
    const cursor = this.#cursor;
    // Whitespace between stanzas (keepalives) and before the header is legal and ignored.
    if (!cursor || cursor === this.#root) return;
    cursor.children.push(text);
  }
}
