import type { ServerKind, XmppServer } from '@xmppbus/server';

export type { ServerKind, XmppServer };

/** The harness's options (`startServer(kind, options)`); `@xmppbus/server`'s `startServer` takes more. */
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
