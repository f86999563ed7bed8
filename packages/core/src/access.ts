/**
 * The one access policy of a session: who may reach which namespace (or method/contract) of this
 * endpoint. Every unit asks the same policy — the session for inbound IQs before routing, rpc for
 * disco and presence visibility, messaging for each contract — so a rule means the same thing
 * everywhere, and every denial is counted in one place.
 *
 * Rules are checked in order; the first that matches decides. When none matches, the secure
 * default applies: **services** (domain-only JIDs) of this endpoint's own organisation domain may
 * call each other; user accounts and foreign domains are denied until a rule allows them.
 *
 * Sender patterns (`from`):
 * - `alice@example.com/phone`: that full JID;   `alice@example.com`: that account, any resource;
 * - `example.com`: that entity itself (a server or a component);
 * - `*@example.com`: any account of that domain; `*.example.com`: any service under that domain;
 * - `*`: anyone.
 * Target patterns (`to`, default `*`): a namespace `urn:example:orders:1`, one method or contract
 * `urn:example:orders:1#create`, or `*`.
 */
import { ConfigError } from './errors.js';
import type { Logger } from './logger.js';

export interface AccessRule {
  /** Sender pattern(s); see the module comment. */
  from: string | readonly string[];
  /** Target pattern(s): namespace, `namespace#name`, or `*` (default). */
  to?: string | readonly string[];
  /** `allow` (default) or `deny`. */
  effect?: 'allow' | 'deny';
}

export interface AccessPolicyOptions {
  rules?: readonly AccessRule[];
  /** What applies when no rule matches: `services` (the secure default) or `deny`. */
  fallback?: 'services' | 'deny';
}

interface CompiledRule {
  from: readonly ((jid: string) => boolean)[];
  to: readonly string[] | undefined;
  allow: boolean;
}

export class AccessPolicy {
  readonly #rules: readonly CompiledRule[];
  readonly #fallback: 'services' | 'deny';
  #open = false;
  /** Decisions of the rule-less fallback by raw sender string (bounded): the hot path does no string work. */
  readonly #fallbackCache = new Map<string, boolean>();
  #cachedSelf = '';
  #cachedOrg = '';
  /** Inbound requests this policy refused (answered `forbidden`). */
  denied = 0;

  constructor(options: AccessPolicyOptions = {}) {
    this.#rules = (options.rules ?? []).map(compileRule);
    this.#fallback = options.fallback ?? 'services';
  }

  /**
   * Allows everyone everything: for development only. A session with this policy logs a warning
   * when it starts.
   */
  static allowAll(): AccessPolicy {
    const p = new AccessPolicy();
    p.#open = true;
    return p;
  }

  /** Whether this is the `allowAll()` development preset. */
  get isOpen(): boolean {
    return this.#open;
  }

  /**
   * Whether `from` may reach `ns` (and, when given, its element `name`) on `self` (this
   * endpoint's address).
   */
  allows(from: string | undefined, self: string, ns: string, name?: string): boolean {
    if (this.#open) return true;
    if (from === undefined || from === '') return false;
    if (this.#rules.length === 0) return this.#fallbackDecision(from, self);
    const sender = from.toLowerCase();
    for (const rule of this.#rules) {
      if (!rule.from.some((m) => m(sender))) continue;
      if (rule.to !== undefined && !rule.to.some((t) => targetMatches(t, ns, name))) continue;
      return rule.allow;
    }
    return this.#fallback === 'services' && isSameOrgService(sender, this.#org(self));
  }

  #fallbackDecision(from: string, self: string): boolean {
    if (this.#fallback === 'deny') return false;
    if (self !== this.#cachedSelf) this.#fallbackCache.clear();
    let ok = this.#fallbackCache.get(from);
    if (ok === undefined) {
      ok = isSameOrgService(from.toLowerCase(), this.#org(self));
      if (this.#fallbackCache.size >= 4096) this.#fallbackCache.clear(); // bounded whatever peers send
      this.#fallbackCache.set(from, ok);
    }
    return ok;
  }

  #org(self: string): string {
    if (self !== this.#cachedSelf) {
      this.#cachedSelf = self;
      this.#cachedOrg = orgDomain(self);
    }
    return this.#cachedOrg;
  }

  /** `allows`, counting a refusal. */
  check(from: string | undefined, self: string, ns: string, name?: string): boolean {
    const ok = this.allows(from, self, ns, name);
    if (!ok) this.denied++;
    return ok;
  }

  /** Logs the development-preset warning (called by the session at start). */
  warnIfOpen(logger: Logger, self: string): void {
    if (this.#open) logger.warn(`access policy of ${self} is allowAll(): any JID may call anything (development only)`);
  }
}

function targetMatches(pattern: string, ns: string, name: string | undefined): boolean {
  if (pattern === '*' || pattern === ns) return true;
  const hash = pattern.indexOf('#');
  return hash > 0 && name !== undefined && pattern.slice(0, hash) === ns && pattern.slice(hash + 1) === name;
}

function compileRule(rule: AccessRule): CompiledRule {
  const froms = typeof rule.from === 'string' ? [rule.from] : rule.from;
  if (froms.length === 0) throw new ConfigError('access rule: `from` must name at least one sender pattern');
  const tos = rule.to === undefined ? undefined : typeof rule.to === 'string' ? [rule.to] : rule.to;
  if (rule.effect !== undefined && rule.effect !== 'allow' && rule.effect !== 'deny')
    throw new ConfigError(`access rule: effect must be 'allow' or 'deny', got ${String(rule.effect)}`);
  return { from: froms.map(senderMatcher), to: tos, allow: rule.effect !== 'deny' };
}

function senderMatcher(pattern: string): (jid: string) => boolean {
  const p = pattern.trim().toLowerCase();
  if (p === '') throw new ConfigError('access rule: an empty sender pattern');
  if (p === '*') return () => true;
  if (p.startsWith('*@')) {
    const domain = p.slice(2);
    return (j) => {
      const at = j.indexOf('@');
      return at > 0 && bareOf(j).slice(at + 1) === domain;
    };
  }
  if (p.startsWith('*.')) {
    const suffix = p.slice(1); // ".example.com"
    return (j) => !j.includes('@') && bareOf(j).endsWith(suffix);
  }
  if (p.includes('/')) return (j) => j === p;
  return (j) => bareOf(j) === p;
}

function bareOf(j: string): string {
  const slash = j.indexOf('/');
  return slash < 0 ? j : j.slice(0, slash);
}

/**
 * The organisation domain of an address: a component `orders.example.com` → `example.com`; a
 * client `agent@example.com/r` → `example.com`.
 */
export function orgDomain(self: string): string {
  const bare = bareOf(self.toLowerCase());
  const at = bare.indexOf('@');
  if (at >= 0) return bare.slice(at + 1);
  const dot = bare.indexOf('.');
  return dot < 0 ? bare : bare.slice(dot + 1);
}

function isSameOrgService(sender: string, org: string): boolean {
  if (sender.includes('@')) return false; // user accounts need a rule
  const domain = bareOf(sender);
  return (
    domain === org ||
    (domain.length > org.length && domain.endsWith(org) && domain[domain.length - org.length - 1] === '.')
  );
}
