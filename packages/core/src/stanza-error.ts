/**
 * RFC 6120 §8.3 stanza errors as a typed class. `fromElement` accepts `<error>` by local name
 * in any namespace (some components send `jabber:client` errors); `toElement` is strict.
 */
import { XmppBusError, type XmppBusErrorOptions } from './errors.js';
import type { Element } from './xml.js';
import { findChild, localName, textOf, xml } from './xml.js';

export const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

/** Defined conditions of RFC 6120 §8.3.3. */
export const STANZA_ERROR_CONDITIONS = [
  'bad-request',
  'conflict',
  'feature-not-implemented',
  'forbidden',
  'gone',
  'internal-server-error',
  'item-not-found',
  'jid-malformed',
  'not-acceptable',
  'not-allowed',
  'not-authorized',
  'policy-violation',
  'recipient-unavailable',
  'redirect',
  'registration-required',
  'remote-server-not-found',
  'remote-server-timeout',
  'resource-constraint',
  'service-unavailable',
  'subscription-required',
  'undefined-condition',
  'unexpected-request',
] as const;
export type StanzaErrorCondition = (typeof STANZA_ERROR_CONDITIONS)[number];
export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

const CONDITIONS: ReadonlySet<string> = new Set(STANZA_ERROR_CONDITIONS);
const TYPES: ReadonlySet<string> = new Set(['auth', 'cancel', 'continue', 'modify', 'wait']);

/** Default type per condition (RFC 6120 examples), used when the caller gives none. */
const DEFAULT_TYPE: Partial<Record<StanzaErrorCondition, StanzaErrorType>> = {
  'bad-request': 'modify',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'policy-violation': 'modify',
  forbidden: 'auth',
  'not-authorized': 'auth',
  'registration-required': 'auth',
  'subscription-required': 'auth',
  'recipient-unavailable': 'wait',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  redirect: 'modify',
};

/** The type a condition takes when none is given (RFC 6120 §8.3.3's examples; else `cancel`). */
export function defaultErrorType(condition: StanzaErrorCondition): StanzaErrorType {
  return DEFAULT_TYPE[condition] ?? 'cancel';
}

/**
 * Conditions worth retrying (docs/errors.md, "Stanza error conditions"): the addressee is away
 * for now (`recipient-unavailable`, `remote-server-*`: a component that is reconnecting) or busy
 * (`resource-constraint`). Everything else is the request's or the policy's fault, or final.
 */
const RETRYABLE_CONDITIONS: ReadonlySet<StanzaErrorCondition> = new Set<StanzaErrorCondition>([
  'recipient-unavailable',
  'remote-server-not-found',
  'remote-server-timeout',
  'resource-constraint',
]);

/** Conditions that say nothing about retrying themselves: the sender's `type='wait'` decides. */
const RETRYABLE_WHEN_WAIT: ReadonlySet<StanzaErrorCondition> = new Set<StanzaErrorCondition>([
  'internal-server-error',
  'undefined-condition',
  'unexpected-request',
]);

/** Whether an error of `condition` (sent with `type`) is worth retrying; see docs/errors.md. */
export function isRetryableCondition(condition: StanzaErrorCondition, type: StanzaErrorType): boolean {
  return RETRYABLE_CONDITIONS.has(condition) || (type === 'wait' && RETRYABLE_WHEN_WAIT.has(condition));
}

/**
 * Conditions that mean "the addressee is not there right now": a disconnected component gets
 * `remote-server-timeout` from Prosody, `remote-server-not-found` (s2s on) or `forbidden`
 * "Access denied by service policy" (s2s off) from ejabberd, `service-unavailable` elsewhere.
 */
export const UNAVAILABLE_CONDITIONS: ReadonlySet<StanzaErrorCondition> = new Set<StanzaErrorCondition>([
  'service-unavailable',
  'remote-server-timeout',
  'remote-server-not-found',
  'recipient-unavailable',
]);

