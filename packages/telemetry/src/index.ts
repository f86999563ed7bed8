/**
 * @xmppbus/telemetry — OpenTelemetry traces and metrics for xmppbus through `@opentelemetry/api`
 * only (the SDK is the application's choice). `instrument(session)` installs the hooks rpc,
 * pubsub and messaging call; `traceLogContext` gives loggers the active `trace_id`/`span_id`.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { Session } from '@xmppbus/core';
import { Telemetry, type TelemetryOptions } from './telemetry.js';

export { Telemetry, outcomeOf, VERSION } from './telemetry.js';
export type { TelemetryOptions } from './telemetry.js';
export {
  ShimTraceContextPropagator,
  headersGetter,
  headersSetter,
  parseTraceparent,
  TRACEPARENT,
  TRACESTATE,
  BAGGAGE,
} from './propagator.js';
export {
  RPC_SYSTEM_XMPP,
  MESSAGING_SYSTEM_XMPP,
  ATTR_RPC_SYSTEM,
  ATTR_RPC_SERVICE,
  ATTR_RPC_METHOD,
  ATTR_SERVER_ADDRESS,
  ATTR_CLIENT_ADDRESS,
  ATTR_MESSAGING_SYSTEM,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_CONSUMER_GROUP_NAME,
  ATTR_ERROR_TYPE,
  ATTR_XMPPBUS_ADDRESS,
  ATTR_XMPPBUS_OUTCOME,
  ATTR_XMPPBUS_STANZA_CONDITION,
  ATTR_XMPPBUS_STANZA_TYPE,
  ATTR_XMPPBUS_QOS,
  ATTR_XMPPBUS_PAYLOAD,
  ATTR_XMPPBUS_PEER,
  ATTR_XMPPBUS_RETRY_ATTEMPT,
  ATTR_XMPPBUS_UNIT,
  ATTR_XMPPBUS_CONNECTION_STATUS,
  EVENT_RETRY,
  METRIC_RPC_CLIENT_DURATION,
  METRIC_RPC_SERVER_DURATION,
  METRIC_MESSAGING_PROCESS_DURATION,
  METRIC_MESSAGING_SEND_DURATION,
  METRIC_EVENTS,
  METRIC_RPC_RETRIES,
  METRIC_MESSAGING_RETRIES,
  METRIC_DEAD_LETTERS,
  METRIC_IN_FLIGHT,
  METRIC_QUEUE_DEPTH,
  METRIC_QUEUE_BYTES,
  METRIC_OUTBOX_SIZE,
  METRIC_INBOX_PENDING,
  METRIC_CONNECTION_STATE,
  METRIC_RECONNECTS,
} from './semconv.js';

/**
 * Instruments every unit of `session` (install it before the units start). Returns the
 * `Telemetry`; disposing it puts the no-op back.
 */
export function instrument(session: Session, options: TelemetryOptions = {}): Telemetry {
  const t = new Telemetry(session, options);
  session.instrumentation = t;
  return t;
}

/** `{ trace_id, span_id }` of the active span, or undefined outside one (a logger context hook). */
export function traceLogContext(): { trace_id: string; span_id: string } | undefined {
  const sc = trace.getActiveSpan()?.spanContext();
  if (!sc || !isSpanContextValid(sc)) return undefined;
  return { trace_id: sc.traceId, span_id: sc.spanId };
}
