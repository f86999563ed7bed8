/**
 * xmppbus demo: two services talk through a real Prosody that this script starts on free
 * loopback ports (installed by scripts/install-servers.sh), then everything is torn down.
 *
 *   npm run demo
 */
import { Type } from '@sinclair/typebox';
import { IqCaller, IqRouter, resultReply, xml, type Element } from '@xmppbus/core';
import { decode, encode, event, method } from '@xmppbus/schema';
import { startProsody } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';

const Reading = event({
  ns: 'urn:example:telemetry:1',
  name: 'reading',
  schema: Type.Object({
    sensor: Type.String({ xml: { attribute: true } }),
    celsius: Type.Number(),
    at: Type.String(),
  }),
});

const GetStatus = method({
  ns: 'urn:example:telemetry:1',
  name: 'status',
  readOnly: true,
  request: Type.Object({ sensor: Type.String() }),
  response: Type.Object({ sensor: Type.String(), readings: Type.Integer(), lastCelsius: Type.Number() }),
});

const t0 = performance.now();
function log(who: string, what: string): void {
  const ms = (performance.now() - t0).toFixed(1).padStart(7);
  process.stdout.write(`${ms} ms  ${who.padEnd(22)} ${what}\n`);
}

log('demo', 'starting Prosody on 127.0.0.1 (free ports, temp dir)…');
await using server = await startProsody({ components: ['sensors.localhost', 'monitor.localhost'] });
log('demo', `Prosody ${server.pid} ready: components on ${server.componentService()}`);

await using sensors = await componentTransport({
  service: server.componentService(),
  domain: 'sensors.localhost',
  password: () => server.componentSecret,
});
await using monitor = await componentTransport({
  service: server.componentService(),
  domain: 'monitor.localhost',
  password: () => server.componentSecret,
});
log('sensors.localhost', 'connected (XEP-0114)');
log('monitor.localhost', 'connected (XEP-0114)');

// monitor: keeps per-sensor state from schema-validated readings and answers status queries.
const seen = new Map<string, { readings: number; lastCelsius: number }>();
let received = 0;
const allReceived = new Promise<void>((resolve) => {
  monitor.onStanza((stanza: Element) => {
    if (stanza.name !== 'message') return;
    const payload = stanza.getChild(Reading.name, Reading.ns);
    if (!payload) return;
    const r = decode(Reading, payload); // element tree → typed, validated object
    const s = seen.get(r.sensor) ?? { readings: 0, lastCelsius: NaN };
    seen.set(r.sensor, { readings: s.readings + 1, lastCelsius: r.celsius });
    log('monitor.localhost', `← reading ${r.sensor} = ${r.celsius} °C at ${r.at}`);
    if (++received === 3) resolve();
  });
});
IqRouter.for(monitor).handle(GetStatus.ns, GetStatus.name, (iq, payload) => {
  const { sensor } = decode(GetStatus.request, payload);
  const s = seen.get(sensor) ?? { readings: 0, lastCelsius: NaN };
  log('monitor.localhost', `← status query for ${sensor} from ${iq.attrs['from']}`);
  const body = encode(GetStatus.response, { sensor, readings: s.readings, lastCelsius: s.lastCelsius });
  void monitor.send(resultReply(iq, body));
});

// sensors: three readings as messages, then an IQ query.
for (const [sensor, celsius] of [
  ['boiler', 71.5],
  ['boiler', 72.25],
  ['attic', 18],
] as const) {
  const stanza = xml(
    'message',
    { to: 'monitor.localhost', from: 'sensors.localhost' },
    encode(Reading, { sensor, celsius, at: new Date().toISOString() }),
  );
  await sensors.send(stanza);
  log('sensors.localhost', `→ ${stanza.toString()}`);
}
await allReceived;

const reply = await IqCaller.for(sensors).request(
  xml('iq', { type: 'get', to: 'monitor.localhost' }, encode(GetStatus.request, { sensor: 'boiler' })),
  { timeout: 5_000 },
);
const status = decode(GetStatus.response, reply.getChild(GetStatus.name, GetStatus.ns)!);
log('sensors.localhost', `→ status result: ${JSON.stringify(status)}`);

// A payload that breaks the contract never leaves the process.
try {
  encode(Reading, { sensor: 'boiler', celsius: 'hot' as unknown as number, at: 'now' });
} catch (err) {
  log('sensors.localhost', `✗ refused to send: ${(err as Error).message}`);
}

log('demo', 'done; stopping services and Prosody');
