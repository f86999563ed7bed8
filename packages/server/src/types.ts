export type ServerKind = 'prosody' | 'ejabberd';

/** An XEP-0114 component the server accepts. */
export interface ComponentSpec {
  /** The component's domain, e.g. `orders.localhost`. */
  name: string;
  /** Its secret; default: the server's `componentSecret` (random per start unless given). */
  secret?: string;
}

/** A c2s account (agents, people, the CLI) on the server's `domain`. */
export interface AccountSpec {
  /** Local part: `alice` for `alice@localhost`. */
  user: string;
  password: string;
}

/** Fixed ports; each one left out is picked free on 127.0.0.1. */
export interface ServerPorts {
  c2s?: number;
  component?: number;
  /** Direct-TLS component port (only with `tls: true`). */
  componentTls?: number;
}

/** Stanza size and rate limits (defaults: Prosody's own, applied to both servers). */
export interface ServerLimits {
  /** Largest c2s stanza, bytes (default 262 144 = 256 KiB). */
  c2sStanzaSize?: number;
  /** Largest component stanza, bytes (default 512 KiB on Prosody, 1 MiB on ejabberd). */
  componentStanzaSize?: number;
  /** c2s read rate per connection, bytes/s; default unlimited (a dev server must not throttle benchmarks). */
  c2sRate?: number;
}

/** What `startServer` takes. Everything is optional: `startServer()` runs Prosody for `localhost`. */
export interface StartServerOptions {
  /** Default `prosody`. */
  kind?: ServerKind;
  /** The XMPP domain of the accounts and the parent of `pubsub.<domain>` (default `localhost`). */
  domain?: string;
  /**
   * Components the server accepts (Prosody needs each one declared). With ejabberd, when every
   * component uses the shared `componentSecret`, any name may connect with it.
   */
  components?: (string | ComponentSpec)[];
  /** The shared component secret; default random (18 bytes, base64url). Never hard-coded. */
  componentSecret?: string;
  /** c2s accounts created at start (thousands are fine: files on Prosody, one XEP-0077 stream on ejabberd). */
  accounts?: AccountSpec[];
  /** JIDs that may create pub/sub nodes and publish to every node (default: all components). */
  pubsubAdmins?: string[];
  /** Pub/sub item storage on Prosody: `memory` (default, fast) or `persistent`. ejabberd always uses mnesia. */
  pubsubStorage?: 'memory' | 'persistent';
  ports?: ServerPorts;
  /**
   * Directory for config, data and logs. Default: a fresh temp dir, removed by `stop()`; with
   * `detach`, `<stateDir>/<kind>`. A given dir is kept by `stop()` and its server data is reset
   * at each start. It must be reachable by the server's system user when running as root.
   */
  dataDir?: string;
  /**
   * Offer TLS with a throwaway certificate signed by a throwaway CA (`tlsCa` on the handle,
   * `ca.crt` in the data dir): STARTTLS on c2s and a direct-TLS component port.
   */
  tls?: boolean;
  limits?: ServerLimits;
  /** Milliseconds to wait for the server to become ready (default 60 000). */
  startTimeout?: number;
  /**
   * Keep the server running after this process exits and write `<stateDir>/server.json`, which
   * `serverStatus` and `stopServer` read. The handle's `stop()` still stops it.
   */
  detach?: boolean;
  /** Where a detached server's state lives (default `./.xmppbus/server`, see `DEFAULT_STATE_DIR`). */
  stateDir?: string;
  /**
   * Advanced: edits the generated config text (`prosody.cfg.lua` or `ejabberd.yml`) before it is
   * written, e.g. to load an extra module. `server` has its ports and `dir` already. Keep the
   * readiness probe component (`harness-probe.<domain>` with `componentSecret`) accepted.
   */
  transformConfig?: (config: string, server: XmppServer) => string;
}

