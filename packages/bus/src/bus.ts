/**
 * `createBus(config)`: the composition root. One transport, one `Session`, and the units a
 * service uses — RPC server and client, pub/sub, messenger — built on first access, with one
 * logger, one access policy and one ordered lifecycle:
 *
 * - `createBus` loads and validates the config, connects the transport (its first-connect
 *   errors reject here: `AuthError`, `ConnectionError`, …) and builds the session;
 * - `start()` starts the session and every unit built so far, in dependency order (client,
 *   messenger, pub/sub, server), so that `drain()` — newest first — stops taking calls before
 *   the units those calls may use;
 * - `drain({ signal, timeout })` is bounded; `close()` releases everything and never hangs.
 */
import { resolve } from 'node:path';
import {
  AccessPolicy,
  ClosedError,
  ConfigError,
  Session,
  type Clock,
  type Logger,
  type Transport,
  type TransportStatus,
  type WaitOptions,
} from '@xmppbus/core';
import { Messenger, type MessageStore, type MessengerStatus } from '@xmppbus/messaging';
import { PubSub, type PubSubStatus } from '@xmppbus/pubsub';
import { RpcClient, RpcServer, type CallerStatus, type RpcServerStatus } from '@xmppbus/rpc';
import { instrument, traceLogContext, type TelemetryOptions } from '@xmppbus/telemetry';
import { BusConfigError, loadConfig, type BusConfigInput } from './config.js';
import type { AccessConfig, BusConfig, SqliteStoreConfig } from './config-schema.js';
import type { Env } from './env.js';
import { createLogger } from './logger.js';
import { StatusFeed, type BusStatus, type BusStatusListener } from './status.js';
import { connectTransport } from './transport.js';

export interface CreateBusOptions {
  /** Logger of the bus and every unit (default: `createLogger` on stderr at the configured level). */
  logger?: Logger;
  /**
   * A transport to use instead of connecting `config.transport` — an instance, or a factory
   * given the effective config (tests: `{ transport: hub.connect('orders.example.test') }`).
   */
  transport?: Transport | ((config: Readonly<BusConfig>) => Transport | Promise<Transport>);
  /** Environment read for `XMPPBUS_*` (default `process.env`). */
  env?: Env;
  /** Directory relative paths (config file, passwordFile, store path) resolve against (default `process.cwd()`). */
  cwd?: string;
  /** Time source of every unit (tests: a `ManualClock`). */
  clock?: Clock;
  /** Aborts connecting the transport. */
  signal?: AbortSignal;
  /**
   * OpenTelemetry providers and propagator (default: the globally registered ones); `false`
   * turns telemetry off, as `telemetry.enabled: false` in the config does.
   */
  telemetry?: TelemetryOptions | false;
}

type UnitState<S> = S | 'absent';

/** A readiness/liveness snapshot (`bus.health()`), cheap enough for every probe. */
export interface BusHealth {
  readonly status: BusStatus;
  /** Started, online and taking work. */
  readonly ready: boolean;
  /** Not closed (a reconnecting bus is live: it recovers by itself). */
  readonly live: boolean;
  readonly connection: {
    readonly address: string;
    readonly status: TransportStatus;
    /** Times the link went down and began reconnecting. */
    readonly reconnects: number;
    readonly lastError: string | undefined;
  };
  readonly units: {
    readonly rpc: UnitState<RpcServerStatus>;
    readonly client: UnitState<CallerStatus>;
    readonly pubsub: UnitState<PubSubStatus>;
    readonly messenger: UnitState<MessengerStatus>;
  };
  /** Server calls running and waiting for a slot; client calls awaiting their outcome. */
  readonly rpc: { readonly running: number; readonly queued: number; readonly inFlight: number };
  /** Outbound messages not yet complete, and QoS IQs awaiting a reply. */
  readonly outbox: { readonly size: number; readonly inFlight: number };
  /** Assured (QoS 2) messages stored and awaiting `deliver`, all senders. */
  readonly inbox: { readonly pending: number };
  /** Messages the outbox gave up on since start. */
  readonly deadLetters: number;
  /** Inbound requests the access policy refused since start. */
  readonly accessDenied: number;
}

