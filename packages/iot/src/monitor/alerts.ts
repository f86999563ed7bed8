import type { Clock, TimerHandle } from '@xmppbus/core';
import type { AgentPresence, AlertSeverity, AlertView, FleetValue } from './fleet.js';

interface RuleBase {
  /** Names the rule in alert ids, messages and events; unique per monitor. */
  name: string;
  /** Default 'warning'. */
  severity?: AlertSeverity;
  /** Bare JIDs the rule applies to (default: every agent). */
  agents?: readonly string[];
}

/**
 * A numeric field crossing a limit. With `above`, the alert is raised when the value goes above
 * it and cleared only once the value is at or below `above − hysteresis`; with `below`, raised
 * under it and cleared at or above `below + hysteresis`. Hysteresis keeps a value hovering
 * around the limit from raising and clearing on every reading.
 */
export interface ThresholdRule extends RuleBase {
  kind: 'threshold';
  field: string;
  above?: number;
  below?: number;
  /** Default 0. */
  hysteresis?: number;
}

/**
 * No new value for `maxInterval` ms while the agent is online (a field, or any field when
 * `field` is left out; a per-field rule watches an agent once it reported that field). Timed by
 * the monitor's clock; cleared by the next value.
 */
export interface StaleRule extends RuleBase {
  kind: 'stale';
  field?: string;
  maxInterval: number;
}

/** The agent's presence went unavailable (after `grace` ms, default 0); cleared when it is back. */
export interface OfflineRule extends RuleBase {
  kind: 'offline';
  grace?: number;
}

export type AlertRule = ThresholdRule | StaleRule | OfflineRule;

/** An alert being raised or cleared. */
export interface AlertTransition {
  readonly state: 'raised' | 'cleared';
  readonly alert: AlertView;
  readonly at: number;
}

function fmt(value: FleetValue, unit: string | undefined): string {
  const v = typeof value === 'number' ? String(Math.round(value * 1000) / 1000) : String(value);
  return unit ? `${v} ${unit}` : v;
}

/**
 * Evaluates alert rules on values and presence, and reports every raise and clear once. Stale
 * and offline-grace timers run on the given clock; `close()` cancels them. Active alerts are
 * bounded by agents × rules (× fields for per-field stale rules).
 */
export class AlertEngine {
  readonly #rules: readonly AlertRule[];
  readonly #clock: Clock;
  readonly #emit: (t: AlertTransition) => void;
  readonly #active = new Map<string, AlertView>();
  readonly #timers = new Map<string, TimerHandle>();
  readonly #online = new Set<string>();
  /** agent/field pairs that reported at least once: a per-field stale rule watches only those. */
  readonly #seen = new Set<string>();

  constructor(options: { rules: readonly AlertRule[]; clock: Clock; emit: (t: AlertTransition) => void }) {
    this.#rules = options.rules;
    this.#clock = options.clock;
    this.#emit = options.emit;
  }

