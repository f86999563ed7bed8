/**
 * The CLI's configuration: the bus config format (@xmppbus/bus), read from `--config <file>`,
 * else `XMPPBUS_CONFIG`, else `./xmppbus.yaml` (or `.yml`/`.json`) when present; `XMPPBUS_*`
 * variables override the file and connection flags override both. Secrets come from the file's
 * `passwordFile`, `XMPPBUS_PASSWORD(_FILE)` or `--secret`; the CLI has no default secret.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type BusConfig, type BusConfigInput, type LoadedConfig, type TransportConfig } from '@xmppbus/bus';
import { UsageError } from './errors.js';
import type { Io } from './output.js';

/** The global options every command takes (commander's parsed values). */
export interface GlobalOptions {
  config?: string;
  /** Server address, `xmpp://host:port`. */
  service?: string;
  host?: string;
  port?: string;
  /** `name.example.org` (component) or `user@example.org[/resource]` (client account). */
  jid?: string;
  secret?: string;
  /** Default wait of each network operation, ms. */
  timeout?: string;
  json?: boolean;
  verbose?: boolean;
  color?: boolean;
}

/** Config files looked for in the working directory, in this order, when no file is named. */
export const DEFAULT_CONFIG_FILES = ['xmppbus.yaml', 'xmppbus.yml', 'xmppbus.json'] as const;

/** Default ports by transport kind, for `--host` without `--port`. */
const DEFAULT_PORT = { component: 5347, client: 5222 } as const;

/** The config file to read: `--config`, else `XMPPBUS_CONFIG` (loadConfig reads it), else a default file. */
export function configFile(globals: GlobalOptions, io: Io): string | undefined {
  if (globals.config !== undefined) return globals.config;
  if (io.env['XMPPBUS_CONFIG']) return undefined;
  return DEFAULT_CONFIG_FILES.find((f) => existsSync(join(io.cwd, f)));
}

/** Parses a positive number option (`--timeout 500`), or throws a UsageError naming it. */
export function positive(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a positive number, got '${value}'`);
  return n;
}

/** The transport overrides the flags describe (a partial `transport` layer). */
export function transportFlags(globals: GlobalOptions, base: TransportConfig | undefined): Partial<TransportConfig> {
  const out: Partial<TransportConfig> = {};
  if (globals.jid !== undefined) {
    const m = /^(?:([^@/]+)@)?([^@/]+)(?:\/(.+))?$/.exec(globals.jid);
    if (!m) throw new UsageError(`--jid '${globals.jid}' is not a JID (name.example.org or user@example.org)`);
    const [, local, domain, resource] = m;
    if (local !== undefined) {
      out.kind = 'client';
      out.username = local;
      if (resource !== undefined) out.resource = resource;
    } else {
      if (resource !== undefined) throw new UsageError(`--jid '${globals.jid}': a component JID has no resource`);
      out.kind = 'component';
    }
    out.domain = domain!;
  }
  if (globals.secret !== undefined) {
    if (globals.secret === '') throw new UsageError('--secret is empty');
    out.password = globals.secret;
  }
  if (globals.service !== undefined) out.service = globals.service;
  if (globals.host !== undefined || globals.port !== undefined) {
    const kind = out.kind ?? base?.kind ?? 'component';
    const current = out.service ?? base?.service;
    const url = current ? safeUrl(current) : undefined;
    const host = globals.host ?? url?.hostname ?? '127.0.0.1';
    const port = globals.port ?? (url?.port || String(DEFAULT_PORT[kind]));
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535)
      throw new UsageError(`--port must be a port number, got '${port}'`);
    out.service = `${url?.protocol === 'xmpps:' ? 'xmpps' : 'xmpp'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }
  return out;
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/**
 * Loads the effective config: file < env < flags. A transport kind switch by `--jid` drops the
 * other kind's fields, so a client `--jid` works over a component config file.
 */
export async function resolveConfig(globals: GlobalOptions, io: Io): Promise<LoadedConfig> {
  const file = configFile(globals, io);
  const base = await loadConfig(file === undefined ? {} : { file }, { env: io.env, cwd: io.cwd });
  const flags = transportFlags(globals, base.config.transport);
  if (Object.keys(flags).length === 0) return base;
  const transport: Record<string, unknown> = { ...base.config.transport, ...flags };
  if (flags.kind !== undefined && flags.kind !== base.config.transport?.kind) {
    for (const key of ['username', 'resource', 'mechanism', 'allowPlainWithoutTls'])
      if (!(key in flags)) delete transport[key];
  }
  if (flags.password !== undefined) delete transport['passwordFile'];
  if (transport['service'] === undefined)
    throw new UsageError(
      'no server address: set transport.service in the config, XMPPBUS_TRANSPORT_SERVICE or --service',
    );
  const input: BusConfigInput = { ...base.config, transport: transport as unknown as TransportConfig };
  // Validated again as a whole; the env is not read twice.
  return loadConfig(input, { env: {}, cwd: io.cwd });
}

/** The config without its messaging store: commands that are not the service must not use its outbox. */
export function withoutStore(config: BusConfig): BusConfig {
  if (config.messaging?.store === undefined) return config;
  const { store: _store, ...messaging } = config.messaging;
  return { ...config, messaging };
}
