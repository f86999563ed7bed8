import { Type } from '@sinclair/typebox';
import { event, type PayloadOf } from '@xmppbus/schema';
import type { AlertTransition } from './alerts.js';

/** Namespace of the monitor's alert events (docs/protocol.md, IoT section). */
export const NS_IOT_ALERTS = 'urn:xmppbus:iot:alerts:1';

const attr = { xml: { attribute: true } } as const;

/**
 * An alert raised or cleared, as the monitor publishes it to its pub/sub node:
 *
 *     <alert xmlns='urn:xmppbus:iot:alerts:1' state='raised' kind='threshold' severity='critical'
 *            rule='too-hot' agent='thermo-1@example.org' field='temperature' at='2026-…Z'>
 *       <message>temperature 31.2 °C above 30 °C</message><value>31.2</value>
 *     </alert>
 *
 * The item id is `<rule>/<agent>/<field>`, so a node keeping the last item per id holds each
 * alert's latest state.
 */
export const AlertEvent = event({
  ns: NS_IOT_ALERTS,
  name: 'alert',
  schema: Type.Object({
    state: Type.Union([Type.Literal('raised'), Type.Literal('cleared')], attr),
    kind: Type.Union([Type.Literal('threshold'), Type.Literal('stale'), Type.Literal('offline')], attr),
    severity: Type.Union([Type.Literal('warning'), Type.Literal('critical')], attr),
    rule: Type.String(attr),
    agent: Type.String(attr),
    field: Type.Optional(Type.String(attr)),
    /** When it was raised or cleared (ISO 8601). */
    at: Type.String(attr),
    message: Type.String(),
    /** The value that raised it, as text. */
    value: Type.Optional(Type.String()),
  }),
});

export type AlertEventPayload = PayloadOf<typeof AlertEvent>;

/** What the monitor needs of a `PubSub` (`@xmppbus/pubsub`) to publish alert events. */
export interface AlertPublisher {
  publish(
    contract: typeof AlertEvent,
    node: string,
    payload: AlertEventPayload,
    options: { id: string; timeout: number },
  ): Promise<unknown>;
}

/** The event of an alert transition (the item id is the alert's id). */
export function alertEventPayload(t: AlertTransition): AlertEventPayload {
  const a = t.alert;
  return {
    state: t.state,
    kind: a.kind,
    severity: a.severity,
    rule: a.rule,
    agent: a.agent,
    field: a.field,
    at: new Date(t.at).toISOString(),
    message: a.message,
    value: a.value === undefined ? undefined : String(a.value),
  };
}
