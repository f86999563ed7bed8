export type ServerKind = 'prosody' | 'ejabberd';

export interface ServerOptions {
  /**
   * Component names the server must accept (Prosody needs each declared). Default: svc-a … svc-p
   * .localhost (16 names). ejabberd accepts any name (listener-level password, no hosts list,
   * `global_routes: false`).
   */
  components?: string[];
  /** JIDs that may create pubsub nodes without extra config on Prosody (`admins`). Default: all `components`. */
  admins?: string[];
  /** Users to register at start: [username, password][] on domain 'localhost'. */
  users?: [string, string][];
  /** Pubsub item storage: 'memory' (fast, default on Prosody) or 'persistent'. ejabberd always uses mnesia. */
  pubsubStorage?: 'memory' | 'persistent';
  /** Milliseconds to wait for the server to become ready (default 60 000). */
  startTimeout?: number;
}

export interface XmppServer extends AsyncDisposable {
  readonly kind: ServerKind;
  /** '127.0.0.1' */
  readonly host: string;
  /** 'localhost' */
  readonly domain: string;
  readonly c2sPort: number;
  readonly componentPort: number;
  /** Random per run. */
  readonly componentSecret: string;
  /** 'pubsub.localhost' */
  readonly pubsubService: string;
  readonly components: readonly string[];
  /** The real server process (Prosody / ejabberd's beam.smp); changes on restart(). */
  readonly pid: number;
  /** Temp dir holding config, data and logs. */
  readonly dir: string;
  /** 'xmpp://127.0.0.1:<componentPort>' */
  componentService(): string;
  /** 'xmpp://127.0.0.1:<c2sPort>' */
  c2sService(): string;
  /** Registers a c2s account on `domain`. Rejects with ConflictError if it exists. */
  registerUser(username: string, password: string): Promise<void>;
  /** SIGKILLs the server process and waits until it is gone (reaped, not a zombie). */
  kill(): Promise<void>;
  /** Starts again (after kill() or not): same ports, config and data; resolves when a component handshake works. */
  restart(): Promise<void>;
  /** Graceful SIGTERM, waits until gone, removes the temp dir. Idempotent; also what asyncDispose does. */
  stop(): Promise<void>;
  /** The server's log text so far. */
  logs(): string;
}