interface BusParts {
  config: BusConfig;
  redacted: Readonly<BusConfig>;
  transport: Transport;
  logger: Logger;
  access: AccessPolicy | undefined;
  clock: Clock | undefined;
  store: (() => MessageStore) | undefined;
  telemetry: TelemetryOptions | false;
}

/** Loads the config (object > env > file), connects the transport and builds the bus. */
export async function createBus(config: BusConfigInput = {}, options: CreateBusOptions = {}): Promise<Bus> {
  const cwd = options.cwd ?? process.cwd();
  const loaded = await loadConfig(config, { cwd, ...(options.env && { env: options.env }) });
  const cfg = loaded.config;
  const name = cfg.name ?? cfg.transport?.domain;
  const telemetry = options.telemetry === false || cfg.telemetry?.enabled === false ? false : (options.telemetry ?? {});
  const logger =
    options.logger ??
    createLogger({
      level: cfg.log?.level ?? 'warn',
      ...(cfg.log?.format && { format: cfg.log.format }),
      ...(name !== undefined && { fields: { service: name } }),
      ...(telemetry !== false && { context: traceLogContext }),
    });
  for (const w of loaded.warnings) logger.warn(`bus config: ${w}`);
  const access = accessPolicy(cfg.access);
  const store = await storeFactory(cfg.messaging?.store, cwd);
  let transport: Transport;
  if (options.transport !== undefined) {
    transport = typeof options.transport === 'function' ? await options.transport(loaded.redacted) : options.transport;
  } else {
    if (!cfg.transport)
      throw new BusConfigError([
        { path: 'transport', message: 'is required (config, XMPPBUS_TRANSPORT_* or a config file)' },
      ]);
    transport = await connectTransport(cfg.transport, { logger, cwd, signal: options.signal });
  }
  return new Bus({
    config: cfg,
    redacted: loaded.redacted,
    transport,
    logger,
    access,
    clock: options.clock,
    store,
    telemetry,
  });
}

function accessPolicy(cfg: AccessConfig | undefined): AccessPolicy | undefined {
  if (!cfg) return undefined;
  if (cfg.allowAll) {
    if (cfg.rules !== undefined || cfg.fallback !== undefined)
      throw new BusConfigError([{ path: 'access.allowAll', message: 'cannot be combined with rules or fallback' }]);
    return AccessPolicy.allowAll();
  }
  return new AccessPolicy({ rules: cfg.rules, fallback: cfg.fallback });
}

/** The SQLite store is imported only when configured, so the native addon loads only then. */
async function storeFactory(
  cfg: SqliteStoreConfig | undefined,
  cwd: string,
): Promise<(() => MessageStore) | undefined> {
  if (!cfg) return undefined;
  let mod: { sqliteMessageStore(options: SqliteStoreConfig): MessageStore };
  try {
    mod = await import('@xmppbus/store-sqlite');
  } catch (err) {
    throw new ConfigError('messaging.store needs @xmppbus/store-sqlite: npm install @xmppbus/store-sqlite', {
      cause: err,
    });
  }
  const options = { ...cfg, path: resolve(cwd, cfg.path) };
  return () => mod.sqliteMessageStore(options);
}

/** Anything the bus can start with itself (`bus.add`). */
export interface Startable {
  start(options?: WaitOptions): Promise<void>;
}

export class Bus implements AsyncDisposable {
  /** The effective configuration, secrets redacted. */
  readonly config: Readonly<BusConfig>;
  /** The one session of the bus's connection (router, caller, disco, access, clock, logger). */
  readonly session: Session;
  readonly logger: Logger;
  readonly #cfg: BusConfig;
  readonly #store: (() => MessageStore) | undefined;
  readonly #status = new StatusFeed();
  #rpc: RpcServer | undefined;
  #client: RpcClient | undefined;
  #pubsub: PubSub | undefined;
  #messenger: Messenger | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Starts of units first used after `start()`: a second `start()` waits for them. */
  readonly #late = new Set<Promise<void>>();
  /** Units added with `add()`. */
  readonly #extra = new Set<Startable>();
  #reconnects = 0;
  #offTransport: () => void;

