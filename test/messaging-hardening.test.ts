/**
 * Issue 9 against real Prosody and ejabberd: a hostile user account floods a service with QoS 2
 * `assured` it never delivers and with large QoS 1 envelopes, and tries a contract it may not
 * use, while a legitimate service sends QoS 2 messages. Every legitimate message arrives exactly
 * once; the hostile account gets `resource-constraint` and `forbidden`; the receiver's budgets
 * stay within their limits.
 */
import { Type } from '@sinclair/typebox';
import { AccessPolicy, Session, StanzaError, deferred, parseXml, type Element, type Transport } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { event } from '@xmppbus/schema';
import { describeServers, type XmppServer } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach, expect, it } from 'vitest';
import { Tick } from './fixtures/messaging-contracts.js';

const DEADLINE = 30_000;
const RECEIVER = 'svc-o.localhost';
const Secret = event({ ns: 'urn:test:messaging:secret:1', name: 'secret', schema: Type.Object({ i: Type.Integer() }) });

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function component(srv: XmppServer, domain: string): Promise<Transport> {
  const t = await componentTransport({
    service: srv.componentService(),
    domain,
    password: srv.componentSecret,
    timeout: DEADLINE,
  });
  cleanups.push(() => t.close());
  return t;
}

const LIMITS = {
  queue: { perSenderBytes: 128 * 1024, perSenderCount: 128, totalBytes: 1024 * 1024, totalCount: 512 },
  maxPendingBytesPerSender: 256 * 1024,
  maxPendingPerSender: 64,
};

/** A Tick message padded with an element no handler reads (counted in bytes all the same). */
function padded(i: number, padBytes: number): string {
  return (
    `<message><tick xmlns='${Tick.ns}'><i>${i}</i></tick>` +
    `<pad xmlns='urn:test:pad'>${'p'.repeat(padBytes)}</pad></message>`
  );
}

async function outcome(p: Promise<Element>): Promise<'ok' | string> {
  return p.then(
    () => 'ok',
    (e: unknown) => (e instanceof StanzaError ? `${e.type}/${e.condition}` : String(e)),
  );
}

describeServers('messaging hardening', (server, kind) => {
  it(`[${kind}] a hostile account cannot crowd out a legitimate QoS 2 sender`, async () => {
    const srv = server();
    const user = `hostile${process.pid}x${Date.now() % 100000}`;
    await srv.registerUser(user, 'pw');
    const [tr, tl] = await Promise.all([component(srv, RECEIVER), component(srv, 'svc-n.localhost')]);

    // The receiver lets accounts of the server send Ticks (to exercise the budgets), nothing else.
    const access = new AccessPolicy({ rules: [{ from: '*@localhost', to: `${Tick.ns}#tick` }] });
    const rs = new Session({ transport: tr, access });
    const receiver = new Messenger({ session: rs, receive: LIMITS });
    cleanups.push(() => rs.close());
    const legitSeen: number[] = [];
    const hostileGate = deferred<void>();
    let maxQueue = 0;
    let maxPending = 0;
    const sample = (): void => {
      maxQueue = Math.max(maxQueue, receiver.inboundUsage.queue.bytes);
      maxPending = Math.max(maxPending, receiver.inboundUsage.pending.bytes);
    };
    receiver.handle(Tick, async (v, ctx) => {
      sample();
      if (ctx.from.startsWith('svc-n.localhost')) legitSeen.push(v.i);
      else await hostileGate.promise; // the hostile's QoS 1 envelopes pile up in its own budget
    });
    receiver.handle(Secret, () => undefined);
    await receiver.start();

    const ls = new Session({ transport: tl });
    const legit = new Messenger({ session: ls, attemptTimeout: 5_000, retry: { initialDelay: 50, maxDelay: 500 } });
    cleanups.push(() => ls.close());
    await legit.start();

    const agent = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username: user,
      password: 'pw',
      mechanism: 'PLAIN',
      allowPlainWithoutTls: true,
      timeout: DEADLINE,
    });
    cleanups.push(() => agent.close());
    const hs = new Session({ transport: agent });
    cleanups.push(() => hs.close());
    await hs.start();
    const iq = (id: string, body: string): Element =>
      parseXml(`<iq type='set' to='${RECEIVER}' id='${id}'>${body}</iq>`);

    // The flood: QoS 2 `assured` never delivered, and QoS 1 envelopes of 60 KiB.
    const flood: Promise<string>[] = [];
    for (let i = 0; i < 24; i++) {
      const body = `<assured xmlns='urn:xmpp:qos' msgId='h${i}'>${padded(i, 40 * 1024)}</assured>`;
      flood.push(outcome(hs.caller.request(iq(`a${i}`, body), { timeout: DEADLINE })));
    }
    for (let i = 0; i < 8; i++) {
      const body = `<acknowledged xmlns='urn:xmpp:qos'>${padded(i, 60 * 1024)}</acknowledged>`;
      flood.push(outcome(hs.caller.request(iq(`k${i}`, body), { timeout: DEADLINE })));
    }
    const secret = `<message><secret xmlns='${Secret.ns}'><i>1</i></secret></message>`;
    const forbidden = outcome(
      hs.caller.request(iq('s1', `<acknowledged xmlns='urn:xmpp:qos'>${secret}</acknowledged>`), { timeout: DEADLINE }),
    );

    // Meanwhile the legitimate service sends its QoS 2 messages.
    await Promise.all(Array.from({ length: 40 }, (_, i) => legit.send(Tick, RECEIVER, { i }, { qos: 2 })));
    await legit.flush({ timeout: DEADLINE });
    // Each exactly once (lost 0); order may differ where a budget answered `wait` and it was retried.
    expect([...legitSeen].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(legit.counters).toMatchObject({ deadLettered: 0, queued: 0 });

    expect(await forbidden).toBe('auth/forbidden');
    hostileGate.resolve();
    const results = await Promise.all(flood);
    const assuredResults = results.slice(0, 24);
    const ackResults = results.slice(24);
    expect(assuredResults).toContain('wait/resource-constraint');
    expect(ackResults).toContain('wait/resource-constraint');
    expect(results.every((r) => r === 'ok' || r === 'wait/resource-constraint')).toBe(true);
    expect(rs.access.denied).toBeGreaterThanOrEqual(1);

    sample();
    expect(maxQueue).toBeLessThanOrEqual(LIMITS.queue.totalBytes);
    expect(maxPending).toBeLessThanOrEqual(LIMITS.maxPendingBytesPerSender + 16 * 1024); // hostile + legit in flight
    expect(receiver.inboundUsage.pending.bytes).toBeLessThanOrEqual(LIMITS.maxPendingBytesPerSender);
    expect(receiver.pendingInbound.get('svc-n.localhost')).toBeUndefined();
    await receiver.flush({ timeout: DEADLINE });
    expect(receiver.inboundUsage.queue).toEqual({ bytes: 0, count: 0 });
  });
});
