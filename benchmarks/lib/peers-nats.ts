// NATS adapters of the peers benchmark: core request/reply, core publish (fire-and-forget),
// core fan-out (each subscriber its own connection), and JetStream publish+ack with a pull
// consumer that acks each message (at-least-once). Clients: @nats-io/transport-node (sets
// TCP_NODELAY itself) and @nats-io/jetstream.
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Broker } from './brokers.js';
import { doneWhen, type Flow, type RequestReply } from './peers-types.js';

let subjects = 0;
const uniqueSubject = (what: string): string => `bench.${what}.${subjects++}`;

const open = (b: Broker): Promise<NatsConnection> =>
  connect({ servers: `${b.host}:${b.port}`, reconnect: false, noEcho: true });

/** `request()` to a responder that echoes the payload. */
export async function natsRequestReply(b: Broker): Promise<RequestReply> {
  const server = await open(b);
  const client = await open(b);
  const subject = uniqueSubject('rpc');
  server.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) msg.respond(msg.data);
    },
  });
  await server.flush();
  const opts = { timeout: 30_000 };
  return {
    call(payload, done) {
      doneWhen(client.request(subject, payload.bytes, opts), done);
    },
    async close() {
      await client.close();
      await server.close();
    },
  };
}

/** Core publish to `subscribers` connections (1 = plain fire-and-forget). */
export async function natsCore(b: Broker, subscribers: number): Promise<Flow> {
  const subject = uniqueSubject('core');
  const pub = await open(b);
  const subs: NatsConnection[] = [];
  const flow: Flow = {
    receiversPerSend: subscribers,
    lossy: true,
    onReceive: () => {},
    send(payload, done) {
      pub.publish(subject, payload.bytes);
      done();
    },
    async close() {
      await pub.close();
      for (const s of subs) await s.close();
    },
  };
  for (let i = 0; i < subscribers; i++) {
    const nc = await open(b);
    nc.subscribe(subject, { callback: () => flow.onReceive() });
    await nc.flush(); // the subscription is registered before the first publish
    subs.push(nc);
  }
  return flow;
}

/** JetStream: file-backed work-queue stream, publish resolves on the stream's ack, consumer acks each message. */
export async function natsJetStream(b: Broker): Promise<Flow> {
  const pubConn = await open(b);
  const subConn = await open(b);
  const name = `BENCH${subjects++}`;
  const subject = `js.${name}`;
  const jsm = await jetstreamManager(pubConn);
  await jsm.streams.add({
    name,
    subjects: [subject],
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue, // acked messages leave the store
  });
  await jsm.consumers.add(name, { durable_name: 'c', ack_policy: AckPolicy.Explicit });
  const js = jetstream(pubConn);
  const consumer = await jetstream(subConn).consumers.get(name, 'c');
  const flow: Flow = {
    receiversPerSend: 1,
    lossy: false,
    onReceive: () => {},
    send(payload, done) {
      doneWhen(js.publish(subject, payload.bytes), done);
    },
    async close() {
      await messages.close();
      await jsm.streams.delete(name).catch(() => undefined);
      await subConn.close();
      await pubConn.close();
    },
  };
  const messages = await consumer.consume({
    max_messages: 1000,
    callback: (m) => {
      m.ack();
      flow.onReceive();
    },
  });
  return flow;
}
