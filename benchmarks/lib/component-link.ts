// What the benchmarks open on a harness server (startServer): component links through
// @xmppbus/transport-component (TCP_NODELAY) with no reconnect — a dropped link fails the run
// instead of hiding a gap in the numbers — and the RPC pair most of them measure.
import { Session } from '@xmppbus/core';
import { RpcClient, RpcServer, type RpcClientOptions, type RpcServerOptions } from '@xmppbus/rpc';
import type { XmppServer } from '@xmppbus/testing';
import { componentTransport, type ComponentTransport } from '@xmppbus/transport-component';

export function componentLink(srv: XmppServer, domain: string): Promise<ComponentTransport> {
  return componentTransport({
    service: srv.componentService(),
    domain,
    password: srv.componentSecret,
    reconnect: false,
  });
}

/**
 * An RpcServer on `callee` (concurrency 256; `serve` registers its handlers before it starts)
 * and a started RpcClient on `caller` (timeout 30 s), each on its own session and link.
 * `close()` lets the callee drain for up to a second, then closes both sessions.
 */
export async function rpcPair(
  srv: XmppServer,
  names: { caller: string; callee: string },
  o: {
    serve: (server: RpcServer) => void;
    server?: Omit<RpcServerOptions, 'session'>;
    client?: Omit<RpcClientOptions, 'session'>;
  },
): Promise<{ client: RpcClient; close(): Promise<void> }> {
  const calleeSession = new Session({ transport: await componentLink(srv, names.callee) });
  const server = new RpcServer({ session: calleeSession, concurrency: 256, ...o.server });
  o.serve(server);
  await server.start();
  const callerSession = new Session({ transport: await componentLink(srv, names.caller) });
  const client = new RpcClient({ session: callerSession, timeout: 30_000, ...o.client });
  await client.start();
  return {
    client,
    async close() {
      await calleeSession.drain({ timeout: 1000 }).catch(() => undefined);
      await callerSession.close();
      await calleeSession.close();
    },
  };
}
