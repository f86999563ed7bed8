import { Session, xml } from '@xmppbus/core';
import { memoryHub } from '@xmppbus/transport-memory';
import { waitFor } from '@xmppbus/testing';
import { describe, expect, it } from 'vitest';
import { Roster } from './roster.js';

describe('Roster: what a peer can grow', () => {
  it('peers we asked are remembered up to maxItems, oldest forgotten first (then the policy decides)', async () => {
    const hub = memoryHub();
    const me = new Session({ transport: hub.connect('agent@iot.test/device') });
    const peers = new Session({ transport: hub.connect('t') }); // a component: sends from any x@t
    const roster = new Roster({ session: me, policy: () => 'queue', load: false, maxItems: 2, maxPending: 10 });
    try {
      await me.start();
      await peers.start();
      await roster.start();
      for (const p of ['x1@t', 'x2@t', 'x3@t']) await roster.subscribe(p);
      const ask = (from: string) => peers.send(xml('presence', { type: 'subscribe', from, to: 'agent@iot.test' }));
      await ask('x1@t'); // forgotten: queued by the policy
      await ask('x3@t'); // still remembered: approved at once
      await waitFor(() => roster.pending.length === 1, { turns: 100, what: 'x1 queued' });
      expect(roster.pending.map((r) => r.jid)).toEqual(['x1@t']);
    } finally {
      roster.stop();
      await peers.close();
      await me.close();
    }
  });
});
