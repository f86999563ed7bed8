import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClosedError, Session, StanzaError, type Logger } from '@xmppbus/core';
import { MemoryPubSubService } from '@xmppbus/pubsub/testing';
import { CreateOrder, OrderCreated } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBus, type Bus, type CreateBusOptions } from './bus.js';
import type { BusConfigInput } from './config.js';
import { BusConfigError } from './config.js';
import { createLogger } from './logger.js';
import type { BusStatus } from './status.js';

let hub: MemoryHub;
let lines: string[];
let logger: Logger;
const open: AsyncDisposable[] = [];

beforeEach(() => {
  hub = memoryHub();
  lines = [];
  logger = createLogger({ level: 'info', format: 'json', write: (l) => lines.push(l) });
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o[Symbol.asyncDispose]();
});

async function bus(address: string, config: BusConfigInput = {}, options: CreateBusOptions = {}): Promise<Bus> {
  const b = await createBus(config, { transport: hub.connect(address), env: {}, logger, ...options });
  open.push(b);
  return b;
}

/** Collects a bus's states until `closed`. */
function record(b: Bus): { states: BusStatus[]; done: Promise<void> } {
  const states: BusStatus[] = [];
  const done = (async () => {
    for await (const s of b.status) states.push(s);
  })();
  return { states, done };
}

describe('units', () => {
  it('are built on first access only; start() builds the rpc client', async () => {
    const b = await bus('orders.example.test');
    expect(b.health().units).toEqual({ rpc: 'absent', client: 'absent', pubsub: 'absent', messenger: 'absent' });
    b.rpc.handle(CreateOrder, ({ qty }) => ({ orderId: 'o-1', total: qty }));
    expect(b.health().units.rpc).toBe('idle');
    expect(b.rpc).toBe(b.rpc); // one instance
    await b.start();
    expect(b.health().units).toEqual({ rpc: 'ready', client: 'ready', pubsub: 'absent', messenger: 'absent' });
    expect(b.session.disco.features ?? []).toBeDefined();
  });

  it('passes session.iqTimeout and session.probeInterval to the session', async () => {
    const b = await bus('orders.example.test', { session: { iqTimeout: 700, probeInterval: 0 } });
    expect([b.session.caller.defaultTimeout, b.session.caller.probeInterval]).toEqual([700, 0]);
  });

  it('starts a unit first used after start(); start() again waits for it', async () => {
    const b = await bus('orders.example.test');
    await b.start();
    const m = b.messenger;
    await b.start();
    expect(m.status).toBe('ready');
  });

  it('refuses pubsub without a configured service, naming the setting', async () => {
    const b = await bus('orders.example.test');
    expect(() => b.pubsub).toThrow(BusConfigError);
    expect(() => b.pubsub).toThrow(/pubsub\.service/);
  });

  it('refuses to build units once closed', async () => {
    const b = await bus('orders.example.test');
    await b.close();
    expect(() => b.messenger).toThrow(ClosedError);
    await expect(b.start()).rejects.toBeInstanceOf(ClosedError);
  });

  it('opens the SQLite store (loaded on demand) when messaging.store is configured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bus-store-'));
    try {
      const b = await bus('orders.example.test', { messaging: { store: { path: 'outbox.db' } } }, { cwd: dir });
      b.messenger.handle(OrderCreated, () => undefined);
      await b.start();
      expect(existsSync(join(dir, 'outbox.db'))).toBe(true);
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lifecycle', () => {
  it('goes idle → starting → ready → draining → closed, drains newest unit first, then closes', async () => {
    const service = new MemoryPubSubService(new Session({ transport: hub.connect('pubsub.example.test') }), {
      admins: ['orders.example.test'],
    });
    open.push(service);
    await service.start();
    const b = await bus('orders.example.test', { pubsub: { service: 'pubsub.example.test' } });
    const { states, done } = record(b);
    const order: string[] = [];
    b.rpc.handle(CreateOrder, ({ qty }) => ({ orderId: 'o', total: qty }));
    void b.messenger;
    void b.pubsub;
    for (const [name, unit] of Object.entries({
      rpc: b.rpc,
      pubsub: b.pubsub,
      messenger: b.messenger,
      client: b.client,
    })) {
      const drain = unit.drain.bind(unit);
      vi.spyOn(unit, 'drain').mockImplementation((o) => {
        order.push(name);
        return drain(o);
      });
    }
    await b.start();
    expect(b.state).toBe('ready');
    await b.drain({ timeout: 1000 });
    expect(order).toEqual(['rpc', 'pubsub', 'messenger', 'client']);
    expect(b.state).toBe('draining');
    await b.close();
    await done;
    expect(states).toEqual(['idle', 'starting', 'ready', 'draining', 'closed']);
    expect(b.session.status).toBe('closed');
    expect(b.session.transport.status).toBe('closed');
    await b.close(); // idempotent
  });

  it('reports reconnecting while the link is down, and closes when the link is gone for good', async () => {
    const b = await bus('orders.example.test');
    const { states, done } = record(b);
    await b.start();
    hub.disconnect('orders.example.test');
    expect(b.state).toBe('reconnecting');
    expect(b.health()).toMatchObject({ ready: false, live: true, connection: { reconnects: 1 } });
    hub.reconnect('orders.example.test');
    expect(b.state).toBe('ready');
    await b.session.transport.close(); // e.g. the secret was revoked: the transport gives up
    await done;
    expect(states).toEqual(['idle', 'starting', 'ready', 'reconnecting', 'ready', 'closed']);
    expect(lines.some((l) => l.includes('closed for good'))).toBe(true);
  });

  it('closes on `await using`', async () => {
    let seen: Bus | undefined;
    {
      await using b = await createBus({}, { transport: hub.connect('orders.example.test'), env: {}, logger });
      await b.start();
      seen = b;
    }
    expect(seen.state).toBe('closed');
  });

  it('lets several readers iterate the status and stop early', async () => {
    const b = await bus('orders.example.test');
    const first: BusStatus[] = [];
    for await (const s of b.status) {
      first.push(s);
      break; // return() unsubscribes
    }
    expect(first).toEqual(['idle']);
    const { states, done } = record(b);
    await b.start();
    await b.close();
    await done;
    expect(states).toEqual(['idle', 'starting', 'ready', 'closed']);
  });
});

