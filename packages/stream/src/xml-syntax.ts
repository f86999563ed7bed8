/**
 * The XML 1.0 character, name and reference rules the stream parser enforces (RFC 6120 §11.1:
 * only well-formed, namespace-well-formed XML, no DTDs, no entities beyond the five
 * predefined ones). Each check is one native regex pass or a lookup, so strictness costs
 * little on the hot path.
 */
import { StreamXmlError } from './stream-errors.js';

/** A surrogate without its partner (only possible in string input; UTF-8 cannot encode one). */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Text allowed between stanzas: whitespace keepalives only. */
export const WHITESPACE_ONLY = /^[ \t\r\n]*$/;
/** Bytes 0x00–0x7F only (then characters and UTF-8 bytes count the same). */
export const ASCII_ONLY = /^[\x00-\x7F]*$/;

const START =
  'A-Z_a-z\\xC0-\\xD6\\xD8-\\xF6\\xF8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const CHAR = `${START}\\-.0-9\\xB7\\u0300-\\u036F\\u203F-\\u2040`;
/** A QName: an XML Name with at most one colon, neither first nor last (Namespaces in XML §3). */
const QNAME = new RegExp(`^[${START}][${CHAR}]*(?::[${START}][${CHAR}]*)?$`, 'u');

export function isQName(name: string): boolean {
  return QNAME.test(name);
}

/**
 * One lookup per ASCII character while the tokenizer scans a name: 0 ends the name (controls,
 * space, `/`, `>`, and `=` for attribute names), 1 may follow, 2 may also start a name (letters,
 * `_`), 3 is never in a name. `:` and non-ASCII characters go to `isQName`, so they are 3 too.
 */
export const NAME_END = 0;
export const NAME_START = 2;
export const NAME_BAD = 3;
export const NAME_TABLE: Uint8Array = (() => {
  const t = new Uint8Array(128).fill(NAME_BAD);
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    if (c <= 32 || ch === '/' || ch === '>' || ch === '=') t[c] = NAME_END;
    else if (/[A-Za-z_]/.test(ch)) t[c] = NAME_START;
    else if (/[0-9.-]/.test(ch)) t[c] = 1;
  }
  return t;
})();

function notWellFormed(message: string): StreamXmlError {
  return new StreamXmlError('not-well-formed', message);
}

const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const NAMED_REF = /^[A-Za-z_:\u00C0-\uFFFD][\w.:\-\u00B7-\uFFFD]*$/;

function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/** The text of one reference body (between `&` and `;`). */
function reference(body: string): string {
  const predefined = PREDEFINED[body];
  if (predefined !== undefined && Object.hasOwn(PREDEFINED, body)) return predefined;
  if (body.charCodeAt(0) === 35 /* # */) {
    const hex = body.charCodeAt(1) === 120; /* x */
    const digits = body.slice(hex ? 2 : 1);
    // Strict: `&#65abc;` and `&#x;` are errors, not "A" (parseInt would stop at the first non-digit).
    if (!(hex ? /^[0-9A-Fa-f]{1,6}$/ : /^[0-9]{1,7}$/).test(digits))
      throw notWellFormed(`malformed character reference '&${body};'`);
    const cp = parseInt(digits, hex ? 16 : 10);
    if (!isXmlChar(cp)) throw notWellFormed(`character reference '&${body};' is not an XML character`);
    return String.fromCodePoint(cp);
  }
  if (NAMED_REF.test(body))
    throw new StreamXmlError('restricted-xml', `entity reference '&${body};' (only the five predefined entities)`);
  throw notWellFormed(`malformed reference '&${body};'`);
}

/** Replaces every reference in `s` (which contains `&`); a bare `&` is an error. */
export function decodeReferences(s: string): string {
  let out = '';
  let from = 0;
  for (let amp = s.indexOf('&'); amp >= 0; amp = s.indexOf('&', from)) {
    const semi = s.indexOf(';', amp + 1);
    if (semi < 0 || semi - amp > 32) throw notWellFormed("'&' that starts no reference");
    out += s.slice(from, amp) + reference(s.slice(amp + 1, semi));
    from = semi + 1;
  }
  return out + s.slice(from);
}

/** Line-end normalisation (XML §2.11), before references are decoded so `&#13;` survives. */
export function normalizeNewlines(s: string): string {
  return s.indexOf('\r') < 0 ? s : s.replace(/\r\n?/g, '\n');
}

/** What a chunk contains, found once per chunk so most values need no scan of their own. */
export const HAS_CR = 1;
export const HAS_TAB_OR_NEWLINE = 2;
export const HAS_CDATA_END = 4;
/** For text whose chunk is unknown (a tag joined from several chunks): check everything. */
export const ALL_FLAGS = HAS_CR | HAS_TAB_OR_NEWLINE | HAS_CDATA_END;

