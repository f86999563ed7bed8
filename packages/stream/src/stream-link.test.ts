// StreamLink over an in-memory duplex pair: the test plays the server on the other end.
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  AbortError,
  AuthError,
  ClosedError,
  ConfigError,
  ConnectionError,
  PayloadTooLargeError,
  XmlError,
  localName,
  type Element,
} from '@xmppbus/core';
import { StreamLink, parseService } from './stream-link.js';
import { streamConditionOf, streamErrorOf } from './stream-errors.js';
import { duplexPair } from './testing/duplex-pair.js';
import { waitFor } from '@xmppbus/testing';

const CLIENT_HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const SERVER_HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='x.test'>";

/** The server's end: everything the link wrote, and a way to answer. */
class Peer {
  text = '';
  ended = false;
  constructor(readonly socket: Duplex) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (this.text += chunk));
    socket.on('end', () => (this.ended = true));
  }
  say(xmlText: string): void {
    this.socket.write(xmlText);
  }
}

function setup(): { link: StreamLink; peer: Peer; client: Duplex } {
  const [client, server] = duplexPair();
  return { link: StreamLink.over(client), peer: new Peer(server), client };
}

/** A link past the stream header, as negotiation code sees it. */
async function opened(): Promise<{ link: StreamLink; peer: Peer; signal: AbortSignal; client: Duplex }> {
  const { link, peer, client } = setup();
  const signal = new AbortController().signal;
  const header = link.openStream(CLIENT_HEADER, signal);
  peer.say(SERVER_HEADER);
  expect((await header).attrs['id']).toBe('s1');
  return { link, peer, signal, client };
}

/** A link whose socket does not complete writes until `hold.release()` (a peer that stopped reading). */
async function openedHolding(): Promise<{ link: StreamLink; peer: Peer; hold: { release(): void } }> {
  const { link, peer, client: socket } = await opened();
  const write = socket._write.bind(socket);
  const held: (() => void)[] = [];
  socket._write = (chunk, encoding, cb) => held.push(() => write(chunk, encoding, cb));
  return { link, peer, hold: { release: () => held.splice(0).forEach((f) => f()) } };
}

/** A link that counts the writes reaching its socket. */
async function openedCounting(): Promise<{ link: StreamLink; peer: Peer; writes: () => number }> {
  const { link, peer, client: socket } = await opened();
  let n = 0;
  const write = socket.write.bind(socket) as (chunk: unknown) => boolean;
  socket.write = ((chunk: unknown) => {
    n++;
    return write(chunk);
  }) as typeof socket.write;
  return { link, peer, writes: () => n };
}

/** One turn of the event loop: lets bytes written on one end reach the other. */
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** In-process work only: the shared `waitFor`, bounded by event-loop turns, not time. */
function until(cond: () => boolean, what: string): Promise<void> {
  return waitFor(cond, { turns: 10_000, what });
}

describe('parseService', () => {
  it('accepts xmpp://, tcp:// and bare host:port, with a default port and bracketed IPv6', () => {
    expect(parseService('xmpp://127.0.0.1:5347', 1)).toEqual({ host: '127.0.0.1', port: 5347 });
    expect(parseService('tcp://example.org', 5222)).toEqual({ host: 'example.org', port: 5222 });
    expect(parseService(' svc.test:1/ ', 5)).toEqual({ host: 'svc.test', port: 1 });
    expect(parseService('xmpp://[::1]:5222', 1)).toEqual({ host: '::1', port: 5222 });
  });

  it('refuses anything else with ConfigError', () => {
    for (const bad of ['http://x:1', 'x:0', 'x:65536', 'a b:1', '', 'xmpp://x:1/path'])
      expect(() => parseService(bad, 5222), bad).toThrow(ConfigError);
  });
});

