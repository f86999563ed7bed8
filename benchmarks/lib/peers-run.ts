// The peers benchmark's body (benchmarks/peers.ts is the CLI; test/peers-bench.test.ts drives
// this same code with tiny settings). Starts the brokers and XMPP servers, then per workload:
// opens every system, warms each up per payload, runs alternating rounds (Williams order, outside
// load per round), and takes medians over the unflagged rounds.
import { startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { startBroker, type Broker, type BrokerKind } from './brokers.js';
import { driveFlow, driveRequestReply, type PhaseTiming } from './peers-drive.js';
import { mqttFlow, mqttRequestReply } from './peers-mqtt.js';
import { natsCore, natsJetStream, natsRequestReply } from './peers-nats.js';
import {
  PAYLOAD_BYTES,
  type Flow,
  type Payload,
  type PayloadLabel,
  type PhaseResult,
  type RequestReply,
  type System,
  type Workload,
} from './peers-types.js';
import {
  ComponentNames,
  fillerFor,
  namesNeeded,
  xmppbusFanout,
  xmppbusMessaging,
  xmppbusRequestReply,
} from './peers-xmppbus.js';
import { processCpuUs } from './results.js';
import { machineCpuUs, medianOf, outsideLoadCores, roundsToUse, williamsOrder } from './rounds.js';

export interface PeersOptions {
  rounds: number;
  timing: PhaseTiming;
  /** Unmeasured time per system and payload before its first round. */
  warmupMs: number;
  /** One-way and fan-out: sends outstanding until delivered (and acked). */
  window: number;
  workloads: readonly Workload[];
  payloads: readonly PayloadLabel[];
  servers: readonly ServerKind[];
  /** Outside load (cores) above which a round is flagged. */
  outsideLimit: number;
  minCleanRounds: number;
  log(line: string): void;
}

/** Phase names: rpc runs two phases per round on the same connections. */
export type Phase = 'rpc1' | 'rpc100' | Exclude<Workload, 'rpc'>;
const phasesOf = (w: Workload): Phase[] => (w === 'rpc' ? ['rpc1', 'rpc100'] : [w]);

export interface Round {
  round: number;
  order: string[];
  wallMs: number;
  outsideLoadCores: number | undefined;
  stealCores: number | undefined;
  flagged: boolean;
  results: Partial<Record<Phase, Record<string, PhaseResult>>>;
}

export interface Medians {
  opsPerSec: number | undefined;
  p50Ms?: number | undefined;
  p99Ms?: number | undefined;
  nodeCpuUsPerOp: number | undefined;
  brokerCpuUsPerOp: number | undefined;
  lost?: number | undefined;
}

export interface PeersResult {
  /** medians[phase][payload][system] */
  medians: Partial<Record<Phase, Partial<Record<PayloadLabel, Record<string, Medians>>>>>;
  rounds: Partial<Record<Workload, Partial<Record<PayloadLabel, { rule: string; rounds: Round[] }>>>>;
  ratios: Record<string, Record<string, unknown>>;
}

export function makePayload(label: PayloadLabel): Payload {
  const size = PAYLOAD_BYTES[label];
  return { label, bytes: Buffer.alloc(size, 'x'), data: fillerFor(size) };
}

type Opened = { kind: 'rpc'; rr: RequestReply } | { kind: 'flow'; flow: Flow };

async function open(s: System): Promise<Opened> {
  return s.setup.kind === 'rpc'
    ? { kind: 'rpc', rr: await s.setup.open() }
    : { kind: 'flow', flow: await s.setup.open() };
}

function drive(o: Opened, phase: Phase, payload: Payload, opts: PeersOptions, pid: number, timing: PhaseTiming) {
  if (o.kind === 'rpc') return driveRequestReply(o.rr, payload, phase === 'rpc1' ? 1 : 100, timing, pid);
  return driveFlow(o.flow, payload, opts.window, timing, pid);
}

/** The systems of one workload; the XMPP ones once per server kind. */
function systemsOf(
  w: Workload,
  brokers: Record<BrokerKind, Broker>,
  servers: readonly XmppServer[],
  names: Map<XmppServer, ComponentNames>,
): System[] {
  const rpc = (open: () => Promise<RequestReply>) => ({ kind: 'rpc' as const, open });
  const flow = (open: () => Promise<Flow>) => ({ kind: 'flow' as const, open });
  const { nats, 'nats-jetstream': js, mosquitto: mq, 'mosquitto-persist': mqp } = brokers;
  const out: System[] = [];
  const fanout = w.startsWith('fanout') ? Number(w.slice('fanout'.length)) : 0;
  switch (w) {
    case 'rpc':
      out.push({ name: 'nats', pid: nats.pid, setup: rpc(() => natsRequestReply(nats)) });
      out.push({ name: 'mqtt', pid: mq.pid, setup: rpc(() => mqttRequestReply(mq)) });
      break;
    case 'qos0':
      out.push({ name: 'nats', pid: nats.pid, setup: flow(() => natsCore(nats, 1)) });
      out.push({ name: 'mqtt', pid: mq.pid, setup: flow(() => mqttFlow(mq, 0)) });
      break;
    case 'qos1':
    case 'qos2': {
      const q = w === 'qos1' ? 1 : 2;
      if (q === 1) out.push({ name: 'jetstream', pid: js.pid, setup: flow(() => natsJetStream(js)) });
      out.push({ name: 'mqtt', pid: mq.pid, setup: flow(() => mqttFlow(mq, q)) });
      out.push({ name: 'mqtt-persist', pid: mqp.pid, setup: flow(() => mqttFlow(mqp, q)) });
      break;
    }
    default:
      out.push({ name: 'nats', pid: nats.pid, setup: flow(() => natsCore(nats, fanout)) });
      out.push({ name: 'mqtt', pid: mq.pid, setup: flow(() => mqttFlow(mq, 0, fanout)) });
  }
  for (const srv of servers) {
    const n = names.get(srv)!;
    const setup =
      w === 'rpc'
        ? rpc(() => xmppbusRequestReply(srv, n))
        : fanout > 0
          ? flow(() => xmppbusFanout(srv, n, fanout))
          : flow(() => xmppbusMessaging(srv, n, Number(w.slice(3)) as 0 | 1 | 2));
    out.push({ name: srv.kind, pid: srv.pid, setup });
    // The same QoS level with in-memory stores: the durability class of mqtt.js and mosquitto here.
    if (w === 'qos1' || w === 'qos2') {
      const q = w === 'qos1' ? 1 : 2;
      out.push({ name: `${srv.kind}-memory`, pid: srv.pid, setup: flow(() => xmppbusMessaging(srv, n, q, 'memory')) });
    }
    // The opt-in event batching of packages/pubsub (several events per item, docs/protocol.md §4).
    if (fanout > 0)
      out.push({ name: `${srv.kind}-batched`, pid: srv.pid, setup: flow(() => xmppbusFanout(srv, n, fanout, true)) });
  }
  return out;
}

async function runWorkload(
  w: Workload,
  systems: System[],
  opts: PeersOptions,
  allPids: number[],
  result: PeersResult,
): Promise<void> {
  const opened: Opened[] = [];
  try {
    for (const s of systems) {
      opts.log(`  open ${w} ${s.name}`);
      opened.push(await open(s));
    }
    for (const label of opts.payloads) {
      const payload = makePayload(label);
      const warm: PhaseTiming = { warmMs: opts.warmupMs, measureMs: 1 };
      for (const [k, s] of systems.entries())
        for (const phase of phasesOf(w)) await drive(opened[k]!, phase, payload, opts, s.pid, warm);
      const rounds: Round[] = [];
      for (let r = 0; r < opts.rounds; r++) {
        const order = williamsOrder(systems.length, r);
        const ours0 = allPids.map(processCpuUs);
        const m0 = machineCpuUs();
        const t0 = performance.now();
        const results: Round['results'] = {};
        for (const phase of phasesOf(w)) {
          const perSystem: Record<string, PhaseResult> = {};
          for (const k of order) {
            const s = systems[k]!;
            perSystem[s.name] = await drive(opened[k]!, phase, payload, opts, s.pid, opts.timing);
          }
          results[phase] = perSystem;
        }
        const wallMs = performance.now() - t0;
        const m1 = machineCpuUs();
        const ours1 = allPids.map(processCpuUs);
        const oursUs =
          ours0.every((x) => x !== undefined) && ours1.every((x) => x !== undefined)
            ? ours1.reduce((a, x, i) => a + x - ours0[i]!, 0)
            : undefined;
        const load = outsideLoadCores(m0, m1, oursUs, wallMs);
        const round: Round = {
          round: r,
          order: order.map((k) => systems[k]!.name),
          wallMs,
          outsideLoadCores: load?.outside,
          stealCores: load?.steal,
          flagged: load !== undefined && load.outside > opts.outsideLimit,
          results,
        };
        rounds.push(round);
        const brief = phasesOf(w)
          .map((p) =>
            Object.entries(results[p]!)
              .map(([n, x]) => `${n} ${Math.round(x.opsPerSec)}`)
              .join(', '),
          )
          .join(' | ');
        opts.log(`  ${w} ${label} round ${r} outside ${load?.outside.toFixed(2) ?? 'n/a'}: ${brief}`);
      }
      const { used, rule } = roundsToUse(rounds, opts.minCleanRounds);
      (result.rounds[w] ??= {})[label] = { rule, rounds };
      for (const phase of phasesOf(w)) {
        const bySystem: Record<string, Medians> = {};
        for (const s of systems) {
          const samples = used.map((r) => r.results[phase]?.[s.name]);
          const m: Medians = {
            opsPerSec: medianOf(samples, 'opsPerSec'),
            nodeCpuUsPerOp: medianOf(samples, 'nodeCpuUsPerOp'),
            brokerCpuUsPerOp: medianOf(samples, 'brokerCpuUsPerOp'),
          };
          if (w === 'rpc') Object.assign(m, { p50Ms: medianOf(samples, 'p50Ms'), p99Ms: medianOf(samples, 'p99Ms') });
          if (samples.some((x) => x?.lost !== undefined)) m.lost = medianOf(samples, 'lost');
          bySystem[s.name] = m;
        }
        (result.medians[phase] ??= {})[label] = bySystem;
      }
    }
  } finally {
    for (const o of opened) await (o.kind === 'rpc' ? o.rr.close() : o.flow.close()).catch(() => undefined);
  }
}

/** Ratios per server kind: the 100 B ones at top level, every payload nested under its label. */
export function peersRatios(
  medians: PeersResult['medians'],
  servers: readonly string[],
  payloads: readonly PayloadLabel[],
): Record<string, Record<string, unknown>> {
  const ratios: Record<string, Record<string, unknown>> = {};
  for (const k of servers) {
    const out: Record<string, unknown> = {};
    for (const label of payloads) {
      const get = (p: Phase, sys: string, key: keyof Medians = 'opsPerSec'): number | undefined =>
        medians[p]?.[label]?.[sys]?.[key];
      const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
        a !== undefined && b !== undefined && b > 0 ? Number((a / b).toFixed(3)) : undefined;
      const r: Record<string, number | undefined> = {
        qos1_vs_mqtt_qos1: ratio(get('qos1', k), get('qos1', 'mqtt-persist')),
        qos1_vs_mqtt_qos1_nopersist: ratio(get('qos1', k), get('qos1', 'mqtt')),
        qos2_vs_mqtt_qos2: ratio(get('qos2', k), get('qos2', 'mqtt-persist')),
        qos2_vs_mqtt_qos2_nopersist: ratio(get('qos2', k), get('qos2', 'mqtt')),
        qos1_memory_vs_mqtt_qos1: ratio(get('qos1', `${k}-memory`), get('qos1', 'mqtt-persist')),
        qos2_memory_vs_mqtt_qos2: ratio(get('qos2', `${k}-memory`), get('qos2', 'mqtt-persist')),
        qos1_vs_jetstream: ratio(get('qos1', k), get('qos1', 'jetstream')),
        qos0_vs_mqtt_qos0: ratio(get('qos0', k), get('qos0', 'mqtt')),
        qos0_vs_nats: ratio(get('qos0', k), get('qos0', 'nats')),
        rpc_vs_nats_request: ratio(get('rpc100', k), get('rpc100', 'nats')),
        rpc1_p50_vs_nats: ratio(get('rpc1', k, 'p50Ms'), get('rpc1', 'nats', 'p50Ms')),
        fanout10_vs_mqtt_qos0: ratio(get('fanout10', k), get('fanout10', 'mqtt')),
        fanout10_batched_vs_mqtt_qos0: ratio(get('fanout10', `${k}-batched`), get('fanout10', 'mqtt')),
        qos1_vs_qos0: ratio(get('qos1', k), get('qos0', k)),
        qos2_vs_qos0: ratio(get('qos2', k), get('qos0', k)),
      };
      const defined = Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
      out[label] = defined;
      if (label === '100B') Object.assign(out, defined);
    }
    ratios[k] = out;
  }
  return ratios;
}

export async function runPeers(opts: PeersOptions): Promise<PeersResult> {
  const result: PeersResult = { medians: {}, rounds: {}, ratios: {} };
  const brokers: Partial<Record<BrokerKind, Broker>> = {};
  const servers: XmppServer[] = [];
  const names = new Map<XmppServer, ComponentNames>();
  try {
    for (const kind of ['nats', 'nats-jetstream', 'mosquitto', 'mosquitto-persist'] as const) {
      brokers[kind] = await startBroker(kind);
    }
    const needed = opts.workloads.reduce((a, w) => a + namesNeeded(w), 0);
    for (const kind of opts.servers) {
      const n = ComponentNames.make(needed);
      opts.log(`start ${kind} (${needed} component names)`);
      const srv = await startServer(kind, { components: [...n.all] });
      servers.push(srv);
      names.set(srv, n);
    }
    const allPids = [process.pid, ...Object.values(brokers).map((b) => b.pid), ...servers.map((s) => s.pid)];
    for (const w of opts.workloads) {
      const systems = systemsOf(w, brokers as Record<BrokerKind, Broker>, servers, names);
      opts.log(`${w}: ${systems.map((s) => s.name).join(', ')}`);
      await runWorkload(w, systems, opts, allPids, result);
    }
  } finally {
    for (const srv of servers) await srv.stop().catch(() => undefined);
    for (const b of Object.values(brokers)) await b.stop();
  }
  result.ratios = peersRatios(result.medians, opts.servers, opts.payloads);
  return result;
}
