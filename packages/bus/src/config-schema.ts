/**
 * The bus configuration: one JSON Schema (validated with ajv, `additionalProperties: false` at
 * every level, so a typo is an error rather than a silently ignored key) and the TypeScript
 * shape it describes. Only what a deployment tunes is here; code-level options (handlers,
 * custom stores, clocks) stay in code.
 */
import type { AccessRule } from '@xmppbus/core';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent';
export type LogFormat = 'json' | 'text';

/** A secret: a string, or a callback called at every connection attempt (rotation). Object config only. */
export type SecretInput = string | (() => string | Promise<string>);

export interface RetryConfig {
  attempts?: number;
  initialDelay?: number;
  maxDelay?: number;
  factor?: number;
  jitter?: number;
}

export interface TlsConfig {
  /** File of trusted CA certificate(s), PEM. */
  caFile?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
  /** Client transport only: refuse a server that offers no STARTTLS. */
  required?: boolean;
}

export interface TransportConfig {
  /** `component` (XEP-0114, a service owning a domain) or `client` (c2s account). */
  kind: 'component' | 'client';
  /** `xmpp://host:port` of the server's component or c2s listener. */
  service: string;
  /**
   * Component only: more listeners of the same server or cluster (e.g. the other ejabberd
   * nodes), tried in turn after `service` when it cannot be reached (see docs/deployment.md).
   */
  endpoints?: string[];
  /** Component: the component's domain. Client: the XMPP domain of the account. */
  domain: string;
  /** Client only: the account's local part. */
  username?: string;
  /** Client only: the resource to bind. */
  resource?: string;
  /** Client only: force one SASL mechanism. */
  mechanism?: 'SCRAM-SHA-256' | 'SCRAM-SHA-1' | 'PLAIN';
  /** Client only: allow PLAIN on an unencrypted stream (loopback tests). */
  allowPlainWithoutTls?: boolean;
  /** The secret. Prefer `XMPPBUS_PASSWORD` or `passwordFile`; redacted in `bus.config`. */
  password?: SecretInput;
  /** File holding the secret (read at every connection attempt; surrounding whitespace trimmed). */
  passwordFile?: string;
  /** Deadline of each connection attempt, ms. */
  timeout?: number;
  /** Reconnect backoff after a drop; `false` = the bus closes on the first drop. */
  reconnect?: RetryConfig | false;
  /** Stanzas that may wait while not online. */
  maxQueue?: number;
  tls?: TlsConfig;
}

export interface AccessConfig {
  /** Development preset: anyone may call anything (the session warns at start). */
  allowAll?: boolean;
  /** What applies when no rule matches (default `services`: same-organisation services only). */
  fallback?: 'services' | 'deny';
  /** Checked in order; the first match decides (core `AccessRule`). */
  rules?: AccessRule[];
}

export interface RpcConfig {
  server?: {
    concurrency?: number;
    maxQueue?: number;
    validateResponses?: boolean;
    deadlineGrace?: number;
    /** Disco identity name. */
    name?: string;
  };
  client?: {
    timeout?: number;
    validate?: boolean;
    propagateDeadline?: 'explicit' | 'always' | 'never';
    retry?: (RetryConfig & { attemptTimeout?: number }) | false;
  };
}

export interface PubSubConfig {
  /** The pub/sub service JID, e.g. `pubsub.example.org`. */
  service: string;
  /** Default per-request timeout, ms. */
  timeout?: number;
}

export interface SqliteStoreConfig {
  /** The SQLite file (its directory must exist). Needs `@xmppbus/store-sqlite` installed. */
  path: string;
  synchronous?: 'normal' | 'full';
  busyTimeout?: number;
}

export interface MessagingConfig {
  /** Durable store; default: in memory (not durable). */
  store?: SqliteStoreConfig;
  defaultQos?: 0 | 1 | 2;
  /** ms or `'30s'`, `'1h'`, `'7d'`… */
  defaultTtl?: number | string;
  window?: number;
  attemptTimeout?: number;
  retry?: RetryConfig;
  maxOutbox?: number;
  overflow?: 'reject' | 'drop-oldest' | 'block';
  validate?: boolean;
}

export interface BusConfig {
  /** The service's name, for logs (default: the transport's domain). */
  name?: string;
  transport?: TransportConfig;
  log?: { level?: LogLevel; format?: LogFormat };
  access?: AccessConfig;
  /** `iqTimeout`: default IQ timeout, ms; `probeInterval`: ping a peer a call waits on after this long, ms (0 = never). */
  session?: { iqTimeout?: number; probeInterval?: number };
  rpc?: RpcConfig;
  pubsub?: PubSubConfig;
  messaging?: MessagingConfig;
  /**
   * OpenTelemetry traces and metrics through the globally registered providers (default
   * enabled: without an SDK registered they cost next to nothing).
   */
  telemetry?: { enabled?: boolean };
  /**
   * Read only by the local development server (`xmppbus server start`, `@xmppbus/server`): the
   * components and accounts it declares besides this service's own. Never holds secrets: the
   * server generates them. The bus itself ignores this section.
   */
  server?: ServerSection;
}

