/**
 * Incremental, strict XMPP stream parser: reports the stream header (`<stream:stream …>`),
 * each complete top-level element (a stanza, `<handshake/>`, `<stream:features>`…) and the end
 * of the stream. Elements are ltx `Element`s, the class core works with.
 *
 * Strict per RFC 6120 §11.1: comments, processing instructions, DTDs and entity references
 * beyond the five predefined ones are `restricted-xml`; duplicate attributes, bad names,
 * undeclared prefixes, illegal characters, malformed references and invalid UTF-8 are
 * `not-well-formed`; the header's prefix and namespaces are checked; a second header is refused.
 *
 * Bounded and linear: every character is scanned a constant number of times. A token cut by the
 * end of a chunk is either a short carry (< 256 characters, prepended to the next chunk) or a
 * start tag collected as pieces and joined once, bounded by `maxTagLength`; text goes into the
 * tree as it arrives, bounded by `maxStanzaBytes`; whitespace between stanzas is dropped. Every
 * failure is reported through `error` (never thrown) and the parser ignores all later input.
 *
 * The tokenizer jumps between `<`, `>` and quotes with `indexOf` instead of walking every
 * character through a state switch (ltx's SAX parser), ~2× faster per stanza on the RPC path.
 * After a stream restart (STARTTLS, SASL) make a new parser.
 */
import { Buffer } from 'node:buffer';
import { Element } from 'ltx';
import { STANZA_BYTES } from '@xmppbus/core';
import { StreamLimitError, StreamXmlError, type StreamErrorCondition, type StreamParseError } from './stream-errors.js';
import {
  ALL_FLAGS,
  ASCII_ONLY,
  LONE_SURROGATE,
  WHITESPACE_ONLY,
  attributeValue,
  checkXmlDeclaration,
  commonAttrName,
  normalizeNewlines,
  scanChunk,
  NAME_BAD,
  isSpace,
  NAME_END,
  NAME_START,
  NAME_TABLE,
  isQName,
  textValue,
} from './xml-syntax.js';
import { Utf8Decoder } from './utf8-decoder.js';
import { CONTENT_NAMESPACES, STREAM_PARSER_DEFAULTS, type StreamParserOptions } from './stream-limits.js';

export { CONTENT_NAMESPACES, STREAM_PARSER_DEFAULTS, type StreamParserOptions };
import { checkNamespaces, checkStreamHeader, isStreamHeader } from './xml-namespaces.js';

export interface StreamParserHandlers {
  /** The stream header; its attributes carry `id`, `from`, `version`. */
  header(el: Element): void;
  /** A complete top-level element (parented to the header so `getNS()` resolves). */
  element(el: Element): void;
  /** `</stream:stream>` from the peer. */
  end(): void;
  /** Refused input; `err.condition` is the stream error to answer. The parser stops. */
  error(err: StreamParseError): void;
}

/** `#tag` result: the tag is cut by the end of the chunk; wait for more input. */
const INCOMPLETE = -1;
/** Any token cut by the end of a chunk other than a tag or CDATA is at most this long. */
const MAX_CARRY = 256;
const CDATA_OPEN = '<![CDATA[';

export class StreamParser {
  readonly #h: StreamParserHandlers;
  readonly #maxStanzaBytes: number;
  readonly #maxDepth: number;
  readonly #maxTag: number;
  readonly #maxAttrs: number;
  readonly #contentNs: readonly string[];
  readonly #utf8 = new Utf8Decoder();
  #root: Element | undefined;
  #cursor: Element | undefined;
  /** Open elements below the header: 0 between stanzas, 1 inside a stanza's own content. */
  #depth = 0;
  #failed = false;
  #sawDeclaration = false;
  /** A short unfinished token (markup start, reference, `\r`, `]`), prepended to the next chunk. */
  #carry = '';
  /** An unfinished start/end tag: its pieces, joined once complete, and the quote it is inside. */
  #pieces: string[] = [];
  #piecesLength = 0;
  #piecesBytes = 0;
  #quote = 0;
  #afterEq = false;
  #inCdata = false;
  /** UTF-8 bytes of the current top-level element before `#stanzaStart` of this chunk. */
  #stanzaBytes = 0;
  #stanzaStart = 0;
  /** Where the token being parsed began in this chunk, and its bytes from earlier chunks. */
  #tokenStart = 0;
  #tokenCarriedBytes = 0;
  /** The current chunk holds only ASCII (characters = bytes). */
  #ascii = true;
  /** `HAS_*` flags of the current chunk (xml-syntax.ts). */
  #flags = ALL_FLAGS;
  /** A top-level element closed by the token just parsed, held until its size is checked. */
  #complete: Element | undefined;
  #scanned = 0;

