// The phases of the peers benchmark: one system, one payload, WARM ms unmeasured then MEASURE ms
// measured, closed loop. Completion is signalled by the receiving handlers and the send callbacks
// (no polling of counters): request/reply keeps `inFlight` calls outstanding; one-way and
// fan-out keep at most `window` deliveries outstanding (sends not yet delivered everywhere or,
// where the system acknowledges, not yet acked). Lossy (fire-and-forget) flows write off a stalled
// window and count what arrived; acknowledged flows fail after STALL_MS without progress.
import { percentile, processCpuUs } from './results.js';
import type { Done, Flow, Payload, PhaseResult, RequestReply } from './peers-types.js';

export interface PhaseTiming {
  warmMs: number;
  measureMs: number;
}

/** A lossy flow with a full window and no receipt for this long has lost what is outstanding. */
const QUIET_MS = 250;
/**
 * A measured window holds at least this many windows' worth of operations, if that takes at most
 * MAX_MEASURE_FACTOR × measureMs: slow systems deliver in bursts of up to a window (QoS 2 through
 * Prosody at 16 KB: 64 messages every ~0.5 s), and a window shorter than two bursts could count 0
 * or 2 of them.
 */
const MIN_WINDOWS = 2;
const MAX_MEASURE_FACTOR = 4;

/** Payload bytes outstanding at most (one-way and fan-out). */
const WINDOW_BYTES = 1 << 20;
/** An acknowledged flow or request/reply without progress for this long fails the phase. */
const STALL_MS = 30_000;

interface Snapshot {
  t: number;
  ops: number;
  cpu: NodeJS.CpuUsage;
  broker: number | undefined;
}

function snapshot(ops: number, pid: number): Snapshot {
  return { t: performance.now(), ops, cpu: process.cpuUsage(), broker: processCpuUs(pid) };
}

function resultOf(a: Snapshot, b: Snapshot, extra: Partial<PhaseResult> = {}): PhaseResult {
  const ops = b.ops - a.ops;
  const cpu = b.cpu.user - a.cpu.user + (b.cpu.system - a.cpu.system);
  return {
    opsPerSec: (ops / (b.t - a.t)) * 1000,
    nodeCpuUsPerOp: ops > 0 ? cpu / ops : NaN,
    ...(a.broker !== undefined && b.broker !== undefined && ops > 0
      ? { brokerCpuUsPerOp: (b.broker - a.broker) / ops }
      : {}),
    ...extra,
  };
}

/**
 * The measured window of a phase: opens (`start`) after warmMs and closes (`end`) after measureMs;
 * if it then holds fewer than `minOps` operations it is stretched until the operation that
 * completes them, at most to MAX_MEASURE_FACTOR × measureMs. `onClose` runs once, when it closes.
 */
interface WindowOptions {
  /** Operations the window must hold before it may close early (see MIN_WINDOWS). */
  minOps: number;
  /** Operations counted so far. */
  count: () => number;
  /** The broker's or server's pid (its CPU). */
  pid: number;
  onClose: () => void;
}

class MeasuredWindow {
  start: Snapshot | undefined;
  end: Snapshot | undefined;
  #extended = false;
  readonly #o: WindowOptions;
  readonly #t0: NodeJS.Timeout;
  #t1: NodeJS.Timeout;

