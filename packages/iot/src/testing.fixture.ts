/**
 * Unit-test fixture (not shipped: excluded from the build): the few server duties the IoT code
 * relies on, played by an endpoint for the domain on a memory hub — answering `jabber:iq:roster`
 * gets, pushing roster items, and recording the presence subscriptions clients send.
 */
import { AccessPolicy, ManualClock, Session, bareJid, findChild, resultReply, xml, type Element } from '@xmppbus/core';
import { waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { IotAgent } from './agent/iot-agent.js';
import { IotClient } from './client/iot-client.js';
import type { FieldSpec, ParameterSpec, Provisioning, RosterSubscription } from './types.js';

export class FakeServer {
  readonly session: Session;
  readonly domain: string;
  /** account bare JID → (peer bare JID → subscription) */
  readonly rosters = new Map<string, Map<string, RosterSubscription>>();
  /** Full JIDs connected per account (where pushes go). */
  readonly resources = new Map<string, Set<string>>();
  /** Messages sent to bare JIDs (no resource to route to on a memory hub). */
  readonly messages: Element[] = [];
  /** Presence stanzas sent to bare JIDs (subscription traffic), in order. */
  readonly presences: Element[] = [];

  constructor(hub: MemoryHub, domain: string) {
    this.domain = domain;
    this.session = new Session({ transport: hub.connect(domain), access: AccessPolicy.allowAll() });
  }

  async start(): Promise<void> {
    this.session.router.handle('jabber:iq:roster', 'query', (iq) => {
      const account = bareJid(iq.attrs['to'] ?? '');
      const items = [...(this.rosters.get(account) ?? new Map<string, RosterSubscription>())].map(
        ([jid, subscription]) => xml('item', { jid, subscription }),
      );
      const reply = resultReply(iq, xml('query', { xmlns: 'jabber:iq:roster' }, ...items));
      reply.attrs['from'] = account;
      void this.session.send(reply);
    });
    this.session.onMessage((m) => this.messages.push(m));
    this.session.onPresence((p) => {
      this.presences.push(p);
      void this.#subscription(p);
    });
    await this.session.start();
  }

  /** Registers a connected full JID of an account (pushes go there). */
  connected(fullJid: string): void {
    const bare = bareJid(fullJid);
    let set = this.resources.get(bare);
    if (!set) this.resources.set(bare, (set = new Set()));
    set.add(fullJid);
  }

  /** Sets `account`'s roster item for `peer` and pushes it to the account's resources. */
  async setItem(account: string, peer: string, subscription: RosterSubscription): Promise<void> {
    const a = bareJid(account);
    let roster = this.rosters.get(a);
    if (!roster) this.rosters.set(a, (roster = new Map()));
    if (subscription === 'remove') roster.delete(bareJid(peer));
    else roster.set(bareJid(peer), subscription);
    for (const full of this.resources.get(a) ?? []) {
      const push = xml(
        'iq',
        { type: 'set', to: full, from: a, id: `push-${Math.random().toString(36).slice(2)}` },
        xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: bareJid(peer), subscription })),
      );
      await this.session.send(push);
    }
  }

  /** A mutual subscription between two accounts. */
  async friends(a: string, b: string): Promise<void> {
    await this.setItem(a, b, 'both');
    await this.setItem(b, a, 'both');
  }

  /** RFC 6121 §3, simplified: update both rosters, push, forward to the contact's resources. */
  async #subscription(p: Element): Promise<void> {
    const type = p.attrs['type'];
    const from = bareJid(p.attrs['from'] ?? '');
    const to = bareJid(p.attrs['to'] ?? '');
    const get = (a: string, b: string): RosterSubscription => this.rosters.get(a)?.get(b) ?? 'none';
    const has = (s: RosterSubscription, dir: 'to' | 'from'): boolean => s === 'both' || s === dir;
    const make = (to_: boolean, from_: boolean): RosterSubscription =>
      to_ && from_ ? 'both' : to_ ? 'to' : from_ ? 'from' : 'none';
    if (type === 'subscribed') {
      // `from` lets `to` see its presence.
      await this.setItem(from, to, make(has(get(from, to), 'to'), true));
      await this.setItem(to, from, make(true, has(get(to, from), 'from')));
    } else if (type === 'unsubscribed') {
      await this.setItem(from, to, make(has(get(from, to), 'to'), false));
      await this.setItem(to, from, make(false, has(get(to, from), 'from')));
    } else if (type === 'unsubscribe') {
      await this.setItem(from, to, make(false, has(get(from, to), 'from')));
      await this.setItem(to, from, make(has(get(to, from), 'to'), false));
    } else if (type !== 'subscribe') return;
    for (const full of this.resources.get(to) ?? []) await this.session.send(xml('presence', { type, to: full, from }));
  }

  /** Presence of `type` sent to `to` (bare) so far. */
  sent(type: string, to: string): Element[] {
    return this.presences.filter((p) => p.attrs['type'] === type && bareJid(p.attrs['to'] ?? '') === bareJid(to));
  }

  close(): Promise<void> {
    return this.session.close();
  }
}

