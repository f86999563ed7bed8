/**
 * One codec, two vocabularies: the dialects differ in names (and in a few shapes, marked
 * below), not in structure. Requests are parsed with bounds, and anything malformed is a
 * `bad-request` naming what was wrong; unknown child elements are ignored (a newer peer's
 * extensions), as the deployed implementation does.
 */
import type { Element } from '@xmppbus/core';
import { StanzaError, localName, textOf, xml } from '@xmppbus/core';
import type { FieldKind, FieldSample, FieldValue, ObserveRule, ParameterKind, ReadoutError } from '../types.js';
import type { NamespaceFamily } from '../wire/namespaces.js';
import {
  CAT,
  CATEGORY_NAMES,
  CAT_ALL,
  NO_QUALITY,
  QUALITY_NAMES,
  categoriesOf,
  decimalsOf,
  formatDuration,
  formatNumber,
  formatTimestamp,
  parseBool,
  parseDuration,
  parseInteger,
  parseNumber,
  parseTimestamp,
} from '../wire/values.js';
import type {
  ControlOperation,
  ControlRequest,
  DialectCodec,
  FieldsReport,
  ParseBounds,
  ReadRequest,
  SubscribeRequest,
} from './model.js';
import { LEGACY_VOCABULARY, NF_VOCABULARY, reverse, type Vocabulary } from './vocabulary.js';

const MAX_ID = 128;
const MAX_NAME = 256;

function bad(text: string): StanzaError {
  return new StanzaError({ condition: 'bad-request', type: 'modify', text });
}

function requestIdOf(el: Element, v: Vocabulary): string {
  const id = el.attrs[v.id];
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID) throw bad(`missing or bad ${v.id}`);
  return id;
}

function nameAttr(el: Element, attr: string, what: string): string {
  const n = el.attrs[attr];
  if (typeof n !== 'string' || n.length === 0 || n.length > MAX_NAME) throw bad(`${what} without a valid ${attr}`);
  return n;
}

function optionalTime(el: Element, attr: string): number | undefined {
  const raw = el.attrs[attr];
  if (raw === undefined) return undefined;
  const t = parseTimestamp(raw);
  if (t === undefined) throw bad(`bad ${attr} timestamp`);
  return t;
}

function optionalDuration(el: Element, attr: string): number | undefined {
  const raw = el.attrs[attr];
  if (raw === undefined) return undefined;
  const d = parseDuration(raw);
  if (d === undefined || d < 0) throw bad(`bad ${attr} duration`);
  return d;
}

function optionalNumber(el: Element, attr: string, positive: boolean): number | undefined {
  const raw = el.attrs[attr];
  if (raw === undefined) return undefined;
  const n = parseNumber(raw);
  if (n === undefined || (positive && n < 0)) throw bad(`bad ${attr} number`);
  return n;
}

class Codec implements DialectCodec {
  readonly #v: Vocabulary;
  readonly #legacy: boolean;
  readonly #fieldKinds: Map<string, FieldKind>;
  readonly #parameterKinds: Map<string, ParameterKind>;
  readonly inlineReadout: boolean;

  constructor(v: Vocabulary, legacy: boolean) {
    this.#v = v;
    this.#legacy = legacy;
    this.#fieldKinds = reverse(v.fieldKinds, legacy ? { timeSpan: 'duration' } : undefined);
    // nf `e` is an enum; a legacy `string` may set an enum parameter too (the agent decides).
    this.#parameterKinds = reverse(v.parameterKinds);
    // The deployed server may answer a readout inside the IQ result (`resp`); XEP-0323 always uses messages.
    this.inlineReadout = !legacy;
  }

  // ---- agent side ----

