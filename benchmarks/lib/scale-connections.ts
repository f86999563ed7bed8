// Connections per server, for sizing (benchmarks/scale.ts): N idle c2s sessions (agents, devices)
// logged in to one server; the server's resident memory and CPU per connection. A node holds as
// many as its RAM allows: per-connection memory is the number that matters, CPU only at login.
import { readFileSync } from 'node:fs';
import type { Transport } from '@xmppbus/core';
import { startServer, type ServerKind } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { processCpuUs } from './results.js';

export interface ConnectionsResult {
  server: ServerKind;
  connections: number;
  rssMbBefore: number;
  rssMbAfter: number;
  /** Resident memory the server added per idle c2s session (SASL PLAIN, no TLS, roster empty). */
  rssKbPerConnection: number;
  /** Server CPU per login (stream, SASL, bind, initial presence), ms. */
  serverCpuMsPerLogin: number;
  /** Logins per second at LOGIN_CONCURRENCY in flight. */
  loginsPerSec: number;
  /** Idle connections per GB of server RAM at that rate (1024 MB / per-connection memory). */
  connectionsPerGb: number;
}

const LOGIN_CONCURRENCY = 32;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function measureConnections(kind: ServerKind, count: number): Promise<ConnectionsResult> {
  const users = Array.from({ length: count }, (_, i): [string, string] => [`agent${i}`, `pw-${i}`]);
  const srv = await startServer(kind, { components: [], users });
  const open: Transport[] = [];
  try {
    const before = rssMb(srv.pid);
    const cpu0 = processCpuUs(srv.pid) ?? NaN;
    const t0 = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const [username, password] = users[next++]!;
        open.push(
          await clientTransport({
            service: srv.c2sService(),
            domain: srv.domain,
            username,
            password,
            mechanism: 'PLAIN',
            allowPlainWithoutTls: true,
            reconnect: false,
            timeout: 60_000,
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: LOGIN_CONCURRENCY }, worker));
    const wall = performance.now() - t0;
    const cpu = (processCpuUs(srv.pid) ?? NaN) - cpu0;
    const after = rssMb(srv.pid);
    const perConn = ((after - before) * 1024) / count;
    return {
      server: kind,
      connections: count,
      rssMbBefore: Number(before.toFixed(1)),
      rssMbAfter: Number(after.toFixed(1)),
      rssKbPerConnection: Number(perConn.toFixed(1)),
      serverCpuMsPerLogin: Number((cpu / count / 1000).toFixed(3)),
      loginsPerSec: Math.round((count / wall) * 1000),
      connectionsPerGb: Math.round((1024 * 1024) / perConn),
    };
  } finally {
    await Promise.all(open.map((t) => t.close().catch(() => undefined)));
    await srv.stop();
  }
}
