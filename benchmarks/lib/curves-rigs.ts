// The two workloads of benchmarks/curves.ts, each connected once to a running server and then
// measured many times: RPC (RpcClient → RpcServer) and QoS 1 messaging (Messenger → Messenger,
// durable SQLite stores on both sides). Both move the payload one way and a small answer back
// (the RPC response is a byte count; the QoS 1 ack is the IQ result), so their curves compare.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Session } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { event, method } from '@xmppbus/schema';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import type { XmppServer } from '@xmppbus/testing';
import type { ComponentTransport } from '@xmppbus/transport-component';
import { componentLink, rpcPair } from './component-link.js';
import { processCpuUs } from './results.js';
import { keepInFlight, machineCpuUs } from './rounds.js';

const NS = 'urn:xmppbus:bench:curves:1';

/** One payload of `data` bytes; the answer says how many arrived. */
export const Put = method({
  ns: NS,
  name: 'put',
  request: Type.Object({ data: Type.String() }),
  response: Type.Object({ n: Type.Integer() }),
});

export const Blob = event({ ns: NS, name: 'blob', schema: Type.Object({ data: Type.String() }) });

/** What one measured phase cost: operations done, wall time, Node and server CPU. */
export interface PhaseSample {
  ops: number;
  wallMs: number;
  nodeCpuUs: number;
  serverCpuUs: number | undefined;
  /** CPU busy on the whole machine (all processes) over the same window, µs; undefined where unreadable. */
  machineCpuUs: number | undefined;
  /** QoS 1 only: messages per batch IQ in this phase, and attempts retried (e.g. `wait` answers). */
  msgsPerBatch?: number | undefined;
  retried?: number;
}

export interface Workload {
  /** Runs one measured phase at `inFlight` operations in flight with `payload`. */
  measure(payload: string, inFlight: number, targetMs: number): Promise<PhaseSample>;
  close(): Promise<void>;
}

/**
 * Admission budgets sized to hold the largest window of the largest payload (1 000 × 100 B and
 * 100 × 64 KB), so the curves show what work costs, not where the default budgets push back
 * (they would answer `wait` past 64 calls or 512 KiB per sender). Retries are still counted.
 */
const ROOMY = { perSenderBytes: 64 << 20, perSenderCount: 4096, totalBytes: 128 << 20, totalCount: 8192 };

/** Alphanumeric text of `bytes` characters (what base64-encoded binary looks like), seeded. */
export function payloadOf(bytes: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let seed = 0x2545f491 ^ bytes;
  const out: string[] = new Array<string>(bytes);
  for (let i = 0; i < bytes; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    out[i] = alphabet[(seed >>> 16) & 63]!;
  }
  return out.join('');
}

const machineBusyUs = (): number | undefined => machineCpuUs()?.busy;

/** Starts a measurement window; the returned function closes it. */
function cpuSample(pid: number): () => Omit<PhaseSample, 'ops'> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const s0 = processCpuUs(pid);
  const m0 = machineBusyUs();
  return () => {
    const c = process.cpuUsage(c0);
    const s1 = processCpuUs(pid);
    const m1 = machineBusyUs();
    return {
      wallMs: performance.now() - t0,
      nodeCpuUs: c.user + c.system,
      serverCpuUs: s0 !== undefined && s1 !== undefined ? s1 - s0 : undefined,
      machineCpuUs: m0 !== undefined && m1 !== undefined ? m1 - m0 : undefined,
    };
  };
}

// ---------------------------------------------------------------------------------------------
// RPC: a closed loop keeps exactly `inFlight` calls outstanding for `targetMs`, then drains.