export const AGENT = 'agent@iot.test/device';
export const MONITOR = 'monitor@iot.test/m';
export const T0 = Date.parse('2026-12-05T00:00:00Z');

const FIELDS: FieldSpec[] = [
  { name: 'Temperature', kind: 'quantity', unit: '°C', decimals: 1, initial: 21.5 },
  { name: 'Door', kind: 'boolean', initial: false },
  { name: 'Mode', kind: 'enum', enumType: 'Mode', values: ['auto', 'manual'], initial: 'auto' },
  { name: 'SetPoint', kind: 'quantity', unit: '°C', decimals: 1, initial: 20 },
];
const PARAMS: ParameterSpec[] = [
  { name: 'SetPoint', kind: 'double', min: 5, max: 30, initial: 20 },
  { name: 'Mode', kind: 'enum', values: ['auto', 'manual'], initial: 'auto' },
  { name: 'Output', kind: 'boolean', initial: false },
];

export interface World {
  hub: MemoryHub;
  clock: ManualClock;
  server: FakeServer;
  agent: IotAgent;
  client: IotClient;
  monitorSession: Session;
  closers: (() => Promise<void>)[];
}

export async function world(
  options: {
    owners?: string[];
    provisioning?: Provisioning;
    subscriptionsPerPeer?: number;
    subscriptionTtl?: number;
    fields?: FieldSpec[];
    pendingRequests?: number;
  } = {},
): Promise<World> {
  const hub = memoryHub();
  const clock = new ManualClock(T0);
  const server = new FakeServer(hub, 'iot.test');
  await server.start();
  const agentSession = new Session({ transport: hub.connect(AGENT), clock });
  server.connected(AGENT);
  const agent = new IotAgent({
    session: agentSession,
    fields: options.fields ?? FIELDS,
    parameters: PARAMS,
    owners: options.owners ?? [],
    provisioning: options.provisioning,
    subscriptionTtl: options.subscriptionTtl,
    limits: {
      subscriptionsPerPeer: options.subscriptionsPerPeer ?? 8,
      pendingRequests: options.pendingRequests ?? 3,
      fieldsPerMessage: 10,
    },
  });
  await agent.start();
  const monitorSession = new Session({ transport: hub.connect(MONITOR), clock });
  server.connected(MONITOR);
  const client = new IotClient({ session: monitorSession });
  await client.start();
  const closers = [
    () => client.close(),
    () => monitorSession.close(),
    () => agent.close(),
    () => agentSession.close(),
    () => server.close(),
  ];
  return { hub, clock, server, agent, client, monitorSession, closers };
}

export async function befriend(w: World): Promise<void> {
  await w.client.befriend(AGENT);
  await waitFor(() => w.agent.isTrusted(MONITOR), { turns: 200, what: 'mutual subscription' });
}

/** One event-loop turn, enough for memory-hub deliveries queued as microtasks to run. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export { ManualClock, findChild };
