// The competitors of the peers benchmark, started by the benchmark itself from their Debian
// packages (scripts/install-servers.sh): nats-server (core, or with JetStream on a file store) and
// mosquitto (persistence off or on). Each broker gets a free port on 127.0.0.1, its own temp dir
// and config file; it is ready once a real client connected (never after a sleep). Every started
// process is tracked and killed on stop(), on process exit and on SIGINT/SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as natsConnect } from '@nats-io/transport-node';
import { freePort } from '@xmppbus/testing';
import mqtt from 'mqtt';

export const NATS_SERVER = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';
export const MOSQUITTO = process.env['MOSQUITTO_BIN'] ?? '/usr/sbin/mosquitto';

export type BrokerKind = 'nats' | 'nats-jetstream' | 'mosquitto' | 'mosquitto-persist';

export interface Broker {
  readonly kind: BrokerKind;
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The broker's process id, for its CPU time (processCpuUs). */
  readonly pid: number;
  /** Its temp dir (config, store, log); removed by stop(). */
  readonly dir: string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

/** Kills every broker still running when this process ends, however it ends. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = (): void => {
    for (const child of live) child.kill('SIGKILL');
    live.clear();
  };
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Retries `attempt` until it succeeds (the broker accepts a real client) or `ms` passed. */
async function until(what: string, child: ChildProcess, ms: number, attempt: () => Promise<void>): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode})`);
    try {
      await attempt();
      return;
    } catch (err) {
      last = err;
      // Back off between connection attempts while the process starts listening.
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${what} not ready after ${ms} ms: ${String(last)}`);
}

async function launch(
  kind: BrokerKind,
  dir: string,
  port: number,
  cmd: string,
  args: string[],
  ready: () => Promise<void>,
): Promise<Broker> {
  hookExit();
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    live.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((res, rej) => {
      child.once('spawn', res);
      child.once('error', rej);
    });
    await until(`${kind} on port ${port}`, child, 15_000, ready);
  } catch (err) {
    await stop();
    throw new Error(`${String(err)}\n${stderr}`);
  }
  return { kind, host: '127.0.0.1', port, pid: child.pid!, dir, stop };
}

/** nats-server on 127.0.0.1; with `jetstream` a file store in its temp dir (`-js -sd`). */
export async function startNats(options: { jetstream?: boolean } = {}): Promise<Broker> {
  const jetstream = options.jetstream ?? false;
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-nats-'));
  const port = await freePort();
  const args = ['-a', '127.0.0.1', '-p', String(port), '-l', join(dir, 'nats.log')];
  // JetStream's file store: writes go to the page cache; fsync happens on the store's own timer,
  // not per message (see benchmarks/README.md).
  if (jetstream) args.push('-js', '-sd', join(dir, 'js'));
  return launch(jetstream ? 'nats-jetstream' : 'nats', dir, port, NATS_SERVER, args, async () => {
    const nc = await natsConnect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: 1_000 });
    await nc.close();
  });
}

/**
 * mosquitto on 127.0.0.1 with its own config. With `persistence`, mosquitto keeps its in-memory
 * state and writes `mosquitto.db` in its temp dir every `autosave_interval` seconds (and on exit);
 * it never fsyncs per message, so QoS 1/2 "persistence on" costs nearly nothing per message.
 */
export async function startMosquitto(options: { persistence?: boolean } = {}): Promise<Broker> {
  const persistence = options.persistence ?? false;
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-mqtt-'));
  const port = await freePort();
  const conf = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // As root mosquitto would drop to user mosquitto, which cannot write this root-owned temp dir.
    'user root',
    'set_tcp_nodelay true',
    // Unbounded in-flight and queued messages: the benchmark's own window bounds what is pending.
    'max_inflight_messages 0',
    'max_queued_messages 0',
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    persistence ? 'persistence true' : 'persistence false',
    ...(persistence ? [`persistence_location ${dir}/`, 'autosave_interval 1800'] : []),
  ];
  const file = join(dir, 'mosquitto.conf');
  writeFileSync(file, conf.join('\n') + '\n');
  return launch(persistence ? 'mosquitto-persist' : 'mosquitto', dir, port, MOSQUITTO, ['-c', file], async () => {
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 1_000 });
    await client.endAsync();
  });
}

export function startBroker(kind: BrokerKind): Promise<Broker> {
  switch (kind) {
    case 'nats':
      return startNats();
    case 'nats-jetstream':
      return startNats({ jetstream: true });
    case 'mosquitto':
      return startMosquitto();
    case 'mosquitto-persist':
      return startMosquitto({ persistence: true });
  }
}
