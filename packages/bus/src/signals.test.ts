import type { Logger } from '@xmppbus/core';
import { OrderCreated } from '@xmppbus/testing';
import { memoryHub } from '@xmppbus/transport-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from './bus.js';
import { createLogger } from './logger.js';
import { handleSignals } from './signals.js';

const removers: (() => void)[] = [];
afterEach(() => {
  for (const r of removers.splice(0)) r();
});

const quiet: Logger = createLogger({ level: 'silent' });

describe('handleSignals', () => {
  it('drains then closes the bus on the signal, once, and removes its listeners', async () => {
    const hub = memoryHub();
    const bus = await createBus({}, { transport: hub.connect('orders.example.test'), env: {}, logger: quiet });
    await bus.start();
    const before = process.listenerCount('SIGUSR2');
    let closed!: (signal: string) => void;
    const done = new Promise<string>((resolve) => (closed = resolve));
    const states: string[] = [];
    bus.onStatus((s) => states.push(s));
    removers.push(handleSignals(bus, { signals: ['SIGUSR2'], drainTimeout: 1000, onClosed: closed }));
    expect(process.listenerCount('SIGUSR2')).toBe(before + 1);
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(process.listenerCount('SIGUSR2')).toBe(before); // removed at the first signal
    await expect(done).resolves.toBe('SIGUSR2');
    expect(states).toEqual(['draining', 'closed']);
  });

  it('is off until called; handles SIGTERM and SIGINT by default; the remover uninstalls', async () => {
    const hub = memoryHub();
    const bus = await createBus({}, { transport: hub.connect('orders.example.test'), env: {}, logger: quiet });
    const term = process.listenerCount('SIGTERM');
    const int = process.listenerCount('SIGINT');
    const remove = handleSignals(bus);
    removers.push(remove);
    expect(process.listenerCount('SIGTERM')).toBe(term + 1);
    expect(process.listenerCount('SIGINT')).toBe(int + 1);
    remove();
    remove(); // idempotent
    expect(process.listenerCount('SIGTERM')).toBe(term);
    expect(process.listenerCount('SIGINT')).toBe(int);
    await bus.close();
  });

  it('closes even when the drain does not finish in time', async () => {
    const hub = memoryHub();
    const lines: string[] = [];
    const bus = await createBus(
      {},
      {
        transport: hub.connect('orders.example.test'),
        env: {},
        logger: createLogger({ level: 'warn', format: 'json', write: (l) => lines.push(l) }),
      },
    );
    await bus.start();
    // A message for a peer that never answers keeps the outbox busy past the drain bound.
    await bus.messenger.start();
    await bus.messenger.enqueue(OrderCreated, 'nobody.example.test', { orderId: 'o', qty: 1 }, { qos: 1 });
    let closed!: () => void;
    const done = new Promise<void>((resolve) => (closed = resolve));
    removers.push(handleSignals(bus, { signals: ['SIGUSR2'], drainTimeout: 20, onClosed: () => closed() }));
    process.emit('SIGUSR2', 'SIGUSR2');
    await done;
    expect(bus.state).toBe('closed');
    expect(lines.some((l) => l.includes('did not finish; closing anyway'))).toBe(true);
  });
});