describe('StreamLink', () => {
  it('writes the header, resolves with the peer header, then hands out elements in order', async () => {
    const { link, peer, signal } = await opened();
    expect(peer.text).toBe(CLIENT_HEADER);
    // Two elements before anyone asks (buffered), one after.
    peer.say("<a n='1'/><b>text</b>");
    await tick();
    const a = await link.next(signal);
    const b = await link.next(signal);
    const pending = link.next(signal);
    peer.say("<c xmlns='urn:x'/>");
    const c = await pending;
    expect([localName(a), a.attrs['n'], localName(b), b.getText(), localName(c), c.getNS()]).toEqual([
      'a',
      '1',
      'b',
      'text',
      'c',
      'urn:x',
    ]);
    expect(link.alive).toBe(true);
    expect(link.secure).toBe(false);
  });

  it('a stream error rejects the waiting next() with its typed error and kills the link', async () => {
    const { link, peer, signal } = await opened();
    const waiting = link.next(signal);
    peer.say("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    await expect(waiting).rejects.toBeInstanceOf(AuthError);
    expect(link.alive).toBe(false);
    await expect(link.next(signal)).rejects.toBeInstanceOf(AuthError);
    expect(() => link.write('<x/>')).toThrow(ConnectionError);
  });

  it('malformed XML rejects with XmlError', async () => {
    const { link, peer, signal } = await opened();
    const waiting = link.next(signal);
    peer.say('<a></b>');
    await expect(waiting).rejects.toBeInstanceOf(XmlError);
    expect(link.alive).toBe(false);
  });

  it('refused input: sends the <stream:error> with its condition, then closes (issue 9, finding 5)', async () => {
    for (const [input, condition] of [
      ['<!DOCTYPE x>', 'restricted-xml'],
      ['<a>&lol;</a>', 'restricted-xml'],
      ["<a b='1' b='2'/>", 'not-well-formed'],
      [Buffer.from([0x3c, 0x61, 0x3e, 0xc0, 0xaf]), 'not-well-formed'],
      ['<a>' + '<b>'.repeat(70), 'policy-violation'],
    ] as const) {
      const { link, peer, signal } = await opened();
      const downs: Error[] = [];
      link.goOnline(
        () => {},
        (err) => downs.push(err),
      );
      peer.say(input as string);
      await until(() => peer.ended, 'the link ends the stream');
      expect(peer.text).toBe(
        `${CLIENT_HEADER}<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`,
      );
      expect(link.alive).toBe(false);
      expect(downs).toHaveLength(1);
      expect(streamConditionOf(downs[0])).toBe(condition);
      await until(() => peer.socket.destroyed, 'the socket is closed');
      expect(streamConditionOf(await link.next(signal).catch((e: unknown) => e))).toBe(condition);
    }
  });

  it('a peer answering in another content namespace is refused with invalid-namespace', async () => {
    const { link, peer } = setup();
    const header = link.openStream(CLIENT_HEADER, new AbortController().signal);
    peer.say(SERVER_HEADER.replace('jabber:client', 'jabber:component:accept'));
    await expect(header).rejects.toThrow('invalid-namespace');
    await until(() => peer.text.includes('<invalid-namespace'), 'the stream error is sent');
  });

  it("keeps the server's own stream error after a header in another namespace (a component at a c2s port)", async () => {
    const { link, peer } = setup();
    const header = link.openStream(
      CLIENT_HEADER.replace('jabber:client', 'jabber:component:accept'),
      new AbortController().signal,
    );
    // Prosody's c2s port, measured: a jabber:client header, then <host-unknown/> with its text.
    peer.say(
      SERVER_HEADER +
        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>This server does not serve svc-a.localhost</text></stream:error>",
    );
    const err = await header.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(streamErrorOf(err)).toMatchObject({
      condition: 'host-unknown',
      text: 'This server does not serve svc-a.localhost',
    });
    expect((err as Error).message).toContain("answered in content namespace 'jabber:client'");
    expect(() => link.write('<x/>')).toThrow(/not connected: stream error <host-unknown\/>/);
  });

  it('the transport limits apply to the next stream: a stanza over maxStanzaBytes ends it with policy-violation', async () => {
    const { link, peer } = setup();
    link.configure({ maxStanzaBytes: 100 });
    const signal = new AbortController().signal;
    const header = link.openStream(CLIENT_HEADER, signal);
    peer.say(SERVER_HEADER);
    await header;
    const waiting = link.next(signal);
    peer.say(`<message><body>${'x'.repeat(200)}</body></message>`);
    await expect(waiting).rejects.toBeInstanceOf(PayloadTooLargeError);
    await until(() => peer.text.includes('<policy-violation'), 'the stream error is sent');
  });

  it('an abort while waiting rejects with the reason and fails the link', async () => {
    const { link } = await opened();
    const ac = new AbortController();
    const waiting = link.next(ac.signal);
    ac.abort(new AbortError('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(link.alive).toBe(false);
  });

  it('goOnline() dispatches buffered then later elements directly, and reports a drop once', async () => {
    const { link, peer } = await opened();
    peer.say("<message id='1'/>");
    await tick(); // arrives before the switch, so it waits in the link's inbox
    const got: string[] = [];
    const downs: Error[] = [];
    link.goOnline(
      (el: Element) => got.push(el.attrs['id'] as string),
      (err) => downs.push(err),
    );
    expect(got).toEqual(['1']);
    peer.say("<message id='2'/><iq id='3'/>");
    await until(() => got.length === 3, 'two more stanzas dispatched');
    expect(got).toEqual(['1', '2', '3']);

    peer.socket.destroy(); // the server dies
    await until(() => downs.length > 0, 'drop reported');
    expect(downs).toHaveLength(1);
    expect(downs[0]).toBeInstanceOf(ConnectionError);
    expect(link.alive).toBe(false);
    await expect(link.drained()).rejects.toBeInstanceOf(ConnectionError);
  });

  it('goOnline() on a dead link reports the failure at once', async () => {
    const { link, peer } = await opened();
    peer.say('</stream:stream>');
    await until(() => !link.alive, 'link dead after the peer closed the stream');
    const downs: Error[] = [];
    link.goOnline(
      () => {},
      (err) => downs.push(err),
    );
    expect(downs).toHaveLength(1);
    expect(downs[0]!.message).toContain('closed by the server');
  });

  it('write() above the high-water mark returns false and drained() waits for the buffer', async () => {
    const { link, peer, hold } = await openedHolding();
    const big = `<m>${'x'.repeat(20_000)}</m>`;
    expect(link.write(big)).toBe(false); // past the 16 KiB mark: handed over at once, and not taken
    let drained = false;
    const done = link.drained().then(() => (drained = true));
    await tick();
    expect(drained).toBe(false);
    hold.release();
    await done;
    await until(() => peer.text.endsWith('</m>'), 'everything delivered');
    expect(peer.text).toBe(CLIENT_HEADER + big);
    expect(link.write('<small/>')).toBe(true);
    await link.drained();
  });

  it('drained() rejects when the link dies before the buffer drains', async () => {
    const { link, peer } = await openedHolding();
    expect(link.write(`<m>${'x'.repeat(20_000)}</m>`)).toBe(false);
    const drained = link.drained();
    peer.socket.destroy();
    await expect(drained).rejects.toBeInstanceOf(ConnectionError);
  });

  it('writes of one tick leave as one socket write, in order; a lone write leaves in the same tick', async () => {
    const { link, peer, writes } = await openedCounting();
    for (let i = 0; i < 50; i++) link.write(`<m n='${i}'/>`);
    expect(writes()).toBe(0); // joined until the tick ends
    await Promise.resolve().then(() => link.write('<late/>')); // a microtask of the same tick joins too
    await new Promise<void>((r) => process.nextTick(r));
    expect(writes()).toBe(1);
    await until(() => peer.text.endsWith('<late/>'), 'batch delivered');
    expect(peer.text).toBe(CLIENT_HEADER + Array.from({ length: 50 }, (_, i) => `<m n='${i}'/>`).join('') + '<late/>');
    // A lone stanza is not held for a timer: it is written before the next event-loop turn.
    link.write('<lone/>');
    await new Promise<void>((r) => process.nextTick(r));
    expect(writes()).toBe(2);
  });

  it('a tick that writes past the high-water mark hands the text over at once (bounded batches)', async () => {
    const { link, writes } = await openedCounting();
    const stanza = `<m>${'x'.repeat(1000)}</m>`;
    for (let i = 0; i < 40; i++) link.write(stanza); // 40 KB: two flushes at ~16 KiB, the rest at tick end
    expect(writes()).toBe(2);
    await new Promise<void>((r) => process.nextTick(r));
    expect(writes()).toBe(3);
  });

  it('stanzas written before a refusal reach the peer ahead of the <stream:error>', async () => {
    const { link, peer } = await opened();
    link.write('<before/>');
    peer.say('<a>&bogus;</a>'); // restricted-xml: refused
    await until(() => peer.ended, 'the link ends the stream');
    expect(peer.text).toMatch(/^<stream:stream[^>]*><before\/><stream:error>/);
  });

  it('close() flushes what this tick wrote before </stream:stream>', async () => {
    const { link, peer } = await opened();
    link.write('<last/>');
    const closing = link.close(1_000);
    await until(() => peer.ended, 'stream closed');
    expect(peer.text).toBe(`${CLIENT_HEADER}<last/></stream:stream>`);
    peer.socket.end();
    await closing;
  });

  it('close() sends </stream:stream>, waits for the peer to close, and does not report a drop', async () => {
    const { link, peer } = await opened();
    const downs: Error[] = [];
    link.goOnline(
      () => {},
      (err) => downs.push(err),
    );
    peer.socket.on('end', () => {
      peer.say('</stream:stream>');
      peer.socket.end();
    });
    // A grace far beyond the test timeout: close() can only return because the peer answered.
    await link.close(3_600_000);
    expect(peer.text.endsWith('</stream:stream>')).toBe(true);
    expect(peer.ended).toBe(true);
    expect(link.alive).toBe(false);
    expect(downs).toEqual([]);
    expect(() => link.write('<x/>')).toThrow(ConnectionError);
    // The peer's own </stream:stream> was the first failure the link saw.
    await expect(link.next(new AbortController().signal)).rejects.toThrow('stream closed by the server');
  });

  it('close() on a silent peer gives up after the grace period and destroys the socket', async () => {
    const { link, peer } = await opened();
    await link.close(0);
    expect(peer.text.endsWith('</stream:stream>')).toBe(true);
    expect(link.alive).toBe(false);
    await expect(link.next(new AbortController().signal)).rejects.toBeInstanceOf(ClosedError);
    await until(() => peer.socket.destroyed, 'the peer sees the connection go');
  });

  it('connect() with an aborted signal rejects with the reason and opens nothing', async () => {
    const ac = new AbortController();
    ac.abort(new AbortError('no'));
    await expect(StreamLink.connect({ host: '127.0.0.1', port: 1 }, ac.signal)).rejects.toThrow('no');
  });
});
