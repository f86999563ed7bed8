// Smoke test of the peers benchmark: the same code path as `npm run bench -- peers` (real
// nats-server, mosquitto and ejabberd), one short round at 100 B. Checks that every system moved
// messages and that the ratios the issue asks for are there. Writes no result file.
import { existsSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runPeers, type Phase } from '../benchmarks/lib/peers-run.js';
import { WORKLOADS } from '../benchmarks/lib/peers-types.js';

const RESULT = new URL('../benchmarks/results/peers.json', import.meta.url);

describe('peers benchmark (smoke)', () => {
  it('runs every workload on every system with a positive rate, and reports the ratios', async () => {
    const before = existsSync(RESULT) ? statSync(RESULT).mtimeMs : undefined;
    const result = await runPeers({
      rounds: 1,
      timing: { warmMs: 50, measureMs: 300 },
      warmupMs: 30,
      window: 50,
      workloads: WORKLOADS,
      payloads: ['100B'],
      servers: ['ejabberd'],
      outsideLimit: 0.15,
      minCleanRounds: 3,
      log: () => {},
    });

    const expected: Record<Phase, string[]> = {
      rpc1: ['nats', 'mqtt', 'ejabberd'],
      rpc100: ['nats', 'mqtt', 'ejabberd'],
      qos0: ['nats', 'mqtt', 'ejabberd'],
      qos1: ['jetstream', 'mqtt', 'mqtt-persist', 'ejabberd', 'ejabberd-memory'],
      qos2: ['mqtt', 'mqtt-persist', 'ejabberd', 'ejabberd-memory'],
      fanout1: ['nats', 'mqtt', 'ejabberd', 'ejabberd-batched'],
      fanout10: ['nats', 'mqtt', 'ejabberd', 'ejabberd-batched'],
      fanout100: ['nats', 'mqtt', 'ejabberd', 'ejabberd-batched'],
    };
    for (const [phase, systems] of Object.entries(expected)) {
      const bySystem = result.medians[phase as Phase]?.['100B'];
      expect(Object.keys(bySystem ?? {}).sort(), phase).toEqual([...systems].sort());
      for (const s of systems) {
        const m = bySystem![s]!;
        expect(m.opsPerSec, `${phase} ${s}`).toBeGreaterThan(0);
        expect(m.nodeCpuUsPerOp, `${phase} ${s}`).toBeGreaterThan(0);
        if (phase.startsWith('rpc')) expect(m.p50Ms, `${phase} ${s}`).toBeGreaterThan(0);
      }
    }

    const keys = [
      'qos1_vs_mqtt_qos1',
      'qos1_vs_mqtt_qos1_nopersist',
      'qos2_vs_mqtt_qos2',
      'qos1_memory_vs_mqtt_qos1',
      'qos2_memory_vs_mqtt_qos2',
      'qos1_vs_jetstream',
      'qos0_vs_mqtt_qos0',
      'qos0_vs_nats',
      'rpc_vs_nats_request',
      'rpc1_p50_vs_nats',
      'fanout10_vs_mqtt_qos0',
      'fanout10_batched_vs_mqtt_qos0',
      'qos1_vs_qos0',
      'qos2_vs_qos0',
    ];
    const ratios = result.ratios['ejabberd']!;
    const nested = ratios['100B'] as Record<string, number>;
    for (const k of keys) {
      expect(ratios[k], k).toBeGreaterThan(0);
      expect(nested[k], k).toBe(ratios[k]);
    }
    expect(Object.keys(result.ratios)).toEqual(['ejabberd']);
    expect(existsSync(RESULT) ? statSync(RESULT).mtimeMs : undefined).toBe(before);
  });
});