/** How to reach a running server. */
export interface ServerEndpoints {
  /** `127.0.0.1` */
  readonly host: string;
  readonly domain: string;
  readonly pubsubService: string;
  readonly c2sPort: number;
  readonly componentPort: number;
  readonly componentTlsPort: number | undefined;
  /** `xmpp://127.0.0.1:<c2sPort>` */
  readonly c2sService: string;
  /** `xmpp://127.0.0.1:<componentPort>` */
  readonly componentService: string;
}

/** A detached (or any) server as written to `<stateDir>/server.json` (mode 0600: it holds secrets). */
export interface ServerState {
  readonly version: 1;
  readonly kind: ServerKind;
  /** The server process (Prosody, or ejabberd's beam.smp). */
  readonly pid: number;
  readonly endpoints: ServerEndpoints;
  readonly componentSecret: string;
  readonly components: readonly Required<ComponentSpec>[];
  readonly accounts: readonly AccountSpec[];
  /** Config, data and logs. */
  readonly dir: string;
  /** True when `dir` is a temp dir that `stopServer` removes. */
  readonly ephemeral: boolean;
  readonly configFile: string;
  readonly logFile: string;
  /** PEM file of the throwaway CA, with `tls: true`. */
  readonly caFile: string | undefined;
  /** ISO time. */
  readonly startedAt: string;
}

/** A running server. `await using srv = await startServer()` stops it at the end of the scope. */
export interface XmppServer extends AsyncDisposable {
  readonly kind: ServerKind;
  /** '127.0.0.1' */
  readonly host: string;
  /** 'localhost' unless `domain` was given. */
  readonly domain: string;
  readonly c2sPort: number;
  readonly componentPort: number;
  /** The shared component secret (random per start unless given). */
  readonly componentSecret: string;
  /** 'pubsub.<domain>' */
  readonly pubsubService: string;
  /** Names of the declared components. */
  readonly components: readonly string[];
  /** The real server process (Prosody / ejabberd's beam.smp); changes on restart(). */
  readonly pid: number;
  /** Directory holding config, data and logs. */
  readonly dir: string;
  /** PEM of the CA that signed the server's certificate; undefined unless started with `tls: true`. */
  readonly tlsCa: string | undefined;
  /**
   * Component port with direct TLS (XEP-0114 has no STARTTLS), undefined unless `tls: true`.
   * ejabberd: a second `ejabberd_service` listener with `tls: true`. Prosody 0.12 has no TLS
   * option for components: this is a `mod_net_multiplex` `ssl_ports` port, which routes component
   * streams by their namespace.
   */
  readonly componentTlsPort: number | undefined;
  readonly endpoints: ServerEndpoints;
  /** The secret of a declared component (or the shared one for an undeclared name). */
  secretOf(component: string): string;
  /** 'xmpp://127.0.0.1:<componentPort>' */
  componentService(): string;
  /** 'xmpp://127.0.0.1:<c2sPort>' */
  c2sService(): string;
  /** Registers a c2s account on `domain`. Rejects with ConflictError if it exists. */
  registerUser(username: string, password: string): Promise<void>;
  /** Registers many accounts at once (fast path for benchmarks); ConflictError on the first that exists. */
  registerUsers(accounts: readonly AccountSpec[]): Promise<void>;
  /** What a state file holds for this server. */
  state(): ServerState;
  /**
   * Resolves when the server process exits (`'exited'`) or `signal` aborts (`'aborted'`), and keeps
   * this process alive meanwhile: what a foreground `xmppbus server start` waits on (the handle
   * otherwise never holds the event loop open).
   */
  wait(options?: { signal?: AbortSignal }): Promise<'exited' | 'aborted'>;
  /** SIGKILLs the server process and waits until it is gone (reaped, not a zombie). */
  kill(): Promise<void>;
  /** Starts again (after kill() or not): same ports, config and data; resolves when a component handshake works. */
  restart(): Promise<void>;
  /**
   * Graceful SIGTERM, waits until gone, removes the temp dir (a given `dataDir` is kept) and a
   * detached server's state file. Idempotent; also what asyncDispose does.
   */
  stop(): Promise<void>;
  /** The server's log text so far. */
  logs(): string;
}