/** See `BusConfig.server`. */
export interface ServerSection {
  kind?: 'prosody' | 'ejabberd';
  /** The XMPP domain (default: the parent of `transport.domain`, else `localhost`). */
  domain?: string;
  /** Component names to declare, e.g. `[orders.localhost, billing.localhost]`. */
  components?: string[];
  /** c2s account names (local parts) to create with random passwords. */
  accounts?: string[];
  /** JIDs that may create pub/sub nodes and publish anywhere (default: every component). */
  pubsubAdmins?: string[];
}

// ---- the JSON Schema --------------------------------------------------------------------------

type Schema = Readonly<Record<string, unknown>>;

const obj = (properties: Record<string, Schema>, required: string[] = []): Schema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});
const str: Schema = { type: 'string', minLength: 1 };
const bool: Schema = { type: 'boolean' };
const ms: Schema = { type: 'number', minimum: 0 };
const posInt: Schema = { type: 'integer', minimum: 1 };
const enumOf = (...values: (string | number)[]): Schema => ({ enum: values });
const stringOrList: Schema = { anyOf: [str, { type: 'array', items: str, minItems: 1 }] };

const retry = obj({
  attempts: { type: 'number', minimum: 1 },
  initialDelay: ms,
  maxDelay: ms,
  factor: { type: 'number', minimum: 1 },
  jitter: { type: 'number', minimum: 0, maximum: 1 },
});

export const BUS_CONFIG_SCHEMA: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'urn:xmppbus:bus:config:1',
  ...obj({
    name: str,
    transport: obj(
      {
        kind: enumOf('component', 'client'),
        service: { type: 'string', pattern: '^xmpps?://' },
        endpoints: { type: 'array', items: { type: 'string', pattern: '^xmpps?://' } },
        domain: str,
        username: str,
        resource: str,
        mechanism: enumOf('SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'),
        allowPlainWithoutTls: bool,
        password: { type: 'string' },
        passwordFile: str,
        timeout: { type: 'number', exclusiveMinimum: 0 },
        reconnect: { anyOf: [retry, { const: false }] },
        maxQueue: posInt,
        tls: obj({ caFile: str, servername: str, rejectUnauthorized: bool, required: bool }),
      },
      ['kind', 'service', 'domain'],
    ),
    log: obj({ level: enumOf('error', 'warn', 'info', 'debug', 'silent'), format: enumOf('json', 'text') }),
    telemetry: obj({ enabled: bool }),
    access: obj({
      allowAll: bool,
      fallback: enumOf('services', 'deny'),
      rules: {
        type: 'array',
        items: obj({ from: stringOrList, to: stringOrList, effect: enumOf('allow', 'deny') }, ['from']),
      },
    }),
    session: obj({ iqTimeout: { type: 'number', exclusiveMinimum: 0 }, probeInterval: { type: 'number', minimum: 0 } }),
    rpc: obj({
      server: obj({
        concurrency: posInt,
        maxQueue: { type: 'integer', minimum: 0 },
        validateResponses: bool,
        deadlineGrace: ms,
        name: str,
      }),
      client: obj({
        timeout: { type: 'number', exclusiveMinimum: 0 },
        validate: bool,
        propagateDeadline: enumOf('explicit', 'always', 'never'),
        retry: {
          anyOf: [
            { ...retry, properties: { ...(retry['properties'] as object), attemptTimeout: ms } },
            { const: false },
          ],
        },
      }),
    }),
    pubsub: obj({ service: str, timeout: { type: 'number', exclusiveMinimum: 0 } }, ['service']),
    messaging: obj({
      store: obj({ path: str, synchronous: enumOf('normal', 'full'), busyTimeout: { type: 'integer', minimum: 0 } }, [
        'path',
      ]),
      defaultQos: enumOf(0, 1, 2),
      defaultTtl: { anyOf: [ms, { type: 'string', pattern: '^\\d+(ms|s|m|h|d)$' }] },
      window: posInt,
      attemptTimeout: { type: 'number', exclusiveMinimum: 0 },
      retry,
      maxOutbox: posInt,
      overflow: enumOf('reject', 'drop-oldest', 'block'),
      validate: bool,
    }),
    server: obj({
      kind: enumOf('prosody', 'ejabberd'),
      domain: str,
      components: { type: 'array', items: str, uniqueItems: true },
      accounts: { type: 'array', items: str, uniqueItems: true },
      pubsubAdmins: { type: 'array', items: str },
    }),
  }),
};
