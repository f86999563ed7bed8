/**
 * The IoT example: a simulated fleet of c2s agents (thermostats, door contacts, power meters),
 * a monitor with alert rules that publishes alert events to pub/sub, and the live dashboard —
 * through a real Prosody this script starts on free loopback ports in a temp dir.
 *
 *   npm run example:iot                          # 12 agents for 2 minutes; open the printed URL
 *   IOT_AGENTS=30 IOT_DURATION=0 npm run example:iot   # 30 agents until Ctrl-C
 *
 * Env: IOT_AGENTS (default 12), IOT_DURATION (seconds, default 120; 0 = until Ctrl-C),
 * IOT_SPEED (simulated seconds per real second, default 1), IOT_PORT (dashboard port, default free).
 *
 * A scripted story runs so that something happens even in a short run: a heat wave hits the
 * first thermostat (its threshold alert is raised, the monitor turns its heating off by a
 * control command, the alert clears as it cools), and the first door contact drops off the
 * network and comes back (offline alert raised and cleared).
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { AccessPolicy, Session } from '@xmppbus/core';
import { Dashboard, IotClient, Monitor, iotAccessRules, type AlertRule, type AlertTransition } from '@xmppbus/iot';
import { Messenger } from '@xmppbus/messaging';
import { PubSub } from '@xmppbus/pubsub';
import { startProsody, type XmppServer } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { agentName, fleetScheduler, startAgent, startFleet, type SimAgent } from './fleet.js';
import { Thermostat } from './models.js';

export const IOT_MONITOR = 'monitor';
export const IOT_PASSWORD = 'password';
export const IOT_ALERT_NODE = 'iot-alerts';

/** Accounts the example logs in with (a server it is given must have them). */
export function iotExampleUsers(agents: number): [string, string][] {
  return [
    [IOT_MONITOR, IOT_PASSWORD],
    ...Array.from({ length: agents }, (_, i): [string, string] => [agentName('agent', i), IOT_PASSWORD]),
  ];
}

/** The monitor's alert rules. */
export const IOT_ALERT_RULES: AlertRule[] = [
  { kind: 'threshold', name: 'too-hot', field: 'temperature', above: 28, hysteresis: 1, severity: 'critical' },
  { kind: 'threshold', name: 'too-cold', field: 'temperature', below: 12, hysteresis: 1 },
  { kind: 'threshold', name: 'high-load', field: 'power', above: 2500, hysteresis: 200 },
  { kind: 'stale', name: 'silent', maxInterval: 30_000 },
  { kind: 'offline', name: 'offline' },
];

export interface IotExampleOptions {
  /** A running server with `iotExampleUsers(agents)` (default: a fresh Prosody, stopped at the end). */
  server?: XmppServer;
  /** Agents in the fleet (default 12, at least 2). */
  agents?: number;
  /** How long the fleet runs, ms (default 120 000; 0 = until SIGINT/SIGTERM). */
  duration?: number;
  /** Simulated seconds per real second (default 1). */
  speed?: number;
  /** Dashboard port (default: a free one). */
  port?: number;
  /** Where transcript lines go (default: stdout). */
  write?: (line: string) => void;
  /** Called with the dashboard URL once it serves. */
  onDashboard?: (url: string) => void;
  /** Bound on every wait, ms (default 30 000). */
  timeout?: number;
}

export interface IotExampleSummary {
  readonly url: string;
  readonly agents: number;
  /** Agents online when the run ended. */
  readonly online: number;
  readonly notifications: number;
  readonly values: number;
  readonly alertsRaised: readonly string[];
  readonly alertsCleared: readonly string[];
  /** Control commands the monitor sent that the agent applied: "agent parameter=value". */
  readonly commandsDelivered: readonly string[];
  /** Alert events found on the pub/sub node at the end. */
  readonly alertEventsPublished: number;
  readonly transcript: readonly string[];
}

const alertLabel = (t: AlertTransition): string =>
  `${t.alert.rule} ${t.alert.agent.split('@')[0]}${t.alert.field ? `.${t.alert.field}` : ''}`;

