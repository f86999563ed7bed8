/**
 * Wire vocabulary of xmppbus RPC (documented in docs/protocol.md, section "rpc"): our own
 * namespace for error details and instance presence, and the helpers that build and read them.
 */
import {
  NS_SHIM,
  StanzaError,
  childElements,
  localName,
  randomId,
  toError,
  xml,
  type Element,
  type Logger,
} from '@xmppbus/core';
import { ValidationError, type MethodContract, type ValidationIssue } from '@xmppbus/schema';

/** xmppbus RPC namespace: error details, instance presence, disco feature. */
export const NS_RPC = 'urn:xmppbus:rpc:1';

/** At most this many validation issues travel in one error (keeps error stanzas small). */
const MAX_ISSUES = 10;

/** Which payload failed validation: the request (caller's fault) or the response (the handler's). */
export type InvalidSide = 'request' | 'response';

/** `<invalid xmlns='urn:xmppbus:rpc:1' side='…'><issue path='/qty'>must be &gt;= 1</issue></invalid>` */
export function invalidElement(side: InvalidSide, issues: readonly ValidationIssue[]): Element {
  const el = xml('invalid', { xmlns: NS_RPC, side });
  for (const issue of issues.slice(0, MAX_ISSUES)) {
    const child = xml('issue', { path: issue.path }, issue.message);
    child.parent = el;
    el.children.push(child);
  }
  return el;
}

/** Reads the issues of an `<invalid/>` detail element. */
export function readInvalid(el: Element): { side: InvalidSide; issues: ValidationIssue[] } {
  const side: InvalidSide = el.attrs['side'] === 'response' ? 'response' : 'request';
  const issues: ValidationIssue[] = [];
  for (const c of childElements(el)) {
    if (localName(c) !== 'issue') continue;
    const path = c.attrs['path'];
    issues.push({ path: typeof path === 'string' ? path : '', message: c.getText() });
  }
  if (issues.length === 0) issues.push({ path: '', message: 'invalid' });
  return { side, issues };
}

/** The `<text/>` of a validation error: names the failing path, as the protocol page promises. */
export function invalidText(side: InvalidSide, issues: readonly ValidationIssue[]): string {
  const first = issues[0];
  if (!first) return `invalid ${side}`;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `invalid ${side} at ${first.path === '' ? '/' : first.path}: ${first.message}${more}`;
}

/** Application detail of an error stanza when it is ours (`urn:xmppbus:rpc:1`). */
export function rpcDetail(error: StanzaError): Element | undefined {
  const app = error.application;
  return app && app.attrs['xmlns'] === NS_RPC ? app : undefined;
}

/**
 * Index of the SHIM `<headers/>` an xmppbus caller appends as the last child of the request
 * element (so the IQ keeps exactly one child, RFC 6120 §8.2.3), or -1.
 */
export function headersIndex(payload: Element): number {
  const ch = payload.children;
  for (let i = ch.length - 1; i >= 0; i--) {
    const c = ch[i];
    if (typeof c === 'string') continue; // trailing whitespace
    return c !== undefined && c.attrs['xmlns'] === NS_SHIM && localName(c) === 'headers' ? i : -1;
  }
  return -1;
}

/** The answer to a request that fails its schema (or cannot be mapped at all): the caller's fault. */
export function invalidRequest(err: unknown): StanzaError {
  if (err instanceof ValidationError) {
    return new StanzaError({
      condition: 'bad-request',
      type: 'modify',
      text: invalidText('request', err.issues),
      application: invalidElement('request', err.issues),
    });
  }
  // Malformed beyond the schema (too many elements, unmappable XML): still the caller's fault.
  return new StanzaError({
    condition: 'bad-request',
    type: 'modify',
    text: `invalid request: ${toError(err).message}`,
  });
}

/** The answer when a handler's response fails its schema: the callee's fault, logged with a ref. */
export function invalidResponse(contract: MethodContract, err: unknown, log: Logger): StanzaError {
  const ref = randomId().slice(0, 8);
  const e = toError(err);
  log.error(`rpc: handler of {${contract.ns}}${contract.name} returned an invalid response (ref ${ref})`, e);
  if (err instanceof ValidationError) {
    return new StanzaError({
      condition: 'internal-server-error',
      type: 'cancel',
      text: `${invalidText('response', err.issues)} (ref ${ref})`,
      application: invalidElement('response', err.issues),
    });
  }
  return new StanzaError({ condition: 'internal-server-error', type: 'cancel', text: `internal error (ref ${ref})` });
}
