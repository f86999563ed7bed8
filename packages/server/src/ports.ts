import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

import { TimeoutError } from '@xmppbus/core';

const HOST = '127.0.0.1';

/** Resolves true if `port` can be bound on 127.0.0.1 right now (the probe socket is closed again). */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: HOST, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Lower bound of the kernel's ephemeral range: ports below it are never handed to outgoing sockets. */
function ephemeralMin(): number {
  try {
    const [min] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(min);
    return Number.isInteger(n) && n > 12_000 ? n : 32_768;
  } catch {
    return 32_768;
  }
}

const taken = new Set<number>();

/**
 * Picks a free TCP port on 127.0.0.1. Ports come from below the ephemeral range (so an outgoing
 * connection cannot grab one between this check and the server's bind) and are picked at random
 * (so harness instances in parallel processes rarely collide; a collision makes the server start
 * fail and the harness retries with new ports). Never returns the same port twice per process.
 */
export async function freePort(): Promise<number> {
  const hi = ephemeralMin();
  const lo = Math.max(10_000, hi - 20_000);
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (taken.has(port)) continue;
    if (await canBind(port)) {
      taken.add(port);
      return port;
    }
  }
  // Fall back to a kernel-chosen port.
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: HOST }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until every port can be bound again (after a kill); rejects with TimeoutError. */
export async function waitPortsFree(ports: readonly number[], timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const free = await Promise.all(ports.map(canBind));
    if (free.every(Boolean)) return;
    if (Date.now() > deadline) {
      throw new TimeoutError(`ports ${ports.filter((_, i) => !free[i]).join(', ')} still in use after ${timeout} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
