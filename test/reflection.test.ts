// Schema reflection (docs/protocol.md §6) through real Prosody and ejabberd: a caller without the
// service's TypeScript contract fetches its schemas, builds the contract, calls with JSON input.
import {
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_SCHEMA,
  Session,
  StanzaError,
  fetchSchemas,
  parseSchemas,
  parseXml,
  xml,
  type Element,
  type MethodDescriptor,
} from '@xmppbus/core';
import { RpcClient, RpcError, RpcServer } from '@xmppbus/rpc';
import { ValidationError, methodFromDescriptor } from '@xmppbus/schema';
import { describeServers, type XmppServer } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { afterEach, expect, it } from 'vitest';
import { PROTOCOL_DOC, canonical as canonicalWith, docExample } from './fixtures/protocol-doc.js';
import { Components, CreateOrder, GetOrder, NS_ORDERS } from './rpc-fixtures.js';

let userSeq = 0;

/** The stream's namespace (component or client) and xml:lang are not significant. */
const canonical = (el: Element): string =>
  canonicalWith(el, { streamNs: ['jabber:component:accept', 'jabber:client'] });

describeServers('schema reflection', (server, kind) => {
  const components = new Components(server);
  const extra: Session[] = [];
  afterEach(async () => {
    for (const s of extra.splice(0)) await s.close();
    await components.closeAll();
  });

  async function orders(): Promise<{ handled: () => number }> {
    const b = await components.session('svc-b.localhost');
    const rpc = new RpcServer({ session: b });
    let n = 0;
    rpc.handle(CreateOrder, ({ sku, qty }) => {
      n++;
      if (sku === 'none') throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
      return { orderId: `o-${sku}`, total: qty * 2 };
    });
    rpc.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'svc-b' }));
    await rpc.start();
    return { handled: () => n };
  }

  async function stranger(srv: XmppServer): Promise<Session> {
    const username = `refl${++userSeq}x${process.pid}`;
    await srv.registerUser(username, 'pw-refl');
    const t = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username,
      password: 'pw-refl',
      mechanism: 'PLAIN',
      allowPlainWithoutTls: true,
    });
    const s = new Session({ transport: t });
    extra.push(s);
    await s.start();
    return s;
  }

  it(`[${kind}] reflects the methods, builds a contract, calls with JSON input`, async () => {
    const svc = await orders();
    const a = await components.session('svc-a.localhost');
    const items = await a.caller.request(
      xml('iq', { type: 'get', to: 'svc-b.localhost' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
    );
    expect(
      items
        .getChild('query')
        ?.getChildren('item')
        .map((i) => i.attrs['node']),
    ).toContain(NS_SCHEMA);
    const info = await a.caller.request(
      xml('iq', { type: 'get', to: 'svc-b.localhost' }, xml('query', { xmlns: NS_DISCO_INFO })),
    );
    expect(
      info
        .getChild('query')
        ?.getChildren('feature')
        .map((f) => f.attrs['var']),
    ).toContain(NS_SCHEMA);

    const all = await fetchSchemas(a, 'svc-b.localhost', { timeout: 10_000 });
    expect(all.map((d) => `${d.kind} {${d.ns}}${d.name}`)).toEqual([
      `method {${NS_ORDERS}}create`,
      `method {${NS_ORDERS}}get`,
    ]);
    const create = methodFromDescriptor(all[0] as MethodDescriptor);
    const client = new RpcClient({ session: a, timeout: 10_000 });
    await client.start();
    const input: unknown = JSON.parse('{"sku":"A1","qty":4}');
    await expect(client.call(create, 'svc-b.localhost', input as never)).resolves.toEqual({
      orderId: 'o-A1',
      total: 8,
    });
    expect(svc.handled()).toBe(1);

    // Invalid JSON input is refused locally: the service never sees it.
    const invalid = await client
      .call(create, 'svc-b.localhost', JSON.parse('{"sku":"A1","qty":0}') as never)
      .catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(ValidationError);
    expect((invalid as ValidationError).path).toBe('/qty');
    // Declared errors come back typed against the rebuilt contract.
    const declared = await client
      .call(create, 'svc-b.localhost', { sku: 'none', qty: 1 } as never)
      .catch((e: unknown) => e);
    expect(RpcError.is(declared, create, 'outOfStock')).toBe(true);
    expect(svc.handled()).toBe(2);
    await client.close();
  });

  it(`[${kind}] answers forbidden to a c2s stranger, and hides the disco link from it`, async () => {
    await orders();
    const s = await stranger(server());
    const err = await fetchSchemas(s, 'svc-b.localhost', { timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('forbidden');
    const items = await s.caller.request(
      xml('iq', { type: 'get', to: 'svc-b.localhost' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
      { timeout: 10_000 },
    );
    expect(items.getChild('query')?.getChildren('item') ?? []).toEqual([]);
  });

  it(`[${kind}] the doc's §6 request gets exactly the doc's result; a stranger exactly the doc's forbidden`, async () => {
    await orders();
    const a = await components.session('svc-a.localhost');
    const localise = (text: string, stranger = 'stranger@example.test/cli'): string =>
      text
        .replaceAll('billing.example.test', 'svc-a.localhost')
        .replaceAll('orders.example.test', 'svc-b.localhost')
        .replaceAll('stranger@example.test/cli', stranger);
    const request = parseXml(localise(docExample('schema-request')));
    const result = await a.caller.request(request, { timeout: 10_000 });
    expect(canonical(result)).toBe(canonical(parseXml(localise(docExample('schema-result')))));

    const s = await stranger(server());
    const asked = parseXml(localise(docExample('schema-request')).replace("from='svc-a.localhost'", ''));
    const err = await s.caller.request(asked, { timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    const wire = (err as StanzaError).toElement();
    const expected = parseXml(localise(docExample('schema-forbidden'), s.address)).getChild('error')!;
    expect(canonical(wire)).toBe(canonical(expected));

    // The doc's event and message elements read as the client reads them.
    const snippet = /```xml\n(<event [\s\S]*?)```/.exec(PROTOCOL_DOC)![1]!;
    const { descriptors } = parseSchemas(parseXml(`<schemas xmlns='urn:xmppbus:schema:1'>${snippet}</schemas>`));
    expect(descriptors.map((d) => `${d.kind} ${d.name}`)).toEqual(['event created', 'message tick']);
  });
});
