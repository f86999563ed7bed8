/**
 * The monitor's view of a fleet: what it knows about each agent (presence, latest values, recent
 * history, controllable parameters) and which alerts are active. Plain JSON-safe data, so the
 * dashboard can ship it to a browser as is. Everything in it that came from an agent (names,
 * units, string values) is untrusted text: renderers must escape it.
 */

/** Liveness from presence: available → online, away/xa/dnd → away, unavailable → offline. */
export type AgentPresence = 'online' | 'away' | 'offline';

/**
 * Where an agent's `lastSeen` comes from: `monitor`, what the monitor saw itself (presence,
 * values); `server`, the server's last activity of an agent offline since before the monitor
 * knew it (XEP-0012 `jabber:iq:last`).
 */
export type LastSeenSource = 'monitor' | 'server';

/** A field's value as the monitor keeps it (enum values are their string). */
export type FleetValue = number | boolean | string;

/** One point of a field's history: time (ms since the epoch) and a number (booleans as 0/1). */
export interface HistoryPoint {
  readonly t: number;
  readonly v: number;
}

export interface FieldView {
  readonly name: string;
  readonly value: FleetValue;
  readonly unit?: string | undefined;
  /** When the agent says the value was measured (ms since the epoch). */
  readonly timestamp: number;
  /** Oldest first, at most the monitor's `historySize` points; numeric and boolean fields only. */
  readonly history: readonly HistoryPoint[];
}

export type ControlKind = 'boolean' | 'numeric' | 'enum' | 'string';

/** A controllable parameter as the dashboard offers it. */
export interface ControlView {
  readonly name: string;
  readonly kind: ControlKind;
  readonly value?: FleetValue | undefined;
  readonly unit?: string | undefined;
  readonly min?: number | undefined;
  readonly max?: number | undefined;
  readonly options?: readonly string[] | undefined;
}

export interface AgentView {
  /** Bare JID. */
  readonly jid: string;
  /** Display name (configured, or the JID's local part). */
  readonly name: string;
  readonly presence: AgentPresence;
  /** Last time the agent was seen available or sent a value (ms since the epoch). */
  readonly lastSeen?: number | undefined;
  /** Who saw it then (absent while `lastSeen` is unknown). */
  readonly lastSeenSource?: LastSeenSource | undefined;
  readonly fields: readonly FieldView[];
  readonly controls: readonly ControlView[];
}

export type AlertKind = 'threshold' | 'stale' | 'offline';
export type AlertSeverity = 'warning' | 'critical';

export interface AlertView {
  /** Stable per (rule, agent, field): raising it again after a clear reuses the id. */
  readonly id: string;
  readonly rule: string;
  readonly kind: AlertKind;
  readonly severity: AlertSeverity;
  readonly agent: string;
  readonly field?: string | undefined;
  readonly message: string;
  readonly raisedAt: number;
  /** The value that raised it (threshold alerts). */
  readonly value?: FleetValue | undefined;
}

/**
 * A command queued for an offline agent (QoS 2 through the messenger's outbox): `queued` until
 * the agent logs in and takes it; `delivered` once it did and (when the parameter is also a
 * field) reported the commanded value; `failed` when it expired (ttl) or was refused.
 */
export interface CommandView {
  readonly id: string;
  readonly agent: string;
  readonly parameter: string;
  readonly value: FleetValue;
  readonly state: 'queued' | 'delivered' | 'failed';
  readonly queuedAt: number;
  readonly error?: string | undefined;
}

/** What `control` did: applied at once (the agent answered), or queued for an offline agent. */
export type ControlOutcome = { readonly state: 'applied' } | { readonly state: 'queued'; readonly id: string };

export interface FleetSnapshot {
  readonly at: number;
  readonly agents: readonly AgentView[];
  readonly alerts: readonly AlertView[];
  /** Commands still queued for offline agents (absent from sources that queue none). */
  readonly commands?: readonly CommandView[];
}

/** What changed, in the order the monitor saw it. */
export type FleetEvent =
  | {
      readonly type: 'value';
      readonly agent: string;
      readonly field: string;
      readonly value: FleetValue;
      readonly unit?: string | undefined;
      readonly timestamp: number;
    }
  | { readonly type: 'presence'; readonly agent: string; readonly presence: AgentPresence; readonly lastSeen?: number }
  | { readonly type: 'agent'; readonly agent: AgentView }
  | { readonly type: 'alert'; readonly state: 'raised' | 'cleared'; readonly alert: AlertView; readonly at: number }
  | {
      readonly type: 'control';
      readonly agent: string;
      readonly parameter: string;
      readonly value: FleetValue;
      readonly ok: boolean;
      readonly error?: string;
    }
  | { readonly type: 'command'; readonly command: CommandView };

/** What a dashboard needs from a monitor (the `Monitor` implements it; tests may fake it). */
export interface FleetSource {
  snapshot(): FleetSnapshot;
  /** Calls `listener` for every change from now on; returns the unsubscribe function. */
  subscribe(listener: (event: FleetEvent) => void): () => void;
  /**
   * Sets a parameter on an agent: resolves when the agent accepted it, or when a command for an
   * offline agent is queued (`{ state: 'queued' }`). A source resolving nothing means applied.
   */
  control(
    agent: string,
    parameter: string,
    value: FleetValue,
    options?: { signal?: AbortSignal; timeout?: number },
  ): Promise<ControlOutcome | void>;
}
