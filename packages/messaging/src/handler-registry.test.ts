import { Type } from '@sinclair/typebox';
import { ConflictError, Session, StanzaError, XmppBusError, localName, parseXml, silentLogger } from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { memoryHub } from '@xmppbus/transport-memory';
import { describe, expect, it } from 'vitest';
import { HandlerRegistry } from './handler-registry.js';
import { memoryStore } from './memory-store.js';
import { resolveOptions } from './options.js';
import { newCounters } from './types.js';

const Note = event({ ns: 'urn:test:notes:1', name: 'note', schema: Type.Object({ n: Type.Integer() }) });

function registry(): HandlerRegistry {
  const session = new Session({ transport: memoryHub().connect('a.test'), logger: silentLogger });
  return new HandlerRegistry({
    session,
    store: memoryStore(),
    settings: resolveOptions({ session }),
    counters: newCounters(),
  });
}

describe('HandlerRegistry', () => {
  it('holds one handler per contract (ConflictError) and finds it by namespace and element', () => {
    const r = registry();
    const off = r.handle(Note, () => undefined);
    expect(() => r.handle(Note, () => undefined)).toThrow(ConflictError);
    const m = parseXml(
      `<message><origin-id xmlns='urn:xmpp:sid:0' id='1'/><note xmlns='urn:test:notes:1'><n>1</n></note></message>`,
    );
    expect(r.find(m)?.reg.contract).toBe(Note);
    off();
    expect(r.find(m)).toBeUndefined();
  });

  it('answers a missing handler by the core policy, marked no-handler', () => {
    const r = registry();
    r.handle(Note, () => undefined);
    const unknownNs = r.missing(parseXml(`<message><x xmlns='urn:other'/></message>`));
    expect([unknownNs.condition, unknownNs.type]).toEqual(['service-unavailable', 'cancel']);
    expect(localName(unknownNs.application!)).toBe('no-handler');
    const unknownEl = r.missing(parseXml(`<message><memo xmlns='urn:test:notes:1'/></message>`));
    expect(unknownEl.condition).toBe('feature-not-implemented');
  });

  it('maps failures by the callee policy: cancel unless retryable; bad payloads are bad-request', async () => {
    const r = registry();
    r.handle(Note, (v) => {
      if (v.n === 1) throw new Error('bug');
      throw new XmppBusError('ERR_SERVICE_UNAVAILABLE', 'db down');
    });
    const m = parseXml(`<message from='b.test'><note xmlns='urn:test:notes:1'><n>1</n></note></message>`);
    const found = r.find(m)!;
    const ctx = r.context(m, 1, 'id');
    const bug = await r.run(found.reg, { n: 1 }, ctx).catch((e: unknown) => e);
    expect(bug).toMatchObject({ condition: 'internal-server-error', type: 'cancel' });
    const busy = await r.run(found.reg, { n: 2 }, ctx).catch((e: unknown) => e);
    expect(busy).toMatchObject({ condition: 'internal-server-error', type: 'wait' });
    const bad = parseXml(`<note xmlns='urn:test:notes:1'><n>x</n></note>`);
    expect(() => r.decode(found.reg, bad)).toThrow(StanzaError);
    expect(ctx.from).toBe('b.test');
    expect(ctx.headers.size).toBe(0);
  });
});
