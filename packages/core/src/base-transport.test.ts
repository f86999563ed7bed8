import { describe, expect, it } from 'vitest';
import {
  AbortError,
  BaseTransport,
  ClosedError,
  ConnectionError,
  QueueFullError,
  TimeoutError,
  deferred,
  waitForStatus,
  xml,
  type BaseTransportOptions,
  type Deferred,
  type Element,
  type TransportStatus,
} from '@xmppbus/core';

/** A transport whose writes complete only when the test says so. */
class TestTransport extends BaseTransport {
  readonly address = 'test.local';
  readonly writes: { stanza: Element; done: Deferred<void> }[] = [];
  closeCalls = 0;

  constructor(options: BaseTransportOptions = {}) {
    super(options);
  }

  protected _write(stanza: Element): Promise<void> {
    const done = deferred<void>();
    this.writes.push({ stanza, done });
    return done.promise;
  }

  protected _close(): Promise<void> {
    this.closeCalls++;
    return Promise.resolve();
  }

  set(status: TransportStatus, err?: Error): void {
    this._setStatus(status, err);
  }

  emit(stanza: Element): void {
    this._emitStanza(stanza);
  }

  /** Completes every write handed to the "socket" so far. */
  flushWrites(): void {
    for (const w of this.writes.splice(0)) w.done.resolve();
  }
}

const msg = (id: string): Element => xml('message', { to: 'x.test', id });

describe('BaseTransport send queue', () => {
  it('writes at once when online; the promise resolves when the write completes', async () => {
    const t = new TestTransport();
    t.set('online');
    let sent = false;
    const p = t.send(msg('1')).then(() => (sent = true));
    expect(t.writes).toHaveLength(1);
    expect(t.pendingSends).toBe(1);
    await Promise.resolve();
    expect(sent).toBe(false); // not before the bytes are handed over
    t.flushWrites();
    await p;
    expect(t.pendingSends).toBe(0);
  });

  it('queues while not online, in order, and flushes when online', async () => {
    const t = new TestTransport();
    expect(t.status).toBe('idle');
    const ps = ['1', '2', '3'].map((id) => t.send(msg(id)));
    expect(t.writes).toHaveLength(0);
    expect(t.pendingSends).toBe(3);
    t.set('online');
    expect(t.writes.map((w) => w.stanza.attrs['id'])).toEqual(['1', '2', '3']);
    t.flushWrites();
    await Promise.all(ps);
    expect(t.pendingSends).toBe(0);
  });

  it('bounds queued + in-flight sends: beyond maxQueue send rejects with QueueFullError', async () => {
    const t = new TestTransport({ maxQueue: 2 });
    t.set('online');
    const a = t.send(msg('a')); // in flight
    t.set('reconnecting');
    const b = t.send(msg('b')); // queued
    const err = await t.send(msg('c')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueFullError);
    expect((err as QueueFullError).code).toBe('ERR_QUEUE_FULL');
    expect((err as QueueFullError).retryable).toBe(true);
    expect(t.pendingSends).toBe(2);
    t.flushWrites();
    await a;
    // Room again once the in-flight write completed.
    const d = t.send(msg('d'));
    t.set('online');
    t.flushWrites();
    await Promise.all([b, d]);
  });

  it('abort while queued removes the entry (frees its slot) and rejects with the reason', async () => {
    const t = new TestTransport({ maxQueue: 1 });
    const ac = new AbortController();
    const p = t.send(msg('1'), { signal: ac.signal });
    expect(t.pendingSends).toBe(1);
    ac.abort(new TimeoutError('gave up'));
    await expect(p).rejects.toBeInstanceOf(TimeoutError);
    expect(t.pendingSends).toBe(0);
    const q = t.send(msg('2')); // the slot is free
    t.set('online');
    expect(t.writes.map((w) => w.stanza.attrs['id'])).toEqual(['2']);
    t.flushWrites();
    await q;
  });

  it('an already-aborted signal rejects without queueing; a signal aborted after the flush has no effect', async () => {
    const t = new TestTransport();
    const early = new AbortController();
    early.abort();
    await expect(t.send(msg('1'), { signal: early.signal })).rejects.toBeInstanceOf(AbortError);
    expect(t.pendingSends).toBe(0);

    const late = new AbortController();
    const p = t.send(msg('2'), { signal: late.signal });
    t.set('online');
    late.abort(); // already handed to the socket: too late to take back
    t.flushWrites();
    await expect(p).resolves.toBeUndefined();
  });

  it('a failing write rejects with ConnectionError and frees its slot', async () => {
    const t = new TestTransport({ maxQueue: 1 });
    t.set('online');
    const p = t.send(msg('1'));
    t.writes.shift()!.done.reject(new Error('EPIPE'));
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toContain('EPIPE');
    expect(t.pendingSends).toBe(0);
  });

  it('drain resolves once every queued and in-flight send has completed; honours timeout', async () => {
    const t = new TestTransport();
    await t.drain(); // nothing pending: at once
    const p1 = t.send(msg('1'));
    let drained = false;
    const d = t.drain().then(() => (drained = true));
    t.set('online');
    const p2 = t.send(msg('2'));
    await Promise.resolve();
    expect(drained).toBe(false);
    t.writes.shift()!.done.resolve();
    await p1;
    expect(drained).toBe(false);
    await expect(t.drain({ timeout: 1 })).rejects.toBeInstanceOf(TimeoutError);
    t.flushWrites();
    await Promise.all([p2, d]);
    expect(drained).toBe(true);
  });

  it('close rejects queued sends with ClosedError, resolves drain, and later sends reject', async () => {
    const t = new TestTransport();
    const ac = new AbortController();
    const queued = [t.send(msg('1')), t.send(msg('2'), { signal: ac.signal })];
    const drained = t.drain();
    const statuses: TransportStatus[] = [];
    t.onStatus((s) => statuses.push(s));
    await t.close();
    for (const q of queued) await expect(q).rejects.toBeInstanceOf(ClosedError);
    await drained;
    ac.abort(); // its listener was removed: nothing happens
    expect(t.status).toBe('closed');
    expect(statuses).toEqual(['closed']);
    await expect(t.send(msg('3'))).rejects.toBeInstanceOf(ClosedError);
    await t.close(); // idempotent
    expect(t.closeCalls).toBe(1);
    t.set('online'); // closed is final
    expect(t.status).toBe('closed');
  });

  it('Symbol.asyncDispose closes', async () => {
    const t = new TestTransport();
    await t[Symbol.asyncDispose]();
    expect(t.status).toBe('closed');
  });
});

