/**
 * Errors of the schema package. `ValidationError` carries JSON-pointer paths so a caller (and,
 * through rpc's `bad-request` application element, a remote peer) learns exactly which field failed.
 */
import { XmppBusError } from '@xmppbus/core';
import type { XmppBusErrorOptions } from '@xmppbus/core';

/** One validation failure: a JSON pointer into the payload object (`''` = the payload itself). */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

export interface ValidationErrorOptions extends XmppBusErrorOptions {
  /** Prefix for the message, e.g. the payload element `<create xmlns='urn:x'>`. */
  context?: string;
}

/** A payload does not match its contract's schema (on encode, decode or `validate`). */
export class ValidationError extends XmppBusError {
  /** JSON pointer of the first failure, e.g. `/items/0/qty`; `''` for the payload root. */
  readonly path: string;
  /** Why the first failure failed, e.g. `must be >= 1`. */
  readonly reason: string;
  /** Every failure found (at least one). */
  readonly issues: readonly ValidationIssue[];

  constructor(issues: ValidationIssue | readonly ValidationIssue[], options?: ValidationErrorOptions) {
    const list: readonly ValidationIssue[] = Array.isArray(issues)
      ? (issues as readonly ValidationIssue[])
      : [issues as ValidationIssue];
    const first = list[0] ?? { path: '', message: 'invalid' };
    const more = list.length > 1 ? ` (and ${list.length - 1} more)` : '';
    const where = first.path === '' ? '/' : first.path;
    const prefix = options?.context ? `${options.context}: ` : '';
    super('ERR_VALIDATION', `${prefix}invalid at ${where}: ${first.message}${more}`, {
      retryable: false,
      ...options,
    });
    this.path = first.path;
    this.reason = first.message;
    this.issues = list;
  }
}

/** A contract's schema uses a construct the codec cannot map to XML (thrown when first used). */
export class SchemaError extends XmppBusError {
  /** JSON pointer into the schema where the problem is. */
  readonly schemaPath: string;
  constructor(schemaPath: string, message: string, options?: XmppBusErrorOptions) {
    super('ERR_SCHEMA', `schema ${schemaPath === '' ? '/' : schemaPath}: ${message}`, {
      retryable: false,
      ...options,
    });
    this.schemaPath = schemaPath;
  }
}

/** Escapes a property name for a JSON pointer segment (RFC 6901). */
export function pointerSegment(key: string | number): string {
  if (typeof key === 'number') return String(key);
  return key.indexOf('~') < 0 && key.indexOf('/') < 0 ? key : key.replace(/~/g, '~0').replace(/\//g, '~1');
}
