import { parseXml } from '@xmppbus/core';
import { decode, encode } from '@xmppbus/schema';
import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import { elementToJson, inferContract, inferSchema, payloadJson } from './payload.js';

describe('inferred contracts', () => {
  it('describes a JSON value', () => {
    expect(inferSchema({ s: 'x', i: 2, f: 1.5, b: true, list: ['a'], o: { k: 'v' } })).toEqual({
      type: 'object',
      properties: {
        s: { type: 'string' },
        i: { type: 'integer' },
        f: { type: 'number' },
        b: { type: 'boolean' },
        list: { type: 'array', items: { type: 'string' } },
        o: { type: 'object', properties: { k: { type: 'string' } }, required: ['k'] },
      },
      required: ['s', 'i', 'f', 'b', 'list', 'o'],
    });
  });

  it('encodes as a contract of the same shape does, and decodes back', () => {
    const value = { sku: 'A1', qty: 2, tags: ['x', 'y'] };
    const contract = inferContract('urn:example:orders:1', 'create', value);
    const el = encode(contract, value as never);
    expect(el.toString()).toBe(
      '<create xmlns="urn:example:orders:1"><sku>A1</sku><qty>2</qty><tags>x</tags><tags>y</tags></create>',
    );
    expect(decode(contract, el)).toEqual(value);
  });

  it('refuses null and non-objects', () => {
    expect(() => inferContract('urn:x', 'y', { a: null })).toThrow(/null cannot be sent/);
    expect(() => inferContract('urn:x', 'y', [1])).toThrow(UsageError);
  });
});

describe('elementToJson', () => {
  it('shows children, attributes and repeated children as JSON', () => {
    const el = parseXml(
      '<order xmlns="urn:x" id="o1"><qty>2</qty><line>a</line><line>b</line><line>c</line><note/></order>',
    );
    expect(elementToJson(el)).toEqual({ id: 'o1', qty: '2', line: ['a', 'b', 'c'], note: '' });
  });

  it('keeps text next to attributes', () => {
    expect(elementToJson(parseXml('<v unit="C">21.5</v>'))).toEqual({ unit: 'C', '#text': '21.5' });
  });

  it('decodes with a contract when it matches, else shows it plainly', () => {
    const contract = inferContract('urn:x', 'order', { qty: 1 });
    expect(payloadJson(parseXml('<order xmlns="urn:x"><qty>2</qty></order>'), contract)).toEqual({ qty: 2 });
    expect(payloadJson(parseXml('<other xmlns="urn:x"><qty>2</qty></other>'), contract)).toEqual({ qty: '2' });
  });
});
