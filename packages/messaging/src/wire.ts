/**
 * Wire format of the QoS protocol (P. Waher's "Quality of Service" proposal, `urn:xmpp:qos`,
 * deployed as `urn:nf:iot:qos:1.0` and `urn:ieee:iot:qos:1.0`) plus the XEP-0203 delay,
 * XEP-0079 expire-at, XEP-0334 hints and XEP-0359 origin-id helpers the messenger uses.
 * Strict in what we send, liberal in what we accept: `received` and the inner `<message>` are
 * matched by local name in any (or no) namespace.
 */
import { StanzaError, findChild, localName, xml, type Element } from '@xmppbus/core';

/** The namespace we send. */
export const NS_QOS = 'urn:xmpp:qos';
/** Deployed namespaces we accept (and answer in). */
export const NS_QOS_NF = 'urn:nf:iot:qos:1.0';
export const NS_QOS_IEEE = 'urn:ieee:iot:qos:1.0';
export const QOS_NAMESPACES: readonly string[] = [NS_QOS, NS_QOS_NF, NS_QOS_IEEE];

/** Our own namespace (application error conditions, headers). */
export const NS_MESSAGING = 'urn:xmppbus:messaging:1';
export const NS_DELAY = 'urn:xmpp:delay';
export const NS_AMP = 'http://jabber.org/protocol/amp';
export const NS_HINTS = 'urn:xmpp:hints';
export const NS_SID = 'urn:xmpp:sid:0';

export type QosLevel = 0 | 1 | 2;

/** Reads the inner `<message>` of an `acknowledged`/`assured` envelope (any namespace). */
export function innerMessage(envelope: Element): Element | undefined {
  return findChild(envelope, 'message');
}

/**
 * `<acknowledged xmlns=ns><message/></acknowledged>` inside an IQ set. `from` is always set:
 * ejabberd silently drops component stanzas without one.
 */
export function acknowledgedIq(id: string, from: string, to: string, message: Element, ns = NS_QOS): Element {
  return xml('iq', { type: 'set', id, from, to }, xml('acknowledged', { xmlns: ns }, message));
}

/** `<assured xmlns=ns msgId=…><message/></assured>` inside an IQ set. */
export function assuredIq(id: string, from: string, to: string, msgId: string, message: Element, ns = NS_QOS): Element {
  return xml('iq', { type: 'set', id, from, to }, xml('assured', { xmlns: ns, msgId }, message));
}

/** `<deliver xmlns=ns msgId=…/>` inside an IQ set. */
export function deliverIq(id: string, from: string, to: string, msgId: string, ns = NS_QOS): Element {
  return xml('iq', { type: 'set', id, from, to }, xml('deliver', { xmlns: ns, msgId }));
}

/** The `<received msgId=…/>` answer to `assured` (in the request's namespace). */
export function receivedElement(msgId: string, ns: string): Element {
  return xml('received', { xmlns: ns, msgId });
}

/** msgId of the `<received/>` in an IQ result, matched by local name in any namespace. */
export function receivedMsgId(result: Element): string | undefined {
  const r = findChild(result, 'received');
  const id = r?.attrs['msgId'];
  return typeof id === 'string' ? id : undefined;
}

