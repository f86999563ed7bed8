// The stream parser's limits and their defaults (docs/security.md, "Stream parser", lists them).

/** The content namespaces of RFC 6120 and XEP-0114. */
export const CONTENT_NAMESPACES: readonly string[] = ['jabber:client', 'jabber:server', 'jabber:component:accept'];

export interface StreamParserOptions {
  /** Largest top-level element, UTF-8 bytes, refused before its tree is complete (default 512 KiB). */
  maxStanzaBytes?: number;
  /** Element nesting below a top-level element (default 64; the stanza itself is level 0). */
  maxDepth?: number;
  /** Longest start or end tag, characters including attributes (default 64 KiB). */
  maxTagLength?: number;
  /** Most attributes on one element, namespace declarations included (default 64). */
  maxAttributes?: number;
  /** Accepted default namespaces of the stream header (default: `CONTENT_NAMESPACES`). */
  contentNamespaces?: readonly string[];
}

export const STREAM_PARSER_DEFAULTS = Object.freeze({
  maxStanzaBytes: 512 * 1024,
  maxDepth: 64,
  maxTagLength: 64 * 1024,
  maxAttributes: 64,
});
