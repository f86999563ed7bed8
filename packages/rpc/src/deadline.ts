/**
 * The `xmppbus-deadline` header value: RFC 3339 UTC with milliseconds (`2030-01-01T00:00:00.000Z`).
 * `Date#toISOString` and `Date.parse` cost ~1–3 µs each, a large share of an RPC's own CPU budget,
 * so both directions cache the per-second part and only handle the milliseconds per call.
 */
let fmtSecond = NaN;
let fmtPrefix = '';

const MS = Array.from({ length: 1000 }, (_, i) => `.${String(i).padStart(3, '0')}Z`);

/** Formats epoch ms as `YYYY-MM-DDTHH:MM:SS.mmmZ`. */
export function formatDeadline(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== fmtSecond) {
    fmtSecond = second;
    fmtPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return fmtPrefix + MS[ms - second * 1000]!;
}

let parsePrefix = '';
let parseBase = NaN;

/** Parses an RFC 3339 instant to epoch ms; NaN when it is not one. Fast for our own format. */
export function parseDeadline(value: string): number {
  if (value.length === 24 && value.charCodeAt(23) === 90 /* Z */ && value.charCodeAt(19) === 46 /* . */) {
    const prefix = value.slice(0, 19);
    if (prefix !== parsePrefix) {
      const base = Date.parse(`${prefix}Z`);
      if (Number.isNaN(base)) return NaN;
      parsePrefix = prefix;
      parseBase = base;
    }
    const a = value.charCodeAt(20) - 48;
    const b = value.charCodeAt(21) - 48;
    const c = value.charCodeAt(22) - 48;
    if (a >= 0 && a <= 9 && b >= 0 && b <= 9 && c >= 0 && c <= 9) return parseBase + a * 100 + b * 10 + c;
    return NaN;
  }
  // Other RFC 3339 forms (offsets, other precisions) from other implementations.
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(value) ? Date.parse(value) : NaN;
}