  /** Active alerts, oldest first. */
  active(): AlertView[] {
    return [...this.#active.values()];
  }

  isActive(id: string): boolean {
    return this.#active.has(id);
  }

  onValue(agent: string, field: string, value: FleetValue, unit?: string): void {
    this.#seen.add(`${agent}/${field}`);
    for (const rule of this.#rules) {
      if (!applies(rule, agent)) continue;
      if (rule.kind === 'threshold' && rule.field === field && typeof value === 'number')
        this.#threshold(rule, agent, value, unit);
      else if (rule.kind === 'stale' && (rule.field === undefined || rule.field === field)) {
        const id = alertId(rule, agent, rule.field);
        this.#clear(id);
        if (this.#online.has(agent)) this.#armStale(rule, agent, id);
      }
    }
  }

  onPresence(agent: string, presence: AgentPresence): void {
    const online = presence !== 'offline';
    const was = this.#online.has(agent);
    if (online) this.#online.add(agent);
    else this.#online.delete(agent);
    for (const rule of this.#rules) {
      if (!applies(rule, agent)) continue;
      if (rule.kind === 'offline') {
        const id = alertId(rule, agent, undefined);
        this.#cancel(id);
        if (online) this.#clear(id);
        else if (was || !this.#active.has(id)) this.#armOffline(rule, agent, id);
      } else if (rule.kind === 'stale') {
        const id = alertId(rule, agent, rule.field);
        if (!online) {
          // Offline is its own alert: a silent offline agent is not also "stale".
          this.#cancel(id);
          this.#clear(id);
        } else if (!was && (rule.field === undefined || this.#seen.has(`${agent}/${rule.field}`)))
          this.#armStale(rule, agent, id);
      }
    }
  }

  /** Forgets an agent: its alerts are cleared and its timers cancelled. */
  removeAgent(agent: string): void {
    this.#online.delete(agent);
    for (const key of [...this.#seen]) if (key.startsWith(`${agent}/`)) this.#seen.delete(key);
    for (const [id, a] of [...this.#active]) if (a.agent === agent) this.#clear(id);
    for (const [id] of [...this.#timers]) if (id.split('/')[1] === agent) this.#cancel(id);
  }

  close(): void {
    for (const t of this.#timers.values()) t.cancel();
    this.#timers.clear();
  }

  #threshold(rule: ThresholdRule, agent: string, value: number, unit: string | undefined): void {
    const id = alertId(rule, agent, rule.field);
    const h = rule.hysteresis ?? 0;
    const raised = this.#active.has(id);
    if (rule.above !== undefined) {
      if (!raised && value > rule.above) {
        return this.#raise(
          rule,
          agent,
          rule.field,
          `${rule.field} ${fmt(value, unit)} above ${fmt(rule.above, unit)}`,
          value,
        );
      }
      if (raised && value <= rule.above - h) return this.#clear(id);
    }
    if (rule.below !== undefined) {
      if (!raised && value < rule.below) {
        return this.#raise(
          rule,
          agent,
          rule.field,
          `${rule.field} ${fmt(value, unit)} below ${fmt(rule.below, unit)}`,
          value,
        );
      }
      if (raised && value >= rule.below + h && (rule.above === undefined || value <= rule.above - h))
        return this.#clear(id);
    }
  }

  #armStale(rule: StaleRule, agent: string, id: string): void {
    this.#cancel(id);
    this.#timers.set(
      id,
      this.#clock.setTimeout(() => {
        this.#timers.delete(id);
        const what = rule.field ?? 'any field';
        this.#raise(rule, agent, rule.field, `no update of ${what} for ${rule.maxInterval / 1000} s`);
      }, rule.maxInterval),
    );
  }

  #armOffline(rule: OfflineRule, agent: string, id: string): void {
    const raise = (): void => this.#raise(rule, agent, undefined, 'agent is offline');
    if (!rule.grace) return raise();
    this.#timers.set(
      id,
      this.#clock.setTimeout(() => {
        this.#timers.delete(id);
        raise();
      }, rule.grace),
    );
  }

  #raise(rule: AlertRule, agent: string, field: string | undefined, message: string, value?: FleetValue): void {
    const id = alertId(rule, agent, field);
    if (this.#active.has(id)) return;
    const at = this.#clock.now();
    const alert: AlertView = {
      id,
      rule: rule.name,
      kind: rule.kind,
      severity: rule.severity ?? 'warning',
      agent,
      field,
      message,
      raisedAt: at,
      value,
    };
    this.#active.set(id, alert);
    this.#emit({ state: 'raised', alert, at });
  }

  #clear(id: string): void {
    const alert = this.#active.get(id);
    if (!alert) return;
    this.#active.delete(id);
    this.#emit({ state: 'cleared', alert, at: this.#clock.now() });
  }

  #cancel(id: string): void {
    this.#timers.get(id)?.cancel();
    this.#timers.delete(id);
  }
}

function applies(rule: AlertRule, agent: string): boolean {
  return rule.agents === undefined || rule.agents.includes(agent);
}

/** rule/agent/field: rule names have no '/', and agents are bare JIDs, which have none either. */
function alertId(rule: AlertRule, agent: string, field: string | undefined): string {
  return `${rule.name}/${agent}/${field ?? ''}`;
}