const FORBIDDEN: readonly string[] = Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).filter(
  (ch) => ch !== '\t' && ch !== '\n' && ch !== '\r',
);

const FORBIDDEN_CLASS = /[\x00-\x08\x0B\x0C\x0E-\x1F]/;
/** Below this length one regex scan beats 29 `indexOf`s (measured: 250 chars ~250 vs ~550 ns; at 700 they tie). */
const SHORT_CHUNK = 512;

/**
 * Refuses a chunk holding a character XML forbids, and returns its `HAS_*` flags. For long
 * chunks one `indexOf` per forbidden character (a native memchr each) measured ~2× faster than
 * one regex class scan; for the short chunks of request/response traffic the regex wins.
 */
export function scanChunk(s: string, ascii: boolean): number {
  if (s.length < SHORT_CHUNK) {
    if (FORBIDDEN_CLASS.test(s)) throw notWellFormed('a character XML forbids');
  } else {
    for (let i = 0; i < FORBIDDEN.length; i++)
      if (s.indexOf(FORBIDDEN[i]!) >= 0) throw notWellFormed('a character XML forbids');
  }
  if (!ascii && (s.indexOf('\uFFFE') >= 0 || s.indexOf('\uFFFF') >= 0))
    throw notWellFormed('U+FFFE or U+FFFF (not XML characters)');
  let flags = 0;
  if (s.indexOf('\r') >= 0) flags |= HAS_CR | HAS_TAB_OR_NEWLINE;
  else if (s.indexOf('\n') >= 0 || s.indexOf('\t') >= 0) flags |= HAS_TAB_OR_NEWLINE;
  if (s.indexOf(']]>') >= 0) flags |= HAS_CDATA_END;
  return flags;
}

const ATTR_WS = /[\t\n\r]/;

/**
 * An attribute value as XML §3.3.3 defines it (CDATA type): whitespace → space, references
 * decoded. The tokenizer has already refused `<` in it.
 */
export function attributeValue(raw: string, flags: number): string {
  let v = raw;
  if ((flags & HAS_TAB_OR_NEWLINE) !== 0 && ATTR_WS.test(v)) v = normalizeNewlines(v).replace(/[\t\n]/g, ' ');
  return v.indexOf('&') < 0 ? v : decodeReferences(v);
}

/** Text content: no `]]>` outside CDATA; newlines normalised; references decoded. */
export function textValue(raw: string, flags: number): string {
  if ((flags & HAS_CDATA_END) !== 0 && raw.indexOf(']]>') >= 0) throw notWellFormed("']]>' in text");
  const v = (flags & HAS_CR) !== 0 ? normalizeNewlines(raw) : raw;
  return v.indexOf('&') < 0 ? v : decodeReferences(v);
}

/** The XML declaration (accepted once, before the stream header); only UTF-8 is supported. */
const XML_DECL =
  /^<\?xml\s+version\s*=\s*(['"])1\.[0-9]+\1(?:\s+encoding\s*=\s*(['"])([A-Za-z][A-Za-z0-9._-]*)\2)?(?:\s+standalone\s*=\s*(['"])(?:yes|no)\4)?\s*\?>$/;

export function checkXmlDeclaration(decl: string): void {
  const m = XML_DECL.exec(decl);
  if (!m) throw notWellFormed('malformed XML declaration');
  const encoding = m[3];
  if (encoding !== undefined && encoding.toLowerCase() !== 'utf-8')
    throw new StreamXmlError('unsupported-encoding', `encoding '${encoding}' (XMPP streams are UTF-8)`);
}

export function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13;
}

/**
 * The attribute names of nearly every stanza, as the constant strings: a name sliced from the
 * chunk is a fresh string that V8 must look up in its string table on every `attrs[name] = …`
 * (measured: ~10 % of the parser's time per RPC stanza).
 */
export function commonAttrName(s: string, from: number, to: number): string | undefined {
  switch (to - from) {
    case 2:
      if (s.startsWith('to', from)) return 'to';
      if (s.startsWith('id', from)) return 'id';
      return undefined;
    case 4:
      if (s.startsWith('from', from)) return 'from';
      if (s.startsWith('type', from)) return 'type';
      if (s.startsWith('name', from)) return 'name';
      if (s.startsWith('node', from)) return 'node';
      return undefined;
    case 5:
      return s.startsWith('xmlns', from) ? 'xmlns' : undefined;
    default:
      return undefined;
  }
}
