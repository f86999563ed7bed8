import { describe, expect, it } from 'vitest';
import { Output } from './output.js';
import { schemaSummary } from './schema-summary.js';
import { testIo } from './test/io.js';

describe('Output', () => {
  it('has no colour off a terminal, or with NO_COLOR, or --no-color', () => {
    expect(new Output(testIo(), { json: false, color: true }).c.isColorSupported).toBe(false);
    expect(
      new Output(testIo({ tty: true, env: { NO_COLOR: '1' } }), { json: false, color: true }).c.isColorSupported,
    ).toBe(false);
    expect(new Output(testIo({ tty: true }), { json: false, color: false }).c.isColorSupported).toBe(false);
    expect(new Output(testIo({ tty: true }), { json: true, color: true }).c.isColorSupported).toBe(false);
    expect(new Output(testIo({ tty: true }), { json: false, color: true }).c.isColorSupported).toBe(true);
  });

  it('draws progress only on a terminal, never with --json', () => {
    expect(new Output(testIo(), { json: false, color: true }).interactive).toBe(false);
    expect(new Output(testIo({ tty: true }), { json: false, color: true }).interactive).toBe(true);
    expect(new Output(testIo({ tty: true }), { json: true, color: true }).interactive).toBe(false);
  });

  it('prints one JSON line per result with --json, else the pretty text', () => {
    const io = testIo();
    new Output(io, { json: true, color: true }).result({ a: 1 }, () => 'pretty');
    new Output(io, { json: false, color: true }).result({ a: 1 }, () => 'pretty');
    expect(io.out()).toBe('{"a":1}\npretty\n');
  });

  it('aligns tables, numbers to the right', () => {
    const out = new Output(testIo(), { json: false, color: true });
    expect(
      out.table(
        ['NAME', 'OPS'],
        [
          ['rpc', 1000],
          ['pubsub', 20],
        ],
      ),
    ).toBe('NAME     OPS\nrpc     1000\npubsub    20');
  });
});

describe('schemaSummary', () => {
  it('reads like a TypeScript type', () => {
    expect(
      schemaSummary({
        type: 'object',
        properties: {
          sku: { type: 'string' },
          qty: { type: 'integer' },
          tags: { type: 'array', items: { type: 'string' } },
          state: { enum: ['open', 'shipped'] },
          at: { type: 'string', format: 'date-time' },
        },
        required: ['sku', 'qty'],
      }),
    ).toBe(`{ sku: string, qty: integer, tags?: string[], state?: "open" | "shipped", at?: string(date-time) }`);
    expect(schemaSummary({ 'x-xmppbus-raw': true })).toBe('<raw XML>');
  });
});