  #categories(el: Element): number {
    if (parseBool(el.attrs['all']) === true) return CAT_ALL;
    let mask = 0;
    for (const c of CATEGORY_NAMES) if (parseBool(el.attrs[this.#v.categories[c]]) === true) mask |= CAT[c];
    if (this.#legacy) {
      // XEP-0323's historicalSecond … historicalOther all mean "historical" to us.
      for (const key in el.attrs)
        if (key.startsWith('historical') && parseBool(el.attrs[key]) === true) mask |= CAT.historical;
    }
    return mask === 0 ? CAT_ALL : mask;
  }

  #refs(el: Element, bounds: ParseBounds, onField?: (f: Element) => void): { nodes?: string[]; fields?: string[] } {
    let nodes: string[] | undefined;
    let fields: string[] | undefined;
    for (const c of el.children) {
      if (typeof c === 'string') continue;
      const name = localName(c);
      if (name === this.#v.node) {
        (nodes ??= []).push(nameAttr(c, this.#v.nodeId, 'node'));
        if (nodes.length > bounds.nodes) throw bad(`more than ${bounds.nodes} nodes`);
      } else if (name === this.#v.fieldRef) {
        (fields ??= []).push(nameAttr(c, this.#v.name, 'field'));
        if (fields.length > bounds.fields) throw bad(`more than ${bounds.fields} fields`);
        onField?.(c);
      }
    }
    const out: { nodes?: string[]; fields?: string[] } = {};
    if (nodes) out.nodes = nodes;
    if (fields) out.fields = fields;
    return out;
  }

  parseRead(el: Element, bounds: ParseBounds): ReadRequest {
    const id = requestIdOf(el, this.#v);
    const from = optionalTime(el, 'from');
    const to = optionalTime(el, 'to');
    return { id, categories: this.#categories(el), from, to, ...this.#refs(el, bounds) };
  }

  parseSubscribe(el: Element, bounds: ParseBounds): SubscribeRequest {
    const id = requestIdOf(el, this.#v);
    const v = this.#v;
    const rules: ObserveRule[] = [];
    const refs = this.#refs(el, bounds, (f) => {
      const rule: { -readonly [K in keyof ObserveRule]: ObserveRule[K] } = { field: nameAttr(f, v.name, 'field') };
      const by = optionalNumber(f, v.changedBy, true);
      const up = optionalNumber(f, v.changedUp, true);
      const dn = optionalNumber(f, v.changedDown, true);
      const cur = optionalNumber(f, v.currentValue, false);
      if (by !== undefined) rule.changedBy = by;
      if (up !== undefined) rule.changedUp = up;
      if (dn !== undefined) rule.changedDown = dn;
      if (cur !== undefined) rule.currentValue = cur;
      rules.push(rule);
    });
    const minInterval = optionalDuration(el, v.minInterval);
    const maxInterval = optionalDuration(el, v.maxInterval);
    if (minInterval !== undefined && maxInterval !== undefined && maxInterval < minInterval)
      throw bad(`${v.maxInterval} is shorter than ${v.minInterval}`);
    return {
      id,
      categories: this.#categories(el),
      nodes: refs.nodes,
      fields: refs.fields,
      rules: rules.length > 0 ? rules : undefined,
      minInterval,
      maxInterval,
      maxAge: optionalDuration(el, v.maxAge),
      immediate: parseBool(el.attrs['req']) === true,
    };
  }

  parseControl(el: Element, bounds: ParseBounds): ControlRequest {
    const v = this.#v;
    let nodes: string[] | undefined;
    const operations: ControlOperation[] = [];
    for (const c of el.children) {
      if (typeof c === 'string') continue;
      const name = localName(c);
      if (name === v.node) {
        (nodes ??= []).push(nameAttr(c, v.nodeId, 'node'));
        if (nodes.length > bounds.nodes) throw bad(`more than ${bounds.nodes} nodes`);
        continue;
      }
      if (name === 'x')
        throw new StanzaError({ condition: 'feature-not-implemented', text: 'data form control is not supported' });
      const kind = this.#parameterKinds.get(name);
      if (kind === undefined) continue;
      const raw = c.attrs[v.value];
      if (typeof raw !== 'string') throw bad(`parameter without ${v.value}`);
      if (raw.length > 65536) throw bad('parameter value too long');
      const op: { -readonly [K in keyof ControlOperation]: ControlOperation[K] } = {
        name: nameAttr(c, v.name, 'parameter'),
        kind,
        raw,
      };
      const t = c.attrs[v.enumType];
      if (kind === 'enum' && typeof t === 'string') op.enumType = t;
      operations.push(op);
      if (operations.length > bounds.parameters) throw bad(`more than ${bounds.parameters} parameters`);
    }
    if (operations.length === 0) throw bad('no parameter to set');
    return nodes ? { nodes, operations } : { operations };
  }

  requestId(el: Element): string {
    return requestIdOf(el, this.#v);
  }

  accepted(family: NamespaceFamily, id: string): Element {
    // Both dialects answer a subscription with the sensor-data `accepted` (IoTGateway replaces
    // `:iot:events:` with `:iot:sd:`; iot-events.xml shows `urn:xmpp:iot:sensordata`).
    return xml('accepted', { xmlns: family.sd, [this.#v.id]: id });
  }

  report(
    family: NamespaceFamily,
    id: string,
    fields: readonly FieldSample[],
    errors: readonly ReadoutError[],
    done: boolean,
  ): Element {
    const v = this.#v;
    if (this.#legacy && fields.length === 0 && errors.length > 0) {
      // XEP-0323: errors travel in `failure`, each `error` naming its node and timestamp.
      const failure = xml('failure', { xmlns: family.sd, seqnr: id, done: done ? 'true' : undefined });
      for (const e of errors)
        failure.cnode(xml('error', { nodeId: e.node ?? '', timestamp: formatTimestamp(e.timestamp) }, e.message));
      return failure;
    }
    const root = this.#legacy
      ? xml(v.report, { xmlns: family.sd, seqnr: id, done: done ? 'true' : undefined })
      : xml(v.report, { xmlns: family.sd, id, more: done ? undefined : 'true' });
    let nodeEl: Element = root;
    let node: string | undefined;
    let tsEl: Element | undefined;
    let ts = Number.NaN;
    let opened = false;
    const open = (n: string | undefined): void => {
      if (opened && n === node) return;
      opened = true;
      node = n;
      tsEl = undefined;
      ts = Number.NaN;
      // XEP-0323 readers (Smack) look for fields inside <node> only: the legacy form always has
      // one (nodeId '' for the device itself); the deployed form puts a node-less `ts` at the top.
      nodeEl = n === undefined && !this.#legacy ? root : root.cnode(xml(v.node, { [v.nodeId]: n ?? '' }));
    };
    const stamp = (t: number): Element => {
      if (tsEl === undefined || t !== ts) {
        ts = t;
        tsEl = nodeEl.cnode(xml(v.timestamp, { [v.timestampValue]: formatTimestamp(t) }));
      }
      return tsEl;
    };
    for (const f of fields) {
      open(f.node);
      stamp(f.timestamp).cnode(this.#fieldElement(f));
    }
    if (!this.#legacy)
      for (const e of errors) {
        open(e.node);
        stamp(e.timestamp).cnode(xml('err', null, e.message));
      }
    return root;
  }

  #fieldElement(f: FieldSample): Element {
    const v = this.#v;
    const el = xml(v.fieldKinds[f.kind], { [v.name]: f.name });
    for (const c of f.categories) el.attrs[v.categories[c]] = 'true';
    for (const q of f.quality) el.attrs[v.quality[q]] = 'true';
    if (f.writable) el.attrs[v.writable] = 'true';
    el.attrs[v.value] = formatValue(f);
    if (f.kind === 'quantity') el.attrs[v.unit] = f.unit ?? '';
    else if (f.kind === 'enum') el.attrs[v.enumType] = f.enumType ?? '';
    return el;
  }

  done(family: NamespaceFamily, id: string): Element {
    return xml('done', { xmlns: family.sd, [this.#v.id]: id });
  }

  controlResult(family: NamespaceFamily): Element {
    return xml(this.#v.controlResult, { xmlns: family.ctr });
  }

  paramError(family: NamespaceFamily, name: string, text: string): Element {
    return xml('paramError', { xmlns: family.ctr, [this.#v.paramErrorName]: name }, text);
  }

  // ---- client side ----

  #requestAttrs(el: Element, request: ReadRequest): void {
    const v = this.#v;
    if (request.categories === CAT_ALL) el.attrs['all'] = 'true';
    else for (const c of categoriesOf(request.categories)) el.attrs[v.categories[c]] = 'true';
    if (request.from !== undefined) el.attrs['from'] = formatTimestamp(request.from);
    if (request.to !== undefined) el.attrs['to'] = formatTimestamp(request.to);
    for (const n of request.nodes ?? []) el.cnode(xml(v.node, { [v.nodeId]: n }));
  }

  buildRead(family: NamespaceFamily, id: string, request: ReadRequest): Element {
    const v = this.#v;
    const el = xml(v.req, { xmlns: family.sd, [v.id]: id });
    this.#requestAttrs(el, request);
    for (const f of request.fields ?? []) el.cnode(xml(v.fieldRef, { [v.name]: f }));
    return el;
  }

  buildSubscribe(family: NamespaceFamily, id: string, request: SubscribeRequest): Element {
    const v = this.#v;
    const el = xml('subscribe', { xmlns: family.events, [v.id]: id });
    this.#requestAttrs(el, request);
    if (request.minInterval !== undefined) el.attrs[v.minInterval] = formatDuration(request.minInterval);
    if (request.maxInterval !== undefined) el.attrs[v.maxInterval] = formatDuration(request.maxInterval);
    if (request.maxAge !== undefined) el.attrs[v.maxAge] = formatDuration(request.maxAge);
    if (request.immediate) el.attrs['req'] = 'true';
    for (const r of request.rules ?? []) {
      el.cnode(
        xml(v.fieldRef, {
          [v.name]: r.field,
          [v.currentValue]: r.currentValue,
          [v.changedBy]: r.changedBy,
          [v.changedUp]: r.changedUp,
          [v.changedDown]: r.changedDown,
        }),
      );
    }
    return el;
  }

  buildUnsubscribe(family: NamespaceFamily, id: string): Element {
    return xml('unsubscribe', { xmlns: family.events, [this.#v.id]: id });
  }

  buildControl(family: NamespaceFamily, request: ControlRequest): Element {
    const v = this.#v;
    const el = xml('set', { xmlns: family.ctr });
    for (const n of request.nodes ?? []) el.cnode(xml(v.node, { [v.nodeId]: n }));
    for (const op of request.operations) {
      const attrs: Record<string, string> = { [v.name]: op.name, [v.value]: op.raw };
      if (op.kind === 'enum' && !this.#legacy) attrs[v.enumType] = op.enumType ?? '';
      el.cnode(xml(v.parameterKinds[op.kind], attrs));
    }
    return el;
  }

  parseReport(el: Element, maxFields: number): FieldsReport | undefined {
    const v = this.#v;
    const name = localName(el);
    const idRaw = el.attrs[v.id];
    if (typeof idRaw !== 'string') return undefined;
    if (name === 'done') return { id: idRaw, fields: [], errors: [], done: true };
    const failure = this.#legacy && name === 'failure';
    if (name !== v.report && !failure) return undefined;
    const done = this.#legacy ? parseBool(el.attrs['done']) === true : parseBool(el.attrs['more']) !== true;
    const report: FieldsReport = { id: idRaw, fields: [], errors: [], done };
    if (failure) {
      for (const c of el.children) {
        if (typeof c === 'string' || localName(c) !== 'error' || report.errors.length >= maxFields) continue;
        const node = c.attrs['nodeId'];
        report.errors.push({
          node: node === '' ? undefined : node,
          timestamp: parseTimestamp(c.attrs['timestamp']) ?? Date.now(),
          message: textOf(c).slice(0, 1024),
        });
      }
      return report;
    }
    const walkTimestamp = (ts: Element, node: string | undefined): void => {
      const t = parseTimestamp(ts.attrs[v.timestampValue]);
      if (t === undefined) return;
      for (const c of ts.children) {
        if (typeof c === 'string') continue;
        if (report.fields.length + report.errors.length >= maxFields) return;
        const n = localName(c);
        if (n === 'err') {
          report.errors.push({ node, timestamp: t, message: textOf(c).slice(0, 1024) });
          continue;
        }
        const sample = this.#parseField(c, n, node, t);
        if (sample) report.fields.push(sample);
      }
    };
    for (const c of el.children) {
      if (typeof c === 'string') continue;
      const n = localName(c);
      if (n === v.timestamp) walkTimestamp(c, undefined);
      else if (n === v.node) {
        const node = c.attrs[v.nodeId];
        for (const ts of c.children)
          if (typeof ts !== 'string' && localName(ts) === v.timestamp)
            walkTimestamp(ts, node === '' ? undefined : node);
      }
    }
    return report;
  }

  #parseField(el: Element, elementName: string, node: string | undefined, timestamp: number): FieldSample | undefined {
    const v = this.#v;
    const kind = this.#fieldKinds.get(elementName);
    if (kind === undefined) return undefined;
    const name = el.attrs[v.name];
    const raw = el.attrs[v.value];
    if (typeof name !== 'string' || name.length > MAX_NAME || typeof raw !== 'string') return undefined;
    const value = parseValue(kind, raw);
    if (value === undefined) return undefined;
    let mask = 0;
    if (parseBool(el.attrs['all']) === true) mask = CAT_ALL;
    else for (const c of CATEGORY_NAMES) if (parseBool(el.attrs[v.categories[c]]) === true) mask |= CAT[c];
    let quality: FieldSample['quality'] = NO_QUALITY;
    for (const q of QUALITY_NAMES)
      if (parseBool(el.attrs[v.quality[q]]) === true) quality = quality === NO_QUALITY ? [q] : [...quality, q];
    const sample: { -readonly [K in keyof FieldSample]: FieldSample[K] } = {
      name,
      kind,
      value,
      timestamp,
      categories: categoriesOf(mask),
      quality,
    };
    if (node !== undefined) sample.node = node;
    if (kind === 'quantity') {
      sample.unit = el.attrs[v.unit] ?? '';
      sample.decimals = decimalsOf(raw);
    }
    if (kind === 'enum') sample.enumType = el.attrs[v.enumType] ?? '';
    if (parseBool(el.attrs[v.writable]) === true) sample.writable = true;
    return sample;
  }

  controlElement(kind: ParameterKind): string {
    return this.#v.parameterKinds[kind];
  }

  fieldElement(kind: FieldKind): string {
    return this.#v.fieldKinds[kind];
  }
}

/** The wire text of a field value. */
export function formatValue(f: Pick<FieldSample, 'kind' | 'value' | 'decimals'>): string {
  if (f.kind === 'quantity' && typeof f.value === 'number') return formatNumber(f.value, f.decimals);
  return String(f.value);
}

/** A field value from its wire text, or undefined when it does not fit the kind. */
export function parseValue(kind: FieldKind, raw: string): FieldValue | undefined {
  switch (kind) {
    case 'quantity':
      return parseNumber(raw);
    case 'int':
      return parseInteger(raw, 32);
    case 'long':
      return parseInteger(raw, 64);
    case 'boolean':
      return parseBool(raw);
    case 'duration':
      return parseDuration(raw) === undefined ? undefined : raw;
    case 'dateTime':
    case 'date':
      return parseTimestamp(raw) === undefined ? undefined : raw;
    default:
      return raw.length > 65536 ? undefined : raw;
  }
}

export const NF_CODEC: DialectCodec = new Codec(NF_VOCABULARY, false);
export const LEGACY_CODEC: DialectCodec = new Codec(LEGACY_VOCABULARY, true);
