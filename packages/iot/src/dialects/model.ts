/**
 * The dialect-neutral form of IoT requests and reports. Each dialect (`nf.ts`, `legacy.ts`)
 * parses its wire elements into these and builds its elements from them, so the agent and the
 * client never look at element names.
 */
import type { Element } from '@xmppbus/core';
import type { FieldKind, FieldSample, ObserveRule, ParameterKind, ReadoutError } from '../types.js';
import type { NamespaceFamily } from '../wire/namespaces.js';

/** Bounds a parser enforces while reading a request (whatever a peer sends). */
export interface ParseBounds {
  readonly fields: number;
  readonly nodes: number;
  readonly parameters: number;
}

export interface ReadRequest {
  /** Request id (nf `id`, legacy `seqnr`), echoed in every answer. */
  readonly id: string;
  /** Category mask (see `CAT`). */
  readonly categories: number;
  readonly from?: number | undefined;
  readonly to?: number | undefined;
  readonly nodes?: readonly string[] | undefined;
  readonly fields?: readonly string[] | undefined;
}

export interface SubscribeRequest extends ReadRequest {
  readonly rules?: readonly ObserveRule[] | undefined;
  readonly minInterval?: number | undefined;
  readonly maxInterval?: number | undefined;
  readonly maxAge?: number | undefined;
  /** Report current values at once (`req`). */
  readonly immediate: boolean;
}

export interface ControlOperation {
  readonly name: string;
  readonly kind: ParameterKind;
  /** The value as written on the wire; validated against the parameter's schema by the agent. */
  readonly raw: string;
  /** Enum type named by the request (nf `t`). */
  readonly enumType?: string | undefined;
}

export interface ControlRequest {
  readonly nodes?: readonly string[] | undefined;
  readonly operations: readonly ControlOperation[];
}

/** One message of a readout or an observe event, as the client reads it. */
export interface FieldsReport {
  readonly id: string;
  readonly fields: FieldSample[];
  readonly errors: ReadoutError[];
  /** Last message of this readout/event. */
  readonly done: boolean;
}

/** The wire form of one dialect. Parsers throw a `StanzaError` (`bad-request`) on malformed input. */
export interface DialectCodec {
  // Agent side: parse requests, build answers.
  parseRead(el: Element, bounds: ParseBounds): ReadRequest;
  parseSubscribe(el: Element, bounds: ParseBounds): SubscribeRequest;
  parseControl(el: Element, bounds: ParseBounds): ControlRequest;
  /** The request id of a `cancel`/`unsubscribe`. */
  requestId(el: Element): string;
  accepted(family: NamespaceFamily, id: string): Element;
  /** A fields report element (inline in an IQ result where the dialect allows it, or a message payload). */
  report(
    family: NamespaceFamily,
    id: string,
    fields: readonly FieldSample[],
    errors: readonly ReadoutError[],
    done: boolean,
  ): Element;
  /** A completion marker for a readout without data, when the dialect has one. */
  done(family: NamespaceFamily, id: string): Element;
  controlResult(family: NamespaceFamily): Element;
  /** The application error child of a control error (`paramError`). */
  paramError(family: NamespaceFamily, name: string, text: string): Element;
  /** Whether a readout can be answered inline in the IQ result. */
  readonly inlineReadout: boolean;

  // Client side: build requests, parse answers.
  buildRead(family: NamespaceFamily, id: string, request: ReadRequest): Element;
  buildSubscribe(family: NamespaceFamily, id: string, request: SubscribeRequest): Element;
  buildUnsubscribe(family: NamespaceFamily, id: string): Element;
  buildControl(family: NamespaceFamily, request: ControlRequest): Element;
  /** Parses a report element (`resp` / `fields` / `failure` / `done`); undefined when it is none. */
  parseReport(el: Element, maxFields: number): FieldsReport | undefined;
  /** The control value element name of a parameter kind. */
  controlElement(kind: ParameterKind): string;
  /** The report element name of a field kind. */
  fieldElement(kind: FieldKind): string;
}