  /** Use `createBus()`. */
  constructor(parts: BusParts) {
    this.config = parts.redacted;
    this.#cfg = parts.config;
    this.logger = parts.logger;
    this.#store = parts.store;
    this.session = new Session({
      transport: parts.transport,
      logger: parts.logger,
      ...(parts.clock && { clock: parts.clock }),
      ...(parts.access && { access: parts.access }),
      ...(parts.config.session?.iqTimeout !== undefined && { iqTimeout: parts.config.session.iqTimeout }),
      ...(parts.config.session?.probeInterval !== undefined && { probeInterval: parts.config.session.probeInterval }),
    });
    if (parts.telemetry !== false) instrument(this.session, parts.telemetry);
    this.#offTransport = parts.transport.onStatus((s, err) => this.#onTransport(s, err));
  }

  /** The current state (`bus.status` is the stream of its changes). */
  get state(): BusStatus {
    return this.#status.current;
  }

  /** State changes as an async iterable: the current state first, then each change; ends after `closed`. */
  get status(): AsyncIterable<BusStatus> {
    return this.#status;
  }

  /** Listens to state changes. Returns the remover. */
  onStatus(listener: BusStatusListener): () => void {
    return this.#status.on(listener);
  }

  // ---- units, built on first access ------------------------------------------------------------

  /** The RPC server: `bus.rpc.handle(Method, handler)`. */
  get rpc(): RpcServer {
    return (this.#rpc ??= this.#build('rpc', () => new RpcServer({ session: this.session, ...this.#cfg.rpc?.server })));
  }

  /** The RPC client: `bus.client.call(Method, to, request)`. Built at `start()` at the latest (it is free). */
  get client(): RpcClient {
    return (this.#client ??= this.#build(
      'client',
      () => new RpcClient({ session: this.session, ...this.#cfg.rpc?.client }),
    ));
  }

  /** The pub/sub client of `config.pubsub.service`. */
  get pubsub(): PubSub {
    return (this.#pubsub ??= this.#build('pubsub', () => {
      const cfg = this.#cfg.pubsub;
      if (!cfg)
        throw new BusConfigError([
          { path: 'pubsub.service', message: 'is not configured (or XMPPBUS_PUBSUB_SERVICE)' },
        ]);
      return new PubSub({ session: this.session, ...cfg });
    }));
  }

