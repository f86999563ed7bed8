import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session, TimeoutError, xml, type Element, type Transport } from '@xmppbus/core';
import { RecordingTransport } from './recording-transport.fixture.js';

const sessions = new WeakMap<Transport, Session>();
/** One started session per transport under test. */
async function sessionOf(transport: Transport): Promise<Session> {
  let s = sessions.get(transport);
  if (!s) {
    s = new Session({ transport });
    sessions.set(transport, s);
    await s.start();
  }
  return s;
}

/** Records sent stanzas; the test injects replies. */
class EchoTransport extends RecordingTransport {
  reply(to: Element, from = to.attrs['to']): void {
    this.emit(xml('iq', { type: 'result', id: to.attrs['id'], from, to: this.address }));
  }
}

const ping = (to = 'peer.test'): Element => xml('iq', { type: 'get', to }, xml('ping', { xmlns: 'urn:xmpp:ping' }));

function online(): EchoTransport {
  const t = new EchoTransport();
  t.set('online');
  return t;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('IqCaller timeouts', () => {
  it('times out each request at its own deadline, whatever the order they were sent in', async () => {
    vi.useFakeTimers();
    const t = online();
    const caller = (await sessionOf(t)).caller;
    const outcomes: string[] = [];
    const track = (name: string, p: Promise<Element>): Promise<void> =>
      p.then(
        () => void outcomes.push(`${name}:ok`),
        (e: unknown) => void outcomes.push(`${name}:${e instanceof TimeoutError ? 'timeout' : String(e)}`),
      );
    const all = Promise.all([
      track('300', caller.request(ping(), { timeout: 300 })),
      track('100', caller.request(ping(), { timeout: 100 })),
      track('200', caller.request(ping(), { timeout: 200 })),
      track('150-answered', caller.request(ping(), { timeout: 150 })),
    ]);
    expect(caller.pending).toBe(4);
    t.reply(t.sent[3]!);
    await vi.advanceTimersByTimeAsync(99);
    expect(outcomes).toEqual(['150-answered:ok']);
    await vi.advanceTimersByTimeAsync(1);
    expect(outcomes).toEqual(['150-answered:ok', '100:timeout']);
    await vi.advanceTimersByTimeAsync(100);
    expect(outcomes).toEqual(['150-answered:ok', '100:timeout', '200:timeout']);
    await vi.advanceTimersByTimeAsync(100);
    await all;
    expect(outcomes).toEqual(['150-answered:ok', '100:timeout', '200:timeout', '300:timeout']);
    expect(caller.pending).toBe(0);
    // No timer is left behind once nothing waits.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps timing out correctly across many answered requests', async () => {
    vi.useFakeTimers();
    const t = online();
    const caller = (await sessionOf(t)).caller;
    const slow = caller.request(ping(), { timeout: 5_000 });
    const slowCheck = expect(slow).rejects.toBeInstanceOf(TimeoutError);
    for (let i = 0; i < 2_000; i++) {
      const p = caller.request(ping(), { timeout: 1_000 + (i % 7) });
      t.reply(t.sent[t.sent.length - 1]!);
      await p;
    }
    expect(caller.pending).toBe(1);
    const late = caller.request(ping(), { timeout: 10 });
    const lateCheck = expect(late).rejects.toThrow(/within 10 ms/);
    await vi.advanceTimersByTimeAsync(10);
    await lateCheck;
    expect(caller.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(5_000);
    await slowCheck;
    expect(caller.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('matches replies by id and sender; a spoofed sender is ignored', async () => {
    vi.useFakeTimers();
    const t = online();
    const caller = (await sessionOf(t)).caller;
    const p = caller.request(ping('peer.test'), { timeout: 1_000 });
    const check = expect(p).rejects.toBeInstanceOf(TimeoutError);
    t.reply(t.sent[0]!, 'evil.test');
    expect(caller.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    await check;
  });

  it('rejects every pending request when the link drops, leaving no timer', async () => {
    vi.useFakeTimers();
    const t = online();
    const caller = (await sessionOf(t)).caller;
    const a = caller.request(ping(), { timeout: 1_000 });
    const b = caller.request(ping(), { timeout: 2_000 });
    const checks = [expect(a).rejects.toThrow(/connection lost/), expect(b).rejects.toThrow(/connection lost/)];
    t.set('reconnecting');
    await Promise.all(checks);
    expect(caller.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('IqRouter', () => {
  it('routes by namespace and name, falls back to the namespace wildcard, and unregisters', async () => {
    const t = online();
    const router = (await sessionOf(t)).router;
    const seen: string[] = [];
    const offExact = router.handle('urn:x', 'a', (iq) => seen.push(`a:${iq.attrs['id']}`));
    const offAny = router.handle('urn:x', '*', (_iq, payload) => seen.push(`*:${payload.name}`));
    expect(() => router.handle('urn:x', 'a', () => {})).toThrow(/already registered/);
    const call = (id: string, name: string): void =>
      t.emit(xml('iq', { type: 'set', id, from: 'peer.test', to: 'me.test' }, xml(name, { xmlns: 'urn:x' })));
    call('1', 'a');
    call('2', 'b');
    offExact();
    call('3', 'a');
    offAny();
    call('4', 'a');
    expect(seen).toEqual(['a:1', '*:b', '*:a']);
    expect(router.unhandled).toBe(1);
  });
});
