// Server crash and restart in the middle of an event stream: publishers retry with the same item
// id (idempotent), consumers resubscribe and catch up from persisted items: nothing lost, nothing twice.
import { Type } from '@sinclair/typebox';
import { sleep } from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { describeServers, waitFor } from '@xmppbus/testing';
import { expect, it } from 'vitest';
import { pubsubClients } from './pubsub-fixtures.js';

const Tick = event({ ns: 'urn:test:ticks:1', name: 'tick', schema: Type.Object({ n: Type.Integer() }) });

const connect = pubsubClients(10_000);

describeServers(
  'pubsub across a server restart',
  (server, kind) => {
    it(`a consumer receives every event exactly once, in order, across a crash and restart [${kind}]`, async () => {
      const a = await connect(server(), 'svc-a.localhost');
      const b = await connect(server(), 'svc-b.localhost');
      await a.createNode('ticks', { maxItems: 1000 });
      const got: number[] = [];
      const sub = b.consume(Tick, 'ticks', (v) => void got.push(v.n), { durable: 'restart-test' });
      await sub.start({ timeout: 20_000 });
      const publishWithRetry = async (n: number): Promise<void> => {
        const deadline = performance.now() + 60_000;
        for (;;) {
          try {
            await a.publish(Tick, 'ticks', { n }, { id: `t${n}`, timeout: 5_000 });
            return;
          } catch (err) {
            if (performance.now() > deadline || (err as { retryable?: boolean }).retryable !== true) throw err;
            await sleep(100); // the publisher's retry pause while the server is down
          }
        }
      };
      for (let n = 0; n < 20; n++) await publishWithRetry(n);
      await waitFor(() => got.length === 20, { what: 'the first 20', timeout: 20_000 });
      await server().kill();
      const restarted = server().restart();
      for (let n = 20; n < 40; n++) await publishWithRetry(n); // waits through the outage
      await restarted;
      // In order, one at a time: once t39 is in, a duplicate could only have come before it.
      await waitFor(() => got.includes(39), { what: 'all 40', timeout: 30_000 });
      expect(got).toEqual(Array.from({ length: 40 }, (_, i) => i));
      expect(sub.stats.invalid).toBe(0);
      await sub.close();
    });
  },
  { pubsubStorage: 'persistent' },
);
