// Interop: the wire of docs/protocol.md §3 is what xmppbus really sends and accepts.
// 1. A hand-written raw XEP-0114 client sends the doc's request stanzas through the server to an
//    xmppbus handler and gets exactly the doc's reply stanzas back.
// 2. A method served with bare @xmpp/component code written from the doc is called by RpcClient.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import type { Element } from '@xmppbus/core';
import { parseXml } from '@xmppbus/core';
import { RpcClient, RpcError, RpcServer } from '@xmppbus/rpc';
import { ValidationError } from '@xmppbus/schema';
import { describeServers, type XmppServer } from '@xmppbus/testing';
import { afterEach, expect, it } from 'vitest';
import { canonical, docExample } from './fixtures/protocol-doc.js';
import { Components, CreateOrder, NS_ORDERS } from './rpc-fixtures.js';

const CALLER = 'svc-a.localhost';
const SERVICE = 'svc-b.localhost';

/** Doc JIDs → the test's component names. */
function localise(xmlText: string): string {
  return xmlText.replaceAll('billing.example.test', CALLER).replaceAll('orders.example.test', SERVICE);
}

/** A deliberately minimal raw-socket XEP-0114 client: handshake, write text, read one stanza. */
class RawComponent {
  #buf = '';
  #waiter: ((raw: string) => void) | undefined;
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.#buf += d;
      this.#check();
    });
  }

  static async connect(srv: XmppServer, name: string): Promise<RawComponent> {
    const sock = connect({ host: '127.0.0.1', port: srv.componentPort, noDelay: true });
    await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
    sock.write(
      `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${name}'>`,
    );
    let head = '';
    const id = await new Promise<string>((res) => {
      const onData = (d: Buffer): void => {
        head += d.toString('utf8');
        const m = /<stream:stream\b[^>]*?\sid=['"]([^'"]+)['"]/.exec(head);
        if (m) {
          sock.off('data', onData);
          res(m[1]!);
        }
      };
      sock.on('data', onData);
    });
    sock.write(
      `<handshake>${createHash('sha1')
        .update(id + srv.componentSecret)
        .digest('hex')}</handshake>`,
    );
    await new Promise<void>((res) => {
      const onData = (d: Buffer): void => {
        head += d.toString('utf8');
        if (/<handshake\s*\/>|<handshake><\/handshake>/.test(head)) {
          sock.off('data', onData);
          res();
        }
      };
      sock.on('data', onData);
    });
    return new RawComponent(sock);
  }

  #check(): void {
    if (!this.#waiter || this.#buf.trim() === '') return;
    try {
      parseXml(this.#buf); // complete stanza yet?
    } catch {
      return;
    }
    const raw = this.#buf;
    this.#buf = '';
    const w = this.#waiter;
    this.#waiter = undefined;
    w(raw);
  }

  /** Sends raw XML text and resolves with the raw text of the next stanza received. */
  exchange(text: string): Promise<string> {
    const p = new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error('no reply within 10 s')), 10_000);
      this.#waiter = (raw) => {
        clearTimeout(t);
        res(raw);
      };
    });
    this.sock.write(text);
    this.#check();
    return p;
  }

  /** Closes the stream and waits until the server has closed its side (so the name is free again). */
  close(): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(() => this.sock.destroy(), 5000);
      this.sock.once('close', () => {
        clearTimeout(t);
        res();
      });
      this.sock.end('</stream:stream>');
    });
  }
}

interface BareComponent {
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  reconnect: { stop(): void };
  on(event: 'error', fn: (err: Error) => void): void;
  iqCallee: {
    set(
      ns: string,
      name: string,
      handler: (ctx: { element: Element; stanza: Element }) => Element | Promise<Element>,
    ): void;
  };
}
type XmlFn = (name: string, attrs?: Record<string, string> | null, ...children: (Element | string)[]) => Element;
const bare = createRequire(import.meta.url)('@xmpp/component') as {
  component(options: { service: string; domain: string; password: string }): BareComponent;
  xml: XmlFn;
};

