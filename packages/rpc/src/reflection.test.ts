import { Type } from '@sinclair/typebox';
import {
  AccessPolicy,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_RSM,
  NS_SCHEMA,
  ProtocolError,
  Session,
  StanzaError,
  fetchSchemas,
  parseSchemas,
  serialize,
  xml,
  type MethodDescriptor,
} from '@xmppbus/core';
import { ValidationError, encode, method, methodFromDescriptor, validate, type MethodContract } from '@xmppbus/schema';
import { CreateOrder, GetOrder, NS_ORDERS } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, RpcError, RpcServer } from './index.js';

/** Exercises the mapping's corners: attributes, text, wrapped arrays, nullable, enums. */
const Annotate = method({
  ns: 'urn:example:notes:1',
  name: 'annotate',
  request: Type.Object(
    {
      id: Type.String({ xml: { attribute: true } }),
      lines: Type.Array(Type.String({ maxLength: 20 }), { xml: { wrapped: true, name: 'lines' } }),
      note: Type.Union([Type.String(), Type.Null()]),
      level: Type.Optional(Type.Union([Type.Literal('low'), Type.Literal('high')])),
      weight: Type.Number({ minimum: 0 }),
      tags: Type.Optional(Type.Array(Type.Object({ k: Type.String({ xml: { attribute: true } }), v: Type.String() }))),
    },
    { additionalProperties: false },
  ),
  response: Type.Object({ count: Type.Integer() }),
});

let hub: MemoryHub;
let sessions: Session[];
/** Requests that reached a handler. */
let handled = 0;

beforeEach(() => {
  hub = memoryHub();
  sessions = [];
  handled = 0;
});

afterEach(async () => {
  for (const s of sessions) await s.close();
});

function session(address: string, access?: AccessPolicy): Session {
  const s = new Session({ transport: hub.connect(address), ...(access ? { access } : {}) });
  sessions.push(s);
  return s;
}

async function serve(address: string, methods: readonly MethodContract[], access?: AccessPolicy): Promise<RpcServer> {
  const server = new RpcServer({ session: session(address, access) });
  for (const m of methods) {
    server.handle(m, (req: unknown) => {
      handled++;
      if (m === CreateOrder) {
        const r = req as { sku: string; qty: number };
        if (r.sku === 'none') throw new RpcError(CreateOrder, 'outOfStock', { sku: r.sku, available: 0 });
        return { orderId: `o-${r.sku}`, total: r.qty * 2 };
      }
      if (m === Annotate) return { count: (req as { lines: string[] }).lines.length };
      return { orderId: 'x', qty: 1, by: 'me' };
    });
  }
  await server.start();
  return server;
}

async function requester(address = 'cli.test', access?: AccessPolicy): Promise<Session> {
  const s = session(address, access);
  await s.start();
  return s;
}

