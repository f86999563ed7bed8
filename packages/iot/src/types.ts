/**
 * Public types of `@xmppbus/iot`: the things an agent declares (sensor fields, control
 * parameters), the values it reports, and the rules a monitor observes them with. They are
 * dialect-neutral: `dialects/` maps them to the deployed `urn:nf:iot:*` vocabulary and to the
 * legacy XEP-0323/0325 one (docs/protocol.md §7).
 */
import type { WaitOptions } from '@xmppbus/core';

/**
 * Wire dialect of a request. `nf` is the deployed Neuro-Foundation vocabulary (`urn:nf:iot:*`;
 * `urn:nfi:iot:*` and `urn:ieee:iot:*` are the same vocabulary under other names), `legacy` the
 * retracted XEP-0323/0325 + iot-events form (`urn:xmpp:iot:*`). An agent answers in the dialect
 * (and namespace) of each request.
 */
export type Dialect = 'nf' | 'legacy';

/**
 * Kind of a sensor field value (nf element / legacy element):
 * `quantity` q/numeric (number with unit and decimals), `int` i/int, `long` l/long,
 * `boolean` b/boolean, `enum` e/enum, `string` s/string, `dateTime` dt/dateTime, `date` d/date,
 * `time` t/time, `duration` dr/duration (ISO 8601 `PnDTnHnMnS`).
 */
export type FieldKind =
  'quantity' | 'int' | 'long' | 'boolean' | 'enum' | 'string' | 'dateTime' | 'date' | 'time' | 'duration';

/** Field categories (nf attributes m/p/s/c/i/h; legacy momentary/peak/status/computed/identity/historical*). */
export type FieldCategory = 'momentary' | 'peak' | 'status' | 'computed' | 'identity' | 'historical';

/**
 * Quality-of-service flags of one value (nf short attribute / legacy long attribute):
 * missing ms, inProgress pr, automaticEstimate ae, manualEstimate me, manualReadout mr,
 * automaticReadout ar, timeOffset of, warning w, error er, signed so, invoiced iv,
 * endOfSeries eos, powerFailure pf, invoiceConfirmed ic.
 */
export type FieldQuality =
  | 'missing'
  | 'inProgress'
  | 'automaticEstimate'
  | 'manualEstimate'
  | 'manualReadout'
  | 'automaticReadout'
  | 'timeOffset'
  | 'warning'
  | 'error'
  | 'signed'
  | 'invoiced'
  | 'endOfSeries'
  | 'powerFailure'
  | 'invoiceConfirmed';

/**
 * A field value: numbers for quantity/int/long, booleans, and strings for the rest (enum
 * member, text, ISO 8601 date/time/duration text as on the wire).
 */
export type FieldValue = number | boolean | string;

/** One reported value of one field: what a readout or an observe event carries. */
export interface FieldSample {
  /** Node id behind a concentrator (`nd id` / legacy `node nodeId`); absent for the device itself. */
  readonly node?: string | undefined;
  readonly name: string;
  readonly kind: FieldKind;
  readonly value: FieldValue;
  /** When the value was measured, ms since the epoch. */
  readonly timestamp: number;
  /** Unit of a quantity (`°C`, `W`, …). */
  readonly unit?: string | undefined;
  /** Decimals of a quantity as measured (kept on the wire: `21.50` stays two decimals). */
  readonly decimals?: number | undefined;
  /** Enumeration type name of an enum value (nf `t`, legacy `dataType`). */
  readonly enumType?: string | undefined;
  readonly categories: readonly FieldCategory[];
  readonly quality: readonly FieldQuality[];
  /**
   * The field can be set through control (nf `ctr`, legacy `writable`). An `IotAgent` marks a
   * field so when it declares a parameter of the same name and node.
   */
  readonly writable?: boolean | undefined;
}

/** A readout error for a node (nf `<err>`, legacy `<failure><error>`). */
export interface ReadoutError {
  readonly node?: string | undefined;
  readonly timestamp: number;
  readonly message: string;
}

