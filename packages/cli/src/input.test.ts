import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import { contractLabel, parseContractRef, parseJson, parseXmlInput, readInput } from './input.js';
import { testIo } from './test/io.js';

describe('parseContractRef', () => {
  it('reads ns#name, {ns}name and a bare name', () => {
    expect(parseContractRef('urn:example:orders:1#create')).toEqual({ ns: 'urn:example:orders:1', name: 'create' });
    expect(parseContractRef('{urn:example:orders:1}create')).toEqual({ ns: 'urn:example:orders:1', name: 'create' });
    expect(parseContractRef('create')).toEqual({ ns: undefined, name: 'create' });
  });

  it('splits at the last # (namespaces may hold one)', () => {
    expect(parseContractRef('http://example.org/p#v1#ping')).toEqual({ ns: 'http://example.org/p#v1', name: 'ping' });
  });

  it('refuses names that are not XML names', () => {
    expect(() => parseContractRef('urn:x#')).toThrow(UsageError);
    expect(() => parseContractRef('urn:x#1abc')).toThrow(UsageError);
    expect(() => parseContractRef('#name')).toThrow(/namespace is empty/);
  });

  it('labels as ns#name', () => {
    expect(contractLabel({ ns: 'urn:x', name: 'y' })).toBe('urn:x#y');
    expect(contractLabel({ ns: undefined, name: 'y' })).toBe('y');
  });
});

describe('input', () => {
  it('takes the argument first', async () => {
    expect(await readInput('{"a":1}', testIo({ stdin: 'ignored' }))).toBe('{"a":1}');
  });

  it('reads stdin when it is not a terminal, or for -', async () => {
    expect(await readInput(undefined, testIo({ stdin: '{"a":2}' }))).toBe('{"a":2}');
    expect(await readInput('-', testIo({ stdin: '<a/>' }))).toBe('<a/>');
  });

  it('has no input on a terminal without an argument', async () => {
    expect(await readInput(undefined, testIo())).toBeUndefined();
  });

  it('reports bad JSON and XML as usage errors', () => {
    expect(() => parseJson('{"a":', 'request')).toThrow(/request is not valid JSON/);
    expect(() => parseXmlInput('<a><b></a>')).toThrow(UsageError);
    expect(() => parseXmlInput('<!DOCTYPE x [<!ENTITY e "x">]><a>&e;</a>')).toThrow(UsageError);
    expect(parseXmlInput(' <a xmlns="urn:x"><b>1</b></a>\n').getChildText('b')).toBe('1');
  });
});
