/**
 * What every command gets: the parsed global options, the output, a signal that fires on
 * Ctrl-C, and `connect()`, which builds a bus from the resolved config and closes it at the end.
 */
import { createBus, createLogger, type Bus, type BusConfig, type LoadedConfig } from '@xmppbus/bus';
import { AbortError, silentLogger, type Logger } from '@xmppbus/core';
import { positive, resolveConfig, withoutStore, type GlobalOptions } from './config.js';
import { UsageError } from './errors.js';
import type { Io, Output } from './output.js';

export interface ConnectOptions {
  /** Keep `messaging.store` (dlq replay runs as the service, on its store). Default: dropped. */
  keepStore?: boolean;
  /** Change the effective config before connecting (e.g. a pub/sub service flag). */
  adjust?: (config: BusConfig) => BusConfig;
}

export class Context implements AsyncDisposable {
  readonly io: Io;
  readonly globals: GlobalOptions;
  readonly out: Output;
  /** Fires on Ctrl-C (reason: AbortError 'interrupted'). */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly #buses: Bus[] = [];
  #config: Promise<LoadedConfig> | undefined;

  constructor(deps: { io: Io; globals: GlobalOptions; out: Output; signal: AbortSignal }) {
    this.io = deps.io;
    this.globals = deps.globals;
    this.out = deps.out;
    this.signal = deps.signal;
    // Library logs only with --verbose: otherwise a failure is the one error line.
    this.logger = deps.globals.verbose
      ? createLogger({ level: 'debug', format: 'text', write: (line) => void deps.io.stderr.write(line) })
      : silentLogger;
  }

  /** The default wait of one network operation (`--timeout`, else the config's rpc timeout, else 10 s). */
  get timeout(): number {
    return positive(this.globals.timeout, '--timeout') ?? 10_000;
  }

  /** The effective config (file < env < flags), loaded once. */
  config(): Promise<LoadedConfig> {
    this.#config ??= resolveConfig(this.globals, this.io);
    return this.#config;
  }

  /** Connects with the configured identity and starts the bus; closed by `close()`. */
  async connect(options: ConnectOptions = {}): Promise<Bus> {
    const loaded = await this.config();
    let config = options.keepStore ? loaded.config : withoutStore(loaded.config);
    if (options.adjust) config = options.adjust(config);
    if (!config.transport)
      throw new UsageError(
        'no connection configured: give --config, an ./xmppbus.yaml, XMPPBUS_TRANSPORT_* variables or --jid/--service',
      );
    this.checkAborted();
    const bus = await createBus(config, {
      env: {},
      cwd: this.io.cwd,
      logger: this.logger,
      signal: this.signal,
      telemetry: false,
    });
    this.#buses.push(bus);
    await bus.start({ signal: this.signal, timeout: this.timeout });
    return bus;
  }

  checkAborted(): void {
    if (this.signal.aborted) throw this.signal.reason instanceof Error ? this.signal.reason : new AbortError();
  }

  /** Closes every bus this command opened. */
  async close(): Promise<void> {
    for (const bus of this.#buses.splice(0).reverse()) await bus.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
