// The Monitor against real c2s agents on Prosody and ejabberd: discovery from the roster, stale
// data driven by the monitor's clock (a ManualClock: no waiting), offline agents, typed values
// with units, history bounded per field, and alert events on a pub/sub node.
import { AccessPolicy, ManualClock, Session } from '@xmppbus/core';
import { AlertEvent, Monitor, iotAccessRules, type AlertTransition } from '@xmppbus/iot';
import { PubSub } from '@xmppbus/pubsub';
import { decode } from '@xmppbus/schema';
import { describeServers, waitFor } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { afterEach, expect, it } from 'vitest';
import { agentName, fleetScheduler, startAgent, startFleet, type SimAgent } from '../examples/iot/fleet.js';

const PASSWORD = 'password';
const MONITOR = 'watcher@localhost';
const DEADLINE = 30_000;

const users: [string, string][] = [
  ['watcher', PASSWORD],
  ...Array.from({ length: 3 }, (_, i): [string, string] => [agentName('unit', i), PASSWORD]),
];

describeServers(
  'iot monitor',
  (server, kind) => {
    const cleanups: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    });

    async function watcherSession(): Promise<Session> {
      const srv = server();
      const transport = await clientTransport({
        service: srv.c2sService(),
        domain: srv.domain,
        username: 'watcher',
        password: PASSWORD,
        resource: `m${Math.random().toString(36).slice(2, 8)}`,
        timeout: DEADLINE,
      });
      const session = new Session({ transport, access: new AccessPolicy({ rules: iotAccessRules() }) });
      cleanups.push(() => session.close());
      await session.start({ timeout: DEADLINE });
      return session;
    }

    async function fleetOf(n: number): Promise<SimAgent[]> {
      const fleet = await startFleet({
        server: server(),
        agents: n,
        owner: MONITOR,
        password: PASSWORD,
        prefix: 'unit',
      });
      cleanups.push(() => Promise.all(fleet.map((a) => a.close())));
      return fleet;
    }

    it(`raises stale on its clock, clears on the next value, and tracks offline agents [${kind}]`, async () => {
      const [thermo, door] = await fleetOf(2);
      const clock = new ManualClock(Date.now());
      const session = await watcherSession();
      const pubsub = new PubSub({ session, service: server().pubsubService, timeout: DEADLINE });
      await pubsub.ensureNode('unit-alerts', { persistItems: true, maxItems: 50 });
      const transitions: AlertTransition[] = [];
      const monitor = new Monitor({
        session,
        agents: [thermo!.monitored, door!.monitored],
        alerts: [
          { kind: 'stale', name: 'stale-temp', field: 'temperature', maxInterval: 60_000 },
          { kind: 'offline', name: 'down', severity: 'critical' },
        ],
        publishAlerts: { pubsub, node: 'unit-alerts' },
        historySize: 5,
        clock, // alerts and history on a manual clock; the session's I/O on the real one
        timeout: DEADLINE,
      });
      cleanups.push(() => monitor.close());
      monitor.onAlert((t) => transitions.push(t));
      await monitor.start();
      await waitFor(() => monitor.stats.online === 2 && monitor.stats.notifications >= 2, { timeout: DEADLINE });

      // Typed values with units, and at most historySize points per field.
      for (let i = 0; i < 8; i++) thermo!.report([{ name: 'temperature', value: 20 + i / 10, unit: '°C' }]);
      await waitFor(() => monitor.value(thermo!.jid, 'temperature') === 20.7, { timeout: DEADLINE });
      const view = monitor.snapshot().agents.find((a) => a.jid === thermo!.jid)!;
      const temp = view.fields.find((f) => f.name === 'temperature')!;
      expect(temp).toMatchObject({ value: 20.7, unit: '°C' });
      expect(temp.history.map((p) => p.v)).toEqual([20.3, 20.4, 20.5, 20.6, 20.7]);
      expect(view.name).toBe('Thermostat 0');
      // No controls configured (`monitored` is a name): the agent marks its settable fields writable.
      expect(thermo!.monitored.controls).toBeUndefined();
      expect(view.controls).toMatchObject([
        { name: 'setpoint', kind: 'numeric', unit: '°C' },
        { name: 'heating', kind: 'boolean' },
      ]);

      // Stale: no temperature for maxInterval on the monitor's clock (no real waiting).
      clock.advance(59_999);
      expect(transitions).toEqual([]);
      clock.advance(1);
      expect(transitions.map((t) => `${t.state} ${t.alert.id}`)).toEqual([
        `raised stale-temp/${thermo!.jid}/temperature`,
      ]);
      thermo!.report([{ name: 'temperature', value: 21, unit: '°C' }]);
      await waitFor(() => transitions.length === 2, { timeout: DEADLINE });
      expect(transitions[1]).toMatchObject({ state: 'cleared', alert: { kind: 'stale' } });

      // Offline: raised when the agent's presence goes unavailable, cleared when it is back.
      await door!.close();
      await waitFor(() => transitions.length === 3, { timeout: DEADLINE });
      expect(transitions[2]).toMatchObject({
        state: 'raised',
        alert: { kind: 'offline', agent: door!.jid, severity: 'critical' },
      });
      expect(monitor.snapshot().agents.find((a) => a.jid === door!.jid)?.presence).toBe('offline');
      expect(monitor.stats.online).toBe(1);

      // Both kinds reached the pub/sub node, in order, as typed AlertEvents.
      await monitor.drain({ timeout: DEADLINE });
      const items = await pubsub.items('unit-alerts');
      const events = items.map((i) => decode(AlertEvent, i.payload!));
      expect(events.map((e) => `${e.state} ${e.kind} ${e.agent}`).sort()).toEqual(
        [`cleared stale ${thermo!.jid}`, `raised offline ${door!.jid}`].sort(),
      );
    });

    it(`discovers agents from its roster and reads typed values from them [${kind}]`, async () => {
      const [a] = await fleetOf(1);
      // A first monitor befriends the agent (a configured agent)…
      const first = new Monitor({ session: await watcherSession(), agents: [a!.jid], timeout: DEADLINE });
      cleanups.push(() => first.close());
      await first.start();
      await waitFor(() => first.stats.notifications >= 1, { timeout: DEADLINE });
      await first.close();
      // …a second one with no agent list finds it on the roster and observes it.
      const second = new Monitor({ session: await watcherSession(), timeout: DEADLINE });
      cleanups.push(() => second.close());
      await second.start();
      expect(second.snapshot().agents.map((v) => v.jid)).toContain(a!.jid);
      await waitFor(() => second.stats.notifications >= 1, { timeout: DEADLINE });
      a!.report([{ name: 'temperature', value: 19.25, unit: '°C' }]);
      await waitFor(() => second.value(a!.jid, 'temperature') === 19.25, { timeout: DEADLINE });
      // The typed client API is there too: a readout through the monitor's client.
      const readout = await second.client.read(a!.jid, { fields: ['temperature'] });
      expect(readout.fields.find((f) => f.name === 'temperature')).toMatchObject({ value: 19.25, unit: '°C' });
    });

    it(`shows the server's last-seen of an agent that logged out before it started [${kind}]`, async () => {
      // unit02: used by no other test here, so its only session is this one.
      const options = { server: server(), agents: 3, owner: MONITOR, password: PASSWORD, prefix: 'unit' };
      const agent = await startAgent({ ...options, scheduler: fleetScheduler() }, 2);
      cleanups.push(() => agent.close());
      // A first monitor makes the agent a mutual contact (the server answers last activity to contacts only)…
      const first = new Monitor({ session: await watcherSession(), agents: [agent.jid], timeout: DEADLINE });
      cleanups.push(() => first.close());
      await first.start();
      await waitFor(() => first.stats.notifications >= 1, { timeout: DEADLINE });
      await first.close();
      // …then the agent logs out, before the monitor below exists.
      const loggedOutAt = Date.now();
      await agent.close();
      const second = new Monitor({ session: await watcherSession(), timeout: DEADLINE });
      cleanups.push(() => second.close());
      await second.start();
      const view = () => second.snapshot().agents.find((a) => a.jid === agent.jid);
      // It never saw the agent: its last-seen can only be the server's (XEP-0012) answer.
      await waitFor(() => view()?.lastSeenSource === 'server', { what: 'server last-seen', timeout: DEADLINE });
      expect(view()?.presence).toBe('offline');
      // The server counts whole seconds.
      expect(view()!.lastSeen).toBeGreaterThanOrEqual(loggedOutAt - 2000);
      expect(view()!.lastSeen).toBeLessThanOrEqual(Date.now());
      // One question per offline contact, not one per start or presence.
      const asked = second.stats.lastSeenQueries;
      expect(asked).toBeLessThanOrEqual(second.snapshot().agents.length);
    });
  },
  { users, admins: [MONITOR] },
);