export async function runIotExample(options: IotExampleOptions = {}): Promise<IotExampleSummary> {
  const n = Math.max(2, options.agents ?? 12);
  const duration = options.duration ?? 120_000;
  const speed = options.speed ?? 1;
  const timeout = options.timeout ?? 30_000;
  const transcript: string[] = [];
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const t0 = performance.now();
  const log = (who: string, text: string): void => {
    const line = `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${who.padEnd(12)} ${text}`;
    transcript.push(line);
    write(line);
  };
  const ownServer = options.server === undefined;
  const server =
    options.server ?? (await startProsody({ users: iotExampleUsers(n), admins: [`${IOT_MONITOR}@localhost`] }));
  const closers: (() => Promise<unknown>)[] = [];
  const raised: string[] = [];
  const cleared: string[] = [];
  const delivered: string[] = [];
  try {
    if (ownServer) log('example', `Prosody pid ${server.pid} on ${server.c2sService()} (temp dir, free ports)`);
    const owner = `${IOT_MONITOR}@${server.domain}`;
    const scheduler = fleetScheduler();
    // Agents with a messenger: a dashboard button pressed while one is offline queues a command it gets on login.
    const fleetOptions = { server, agents: n, owner, password: IOT_PASSWORD, timeout, scheduler, messenger: true };
    const fleet: SimAgent[] = await startFleet(fleetOptions);
    closers.push(() => Promise.all(fleet.map((a) => a.close())));
    log('fleet', `${n} agents logged in over c2s: ${fleet.map((a) => a.name).join(', ')}`);

    const transport = await clientTransport({
      service: server.c2sService(),
      domain: server.domain,
      username: IOT_MONITOR,
      password: IOT_PASSWORD,
      resource: 'monitor',
      timeout,
    });
    const session = new Session({ transport, access: new AccessPolicy({ rules: iotAccessRules() }) });
    closers.unshift(() => session.close());
    const pubsub = new PubSub({ session, service: server.pubsubService });
    const messenger = new Messenger({ session });
    closers.unshift(() => messenger.close());
    const client = new IotClient({ session, messenger, timeout });
    const monitor = new Monitor({
      session,
      client, // with a messenger: controls on offline agents are queued (QoS 2), not refused
      agents: fleet.map((a) => a.monitored),
      // A heartbeat from every agent at least every 10 s, so "silent" (30 s) means a stuck agent.
      observe: { maxInterval: 10_000 },
      alerts: IOT_ALERT_RULES,
      publishAlerts: { pubsub, node: IOT_ALERT_NODE },
      timeout,
    });
    closers.unshift(() => monitor.close().then(() => client.close()));
    await session.start({ timeout });
    await pubsub.ensureNode(IOT_ALERT_NODE, { persistItems: true, maxItems: 1000 }, { timeout });
    await monitor.start({ timeout });
    await messenger.start({ timeout });
    const dashboard = new Dashboard({ source: monitor, title: `xmppbus fleet · ${n} agents`, port: options.port });
    closers.unshift(() => dashboard.close());
    const url = await dashboard.start();
    log('dashboard', `live at ${url}`);
    options.onDashboard?.(url);

    const hot = fleet.find((a) => a.model instanceof Thermostat)!;
    const door = fleet.find((a) => a.model.kind === 'door')!;
    monitor.onAlert((t) => {
      (t.state === 'raised' ? raised : cleared).push(alertLabel(t));
      log(
        'monitor',
        t.state === 'raised'
          ? `▲ raised  ${t.alert.severity}: ${t.alert.message} (${t.alert.agent})`
          : `▼ cleared ${alertLabel(t)}`,
      );
      // The monitor's own reaction: an overheating thermostat gets its heating turned off.
      if (t.state === 'raised' && t.alert.rule === 'too-hot') {
        monitor.control(t.alert.agent, 'heating', false).then(
          (outcome) => log('monitor', `→ heating=false to ${t.alert.agent}: ${outcome.state}`),
          (err: unknown) => log('monitor', `✗ heating=false to ${t.alert.agent}: ${(err as Error).message}`),
        );
      }
    });
    for (const a of fleet)
      a.agent.onControl((c) => {
        delivered.push(`${a.jid.split('@')[0]} ${c.name}=${String(c.value)}`);
        log(
          a.name,
          `← control ${c.name}=${String(c.value)} from ${c.context.from} (${c.context.dialect}, ${c.context.via})`,
        );
      });
    await waitUntil(() => monitor.stats.online === n && monitor.stats.notifications >= n, timeout);
    log('monitor', `observing ${n} agents (roster trust: mutual presence subscriptions)`);

    // The fleet runs: each tick advances every model by one simulated second.
    const tickMs = 1000 / speed;
    const ticks = duration > 0 ? Math.max(8, Math.round(duration / tickMs)) : Number.POSITIVE_INFINITY;
    const story = new Map<number, () => Promise<void>>([
      [
        Math.min(2, ticks - 1),
        async () => {
          (hot.model as Thermostat).disturb(12);
          log(hot.name, 'heat wave: +12 °C');
        },
      ],
      [
        Math.floor(ticks * 0.45),
        async () => {
          log(door.name, 'drops off the network');
          await door.close();
        },
      ],
      [
        Math.floor(ticks * 0.7),
        async () => {
          const back = await startAgent({ ...fleetOptions, model: door.model }, door.index);
          fleet[door.index] = back;
          log(door.name, 'back online');
        },
      ],
    ]);
    let stop = false;
    const onSignal = (): void => void (stop = true);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      for (let tick = 0; tick < ticks && !stop; tick++) {
        await new Promise((r) => setTimeout(r, tickMs));
        for (const a of fleet) if (a.agent.status === 'ready') a.step(1);
        await story.get(tick)?.();
        if (tick > 0 && tick % Math.max(10, Math.round(10 * speed)) === 0) {
          const s = monitor.stats;
          log(
            'monitor',
            `${s.online}/${n} online, ${s.notifications} notifications, ${monitor.activeAlerts().length} active alerts`,
          );
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    // Let the door's offline alert clear, and the last alert events reach the node.
    await waitUntil(() => !monitor.activeAlerts().some((a) => a.kind === 'offline'), timeout).catch(() => undefined);
    await monitor.drain({ timeout });
    const published = await pubsub.items(IOT_ALERT_NODE, { timeout }).catch(() => []);
    const s = monitor.stats;
    const summary = {
      url,
      agents: n,
      online: s.online,
      notifications: s.notifications,
      values: s.values,
      alertsRaised: raised,
      alertsCleared: cleared,
      commandsDelivered: delivered,
      alertEventsPublished: published.length,
    };
    log('summary', `dashboard ${url}`);
    log('summary', `${n} agents (${s.online} online at the end), ${s.notifications} notifications, ${s.values} values`);
    log('summary', `alerts raised: ${raised.length} (${raised.join(', ') || '-'})`);
    log('summary', `alerts cleared: ${cleared.length} (${cleared.join(', ') || '-'})`);
    log('summary', `commands delivered: ${delivered.join(', ') || '-'}`);
    log('summary', `alert events on pub/sub node '${IOT_ALERT_NODE}': ${published.length}`);
    return { ...summary, transcript };
  } finally {
    for (const c of closers) await c().catch(() => undefined);
    if (ownServer) await server.stop();
  }
}

async function waitUntil(condition: () => boolean, timeout: number): Promise<void> {
  const end = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`not reached within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isMain) {
  const env = process.env;
  await runIotExample({
    agents: Number(env['IOT_AGENTS'] ?? 12),
    duration: Number(env['IOT_DURATION'] ?? 120) * 1000,
    speed: Number(env['IOT_SPEED'] ?? 1),
    ...(env['IOT_PORT'] ? { port: Number(env['IOT_PORT']) } : {}),
  });
}
