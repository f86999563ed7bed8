/**
 * What every command gets: the parsed global options, the output, a signal that fires on
 * Ctrl-C, and `connect()`, which builds a bus from the resolved config and closes it at the end.
 */
import { createBus, createLogger, type Bus, type BusConfig, type LoadedConfig } from '@xmppbus/bus';
import { AbortError, ConflictError, silentLogger, type Logger } from '@xmppbus/core';
import { positive, resolveConfig, withoutStore, type GlobalOptions, type ResolvedConfig } from './config.js';
import { UsageError } from './errors.js';
import type { Io, Output } from './output.js';

export interface ConnectOptions {
  /** Connect with the config's own identity (the service's), never the local server's CLI component. */
  asService?: boolean;
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
  readonly #configs = new Map<boolean, Promise<ResolvedConfig>>();

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

  /** The wait of each network operation: `--timeout`, else 10 s. */
  get timeout(): number {
    return positive(this.globals.timeout, '--timeout') ?? 10_000;
  }

  /** The effective config (file < env < flags, or the local server's CLI identity), loaded once. */
  async config(options: { asService?: boolean } = {}): Promise<LoadedConfig> {
    return (await this.#resolved(options.asService === true)).loaded;
  }

  #resolved(asService: boolean): Promise<ResolvedConfig> {
    let p = this.#configs.get(asService);
    if (p === undefined) this.#configs.set(asService, (p = resolveConfig(this.globals, this.io, { asService })));
    return p;
  }

  /** Connects with the configured identity and starts the bus; closed by `close()`. */
  async connect(options: ConnectOptions = {}): Promise<Bus> {
    const resolved = await this.#resolved(options.asService === true);
    let config = options.keepStore ? resolved.loaded.config : withoutStore(resolved.loaded.config);
    if (options.adjust) config = options.adjust(config);
    const transport = config.transport;
    if (!transport)
      throw new UsageError(
        'no connection configured: give --config, an ./xmppbus.yaml, XMPPBUS_TRANSPORT_* variables or --jid/--service, or start a local server (xmppbus server start --detach)',
      );
    const candidates = [{ domain: transport.domain, password: transport.password }, ...resolved.alternatives];
    for (let i = 0; ; i++) {
      this.checkAborted();
      const { domain, password } = candidates[i]!;
      try {
        const bus = await createBus(
          { ...config, transport: { ...transport, domain, ...(password !== undefined && { password }) } },
          { env: {}, cwd: this.io.cwd, logger: this.logger, signal: this.signal, telemetry: false },
        );
        this.#buses.push(bus);
        await bus.start({ signal: this.signal, timeout: this.timeout });
        return bus;
      } catch (err) {
        // Another command holds this CLI component: take the next one.
        if (!(err instanceof ConflictError) || i + 1 >= candidates.length) throw conflictHint(err, resolved.identity);
        if (this.globals.verbose) this.out.note(`${domain} is in use; trying ${candidates[i + 1]!.domain}`);
      }
    }
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

/** A taken component name, with what to do about it. */
function conflictHint(err: unknown, identity: ResolvedConfig['identity']): unknown {
  if (!(err instanceof ConflictError)) return err;
  const why =
    identity === 'local-server'
      ? 'every CLI component of the local server is in use by another command'
      : 'this name is connected already (the service itself, or another command): a component connects once; give the CLI its own name with --jid (e.g. cli.<domain>)';
  return new ConflictError(`${err.message} — ${why}`, { cause: err });
}
