/**
 * The CLI's configuration: the bus config format (@xmppbus/bus), read from `--config <file>`,
 * else `XMPPBUS_CONFIG`, else `./xmppbus.yaml` (or `.yml`/`.json`) when present; `XMPPBUS_*`
 * variables override the file and connection flags override both. Secrets come from the file's
 * `passwordFile`, `XMPPBUS_PASSWORD(_FILE)` or `--secret`; the CLI has no default secret.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  BusConfigError,
  loadConfig,
  type BusConfig,
  type BusConfigInput,
  type LoadedConfig,
  type TransportConfig,
} from '@xmppbus/bus';
import { DEFAULT_STATE_DIR, serverStatus, type ServerState } from '@xmppbus/server';
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
  /** Where a detached local server keeps its state (default `.xmppbus/server`). */
  stateDir?: string;
  /** A .env file read under the real environment. */
  envFile?: string;
}

/**
 * The CLI's own components on a local server (`cli.<domain>`, `cli-2.<domain>`, …): `xmppbus
 * server start` declares them, and commands connect as the first one not in use, so that a
 * `tail` in one terminal and a `publish` in another each get a name (a component connects once).
 */
export const CLI_COMPONENTS = ['cli', 'cli-2', 'cli-3', 'cli-4'] as const;

/** The local server's state dir, absolute. */
export function stateDirOf(globals: GlobalOptions, io: Io): string {
  return resolve(io.cwd, globals.stateDir ?? DEFAULT_STATE_DIR);
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

/** The effective config, and the other names the CLI may connect as when its name is taken. */
export interface ResolvedConfig {
  readonly loaded: LoadedConfig;
  /** Other identities (the local server's other CLI components), tried in turn when the name is taken. */
  readonly alternatives: readonly { readonly domain: string; readonly password: string }[];
  /** `local-server`: the identity is a CLI component of the detached local server. */
  readonly identity: 'config' | 'local-server';
}

/**
 * Loads the effective config: file < env < flags. A transport kind switch by `--jid` drops the
 * other kind's fields, so a client `--jid` works over a component config file.
 *
 * Unless the identity is explicit (`--jid`, `XMPPBUS_TRANSPORT_DOMAIN`/`_USERNAME`) or `asService`
 * is set, and a local server started by `xmppbus server start --detach` is running (with the
 * configured server address, if any), the CLI connects as one of that server's CLI components:
 * the config's own identity is the service's, which is connected already.
 */
export async function resolveConfig(
  globals: GlobalOptions,
  io: Io,
  options: { asService?: boolean } = {},
): Promise<ResolvedConfig> {
  const file = configFile(globals, io);
  const fileLayer = file === undefined ? {} : { file };
  let base: LoadedConfig;
  try {
    base = await loadConfig(fileLayer, { env: io.env, cwd: io.cwd });
  } catch (err) {
    // File and env alone may be incomplete (e.g. only XMPPBUS_PASSWORD) when flags complete them:
    // then the flags are the top layer of one load (object > env > file), as for createBus.
    const flags = err instanceof BusConfigError ? transportFlags(globals, undefined) : {};
    if (Object.keys(flags).length === 0) throw err;
    const loaded = await loadConfig(
      { ...fileLayer, transport: flags as TransportConfig },
      { env: io.env, cwd: io.cwd },
    );
    return { loaded, alternatives: [], identity: 'config' };
  }
  const flags = transportFlags(globals, base.config.transport);
  const explicit =
    globals.jid !== undefined ||
    io.env['XMPPBUS_TRANSPORT_DOMAIN'] !== undefined ||
    io.env['XMPPBUS_TRANSPORT_USERNAME'] !== undefined;
  const local =
    explicit || options.asService
      ? undefined
      : await localServer(globals, io, flags.service ?? base.config.transport?.service);
  if (local !== undefined) return fromLocalServer(base.config, local, flags, io);
  if (Object.keys(flags).length === 0) return { loaded: base, alternatives: [], identity: 'config' };
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
  return { loaded: await loadConfig(input, { env: {}, cwd: io.cwd }), alternatives: [], identity: 'config' };
}

/**
 * The running local server's state, when it declares CLI components and is the configured server
 * (if any). "Running" is the server's own process (`serverStatus`), not any live pid: a stale or
 * committed state file never makes the CLI connect where it says.
 */
async function localServer(
  globals: GlobalOptions,
  io: Io,
  service: string | undefined,
): Promise<ServerState | undefined> {
  let state: ServerState | undefined;
  try {
    const status = await serverStatus(stateDirOf(globals, io), { probe: false });
    state = status.running ? status.state : undefined;
  } catch {
    return undefined; // unreadable: not ours to judge here; `server status` reports it
  }
  if (state === undefined || cliComponents(state).length === 0) return undefined;
  if (service === undefined) return state;
  const url = safeUrl(service);
  const port = Number(url?.port);
  const local = url !== undefined && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  return local && (port === state.endpoints.componentPort || port === state.endpoints.c2sPort) ? state : undefined;
}

function cliComponents(state: ServerState): { name: string; secret: string }[] {
  const names = CLI_COMPONENTS.map((n) => `${n}.${state.endpoints.domain}`);
  return names.flatMap((n) => state.components.filter((c) => c.name === n));
}

async function fromLocalServer(
  config: BusConfig,
  state: ServerState,
  flags: Partial<TransportConfig>,
  io: Io,
): Promise<ResolvedConfig> {
  const [first, ...rest] = cliComponents(state);
  const transport: TransportConfig = {
    kind: 'component',
    service: state.endpoints.componentService,
    domain: first!.name,
    password: flags.password ?? first!.secret,
    ...(config.transport?.timeout !== undefined && { timeout: config.transport.timeout }),
    ...(state.caFile !== undefined && config.transport?.tls && { tls: config.transport.tls }),
  };
  const input: BusConfigInput = {
    ...config,
    transport,
    pubsub: { ...config.pubsub, service: config.pubsub?.service ?? state.endpoints.pubsubService },
  };
  const loaded = await loadConfig(input, { env: {}, cwd: io.cwd });
  return { loaded, alternatives: rest.map((c) => ({ domain: c.name, password: c.secret })), identity: 'local-server' };
}

/** The config without its messaging store: commands that are not the service must not use its outbox. */
export function withoutStore(config: BusConfig): BusConfig {
  if (config.messaging?.store === undefined) return config;
  const { store: _store, ...messaging } = config.messaging;
  return { ...config, messaging };
}
