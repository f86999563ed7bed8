import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';

import { ConfigError } from '@xmppbus/core';

import type { AccountSpec, ComponentSpec, ServerKind, ServerLimits, StartServerOptions, XmppServer } from './types.js';

/** Where a detached server keeps its state unless told otherwise (relative to the cwd). */
export const DEFAULT_STATE_DIR = join('.xmppbus', 'server');
/**
 * The standard XMPP ports, for a development server that code written against the defaults
 * (`xmpp://127.0.0.1:5347`, the README's quickstart) reaches. `startServer` picks free ports unless
 * given these; a port in use is then a ConfigError.
 */
export const DEV_PORTS: Readonly<{ c2s: number; component: number }> = { c2s: 5222, component: 5347 };
/** The state file inside the state dir. */
export const STATE_FILE = 'server.json';

/** Stanza size defaults: Prosody's own (256 KiB c2s, 512 KiB components); ejabberd components get 1 MiB. */
export const DEFAULT_LIMITS: Readonly<Record<ServerKind, Readonly<Required<Omit<ServerLimits, 'c2sRate'>>>>> = {
  prosody: { c2sStanzaSize: 256 * 1024, componentStanzaSize: 512 * 1024 },
  ejabberd: { c2sStanzaSize: 256 * 1024, componentStanzaSize: 1024 * 1024 },
};

/** StartServerOptions with every default applied and every name checked. */
export interface ResolvedOptions {
  readonly kind: ServerKind;
  readonly domain: string;
  readonly pubsubService: string;
  readonly componentSecret: string;
  readonly components: readonly Required<ComponentSpec>[];
  readonly accounts: readonly AccountSpec[];
  readonly pubsubAdmins: readonly string[];
  readonly pubsubStorage: 'memory' | 'persistent';
  readonly ports: { c2s?: number; component?: number; componentTls?: number };
  readonly dataDir: string | undefined;
  readonly tls: boolean;
  readonly limits: ServerLimits & Required<Omit<ServerLimits, 'c2sRate'>>;
  readonly startTimeout: number;
  readonly detach: boolean;
  readonly stateDir: string;
  readonly transformConfig: ((config: string, server: XmppServer) => string) | undefined;
}

/** A random secret (18 bytes, base64url: 24 characters, safe in Lua, YAML and .env files). */
export function randomSecret(): string {
  return randomBytes(18).toString('base64url');
}

// Domain labels: what Prosody and ejabberd accept for hosts here (no IDNA, no ports).
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i;
// RFC 7622 localpart minus the characters that need escaping anywhere (XEP-0106 territory).
const LOCALPART = /^[^\s"&'/:<>@]{1,1023}$/;

/** Whether `name` is a host name Prosody and ejabberd accept (no IDNA, no port). */
export function isDomainName(name: string): boolean {
  return DOMAIN.test(name);
}

function checkPort(name: string, port: number | undefined): void {
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65_535))
    throw new ConfigError(`startServer: ports.${name} must be an integer 1..65535, got ${String(port)}`);
}

function checkSecret(what: string, secret: string): void {
  if (secret.length === 0) throw new ConfigError(`startServer: ${what} is empty`);
  if (/[\s\0-\x1f]/.test(secret))
    throw new ConfigError(`startServer: ${what} contains whitespace or control characters`);
}

export function resolveOptions(options: StartServerOptions = {}, cwd = process.cwd()): ResolvedOptions {
  const kind = options.kind ?? 'prosody';
  if (kind !== 'prosody' && kind !== 'ejabberd')
    throw new ConfigError(`startServer: kind must be 'prosody' or 'ejabberd', got ${JSON.stringify(kind)}`);
  const domain = options.domain ?? 'localhost';
  if (!DOMAIN.test(domain)) throw new ConfigError(`startServer: domain ${JSON.stringify(domain)} is not a domain name`);
  const componentSecret = options.componentSecret ?? randomSecret();
  checkSecret('componentSecret', componentSecret);
  const seen = new Set<string>();
  const components = (options.components ?? []).map((c): Required<ComponentSpec> => {
    const spec = typeof c === 'string' ? { name: c } : c;
    const name = spec.name.toLowerCase();
    if (!DOMAIN.test(name))
      throw new ConfigError(`startServer: component ${JSON.stringify(spec.name)} is not a domain name`);
    if (name === domain || name === `pubsub.${domain}`)
      throw new ConfigError(
        `startServer: component ${name} clashes with the server's own ${name === domain ? 'domain' : 'pub/sub service'}`,
      );
    if (seen.has(name)) throw new ConfigError(`startServer: component ${name} is listed twice`);
    seen.add(name);
    const secret = spec.secret ?? componentSecret;
    checkSecret(`the secret of ${name}`, secret);
    return { name, secret };
  });
  const users = new Set<string>();
  const accounts = (options.accounts ?? []).map((a) => {
    if (!LOCALPART.test(a.user))
      throw new ConfigError(`startServer: account name ${JSON.stringify(a.user)} is not a valid JID localpart`);
    if (users.has(a.user.toLowerCase())) throw new ConfigError(`startServer: account ${a.user} is listed twice`);
    users.add(a.user.toLowerCase());
    if (a.password.length === 0) throw new ConfigError(`startServer: the password of ${a.user} is empty`);
    return { user: a.user, password: a.password };
  });
  const ports = { ...options.ports };
  checkPort('c2s', ports.c2s);
  checkPort('component', ports.component);
  checkPort('componentTls', ports.componentTls);
  const fixed = [ports.c2s, ports.component, ports.componentTls].filter((p) => p !== undefined);
  if (new Set(fixed).size !== fixed.length) throw new ConfigError('startServer: two ports are the same');
  const limits = { ...DEFAULT_LIMITS[kind], ...options.limits };
  for (const [k, v] of Object.entries(limits)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1024))
      throw new ConfigError(`startServer: limits.${k} must be an integer >= 1024 (bytes), got ${String(v)}`);
  }
  return {
    kind,
    domain,
    pubsubService: `pubsub.${domain}`,
    componentSecret,
    components,
    accounts,
    pubsubAdmins: [...(options.pubsubAdmins ?? components.map((c) => c.name))],
    pubsubStorage: options.pubsubStorage ?? 'memory',
    ports,
    dataDir: options.dataDir === undefined ? undefined : resolve(cwd, options.dataDir),
    tls: options.tls ?? false,
    limits,
    startTimeout: options.startTimeout ?? 60_000,
    detach: options.detach ?? false,
    stateDir: resolve(cwd, options.stateDir ?? DEFAULT_STATE_DIR),
    transformConfig: options.transformConfig,
  };
}
