/**
 * Scalar wire forms shared by both dialects: xs:boolean, xs:dateTime timestamps, xs:duration
 * intervals, and numbers that keep their decimals. Parsers return `undefined` for bad input so
 * the caller decides the error (a request is answered `bad-request`; a report value is dropped).
 */
import type { FieldCategory, FieldQuality } from '../types.js';

/** xs:boolean: `true`/`false`/`1`/`0`. */
export function parseBool(v: string | undefined): boolean | undefined {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}

/** xs:dateTime → ms since the epoch (a zone-less stamp is read as UTC). */
export function parseTimestamp(v: string | undefined): number | undefined {
  if (v === undefined || v.length > 64) return undefined;
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(v) || !v.includes('T') ? v : `${v}Z`;
  const ms = Date.parse(zoned);
  return Number.isFinite(ms) ? ms : undefined;
}

export function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString();
}

const DURATION =
  /^(-)?P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** xs:duration → ms (a year counts 365 days, a month 30: intervals, not calendar arithmetic). */
export function parseDuration(v: string | undefined): number | undefined {
  if (v === undefined || v.length > 64 || v === 'P' || v.endsWith('T')) return undefined;
  const m = DURATION.exec(v);
  if (!m) return undefined;
  const n = (i: number): number => (m[i] === undefined ? 0 : Number(m[i]));
  const ms = ((((n(2) * 365 + n(3) * 30 + n(4)) * 24 + n(5)) * 60 + n(6)) * 60 + n(7)) * 1000;
  if (!Number.isFinite(ms)) return undefined;
  return m[1] ? -ms : ms;
}

/** ms → xs:duration (`PT1H2M3.5S`). */
export function formatDuration(ms: number): string {
  let rest = Math.max(0, ms) / 1000;
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  rest -= m * 60;
  const s = Math.round(rest * 1000) / 1000;
  let out = 'PT';
  if (h > 0) out += `${h}H`;
  if (m > 0) out += `${m}M`;
  if (s > 0 || out === 'PT') out += `${s}S`;
  return out;
}

/** A finite number (xs:double / xs:decimal), or undefined. */
export function parseNumber(v: string | undefined): number | undefined {
  if (v === undefined || v.length === 0 || v.length > 64) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Decimals written in a number's text (`21.50` → 2). */
export function decimalsOf(v: string): number {
  const dot = v.indexOf('.');
  if (dot < 0) return 0;
  let end = v.length;
  const e = v.search(/[eE]/);
  if (e > dot) end = e;
  return end - dot - 1;
}

export function formatNumber(value: number, decimals: number | undefined): string {
  return decimals === undefined ? String(value) : value.toFixed(Math.min(20, Math.max(0, decimals)));
}

/** An xs:int / xs:long within JS's safe integer range. */
export function parseInteger(v: string | undefined, bits: 32 | 64): number | undefined {
  if (v === undefined || !/^[+-]?\d{1,20}$/.test(v)) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) return undefined;
  if (bits === 32 && (n < -2147483648 || n > 2147483647)) return undefined;
  return n;
}

// Category bit masks: cheap to store per subscription and per field.
export const CAT: Readonly<Record<FieldCategory, number>> = {
  momentary: 1,
  peak: 2,
  status: 4,
  computed: 8,
  identity: 16,
  historical: 32,
};
export const CAT_ALL = 63;
export const CATEGORY_NAMES: readonly FieldCategory[] = [
  'momentary',
  'peak',
  'status',
  'computed',
  'identity',
  'historical',
];

export function categoryMask(categories: readonly FieldCategory[] | undefined, fallback: number): number {
  if (!categories) return fallback;
  let mask = 0;
  for (const c of categories) mask |= CAT[c];
  return mask;
}

/** Interned category arrays: one shared array per mask, so samples allocate none. */
const CATEGORY_ARRAYS: (readonly FieldCategory[])[] = [];
export function categoriesOf(mask: number): readonly FieldCategory[] {
  let a = CATEGORY_ARRAYS[mask];
  if (!a) {
    a = Object.freeze(CATEGORY_NAMES.filter((c) => (mask & CAT[c]) !== 0));
    CATEGORY_ARRAYS[mask] = a;
  }
  return a;
}

/** Quality flags: nf short attribute ↔ legacy long attribute ↔ our name (the legacy name). */
export const QUALITY_NF: Readonly<Record<FieldQuality, string>> = {
  missing: 'ms',
  inProgress: 'pr',
  automaticEstimate: 'ae',
  manualEstimate: 'me',
  manualReadout: 'mr',
  automaticReadout: 'ar',
  timeOffset: 'of',
  warning: 'w',
  error: 'er',
  signed: 'so',
  invoiced: 'iv',
  endOfSeries: 'eos',
  powerFailure: 'pf',
  invoiceConfirmed: 'ic',
};
export const QUALITY_NAMES = Object.keys(QUALITY_NF) as FieldQuality[];
export const NO_QUALITY: readonly FieldQuality[] = Object.freeze([]);
export const AUTOMATIC_READOUT: readonly FieldQuality[] = Object.freeze(['automaticReadout'] as FieldQuality[]);
export const MISSING: readonly FieldQuality[] = Object.freeze(['missing'] as FieldQuality[]);
