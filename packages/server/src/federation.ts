/**
 * Two independent servers federated over s2s on 127.0.0.1: `a.test` and `b.test`, XEP-0220
 * dialback (optionally inside STARTTLS with throwaway certificates), each side's outgoing s2s
 * routed through a relay the harness can cut. No DNS query leaves the machine (see
 * federation-config.ts for how each server finds its peer).
 */
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError } from '@xmppbus/core';

import { EjabberdServer } from './ejabberd.js';
import { startFakeDns } from './fake-dns.js';
import type { DnsQuestion, FakeDns } from './fake-dns.js';
import {
  PROSODY_ROUTES_MODULE,
  PROSODY_ROUTES_PLUGIN,
  ejabberdInetrc,
  ejabberdS2sConfig,
  prosodyS2sConfig,
} from './federation-config.js';
import type { S2sSettings } from './federation-config.js';
import { startLinkProxy } from './link-proxy.js';
import type { LinkProxy } from './link-proxy.js';
import type { ManagedServer } from './managed-server.js';
import { resolveOptions } from './options.js';
import type { ResolvedOptions } from './options.js';
import { freePort } from './ports.js';
import { signal, waitGone } from './proc.js';
import { ProsodyServer } from './prosody.js';
import type { AccountSpec, ServerKind, XmppServer } from './types.js';

export type FederationSide = 'a' | 'b';

export interface FederationOptions {
  /** The server of `a.test` (default `prosody`). */
  a?: ServerKind;
  /** The server of `b.test` (default `prosody`). */
  b?: ServerKind;
  /** STARTTLS required on s2s, with certificates from the throwaway test CA (default false: plaintext). */
  tls?: boolean;
  /** Component labels declared on both sides: `svc` → `svc.a.test` and `svc.b.test` (default `svc1`…`svc8`). */
  components?: readonly string[];
  /** c2s accounts created on both sides. */
  accounts?: readonly AccountSpec[];
  /**
   * `relay` (default): each server reaches its peer through a TCP relay in this process, so
   * `cutLink()` can cut the link alone. `direct`: straight to the peer's port (benchmarks: no
   * extra hop), `cutLink()` is then refused.
   */
  link?: 'relay' | 'direct';
  /** Milliseconds each server may take to become ready (default 60 000). */
  startTimeout?: number;
}

/** Two federated servers. `await using fed = await startFederation(…)` stops everything at scope end. */
export interface Federation extends AsyncDisposable {
  readonly a: XmppServer;
  readonly b: XmppServer;
  readonly tls: boolean;
  /** `a.test`, `b.test`. */
  readonly domains: Readonly<Record<FederationSide, string>>;
  /** Whether the s2s link (the relays) is up. */
  readonly linkUp: boolean;
  /** s2s connections relayed so far (both directions; 0 with `link: 'direct'`). */
  readonly linkConnections: number;
  /** The SRV questions ejabberd asked our fake DNS (empty without ejabberd). */
  readonly dnsQuestions: readonly DnsQuestion[];
  server(side: FederationSide): XmppServer;
  /** False between `stopPeer(side)` and the end of `startPeer(side)`. */
  running(side: FederationSide): boolean;
  /**
   * Takes one server down (SIGTERM and wait; `crash: true` = SIGKILL) and refuses connections to
   * it, as a host that is down would. Its ports, config and data are kept for `startPeer`.
   */
  stopPeer(side: FederationSide, options?: { crash?: boolean }): Promise<void>;
  /** Starts it again on the same ports; resolves when a component handshake works. */
  startPeer(side: FederationSide): Promise<void>;
  /** Cuts only the s2s link: every s2s connection closes, new ones are refused; both servers keep running. */
  cutLink(): Promise<void>;
  /** Lets s2s connections through again (the servers reconnect on their next stanza). */
  restoreLink(): Promise<void>;
  /** Stops both servers, the relays and the DNS responder, and removes the temp dirs; idempotent. */
  stop(): Promise<void>;
}

export const FEDERATION_DOMAINS: Readonly<Record<FederationSide, string>> = { a: 'a.test', b: 'b.test' };
const DEFAULT_LABELS = Array.from({ length: 8 }, (_, i) => `svc${i + 1}`);
const STOP_TIMEOUT = 20_000;

