// Agent side: things, readout, observe, control, roster trust, presence, QoS commands.
export { IotAgent, iotAccessRules } from './agent/iot-agent.js';
export type { IotAgentOptions, IotAgentStatus, SetValueOptions } from './agent/iot-agent.js';
export type { ControlListener } from './agent/handlers.js';
export { IotScheduler } from './agent/scheduler.js';
export type { ScheduledTask } from './agent/scheduler.js';

// Monitor side: the typed client API.
export { IotClient, NS_LAST } from './client/iot-client.js';
export type { IotClientOptions, IotClientLimits, CommandOptions } from './client/iot-client.js';
export { Observation } from './client/observation.js';

// Monitor side: fleet monitor (discovery, observe, history, alert rules, alert events) and the live dashboard.
export { Monitor } from './monitor/monitor.js';
export type {
  MonitorOptions,
  MonitorStatus,
  MonitorStats,
  MonitoredAgent,
  MonitorValue,
  MonitorPresence,
} from './monitor/monitor.js';
export type { AlertRule, ThresholdRule, StaleRule, OfflineRule, AlertTransition } from './monitor/alerts.js';
export { AlertEvent, NS_IOT_ALERTS } from './monitor/alert-event.js';
export type { AlertEventPayload, AlertPublisher } from './monitor/alert-event.js';
export type {
  AgentPresence,
  FleetValue,
  HistoryPoint,
  FieldView,
  ControlKind,
  ControlView,
  AgentView,
  LastSeenSource,
  CommandView,
  ControlOutcome,
  AlertKind,
  AlertSeverity,
  AlertView,
  FleetSnapshot,
  FleetEvent,
  FleetSource,
} from './monitor/fleet.js';
export { Dashboard } from './dashboard/dashboard.js';
export type { DashboardOptions, DashboardStatus } from './dashboard/dashboard.js';

// Roster (RFC 6121): trust through presence subscriptions.
export { Roster, NS_ROSTER } from './roster/roster.js';
export type { RosterOptions, SubscriptionPolicy } from './roster/roster.js';

// Wire: namespaces of both dialects (docs/protocol.md §7).
export {
  NS_SD_NF,
  NS_EVENTS_NF,
  NS_CTR_NF,
  NS_SD_NFI,
  NS_EVENTS_NFI,
  NS_CTR_NFI,
  NS_SD_IEEE,
  NS_EVENTS_IEEE,
  NS_CTR_IEEE,
  NS_SD_LEGACY,
  NS_EVENTS_LEGACY,
  NS_CTR_LEGACY,
} from './wire/namespaces.js';

// Public types.
export type {
  Dialect,
  FieldKind,
  FieldCategory,
  FieldQuality,
  FieldValue,
  FieldSample,
  ReadoutError,
  FieldSpec,
  ParameterKind,
  ParameterValue,
  ParameterSpec,
  ControlContext,
  ObserveRule,
  ObserveOptions,
  ObserveEvent,
  ReadOptions,
  Readout,
  ControlValues,
  ControlOptions,
  AgentAvailability,
  PresenceChange,
  SubscriptionRequest,
  RosterSubscription,
  RosterItem,
  ReadDecision,
  ControlDecision,
  Provisioning,
  AgentLimits,
} from './types.js';
