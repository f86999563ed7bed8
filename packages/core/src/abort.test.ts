import { afterEach, describe, expect, it, vi } from 'vitest';
import type { XmppBusError } from '@xmppbus/core';
import { AbortError, TimeoutError, abortReason, deferred, withAbort, ConnectionError } from '@xmppbus/core';

/** An AbortSignal that counts its live 'abort' listeners. */
function countingSignal(): { ac: AbortController; live: () => number } {
  const ac = new AbortController();
  const signal = ac.signal;
  let n = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal['addEventListener']>) => {
    if (args[0] === 'abort') n++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<AbortSignal['removeEventListener']>) => {
    if (args[0] === 'abort') n--;
    remove(...args);
  };
  return { ac, live: () => n };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('withAbort', () => {
  it('returns the same promise when there is nothing to wait on', () => {
    const p = Promise.resolve(1);
    expect(withAbort(p, {})).toBe(p);
  });

  it('resolves with the value and removes the timer and the abort listener', async () => {
    vi.useFakeTimers();
    const { ac, live } = countingSignal();
    const d = deferred<string>();
    const p = withAbort(d.promise, { signal: ac.signal, timeout: 1_000 });
    expect(live()).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    d.resolve('ok');
    await expect(p).resolves.toBe('ok');
    expect(live()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('passes through the rejection of the inner promise and cleans up', async () => {
    vi.useFakeTimers();
    const { ac, live } = countingSignal();
    const d = deferred<string>();
    const p = withAbort(d.promise, { signal: ac.signal, timeout: 1_000 });
    const boom = new ConnectionError('down');
    d.reject(boom);
    await expect(p).rejects.toBe(boom);
    expect(live()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('times out with a TimeoutError naming the operation, then removes the listener', async () => {
    vi.useFakeTimers();
    const { ac, live } = countingSignal();
    const p = withAbort(new Promise<never>(() => undefined), { signal: ac.signal, timeout: 250 }, 'drain');
    const check = expect(p).rejects.toThrow(/drain timed out after 250 ms/);
    vi.advanceTimersByTime(249);
    expect(live()).toBe(1);
    vi.advanceTimersByTime(1);
    await check;
    await expect(p).rejects.toBeInstanceOf(TimeoutError);
    expect(live()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects on abort with the reason, clearing the timer', async () => {
    vi.useFakeTimers();
    const { ac, live } = countingSignal();
    const p = withAbort(new Promise<never>(() => undefined), { signal: ac.signal, timeout: 60_000 });
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(live()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects at once for an already-aborted signal, registering nothing', async () => {
    vi.useFakeTimers();
    const { ac, live } = countingSignal();
    ac.abort(new TimeoutError('caller deadline'));
    const p = withAbort(new Promise<never>(() => undefined), { signal: ac.signal, timeout: 10 });
    await expect(p).rejects.toThrow('caller deadline');
    expect(live()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a late resolve after a timeout is ignored', async () => {
    vi.useFakeTimers();
    const d = deferred<number>();
    const p = withAbort(d.promise, { timeout: 5 });
    vi.advanceTimersByTime(5);
    await expect(p).rejects.toBeInstanceOf(TimeoutError);
    d.resolve(1); // nothing happens, no unhandled rejection
  });
});

describe('abortReason', () => {
  it('maps signal reasons to typed errors', () => {
    const plain = new AbortController();
    plain.abort();
    const r1 = abortReason(plain.signal);
    expect(r1).toBeInstanceOf(AbortError);
    expect((r1 as XmppBusError).code).toBe('ERR_ABORTED');

    const ours = new AbortController();
    const te = new TimeoutError('mine');
    ours.abort(te);
    expect(abortReason(ours.signal)).toBe(te);

    const domTimeout = AbortSignal.timeout(0);
    return new Promise<void>((resolve) => {
      domTimeout.addEventListener('abort', () => {
        const r = abortReason(domTimeout);
        expect(r).toBeInstanceOf(TimeoutError);
        expect((r as TimeoutError).cause).toBe(domTimeout.reason);
        resolve();
      });
    });
  });

  it('keeps a foreign Error reason and wraps a non-Error reason', () => {
    const other = new AbortController();
    const e = new RangeError('x');
    other.abort(e);
    expect(abortReason(other.signal)).toBe(e);

    const str = new AbortController();
    str.abort('because');
    const r = abortReason(str.signal);
    expect(r).toBeInstanceOf(AbortError);
    expect(r.cause).toBe('because');
  });
});

describe('deferred', () => {
  it('settles from outside', async () => {
    const a = deferred<number>();
    a.resolve(3);
    await expect(a.promise).resolves.toBe(3);
    const b = deferred<number>();
    b.reject(new Error('no'));
    await expect(b.promise).rejects.toThrow('no');
  });
});
