/**
 * Typed node configuration ⇄ XEP-0060 `pubsub#node_config` form fields. Only the options a
 * caller sets are sent; `extra` carries any other server-specific field verbatim.
 */
import { ConfigError } from '@xmppbus/core';
import type { DataForm, FieldValue } from './forms.js';

export type AccessModel = 'open' | 'presence' | 'roster' | 'authorize' | 'whitelist';
export type PublishModel = 'publishers' | 'subscribers' | 'open';
export type NotificationType = 'normal' | 'headline';
export type SendLastPublishedItem = 'never' | 'on_sub' | 'on_sub_and_presence';

/** Node options (XEP-0060 §16.4.4). Unset options keep the server's default. */
export interface NodeConfig {
  /** `pubsub#access_model`: who may subscribe and retrieve items. */
  accessModel?: AccessModel;
  /** `pubsub#publish_model`: who may publish. */
  publishModel?: PublishModel;
  /** `pubsub#persist_items`: keep items after notifying (needed for catch-up). */
  persistItems?: boolean;
  /** `pubsub#max_items`: items kept; `'max'` = the server's maximum. */
  maxItems?: number | 'max';
  /** `pubsub#deliver_payloads`: notifications carry the payload (else only the item id). */
  deliverPayloads?: boolean;
  /** `pubsub#deliver_notifications`. */
  deliverNotifications?: boolean;
  /** `pubsub#notify_retract`: subscribers are told when an item is retracted. */
  notifyRetract?: boolean;
  /** `pubsub#notify_delete`: subscribers are told when the node is deleted. */
  notifyDelete?: boolean;
  /** `pubsub#notify_config`: subscribers are told when the configuration changes. */
  notifyConfig?: boolean;
  /** `pubsub#notification_type`: `headline` messages are never stored offline; `normal` ones are. */
  notificationType?: NotificationType;
  /** `pubsub#send_last_published_item`. */
  sendLastPublishedItem?: SendLastPublishedItem;
  /** `pubsub#title`. */
  title?: string;
  /** Any other field, by its `var`, as wire strings. */
  extra?: Readonly<Record<string, FieldValue>>;
}

type Kind = 'bool' | 'int' | 'text';
const FIELDS: ReadonlyArray<readonly [Exclude<keyof NodeConfig, 'extra'>, string, Kind]> = [
  ['accessModel', 'pubsub#access_model', 'text'],
  ['publishModel', 'pubsub#publish_model', 'text'],
  ['persistItems', 'pubsub#persist_items', 'bool'],
  ['maxItems', 'pubsub#max_items', 'int'],
  ['deliverPayloads', 'pubsub#deliver_payloads', 'bool'],
  ['deliverNotifications', 'pubsub#deliver_notifications', 'bool'],
  ['notifyRetract', 'pubsub#notify_retract', 'bool'],
  ['notifyDelete', 'pubsub#notify_delete', 'bool'],
  ['notifyConfig', 'pubsub#notify_config', 'bool'],
  ['notificationType', 'pubsub#notification_type', 'text'],
  ['sendLastPublishedItem', 'pubsub#send_last_published_item', 'text'],
  ['title', 'pubsub#title', 'text'],
];

/** Field `var` of a typed option, e.g. `persistItems` → `pubsub#persist_items`. */
export function fieldOf(key: Exclude<keyof NodeConfig, 'extra'>): string {
  for (const [k, v] of FIELDS) if (k === key) return v;
  throw new ConfigError(`unknown node option ${key}`);
}

/** The wire fields for `config` (booleans as `1`/`0`). */
export function configToFields(config: NodeConfig): Map<string, FieldValue> {
  const out = new Map<string, FieldValue>();
  for (const [key, name, kind] of FIELDS) {
    const v = config[key];
    if (v === undefined) continue;
    out.set(name, kind === 'bool' ? (v ? '1' : '0') : String(v));
  }
  for (const [k, v] of Object.entries(config.extra ?? {})) out.set(k, v);
  return out;
}

function parseBool(s: string | undefined): boolean | undefined {
  if (s === undefined) return undefined;
  return s === '1' || s === 'true';
}

/** Reads a node configuration form into typed options (unknown fields land in `extra`). */
export function configFromForm(form: DataForm): NodeConfig {
  const cfg: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const [key, name, kind] of FIELDS) {
    known.add(name);
    const f = form.fields.get(name);
    const v = f?.values[0];
    if (v === undefined) continue;
    if (kind === 'bool') cfg[key] = parseBool(v);
    else if (kind === 'int') cfg[key] = v === 'max' ? 'max' : Number(v);
    else cfg[key] = v;
  }
  const extra: Record<string, FieldValue> = {};
  for (const [name, f] of form.fields) {
    if (name === 'FORM_TYPE' || known.has(name)) continue;
    extra[name] = f.type?.endsWith('-multi') ? f.values : (f.values[0] ?? '');
  }
  cfg['extra'] = extra;
  return cfg as NodeConfig;
}