/** Declaration of a sensor field an agent reports. */
export interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
  readonly node?: string;
  readonly unit?: string;
  /** Decimals to report a quantity with (default: as given). */
  readonly decimals?: number;
  /** Enum type name and allowed members (values outside are refused by `agent.set`). */
  readonly enumType?: string;
  readonly values?: readonly string[];
  /** Categories (default `['momentary']`). */
  readonly categories?: readonly FieldCategory[];
  /** Initial value (otherwise the field is reported as `missing` until set). */
  readonly initial?: FieldValue;
}

/** Kind of a control parameter (nf element / legacy element). */
export type ParameterKind =
  | 'boolean' // b / boolean
  | 'int' // i / int
  | 'long' // l / long
  | 'double' // db / double
  | 'string' // s / string
  | 'enum' // e (with t) / string
  | 'dateTime' // dt / dateTime
  | 'date' // d / date
  | 'time' // t / time
  | 'duration' // dr / duration
  | 'color'; // cl / color (RRGGBB or RRGGBBAA)

/** A control parameter value after validation: booleans, numbers, or strings (the rest). */
export type ParameterValue = number | boolean | string;

/** Context of an applied control operation. */
export interface ControlContext {
  /** Full JID of the requester. */
  readonly from: string;
  readonly dialect: Dialect;
  /** How it arrived: an IQ `set`, a `<message>` (no response), or a QoS command via messaging. */
  readonly via: 'iq' | 'message' | 'command';
  /** Original send time of a command that waited (XEP-0203 `<delay/>`). */
  readonly delayedFrom?: Date | undefined;
  readonly node?: string | undefined;
}

/** Declaration of a controllable parameter with its schema. */
export interface ParameterSpec {
  readonly name: string;
  readonly kind: ParameterKind;
  readonly node?: string;
  /** Inclusive numeric range (int/long/double). */
  readonly min?: number;
  readonly max?: number;
  /** Allowed members of an enum (required for `enum`). */
  readonly values?: readonly string[];
  /** Enum type name (nf `t`). */
  readonly enumType?: string;
  /** Regular expression a string must match, and its maximum length (default 1024). */
  readonly pattern?: string;
  readonly maxLength?: number;
  readonly initial?: ParameterValue;
  /**
   * Applies a validated value (drive the actuator). Throwing a StanzaError answers with it;
   * any other throw answers `internal-server-error`. Default: store the value and, when a field
   * of the same name and node exists, report it as a new value of that field.
   */
  readonly apply?: (value: ParameterValue, context: ControlContext) => void | Promise<void>;
}

/** A change trigger for one field of an observe subscription (nf `<f n by up dn v>`, legacy `<field name changedBy …>`). */
export interface ObserveRule {
  readonly field: string;
  /** Fires when |value − reference| ≥ changedBy (the reference is the last reported value). */
  readonly changedBy?: number;
  /** Fires when value − reference ≥ changedUp. */
  readonly changedUp?: number;
  /** Fires when reference − value ≥ changedDown. */
  readonly changedDown?: number;
  /** Reference value to measure change from (default: the agent's current value). */
  readonly currentValue?: number;
}

/** What a monitor subscribes to. A rule without change thresholds fires on any change of that field. */
export interface ObserveOptions extends WaitOptions {
  /** Fields with optional change thresholds (default: every field, any change). */
  readonly rules?: readonly ObserveRule[];
  readonly nodes?: readonly string[];
  /** At most one event per interval, ms; changes in between are coalesced into the latest values. */
  readonly minInterval?: number;
  /** An event at least every interval, ms, even without change (heartbeat). */
  readonly maxInterval?: number;
  /** Values older than this, ms, are left out of events (they are not current). */
  readonly maxAge?: number;
  /** Send the current values at once (nf `req='true'`). Default true. */
  readonly immediate?: boolean;
  /** Renew the subscription every this many ms (default 5 min; the agent expires it after its `subscriptionTtl`). */
  readonly renewEvery?: number;
  /** Dialect of this subscription (default: the client's). */
  readonly dialect?: Dialect;
  /** Called for every event, from the first (an immediate one arrives before `observe` resolves). */
  readonly onEvent?: (event: ObserveEvent) => void;
  /** Bound of the event queue of the async iterator (default 1 000; older events are dropped first). */
  readonly bufferSize?: number;
}

