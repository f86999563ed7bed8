/**
 * A simulated fleet: N IoT agents, each an ordinary c2s account running an `IotAgent` whose
 * fields come from a sensor model (models.ts). The fleet has no timers of its own: `step()`
 * advances every model and reports the new values, so the example paces it with a timer and
 * tests drive it directly.
 */
import { AccessPolicy, Session, systemClock, type Clock } from '@xmppbus/core';
import {
  IotAgent,
  IotScheduler,
  iotAccessRules,
  type ControlView,
  type FieldSpec,
  type MonitoredAgent,
  type ParameterSpec,
} from '@xmppbus/iot';
import { Messenger } from '@xmppbus/messaging';
import { clientTransport } from '@xmppbus/transport-client';
import { modelFor, type ModelField, type SensorModel } from './models.js';

export interface FleetServer {
  readonly domain: string;
  c2sService(): string;
}

export interface FleetOptions {
  server: FleetServer;
  /** Number of agents (accounts `<prefix>00` … must exist, password `password`). */
  agents: number;
  /** The monitor's bare JID: an owner of every agent (its subscription request is approved). */
  owner: string;
  /** Account name prefix (default 'agent'). */
  prefix?: string;
  password?: string;
  /** Seed of the sensor models (default 1). */
  seed?: number;
  /** Bound on each login, ms (default 30 000). */
  timeout?: number;
  /** Clock of the agents' sessions and observe deadlines (default: the system clock). */
  clock?: Clock;
  /**
   * Give each agent a messenger, so QoS 1/2 commands queued while it was offline reach it when
   * it logs in (default false).
   */
  messenger?: boolean;
}

/**
 * Control parameters of each model kind. Each is also a field the agent reports, so the agent
 * marks that field writable and the monitor offers it as a control by itself.
 */
const CONTROLS: Record<SensorModel['kind'], ControlView[]> = {
  thermostat: [
    { name: 'setpoint', kind: 'numeric', unit: '°C', min: 5, max: 30 },
    { name: 'heating', kind: 'boolean' },
  ],
  door: [{ name: 'locked', kind: 'boolean' }],
  meter: [{ name: 'relay', kind: 'boolean' }],
};

const KIND_NAMES: Record<SensorModel['kind'], string> = {
  thermostat: 'Thermostat',
  door: 'Door',
  meter: 'Power meter',
};

export function agentName(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(2, '0')}`;
}

export class SimAgent {
  readonly jid: string;
  readonly name: string;
  /** Control commands the agent applied: parameter, value. */
  readonly applied: { parameter: string; value: number | boolean | string }[] = [];
  /** The agent's messenger (`messenger: true`): queued commands arrive through it. */
  messenger: Messenger | undefined;

  constructor(
    readonly index: number,
    readonly model: SensorModel,
    readonly agent: IotAgent,
    readonly session: Session,
  ) {
    this.jid = session.address.split('/')[0] ?? session.address;
    this.name = `${KIND_NAMES[model.kind]} ${index}`;
  }

  /**
   * What the monitor should know about this agent: its name. Controls need no configuration:
   * the agent marks the fields it can set as writable (nf `ctr`) and the monitor offers them.
   */
  get monitored(): MonitoredAgent {
    return { jid: this.jid, name: this.name };
  }

  /** Advances the model and reports every field. */
  step(seconds: number): void {
    this.report(this.model.step(seconds));
  }

  report(fields: readonly ModelField[]): void {
    for (const f of fields) this.agent.set(f.name, f.value);
  }

  async close(): Promise<void> {
    await this.agent.close();
    await this.messenger?.close();
    await this.session.close();
  }
}

function fieldSpecs(model: SensorModel): FieldSpec[] {
  return model.fields().map((f): FieldSpec => {
    if (typeof f.value === 'boolean') return { name: f.name, kind: 'boolean', initial: f.value };
    const decimals = f.name === 'energy' ? 4 : f.unit === '%' || f.unit === 'W' ? 1 : 2;
    const kind = f.name === 'openings' ? 'int' : 'quantity';
    return {
      name: f.name,
      kind,
      initial: f.value,
      ...(f.unit ? { unit: f.unit } : {}),
      ...(kind === 'quantity' ? { decimals } : {}),
    };
  });
}

function parameterSpecs(sim: () => SimAgent, model: SensorModel): ParameterSpec[] {
  return CONTROLS[model.kind].map((c): ParameterSpec => ({
    name: c.name,
    kind: c.kind === 'boolean' ? 'boolean' : 'double',
    ...(c.min !== undefined ? { min: c.min } : {}),
    ...(c.max !== undefined ? { max: c.max } : {}),
    apply: (value) => {
      const s = sim();
      s.model.set(c.name, value as number | boolean);
      s.applied.push({ parameter: c.name, value });
      s.report(s.model.fields()); // the new state is reported at once
    },
  }));
}

/** Logs agent `i` in and starts its `IotAgent` (its model continues from `model` when given). */
export async function startAgent(
  options: FleetOptions & { scheduler: IotScheduler; model?: SensorModel },
  i: number,
): Promise<SimAgent> {
  const clock = options.clock ?? systemClock;
  const model = options.model ?? modelFor(i, options.seed ?? 1);
  const transport = await clientTransport({
    service: options.server.c2sService(),
    domain: options.server.domain,
    username: agentName(options.prefix ?? 'agent', i),
    password: options.password ?? 'password',
    resource: 'device',
    timeout: options.timeout ?? 30_000,
  });
  const session = new Session({ transport, clock, access: new AccessPolicy({ rules: iotAccessRules() }) });
  let sim: SimAgent | undefined;
  const messenger = options.messenger ? new Messenger({ session }) : undefined;
  const agent = new IotAgent({
    session,
    fields: fieldSpecs(model),
    parameters: parameterSpecs(() => sim!, model),
    owners: [options.owner],
    scheduler: options.scheduler,
    notifyOwners: false,
    ...(messenger ? { messenger } : {}),
  });
  sim = new SimAgent(i, model, agent, session);
  sim.messenger = messenger;
  try {
    await agent.start({ timeout: options.timeout ?? 30_000 });
  } catch (err) {
    await sim.close().catch(() => undefined);
    throw err;
  }
  return sim;
}

/** One deadline heap for a whole fleet: a thousand agents hold one timer, not thousands. */
export function fleetScheduler(clock: Clock = systemClock): IotScheduler {
  return new IotScheduler(clock);
}

/** Logs every agent in (8 at a time) and starts its `IotAgent`. */
export async function startFleet(options: FleetOptions & { scheduler?: IotScheduler }): Promise<SimAgent[]> {
  const scheduler = options.scheduler ?? fleetScheduler(options.clock);
  const agents: SimAgent[] = [];
  const queue = Array.from({ length: options.agents }, (_, i) => i);
  const workers = Array.from({ length: Math.min(8, options.agents) }, async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift())
      agents.push(await startAgent({ ...options, scheduler }, i));
  });
  const settled = await Promise.allSettled(workers);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
    throw failed.reason;
  }
  return agents.sort((a, b) => a.index - b.index);
}
