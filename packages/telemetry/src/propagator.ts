/**
 * W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage (`baggage`) in XEP-0131 SHIM
 * headers (docs/protocol.md, "Trace context"). A `TextMapPropagator` of its own, so the context
 * travels even when the application registered no global propagator; pass another one (e.g. the
 * SDK's composite) through `instrument(session, { propagator })`.
 */
import {
  createTraceState,
  isSpanContextValid,
  propagation,
  trace,
  type Context,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
} from '@opentelemetry/api';
import type { Headers } from '@xmppbus/core';

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';
export const BAGGAGE = 'baggage';

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
/** W3C Baggage limits: at most 8192 bytes and 180 entries. */
const MAX_BAGGAGE_LENGTH = 8192;
const MAX_BAGGAGE_ENTRIES = 180;

/** Reads SHIM headers as a propagation carrier. */
export const headersGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key),
  keys: (carrier) => [...carrier.keys()],
};

/** Writes into a `Map` of headers to send. */
export const headersSetter: TextMapSetter<Map<string, string>> = {
  set: (carrier, key, value) => {
    carrier.set(key, value);
  },
};

export class ShimTraceContextPropagator implements TextMapPropagator {
  inject(context: Context, carrier: unknown, setter: TextMapSetter): void {
    const sc = trace.getSpanContext(context);
    if (sc && isSpanContextValid(sc)) {
      setter.set(carrier, TRACEPARENT, `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & 1).toString(16)}`);
      const state = sc.traceState?.serialize();
      if (state) setter.set(carrier, TRACESTATE, state);
    }
    const baggage = propagation.getBaggage(context);
    if (baggage) {
      const parts: string[] = [];
      let length = 0;
      for (const [key, entry] of baggage.getAllEntries()) {
        const part = `${encodeURIComponent(key)}=${encodeURIComponent(entry.value)}`;
        if (parts.length >= MAX_BAGGAGE_ENTRIES || length + part.length + 1 > MAX_BAGGAGE_LENGTH) break;
        parts.push(part);
        length += part.length + 1;
      }
      if (parts.length > 0) setter.set(carrier, BAGGAGE, parts.join(','));
    }
  }

  extract(context: Context, carrier: unknown, getter: TextMapGetter): Context {
    let ctx = context;
    const sc = parseTraceparent(first(getter.get(carrier, TRACEPARENT)));
    if (sc) {
      const state = first(getter.get(carrier, TRACESTATE));
      if (state !== undefined) {
        try {
          sc.traceState = createTraceState(state);
        } catch {
          // A malformed tracestate is dropped (W3C: the traceparent still counts).
        }
      }
      ctx = trace.setSpanContext(ctx, sc);
    }
    const baggage = first(getter.get(carrier, BAGGAGE));
    if (baggage !== undefined && baggage.length <= MAX_BAGGAGE_LENGTH) {
      const entries: Record<string, { value: string }> = {};
      let n = 0;
      for (const item of baggage.split(',')) {
        const kv = item.split(';', 1)[0]!;
        const eq = kv.indexOf('=');
        if (eq <= 0 || ++n > MAX_BAGGAGE_ENTRIES) continue;
        try {
          entries[decodeURIComponent(kv.slice(0, eq).trim())] = { value: decodeURIComponent(kv.slice(eq + 1).trim()) };
        } catch {
          // A malformed percent-encoding drops that entry only.
        }
      }
      if (n > 0) ctx = propagation.setBaggage(ctx, propagation.createBaggage(entries));
    }
    return ctx;
  }

  fields(): string[] {
    return [TRACEPARENT, TRACESTATE, BAGGAGE];
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A remote span context from a `traceparent` value, or undefined when it is not valid. */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (value === undefined) return undefined;
  const m = TRACEPARENT_RE.exec(value.trim());
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return undefined;
  const sc: SpanContext = { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16) & 1, isRemote: true };
  return isSpanContextValid(sc) ? sc : undefined;
}
