/**
 * A local server for an xmppbus config (the @xmppbus/bus format, `xmppbus.yaml`): the service's
 * own component or account, plus the optional `server:` section, become StartServerOptions.
 */
import { readFileSync } from 'node:fs';

import { ConfigError } from '@xmppbus/core';

import { randomSecret } from './options.js';
import type { AccountSpec, ComponentSpec, ServerKind, StartServerOptions } from './types.js';

/** The parts of a bus config (`BusConfig` from @xmppbus/bus) the server reads. */
export interface ServerConfigSource {
  transport?: {
    kind?: 'component' | 'client';
    service?: string;
    domain?: string;
    username?: string;
    /** Only a string is used; a callback (code, not config) is ignored. */
    password?: unknown;
    passwordFile?: string;
  };
  pubsub?: { service?: string };
  server?: {
    kind?: ServerKind;
    domain?: string;
    components?: string[];
    accounts?: string[];
    pubsubAdmins?: string[];
  };
}

export interface ServerConfigResult {
  readonly options: StartServerOptions;
  /** The config's own entity (component name or account local part), for `.env` output. */
  readonly entity: string | undefined;
  /** Things worth telling the user (a non-loopback service, a pub/sub service the server cannot offer). */
  readonly warnings: readonly string[];
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

function secretFrom(t: NonNullable<ServerConfigSource['transport']>): string | undefined {
  if (typeof t.password === 'string' && t.password.length > 0) return t.password;
  if (t.passwordFile === undefined) return undefined;
  try {
    return readFileSync(t.passwordFile, 'utf8').trim() || undefined;
  } catch (err) {
    throw new ConfigError(`transport.passwordFile ${t.passwordFile}: ${(err as Error).message}`, { cause: err });
  }
}

/** `orders.localhost` → `localhost`; a single label stays as it is. */
function parentDomain(name: string): string {
  const i = name.indexOf('.');
  return i > 0 ? name.slice(i + 1) : name;
}

/**
 * Derives the local server for `config`; `overrides` (e.g. CLI flags) win over it. The config's
 * own secret (`transport.password`/`passwordFile`) is kept; everything else gets random secrets.
 */
export function serverOptionsFromConfig(
  config: ServerConfigSource,
  overrides: StartServerOptions = {},
): ServerConfigResult {
  const warnings: string[] = [];
  const t = config.transport;
  const section = config.server ?? {};
  const client = t?.kind === 'client';
  let domain = overrides.domain ?? section.domain;
  if (domain === undefined && t?.domain) domain = client ? t.domain : parentDomain(t.domain);
  if (domain === undefined && config.pubsub?.service?.startsWith('pubsub.'))
    domain = config.pubsub.service.slice('pubsub.'.length);
  domain ??= 'localhost';

  const components: ComponentSpec[] = (section.components ?? []).map((name) => ({ name }));
  const accounts: AccountSpec[] = (section.accounts ?? []).map((user) => ({ user, password: randomSecret() }));
  let entity: string | undefined;
  const ports: { c2s?: number; component?: number } = {};
  if (t?.domain) {
    const secret = secretFrom(t);
    if (client) {
      if (!t.username) throw new ConfigError('transport.username is required for a client transport');
      entity = t.username;
      const i = accounts.findIndex((a) => a.user === t.username);
      if (i >= 0) accounts.splice(i, 1);
      accounts.unshift({ user: t.username, password: secret ?? randomSecret() });
      if (t.domain !== domain) warnings.push(`transport.domain ${t.domain} is not the server's domain ${domain}`);
    } else {
      entity = t.domain.toLowerCase();
      const i = components.findIndex((c) => c.name.toLowerCase() === entity);
      if (i >= 0) components.splice(i, 1);
      components.unshift({ name: entity, ...(secret ? { secret } : {}) });
    }
  }
  if (t?.service) {
    let url: URL | undefined;
    try {
      url = new URL(t.service);
    } catch {
      warnings.push(`transport.service ${t.service} is not a URL`);
    }
    if (url && !LOOPBACK.has(url.hostname))
      warnings.push(`transport.service points at ${url.hostname}; the local server listens on 127.0.0.1`);
    else if (url?.port) ports[client ? 'c2s' : 'component'] = Number(url.port);
  }
  if (config.pubsub?.service && config.pubsub.service !== `pubsub.${domain}`)
    warnings.push(`pubsub.service is ${config.pubsub.service}, the local server offers pubsub.${domain}`);
  const options: StartServerOptions = {
    kind: section.kind ?? 'prosody',
    domain,
    components,
    accounts,
    ...(section.pubsubAdmins ? { pubsubAdmins: section.pubsubAdmins } : {}),
    ...(Object.keys(ports).length > 0 ? { ports } : {}),
    ...overrides,
  };
  return { options, entity, warnings };
}