  constructor(handlers: StreamParserHandlers, options: StreamParserOptions = {}) {
    this.#h = handlers;
    this.#maxStanzaBytes = options.maxStanzaBytes ?? STREAM_PARSER_DEFAULTS.maxStanzaBytes;
    this.#maxDepth = options.maxDepth ?? STREAM_PARSER_DEFAULTS.maxDepth;
    this.#maxTag = options.maxTagLength ?? STREAM_PARSER_DEFAULTS.maxTagLength;
    this.#maxAttrs = options.maxAttributes ?? STREAM_PARSER_DEFAULTS.maxAttributes;
    this.#contentNs = options.contentNamespaces ?? CONTENT_NAMESPACES;
  }

  /** Characters the tokenizer has examined (for tests: proves time is linear in the input). */
  get scannedChars(): number {
    return this.#scanned;
  }

  /** Characters held while waiting for the rest of a token (for tests: proves memory is bounded). */
  get bufferedChars(): number {
    return this.#carry.length + this.#piecesLength;
  }

  /** Feeds raw bytes (UTF-8, validated strictly) or already decoded text. Never throws. */
  write(data: Uint8Array | string): void {
    if (this.#failed) return;
    try {
      let s: string;
      if (typeof data === 'string') {
        if (LONE_SURROGATE.test(data)) throw new StreamXmlError('not-well-formed', 'a lone surrogate');
        s = data;
        this.#ascii = ASCII_ONLY.test(s);
      } else {
        s = this.#utf8.decode(data);
        this.#ascii = this.#utf8.ascii;
      }
      if (this.#carry !== '') {
        if (!ASCII_ONLY.test(this.#carry)) this.#ascii = false;
        s = this.#carry + s;
        this.#carry = '';
      }
      this.#flags = scanChunk(s, this.#ascii);
      this.#scanned += s.length;
      this.#run(s);
    } catch (err) {
      this.#fail(
        err instanceof StreamXmlError || err instanceof StreamLimitError
          ? err
          : new StreamXmlError('not-well-formed', err instanceof Error ? err.message : String(err)),
      );
    }
  }

  #run(s: string): void {
    const n = s.length;
    this.#stanzaStart = 0;
    this.#nextLtIn = ''; // a later write may pass the very same string (literals in tests)
    let pos = 0;
    if (this.#inCdata) pos = this.#cdata(s, 0);
    else if (this.#pieces.length > 0) pos = this.#resumeTag(s);
    while (pos < n && !this.#failed) {
      // The tag just parsed may already have found the next '<' (see #tag).
      const lt = this.#nextLtIn === s && this.#nextLt >= pos ? this.#nextLt : s.indexOf('<', pos);
      const stop = lt < 0 ? n : lt;
      if (stop > pos) {
        this.#checkSize(s, stop);
        this.#text(s, pos, stop, lt < 0);
      }
      if (lt < 0 || this.#failed) break;
      if (lt + 1 >= n) {
        this.#carry = '<';
        break;
      }
      this.#tokenStart = lt;
      this.#tokenCarriedBytes = 0;
      const c = s.charCodeAt(lt + 1);
      let next: number;
      if (c === 47 /* / */) next = this.#endTag(s, lt);
      else if (c === 33 /* ! */) next = this.#bang(s, lt);
      else if (c === 63 /* ? */) next = this.#questionMark(s, lt);
      else next = this.#tag(s, lt);
      if (next === INCOMPLETE) {
        this.#suspendTag(s, lt);
        break;
      }
      this.#afterToken(s, next);
      pos = next;
    }
    if (this.#depth > 0 && !this.#failed) {
      // The open stanza's bytes in this chunk, up to what waits for the next one.
      const held = this.#carry.length + (this.#pieces.length > 0 ? this.#piecesLength : 0);
      this.#stanzaBytes += this.#bytes(s, this.#stanzaStart, n - held);
      if (this.#stanzaBytes > this.#maxStanzaBytes) this.#tooLarge(this.#stanzaBytes);
    }
  }

  /** UTF-8 bytes of `s[from, to)`; characters when the chunk is ASCII (the common case). */
  #bytes(s: string, from: number, to: number): number {
    if (to <= from) return 0;
    return this.#ascii ? to - from : Buffer.byteLength(s.slice(from, to), 'utf8');
  }

  /** Cheap bound inside a chunk (characters ≤ bytes); exact checks run at chunk and stanza ends. */
  #checkSize(s: string, at: number): void {
    if (this.#depth === 0) return;
    if (this.#stanzaBytes + (at - this.#stanzaStart) > this.#maxStanzaBytes) {
      this.#tooLarge(this.#stanzaBytes + this.#bytes(s, this.#stanzaStart, at));
    }
  }

  #tooLarge(size: number): void {
    this.#fail(
      new StreamLimitError(
        size,
        this.#maxStanzaBytes,
        `stanza exceeds ${this.#maxStanzaBytes} bytes (policy-violation)`,
      ),
    );
  }

  /** After each token: a completed top-level element is size-checked exactly, then reported. */
  #afterToken(s: string, next: number): void {
    const done = this.#complete;
    if (done === undefined) return;
    this.#complete = undefined;
    const size = this.#stanzaBytes + this.#bytes(s, this.#stanzaStart, next);
    if (size > this.#maxStanzaBytes) return this.#tooLarge(size);
    this.#stanzaBytes = 0;
    // Admission budgets (rpc, messaging) account stanzas by their size on the wire.
    (done as Element & { [STANZA_BYTES]?: number })[STANZA_BYTES] = size;
    this.#h.element(done);
  }

  /** A start or end tag cut by the end of the chunk: collect it without rescanning. */
  #suspendTag(s: string, lt: number): void {
    if (this.#failed) return;
    const piece = s.slice(lt);
    this.#quote = 0;
    this.#afterEq = false;
    this.#findTagEnd(piece, 1);
    if (this.#failed) return;
    this.#pieces.push(piece);
    this.#piecesLength = piece.length;
    this.#piecesBytes = this.#bytes(s, lt, s.length);
    if (this.#piecesLength > this.#maxTag) this.#tagTooLong();
  }

  #resumeTag(s: string): number {
    const e = this.#findTagEnd(s, 0);
    if (this.#failed) return s.length;
    if (e < 0) {
      this.#pieces.push(s);
      this.#piecesLength += s.length;
      this.#piecesBytes += this.#bytes(s, 0, s.length);
      if (this.#piecesLength > this.#maxTag) this.#tagTooLong();
      return s.length;
    }
    const token = this.#pieces.join('') + s.slice(0, e + 1);
    this.#scanned += token.length;
    this.#pieces = [];
    this.#piecesLength = 0;
    // The tag began in an earlier chunk: its earlier bytes count towards the stanza.
    this.#tokenStart = 0;
    this.#tokenCarriedBytes = this.#piecesBytes;
    if (this.#depth > 0) this.#stanzaBytes += this.#piecesBytes;
    const flags = this.#flags;
    this.#flags = ALL_FLAGS; // the token's earlier pieces came with other chunks
    const end = token.charCodeAt(1) === 47 ? this.#endTag(token, 0) : this.#tag(token, 0);
    this.#flags = flags;
    if (end !== token.length && !this.#failed) this.#malformed('a tag cut in an unexpected place');
    if (!this.#failed) this.#afterToken(s, e + 1);
    return e + 1;
  }

  /**
   * The index of the `>` closing a tag, or -1; the lexical state carries across chunks in
   * `#quote` (0, or the open quote) and `#afterEq`. A quote is only legal right after `=`, and
   * `<` only inside a value: refusing them here keeps the verdict independent of chunking.
   */
  #findTagEnd(s: string, from: number): number {
    const n = s.length;
    let q = this.#quote;
    let eq = this.#afterEq;
    for (let i = from; i < n; i++) {
      if (q !== 0) {
        const close = s.indexOf(q === 34 ? '"' : "'", i);
        if (close < 0) break;
        i = close;
        q = 0;
        continue;
      }
      const c = s.charCodeAt(i);
      if (c === 62 /* > */) {
        this.#quote = 0;
        this.#afterEq = false;
        return i;
      }
      if (c === 34 || c === 39) {
        if (!eq) {
          this.#malformed('a quote outside an attribute value');
          return -1;
        }
        q = c;
        eq = false;
      } else if (c === 61 /* = */) eq = true;
      else if (c === 60 /* < */) {
        this.#malformed("'<' inside a tag");
        return -1;
      } else if (!isSpace(c)) eq = false;
    }
    this.#quote = q;
    this.#afterEq = eq;
    return -1;
  }

  #tagTooLong(): void {
    this.#fail(
      new StreamLimitError(
        this.#piecesLength,
        this.#maxTag,
        `tag longer than ${this.#maxTag} characters (policy-violation)`,
      ),
    );
  }

  /** `<![CDATA[…]]>` inside an element (text); comments and DTDs are refused. */
  #bang(s: string, lt: number): number {
    const n = s.length;
    if (s.startsWith(CDATA_OPEN, lt)) {
      if (this.#depth === 0) return this.#refuse('bad-format', 'CDATA between stanzas');
      this.#inCdata = true;
      return this.#cdata(s, lt + CDATA_OPEN.length);
    }
    if (n - lt < CDATA_OPEN.length && CDATA_OPEN.startsWith(s.slice(lt))) {
      this.#carry = s.slice(lt);
      return n;
    }
    if (s.startsWith('<!-', lt)) return this.#refuse('restricted-xml', 'a comment');
    return this.#refuse('restricted-xml', 'a DTD or markup declaration');
  }

  /** CDATA content from `from` up to `]]>`, streamed into the tree; returns the index after it. */
  #cdata(s: string, from: number): number {
    const n = s.length;
    const e = s.indexOf(']]>', from);
    let to = e < 0 ? n : e;
    if (e < 0) {
      // Hold back a trailing `]` or `]]` that may start the terminator.
      while (to > from && n - to < 2 && (s.charCodeAt(to - 1) === 93 || s.charCodeAt(to - 1) === 13)) to--;
      this.#carry = s.slice(to);
    }
    this.#checkSize(s, to);
    if (to > from && !this.#failed) this.#append(normalizeNewlines(s.slice(from, to)));
    if (e < 0) return n;
    this.#inCdata = false;
    this.#afterToken(s, e + 3);
    return e + 3;
  }

  /** `<?xml …?>` once before the header; every other processing instruction is refused. */
  #questionMark(s: string, lt: number): number {
    if (this.#root !== undefined || this.#sawDeclaration || !/^<\?x?m?l?$|^<\?xml[\s?]/.test(s.slice(lt, lt + 6)))
      return this.#refuse('restricted-xml', 'a processing instruction');
    const e = s.indexOf('?>', lt + 2);
    if (e < 0) {
      if (s.length - lt > MAX_CARRY) return this.#refuse('not-well-formed', 'XML declaration too long');
      this.#carry = s.slice(lt);
      return s.length;
    }
    checkXmlDeclaration(s.slice(lt, e + 2));
    this.#sawDeclaration = true;
    return e + 2;
  }

  #endTag(s: string, lt: number): number {
    const gt = s.indexOf('>', lt + 2);
    if (gt < 0) return INCOMPLETE;
    if (gt - lt > this.#maxTag) return this.#malformed('end tag too long');
    let e = gt;
    while (e > lt + 2 && isSpace(s.charCodeAt(e - 1))) e--;
    this.#end(s.slice(lt + 2, e));
    return gt + 1;
  }

  /** A start tag at `lt`: reports it (and its end when self-closing); returns the index after `>`. */
  #tag(s: string, lt: number): number {
    const n = s.length;
    let i = lt + 1;
    let c = 0;
    // Names are checked inline for ASCII; a colon or non-ASCII character takes the full rule.
    // (`=` ends the scan too, then fails the name check: `=` is no name character.)
    let odd = false;
    while (i < n) {
      c = s.charCodeAt(i);
      const k = c < 128 ? NAME_TABLE[c] : NAME_BAD;
      if (k === NAME_END) break;
      if (k === NAME_BAD) odd = true;
      i++;
    }
    if (i >= n) return INCOMPLETE;
    const name = s.slice(lt + 1, i);
    let prefixed = false;
    if (odd || NAME_TABLE[s.charCodeAt(lt + 1)] !== NAME_START) {
      if (!isQName(name)) return this.#malformed(`invalid element name '${name.slice(0, 64)}'`);
      prefixed = name.indexOf(':') >= 0;
    }
    const attrs: Record<string, string> = {};
    let count = 0;
    // The first '<' after this one: a value whose closing quote lies beyond it contains '<'.
    let nextLt = -2;
    for (;;) {
      const a0 = i;
      while (i < n && isSpace(s.charCodeAt(i))) i++;
      if (i >= n) return INCOMPLETE;
      c = s.charCodeAt(i);
      if (c === 62 /* > */) {
        this.#start(name, attrs, prefixed);
        return i + 1;
      }
      if (c === 47 /* / */) {
        if (i + 1 >= n) return INCOMPLETE;
        if (s.charCodeAt(i + 1) !== 62) return this.#malformed(`stray '/' in <${name}>`);
        this.#start(name, attrs, prefixed);
        this.#end(name);
        return i + 2;
      }
      if (i === a0) return this.#malformed(`no space before an attribute in <${name}>`);
      const a = i;
      odd = false;
      while (i < n) {
        c = s.charCodeAt(i);
        const k = c < 128 ? NAME_TABLE[c] : NAME_BAD;
        if (k === NAME_END) break;
        if (k === NAME_BAD) odd = true;
        i++;
      }
      if (i >= n) return INCOMPLETE;
      const attrName = commonAttrName(s, a, i) ?? s.slice(a, i);
      if (odd || NAME_TABLE[s.charCodeAt(a)] !== NAME_START) {
        if (!isQName(attrName)) return this.#malformed(`invalid attribute name '${attrName.slice(0, 64)}'`);
        if (attrName.indexOf(':') >= 0) prefixed = true;
      }
      while (i < n && isSpace(s.charCodeAt(i))) i++;
      if (i >= n) return INCOMPLETE;
      if (s.charCodeAt(i) !== 61) return this.#malformed(`attribute without a value in <${name}>`);
      i++;
      while (i < n && isSpace(s.charCodeAt(i))) i++;
      if (i >= n) return INCOMPLETE;
      c = s.charCodeAt(i);
      if (c !== 34 /* " */ && c !== 39 /* ' */) return this.#malformed(`unquoted attribute value in <${name}>`);
      const q = s.indexOf(c === 34 ? '"' : "'", i + 1);
      if (q < 0) return INCOMPLETE;
      if (q - lt > this.#maxTag) return this.#malformed(`start tag <${name}> too long`);
      if (nextLt === -2) {
        nextLt = s.indexOf('<', lt + 1);
        this.#nextLt = nextLt;
        this.#nextLtIn = s;
      }
      if (nextLt >= 0 && nextLt < q) return this.#malformed(`'<' in an attribute value of <${name}>`);
      if (count > 0 && this.#seenBefore(attrName, count))
        return this.#malformed(`duplicate attribute '${attrName}' in <${name}>`);
      this.#attrNames[count] = attrName;
      if (++count > this.#maxAttrs) {
        this.#fail(new StreamLimitError(count, this.#maxAttrs, `more than ${this.#maxAttrs} attributes on <${name}>`));
        return Number.MAX_SAFE_INTEGER;
      }
      const value = attributeValue(s.slice(i + 1, q), this.#flags);
      // A plain-object assignment to `__proto__` would change the prototype instead.
      if (attrName === '__proto__') Object.defineProperty(attrs, attrName, { value, enumerable: true, writable: true });
      else attrs[attrName] = value;
      i = q + 1;
    }
  }

  /** The current tag's attribute names so far, reused across tags (a lookup in `attrs` cost more). */
  readonly #attrNames: string[] = [];
  /** The first '<' after the last start tag with attributes, and the string it indexes. */
  #nextLt = -1;
  #nextLtIn = '';

  #seenBefore(name: string, count: number): boolean {
    const names = this.#attrNames;
    for (let j = 0; j < count; j++) if (names[j] === name) return true;
    return false;
  }

  #malformed(what: string): number {
    return this.#refuse('not-well-formed', what);
  }

  #refuse(condition: StreamErrorCondition, what: string): number {
    this.#fail(new StreamXmlError(condition, what));
    return Number.MAX_SAFE_INTEGER;
  }

  #fail(err: StreamParseError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#pieces = [];
    this.#piecesLength = 0;
    this.#carry = '';
    this.#root = this.#cursor = this.#complete = undefined;
    this.#h.error(err);
  }

  #start(name: string, attrs: Record<string, string>, prefixed: boolean): void {
    if (this.#failed) return;
    // The tokenizer hands us a fresh object: adopt it instead of letting ltx copy it.
    const el = new Element(name);
    el.attrs = attrs;
    const root = this.#root;
    if (!root) {
      this.#header(el);
      return;
    }
    const cursor = this.#cursor!;
    // Top-level elements are parented to the header (for getNS) but not kept in its children.
    el.parent = cursor;
    if (prefixed) checkNamespaces(el);
    if (this.#depth === 0) {
      if ((name === 'stream' || name.endsWith(':stream')) && isStreamHeader(el)) {
        this.#refuse('unsupported-stanza-type', 'a second stream header');
        return;
      }
      this.#stanzaBytes = this.#tokenCarriedBytes;
      this.#stanzaStart = this.#tokenStart;
    } else if (this.#depth > this.#maxDepth) {
      this.#fail(new StreamLimitError(this.#depth, this.#maxDepth, `elements nested deeper than ${this.#maxDepth}`));
      return;
    } else {
      cursor.children.push(el);
    }
    this.#depth++;
    this.#cursor = el;
  }

  #header(el: Element): void {
    checkStreamHeader(el, this.#contentNs);
    this.#root = el;
    this.#cursor = el;
    this.#h.header(el);
  }

  #end(name: string): void {
    if (this.#failed) return;
    const cursor = this.#cursor;
    const root = this.#root;
    if (!cursor || !root) {
      this.#malformed(`unexpected </${name}>`);
      return;
    }
    if (name !== cursor.name) {
      this.#malformed(`<${cursor.name}> closed by </${name.slice(0, 64)}>`);
      return;
    }
    if (cursor === root) {
      this.#failed = true; // nothing may follow the stream's end
      this.#h.end();
      return;
    }
    this.#depth--;
    this.#cursor = cursor.parent as Element;
    if (this.#depth === 0) this.#complete = cursor;
  }

  /** Character data from `s[from, to)`; `atEnd`: it runs to the end of the chunk and may be cut. */
  #text(s: string, from: number, to: number, atEnd: boolean): void {
    if (this.#root === undefined || this.#depth === 0) {
      // Between stanzas (and before the header) only whitespace: keepalives, dropped at once.
      let raw = s.slice(from, to);
      if (this.#root === undefined && from === 0 && raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
      if (!WHITESPACE_ONLY.test(raw)) this.#refuse('bad-format', 'text between stanzas');
      return;
    }
    let end = to;
    if (atEnd) {
      // Hold back what the next chunk may complete: a reference, `\r` of `\r\n`, `]` of `]]>`.
      const amp = s.lastIndexOf('&', to - 1);
      if (amp >= from && s.indexOf(';', amp) < 0) end = amp;
      else {
        const last = s.charCodeAt(to - 1);
        if (last === 13) end = to - 1;
        else if (last === 93) end = s.charCodeAt(to - 2) === 93 && to - 2 >= from ? to - 2 : to - 1;
      }
      if (to - end > 40) {
        this.#refuse('not-well-formed', "'&' that starts no reference");
        return;
      }
      this.#carry = s.slice(end, to);
    }
    if (end > from) this.#append(textValue(s.slice(from, end), this.#flags));
  }

  #append(text: string): void {
    if (text === '') return;
    const ch = this.#cursor!.children;
    const last = ch.length - 1;
    // Adjacent text (split by chunks, references or CDATA) stays one child, as one-shot parsing gives.
    if (last >= 0 && typeof ch[last] === 'string') ch[last] += text;
    else ch.push(text);
  }
}
