import { createHash } from 'node:crypto';
import { connect } from 'node:net';

import type { XmppServer } from './types.js';

const NS_STREAM = 'http://etherx.jabber.org/streams';
let probes = 0;

/**
 * Waits until no component name of `server` is still routed to a connection that is going
 * away. ejabberd unregisters a closed component's route a moment after the socket closes and,
 * meanwhile, spreads stanzas between it and a new connection under the same name — so a test
 * that reconnects a name the previous test just closed can lose its first stanzas. Each name is
 * pinged until it answers (a result from a live component, or an error because nothing is
 * connected); a silent name is a closing connection and is asked again. Best effort: returns
 * after `timeout` ms whatever the state (ejabberd only accepts the probe's arbitrary name).
 */
export async function waitForSettledRoutes(server: XmppServer, timeout = 3_000): Promise<void> {
  const names = [...server.components];
  // A fresh name per probe, so the probe never meets a closing connection of its own name.
  const PROBE_NAME = `harness-route-probe-${process.pid}-${++probes}.localhost`;
  if (names.length === 0) return;
  const sock = connect({ host: server.host, port: server.componentPort, noDelay: true });
  sock.setEncoding('utf8');
  let buf = '';
  const waiters: ((chunk: string) => void)[] = [];
  sock.on('data', (chunk: string) => {
    buf += chunk;
    for (const w of waiters) w(chunk);
  });
  sock.on('error', () => undefined);
  const until = (pred: () => boolean, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (pred()) return resolve(true);
      const timer = setTimeout(() => done(false), ms);
      const check = (): void => {
        if (pred()) done(true);
      };
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
        resolve(ok);
      };
      waiters.push(check);
    });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='${NS_STREAM}' to='${PROBE_NAME}'>`);
    if (!(await until(() => /\sid=['"][^'"]+['"]/.test(buf), timeout))) return;
    const id = /\sid=['"]([^'"]+)['"]/.exec(buf)?.[1] ?? '';
    sock.write(
      `<handshake>${createHash('sha1')
        .update(id + server.componentSecret)
        .digest('hex')}</handshake>`,
    );
    if (!(await until(() => /<handshake\s*\/>|<handshake><\/handshake>/.test(buf), timeout))) return;
    const deadline = Date.now() + timeout;
    let pending = names;
    let round = 0;
    while (pending.length > 0 && Date.now() < deadline) {
      round++;
      for (const [i, name] of pending.entries()) {
        sock.write(
          `<iq type='get' id='p${round}-${i}' from='${PROBE_NAME}' to='${name}'><ping xmlns='urn:xmpp:ping'/></iq>`,
        );
      }
      const ids = pending.map((_, i) => `p${round}-${i}`);
      const answered = (): string[] => ids.filter((id) => buf.includes(`id='${id}'`) || buf.includes(`id="${id}"`));
      await until(() => answered().length === ids.length, 300);
      const got = new Set(answered());
      pending = pending.filter((_, i) => !got.has(`p${round}-${i}`));
    }
    if (process.env['XMPPBUS_PROBE_DEBUG'])
      process.stderr.write(`[route-probe] rounds=${round} unsettled=${pending.join(',')}\n`);
  } catch {
    // best effort: the tests that follow still have their own deadlines
  } finally {
    sock.end('</stream:stream>');
    sock.destroy();
  }
}
