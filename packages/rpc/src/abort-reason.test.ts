// An abort reports its own reason (issue 12): the caller's signal, not the call's own budget.
import { Type } from '@sinclair/typebox';
import { AbortError, Session, TimeoutError } from '@xmppbus/core';
import { method } from '@xmppbus/schema';
import { memoryHub } from '@xmppbus/transport-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcClient, RpcServer } from './index.js';

const Hang = method({
  ns: 'urn:example:hang:1',
  name: 'hang',
  request: Type.Object({}),
  response: Type.Object({}),
  idempotent: true,
});

const sessions: Session[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
});

async function setup(): Promise<RpcClient> {
  const hub = memoryHub();
  const a = new Session({ transport: hub.connect('caller.test') });
  const b = new Session({ transport: hub.connect('callee.test') });
  sessions.push(a, b);
  const server = new RpcServer({ session: b });
  server.handle(
    Hang,
    (_req, { signal }) => new Promise((resolve) => signal.addEventListener('abort', () => resolve({}))),
  );
  await server.start();
  const client = new RpcClient({ session: a, timeout: 600_000 });
  await client.start();
  return client;
}

describe('an aborted call reports the abort reason', () => {
  it('AbortSignal.timeout(ms): a TimeoutError saying the signal timed out, not the call budget', async () => {
    const client = await setup();
    const err = await client
      .call(Hang, 'callee.test', {}, { signal: AbortSignal.timeout(20) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(
      /^<hang xmlns='urn:example:hang:1'> to callee.test: aborted by the signal's timeout/,
    );
    expect((err as Error).message).not.toMatch(/no reply within/);
    expect(client.inFlight).toBe(0);
  });

  it('a reason the caller gave is thrown as is; a bare abort() is an AbortError', async () => {
    const client = await setup();
    const ac = new AbortController();
    const why = new Error('user pressed ctrl-c');
    const p = client.call(Hang, 'callee.test', {}, { signal: ac.signal });
    ac.abort(why);
    await expect(p).rejects.toBe(why);
    const ac2 = new AbortController();
    const p2 = client.call(Hang, 'callee.test', {}, { signal: ac2.signal });
    ac2.abort();
    await expect(p2).rejects.toBeInstanceOf(AbortError);
    expect(client.inFlight).toBe(0);
  });
});
