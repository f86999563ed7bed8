/**
 * `xmppbus bench rpc|pubsub|messaging`: a quick load test through the configured server, with
 * this identity talking to itself (calls to its own echo method, a throwaway node it subscribes
 * to, messages to its own address), so no other service is needed. Bounded by `--count` and
 * `--duration`; the numbers include the server's routing both ways.
 */
import type { Command } from 'commander';
import { TimeoutError, deferred, randomId, type Deferred, type JsonSchema } from '@xmppbus/core';
import type { Bus, BusConfig } from '@xmppbus/bus';
import type { QosLevel } from '@xmppbus/messaging';
import { decode, methodFromDescriptor, payloadFromDescriptor } from '@xmppbus/schema';
import { benchTable, runBench, type BenchOptions, type BenchResult } from '../bench-run.js';
import { positive } from '../config.js';
import type { Context } from '../context.js';
import { EXIT, UsageError, type ExitCode } from '../errors.js';
import type { Wrap } from '../action.js';

interface BenchFlags {
  count: string;
  duration: string;
  concurrency: string;
  qos?: string;
}

const NS_BENCH = 'urn:xmppbus:cli:bench:1';
const SEQ: JsonSchema = {
  type: 'object',
  properties: { n: { type: 'integer' } },
  required: ['n'],
  additionalProperties: false,
};
const Echo = methodFromDescriptor({
  kind: 'method',
  ns: NS_BENCH,
  name: 'echo',
  responseName: 'echo',
  readOnly: true,
  idempotent: false,
  request: SEQ,
  response: SEQ,
  errors: {},
});
const Tick = payloadFromDescriptor({ kind: 'message', ns: NS_BENCH, name: 'tick', schema: SEQ });

export function registerBench(program: Command, wrap: Wrap): void {
  const bench = program.command('bench').description('measure throughput and latency through the server');
  const common = (cmd: Command): Command =>
    cmd
      .option('-n, --count <n>', 'operations at most', '1000')
      .option('-d, --duration <seconds>', 'seconds at most', '30')
      .option('--concurrency <n>', 'operations in flight at once', '16');
  common(bench.command('rpc').description('RPC round trips to an echo method of this identity')).action(
    wrap((ctx, flags: BenchFlags) => benchmark(ctx, 'rpc', flags)),
  );
  common(bench.command('pubsub').description('publish to a throwaway node until the notification arrives')).action(
    wrap((ctx, flags: BenchFlags) => benchmark(ctx, 'pubsub', flags)),
  );
  common(bench.command('messaging').description('messages to this identity until handled'))
    .option('-q, --qos <level>', 'QoS level 0, 1 or 2', '1')
    .action(wrap((ctx, flags: BenchFlags) => benchmark(ctx, 'messaging', flags)));
  for (const cmd of bench.commands) cmd.exitOverride();
}

function intOption(text: string, what: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(`${what} must be an integer from 1 to ${max}, got '${text}'`);
  return n;
}

/** Lets this identity call itself: the default policy admits only services, not accounts. */
function allowSelf(config: BusConfig): BusConfig {
  const t = config.transport;
  if (!t) return config;
  const self = t.kind === 'client' ? `${t.username ?? ''}@${t.domain}` : t.domain;
  const rules = [{ from: self, effect: 'allow' as const }, ...(config.access?.rules ?? [])];
  return config.access?.allowAll ? config : { ...config, access: { ...config.access, rules } };
}

async function benchmark(ctx: Context, kind: 'rpc' | 'pubsub' | 'messaging', flags: BenchFlags): Promise<ExitCode> {
  const options: BenchOptions = {
    count: intOption(flags.count, '--count', 10_000_000),
    duration: (positive(flags.duration, '--duration') ?? 30) * 1000,
    concurrency: intOption(flags.concurrency, '--concurrency', 10_000),
    signal: ctx.signal,
  };
  const qos = kind === 'messaging' ? qosOf(flags.qos ?? '1') : undefined;
  const bus = await ctx.connect({ adjust: allowSelf });
  const name = qos === undefined ? kind : `messaging qos${qos}`;
  let result: BenchResult;
  if (kind === 'rpc') result = await benchRpc(ctx, bus, name, options);
  else if (kind === 'pubsub') result = await benchPubSub(ctx, bus, name, options);
  else result = await benchMessaging(ctx, bus, name, options, qos!);
  ctx.out.result(result, () => benchTable(ctx.out, result));
  return result.ops === 0 ? EXIT.error : EXIT.ok;
}

