// The shape benchmarks/scale.ts measures: a topology is "where the caller and the callee connect,
// and which server processes carry the traffic". Every topology runs the same workloads (RPC
// round trips, QoS-1 messages); scale.ts reports each one against the `single` baseline.
import type { AccessRule } from '@xmppbus/core';

/** How one component connects (what componentTransport takes). */
export interface Endpoint {
  /** `xmpp://127.0.0.1:<port>` of the listener it connects to. */
  readonly service: string;
  /** The component's name, e.g. `svc-a.localhost` (or `svc-a.a.test` across domains). */
  readonly domain: string;
  readonly password: string;
  /**
   * Access rules of this side's sessions (core `AccessRule`s); default: the secure default,
   * same-organisation services only. A callee on another domain (federation) needs a rule.
   */
  readonly access?: readonly AccessRule[];
}

/** A running topology. */
export interface TopologyRun {
  /** The calling side (RPC client, QoS-1 sender). */
  readonly caller: Endpoint;
  /** The called side (RPC server, QoS-1 receiver); the caller addresses it by `callee.domain`. */
  readonly callee: Endpoint;
  /**
   * The server processes on the path, by label (e.g. `{ node1: pid, node2: pid }`): their CPU
   * time (/proc/<pid>/stat) is sampled around each measured phase, per stanza.
   */
  readonly servers: Readonly<Record<string, number>>;
  /** Stops everything the topology started. */
  stop(): Promise<void>;
}

export interface Topology {
  /** Short name in tables and JSON, e.g. `single`, `cluster_cross_node`, `federated`. */
  readonly name: string;
  /** What it is, one line (printed and written to the JSON). */
  readonly description: string;
  /** The key of its ratios against `single`, e.g. `cluster_cross_node_vs_single`; undefined for the baseline. */
  readonly ratioKey: string | undefined;
  start(): Promise<TopologyRun>;
}