describe('health', () => {
  it('reports readiness, connection, rpc calls in hand, the outbox and dead letters', async () => {
    const orders = await bus('orders.example.test');
    const billing = await bus('billing.example.test');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const running = new Promise<void>((resolve) => (entered = resolve));
    orders.rpc.handle(CreateOrder, async ({ qty }) => {
      entered();
      await gate;
      return { orderId: 'o', total: qty };
    });
    await orders.start();
    await billing.start();
    expect(orders.health()).toMatchObject({
      status: 'ready',
      ready: true,
      live: true,
      connection: { address: 'orders.example.test', status: 'online', reconnects: 0 },
      rpc: { running: 0, queued: 0, inFlight: 0 },
      outbox: { size: 0 },
      deadLetters: 0,
    });
    const call = billing.client.call(CreateOrder, 'orders.example.test', { sku: 'a', qty: 2 });
    await running;
    expect(orders.health().rpc).toMatchObject({ running: 1, queued: 0 });
    expect(billing.health().rpc.inFlight).toBe(1);
    release();
    await expect(call).resolves.toEqual({ orderId: 'o', total: 2 });

    // A message for a peer nobody serves waits in the outbox; one refused for good is a dead letter.
    await orders.messenger.start(); // serves QoS, but no handler of OrderCreated
    await billing.messenger.start();
    await billing.messenger.enqueue(OrderCreated, 'nobody.example.test', { orderId: 'o', qty: 1 }, { qos: 1 });
    expect(billing.health().outbox.size).toBe(1);
    await expect(
      billing.messenger.send(OrderCreated, 'orders.example.test', { orderId: 'o', qty: 1 }, { qos: 1, timeout: 2000 }),
    ).rejects.toBeInstanceOf(StanzaError); // no handler there: refused for good, dead-lettered
    expect(billing.health().deadLetters).toBe(1);
    // …and logged once, with the message id, through the bus's logger.
    const [dead] = await billing.messenger.deadLetters.list();
    expect(lines.filter((l) => l.includes(`dead letter ${dead!.id}`))).toHaveLength(1);
  });

  it('counts access denials', async () => {
    const orders = await bus('orders.example.test', { access: { fallback: 'deny' } });
    const billing = await bus('billing.example.test');
    orders.rpc.handle(CreateOrder, ({ qty }) => ({ orderId: 'o', total: qty }));
    await orders.start();
    await billing.start();
    const err = await billing.client
      .call(CreateOrder, 'orders.example.test', { sku: 'a', qty: 1 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('forbidden');
    expect(orders.health().accessDenied).toBe(1);
  });
});

describe('logging', () => {
  it('logs a handler failure once with the ref the caller sees', async () => {
    const orders = await bus('orders.example.test');
    const billing = await bus('billing.example.test');
    orders.rpc.handle(CreateOrder, () => {
      throw new Error('database is down');
    });
    await orders.start();
    await billing.start();
    const err = await billing.client
      .call(CreateOrder, 'orders.example.test', { sku: 'a', qty: 1 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    const ref = /internal error \(ref ([^)]+)\)/.exec((err as StanzaError).text ?? '')?.[1];
    expect(ref).toBeDefined();
    const logged = lines.filter((l) => l.includes(ref!));
    expect(logged).toHaveLength(1);
    const entry = JSON.parse(logged[0]!) as { level: string; msg: string; service: string; err: { message: string } };
    expect(entry).toMatchObject({ level: 'error', err: { message: 'database is down' } });
    expect(entry.msg).toContain(`ref ${ref!}`);
    expect(lines.join('')).not.toContain('database is down"}'); // the cause is logged, not sent
  });

  it('writes warnings to stderr by default, never the secret', async () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const b = await createBus(
        {
          transport: {
            kind: 'component',
            service: 'xmpp://127.0.0.1:1',
            domain: 'orders.example.test',
            password: 'hunter2',
          },
        },
        { transport: hub.connect('orders.example.test'), env: { XMPPBUS_TRANSPORT_DOMIAN: 'x' } },
      );
      open.push(b);
      expect(b.config.transport?.password).toBe('[redacted]');
      b.logger.info('not at the default level');
      b.logger.debug('nor this');
      const out = write.mock.calls.map((c) => String(c[0])).join('');
      expect(out).toContain('unknown environment variable XMPPBUS_TRANSPORT_DOMIAN');
      expect(out).not.toContain('not at the default level');
      expect(out).not.toContain('hunter2');
    } finally {
      write.mockRestore();
    }
  });

  it('takes its level and format from the config', async () => {
    const written: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const b = await createBus(
        { name: 'orders', log: { format: 'text' } },
        { transport: hub.connect('orders.example.test'), env: { XMPPBUS_LOG_LEVEL: 'debug' } },
      );
      open.push(b);
      b.logger.debug('hello', { a: 1 });
      expect(written.at(-1)).toMatch(/^\S+Z DEBUG hello service=orders \{"a":1\}\n$/);
    } finally {
      write.mockRestore();
    }
  });
});

describe('createBus', () => {
  it('needs a transport from config or options', async () => {
    await expect(createBus({}, { env: {} })).rejects.toThrow(/transport is required/);
  });

  it('builds the access policy from the config', async () => {
    const b = await bus('orders.example.test', { access: { allowAll: true } });
    expect(b.session.access.isOpen).toBe(true);
    await expect(createBus({ access: { allowAll: true, rules: [{ from: '*' }] } }, { env: {} })).rejects.toThrow(
      BusConfigError,
    );
  });

  it('refuses client-only options on a component transport before connecting', async () => {
    await expect(
      createBus(
        {
          transport: {
            kind: 'component',
            service: 'xmpp://127.0.0.1:1',
            domain: 'd.test',
            username: 'u',
            password: 'p',
          },
        },
        { env: {} },
      ),
    ).rejects.toThrow(/transport\.username applies to client transports only/);
    await expect(
      createBus(
        {
          transport: {
            kind: 'client',
            service: 'xmpp://127.0.0.1:1',
            endpoints: ['xmpp://127.0.0.1:2'],
            domain: 'd.test',
            username: 'u',
            password: 'p',
          },
        },
        { env: {} },
      ),
    ).rejects.toThrow(/transport\.endpoints applies to component transports only/);
  });
});
