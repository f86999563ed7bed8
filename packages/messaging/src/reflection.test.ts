// Message contracts a messenger handles are reflected (docs/protocol.md §6) while handled.
import { Type } from '@sinclair/typebox';
import { Session, silentLogger } from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { memoryHub } from '@xmppbus/transport-memory';
import { describe, expect, it } from 'vitest';
import { HandlerRegistry } from './handler-registry.js';
import { memoryStore } from './memory-store.js';
import { resolveOptions } from './options.js';
import { newCounters } from './types.js';

const Note = event({ ns: 'urn:test:notes:1', name: 'note', schema: Type.Object({ n: Type.Integer({ minimum: 0 }) }) });

describe('message contracts in schema reflection', () => {
  it('a handled contract is listed with its JSON Schema, and removed with its handler', async () => {
    const session = new Session({ transport: memoryHub().connect('a.test'), logger: silentLogger });
    const r = new HandlerRegistry({
      session,
      store: memoryStore(),
      settings: resolveOptions({ session }),
      counters: newCounters(),
    });
    expect(session.schemas.list()).toEqual([]);
    const off = r.handle(Note, () => undefined);
    expect(session.schemas.list()).toEqual([
      { kind: 'message', ns: 'urn:test:notes:1', name: 'note', schema: JSON.parse(JSON.stringify(Note.schema)) },
    ]);
    off();
    expect(session.schemas.list()).toEqual([]);
    await session.close();
  });
});