/** One observe event: the subscribed fields' current values at the time of the event. */
export interface ObserveEvent {
  readonly agent: string;
  readonly subscription: string;
  readonly fields: readonly FieldSample[];
  readonly errors: readonly ReadoutError[];
}

/** A readout request. */
export interface ReadOptions extends WaitOptions {
  /** Field names (default: all). */
  readonly fields?: readonly string[];
  readonly nodes?: readonly string[];
  /** Momentary values (default true unless `historical` is given). */
  readonly momentary?: boolean;
  /** Historical values in [from, to] (ms since the epoch, or Dates). */
  readonly historical?: { readonly from?: number | Date; readonly to?: number | Date };
  /** Other categories to include. */
  readonly categories?: readonly FieldCategory[];
  /** Dialect of this request (default: the client's). */
  readonly dialect?: Dialect;
}

/** A completed readout. */
export interface Readout {
  readonly agent: string;
  readonly fields: readonly FieldSample[];
  readonly errors: readonly ReadoutError[];
}

/** A control request: parameter name → value (typed by the agent's parameter kinds). */
export type ControlValues = Readonly<Record<string, ParameterValue>>;

/** Options of `client.control`. */
export interface ControlOptions extends WaitOptions {
  readonly node?: string;
  readonly dialect?: Dialect;
  /**
   * Send as a `<message>` (fire and forget: the agent answers nothing, even on error).
   * Default false: an IQ whose result or typed error the call resolves/rejects with.
   */
  readonly asMessage?: boolean;
}

/** Presence of an agent as a monitor sees it. */
export type AgentAvailability = 'available' | 'away' | 'xa' | 'dnd' | 'chat' | 'unavailable';

/** A presence change of a peer. */
export interface PresenceChange {
  /** Full JID (bare when unavailable without resource). */
  readonly jid: string;
  readonly availability: AgentAvailability;
  readonly status?: string | undefined;
  /** When it changed, ms since the epoch (the session clock). */
  readonly at: number;
}

/** A pending presence subscription request, waiting for an owner's decision. */
export interface SubscriptionRequest {
  /** Bare JID asking to see the agent's presence (and so to read it). */
  readonly jid: string;
  /** When it arrived, ms since the epoch. */
  readonly at: number;
}

/** State of a roster item (RFC 6121). */
export type RosterSubscription = 'none' | 'to' | 'from' | 'both' | 'remove';

export interface RosterItem {
  readonly jid: string;
  readonly subscription: RosterSubscription;
  /** An outbound subscribe waiting for the peer's answer. */
  readonly pending?: boolean | undefined;
  readonly name?: string | undefined;
}

/** What a provisioning hook decides for a readout/observe request (XEP-0324 model). */
export type ReadDecision = boolean | { readonly fields: readonly string[] };
/** What a provisioning hook decides for a control request. */
export type ControlDecision = boolean | { readonly parameters: readonly string[] };

/**
 * Delegated decisions (XEP-0324 model). Asked after the roster check passed; may narrow the
 * request (fields/parameters left out are not read/set; an empty list refuses).
 */
export interface Provisioning {
  canRead?(jid: string, fields: readonly string[] | undefined): ReadDecision | Promise<ReadDecision>;
  canControl?(jid: string, parameters: readonly string[]): ControlDecision | Promise<ControlDecision>;
}

/** Bounds of an agent: whatever a peer sends, memory stays within these. */
export interface AgentLimits {
  /** Observe subscriptions per peer (bare JID). Default 8. */
  readonly subscriptionsPerPeer?: number;
  /** Observe subscriptions in total. Default 1 000. */
  readonly subscriptions?: number;
  /** Queued presence subscription requests awaiting an owner. Default 100 (older ones are denied). */
  readonly pendingRequests?: number;
  /** Fields named in one request. Default 256. */
  readonly fieldsPerRequest?: number;
  /** Parameters in one control request. Default 64. */
  readonly parametersPerRequest?: number;
  /** Historical values kept per field. Default 32. */
  readonly historyPerField?: number;
  /** Fields per readout message before splitting into several messages. Default 100. */
  readonly fieldsPerMessage?: number;
}