describeServers('rpc interop', (server, kind) => {
  const components = new Components(server);
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
    await components.closeAll();
  });

  it(`a raw IQ from the doc gets exactly the doc's replies [${kind}]`, async () => {
    const rpcServer = new RpcServer({ session: await components.session(SERVICE) });
    rpcServer.handle(CreateOrder, ({ sku, qty }) => {
      if (sku === 'B7') throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
      return { orderId: `${sku}-${qty}`, total: qty * 9.5 };
    });
    await rpcServer.start();
    const raw = await RawComponent.connect(server(), CALLER);
    cleanup.push(() => raw.close());
    const request = localise(docExample('rpc-request'));

    const cases: [string, string][] = [
      [request, 'rpc-result'],
      [
        request.replace('<qty>2</qty>', '<qty>0</qty>').replace('q7Lk2mP9xR4tZ1aB', 'q7Lk2mP9xR4tZ1aC'),
        'rpc-bad-request',
      ],
      [
        request.replace('<sku>A1</sku>', '<sku>B7</sku>').replace('q7Lk2mP9xR4tZ1aB', 'q7Lk2mP9xR4tZ1aD'),
        'rpc-declared-error',
      ],
    ];
    for (const [sent, expected] of cases) {
      const reply = await raw.exchange(sent);
      expect(canonical(parseXml(reply)), expected).toBe(canonical(parseXml(localise(docExample(expected)))));
    }
  });

  it(`calls a method served by bare @xmpp/component code written from the doc [${kind}]`, async () => {
    const srv = server();
    const { xml } = bare;
    // Names of its own: on ejabberd a connection of the previous test still closing would share them.
    const SERVICE = 'svc-d.localhost';
    const CALLER = 'svc-c.localhost';
    const c = bare.component({ service: srv.componentService(), domain: SERVICE, password: srv.componentSecret });
    c.on('error', () => {});
    const seen: string[] = [];
    // Written from docs/protocol.md §3 only: read the children by name, ignore trailing <headers/>.
    c.iqCallee.set(NS_ORDERS, 'create', ({ element }) => {
      const sku = element.getChildText('sku') ?? '';
      const qty = Number(element.getChildText('qty'));
      seen.push(element.getChild('headers', 'http://jabber.org/protocol/shim') ? 'headers' : 'none');
      const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
      if (!(qty >= 1)) {
        return xml(
          'error',
          { type: 'modify' },
          xml('bad-request', { xmlns: STANZAS }),
          xml('text', { xmlns: STANZAS }, 'invalid request at /qty: must be >= 1'),
          xml(
            'invalid',
            { xmlns: 'urn:xmppbus:rpc:1', side: 'request' },
            xml('issue', { path: '/qty' }, 'must be >= 1'),
          ),
        );
      }
      if (sku === 'B7') {
        return xml(
          'error',
          { type: 'cancel' },
          xml('conflict', { xmlns: STANZAS }),
          xml('outOfStock', { xmlns: NS_ORDERS }, xml('sku', {}, sku), xml('available', {}, '0')),
        );
      }
      return xml(
        'create',
        { xmlns: NS_ORDERS },
        xml('orderId', {}, `${sku}-${qty}`),
        xml('total', {}, String(qty * 9.5)),
      );
    });
    await c.start();
    cleanup.push(async () => {
      c.reconnect.stop();
      await c.stop();
    });
    const a = await components.session(CALLER);
    const client = new RpcClient({ session: a, validate: false });
    await client.start();
    // With a timeout, so the deadline header rides along and the bare code must ignore it.
    await expect(client.call(CreateOrder, SERVICE, { sku: 'A1', qty: 2 }, { timeout: 5000 })).resolves.toEqual({
      orderId: 'A1-2',
      total: 19,
    });
    expect(seen).toEqual(['headers']);
    const invalid = await client.call(CreateOrder, SERVICE, { sku: 'A1', qty: 0 }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(ValidationError);
    expect((invalid as ValidationError).path).toBe('/qty');
    const declared = await client.call(CreateOrder, SERVICE, { sku: 'B7', qty: 1 }).catch((e: unknown) => e);
    expect(RpcError.is(declared, CreateOrder, 'outOfStock')).toBe(true);
    expect((declared as RpcError<typeof CreateOrder, 'outOfStock'>).data).toEqual({ sku: 'B7', available: 0 });
    expect(a.caller.pending).toBe(0);
  });
});
