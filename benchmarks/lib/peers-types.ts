// Shared types of the peers benchmark (benchmarks/peers.ts): workloads, payloads and the
// adapters through which every system (NATS, MQTT, xmppbus on each XMPP server) runs them.

/** Workloads; rpc1/rpc100 share one setup (the `rpc` group). */
export type Workload = 'rpc' | 'qos0' | 'qos1' | 'qos2' | 'fanout1' | 'fanout10' | 'fanout100';
export const WORKLOADS: readonly Workload[] = ['rpc', 'qos0', 'qos1', 'qos2', 'fanout1', 'fanout10', 'fanout100'];

export type PayloadLabel = '100B' | '1KB' | '16KB';
export const PAYLOAD_BYTES: Record<PayloadLabel, number> = { '100B': 100, '1KB': 1024, '16KB': 16_384 };

/** One payload size, as bytes (NATS, MQTT) and as the string field that makes xmppbus' serialized payload that size. */
export interface Payload {
  label: PayloadLabel;
  bytes: Buffer;
  /** Filler for the contract's string field: `toXml(contract, { data })` has `bytes.length` characters. */
  data: string;
}

/** Completion callback: no promise per operation in the driver; an error fails the phase. */
export type Done = (err?: Error) => void;

/** Calls `done` when `p` settles: with nothing on success, with the error (as an Error) on failure. */
export function doneWhen(p: Promise<unknown>, done: Done): void {
  p.then(
    () => done(),
    (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
  );
}

/** A request/reply pair; `call` invokes `done` when the reply is in. */
export interface RequestReply {
  call(payload: Payload, done: Done): void;
  close(): Promise<void>;
}

/**
 * A one-way flow (one receiver) or a fan-out (`receiversPerSend` subscribers). `send` invokes
 * `done` when the system's own guarantee is met (NATS core / QoS 0: handed to the client;
 * acknowledged levels: the ack is in); the receiving side calls `onReceive` per delivery.
 */
export interface Flow {
  /** Deliveries each send produces when nothing is lost. */
  readonly receiversPerSend: number;
  /** May lose messages (fire-and-forget): the phase ends at the last receipt instead of failing. */
  readonly lossy: boolean;
  onReceive: () => void;
  send(payload: Payload, done: Done): void;
  close(): Promise<void>;
}

export type Setup = { kind: 'rpc'; open(): Promise<RequestReply> } | { kind: 'flow'; open(): Promise<Flow> };

/** A contender in one workload: a name, the broker/server process it loads, and how to open it. */
export interface System {
  /** e.g. `nats`, `jetstream`, `mqtt`, `mqtt-persist`, `ejabberd`, `prosody`. */
  name: string;
  /** The broker's or server's pid (its CPU per operation). */
  pid: number;
  setup: Setup;
}

/** One system's numbers in one phase of one round. */
export interface PhaseResult extends Record<string, number | undefined> {
  /** Operations per second: calls, messages received, or deliveries (fan-out). */
  opsPerSec: number;
  p50Ms?: number;
  p99Ms?: number;
  nodeCpuUsPerOp: number;
  brokerCpuUsPerOp?: number;
  /** Sends whose deliveries never arrived (lossy flows only). */
  lost?: number;
}

/** What the benchmark records about TCP_NODELAY per client library. */
export const TCP_NODELAY: Record<string, string> = {
  nats: '@nats-io/transport-node sets setNoDelay(true) on its socket itself; nats-server (Go) sets TCP_NODELAY by default',
  mqtt: "mqtt.js has no option; the benchmark calls setNoDelay(true) on client.stream (a net.Socket) right after connect (reconnect off); mosquitto: 'set_tcp_nodelay true'",
  xmppbus: '@xmppbus/transport-component sets setNoDelay(true); servers: harness configs',
};
