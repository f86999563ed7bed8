/**
 * The seam between features and observability. Feature packages (rpc, pubsub, messaging) call
 * these hooks at their key points through `session.instrumentation`; they never import an
 * OpenTelemetry package. `@xmppbus/telemetry` implements them with `@opentelemetry/api`.
 *
 * With nothing registered the session holds `noInstrumentation`: `enabled` is false and the
 * features skip every hook behind one property read (no scope, header or closure allocated).
 */
import type { Headers, HeadersInit } from './shim.js';

/** One instrumented operation (a span, and its duration metric). */
export interface OperationScope {
  /** `headers` plus the trace context to send (`traceparent`, `tracestate`, `baggage`). */
  headers(headers: HeadersInit | undefined): HeadersInit | undefined;
  /** Runs `fn` with this operation as the active context (operations it starts become children). */
  run<T>(fn: () => T): T;
  /** Another attempt of this operation starts (`attempt` 2 is the first retry) after `error`. */
  retry(attempt: number, error: unknown): void;
  /** Ends the operation: success without `error`. Only the first call counts. */
  end(error?: unknown): void;
}

/** What a unit reports when metrics are collected (absent fields are not reported). */
export interface GaugeReadings {
  /** Calls or messages in progress. */
  readonly inFlight?: number;
  /** Work waiting for a slot or a handler, and its size in bytes. */
  readonly queueDepth?: number;
  readonly queueBytes?: number;
  /** Messages in the outbox (not yet acknowledged, delivered or dead-lettered). */
  readonly outbox?: number;
  /** Assured (QoS 2) messages stored, awaiting `deliver`. */
  readonly pendingInbound?: number;
  /** Cumulative: retries and messages moved to the dead letters since the unit was built. */
  readonly retries?: number;
  readonly deadLetters?: number;
}

/** The hooks features call. Every method must be cheap and must not throw. */
export interface Instrumentation {
  /** False for the no-op: features skip the hooks entirely. */
  readonly enabled: boolean;
  /** An outgoing call of method `{ns}name` to `to`. */
  rpcClientCall(ns: string, name: string, to: string): OperationScope;
  /** An inbound call, its trace context read from `headers`. */
  rpcServerCall(ns: string, name: string, from: string, headers: Headers): OperationScope;
  /** Publishing event `name` to `node` of pub/sub `service`. */
  publish(service: string, node: string, name: string): OperationScope;
  /** Handling one event of `node`, its trace context read from `headers`. */
  processEvent(service: string, node: string, name: string, headers: Headers): OperationScope;
  /** An event skipped because its payload is invalid. */
  invalidEvent(service: string, node: string, error: unknown): void;
  /** Sending a message `name` to `to` at `qos` (ends once the message is accepted). */
  sendMessage(to: string, name: string, qos: number): OperationScope;
  /** Handling one inbound message, its trace context read from `headers`. */
  processMessage(from: string, name: string, qos: number, headers: Headers): OperationScope;
  /** Registers a unit's readings, collected with the metrics. Returns the remover. */
  observe(unit: string, read: () => GaugeReadings): () => void;
}

const noScope: OperationScope = {
  headers: (headers) => headers,
  run: (fn) => fn(),
  retry: () => undefined,
  end: () => undefined,
};

const off = (): void => undefined;

/** The shared no-op: what a session holds until telemetry is registered. */
export const noInstrumentation: Instrumentation = Object.freeze({
  enabled: false,
  rpcClientCall: () => noScope,
  rpcServerCall: () => noScope,
  publish: () => noScope,
  processEvent: () => noScope,
  invalidEvent: () => undefined,
  sendMessage: () => noScope,
  processMessage: () => noScope,
  observe: () => off,
});
