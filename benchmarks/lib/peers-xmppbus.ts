// xmppbus adapters of the peers benchmark, through a real XMPP server (one component link per
// party, @xmppbus/transport-component with TCP_NODELAY): RpcClient/RpcServer request/reply,
// Messenger one-way at QoS 0/1/2 with SQLite stores on both sides, and pub/sub fan-out from a
// non-persistent node to N subscriber sessions (each its own component link).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Session } from '@xmppbus/core';
import { Messenger, memoryStore, type QosLevel } from '@xmppbus/messaging';
import { PubSub } from '@xmppbus/pubsub';
import { event, method, toXml } from '@xmppbus/schema';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import type { XmppServer } from '@xmppbus/testing';
import { componentLink, rpcPair } from './component-link.js';
import { doneWhen, type Flow, type RequestReply } from './peers-types.js';

const NS = 'urn:bench:peers:1';
const data = Type.Object({ data: Type.String() });
/** The one-way and fan-out payload: `<blob xmlns='urn:bench:peers:1'><data>…</data></blob>`. */
export const Blob = event({ ns: NS, name: 'blob', schema: data });
/** Echo method; its request and response serialize exactly like Blob. */
export const Echo = method({ ns: NS, name: 'blob', request: data, response: data });

/** The filler string that makes Blob's serialized payload `bytes` characters long (ASCII, so bytes). */
export function fillerFor(bytes: number): string {
  const overhead = toXml(Blob, { data: '' }).length;
  return 'x'.repeat(Math.max(0, bytes - overhead));
}

/** Component names the adapters take from, in order; Prosody must declare every one at start. */
export class ComponentNames {
  #next = 0;
  constructor(readonly all: readonly string[]) {}
  static make(count: number): ComponentNames {
    return new ComponentNames(Array.from({ length: count }, (_, i) => `peer${i}.localhost`));
  }
  take(): string {
    const name = this.all[this.#next++];
    if (name === undefined) throw new Error(`out of component names (${this.all.length} declared)`);
    return name;
  }
}

/** Component names each workload's setup takes (fresh names: no route of a closed link is reused). */
export function namesNeeded(workload: string): number {
  // Fan-out: publisher + subscribers, twice (plain and batched variant).
  if (workload.startsWith('fanout')) return 2 * (1 + Number(workload.slice('fanout'.length)));
  // QoS 1/2: sender + receiver, twice (SQLite stores and in-memory stores).
  if (workload === 'qos1' || workload === 'qos2') return 4;
  return 2;
}

async function sessionFor(srv: XmppServer, domain: string): Promise<Session> {
  return new Session({ transport: await componentLink(srv, domain) });
}

export async function xmppbusRequestReply(srv: XmppServer, names: ComponentNames): Promise<RequestReply> {
  const callee = names.take();
  const { client, close } = await rpcPair(
    srv,
    { callee, caller: names.take() },
    { serve: (server) => server.handle(Echo, (req) => req) },
  );
  return {
    call(payload, done) {
      doneWhen(client.call(Echo, callee, { data: payload.data }), done);
    },
    close,
  };
}

/**
 * Messenger sender → receiver at `qos`: durable SQLite stores on both sides (QoS 0 too, as the
 * product runs), or with `store: 'memory'` in-memory stores — the durability of mqtt.js' default
 * in-memory store and of mosquitto between autosaves (lost with the process), for comparison.
 */
export async function xmppbusMessaging(
  srv: XmppServer,
  names: ComponentNames,
  qos: QosLevel,
  store: 'sqlite' | 'memory' = 'sqlite',
): Promise<Flow> {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-peers-'));
  const storeFor = (name: string) => (store === 'memory' ? memoryStore() : sqliteMessageStore(join(dir, name)));
  const to = names.take();
  const receiverSession = await sessionFor(srv, to);
  const senderSession = await sessionFor(srv, names.take());
  const receiver = new Messenger({ session: receiverSession, store: storeFor('receiver.db') });
  const sender = new Messenger({ session: senderSession, store: storeFor('sender.db') });
  const opts = { qos };
  const flow: Flow = {
    receiversPerSend: 1,
    lossy: qos === 0,
    onReceive: () => {},
    send(payload, done) {
      doneWhen(sender.send(Blob, to, { data: payload.data }, opts), done);
    },
    async close() {
      await sender.close();
      await receiver.close();
      await senderSession.close();
      await receiverSession.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  receiver.handle(Blob, () => flow.onReceive());
  await Promise.all([receiver.start(), sender.start()]);
  return flow;
}

let nodes = 0;

/** Event batching of the batched fan-out variant (docs/protocol.md §4): the library's defaults, spelled out. */
const FANOUT_BATCH = { maxEvents: 100, maxInFlight: 4 } as const;

/**
 * Publish (acked by the service) to a non-persistent node with `subscribers` sessions consuming it.
 * With `batched` (the `<server>-batched` variant), events go through `pubsub.batchPublisher`
 * instead (several events per item, opt-in; consumers still see single events): `send` hands the
 * event over at once, and a refused item fails the phase.
 */
export async function xmppbusFanout(
  srv: XmppServer,
  names: ComponentNames,
  subscribers: number,
  batched = false,
): Promise<Flow> {
  const node = `peers-${nodes++}`;
  const pubSession = await sessionFor(srv, names.take());
  const pub = new PubSub({ session: pubSession, service: srv.pubsubService });
  await pub.createNode(node, { persistItems: false });
  let failure: Error | undefined;
  const publisher = batched
    ? pub.batchPublisher(Blob, node, { batch: FANOUT_BATCH, onError: (err) => (failure ??= err) })
    : undefined;
  const subs: { session: Session; pubsub: PubSub }[] = [];
  const flow: Flow = {
    receiversPerSend: subscribers,
    lossy: false,
    onReceive: () => {},
    send(payload, done) {
      if (!publisher) return doneWhen(pub.publish(Blob, node, { data: payload.data }), done);
      if (failure) return done(failure);
      publisher.send({ data: payload.data });
      done();
    },
    async close() {
      await publisher?.close().catch(() => undefined);
      for (const s of subs) {
        await s.pubsub.close();
        await s.session.close();
      }
      await pub.deleteNode(node).catch(() => undefined);
      await pub.close();
      await pubSession.close();
    },
  };
  for (let i = 0; i < subscribers; i++) {
    const session = await sessionFor(srv, names.take());
    const pubsub = new PubSub({ session, service: srv.pubsubService });
    await pubsub.consume(Blob, node, () => flow.onReceive()).start();
    subs.push({ session, pubsub });
  }
  return flow;
}
