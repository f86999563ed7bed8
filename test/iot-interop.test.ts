// Interop from the document: the hand-written stanzas of docs/protocol.md §7, sent as written
// over a plain c2s connection (no xmppbus session on that side), reach an IotAgent through
// Prosody and ejabberd and are answered as documented — the befriend exchange included.
import { readFileSync } from 'node:fs';
import { AccessPolicy, ManualClock, Session, parseXml, type Element, type Transport } from '@xmppbus/core';
import { IotAgent, iotAccessRules, type FieldSpec } from '@xmppbus/iot';
import { describeServers, waitFor } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { afterEach, expect, it } from 'vitest';

const PASSWORD = 'secret';
const DEADLINE = 30_000;
const T0 = Date.parse('2026-12-05T00:00:00Z'); // the documents' timestamps
const DOC = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');
const DOC_FIELDS: FieldSpec[] = [
  { name: 'Temperature', kind: 'quantity', unit: '°C', decimals: 1, initial: 21.5 },
  { name: 'Door', kind: 'boolean', initial: false },
  { name: 'Mode', kind: 'enum', enumType: 'Mode', values: ['auto', 'manual'], initial: 'auto' },
];

function example(name: string): Element[] {
  const at = DOC.indexOf(`<!-- iot-example: ${name} -->`);
  if (at < 0) throw new Error(`example ${name} not found`);
  const start = DOC.indexOf('```xml', at) + 6;
  const root = parseXml(`<doc>${DOC.slice(start, DOC.indexOf('```', start))}</doc>`);
  return root.children.filter((c): c is Element => typeof c !== 'string');
}

/** The IoT payload of a stanza, canonical (sorted attributes, no whitespace text). */
function payload(stanza: Element): string {
  const p = stanza.children.find(
    (c): c is Element => typeof c !== 'string' && c.name !== 'no-store' && c.name !== 'delay',
  );
  return p ? canon(p) : '';
}
function canon(el: Element): string {
  const attrs = Object.entries(el.attrs)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => ` ${k}="${String(v)}"`)
    .join('');
  const kids = el.children.map((c) => (typeof c === 'string' ? c.trim() : canon(c))).join('');
  return `<${el.name}${attrs}>${kids}</${el.name}>`;
}

let seq = 0;

describeServers('iot interop: documented stanzas over a plain connection', (server, kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('befriend, then readout, control and subscribe in both dialects, answered as documented', async () => {
    const srv = server();
    const a = `doca${++seq}${kind[0]}`;
    const r = `docr${seq}${kind[0]}`;
    await srv.registerUser(a, PASSWORD);
    await srv.registerUser(r, PASSWORD);
    const agentJid = `${a}@${srv.domain}/device`;
    const rawJid = `${r}@${srv.domain}/raw`;

    const agentTransport = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username: a,
      password: PASSWORD,
      resource: 'device',
    });
    const session = new Session({
      transport: agentTransport,
      clock: new ManualClock(T0),
      access: new AccessPolicy({ rules: iotAccessRules() }),
    });
    cleanups.push(() => session.close());
    const agent = new IotAgent({
      session,
      fields: DOC_FIELDS,
      parameters: [
        { name: 'SetPoint', kind: 'double', min: 5, max: 30, initial: 20 },
        { name: 'Mode', kind: 'enum', values: ['auto', 'manual'], initial: 'auto' },
      ],
      owners: [`${r}@${srv.domain}`],
    });
    cleanups.push(() => agent.close());
    await agent.start();

    // The plain side: a bare c2s transport and the raw stanzas.
    const raw: Transport = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username: r,
      password: PASSWORD,
      resource: 'raw',
    });
    cleanups.push(() => raw.close());
    const inbox: Element[] = [];
    raw.onStanza((s) => inbox.push(s));
    const send = (el: Element, id?: string): Promise<void> => {
      if (el.name !== 'presence') el.attrs['to'] = agentJid;
      else el.attrs['to'] = `${a}@${srv.domain}`;
      if (id !== undefined) el.attrs['id'] = id;
      return raw.send(el);
    };
    const reply = async (id: string): Promise<Element> => {
      await waitFor(() => inbox.some((s) => s.name === 'iq' && s.attrs['id'] === id), {
        what: `reply ${id}`,
        timeout: DEADLINE,
      });
      return inbox.find((s) => s.name === 'iq' && s.attrs['id'] === id)!;
    };
    const messages = (): Element[] => inbox.filter((s) => s.name === 'message' && s.attrs['from'] === agentJid);

    // Befriend (§7.5): subscribe; the agent approves its owner and asks back; we approve.
    const [ask, , , approve] = example('befriend');
    await send(ask!);
    await waitFor(() => inbox.some((s) => s.name === 'presence' && s.attrs['type'] === 'subscribe'), {
      what: 'subscribe back',
      timeout: DEADLINE,
    });
    await send(approve!);
    await waitFor(() => agent.isTrusted(rawJid), { what: 'mutual subscription', timeout: DEADLINE });

    // Readout, deployed dialect: inline resp.
    const [nfReq, nfRes] = example('nf-read');
    await send(nfReq!, 'r1');
    expect(payload(await reply('r1'))).toBe(payload(nfRes!));

    // Readout, legacy: accepted, then one fields message.
    const [lReq, lRes, lMsg] = example('legacy-read');
    await send(lReq!, 'S0001');
    expect(payload(await reply('S0001'))).toBe(payload(lRes!));
    await waitFor(() => messages().length === 1, { what: 'fields message', timeout: DEADLINE });
    expect(payload(messages()[0]!)).toBe(payload(lMsg!));

    // Control, deployed: resp; legacy error: bad-request + paramError.
    const [cReq, cRes] = example('nf-control');
    await send(cReq!, 'c1');
    expect(payload(await reply('c1'))).toBe(payload(cRes!));
    expect(agent.parameter('SetPoint')).toBe(22.5);
    const [eReq, eRes] = example('legacy-control-error');
    await send(eReq!, 'e2');
    const err = await reply('e2');
    expect(err.attrs['type']).toBe('error');
    expect(payload(err)).toBe(payload(eRes!));

    // Subscribe (deployed): accepted under the sensor-data namespace, then the immediate event.
    const [sReq, sRes, sMsg] = example('nf-subscribe');
    await send(sReq!, 's1');
    expect(payload(await reply('s1'))).toBe(payload(sRes!));
    await waitFor(() => messages().length === 2, { what: 'event', timeout: DEADLINE });
    expect(payload(messages()[1]!)).toBe(payload(sMsg!));
  });
});
