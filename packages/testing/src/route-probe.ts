import { openComponentStream, type RawComponentStream } from '@xmppbus/server/testing';
import type { XmppServer } from './types.js';

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
  if (names.length === 0) return;
  // A fresh name per probe, so the probe never meets a closing connection of its own name.
  const PROBE_NAME = `harness-route-probe-${process.pid}-${++probes}.localhost`;
  let stream: RawComponentStream;
  try {
    stream = await openComponentStream({
      host: server.host,
      port: server.componentPort,
      name: PROBE_NAME,
      secret: server.componentSecret,
      timeout,
    });
  } catch {
    return; // best effort: the tests that follow still have their own deadlines
  }
  try {
    const deadline = Date.now() + timeout;
    let pending = names;
    let round = 0;
    while (pending.length > 0 && Date.now() < deadline) {
      round++;
      for (const [i, name] of pending.entries()) {
        stream.write(
          `<iq type='get' id='p${round}-${i}' from='${PROBE_NAME}' to='${name}'><ping xmlns='urn:xmpp:ping'/></iq>`,
        );
      }
      const ids = pending.map((_, i) => `p${round}-${i}`);
      const answered = (buf: string): string[] =>
        ids.filter((id) => buf.includes(`id='${id}'`) || buf.includes(`id="${id}"`));
      await stream.until((buf) => answered(buf).length === ids.length, 300);
      const got = new Set(answered(stream.received));
      pending = pending.filter((_, i) => !got.has(`p${round}-${i}`));
    }
    if (process.env['XMPPBUS_PROBE_DEBUG'])
      process.stderr.write(`[route-probe] rounds=${round} unsettled=${pending.join(',')}\n`);
  } finally {
    stream.close();
  }
}
