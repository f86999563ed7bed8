/** JID helpers. Parsing/validation is @xmpp/jid's; the hot-path helpers are plain string ops. */
import { jid as parseJid } from '@xmpp/jid';

export interface Jid {
  readonly local: string;
  readonly domain: string;
  readonly resource: string;
  /** `local@domain` or `domain`. */
  readonly bare: string;
  /** Full form, with `/resource` when present. */
  toString(): string;
}

/** Parses and normalises a JID (throws on malformed input). */
export function jid(value: string): Jid {
  const j = parseJid(value);
  const local = j.getLocal();
  const domain = j.getDomain();
  const resource = j.getResource();
  const bare = local ? `${local}@${domain}` : domain;
  const full = resource ? `${bare}/${resource}` : bare;
  return { local, domain, resource, bare, toString: () => full };
}

/** Bare part of a JID string (`a@b/c` → `a@b`) without allocating a parsed object. */
export function bareJid(value: string): string {
  const slash = value.indexOf('/');
  return slash < 0 ? value : value.slice(0, slash);
}

/** Domain part of a JID string. */
export function domainOf(value: string): string {
  const bare = bareJid(value);
  const at = bare.indexOf('@');
  return at < 0 ? bare : bare.slice(at + 1);
}

/**
 * Compares two JIDs; `bare: true` ignores resources. Local part and domain compare
 * case-insensitively (nodeprep/PRECIS case-map them); the resource is case-sensitive.
 */
export function jidEquals(a: string, b: string, options?: { bare?: boolean }): boolean {
  if (a === b) return true;
  const sa = a.indexOf('/');
  const sb = b.indexOf('/');
  const bareA = sa < 0 ? a : a.slice(0, sa);
  const bareB = sb < 0 ? b : b.slice(0, sb);
  if (bareA !== bareB && bareA.toLowerCase() !== bareB.toLowerCase()) return false;
  if (options?.bare) return true;
  return (sa < 0 ? '' : a.slice(sa)) === (sb < 0 ? '' : b.slice(sb));
}
