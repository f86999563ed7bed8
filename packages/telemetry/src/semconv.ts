/**
 * The attribute, span and metric names this package emits. Local copies of OpenTelemetry's
 * semantic conventions (messaging and RPC, incubating at the time of writing) so a change
 * upstream never silently renames what dashboards query; ours are prefixed `xmppbus.`.
 */
export const RPC_SYSTEM_XMPP = 'xmpp';
export const MESSAGING_SYSTEM_XMPP = 'xmpp';

// RPC (https://opentelemetry.io/docs/specs/semconv/rpc/)
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_CLIENT_ADDRESS = 'client.address';

// Messaging (https://opentelemetry.io/docs/specs/semconv/messaging/)
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name';

// General
export const ATTR_ERROR_TYPE = 'error.type';

// xmppbus's own
/** The session's own address: which service (component or account) made the span. */
export const ATTR_XMPPBUS_ADDRESS = 'xmppbus.address';
/** `ok`, a stanza error condition (`item-not-found`…), or an xmppbus error code (`timeout`…). */
export const ATTR_XMPPBUS_OUTCOME = 'xmppbus.outcome';
export const ATTR_XMPPBUS_STANZA_CONDITION = 'xmppbus.stanza_error.condition';
export const ATTR_XMPPBUS_STANZA_TYPE = 'xmppbus.stanza_error.type';
export const ATTR_XMPPBUS_QOS = 'xmppbus.qos';
export const ATTR_XMPPBUS_PAYLOAD = 'xmppbus.payload';
export const ATTR_XMPPBUS_PEER = 'xmppbus.peer';
export const ATTR_XMPPBUS_RETRY_ATTEMPT = 'xmppbus.retry.attempt';
/** Which unit reports a gauge: `rpc-server`, `rpc-client`, `messenger`. */
export const ATTR_XMPPBUS_UNIT = 'xmppbus.unit';
export const ATTR_XMPPBUS_CONNECTION_STATUS = 'xmppbus.connection.status';

export const EVENT_RETRY = 'retry';

// Metrics
export const METRIC_RPC_CLIENT_DURATION = 'rpc.client.call.duration';
export const METRIC_RPC_SERVER_DURATION = 'rpc.server.call.duration';
export const METRIC_MESSAGING_PROCESS_DURATION = 'messaging.process.duration';
export const METRIC_MESSAGING_SEND_DURATION = 'messaging.client.operation.duration';
export const METRIC_EVENTS = 'xmppbus.events';
export const METRIC_RPC_RETRIES = 'xmppbus.rpc.retries';
export const METRIC_MESSAGING_RETRIES = 'xmppbus.messaging.retries';
export const METRIC_DEAD_LETTERS = 'xmppbus.messaging.dead_letters';
export const METRIC_IN_FLIGHT = 'xmppbus.in_flight';
export const METRIC_QUEUE_DEPTH = 'xmppbus.queue.depth';
export const METRIC_QUEUE_BYTES = 'xmppbus.queue.size';
export const METRIC_OUTBOX_SIZE = 'xmppbus.outbox.messages';
export const METRIC_INBOX_PENDING = 'xmppbus.inbox.pending';
export const METRIC_CONNECTION_STATE = 'xmppbus.connection.state';
export const METRIC_RECONNECTS = 'xmppbus.connection.reconnects';
