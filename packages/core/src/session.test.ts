import { describe, expect, it } from 'vitest';
import {
  AccessPolicy,
  ClosedError,
  ConfigError,
  ConflictError,
  ManualClock,
  Session,
  TimeoutError,
  xml,
  type SessionUnit,
} from '@xmppbus/core';
import { RecordingTransport } from './recording-transport.fixture.js';

function recordingUnit(name: string, log: string[], drain?: () => Promise<void>): SessionUnit {
  return {
    name,
    start: () => {
      log.push(`start ${name}`);
      return Promise.resolve();
    },
    drain: async () => {
      log.push(`drain ${name}`);
      await drain?.();
    },
    close: () => {
      log.push(`close ${name}`);
      return Promise.resolve();
    },
  };
}

describe('Session', () => {
  it('does nothing until start, then waits for the transport and starts units in order', async () => {
    const t = new RecordingTransport();
    const session = new Session({ transport: t });
    const log: string[] = [];
    session.add(recordingUnit('a', log));
    session.add(recordingUnit('b', log));
    // Not attached before start: an inbound IQ is not answered.
    t.set('online');
    t.emit(xml('iq', { type: 'get', id: '1', from: 'peer.test' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    expect(t.sent).toHaveLength(0);
    expect(session.status).toBe('idle');
    t.set('connecting');
    const started = session.start();
    expect(session.status).toBe('starting');
    expect(log).toEqual([]);
    t.set('online');
    await started;
    expect(session.status).toBe('ready');
    expect(log).toEqual(['start a', 'start b']);
    expect(session.start()).toBe(started); // idempotent
  });

  it('dispatches each inbound stanza once: IQs to router/caller, messages and presence to listeners', async () => {
    const t = new RecordingTransport();
    t.set('online');
    const session = new Session({ transport: t });
    await session.start();
    const messages: string[] = [];
    const presences: string[] = [];
    const offMsg = session.onMessage((m) => messages.push(m.attrs['id'] ?? ''));
    session.onPresence((p) => presences.push(p.attrs['from'] ?? ''));
    t.emit(xml('message', { id: 'm1', from: 'a.test' }));
    t.emit(xml('presence', { from: 'b.test' }));
    t.emit(
      xml('iq', { type: 'get', id: 'p1', from: 'c.test', to: 'me.test' }, xml('ping', { xmlns: 'urn:xmpp:ping' })),
    );
    offMsg();
    t.emit(xml('message', { id: 'm2', from: 'a.test' }));
    expect(messages).toEqual(['m1']);
    expect(presences).toEqual(['b.test']);
    expect(t.sent.map((s) => `${s.attrs['type']}:${s.attrs['id']}`)).toEqual(['result:p1']);
  });

  it('shares one router per session: a second handler for the same payload is a ConflictError', async () => {
    const t = new RecordingTransport();
    const session = new Session({ transport: t });
    session.router.handle('urn:x', 'a', () => undefined);
    expect(() => session.router.handle('urn:x', 'a', () => undefined)).toThrow(ConflictError);
    // Two sessions on two transports do not share anything.
    const other = new Session({ transport: new RecordingTransport() });
    expect(() => other.router.handle('urn:x', 'a', () => undefined)).not.toThrow();
  });

  it('refuses a second started session on one transport (it would answer every IQ twice)', async () => {
    const t = new RecordingTransport();
    t.set('online');
    const first = new Session({ transport: t });
    await first.start();
    const second = new Session({ transport: t });
    await expect(second.start()).rejects.toBeInstanceOf(ConflictError);
    expect(second.status).toBe('idle');
    await first.close();
  });

  it('advertises registered features in disco#info and removes them again', async () => {
    const t = new RecordingTransport();
    t.set('online');
    const session = new Session({ transport: t });
    await session.start();
    const off = session.disco.addFeature('urn:example:feature:1');
    const ask = (id: string): string[] => {
      t.emit(
        xml(
          'iq',
          { type: 'get', id, from: 'peer.test', to: 'me.test' },
          xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }),
        ),
      );
      const reply = t.sent.find((s) => s.attrs['id'] === id)!;
      return reply
        .getChild('query')!
        .getChildren('feature')
        .map((f) => f.attrs['var'] ?? '');
    };
    expect(ask('d1')).toContain('urn:example:feature:1');
    off();
    expect(ask('d2')).not.toContain('urn:example:feature:1');
  });

  it('fails pending IQs at once when the link drops', async () => {
    const t = new RecordingTransport();
    t.set('online');
    const session = new Session({ transport: t });
    await session.start();
    const pending = session.caller.request(
      xml('iq', { type: 'get', to: 'peer.test' }, xml('ping', { xmlns: 'urn:xmpp:ping' })),
    );
    const check = expect(pending).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    t.set('reconnecting');
    await check;
    expect(session.caller.pending).toBe(0);
  });

  it('drains units newest first within its bound, and closes them newest first, then the transport', async () => {
    const clock = new ManualClock();
    const t = new RecordingTransport();
    t.set('online');
    const session = new Session({ transport: t, clock });
    const log: string[] = [];
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    session.add(recordingUnit('a', log));
    session.add({
      name: 'b',
      drain: (options) =>
        new Promise<void>((resolve, reject) => {
          log.push('drain b');
          options?.signal?.addEventListener('abort', () => reject(options.signal!.reason as Error), { once: true });
          void stuck.then(resolve);
        }),
      close: () => {
        log.push('close b');
        return Promise.resolve();
      },
    });
    await session.start();
    const drained = session.drain({ timeout: 1_000 });
    const check = expect(drained).rejects.toBeInstanceOf(TimeoutError);
    expect(session.status).toBe('draining');
    clock.advance(1_000);
    await check;
    release();
    await session.close();
    await session.close(); // idempotent
    expect(log).toEqual(['start a', 'drain b', 'close b', 'close a']);
    expect(t.closed).toBe(1);
    expect(session.status).toBe('closed');
    await expect(session.start()).rejects.toBeInstanceOf(ClosedError);
    expect(clock.pending).toBe(0);
  });

  it('is disposable with await using', async () => {
    const t = new RecordingTransport();
    t.set('online');
    {
      await using session = new Session({ transport: t });
      await session.start();
    }
    expect(t.closed).toBe(1);
  });
  it('holds requests and messages while its units start, and lets answers through (a unit may wait for one)', async () => {
    const t = new RecordingTransport();
    t.set('online');
    const session = new Session({ transport: t, access: new AccessPolicy({ rules: [{ from: 'peer.test' }] }) });
    const seen: string[] = [];
    session.onMessage((m) => seen.push(`message ${m.attrs['id']}`));
    session.add({
      name: 'slow',
      start: async () => {
        // The unit asks something of the server before it registers its handler.
        const answer = session.caller.request(
          xml('iq', { type: 'get', to: 'server.test', id: 'q1' }, xml('query', { xmlns: 'urn:test' })),
        );
        // Meanwhile a request and a message for this unit arrive, then the answer.
        t.emit(
          xml('iq', { type: 'set', from: 'peer.test', to: 'me.test', id: 'r1' }, xml('work', { xmlns: 'urn:test' })),
        );
        t.emit(xml('message', { from: 'peer.test', to: 'me.test', id: 'm1' }));
        const id = t.sent.find((s) => s.name === 'iq')?.attrs['id'] ?? '';
        t.emit(xml('iq', { type: 'result', from: 'server.test', to: 'me.test', id }));
        await answer;
        session.router.handle('urn:test', 'work', (iq) => seen.push(`iq ${iq.attrs['id']}`));
      },
    });
    await session.start();
    expect(seen).toEqual(['iq r1', 'message m1']);
    // Nothing was refused while starting.
    expect(t.sent.filter((s) => s.attrs['type'] === 'error')).toEqual([]);
  });
  it('holds at most 16 MiB while starting: a larger request is dispatched (and refused) at once', async () => {
    const t = new RecordingTransport();
    t.set('online');
    const session = new Session({ transport: t, access: new AccessPolicy({ rules: [{ from: 'peer.test' }] }) });
    const seen: string[] = [];
    let refusedDuringStart: string[] = [];
    const work = (id: string, text: string) =>
      xml('iq', { type: 'set', from: 'peer.test', to: 'me.test', id }, xml('work', { xmlns: 'urn:test' }, text));
    session.add({
      name: 'slow',
      start: () => {
        t.emit(work('big', 'x'.repeat(16 * 1024 * 1024 + 1)));
        t.emit(work('small', 'y'));
        refusedDuringStart = t.sent.filter((s) => s.attrs['type'] === 'error').map((s) => s.attrs['id'] ?? '');
        session.router.handle('urn:test', 'work', (iq) => seen.push(iq.attrs['id'] ?? ''));
        return Promise.resolve();
      },
    });
    await session.start();
    expect(refusedDuringStart).toEqual(['big']);
    expect(seen).toEqual(['small']);
  });
  it('refuses a probeInterval that is not a number >= 0', () => {
    for (const probeInterval of [Number.NaN, -1])
      expect(() => new Session({ transport: new RecordingTransport(), probeInterval })).toThrow(ConfigError);
    expect(new Session({ transport: new RecordingTransport(), probeInterval: 0 }).caller.probeInterval).toBe(0);
  });
});