export async function rpcWorkload(srv: XmppServer, caller: string, callee: string): Promise<Workload> {
  const { client, close } = await rpcPair(
    srv,
    { caller, callee },
    {
      server: { maxQueue: 4096, limits: ROOMY },
      serve: (server) => server.handle(Put, ({ data }) => ({ n: data.length })),
    },
  );

  const runFor = (payload: string, inFlight: number, ms: number): Promise<number> => {
    const request = { data: payload };
    return keepInFlight(() => client.call(Put, callee, request), inFlight, ms);
  };

  return {
    async measure(payload, inFlight, targetMs) {
      await runFor(payload, inFlight, Math.min(100, targetMs / 4)); // ramp-up, drained before measuring
      const stop = cpuSample(srv.pid);
      const ops = await runFor(payload, inFlight, targetMs);
      return { ops, ...stop() };
    },
    close,
  };
}

// ---------------------------------------------------------------------------------------------
// QoS 1: the in-flight count is the sender's window. A phase hands the outbox a fixed number of
// messages at once (sized from the last rate to take about targetMs), so the window, not the
// application, is what limits the messages in flight; it ends when the receiving handler has seen
// them all and every send has its ack (a promise, resolved by the handler: no polling).

class Arrivals {
  received = 0;
  #target = Infinity;
  #done: (() => void) | undefined;

  receipt(): void {
    if (++this.received >= this.#target) {
      this.#target = Infinity;
      this.#done?.();
    }
  }

  until(target: number): Promise<void> {
    if (this.received >= target) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#target = target;
      this.#done = resolve;
    });
  }
}

const MIN_MESSAGES = 50;
const MAX_MESSAGES = 60_000;

export async function qos1Workload(
  srv: XmppServer,
  senders: ReadonlyMap<number, string>,
  receiverDomain: string,
): Promise<Workload> {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-curves-'));
  const transports: ComponentTransport[] = [];
  const messengers: Messenger[] = [];
  const open = async (domain: string, options: { window?: number; roomy?: boolean }): Promise<Messenger> => {
    const t = await componentLink(srv, domain);
    transports.push(t);
    const m = new Messenger({
      session: new Session({ transport: t }),
      store: sqliteMessageStore(join(dir, `${domain}.db`)),
      ...(options.window !== undefined ? { window: options.window } : {}),
      ...(options.roomy ? { receive: { queue: ROOMY } } : {}),
    });
    messengers.push(m);
    return m;
  };
  const receiver = await open(receiverDomain, { roomy: true });
  const arrivals = new Arrivals();
  receiver.handle(Blob, () => arrivals.receipt());
  const byWindow = new Map<number, Messenger>();
  for (const [window, domain] of senders) byWindow.set(window, await open(domain, { window }));
  await Promise.all(messengers.map((m) => m.start()));
  /** Last measured rate per (window, payload size), to size the next phase. */
  const lastRate = new Map<string, number>();

  return {
    async measure(payload, inFlight, targetMs) {
      const sender = byWindow.get(inFlight);
      if (!sender) throw new RangeError(`no QoS 1 sender with window ${inFlight}`);
      const key = `${inFlight}/${payload.length}`;
      const rate = lastRate.get(key) ?? 1000;
      const count = Math.round(Math.min(MAX_MESSAGES, Math.max(MIN_MESSAGES, (rate * targetMs) / 1000)));
      const c0 = { ...sender.counters };
      const stop = cpuSample(srv.pid);
      const arrived = arrivals.until(arrivals.received + count);
      const sent: Promise<void>[] = new Array<Promise<void>>(count);
      for (let i = 0; i < count; i++) sent[i] = sender.send(Blob, receiverDomain, { data: payload }, { qos: 1 });
      await Promise.all([arrived, Promise.all(sent)]);
      const sample = stop();
      lastRate.set(key, (count / sample.wallMs) * 1000);
      const batches = sender.counters.batches - c0.batches;
      return {
        ops: count,
        ...sample,
        msgsPerBatch: batches > 0 ? (sender.counters.batched - c0.batched) / batches : undefined,
        retried: sender.counters.retried - c0.retried,
      };
    },
    async close() {
      for (const m of messengers) await m.close();
      for (const t of transports) await t.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
