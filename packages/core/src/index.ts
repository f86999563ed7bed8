// Errors
export {
  ERROR_CODES,
  XmppBusError,
  TimeoutError,
  AbortError,
  ConnectionError,
  ClosedError,
  QueueFullError,
  ProtocolError,
  AuthError,
  ConflictError,
  ConfigError,
  XmlError,
  PayloadTooLargeError,
  StoreError,
  ExpiredError,
  toError,
} from './errors.js';
export type { ErrorCode, XmppBusErrorOptions } from './errors.js';
export {
  StanzaError,
  ServiceUnavailableError,
  defaultErrorType,
  isRetryableCondition,
  NS_STANZAS,
  STANZA_ERROR_CONDITIONS,
  UNAVAILABLE_CONDITIONS,
} from './stanza-error.js';
export type { StanzaErrorCondition, StanzaErrorType, StanzaErrorInit } from './stanza-error.js';

// XML
export {
  Element,
  xml,
  localName,
  firstChildElement,
  childElements,
  findChild,
  textOf,
  isXmlElement,
  parseXml,
  serialize,
} from './xml.js';
export type { Attrs, Child, ParseLimits } from './xml.js';

// Transport
export { BaseTransport, waitForStatus } from './base-transport.js';
export type { BaseTransportOptions } from './base-transport.js';
export type { Transport, TransportStatus, SendOptions, StanzaListener, StatusListener } from './transport.js';

// Addresses, ids, headers, time, cancellation
export { jid, bareJid, domainOf, jidEquals } from './jid.js';
export type { Jid } from './jid.js';
export { randomId } from './id.js';
export { NS_SHIM, HEADER, headersElement, readHeaders, setHeaders, headerEntries, emptyHeaders } from './shim.js';
export type { Headers, HeadersInit } from './shim.js';
export { systemClock, ManualClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { RetryPolicy, Backoff } from './retry-policy.js';
export type { RetryOptions, ResolvedRetryOptions } from './retry-policy.js';
export { withAbort, abortReason, deferred } from './abort.js';
export type { WaitOptions, Deferred } from './abort.js';
export { WaitQueue, sleep } from './wait-queue.js';

// Logging (optional, silent by default)
export { silentLogger } from './logger.js';
export type { Logger } from './logger.js';

// Session: one per connection (IQ routing and calling, disco, presence/message intake, lifecycle)
export { Session } from './session.js';
export type { SessionOptions, SessionStatus, SessionUnit, TransportStatusListener } from './session.js';
export { noInstrumentation } from './instrumentation.js';
export type { Instrumentation, OperationScope, GaugeReadings } from './instrumentation.js';
export { IqRouter, IqCaller, resultReply, errorReply, errorFromStanza, noHandlerError, peerIsGone } from './iq.js';
export type { IqHandler, IqRequestOptions } from './iq.js';
export { DiscoRegistry, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING } from './disco.js';
export type { DiscoIdentity, DiscoItem, DiscoNodeInfo, DiscoVisibility } from './disco.js';
export { SchemaRegistry, NS_SCHEMA, NS_RSM } from './reflection.js';
export type {
  ContractDescriptor,
  MethodDescriptor,
  EventDescriptor,
  MessageDescriptor,
  ErrorDescriptor,
  JsonSchema,
  SchemaRegistryDeps,
} from './reflection.js';
export { fetchSchemas, parseSchemas } from './reflection-client.js';
export type { FetchSchemasOptions, SchemaRequester } from './reflection-client.js';
export { fetchFeatures } from './disco-client.js';
export type { DiscoRequester } from './disco-client.js';
export { PeerFeatures } from './peer-features.js';
export type { PeerFeaturesDeps } from './peer-features.js';
export { calleeError } from './callee-error.js';
export { AccessPolicy, orgDomain } from './access.js';
export { SenderBudget, FairQueue, stanzaBytes, stanzaCost, NODE_COST, STANZA_BYTES } from './admission.js';
export type { BudgetLimits } from './admission.js';
export type { AccessRule, AccessPolicyOptions } from './access.js';
export type { CalleeErrorContext } from './callee-error.js';
