import { SpanKind, context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { noInstrumentation } from '@xmppbus/core';
import { Telemetry } from '@xmppbus/telemetry';
import { CreateOrder } from '@xmppbus/testing';
import { memoryHub } from '@xmppbus/transport-memory';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBus } from './bus.js';
import { createLogger } from './logger.js';

const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => void context.setGlobalContextManager(contextManager.enable()));
afterAll(() => {
  contextManager.disable();
  context.disable();
});

describe('bus telemetry', () => {
  it('is on by default, off with telemetry.enabled: false (config) or XMPPBUS_TELEMETRY_ENABLED=false', async () => {
    const hub = memoryHub();
    const silent = createLogger({ level: 'silent' });
    await using on = await createBus({}, { transport: hub.connect('a.example.test'), env: {}, logger: silent });
    expect(on.session.instrumentation).toBeInstanceOf(Telemetry);
    await using off = await createBus(
      { telemetry: { enabled: false } },
      { transport: hub.connect('b.example.test'), env: {}, logger: silent },
    );
    expect(off.session.instrumentation).toBe(noInstrumentation);
    await using offEnv = await createBus(
      {},
      { transport: hub.connect('c.example.test'), env: { XMPPBUS_TELEMETRY_ENABLED: 'false' }, logger: silent },
    );
    expect(offEnv.session.instrumentation).toBe(noInstrumentation);
  });

  it('a handler failure is logged once, with the trace_id and span_id of the server span', async () => {
    const hub = memoryHub();
    const spans = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    const lines: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      // No logger given: the bus's default one (JSON lines on stderr) with its trace context hook.
      await using server = await createBus(
        { access: { allowAll: true }, log: { level: 'error', format: 'json' } },
        { transport: hub.connect('orders.example.test'), env: {}, telemetry: { tracerProvider } },
      );
      server.rpc.handle(CreateOrder, () => {
        throw new Error('boom');
      });
      await server.start();
      await using client = await createBus(
        { access: { allowAll: true } },
        {
          transport: hub.connect('web.example.test'),
          env: {},
          telemetry: { tracerProvider },
          logger: createLogger({ level: 'silent' }),
        },
      );
      await client.start();
      await expect(client.client.call(CreateOrder, 'orders.example.test', { sku: 'a', qty: 1 })).rejects.toThrow();
    } finally {
      spy.mockRestore();
    }
    const serverSpan = spans.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    const failures = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['level'] === 'error');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      trace_id: serverSpan.spanContext().traceId,
      span_id: serverSpan.spanContext().spanId,
    });
    await tracerProvider.shutdown();
  });
});
