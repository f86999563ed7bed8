/**
 * `XMPPBUS_*` environment variables → config paths. An explicit table rather than a generic
 * `A_B_C → a.b.c` rule: config keys are camelCase (`passwordFile`, `iqTimeout`), which a generic
 * rule cannot spell, and a table lets an unknown (mistyped) variable be reported.
 */
export type EnvType = 'string' | 'number' | 'boolean';

export interface EnvBinding {
  readonly path: readonly string[];
  readonly type: EnvType;
}

const b = (path: string, type: EnvType = 'string'): EnvBinding => ({ path: path.split('.'), type });

/** The documented mapping (README "Environment variables"). */
export const ENV_BINDINGS: Readonly<Record<string, EnvBinding>> = Object.freeze({
  XMPPBUS_NAME: b('name'),
  XMPPBUS_TRANSPORT_KIND: b('transport.kind'),
  XMPPBUS_TRANSPORT_SERVICE: b('transport.service'),
  XMPPBUS_TRANSPORT_DOMAIN: b('transport.domain'),
  XMPPBUS_TRANSPORT_USERNAME: b('transport.username'),
  XMPPBUS_TRANSPORT_RESOURCE: b('transport.resource'),
  XMPPBUS_TRANSPORT_TIMEOUT: b('transport.timeout', 'number'),
  XMPPBUS_TRANSPORT_TLS_CA_FILE: b('transport.tls.caFile'),
  XMPPBUS_PASSWORD: b('transport.password'),
  XMPPBUS_PASSWORD_FILE: b('transport.passwordFile'),
  XMPPBUS_LOG_LEVEL: b('log.level'),
  XMPPBUS_LOG_FORMAT: b('log.format'),
  XMPPBUS_TELEMETRY_ENABLED: b('telemetry.enabled', 'boolean'),
  XMPPBUS_ACCESS_ALLOW_ALL: b('access.allowAll', 'boolean'),
  XMPPBUS_ACCESS_FALLBACK: b('access.fallback'),
  XMPPBUS_SESSION_IQ_TIMEOUT: b('session.iqTimeout', 'number'),
  XMPPBUS_SESSION_PROBE_INTERVAL: b('session.probeInterval', 'number'),
  XMPPBUS_RPC_CLIENT_TIMEOUT: b('rpc.client.timeout', 'number'),
  XMPPBUS_RPC_SERVER_CONCURRENCY: b('rpc.server.concurrency', 'number'),
  XMPPBUS_PUBSUB_SERVICE: b('pubsub.service'),
  XMPPBUS_MESSAGING_STORE_PATH: b('messaging.store.path'),
  XMPPBUS_MESSAGING_DEFAULT_QOS: b('messaging.defaultQos', 'number'),
});

/** Variables with another meaning (not config values): never reported as unknown. */
const OTHER_VARS = new Set(['XMPPBUS_CONFIG', 'XMPPBUS_DEBUG', 'XMPPBUS_PROBE_DEBUG']);

export type Env = Readonly<Record<string, string | undefined>>;

export interface EnvConfig {
  /** The partial config the variables describe. */
  readonly config: Record<string, unknown>;
  /** Config path (dotted) → the variable that set it, to name it in errors. */
  readonly sources: ReadonlyMap<string, string>;
  /** `XMPPBUS_*` variables that mean nothing (typos). */
  readonly unknown: readonly string[];
}

/**
 * Reads the bound variables. Values that do not parse as their type are passed on as text, so
 * that schema validation reports them with their path and the variable's name.
 */
export function readEnv(env: Env): EnvConfig {
  const config: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  const unknown: string[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('XMPPBUS_') || raw === undefined) continue;
    const binding = ENV_BINDINGS[name];
    if (!binding) {
      if (!OTHER_VARS.has(name)) unknown.push(name);
      continue;
    }
    setPath(config, binding.path, parse(raw, binding.type));
    sources.set(binding.path.join('.'), name);
  }
  return { config, sources, unknown };
}

function parse(raw: string, type: EnvType): unknown {
  const text = raw.trim();
  if (type === 'number') {
    const n = Number(text);
    return text !== '' && Number.isFinite(n) ? n : raw;
  }
  if (type === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(text)) return true;
    if (/^(false|0|no|off)$/i.test(text)) return false;
    return raw;
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next === 'object' && next !== null) node = next as Record<string, unknown>;
    else node = node[key] = {};
  }
  node[path[path.length - 1]!] = value;
}
