// IoT agents and monitors over real c2s links on Prosody and ejabberd: roster trust, readout and
// control in both dialects, observe semantics on a ManualClock, a QoS 2 command to an offline
// agent, last-seen (XEP-0012), and subscriptions restored after a server restart.
import { AccessPolicy, ManualClock, Session, StanzaError, type Clock } from '@xmppbus/core';
import {
  IotAgent,
  IotClient,
  iotAccessRules,
  type ControlContext,
  type FieldSpec,
  type ObserveEvent,
  type ParameterSpec,
} from '@xmppbus/iot';
import { Messenger } from '@xmppbus/messaging';
import { describeServers, waitFor } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { afterEach, expect, it } from 'vitest';

const PASSWORD = 'secret';
const DEADLINE = 30_000;

const FIELDS: FieldSpec[] = [
  { name: 'Temperature', kind: 'quantity', unit: '°C', decimals: 1, initial: 21.5 },
  { name: 'Door', kind: 'boolean', initial: false },
];
const PARAMS: ParameterSpec[] = [{ name: 'SetPoint', kind: 'double', min: 5, max: 30, initial: 20 }];

let seq = 0;

describeServers('iot over c2s', (server, kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  /** A fresh account (tests never share rosters). */
  async function account(prefix: string): Promise<string> {
    const name = `${prefix}${++seq}${kind[0]}`;
    await server().registerUser(name, PASSWORD);
    return name;
  }

  async function session(user: string, resource: string, clock?: Clock): Promise<Session> {
    const srv = server();
    const transport = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username: user,
      password: PASSWORD,
      resource,
      timeout: DEADLINE,
      // The agent (or client) announces presence once its handlers are registered.
      initialPresence: false,
    });
    const s = new Session({
      transport,
      access: new AccessPolicy({ rules: iotAccessRules() }),
      ...(clock ? { clock } : {}),
    });
    cleanups.push(() => s.close());
    return s;
  }

  async function agentOn(
    user: string,
    options: { owners: string[]; clock?: Clock; messenger?: boolean },
  ): Promise<{ agent: IotAgent; applied: ControlContext[] }> {
    const s = await session(user, 'device', options.clock);
    const messenger = options.messenger ? new Messenger({ session: s }) : undefined;
    const agent = new IotAgent({
      session: s,
      fields: FIELDS,
      parameters: PARAMS,
      owners: options.owners.map((o) => `${o}@${server().domain}`),
      ...(messenger ? { messenger } : {}),
    });
    const applied: ControlContext[] = [];
    agent.onControl((c) => applied.push(c.context));
    cleanups.push(() => agent.close());
    if (messenger) cleanups.push(() => messenger.close());
    await agent.start(); // starts the messenger before announcing presence
    return { agent, applied };
  }

  async function clientOn(
    user: string,
    messenger = false,
    delayThreshold?: number,
  ): Promise<{ client: IotClient; messenger: Messenger | undefined; session: Session }> {
    const s = await session(user, 'm');
    const m = messenger
      ? new Messenger({ session: s, ...(delayThreshold !== undefined ? { delayThreshold } : {}) })
      : undefined;
    const client = new IotClient({ session: s, timeout: DEADLINE, ...(m ? { messenger: m } : {}) });
    cleanups.push(() => client.close());
    await client.start();
    if (m) {
      cleanups.push(() => m.close());
      await m.start();
    }
    return { client, messenger: m, session: s };
  }

  const jid = (user: string, resource?: string): string =>
    `${user}@${server().domain}${resource ? `/${resource}` : ''}`;

  async function befriend(client: IotClient, agent: IotAgent, agentUser: string, monitorUser: string): Promise<void> {
    await client.befriend(jid(agentUser));
    await waitFor(() => agent.isTrusted(jid(monitorUser, 'm')), { what: 'mutual subscription', timeout: DEADLINE });
    await waitFor(() => client.presenceOf(jid(agentUser)).length > 0, {
      what: "the agent's presence",
      timeout: DEADLINE,
    });
  }

  it('roster trust: a stranger is refused; an owner is approved and answered (readout, control, both dialects)', async () => {
    const [a, m, s] = [await account('agent'), await account('mon'), await account('stranger')];
    const { agent } = await agentOn(a, { owners: [m] });
    const { client: stranger } = await clientOn(s);
    const refused = (await stranger.read(jid(a, 'device')).catch((e: unknown) => e)) as StanzaError;
    expect(refused).toBeInstanceOf(StanzaError);
    expect(refused.condition).toBe('forbidden');

    const { client } = await clientOn(m);
    await befriend(client, agent, a, m);
    const r = await client.read(jid(a));
    expect(r.fields.find((f) => f.name === 'Temperature')).toMatchObject({ value: 21.5, unit: '°C' });
    const legacy = await client.read(jid(a), { dialect: 'legacy' });
    expect(legacy.fields.map((f) => f.name).sort()).toEqual(['Door', 'Temperature']);
    await client.control(jid(a), { SetPoint: 23 });
    expect(agent.parameter('SetPoint')).toBe(23);
    const bad = (await client
      .control(jid(a), { SetPoint: 99 }, { dialect: 'legacy' })
      .catch((e: unknown) => e)) as StanzaError;
    expect(bad.condition).toBe('bad-request');
    expect(bad.application?.attrs['var']).toBe('SetPoint');
    // The stranger is still refused: only the owner's subscription was approved.
    expect(
      ((await stranger.control(jid(a, 'device'), { SetPoint: 6 }).catch((e: unknown) => e)) as StanzaError).condition,
    ).toBe('forbidden');
  });

  it("a queued subscription request is answered after the owner's approval", async () => {
    const [a, m, o] = [await account('agent'), await account('mon'), await account('owner')];
    const { agent } = await agentOn(a, { owners: [o] });
    const { client } = await clientOn(m);
    await client.befriend(jid(a));
    await waitFor(() => agent.pendingRequests().length === 1, { what: 'queued request', timeout: DEADLINE });
    expect(agent.isTrusted(jid(m, 'm'))).toBe(false);
    await agent.approve(jid(m));
    await waitFor(() => agent.isTrusted(jid(m, 'm')), { what: 'approved', timeout: DEADLINE });
    expect((await client.read(jid(a, 'device'), { fields: ['Door'] })).fields[0]?.value).toBe(false);
  });

  it('observe: changedBy, minInterval coalescing and maxInterval heartbeat (agent on a ManualClock)', async () => {
    const [a, m] = [await account('agent'), await account('mon')];
    const clock = new ManualClock(Date.now());
    const { agent } = await agentOn(a, { owners: [m], clock });
    const { client } = await clientOn(m);
    await befriend(client, agent, a, m);
    const events: ObserveEvent[] = [];
    const temp = (i: number): unknown => events[i]?.fields.find((f) => f.name === 'Temperature')?.value;
    await client.observe(jid(a), {
      rules: [{ field: 'Temperature', changedBy: 1 }],
      minInterval: 10_000,
      maxInterval: 60_000,
      immediate: false,
      onEvent: (e) => events.push(e),
    });
    agent.set('Temperature', 22); // 0.5: below the threshold
    agent.set('Temperature', 23); // 1.5: fires at once
    await waitFor(() => events.length === 1, { what: 'first event', timeout: DEADLINE });
    expect(temp(0)).toBe(23);
    clock.advance(1000);
    agent.set('Temperature', 25); // held by minInterval
    agent.set('Temperature', 26);
    clock.advance(8999);
    expect(agent.eventsSent).toBe(1);
    clock.advance(1); // the interval ends: one event with the latest value
    await waitFor(() => events.length === 2, { what: 'coalesced event', timeout: DEADLINE });
    expect(temp(1)).toBe(26);
    clock.advance(60_000); // no change for maxInterval: heartbeat
    await waitFor(() => events.length === 3, { what: 'heartbeat', timeout: DEADLINE });
    expect(temp(2)).toBe(26);
    expect(agent.eventsSent).toBe(3);
  });

  it('an offline agent receives a QoS 2 command exactly once after login, with its delay; last-seen meanwhile', async () => {
    const [a, m] = [await account('agent'), await account('mon')];
    const first = await agentOn(a, { owners: [m], messenger: true });
    // Every attempt carries <delay/> (threshold 0): no need to wait out the default 1 s.
    const { client, messenger } = await clientOn(m, true, 0);
    await befriend(client, first.agent, a, m);
    await first.agent.close();
    await first.agent.session.close();
    await waitFor(() => client.presenceOf(jid(a)).length === 0, { what: 'agent offline', timeout: DEADLINE });

    const last = await client.lastSeen(jid(a));
    expect(last?.seconds).toBeGreaterThanOrEqual(0);

    const sentAt = Date.now();
    const sent = client.sendCommand(jid(a, 'device'), { SetPoint: 19 }, { qos: 2, ttl: '1h', id: `cmd-${a}` });
    sent.catch(() => undefined);
    // The first attempt bounced off the absent agent: the command waits in the outbox.
    await waitFor(() => messenger!.counters.retried >= 1, { what: 'a bounced attempt', timeout: DEADLINE });
    const backAt = Date.now();
    const second = await agentOn(a, { owners: [m], messenger: true });
    await sent;
    await waitFor(() => second.applied.length === 1, { what: 'command applied', timeout: DEADLINE });
    expect(second.agent.parameter('SetPoint')).toBe(19);
    expect(second.applied[0]?.via).toBe('command');
    // The original send time: before the agent came back (the stamp has second precision on some paths).
    expect(second.applied[0]?.delayedFrom?.getTime()).toBeGreaterThanOrEqual(sentAt - 1000);
    expect(second.applied[0]?.delayedFrom?.getTime()).toBeLessThanOrEqual(backAt);
    // A producer retry with the same id is dropped by the receiver: still once.
    await client.sendCommand(jid(a, 'device'), { SetPoint: 19 }, { qos: 2, ttl: '1h', id: `cmd-${a}` });
    expect(second.applied).toHaveLength(1);
  });

  it('a command whose ttl passed while the agent was offline is dead-lettered, never executed late', async () => {
    const [a, m] = [await account('agent'), await account('mon')];
    const first = await agentOn(a, { owners: [m], messenger: true });
    const { client, messenger } = await clientOn(m, true);
    await befriend(client, first.agent, a, m);
    await first.agent.close();
    await first.agent.session.close();
    await waitFor(() => client.presenceOf(jid(a)).length === 0, { what: 'agent offline', timeout: DEADLINE });
    const dead: string[] = [];
    messenger!.onDeadLetter((d) => dead.push(d.reason));
    const sent = client.sendCommand(jid(a, 'device'), { SetPoint: 6 }, { qos: 2, ttl: '1s' });
    sent.catch(() => undefined);
    await waitFor(() => dead.length === 1, { what: 'dead letter', timeout: DEADLINE });
    expect(dead).toEqual(['expired']);
    await expect(sent).rejects.toThrow();
    const second = await agentOn(a, { owners: [m], messenger: true });
    await waitFor(() => client.presenceOf(jid(a)).length > 0, { what: 'agent back', timeout: DEADLINE });
    await client.read(jid(a, 'device')); // a round trip after the agent is back: nothing else is on its way
    expect(second.applied).toHaveLength(0);
    expect(second.agent.parameter('SetPoint')).toBe(20);
  });

  it('subscriptions are restored after a server restart', async () => {
    const [a, m] = [await account('agent'), await account('mon')];
    const { agent } = await agentOn(a, { owners: [m] });
    const { client } = await clientOn(m);
    await befriend(client, agent, a, m);
    const events: ObserveEvent[] = [];
    await client.observe(jid(a), { rules: [{ field: 'Door' }], immediate: false, onEvent: (e) => events.push(e) });
    agent.set('Door', true);
    await waitFor(() => events.length === 1, { what: 'event before restart', timeout: DEADLINE });
    await server().restart();
    await waitFor(() => agent.session.transport.status === 'online' && client.session.transport.status === 'online', {
      what: 'both reconnected',
      timeout: 60_000,
    });
    // The client subscribes again after its reconnect (with the current values at once).
    await waitFor(() => events.length >= 2, { what: 'restored subscription', timeout: DEADLINE });
    const before = events.length;
    agent.set('Door', false);
    await waitFor(() => events.length > before && events.at(-1)?.fields[0]?.value === false, {
      what: 'event after restart',
      timeout: DEADLINE,
    });
    expect(agent.subscriptionCount).toBe(1);
  });
});
