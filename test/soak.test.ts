/**
 * A short soak against real Prosody and ejabberd (the bounded version of `npm run bench -- soak`):
 * a hostile c2s account floods a service (RpcServer + Messenger on SQLite, default budgets) with
 * raw maximal stanzas while a second account makes RPC calls and sends QoS 1 and QoS 2 messages
 * at a steady rate. Every legitimate message arrives (lost 0), ≥ 99 % of the legitimate work
 * succeeds, the budgets in use never exceed their defaults, and the heap does not keep growing.
 * The run ends after a number of legitimate ticks and hostile answers, not after a fixed time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describeServers, waitFor } from '@xmppbus/testing';
import { afterEach, expect, it } from 'vitest';
import {
  HOSTILE_ROUND,
  HostileFlood,
  LegitSender,
  lostOf,
  SERVICE,
  SOAK_USERS,
  startSoakService,
} from '../benchmarks/lib/soak-parts.js';

const TICKS = 100; // one call + one QoS 1 + one QoS 2 message each, every 50 ms: ~5 s per server
const PERIOD_MS = 50;
const MiB = 1 << 20;
// The documented defaults (docs/security.md): RpcServer.limits and Messenger receive.*.
const RPC = { perSenderBytes: MiB, perSenderCount: 64, totalBytes: 16 * MiB, totalCount: 1024 };
const QUEUE = { totalBytes: 8 * MiB, totalCount: 16_384 };
const PENDING = { perSenderBytes: MiB, totalBytes: 16 * MiB, totalCount: 10_000 };

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = (): number => {
  gc();
  return process.memoryUsage().heapUsed;
};

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describeServers(
  'soak',
  (server, kind) => {
    it(`[${kind}] a hostile flood loses no legitimate message and stays within the default budgets`, async () => {
      const srv = server();
      const dir = mkdtempSync(join(tmpdir(), 'xmppbus-soak-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const seen = new Set<string>();
      const heapBefore = heapAfterGc();
      const svc = await startSoakService({
        componentService: srv.componentService(),
        secret: srv.componentSecret,
        dbFile: join(dir, 'service.db'),
        onLegit: (n) => seen.add(`${n.q}:${n.i}`),
        sampleMs: 20,
      });
      cleanups.push(() => svc.close());
      const legit = await LegitSender.start({ c2sService: srv.c2sService(), domain: srv.domain, to: SERVICE });
      cleanups.push(() => legit.close());
      const [hu, hp] = SOAK_USERS[1]!;
      const hostile = await HostileFlood.login({
        host: srv.host,
        port: srv.c2sPort,
        domain: srv.domain,
        username: hu,
        password: hp,
        to: SERVICE,
      });
      cleanups.push(() => hostile.close(0));

      // At most one round unanswered: Prosody handles ~3 such stanzas a second, and the test waits for every answer.
      const flooding = hostile.run(HOSTILE_ROUND.length);
      for (let i = 0; i < TICKS; i++) {
        legit.tick(i);
        await new Promise((r) => setTimeout(r, PERIOD_MS));
      }
      // At least one whole round of every hostile kind answered before the flood stops.
      await waitFor(() => hostile.counts.answered >= HOSTILE_ROUND.length, {
        timeout: 60_000,
        what: 'a round of hostile answers',
      });
      hostile.stop();
      await flooding;
      await legit.drain(60_000);
      await hostile.close(30_000);
      expect(hostile.closedReason).toBeUndefined();

      const r = legit.result;
      const lost = lostOf(r.sent, seen);
      expect(lost).toBe(0);
      expect(r.deadLettered).toBe(0);
      const messages = r.sent.q1 + r.sent.q2;
      expect((r.callsOk + messages - lost) / (r.calls + messages)).toBeGreaterThanOrEqual(0.99);

      // The hostile account was refused for its pathological calls and its forbidden contract.
      const c = hostile.counts;
      expect(c.answered).toBe(c.sent);
      expect(c.errors['policy-violation']).toBeGreaterThan(0);
      expect(c.errors['forbidden']).toBeGreaterThan(0);
      expect(c.refused).toBeGreaterThanOrEqual((c.errors['policy-violation'] ?? 0) + (c.errors['forbidden'] ?? 0));

      // Budgets in use, sampled every 20 ms and in every handler: never beyond the defaults.
      const st = svc.stats();
      expect(st.rpc.peakHostile.bytes).toBeLessThanOrEqual(RPC.perSenderBytes);
      expect(st.rpc.peakHostile.count).toBeLessThanOrEqual(RPC.perSenderCount);
      expect(st.rpc.peak.bytes).toBeLessThanOrEqual(RPC.totalBytes);
      expect(st.rpc.peak.count).toBeLessThanOrEqual(RPC.totalCount);
      expect(st.queue.peak.bytes).toBeLessThanOrEqual(QUEUE.totalBytes);
      expect(st.queue.peak.count).toBeLessThanOrEqual(QUEUE.totalCount);
      // The hostile's undelivered `assured` fill its own 1 MiB; the legitimate QoS 2 in flight are small.
      expect(st.pending.peak.bytes).toBeLessThanOrEqual(PENDING.perSenderBytes + 64 * 1024);
      expect(st.pending.peak.count).toBeLessThanOrEqual(PENDING.totalCount);
      expect(svc.rpc.usage).toEqual({ bytes: 0, count: 0 });
      expect(svc.messenger.inboundUsage.queue).toEqual({ bytes: 0, count: 0 });

      // Heap: the peak (garbage included) stays far from a 256 MB process, and what is left after
      // a full GC is what the service keeps (dedupe ids, the hostile's pending text), not the flood.
      expect(st.heapUsedMb.peak - heapBefore / MiB).toBeLessThan(384);
      expect((heapAfterGc() - heapBefore) / MiB).toBeLessThan(48);
    });
  },
  { users: SOAK_USERS },
);
