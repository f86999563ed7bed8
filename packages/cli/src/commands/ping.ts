/** `xmppbus ping <jid>`: XEP-0199 round trips, each printed with its time. */
import type { Command } from 'commander';
import { NS_PING, xml } from '@xmppbus/core';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import type { Wrap } from '../action.js';

interface PingFlags {
  count: string;
}

export function registerPing(program: Command, wrap: Wrap): void {
  program
    .command('ping')
    .description('measure XEP-0199 ping round trips to an entity')
    .argument('<jid>', 'a service, account or server')
    .option('-n, --count <n>', 'pings to send, one after the other', '1')
    .action(wrap(ping));
}

async function ping(ctx: Context, jid: string, flags: PingFlags): Promise<void> {
  const count = Number(flags.count);
  if (!Number.isInteger(count) || count < 1 || count > 10_000)
    throw new UsageError(`--count must be an integer from 1 to 10000, got '${flags.count}'`);
  const bus = await ctx.connect();
  const rtts: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await bus.session.caller.request(xml('iq', { type: 'get', to: jid }, xml('ping', { xmlns: NS_PING })), {
      timeout: ctx.timeout,
      signal: ctx.signal,
    });
    const rtt = performance.now() - start;
    rtts.push(rtt);
    if (!ctx.out.json) ctx.out.line(`pong from ${jid}: rtt=${rtt.toFixed(2)} ms`);
  }
  const sum = rtts.reduce((a, b) => a + b, 0);
  const stats = {
    jid,
    count,
    rtt: rtts.map((r) => round(r)),
    min: round(Math.min(...rtts)),
    avg: round(sum / count),
    max: round(Math.max(...rtts)),
  };
  if (ctx.out.json) ctx.out.result(stats, () => '');
  else if (count > 1) ctx.out.line(`${count} pings: min/avg/max = ${stats.min}/${stats.avg}/${stats.max} ms`);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