  /** The messenger (QoS 0/1/2 with an outbox; SQLite store when `messaging.store` is configured). */
  get messenger(): Messenger {
    return (this.#messenger ??= this.#build('messenger', () => {
      const { store: _store, ...options } = this.#cfg.messaging ?? {};
      return new Messenger({ session: this.session, ...options, ...(this.#store && { store: this.#store() }) });
    }));
  }

  /**
   * Starts `unit` with the bus (e.g. a pub/sub consumer): after the bus's own units on
   * `start()`, or at once when the bus has started already (`await bus.start()` waits for it).
   * Its drain and close come from the unit that made it (a consumer's from its PubSub). Returns the remover.
   */
  add(unit: Startable, what = 'unit'): () => void {
    const s = this.#status.current;
    if (s === 'closed' || s === 'draining') throw new ClosedError(`bus is ${s}`);
    this.#extra.add(unit);
    if (this.#starting) this.#startLate(unit, what);
    return () => void this.#extra.delete(unit);
  }

  #build<T extends Startable>(what: string, make: () => T): T {
    const s = this.#status.current;
    if (s === 'closed' || s === 'draining') throw new ClosedError(`bus is ${s}: cannot build its ${what}`);
    const unit = make();
    if (this.#starting) this.#startLate(unit, what);
    return unit;
  }

  /** Used after start(): start it now; `await bus.start()` again waits for it. */
  #startLate(unit: Startable, what: string): void {
    const p = unit.start().catch((err: unknown) => {
      this.logger.error(`bus: starting its ${what} failed`, err);
      throw err;
    });
    this.#late.add(p);
    void p.then(
      () => this.#late.delete(p),
      () => this.#late.delete(p),
    );
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * Starts the session (transport online) and every unit built so far; the RPC client is always
   * built. Idempotent: a later call also waits for units first used after the first start.
   */
  async start(options: WaitOptions = {}): Promise<void> {
    const s = this.#status.current;
    if (s === 'closed' || s === 'draining') throw new ClosedError(`bus is ${s}`);
    this.#starting ??= this.#start(options);
    await this.#starting;
    await Promise.all([...this.#late]);
  }

  async #start(options: WaitOptions): Promise<void> {
    this.#status.set('starting');
    const client = this.client; // built before the first await: started below, in order
    try {
      await this.session.start(options);
      // Dependency order: drain runs newest first, so the server stops before what it uses.
      for (const unit of [client, this.#messenger, this.#pubsub, this.#rpc]) await unit?.start(options);
      for (const unit of [...this.#extra]) await unit.start(options);
    } catch (err) {
      this.#starting = undefined;
      if (this.#status.current === 'starting') this.#status.set('idle');
      throw err;
    }
    if (this.#status.current === 'starting')
      this.#status.set(this.session.transport.status === 'reconnecting' ? 'reconnecting' : 'ready');
    this.logger.info(`bus ${this.session.address} ready`);
  }

  /**
   * Stops taking new work and finishes what is in hand — the server's calls, the consumers'
   * events, the outbox — newest unit first, then flushes the link. Bounded by `timeout`/`signal`
   * (rejects with `TimeoutError` / the abort reason); `close()` afterwards in any case.
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status.current === 'closed') return;
    this.#status.set('draining');
    await this.session.drain(options);
  }

  /** Closes every unit (newest first) and the transport. Idempotent, never hangs. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#offTransport();
    try {
      await this.session.close();
    } catch (err) {
      this.logger.error('bus: closing the session failed', err);
    }
    this.#status.set('closed');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onTransport(status: TransportStatus, err: Error | undefined): void {
    const current = this.#status.current;
    if (status === 'reconnecting') {
      this.#reconnects++;
      this.logger.warn(`bus: link of ${this.session.address} lost, reconnecting`, ...(err ? [err] : []));
      if (current === 'ready') this.#status.set('reconnecting', err);
    } else if (status === 'online') {
      if (current === 'reconnecting') {
        this.logger.info(`bus: link of ${this.session.address} back online`);
        this.#status.set('ready');
      }
    } else if (status === 'closed' && !this.#closing) {
      // The transport gave up for good (e.g. the secret was revoked): nothing will recover it.
      this.logger.error(`bus: link of ${this.session.address} closed for good`, ...(err ? [err] : []));
      void this.close();
    }
  }

  // ---- health ----------------------------------------------------------------------------------

  /** A readiness/liveness snapshot from the units' counters (units not built count as zero). */
  health(): BusHealth {
    const status = this.#status.current;
    const transport = this.session.transport;
    const lastError = (transport as { lastError?: unknown }).lastError;
    const m = this.#messenger;
    let pending = 0;
    if (m) for (const n of m.pendingInbound.values()) pending += n;
    return {
      status,
      ready: status === 'ready',
      live: status !== 'closed',
      connection: {
        address: transport.address,
        status: transport.status,
        reconnects: this.#reconnects,
        lastError: lastError instanceof Error ? lastError.message : undefined,
      },
      units: {
        rpc: this.#rpc?.status ?? 'absent',
        client: this.#client?.status ?? 'absent',
        pubsub: this.#pubsub?.status ?? 'absent',
        messenger: m?.status ?? 'absent',
      },
      rpc: {
        running: this.#rpc?.running ?? 0,
        queued: this.#rpc?.queued ?? 0,
        inFlight: this.#client?.inFlight ?? 0,
      },
      outbox: { size: m?.counters.queued ?? 0, inFlight: m?.counters.inFlight ?? 0 },
      inbox: { pending },
      deadLetters: m?.counters.deadLettered ?? 0,
      accessDenied: this.session.access.denied,
    };
  }
}
