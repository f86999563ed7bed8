/**
 * Commands the monitor queued for offline agents (QoS 2 through the client's messenger), tracked
 * until they are delivered or fail, so a dashboard can show them. Bounded: at most `max` at once.
 */
import { XmppBusError, randomId } from '@xmppbus/core';
import type { CommandView, ControlOutcome, FleetValue } from './fleet.js';

export interface CommandTrackerOptions {
  /** Commands tracked at once; more are refused with ERR_QUEUE_FULL. */
  readonly max: number;
  /** Sends the command (resolves when the agent took it, rejects when it expired or failed). */
  readonly send: (agent: string, parameter: string, value: FleetValue, id: string) => Promise<void>;
  /** The agent's latest reported value of a field, if it reports one. */
  readonly valueOf: (agent: string, field: string) => FleetValue | undefined;
  readonly now: () => number;
  /** A command changed state (queued, delivered, failed). */
  readonly emit: (command: CommandView) => void;
}

interface Entry {
  view: CommandView;
  /** The messenger has the agent's receipt. */
  received: boolean;
}

export class CommandTracker {
  readonly #options: CommandTrackerOptions;
  /** Agent (bare JID) → its commands in flight, by id. */
  readonly #byAgent = new Map<string, Map<string, Entry>>();
  #size = 0;
  #closed = false;

  constructor(options: CommandTrackerOptions) {
    this.#options = options;
  }

  /** Commands in flight. */
  get size(): number {
    return this.#size;
  }

  /** Queues a command; its outcome arrives through `emit`. */
  queue(agent: string, parameter: string, value: FleetValue): ControlOutcome {
    if (this.#closed) throw new XmppBusError('ERR_CLOSED', 'monitor: closed');
    if (this.#size >= this.#options.max)
      throw new XmppBusError('ERR_QUEUE_FULL', `monitor: ${this.#size} commands already queued`);
    const id = `cmd-${randomId()}`;
    const entry: Entry = {
      view: { id, agent, parameter, value, state: 'queued', queuedAt: this.#options.now() },
      received: false,
    };
    let mine = this.#byAgent.get(agent);
    if (!mine) this.#byAgent.set(agent, (mine = new Map()));
    mine.set(id, entry);
    this.#size++;
    this.#options.emit(entry.view);
    this.#options.send(agent, parameter, value, id).then(
      () => {
        entry.received = true;
        // The agent may have reported the new value before its receipt came back.
        const now = this.#options.valueOf(agent, parameter);
        if (now === undefined || now === value) this.#settle(entry, 'delivered');
      },
      (err: unknown) => this.#settle(entry, 'failed', err instanceof Error ? err.message : String(err)),
    );
    return { state: 'queued', id };
  }

  /** A value the agent reported: a received command whose value it now shows is delivered. */
  onValue(agent: string, field: string, value: FleetValue): void {
    const mine = this.#byAgent.get(agent);
    if (!mine) return;
    for (const entry of mine.values())
      if (entry.received && entry.view.parameter === field && entry.view.value === value)
        this.#settle(entry, 'delivered');
  }

  /** Commands in flight, oldest first. */
  views(): CommandView[] {
    const out: CommandView[] = [];
    for (const mine of this.#byAgent.values()) for (const e of mine.values()) out.push(e.view);
    return out.sort((a, b) => a.queuedAt - b.queuedAt);
  }

  /** Stops tracking (the messenger keeps and delivers what it holds). */
  close(): void {
    this.#closed = true;
    this.#byAgent.clear();
    this.#size = 0;
  }

  #settle(entry: Entry, state: 'delivered' | 'failed', error?: string): void {
    const mine = this.#byAgent.get(entry.view.agent);
    if (this.#closed || !mine?.delete(entry.view.id)) return;
    if (mine.size === 0) this.#byAgent.delete(entry.view.agent);
    this.#size--;
    entry.view = { ...entry.view, state, ...(error !== undefined ? { error } : {}) };
    this.#options.emit(entry.view);
  }
}
