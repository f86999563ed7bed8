// The IoT benchmark's agents and monitor: real IotAgents on logged-in c2s sessions, one Monitor
// (with its own IotClient sized for the fleet) observing all of them.
import { chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock, type Session } from '@xmppbus/core';
import { IotAgent, IotClient, IotScheduler, Monitor } from '@xmppbus/iot';

export interface BenchMonitor {
  readonly jid: string;
  readonly session: Session;
  readonly monitor: Monitor;
  /** The callback for every observed `stamp` value (replaces the previous one). */
  onStamp(cb: (stamp: number) => void): void;
  close(): Promise<void>;
}

export interface BenchAgent {
  readonly jid: string;
  /** Reports a new value of the agent's one field. */
  change(value: number): void;
  close(): Promise<void>;
}

export async function startBenchMonitor(account: { session: Session }, maxAgents = 100_000): Promise<BenchMonitor> {
  const { session } = account;
  const client = new IotClient({
    session,
    approve: () => true, // every agent of the benchmark reciprocates; approve it
    limits: { observations: maxAgents },
    timeout: 120_000,
  });
  // A short history: the benchmark measures the observe path, not the dashboard's memory.
  const monitor = new Monitor({ session, client, historySize: 8, maxAgents, timeout: 120_000 });
  let cb: (stamp: number) => void = () => {};
  monitor.onValue((v) => {
    if (v.field === 'stamp' && typeof v.value === 'number') cb(v.value);
  });
  await monitor.start({ timeout: 120_000 });
  return {
    jid: session.address.split('/')[0] ?? session.address,
    session,
    monitor,
    onStamp: (f) => void (cb = f),
    close: async () => {
      await monitor.close();
      await client.close();
      // The session is the monitor's own connection: left open, it reconnects after the server stops.
      await session.close();
    },
  };
}

async function pool(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

/**
 * Starts an IotAgent (one quantity field, `stamp`) on every session, makes the monitor a
 * mutual roster contact of each and waits until every agent holds the monitor's subscription.
 */
export async function startBenchAgents(
  accounts: readonly { session: Session }[],
  monitor: BenchMonitor,
  options: { concurrency: number; timeout?: number },
): Promise<BenchAgent[]> {
  const scheduler = new IotScheduler(systemClock);
  const agents: IotAgent[] = accounts.map(
    ({ session }) =>
      new IotAgent({
        session,
        fields: [{ name: 'stamp', kind: 'quantity', unit: 'ms', decimals: 3, initial: 0 }],
        owners: [monitor.jid],
        scheduler,
        notifyOwners: false,
      }),
  );
  await pool(agents.length, options.concurrency, (i) => agents[i]!.start({ timeout: 120_000 }));
  process.stdout.write(`  ${agents.length} IotAgents started\n`);
  await pool(agents.length, options.concurrency, (i) =>
    monitor.monitor.watch(agents[i]!.session.address.split('/')[0]!),
  );
  const deadline = performance.now() + (options.timeout ?? 300_000);
  let lastReport = performance.now();
  for (;;) {
    const subscribed = agents.filter((a) => a.subscriptionCount > 0).length;
    if (subscribed === agents.length) break;
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      const trusted = agents.filter((a) => a.isTrusted(monitor.jid)).length;
      process.stdout.write(`  … ${trusted} agents trust the monitor, ${subscribed} subscribed\n`);
      if (process.env['IOT_BENCH_DEBUG'])
        process.stdout.write(
          `    agent0 roster ${JSON.stringify(agents[0]!.roster.items)} pending ${JSON.stringify(agents[0]!.pendingRequests())}; monitor sees ${JSON.stringify(monitor.monitor.client.roster.item(agents[0]!.session.address.split('/')[0]!))}\n`,
        );
    }
    if (performance.now() > deadline) {
      process.stdout.write(`  only ${subscribed}/${agents.length} agents subscribed; measuring those\n`);
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return agents
    .filter((a) => a.subscriptionCount > 0)
    .map((a) => ({
      jid: a.session.address,
      change: (value: number) => void a.set('stamp', value),
      close: () => a.close(),
    }));
}

/**
 * Writes mutual (`both`) roster entries between the monitor and every agent straight into
 * Prosody's file storage, before anyone logs in — as a fleet operator provisions devices. The
 * subscription handshake itself costs Prosody O(roster size) per change for the monitor's
 * account (its whole roster file is rewritten on every change): measured at 300 agents, 55 s.
 * Returns false when the data dir is not where expected (then the handshake runs instead).
 */
export function provisionProsodyRosters(
  serverDir: string,
  domain: string,
  monitor: string,
  agents: readonly string[],
): boolean {
  const hostDir = [join(serverDir, 'data', domain), join(serverDir, domain)].find((d) =>
    existsSync(join(d, 'accounts')),
  );
  if (!hostDir) return false;
  const owner = statSync(join(hostDir, 'accounts'));
  const dir = join(hostDir, 'roster');
  mkdirSync(dir, { recursive: true });
  const entry = (jid: string): string => `\t["${jid}"] = { ["subscription"] = "both"; ["groups"] = {}; };\n`;
  const file = (user: string, contacts: readonly string[]): void => {
    const path = join(dir, `${user}.dat`);
    writeFileSync(path, `return {\n\t[false] = { ["version"] = 1; };\n${contacts.map(entry).join('')}};\n`);
    chownSync(path, owner.uid, owner.gid);
  };
  file(
    monitor,
    agents.map((a) => `${a}@${domain}`),
  );
  for (const a of agents) file(a, [`${monitor}@${domain}`]);
  chownSync(dir, owner.uid, owner.gid);
  return true;
}
