/**
 * Interop from the document: the hand-written stanzas of docs/protocol.md §7 (the blocks marked
 * `<!-- iot-example: … -->`) are sent as written to an agent, and its answers must equal the
 * document's, element for element (attribute order and whitespace aside).
 */
import { readFileSync } from 'node:fs';
import { parseXml, xml, type Element } from '@xmppbus/core';
import { waitFor } from '@xmppbus/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT, befriend, world, type World } from './testing.fixture.js';
import type { FieldSpec } from './types.js';

const DOC = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

/** The stanzas of one marked example, in order. */
export function example(name: string): Element[] {
  const at = DOC.indexOf(`<!-- iot-example: ${name} -->`);
  if (at < 0) throw new Error(`example ${name} not found in docs/protocol.md`);
  const start = DOC.indexOf('```xml', at) + '```xml'.length;
  const end = DOC.indexOf('```', start);
  const root = parseXml(`<doc>${DOC.slice(start, end)}</doc>`);
  return root.children.filter((c): c is Element => typeof c !== 'string');
}

/** A canonical text: sorted attributes, no whitespace-only text, no routing attributes on the stanza. */
export function canon(el: Element, top = true): string {
  const attrs = Object.entries(el.attrs)
    .filter(([k]) => !(top && ['to', 'from', 'id', 'type'].includes(k)))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => ` ${k}="${String(v)}"`)
    .join('');
  const kids = el.children
    .map((c) => (typeof c === 'string' ? c.trim() : canon(c, false)))
    .filter((c) => c.length > 0)
    .join('');
  return `<${el.name}${attrs}>${kids}</${el.name}>`;
}

const DOC_FIELDS: FieldSpec[] = [
  { name: 'Temperature', kind: 'quantity', unit: '°C', decimals: 1, initial: 21.5 },
  { name: 'Door', kind: 'boolean', initial: false },
  { name: 'Mode', kind: 'enum', enumType: 'Mode', values: ['auto', 'manual'], initial: 'auto' },
];

let w: World;
afterEach(async () => {
  for (const c of w.closers) await c();
});

async function exchange(request: Element, expectMessages: number): Promise<{ result: Element; messages: Element[] }> {
  const messages: Element[] = [];
  const off = w.monitorSession.onMessage((m) => messages.push(m));
  request.attrs['to'] = AGENT;
  delete request.attrs['id'];
  const result = await w.monitorSession.caller.request(request).catch((e: unknown) => {
    const err = e as { toElement?: () => Element };
    return xml('iq', { type: 'error' }, err.toElement?.());
  });
  await waitFor(() => messages.length >= expectMessages, { turns: 100, what: `${expectMessages} messages` });
  off();
  return { result, messages };
}

describe('docs/protocol.md §7 examples, answered as documented', () => {
  it('nf-read: inline resp', async () => {
    w = await world({ owners: ['monitor@iot.test'], fields: DOC_FIELDS });
    await befriend(w);
    const [req, res] = example('nf-read');
    const { result } = await exchange(req!, 0);
    expect(canon(result)).toBe(canon(res!));
  });

  it('legacy-read: accepted, then one fields message', async () => {
    w = await world({ owners: ['monitor@iot.test'], fields: DOC_FIELDS });
    await befriend(w);
    const [req, res, msg] = example('legacy-read');
    const { result, messages } = await exchange(req!, 1);
    expect(canon(result)).toBe(canon(res!));
    expect(canon(messages[0]!)).toBe(
      canon(msg!).replace('</fields>', '</fields><no-store xmlns="urn:xmpp:hints"></no-store>'),
    );
  });

  it('nf-control: resp', async () => {
    w = await world({ owners: ['monitor@iot.test'] });
    await befriend(w);
    const [req, res] = example('nf-control');
    const { result } = await exchange(req!, 0);
    expect(canon(result)).toBe(canon(res!));
    expect(w.agent.parameter('SetPoint')).toBe(22.5);
    expect(w.agent.parameter('Mode')).toBe('manual');
  });

  it('legacy-control-error: bad-request with paramError', async () => {
    w = await world({ owners: ['monitor@iot.test'] });
    await befriend(w);
    const [req, res] = example('legacy-control-error');
    const { result } = await exchange(req!, 0);
    expect(canon(result)).toBe(canon(res!));
  });

  it('nf-subscribe: accepted (sd), then the immediate event', async () => {
    w = await world({ owners: ['monitor@iot.test'], fields: DOC_FIELDS });
    await befriend(w);
    const [req, res, msg] = example('nf-subscribe');
    const { result, messages } = await exchange(req!, 1);
    expect(canon(result)).toBe(canon(res!));
    expect(canon(messages[0]!)).toBe(canon(msg!));
    expect(w.agent.subscriptionCount).toBe(1);
  });

  it('befriend: an owner is approved and asked back', async () => {
    w = await world({ owners: ['monitor@iot.test'] });
    const [ask, subscribed, subscribeBack] = example('befriend');
    ask!.attrs['to'] = 'agent@iot.test';
    await w.monitorSession.send(ask!);
    await waitFor(() => w.server.sent('subscribe', 'monitor@iot.test').length === 1, { turns: 100 });
    expect(canon(w.server.sent('subscribed', 'monitor@iot.test')[0]!)).toBe(canon(subscribed!));
    expect(canon(w.server.sent('subscribe', 'monitor@iot.test')[0]!)).toBe(canon(subscribeBack!));
  });
});
