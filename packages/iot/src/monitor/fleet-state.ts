import type { FieldSample } from '../types.js';
import type { AgentPresence, AgentView, ControlView, FieldView, FleetValue, LastSeenSource } from './fleet.js';
import { HistoryRing } from './history.js';

interface FieldState {
  value: FleetValue;
  unit: string | undefined;
  timestamp: number;
  readonly history: HistoryRing;
}

interface AgentState {
  readonly jid: string;
  name: string;
  presence: AgentPresence;
  lastSeen: number | undefined;
  lastSeenSource: LastSeenSource | undefined;
  /** Full JID it was last seen online with (commands to it while offline go there). */
  address: string | undefined;
  readonly fields: Map<string, FieldState>;
  controls: ControlView[];
}

export interface FleetLimits {
  /** Points kept per numeric/boolean field. */
  historySize: number;
  /** Agents tracked at most (the configured list plus discovered ones). */
  maxAgents: number;
  /** Fields kept per agent; more are ignored (an agent cannot grow the monitor's memory). */
  maxFieldsPerAgent: number;
}

/** What the monitor knows about each agent, with bounded memory. */
export class FleetState {
  readonly #agents = new Map<string, AgentState>();
  readonly #limits: FleetLimits;
  /** Values dropped because an agent reported more fields than allowed. */
  droppedFields = 0;

  constructor(limits: FleetLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#agents.size;
  }

  has(jid: string): boolean {
    return this.#agents.has(jid);
  }

  jids(): string[] {
    return [...this.#agents.keys()];
  }

  /** Adds an agent if there is room; returns whether it is tracked. */
  add(jid: string, name?: string): boolean {
    const known = this.#agents.get(jid);
    if (known) {
      if (name) known.name = name;
      return true;
    }
    if (this.#agents.size >= this.#limits.maxAgents) return false;
    this.#agents.set(jid, {
      jid,
      name: name ?? jid.split('@')[0] ?? jid,
      presence: 'offline',
      lastSeen: undefined,
      lastSeenSource: undefined,
      address: undefined,
      fields: new Map(),
      controls: [],
    });
    return true;
  }

  remove(jid: string): boolean {
    return this.#agents.delete(jid);
  }

  presence(jid: string): AgentPresence | undefined {
    return this.#agents.get(jid)?.presence;
  }

  /** Full JID the agent was last seen online with, if any. */
  address(jid: string): string | undefined {
    return this.#agents.get(jid)?.address;
  }

  setAddress(jid: string, full: string): void {
    const a = this.#agents.get(jid);
    if (a) a.address = full;
  }

  /** Returns whether the presence changed. */
  setPresence(jid: string, presence: AgentPresence, at: number): boolean {
    const a = this.#agents.get(jid);
    if (!a) return false;
    if (presence !== 'offline' || a.presence !== 'offline') {
      a.lastSeen = at;
      a.lastSeenSource = 'monitor';
    }
    if (a.presence === presence) return false;
    a.presence = presence;
    return true;
  }

  /** Records a value; returns false if the agent is unknown, has no room for a new field, or the sample is not new. */
  setValue(
    jid: string,
    field: string,
    value: FleetValue,
    unit: string | undefined,
    timestamp: number,
    at: number,
  ): boolean {
    const a = this.#agents.get(jid);
    if (!a) return false;
    let f = a.fields.get(field);
    if (!f) {
      if (a.fields.size >= this.#limits.maxFieldsPerAgent) {
        this.droppedFields++;
        return false;
      }
      f = { value, unit, timestamp, history: new HistoryRing(this.#limits.historySize) };
      a.fields.set(field, f);
    } else if (f.timestamp === timestamp && f.value === value) return false; // the same sample again (events carry every field)
    f.value = value;
    if (unit !== undefined) f.unit = unit;
    f.timestamp = timestamp;
    if (typeof value === 'number' && Number.isFinite(value)) f.history.push(timestamp, value);
    else if (typeof value === 'boolean') f.history.push(timestamp, value ? 1 : 0);
    a.lastSeen = Math.max(a.lastSeen ?? 0, at);
    a.lastSeenSource = 'monitor';
    return true;
  }

  /**
   * Records the server's last activity of an offline agent, unless the monitor saw the agent
   * itself since (its own observation is newer). Returns whether it was recorded.
   */
  setServerLastSeen(jid: string, at: number): boolean {
    const a = this.#agents.get(jid);
    if (!a || a.presence !== 'offline' || a.lastSeenSource === 'monitor') return false;
    a.lastSeen = at;
    a.lastSeenSource = 'server';
    return true;
  }

  value(jid: string, field: string): FleetValue | undefined {
    return this.#agents.get(jid)?.fields.get(field)?.value;
  }

  setControls(jid: string, controls: readonly ControlView[]): void {
    const a = this.#agents.get(jid);
    if (a) a.controls = controls.slice(0, this.#limits.maxFieldsPerAgent);
  }

  /**
   * A field the agent marks writable becomes a control the first time it is seen (kind from its
   * value; configured controls of the same name win). Returns whether the controls changed.
   */
  learnControl(jid: string, f: FieldSample): boolean {
    const a = this.#agents.get(jid);
    if (!a || a.controls.some((c) => c.name === f.name)) return false;
    if (a.controls.length >= this.#limits.maxFieldsPerAgent) return false;
    const kind =
      typeof f.value === 'boolean'
        ? 'boolean'
        : typeof f.value === 'number'
          ? 'numeric'
          : f.kind === 'enum'
            ? 'enum'
            : 'string';
    a.controls = [...a.controls, { name: f.name, kind, unit: f.unit }];
    return true;
  }

  view(jid: string): AgentView | undefined {
    const a = this.#agents.get(jid);
    if (!a) return undefined;
    const fields: FieldView[] = [];
    for (const [name, f] of a.fields) {
      fields.push({ name, value: f.value, unit: f.unit, timestamp: f.timestamp, history: f.history.points() });
    }
    // A control shows the parameter's current value when the agent reports it as a field too.
    const controls = a.controls.map((c) => {
      const v = a.fields.get(c.name)?.value;
      return v === undefined ? c : { ...c, value: v };
    });
    return {
      jid: a.jid,
      name: a.name,
      presence: a.presence,
      lastSeen: a.lastSeen,
      lastSeenSource: a.lastSeenSource,
      fields,
      controls,
    };
  }

  views(): AgentView[] {
    const out: AgentView[] = [];
    for (const jid of this.#agents.keys()) {
      const v = this.view(jid);
      if (v) out.push(v);
    }
    return out;
  }
}