class FederatedProsody extends ProsodyServer {
  readonly #s2s: S2sSettings;
  constructor(options: ResolvedOptions, s2s: S2sSettings) {
    super(options);
    this.#s2s = s2s;
  }
  protected override extraPorts(): number[] {
    return [...super.extraPorts(), this.#s2s.port];
  }
  protected override transformed(text: string): string {
    return super.transformed(prosodyS2sConfig(text, this.#s2s, join(this.dir, 'plugins')));
  }
  protected override async writeConfig(): Promise<void> {
    // Before the base class hands the dir over to the prosody user.
    const dir = join(this.dir, 'plugins');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `mod_${PROSODY_ROUTES_MODULE}.lua`), PROSODY_ROUTES_PLUGIN);
    await super.writeConfig();
  }
}

class FederatedEjabberd extends EjabberdServer {
  readonly #s2s: S2sSettings;
  readonly #dnsPort: number;
  constructor(options: ResolvedOptions, s2s: S2sSettings, dnsPort: number) {
    super(options);
    this.#s2s = s2s;
    this.#dnsPort = dnsPort;
  }
  protected override extraPorts(): number[] {
    return [...super.extraPorts(), this.#s2s.port];
  }
  protected override transformed(text: string): string {
    return super.transformed(ejabberdS2sConfig(text, this.#s2s));
  }
  protected override async writeConfig(): Promise<void> {
    await super.writeConfig();
    const file = join(this.dir, 'inetrc');
    writeFileSync(file, ejabberdInetrc(this.#dnsPort));
    if (this.user) chownSync(file, this.user.uid, this.user.gid);
  }
}

/**
 * Starts `a.test` and `b.test` federated over s2s (default: two Prosodys, plaintext + dialback).
 * Each side declares the same component labels under its own domain, a pub/sub service
 * (`pubsub.<domain>`) and the accounts. Rejects (and leaves nothing behind) if a server fails.
 */
export async function startFederation(options: FederationOptions = {}): Promise<Federation> {
  const kinds: Record<FederationSide, ServerKind> = { a: options.a ?? 'prosody', b: options.b ?? 'prosody' };
  const tls = options.tls ?? false;
  const direct = options.link === 'direct';
  const labels = options.components ?? DEFAULT_LABELS;
  const sides: FederationSide[] = ['a', 'b'];
  const other = (s: FederationSide): FederationSide => (s === 'a' ? 'b' : 'a');

  // Servers first, then the relays and the DNS responder: an ejabberd still running while its
  // responder is gone would fall back to glibc lookups, i.e. real DNS.
  const stopServers: (() => Promise<unknown>)[] = [];
  const cleanup: (() => Promise<unknown>)[] = [];
  const servers: Partial<Record<FederationSide, ManagedServer>> = {};
  const relays: Partial<Record<FederationSide, LinkProxy>> = {};
  let dns: FakeDns | undefined;
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(stopServers.splice(0).map((c) => c()));
    await Promise.allSettled(cleanup.splice(0).map((c) => c()));
  };
  try {
    // Fixed before either server starts: each one's config names the other's.
    const ports = { a: await freePort(), b: await freePort() };
    // relays[x] carries connections TO side x.
    if (!direct) {
      for (const s of sides) {
        const relay = await startLinkProxy(ports[s]);
        relays[s] = relay;
        cleanup.push(() => relay.cut());
      }
    }
    const target = (s: FederationSide): number => relays[s]?.port ?? ports[s];
    if (kinds.a === 'ejabberd' || kinds.b === 'ejabberd') {
      const d = await startFakeDns();
      dns = d;
      cleanup.push(() => d.close());
      for (const s of sides) d.route(FEDERATION_DOMAINS[s], target(s));
    }
    const build = (s: FederationSide): ManagedServer => {
      const domain = FEDERATION_DOMAINS[s];
      const resolved = resolveOptions({
        kind: kinds[s],
        domain,
        components: labels.map((l) => `${l}.${domain}`),
        accounts: [...(options.accounts ?? [])],
        tls,
        ...(options.startTimeout !== undefined ? { startTimeout: options.startTimeout } : {}),
      });
      const peer = other(s);
      const s2s: S2sSettings = {
        port: ports[s],
        routes: [{ domain: FEDERATION_DOMAINS[peer], port: target(peer) }],
        tls,
      };
      return kinds[s] === 'prosody'
        ? new FederatedProsody(resolved, s2s)
        : new FederatedEjabberd(resolved, s2s, dns!.port);
    };
    const started = await Promise.allSettled(
      sides.map(async (s) => {
        const srv = build(s);
        servers[s] = srv;
        stopServers.push(() => srv.stop());
        await srv.start();
      }),
    );
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (err) {
    await stopAll();
    throw err;
  }

  const a = servers.a!;
  const b = servers.b!;
  const down = new Set<FederationSide>();
  let linkUp = true;
  let stopped: Promise<void> | undefined;
  const fed: Federation = {
    a,
    b,
    tls,
    domains: FEDERATION_DOMAINS,
    get linkUp() {
      return linkUp;
    },
    get linkConnections() {
      return (relays.a?.accepted ?? 0) + (relays.b?.accepted ?? 0);
    },
    get dnsQuestions() {
      return dns?.questions ?? [];
    },
    server: (side) => (side === 'a' ? a : b),
    running: (side) => !down.has(side),
    async stopPeer(side, opts = {}) {
      const srv = side === 'a' ? a : b;
      down.add(side);
      // Nobody answers on its address any more (the relay would accept and then drop).
      await relays[side]?.cut();
      if (opts.crash) return srv.kill();
      signal(srv.pid, 'SIGTERM');
      await waitGone(srv.pid, STOP_TIMEOUT).catch(() => srv.kill());
    },
    async startPeer(side) {
      const srv = side === 'a' ? a : b;
      await srv.restart();
      down.delete(side);
      if (linkUp) await relays[side]?.restore();
    },
    async cutLink() {
      if (direct) throw new ConfigError("cutLink: this federation was started with link: 'direct' (no relay to cut)");
      linkUp = false;
      await Promise.all(sides.map((s) => relays[s]?.cut() ?? Promise.resolve()));
    },
    async restoreLink() {
      if (direct) throw new ConfigError("restoreLink: this federation was started with link: 'direct'");
      linkUp = true;
      await Promise.all(sides.filter((s) => !down.has(s)).map((s) => relays[s]?.restore() ?? Promise.resolve()));
    },
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
    [Symbol.asyncDispose]() {
      return fed.stop();
    },
  };
  return fed;
}