function qosOf(text: string): QosLevel {
  if (text === '0' || text === '1' || text === '2') return Number(text) as QosLevel;
  throw new UsageError(`--qos must be 0, 1 or 2, got '${text}'`);
}

async function benchRpc(ctx: Context, bus: Bus, name: string, options: BenchOptions): Promise<BenchResult> {
  bus.rpc.handle(Echo, (req) => req);
  await bus.start({ timeout: ctx.timeout, signal: ctx.signal });
  const self = bus.session.address;
  return runBench(name, ctx.out, options, async (n) => {
    await bus.client.call(Echo, self, { n } as never, { timeout: ctx.timeout });
  });
}

/** Operations completed by an observer (a notification, a handler): the op awaits its deferred. */
class Arrivals {
  readonly #waiting = new Map<number, Deferred<void>>();
  expect(n: number, timeout: number): Promise<void> {
    const d = deferred<void>();
    this.#waiting.set(n, d);
    const timer = setTimeout(() => d.reject(new TimeoutError(`#${n} did not arrive within ${timeout} ms`)), timeout);
    const done = d.promise.finally(() => {
      clearTimeout(timer);
      this.#waiting.delete(n);
    });
    // Observed here too: when sending fails, nobody awaits the arrival.
    done.catch(() => undefined);
    return done;
  }
  arrived(n: unknown): void {
    if (typeof n === 'number') this.#waiting.get(n)?.resolve();
  }
}

async function benchPubSub(ctx: Context, bus: Bus, name: string, options: BenchOptions): Promise<BenchResult> {
  const wait = { timeout: ctx.timeout, signal: ctx.signal };
  const pubsub = bus.pubsub;
  await pubsub.start(wait);
  const node = `xmppbus-bench-${randomId()}`;
  const arrivals = new Arrivals();
  const jid = bus.config.transport?.kind === 'component' ? `bench@${bus.session.address}` : undefined;
  const off = pubsub.onNode(node, (e) => {
    if (e.type !== 'items') return;
    for (const item of e.items) if (item.payload) arrivals.arrived(decodeSeq(item.payload));
  });
  await pubsub.createNode(node, { persistItems: false }, wait);
  try {
    await pubsub.subscribe(node, { ...wait, ...(jid !== undefined && { jid }) });
    return await runBench(name, ctx.out, options, async (n) => {
      const arrived = arrivals.expect(n, ctx.timeout);
      await pubsub.publish(Tick, node, { n } as never, { timeout: ctx.timeout });
      await arrived;
    });
  } finally {
    off();
    await pubsub.deleteNode(node, { timeout: ctx.timeout }).catch(() => undefined);
  }
}

function decodeSeq(el: Parameters<typeof decode>[1]): unknown {
  try {
    return (decode(Tick, el) as { n: number }).n;
  } catch {
    return undefined;
  }
}

async function benchMessaging(
  ctx: Context,
  bus: Bus,
  name: string,
  options: BenchOptions,
  qos: QosLevel,
): Promise<BenchResult> {
  const messenger = bus.messenger;
  const arrivals = new Arrivals();
  messenger.handle(Tick, (v) => arrivals.arrived((v as { n: number }).n));
  await messenger.start({ timeout: ctx.timeout, signal: ctx.signal });
  const self = bus.session.address;
  try {
    return await runBench(name, ctx.out, options, async (n) => {
      const arrived = arrivals.expect(n, ctx.timeout);
      await messenger.send(Tick, self, { n } as never, { qos, timeout: ctx.timeout });
      await arrived;
    });
  } finally {
    await messenger.flush({ timeout: ctx.timeout }).catch(() => undefined);
  }
}
