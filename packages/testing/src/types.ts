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
  /**
   * Offer TLS with a throwaway certificate for `localhost`, `pubsub.localhost` and the component
   * names, signed by this process's test CA (`tlsCa`): STARTTLS on c2s (optional, so plaintext
   * logins keep working) and a direct-TLS component port (`componentTlsPort`). Default false:
   * clients use STARTTLS whenever it is offered, so tests that don't trust the CA would fail.
   */
  tls?: boolean;
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
  /** PEM of the test CA that signed the server's certificate; undefined unless started with `tls: true`. */
  readonly tlsCa: string | undefined;
  /**
   * Component port with direct TLS (XEP-0114 has no STARTTLS), undefined unless `tls: true`.
   * ejabberd: a second `ejabberd_service` listener with `tls: true`. Prosody 0.12 has no TLS
   * option for components: this is a `mod_net_multiplex` `ssl_ports` port, which routes component
   * streams by their namespace.
   */
  readonly componentTlsPort: number | undefined;
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
