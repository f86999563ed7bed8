import { AccessPolicy, ManualClock, Session, xml } from '@xmppbus/core';
import { Messenger, type DeadLetterEvent } from '@xmppbus/messaging';
import { waitFor } from '@xmppbus/testing';
import { memoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IotClient } from '../client/iot-client.js';
import { FakeServer, turn } from '../testing.fixture.js';
import type { ControlContext } from '../types.js';
import { IotAgent, iotAccessRules } from './iot-agent.js';

const AGENT = 'agent@iot.test/device';
const MONITOR = 'monitor@iot.test/m';
const T0 = Date.parse('2026-12-05T00:00:00Z');

let closers: (() => Promise<void>)[];
let hub: ReturnType<typeof memoryHub>;
let clock: ManualClock;
let server: FakeServer;
let agent: IotAgent;
let client: IotClient;
let monitorMessenger: Messenger;
let applied: { name: string; value: unknown; context: ControlContext }[];

beforeEach(async () => {
  hub = memoryHub();
  clock = new ManualClock(T0);
  server = new FakeServer(hub, 'iot.test');
  await server.start();
  const agentSession = new Session({
    transport: hub.connect(AGENT),
    clock,
    access: new AccessPolicy({ rules: iotAccessRules() }),
  });
  server.connected(AGENT);
  const agentMessenger = new Messenger({ session: agentSession });
  agent = new IotAgent({
    session: agentSession,
    messenger: agentMessenger,
    owners: ['monitor@iot.test'],
    parameters: [{ name: 'SetPoint', kind: 'double', min: 5, max: 30, initial: 20 }],
  });
  applied = [];
  agent.onControl((c) => applied.push(c));
  await agent.start();
  await agentMessenger.start();
  const monitorSession = new Session({ transport: hub.connect(MONITOR), clock });
  server.connected(MONITOR);
  monitorMessenger = new Messenger({ session: monitorSession });
  client = new IotClient({ session: monitorSession, messenger: monitorMessenger });
  await client.start();
  await monitorMessenger.start();
  await client.befriend(AGENT);
  await waitFor(() => agent.isTrusted(MONITOR), { turns: 200 });
  closers = [
    () => monitorMessenger.close(),
    () => client.close(),
    () => monitorSession.close(),
    () => agentMessenger.close(),
    () => agent.close(),
    () => agentSession.close(),
    () => server.close(),
  ];
});
afterEach(async () => {
  for (const c of closers) await c();
});

describe('commands through the QoS outbox', () => {
  it('a QoS 2 command is applied once, as a command', async () => {
    await client.sendCommand(AGENT, { SetPoint: 19 }, { qos: 2, id: 'cmd-1' });
    await waitFor(() => applied.length === 1, { turns: 100 });
    expect(agent.parameter('SetPoint')).toBe(19);
    expect(applied[0]?.context).toMatchObject({ via: 'command', dialect: 'nf', from: MONITOR });
    // The same id again (a producer retry): the receiver drops it.
    await client.sendCommand(AGENT, { SetPoint: 19 }, { qos: 2, id: 'cmd-1' });
    for (let i = 0; i < 20; i++) await turn();
    expect(applied).toHaveLength(1);
  });

  it('waits in the outbox while the agent is offline, then arrives with its delay', async () => {
    hub.disconnect(AGENT);
    const sent = client.sendCommand(AGENT, { SetPoint: 25 }, { qos: 2, ttl: '1h', dialect: 'legacy' });
    sent.catch(() => undefined);
    for (let i = 0; i < 20; i++) await turn();
    clock.advance(5000);
    hub.reconnect(AGENT);
    // The agent's available presence resumes the outbox at once.
    await agent.session.send(xml('presence', { to: MONITOR }));
    await waitFor(
      () => {
        clock.advance(1000);
        return applied.length === 1;
      },
      { turns: 500, what: 'command applied after reconnect' },
    );
    await sent;
    expect(applied[0]?.context.via).toBe('command');
    expect(applied[0]?.context.dialect).toBe('legacy');
    expect(applied[0]?.context.delayedFrom?.getTime()).toBe(T0);
  });

  it('an expired command is dead-lettered, never executed late', async () => {
    const dead: DeadLetterEvent[] = [];
    monitorMessenger.onDeadLetter((d) => dead.push(d));
    hub.disconnect(AGENT);
    const sent = client.sendCommand(AGENT, { SetPoint: 6 }, { qos: 2, ttl: '10s' });
    sent.catch(() => undefined);
    await waitFor(
      () => {
        clock.advance(1000);
        return dead.length === 1;
      },
      { turns: 500, what: 'dead letter' },
    );
    hub.reconnect(AGENT);
    expect(dead[0]?.reason).toBe('expired');
    await expect(sent).rejects.toThrow();
    for (let i = 0; i < 20; i++) await turn();
    expect(applied).toHaveLength(0);
    expect(agent.parameter('SetPoint')).toBe(20);
  });

  it('a plain <message> control reaches the agent through its messenger (QoS 0, no answer)', async () => {
    await client.control(AGENT, { SetPoint: 7 }, { asMessage: true });
    await waitFor(() => applied.length === 1, { turns: 100 });
    expect(applied[0]?.context.via).toBe('message');
    expect(agent.parameter('SetPoint')).toBe(7);
  });
});
