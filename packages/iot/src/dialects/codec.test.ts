import { StanzaError, parseXml, xml } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import type { FieldSample } from '../types.js';
import { FAMILY, familyOf } from '../wire/namespaces.js';
import { CAT, CAT_ALL, categoriesOf, formatDuration, parseDuration, parseTimestamp } from '../wire/values.js';
import { LEGACY_CODEC, NF_CODEC } from './codec.js';

const BOUNDS = { fields: 256, nodes: 256, parameters: 64 };
const T = Date.parse('2026-12-05T00:00:00Z');

describe('scalar wire forms', () => {
  it('reads xs:duration and writes it back', () => {
    expect(parseDuration('PT5S')).toBe(5000);
    expect(parseDuration('PT15M')).toBe(900_000);
    expect(parseDuration('P1DT2H')).toBe(93_600_000);
    expect(parseDuration('PT0.5S')).toBe(500);
    expect(parseDuration('-PT1S')).toBe(-1000);
    for (const bad of ['P', 'PT', 'soon', '5', 'PT5', `P${'9'.repeat(80)}D`])
      expect(parseDuration(bad)).toBeUndefined();
    expect(formatDuration(3_723_500)).toBe('PT1H2M3.5S');
    expect(formatDuration(0)).toBe('PT0S');
    for (const ms of [1, 999, 60_000, 86_400_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it('reads zone-less timestamps as UTC and refuses garbage', () => {
    expect(parseTimestamp('2026-12-05T00:00:00')).toBe(T);
    expect(parseTimestamp('2026-12-05T01:00:00+01:00')).toBe(T);
    expect(parseTimestamp('yesterday')).toBeUndefined();
  });
});

describe('request parsing', () => {
  it('nf subscribe: rules, intervals, categories, req', () => {
    const el = parseXml(
      `<subscribe xmlns='urn:nf:iot:events:1.0' id='s1' m='true' minInt='PT5S' maxInt='PT15M' maxAge='PT1H' req='true'>` +
        `<f n='Temperature' by='0.5' v='21'/><f n='Door'/><nd id='n1'/><junk/></subscribe>`,
    );
    const r = NF_CODEC.parseSubscribe(el, BOUNDS);
    expect(r).toMatchObject({
      id: 's1',
      categories: CAT.momentary,
      minInterval: 5000,
      maxInterval: 900_000,
      maxAge: 3_600_000,
      immediate: true,
    });
    expect(r.fields).toEqual(['Temperature', 'Door']);
    expect(r.nodes).toEqual(['n1']);
    expect(r.rules).toEqual([{ field: 'Temperature', changedBy: 0.5, currentValue: 21 }, { field: 'Door' }]);
  });

  it('legacy req: seqnr, historicalDay counts as historical, from/to', () => {
    const el = parseXml(
      `<req xmlns='urn:xmpp:iot:sensordata' seqnr='4' historicalDay='true' from='2026-12-04T00:00:00' to='2026-12-05T00:00:00'><field name='Energy'/></req>`,
    );
    const r = LEGACY_CODEC.parseRead(el, BOUNDS);
    expect(r).toMatchObject({ id: '4', categories: CAT.historical, from: T - 86_400_000, to: T, fields: ['Energy'] });
    expect(
      LEGACY_CODEC.parseRead(parseXml(`<req xmlns='urn:xmpp:iot:sensordata' seqnr='5'/>`), BOUNDS).categories,
    ).toBe(CAT_ALL);
  });

  it('refuses malformed requests with bad-request', () => {
    const cases = [
      `<req xmlns='urn:nf:iot:sd:1.0' m='true'/>`,
      `<req xmlns='urn:nf:iot:sd:1.0' id='${'x'.repeat(200)}'/>`,
      `<req xmlns='urn:nf:iot:sd:1.0' id='a' from='never'/>`,
      `<subscribe xmlns='urn:nf:iot:events:1.0' id='a' minInt='PT1M' maxInt='PT1S'/>`,
      `<subscribe xmlns='urn:nf:iot:events:1.0' id='a'><f n='x' by='-1'/></subscribe>`,
      `<subscribe xmlns='urn:nf:iot:events:1.0' id='a'><f/></subscribe>`,
    ];
    for (const c of cases) {
      const el = parseXml(c);
      const parse = (): unknown =>
        el.name === 'req' ? NF_CODEC.parseRead(el, BOUNDS) : NF_CODEC.parseSubscribe(el, BOUNDS);
      expect(parse).toThrow(StanzaError);
    }
    const set = xml('set', { xmlns: 'urn:nf:iot:ctr:1.0' });
    expect(() => NF_CODEC.parseControl(set, BOUNDS)).toThrow('no parameter');
    for (let i = 0; i < 65; i++) set.cnode(xml('b', { n: `p${i}`, v: 'true' }));
    expect(() => NF_CODEC.parseControl(set, BOUNDS)).toThrow('more than 64');
  });

  it('knows every namespace spelling and its family', () => {
    expect(familyOf('urn:nfi:iot:ctr:1.0')).toMatchObject({ dialect: 'nf', sd: 'urn:nfi:iot:sd:1.0' });
    expect(familyOf('urn:ieee:iot:events:1.0')?.sd).toBe('urn:ieee:iot:sd:1.0');
    expect(familyOf('urn:xmpp:iot:events')).toMatchObject({ dialect: 'legacy', sd: 'urn:xmpp:iot:sensordata' });
    expect(familyOf('urn:example')).toBeUndefined();
  });
});

const samples: FieldSample[] = [
  {
    name: 'Temperature',
    kind: 'quantity',
    value: 21.5,
    unit: '°C',
    decimals: 2,
    timestamp: T,
    categories: categoriesOf(CAT.momentary),
    quality: ['automaticReadout'],
  },
  {
    name: 'Energy',
    kind: 'long',
    value: 9_007_199_254_740_991,
    timestamp: T,
    categories: categoriesOf(CAT.momentary),
    quality: [],
  },
  {
    node: 'door-1',
    name: 'Open',
    kind: 'boolean',
    value: true,
    timestamp: T + 1000,
    categories: categoriesOf(CAT.status),
    quality: ['warning', 'timeOffset'],
  },
  {
    node: 'door-1',
    name: 'Mode',
    kind: 'enum',
    value: 'auto',
    enumType: 'Mode',
    timestamp: T + 1000,
    categories: categoriesOf(CAT.momentary),
    quality: [],
  },
  {
    name: 'Uptime',
    kind: 'duration',
    value: 'PT5H',
    timestamp: T + 2000,
    categories: categoriesOf(CAT.status),
    quality: [],
  },
];

describe('reports round-trip in both dialects', () => {
  for (const dialect of ['nf', 'legacy'] as const) {
    it(dialect, () => {
      const codec = dialect === 'nf' ? NF_CODEC : LEGACY_CODEC;
      const el = parseXml(codec.report(FAMILY[dialect], '9', samples, [], true).toString());
      const back = codec.parseReport(el, 100)!;
      expect(back.id).toBe('9');
      expect(back.done).toBe(true);
      const norm = (s: FieldSample): object => ({
        ...s,
        categories: [...s.categories],
        quality: [...s.quality].sort(),
      });
      expect(back.fields.map(norm)).toEqual(
        samples
          .map((s) => norm({ ...s, ...(s.kind === 'quantity' ? {} : { unit: undefined, decimals: undefined }) }))
          .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))),
      );
      expect(el.toString()).toContain(dialect === 'nf' ? 'v="21.50"' : 'value="21.50"');
      const partial = codec.parseReport(
        parseXml(codec.report(FAMILY[dialect], '9', samples, [], false).toString()),
        100,
      )!;
      expect(partial.done).toBe(false);
    });
  }

  it('readout errors: nf err inside ts, legacy failure', () => {
    const errors = [{ node: 'n1', timestamp: T, message: 'Timeout.' }];
    const nf = NF_CODEC.parseReport(parseXml(NF_CODEC.report(FAMILY.nf, 'e', [], errors, true).toString()), 10)!;
    expect(nf.errors).toEqual(errors);
    const legacyEl = LEGACY_CODEC.report(FAMILY.legacy, '2', [], errors, true);
    expect(legacyEl.name).toBe('failure');
    expect(LEGACY_CODEC.parseReport(parseXml(legacyEl.toString()), 10)!.errors).toEqual(errors);
  });

  it('a hostile report is bounded: capped count, bad values and unknown kinds skipped', () => {
    const ts = xml('ts', { v: '2026-12-05T00:00:00Z' });
    for (let i = 0; i < 5000; i++) ts.cnode(xml('q', { n: `f${i}`, v: String(i), u: 'W' }));
    ts.cnode(xml('q', { n: 'bad', v: 'NaN', u: 'W' }));
    const big = NF_CODEC.parseReport(xml('resp', { xmlns: 'urn:nf:iot:sd:1.0', id: 'x' }, ts), 100)!;
    expect(big.fields).toHaveLength(100);
    const odd = xml(
      'resp',
      { xmlns: 'urn:nf:iot:sd:1.0', id: 'y' },
      xml(
        'ts',
        { v: '2026-12-05T00:00:00Z' },
        xml('q', { n: 'a', v: 'abc', u: 'W' }),
        xml('zz', { n: 'b', v: '1' }),
        xml('i', { n: 'c', v: '99999999999' }),
        xml('b', { n: 'd', v: 'maybe' }),
      ),
      xml('ts', { v: 'never' }, xml('b', { n: 'e', v: 'true' })),
    );
    expect(NF_CODEC.parseReport(odd, 100)!.fields).toEqual([]);
  });
});