/** RFC 3339 UTC with milliseconds, as XEP-0082 allows. */
export function stamp(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Parses an XEP-0082 date-time (also ejabberd's microsecond stamps). Returns NaN when invalid.
 * `Date.parse` accepts fractional seconds of any length on V8.
 */
export function parseStamp(value: string | undefined): number {
  if (value === undefined) return NaN;
  return Date.parse(value);
}

export interface DelayInfo {
  /** Original send time, ms since the epoch. */
  at: number;
  /** Who delayed it (`from` of the delay element): the sending service or the server's offline store. */
  by: string | undefined;
  /** The delay element's text, e.g. ejabberd's "Offline storage". */
  reason: string | undefined;
}

/**
 * Reads XEP-0203 `<delay/>` children of a message. With several (our own replay stamp plus a
 * server's offline-storage stamp), the earliest stamp is the original send time.
 */
export function readDelay(message: Element): DelayInfo | undefined {
  let best: DelayInfo | undefined;
  for (const c of message.children) {
    if (typeof c === 'string' || localName(c) !== 'delay') continue;
    const ns = c.attrs['xmlns'];
    if (ns !== NS_DELAY && ns !== undefined) continue;
    const at = parseStamp(c.attrs['stamp']);
    if (Number.isNaN(at)) continue;
    if (!best || at < best.at) {
      const text = c.getText();
      best = { at, by: c.attrs['from'], reason: text === '' ? undefined : text };
    }
  }
  return best;
}

/** XEP-0079 `expire-at` rule value of a message, ms since the epoch (NaN if absent). */
export function readExpireAt(message: Element): number {
  const amp = findChild(message, 'amp', NS_AMP);
  if (!amp) return NaN;
  for (const c of amp.children) {
    if (typeof c === 'string' || localName(c) !== 'rule') continue;
    if (c.attrs['condition'] === 'expire-at') return parseStamp(c.attrs['value']);
  }
  return NaN;
}

/** XEP-0359 origin-id of a message. */
export function readOriginId(message: Element): string | undefined {
  const o = findChild(message, 'origin-id', NS_SID);
  const id = o?.attrs['id'];
  return typeof id === 'string' ? id : undefined;
}

export function delayElement(at: number, from: string): Element {
  return xml('delay', { xmlns: NS_DELAY, stamp: stamp(at), from });
}

export function expireElement(at: number): Element {
  return xml('amp', { xmlns: NS_AMP }, xml('rule', { condition: 'expire-at', action: 'drop', value: stamp(at) }));
}

export function originIdElement(id: string): Element {
  return xml('origin-id', { xmlns: NS_SID, id });
}

export function hintElement(hint: 'store' | 'no-store'): Element {
  return xml(hint, { xmlns: NS_HINTS });
}

/** Adds `child` to `el` (ltx's `cnode` without the return-value dance). */
export function append(el: Element, child: Element): void {
  child.parent = el;
  el.children.push(child);
}

/** Application condition sent with `not-acceptable` when a message arrives after its expiry. */
export function expiredCondition(): Element {
  return xml('expired', { xmlns: NS_MESSAGING });
}

// ───────────────────────── batches (urn:xmppbus:qos:batch:1, negotiated through disco) ─────────────────────────

/**
 * Our extension: several QoS envelopes in one IQ. A receiver advertises it in disco#info; a
 * sender uses it only with peers that do (everyone else gets one envelope per IQ).
 */
export const NS_BATCH = 'urn:xmppbus:qos:batch:1';

/** An `acknowledged` batch item: like the single form, plus `msgId` (the single form's IQ id). */
export function acknowledgedItem(msgId: string, message: Element, ns = NS_QOS): Element {
  return xml('acknowledged', { xmlns: ns, msgId }, message);
}

export function assuredItem(msgId: string, message: Element, ns = NS_QOS): Element {
  return xml('assured', { xmlns: ns, msgId }, message);
}

export function deliverItem(msgId: string, ns = NS_QOS): Element {
  return xml('deliver', { xmlns: ns, msgId });
}

/** `<iq type='set'><batch xmlns=NS_BATCH>items…</batch></iq>`. */
export function batchIq(id: string, from: string, to: string, items: Element[]): Element {
  const batch = xml('batch', { xmlns: NS_BATCH });
  for (const item of items) append(batch, item);
  return xml('iq', { type: 'set', id, from, to }, batch);
}

/**
 * One item's outcome in a batch result: `<ok msgId/>` (acknowledged handled, deliver
 * processed), the `<received xmlns=qos msgId/>` of an assured item, or
 * `<error msgId type=…><condition xmlns=stanzas/>…</error>` (a stanza error, RFC 6120 §8.3).
 */
export function batchOutcome(msgId: string, outcome: Element | StanzaError | undefined): Element {
  if (outcome === undefined) return xml('ok', { msgId });
  if (outcome instanceof StanzaError) {
    const el = outcome.toElement();
    el.attrs['msgId'] = msgId;
    return el;
  }
  if (outcome.attrs['msgId'] === undefined) outcome.attrs['msgId'] = msgId;
  return outcome;
}

export function batchResultElement(items: Element[]): Element {
  const batch = xml('batch', { xmlns: NS_BATCH });
  for (const item of items) append(batch, item);
  return batch;
}

/**
 * Reads a batch result into msgId → outcome: `true` (ok or received) or the item's StanzaError.
 * Items without msgId are ignored (their messages count as unanswered and are retried).
 */
export function readBatchResult(result: Element): Map<string, true | StanzaError> {
  const out = new Map<string, true | StanzaError>();
  const batch = findChild(result, 'batch', NS_BATCH);
  if (!batch) return out;
  for (const c of batch.children) {
    if (typeof c === 'string') continue;
    const id = c.attrs['msgId'];
    if (typeof id !== 'string') continue;
    out.set(id, localName(c) === 'error' ? StanzaError.fromElement(c) : true);
  }
  return out;
}