export interface StanzaErrorInit {
  condition: StanzaErrorCondition;
  type?: StanzaErrorType;
  text?: string;
  /** Application-specific condition element (namespaced, not in NS_STANZAS). */
  application?: Element;
  /** JID that generated the error (RFC 6120 `by`). */
  by?: string;
}

export class StanzaError extends XmppBusError {
  readonly condition: StanzaErrorCondition;
  readonly type: StanzaErrorType;
  readonly text: string | undefined;
  readonly application: Element | undefined;
  readonly by: string | undefined;

  constructor(init: StanzaErrorInit, options?: XmppBusErrorOptions) {
    super(
      // A ServiceUnavailableError keeps its code whatever the server's condition (ejabberd: `forbidden`).
      UNAVAILABLE_CONDITIONS.has(init.condition) || new.target === ServiceUnavailableError
        ? 'ERR_SERVICE_UNAVAILABLE'
        : 'ERR_STANZA',
      init.text ? `${init.condition}: ${init.text}` : init.condition,
      { retryable: isRetryableCondition(init.condition, init.type ?? defaultErrorType(init.condition)), ...options },
    );
    this.condition = init.condition;
    this.type = init.type ?? DEFAULT_TYPE[init.condition] ?? 'cancel';
    this.text = init.text;
    this.application = init.application;
    this.by = init.by;
  }

  /** Parses an `<error>` element, or a stanza with `type='error'` containing one. */
  static fromElement(el: Element): StanzaError {
    const error = localName(el) === 'error' ? el : findChild(el, 'error');
    if (!error) return new StanzaError({ condition: 'undefined-condition', text: 'error stanza without <error/>' });
    let condition: StanzaErrorCondition = 'undefined-condition';
    let text: string | undefined;
    let application: Element | undefined;
    for (const c of error.children) {
      if (typeof c === 'string') continue;
      const name = localName(c);
      const ns = c.attrs['xmlns'];
      if (name === 'text' && (ns === NS_STANZAS || ns === undefined)) text = textOf(c);
      else if (ns === NS_STANZAS || (ns === undefined && CONDITIONS.has(name))) {
        if (CONDITIONS.has(name)) condition = name as StanzaErrorCondition;
      } else if (!application) application = c;
    }
    const rawType = error.attrs['type'];
    const type = typeof rawType === 'string' && TYPES.has(rawType) ? (rawType as StanzaErrorType) : undefined;
    const by = error.attrs['by'];
    const init: StanzaErrorInit = { condition };
    if (type) init.type = type;
    if (text !== undefined) init.text = text;
    if (application) init.application = application;
    if (typeof by === 'string') init.by = by;
    return UNAVAILABLE_CONDITIONS.has(condition) ? new ServiceUnavailableError(init) : new StanzaError(init);
  }

  /** Builds the `<error>` element (to be put inside a stanza of type `error`). */
  toElement(): Element {
    return xml(
      'error',
      { type: this.type, by: this.by },
      xml(this.condition, { xmlns: NS_STANZAS }),
      this.text !== undefined ? xml('text', { xmlns: NS_STANZAS }, this.text) : null,
      this.application ?? null,
    );
  }

  /** True when the condition means the addressee is not reachable right now. */
  get unavailable(): boolean {
    return this instanceof ServiceUnavailableError || UNAVAILABLE_CONDITIONS.has(this.condition);
  }
}

/**
 * The addressed service is not reachable: no handler, or the server says the component is not
 * connected. Thrown at once (never after a timeout); `condition` keeps what the server said.
 * `retryable` follows the condition: a component that is away (`remote-server-*`) may come back;
 * `service-unavailable` (nothing serves that namespace there) does not change by retrying.
 */
export class ServiceUnavailableError extends StanzaError {
  constructor(
    init: Omit<StanzaErrorInit, 'condition'> & { condition?: StanzaErrorCondition },
    options?: XmppBusErrorOptions,
  ) {
    super({ ...init, condition: init.condition ?? 'service-unavailable' }, options);
  }
}
