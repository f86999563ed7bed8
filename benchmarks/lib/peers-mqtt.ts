// MQTT adapters of the peers benchmark (mosquitto + mqtt.js, MQTT 3.1.1): request/response over
// two QoS 0 topics with a 4-byte correlation id in front of the payload, one-way QoS 0/1/2, and
// QoS 0 fan-out with every subscriber on its own connection. mqtt.js has no TCP_NODELAY option:
// each client's socket gets setNoDelay(true) right after connect (reconnect is off, so the
// socket never changes).
import type { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import type { Broker } from './brokers.js';
import type { Done, Flow, RequestReply } from './peers-types.js';

let topics = 0;
let clients = 0;

async function open(b: Broker): Promise<MqttClient> {
  const client = mqtt.connect({
    host: b.host,
    port: b.port,
    protocolVersion: 4,
    clientId: `bench-${process.pid}-${clients++}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    keepalive: 0,
  });
  (client.stream as Socket).setNoDelay(true);
  await new Promise<void>((res, rej) => {
    client.once('connect', () => res());
    client.once('error', rej);
  });
  client.on('error', () => {}); // surfaces as a stalled phase (timeout) with the cause in the log
  return client;
}

const ack = (done: Done) => (err?: Error) => done(err ?? undefined);

/** Request on one topic, reply on another; the responder echoes the message (id included). */
export async function mqttRequestReply(b: Broker): Promise<RequestReply> {
  const n = topics++;
  const reqTopic = `bench/rpc/${n}/req`;
  const repTopic = `bench/rpc/${n}/rep`;
  const server = await open(b);
  const client = await open(b);
  await server.subscribeAsync(reqTopic, { qos: 0 });
  server.on('message', (_t, msg) => server.publish(repTopic, msg, { qos: 0 }));
  await client.subscribeAsync(repTopic, { qos: 0 });
  const pending = new Map<number, Done>();
  client.on('message', (_t, msg) => {
    const id = msg.readUInt32BE(0);
    const done = pending.get(id);
    if (done) {
      pending.delete(id);
      done();
    }
  });
  let next = 0;
  return {
    call(payload, done) {
      const id = next++ >>> 0;
      // A fresh buffer per call: mqtt.js may still hold the previous one in its write queue.
      const msg = Buffer.allocUnsafe(payload.bytes.length);
      payload.bytes.copy(msg);
      msg.writeUInt32BE(id, 0);
      pending.set(id, done);
      client.publish(reqTopic, msg, { qos: 0 });
    },
    async close() {
      await client.endAsync();
      await server.endAsync();
    },
  };
}

/** One-way at `qos` to one subscriber, or QoS 0 fan-out to `subscribers` connections. */
export async function mqttFlow(b: Broker, qos: 0 | 1 | 2, subscribers = 1): Promise<Flow> {
  const topic = `bench/flow/${topics++}`;
  const pub = await open(b);
  const subs: MqttClient[] = [];
  const opts = { qos };
  const flow: Flow = {
    receiversPerSend: subscribers,
    lossy: qos === 0,
    onReceive: () => {},
    // The callback fires when written (QoS 0), on PUBACK (QoS 1) or on PUBCOMP (QoS 2).
    send(payload, done) {
      pub.publish(topic, payload.bytes, opts, ack(done));
    },
    async close() {
      await pub.endAsync();
      for (const s of subs) await s.endAsync();
    },
  };
  for (let i = 0; i < subscribers; i++) {
    const s = await open(b);
    await s.subscribeAsync(topic, { qos });
    s.on('message', () => flow.onReceive());
    subs.push(s);
  }
  return flow;
}