  constructor(timing: PhaseTiming, o: WindowOptions) {
    this.#o = o;
    this.#t0 = setTimeout(() => (this.start = snapshot(o.count(), o.pid)), timing.warmMs);
    this.#t1 = setTimeout(() => {
      if (this.#full()) return this.close();
      this.#extended = true; // ends at the operation that completes the minimum, or at the cap
      this.#t1 = setTimeout(() => this.close(), timing.measureMs * (MAX_MEASURE_FACTOR - 1));
    }, timing.warmMs + timing.measureMs);
  }

  get measuring(): boolean {
    return this.start !== undefined && this.end === undefined;
  }

  /** Call after each counted operation: a stretched window closes once it holds the minimum. */
  counted(): void {
    if (this.#extended && !this.end && this.#full()) this.close();
  }

  close(): void {
    if (this.end) return;
    this.end = snapshot(this.#o.count(), this.#o.pid);
    this.#o.onClose();
  }

  cancel(): void {
    clearTimeout(this.#t0);
    clearTimeout(this.#t1);
  }

  #full(): boolean {
    return this.#o.count() - this.start!.ops >= this.#o.minOps;
  }
}

/** `inFlight` calls outstanding; p50/p99 over the calls answered inside the measured window. */
export function driveRequestReply(
  rr: RequestReply,
  payload: Payload,
  inFlight: number,
  timing: PhaseTiming,
  pid: number,
): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    let completed = 0;
    let active = 0;
    let stopped = false;
    let failed = false;
    const latencies: number[] = [];
    let lastProgress = performance.now();
    const finish = (err?: Error): void => {
      if (failed) return;
      clearInterval(watchdog);
      measured.cancel();
      if (err) {
        failed = true;
        reject(err);
        return;
      }
      latencies.sort((x, y) => x - y);
      resolve(
        resultOf(measured.start!, measured.end!, {
          p50Ms: percentile(latencies, 50),
          p99Ms: percentile(latencies, 99),
        }),
      );
    };
    const launch = (): void => {
      active++;
      const began = performance.now();
      const done: Done = (err) => {
        if (err) return finish(err);
        active--;
        completed++;
        const now = performance.now();
        lastProgress = now;
        // Every call answered inside the measured window (at low rates most began before it).
        if (measured.measuring) latencies.push(now - began);
        measured.counted();
        if (!stopped) launch();
        else if (active === 0) finish();
      };
      rr.call(payload, done);
    };
    const measured = new MeasuredWindow(timing, {
      minOps: MIN_WINDOWS * inFlight,
      count: () => completed,
      pid,
      onClose: () => (stopped = true),
    });
    const watchdog = setInterval(() => {
      if (performance.now() - lastProgress > STALL_MS)
        finish(new Error(`request/reply stalled: ${active} calls unanswered for ${STALL_MS} ms`));
    }, 1_000);
    for (let i = 0; i < inFlight; i++) launch();
  });
}

/** At most `window` deliveries outstanding (≥ 2 sends); ops = deliveries received in the measured window. */
export function driveFlow(
  flow: Flow,
  payload: Payload,
  window: number,
  timing: PhaseTiming,
  pid: number,
): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const per = flow.receiversPerSend;
    // The window counts deliveries, and bytes: a fan-out to 100 keeps 5 publishes (500 deliveries)
    // outstanding, and at 16 KB at most 1 MiB is in flight (64 deliveries).
    const deliveries = Math.min(window, Math.floor(WINDOW_BYTES / payload.bytes.length));
    const sends = Math.max(2, Math.ceil(deliveries / per));
    let sent = 0;
    let acked = 0;
    let received = 0;
    /** Sends written off as lost (lossy flows only). */
    let lostSends = 0;
    let stopped = false;
    let failed = false;
    let pumping = false;
    let lastProgress = performance.now();
    const deliveredSends = (): number => Math.floor(received / per) + lostSends;
    const outstanding = (): number => sent - Math.min(acked, deliveredSends());
    const finish = (err?: Error): void => {
      if (failed) return;
      failed = true; // settles once
      clearInterval(watchdog);
      measured.cancel();
      flow.onReceive = () => {};
      if (err) reject(err);
      else resolve(resultOf(measured.start!, measured.end!, flow.lossy ? { lost: lostSends } : {}));
    };
    const checkDone = (): void => {
      if (stopped && acked === sent && deliveredSends() >= sent) finish();
    };
    const onAck: Done = (err) => {
      if (err) return finish(err);
      acked++;
      lastProgress = performance.now();
      pump();
    };
    const pump = (): void => {
      if (pumping) return; // a synchronous ack re-enters here
      pumping = true;
      while (!stopped && outstanding() < sends) {
        sent++;
        flow.send(payload, onAck);
      }
      pumping = false;
      checkDone();
    };
    flow.onReceive = () => {
      received++;
      lastProgress = performance.now();
      measured.counted();
      pump();
    };
    const measured = new MeasuredWindow(timing, {
      minOps: MIN_WINDOWS * sends * per,
      count: () => received,
      pid,
      onClose: () => {
        stopped = true;
        checkDone();
      },
    });
    const watchdog = setInterval(
      () => {
        const quiet = performance.now() - lastProgress;
        if (flow.lossy && quiet >= QUIET_MS && acked === sent) {
          // Fire-and-forget: what has not arrived by now will not; count it lost and go on (or end).
          lostSends = sent - Math.floor(received / per);
          lastProgress = performance.now();
          pump();
        } else if (quiet > STALL_MS) {
          finish(new Error(`flow stalled: sent ${sent}, acked ${acked}, received ${received} (×${per})`));
        }
      },
      flow.lossy ? QUIET_MS / 2 : 1_000,
    );
    pump();
  });
}
