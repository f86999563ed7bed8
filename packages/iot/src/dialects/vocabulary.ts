/**
 * The element and attribute names of both dialects, side by side. The deployed (`nf`) names are
 * from PeterWaher/IoTGateway (Waher.Networking.XMPP.Sensor/Control, SensorDataServerRequest,
 * Waher.Things.SensorData field classes); the legacy names from xsf/xeps xep-0323.xml (0.6),
 * xep-0325.xml (0.5.1) and inbox/iot-events.xml (0.0.1). docs/protocol.md §7 shows both.
 */
import type { FieldCategory, FieldKind, FieldQuality, ParameterKind } from '../types.js';
import { QUALITY_NF } from '../wire/values.js';

export interface Vocabulary {
  /** Request id attribute (`id` / `seqnr`). */
  readonly id: string;
  readonly req: string;
  readonly node: string;
  readonly nodeId: string;
  /** Field name element in requests (`f` / `field`) and its name attribute. */
  readonly fieldRef: string;
  readonly name: string;
  readonly value: string;
  readonly unit: string;
  readonly enumType: string;
  readonly writable: string;
  readonly timestamp: string;
  readonly timestampValue: string;
  /** Report element (`resp` / `fields`). */
  readonly report: string;
  /** Request category attributes. */
  readonly categories: Readonly<Record<FieldCategory, string>>;
  readonly quality: Readonly<Record<FieldQuality, string>>;
  readonly fieldKinds: Readonly<Record<FieldKind, string>>;
  readonly parameterKinds: Readonly<Record<ParameterKind, string>>;
  readonly minInterval: string;
  readonly maxInterval: string;
  readonly maxAge: string;
  readonly changedBy: string;
  readonly changedUp: string;
  readonly changedDown: string;
  readonly currentValue: string;
  readonly controlResult: string;
  readonly paramErrorName: string;
}

export const NF_VOCABULARY: Vocabulary = {
  id: 'id',
  req: 'req',
  node: 'nd',
  nodeId: 'id',
  fieldRef: 'f',
  name: 'n',
  value: 'v',
  unit: 'u',
  enumType: 't',
  writable: 'ctr',
  timestamp: 'ts',
  timestampValue: 'v',
  report: 'resp',
  categories: { momentary: 'm', peak: 'p', status: 's', computed: 'c', identity: 'i', historical: 'h' },
  quality: QUALITY_NF,
  fieldKinds: {
    quantity: 'q',
    int: 'i',
    long: 'l',
    boolean: 'b',
    enum: 'e',
    string: 's',
    dateTime: 'dt',
    date: 'd',
    time: 't',
    duration: 'dr',
  },
  parameterKinds: {
    boolean: 'b',
    int: 'i',
    long: 'l',
    double: 'db',
    string: 's',
    enum: 'e',
    dateTime: 'dt',
    date: 'd',
    time: 't',
    duration: 'dr',
    color: 'cl',
  },
  minInterval: 'minInt',
  maxInterval: 'maxInt',
  maxAge: 'maxAge',
  changedBy: 'by',
  changedUp: 'up',
  changedDown: 'dn',
  currentValue: 'v',
  controlResult: 'resp',
  paramErrorName: 'n',
};

export const LEGACY_VOCABULARY: Vocabulary = {
  id: 'seqnr',
  req: 'req',
  node: 'node',
  nodeId: 'nodeId',
  fieldRef: 'field',
  name: 'name',
  value: 'value',
  unit: 'unit',
  enumType: 'dataType',
  writable: 'writable',
  timestamp: 'timestamp',
  timestampValue: 'value',
  report: 'fields',
  categories: {
    momentary: 'momentary',
    peak: 'peak',
    status: 'status',
    computed: 'computed',
    identity: 'identity',
    historical: 'historical',
  },
  quality: {
    missing: 'missing',
    inProgress: 'inProgress',
    automaticEstimate: 'automaticEstimate',
    manualEstimate: 'manualEstimate',
    manualReadout: 'manualReadout',
    automaticReadout: 'automaticReadout',
    timeOffset: 'timeOffset',
    warning: 'warning',
    error: 'error',
    signed: 'signed',
    invoiced: 'invoiced',
    endOfSeries: 'endOfSeries',
    powerFailure: 'powerFailure',
    invoiceConfirmed: 'invoiceConfirmed',
  },
  fieldKinds: {
    quantity: 'numeric',
    int: 'int',
    long: 'long',
    boolean: 'boolean',
    enum: 'enum',
    string: 'string',
    dateTime: 'dateTime',
    date: 'date',
    time: 'time',
    duration: 'duration',
  },
  parameterKinds: {
    boolean: 'boolean',
    int: 'int',
    long: 'long',
    double: 'double',
    string: 'string',
    // XEP-0325 has no enum parameter: an enum travels as a string.
    enum: 'string',
    dateTime: 'dateTime',
    date: 'date',
    time: 'time',
    duration: 'duration',
    color: 'color',
  },
  minInterval: 'minInterval',
  maxInterval: 'maxInterval',
  maxAge: 'maxAge',
  changedBy: 'changedBy',
  changedUp: 'changedUp',
  changedDown: 'changedDown',
  currentValue: 'currentValue',
  controlResult: 'setResponse',
  paramErrorName: 'var',
};

/** Reverse lookup: element name → kind (legacy `timeSpan`, an older name of `duration`, is accepted). */
export function reverse<K extends string>(map: Readonly<Record<K, string>>, extra?: Record<string, K>): Map<string, K> {
  const out = new Map<string, K>();
  for (const k in map) if (!out.has(map[k])) out.set(map[k], k);
  if (extra) for (const [name, k] of Object.entries(extra)) out.set(name, k);
  return out;
}