describe('schema reflection over the memory hub', () => {
  it('describes each method: schemas, flags, declared errors with their default type', async () => {
    await serve('orders.test', [CreateOrder, GetOrder]);
    const cli = await requester();
    const all = await fetchSchemas(cli, 'orders.test');
    expect(all.map((d) => `${d.kind} ${d.name}`)).toEqual(['method create', 'method get']);
    const create = all[0] as MethodDescriptor;
    expect(create).toMatchObject({ ns: NS_ORDERS, responseName: 'create', readOnly: false, idempotent: false });
    expect(create.request).toEqual(JSON.parse(JSON.stringify(CreateOrder.request.schema)));
    expect(create.errors['outOfStock']).toMatchObject({ condition: 'conflict', type: 'cancel' });
    expect(all[1]).toMatchObject({ readOnly: true, idempotent: true });
  });

  it('a contract built from the reflection encodes and validates exactly as the original', async () => {
    await serve('notes.test', [Annotate]);
    const cli = await requester();
    const [d] = await fetchSchemas(cli, 'notes.test', { name: 'annotate' });
    const rebuilt = methodFromDescriptor(d as MethodDescriptor);
    const samples: unknown[] = [
      { id: 'n1', lines: ['a', ' b <&> \r c '], note: null, weight: 1.5 },
      { id: 'n2', lines: [], note: 'x', level: 'high', weight: 0, tags: [{ k: 'a', v: '1' }] },
    ];
    for (const s of samples) {
      const a = serialize(encode(Annotate.request, s as never));
      expect(serialize(encode(rebuilt.request, s as never))).toBe(a);
    }
    const bad: unknown[] = [
      { id: 'n1', lines: ['far too long for twenty'], note: null, weight: 1 },
      { id: 'n1', lines: [], note: null, weight: -1, extra: 1 },
      { lines: [], note: 3, level: 'mid', weight: 'x' },
    ];
    for (const b of bad) {
      const err = (c: MethodContract): unknown => {
        try {
          validate(c.request, b as never);
        } catch (e) {
          return (e as ValidationError).issues;
        }
        return 'valid';
      };
      expect(err(rebuilt)).toEqual(err(Annotate));
      expect(err(rebuilt)).not.toBe('valid');
    }
  });

  it('calls a method with JSON input through a rebuilt contract; invalid input never leaves', async () => {
    const server = await serve('orders.test', [CreateOrder]);
    expect(server.status).toBe('ready');
    const cli = await requester();
    const [d] = await fetchSchemas(cli, 'orders.test', { kind: 'method', ns: NS_ORDERS, name: 'create' });
    const create = methodFromDescriptor(d as MethodDescriptor);
    const client = new RpcClient({ session: cli, timeout: 5000 });
    await client.start();
    const input: unknown = JSON.parse('{"sku":"A1","qty":3}');
    await expect(client.call(create, 'orders.test', input as never)).resolves.toEqual({ orderId: 'o-A1', total: 6 });

    const before = handled;
    const err = await client.call(create, 'orders.test', { sku: 'A1', qty: 0 } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/qty');
    expect(handled).toBe(before);
    expect(server.running).toBe(0);

    const declared = await client
      .call(create, 'orders.test', { sku: 'none', qty: 1 } as never)
      .catch((e: unknown) => e);
    expect(RpcError.is(declared, create, 'outOfStock')).toBe(true);
    expect((declared as RpcError).data).toEqual({ sku: 'none', available: 0 });
    await client.close();
  });

  it('answers forbidden to a sender who may use nothing, and filters by what a sender may use', async () => {
    const access = new AccessPolicy({ rules: [{ from: 'agent@test', to: `${NS_ORDERS}#get` }] });
    await serve('orders.test', [CreateOrder, GetOrder, Annotate], access);
    const stranger = await requester('stranger@test/x');
    const err = await fetchSchemas(stranger, 'orders.test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('forbidden');
    const agent = await requester('agent@test/a');
    expect((await fetchSchemas(agent, 'orders.test')).map((d) => d.name)).toEqual(['get']);
    const peer = await requester('billing.test');
    expect(await fetchSchemas(peer, 'orders.test')).toHaveLength(3);
  });

  it('is advertised in disco#info and linked from disco#items; gone with the last method', async () => {
    const server = await serve('orders.test', [GetOrder]);
    const cli = await requester();
    const info = await cli.caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_INFO })),
    );
    expect(
      info
        .getChild('query')
        ?.getChildren('feature')
        .map((f) => f.attrs['var']),
    ).toContain(NS_SCHEMA);
    const items = await cli.caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
    );
    const nodes = items
      .getChild('query')
      ?.getChildren('item')
      .map((i) => i.attrs['node']);
    expect(nodes).toContain(NS_SCHEMA);
    await server.close();
    const err = await fetchSchemas(cli, 'orders.test').catch((e: unknown) => e);
    expect((err as StanzaError).condition).toBe('service-unavailable');
  });

  it('pages a large answer (XEP-0059) and follows the pages to the end', async () => {
    const many = Array.from({ length: 130 }, (_, i) =>
      method({
        ns: 'urn:example:many:1',
        name: `m${String(i).padStart(3, '0')}`,
        request: Type.Object({ pad: Type.String({ description: 'x'.repeat(800) }) }),
        response: Type.Object({}),
      }),
    );
    await serve('many.test', many);
    const cli = await requester();
    const first = await cli.caller.request(
      xml('iq', { type: 'get', to: 'many.test' }, xml('schemas', { xmlns: NS_SCHEMA })),
    );
    const page = parseSchemas(first.getChild('schemas', NS_SCHEMA)!);
    expect(page.count).toBe(130);
    expect(page.descriptors.length).toBeGreaterThan(0);
    expect(page.descriptors.length).toBeLessThan(130); // bounded by items and by bytes
    const all = await fetchSchemas(cli, 'many.test', { pageSize: 40 });
    expect(all.map((d) => d.name)).toEqual(many.map((m) => m.name));
    const set = first.getChild('schemas', NS_SCHEMA)?.getChild('set', NS_RSM);
    expect(set?.getChildText('count')).toBe('130');
  });

  it('rejects a malformed answer with ProtocolError', () => {
    const bad = xml(
      'schemas',
      { xmlns: NS_SCHEMA },
      xml('method', { ns: 'urn:x', name: 'a' }, xml('request', null, '{')),
    );
    expect(() => parseSchemas(bad)).toThrow(ProtocolError);
  });
});