describe('BaseTransport listeners', () => {
  it('a throwing stanza listener does not stop the others; the error goes to onListenerError', () => {
    const errors: Error[] = [];
    const t = new TestTransport({ onListenerError: (e) => errors.push(e) });
    const got: string[] = [];
    t.onStanza(() => got.push('first'));
    t.onStanza(() => {
      throw new Error('bad listener');
    });
    t.onStanza(() => {
      throw 'not an error';
    });
    t.onStanza(() => got.push('last'));
    t.emit(msg('1'));
    expect(got).toEqual(['first', 'last']);
    expect(errors.map((e) => e.message)).toEqual(['bad listener', 'not an error']);
    expect(errors[1]).toBeInstanceOf(Error);
  });

  it('a throwing status listener does not stop the others', () => {
    const errors: Error[] = [];
    const t = new TestTransport({ onListenerError: (e) => errors.push(e) });
    const seen: [TransportStatus, string | undefined][] = [];
    t.onStatus(() => {
      throw new Error('oops');
    });
    t.onStatus((s, err) => seen.push([s, err?.message]));
    t.set('connecting');
    t.set('connecting'); // no repeat
    t.set('reconnecting', new ConnectionError('lost'));
    expect(seen).toEqual([
      ['connecting', undefined],
      ['reconnecting', 'lost'],
    ]);
    expect(errors).toHaveLength(2);
  });

  it('unsubscribing stops delivery, also when done from inside a listener', () => {
    const t = new TestTransport();
    const got: string[] = [];
    const offA = t.onStanza(() => {
      got.push('a');
      offA();
    });
    t.onStanza(() => got.push('b'));
    t.emit(msg('1'));
    t.emit(msg('2'));
    expect(got).toEqual(['a', 'b', 'b']);
  });
});

describe('waitForStatus', () => {
  it('resolves at once when already there, else on the change', async () => {
    const t = new TestTransport();
    await waitForStatus(t, 'idle');
    const w = waitForStatus(t, 'online');
    t.set('connecting');
    t.set('online');
    await w;
  });

  it('rejects with ClosedError if the transport closes first, and honours abort', async () => {
    const t = new TestTransport();
    const ac = new AbortController();
    const aborted = waitForStatus(t, 'online', { signal: ac.signal });
    ac.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortError);
    const w = waitForStatus(t, 'online');
    await t.close();
    await expect(w).rejects.toBeInstanceOf(ClosedError);
  });
});
