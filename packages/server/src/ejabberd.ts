import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, lchownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ConflictError, ProtocolError } from '@xmppbus/core';

import { writeFresh } from './fresh-file.js';
import { registerInBand } from './ibr.js';
import { EJABBERDCTL } from './install.js';
import { ManagedServer } from './managed-server.js';
import type { LaunchSpec } from './managed-server.js';
import type { ResolvedOptions } from './options.js';
import { freePort } from './ports.js';
import { yamlString } from './quote.js';
import type { SystemUser } from './system-users.js';
import type { AccountSpec } from './types.js';

/** Must-do (servers.md, top): without it ejabberd sends DNS queries off the machine. */
export const INETRC = '{lookup,["file"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n{resolv_conf, ""}.\n';

/** ERL_LIBS as Debian's ejabberdctl sets it (arch-specific path), read from the script itself. */
export function erlLibs(): string {
  try {
    return /^ERL_LIBS='([^']*)'/m.exec(readFileSync(EJABBERDCTL, 'utf8'))?.[1] ?? '/usr/lib/x86_64-linux-gnu';
  } catch {
    return '/usr/lib/x86_64-linux-gnu';
  }
}

/**
 * The Erlang cookie lives in ~ejabberd (ejabberdctl `su`s there, servers.md §6.9). Create it up
 * front with an exclusive open so parallel first starts cannot race on it.
 */
function ensureCookie(home: string, user: SystemUser | undefined): void {
  const file = join(home, '.erlang.cookie');
  if (existsSync(file)) return;
  try {
    writeFileSync(file, randomBytes(15).toString('hex').toUpperCase(), { flag: 'wx', mode: 0o400 });
    if (user) lchownSync(file, user.uid, user.gid);
  } catch {
    // created concurrently by someone else: fine
  }
}

/**
 * What makes a node part of a cluster (see cluster.ts): a fixed node name and distribution port
 * known to the other nodes, the shared cookie, extra VM arguments (the epmd module) and extra
 * top-level ejabberd.yml (cluster-wide balancing).
 */
export interface EjabberdClusterNode {
  readonly node: string;
  readonly distPort: number;
  readonly cookie: string;
  readonly erlArgs: readonly string[];
  readonly yaml: string;
}

export class EjabberdServer extends ManagedServer {
  readonly kind = 'ejabberd' as const;
  /** Unique per instance: several ejabberds may run at once (servers.md §6.10). */
  readonly #node: string;
  readonly #cluster: EjabberdClusterNode | undefined;
  #distPort = 0;
  #configWritten = false;

  constructor(options: ResolvedOptions, cluster?: EjabberdClusterNode) {
    super('ejabberd', options);
    this.#cluster = cluster;
    this.#node = cluster?.node ?? `xmppbus-${randomBytes(5).toString('hex')}@localhost`;
  }

  /** The Erlang node name, e.g. `xmppbus-…@localhost`. */
  get nodeName(): string {
    return this.#node;
  }

  /** The VM arguments a cluster node adds (cookie, epmd module): also needed by ctl VMs talking to it. */
  get clusterArgs(): readonly string[] {
    const c = this.#cluster;
    return c ? ['-setcookie', c.cookie, ...c.erlArgs] : [];
  }

  get configFile(): string {
    return join(this.dir, 'ejabberd.yml');
  }

  get #spool(): string {
    return join(this.dir, 'spool');
  }
  get #logsDir(): string {
    return join(this.dir, 'logs');
  }

  protected override extraPorts(): number[] {
    return [this.#distPort];
  }
  protected override async pickPorts(): Promise<void> {
    await super.pickPorts();
    // A cluster node's port is fixed up front: the other nodes find it by name (no epmd).
    this.#distPort = this.#cluster?.distPort ?? (await freePort());
  }

  protected logFiles(): string[] {
    return [join(this.dir, 'server.out'), join(this.#logsDir, 'ejabberd.log'), join(this.#logsDir, 'error.log')];
  }

  protected fatalInLog(log: string): string | undefined {
    return /Failed to (?:open socket|start|load)[^\n]*|Kernel pid terminated[^\n]*/.exec(log)?.[0];
  }

  /**
   * ejabberd itself is stopped a few ms after SIGTERM; OTP's init:stop() then idles ~1 s before
   * the VM exits. stop() deletes the data anyway, so it may SIGKILL from that point.
   */
  protected override stoppedInLog(log: string): boolean {
    return / is stopped in the node /.test(log);
  }

  get #pem(): string {
    return join(this.dir, 'server.pem');
  }

  /**
   * Who may connect as a component. All on the shared secret: a listener-wide password and no
   * `hosts`, so any name may connect (the harness probes with arbitrary names). Otherwise each
   * declared name with its own secret (and the readiness probe with the shared one).
   */
  #componentAuth(): string {
    const own = this.components.filter((c) => this.secretOf(c) !== this.componentSecret);
    if (own.length === 0)
      return `
    password: ${yamlString(this.componentSecret)}`;
    const hosts = [...this.components, this.probeName].map((c) => {
      const secret = c === this.probeName ? this.componentSecret : this.secretOf(c);
      return `
      ${yamlString(c)}:
        password: ${yamlString(secret)}`;
    });
    return `
    hosts:${hosts.join('')}`;
  }

  /** With `tls: true`: the certificate, and a direct-TLS twin of the component listener. */
  #tlsConfig(): { certfiles: string; componentTls: string } {
    const cert = this.certificate;
    if (!cert) return { certfiles: '', componentTls: '' };
    writeFresh(this.#pem, readFileSync(cert.certFile, 'utf8') + readFileSync(cert.keyFile, 'utf8'), 0o600);
    return {
      // ca_file: the test CA, so that ejabberd_pkix does not warn "signed by unknown CA".
      certfiles: `certfiles:\n  - ${yamlString(this.#pem)}\nca_file: ${yamlString(join(this.dir, 'ca.crt'))}\n`,
      // ejabberd_service does not look certificates up by host (c2s does): without its own
      // certfile the TLS handshake fails with a bare reset.
      componentTls: `
  -
    port: ${this.componentTlsPort ?? 0}
    ip: "127.0.0.1"
    module: ejabberd_service
    tls: true
    certfile: ${yamlString(this.#pem)}
    max_stanza_size: ${this.options.limits.componentStanzaSize}
    backlog: 128${this.#componentAuth()}
    global_routes: false`,
    };
  }

  protected writeConfig(): Promise<void> {
    const tls = this.#tlsConfig();
    const o = this.options;
    // A c2s rate limit is an ejabberd shaper (bytes/s) named by a shaper rule.
    const shaper = o.limits.c2sRate ? `shaper:\n  c2s_rate: ${o.limits.c2sRate}\n` : '';
    const yml = `# Generated by @xmppbus/server; everything binds 127.0.0.1.
hosts:
  - ${yamlString(this.domain)}
loglevel: info
log_rotate_count: 0
${tls.certfiles}
listen:
  -
    port: ${this.c2sPort}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: ${o.limits.c2sStanzaSize}
    shaper: ${o.limits.c2sRate ? 'c2s_shaper' : 'none'}
    access: c2s
    starttls: ${this.certificate ? 'true' : 'false'}
    backlog: 128
  -
    port: ${this.componentPort}
    ip: "127.0.0.1"
    module: ejabberd_service
    max_stanza_size: ${o.limits.componentStanzaSize}
    backlog: 128${this.#componentAuth()}
    # Each connection routes only its own name (servers.md §6.12).
    global_routes: false${tls.componentTls}

# No s2s at all: a stanza to an unrouted domain would otherwise trigger real DNS lookups.
s2s_access: none

auth_method: internal
auth_password_format: plain
# In-band registration (used by the harness to create users fast) without a per-IP rate limit.
registration_timeout: infinity

acl:
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8

access_rules:
  c2s:
    allow: all
  pubsub_createnode:
    allow: all
  register:
    allow: all
  register_from:
    allow: loopback

${shaper}shaper_rules:
${o.limits.c2sRate ? '  c2s_shaper: c2s_rate\n' : ''}  max_user_sessions: 10000
  max_user_offline_messages: 5000

modules:
  mod_disco: {}
  mod_roster: {}
  mod_last: {}
  mod_ping: {}
  mod_register:
    access: register
    ip_access: register_from
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_mam:
    default: always
  mod_pubsub:
    hosts:
      - ${yamlString(this.pubsubService)}
    access_createnode: pubsub_createnode
    plugins:
      - flat
    max_items_node: 1000
${this.#cluster?.yaml ?? ''}`;
    // For humans and the registration fallback: ejabberdctl --config-dir <dir> <command>.
    const ctlCfg = `# Generated by @xmppbus/server. Use: ejabberdctl --config-dir ${this.dir} <command>
LOGS_DIR=${JSON.stringify(this.#logsDir)}
SPOOL_DIR=${JSON.stringify(this.#spool)}
EJABBERD_CONFIG_PATH=${JSON.stringify(join(this.dir, 'ejabberd.yml'))}
EJABBERD_PID_PATH=${JSON.stringify(join(this.#spool, 'ejabberd.pid'))}
ERLANG_NODE=${this.#node}
ERL_DIST_PORT=${this.#distPort}
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -kernel inet_dist_use_interface {127,0,0,1}${this.clusterArgs.map((a) => ` ${a}`).join('')}"
EJABBERD_BYPASS_WARNINGS=true
`;
    writeFresh(this.configFile, this.transformed(yml));
    // Fresh server data at the first start (a kept dataDir too); restarts keep it.
    if (!this.#configWritten) for (const d of [this.#spool, this.#logsDir]) rmSync(d, { recursive: true, force: true });
    this.#configWritten = true;
    writeFresh(join(this.dir, 'ejabberdctl.cfg'), ctlCfg);
    writeFresh(join(this.dir, 'inetrc'), INETRC);
    mkdirSync(this.#spool, { recursive: true });
    mkdirSync(this.#logsDir, { recursive: true });
    mkdirSync(join(this.dir, 'msgs'), { recursive: true });
    if (this.user) {
      const cert = this.certificate;
      // The dir itself is ours (its parent is not the server user's); what is inside may be its links.
      chownSync(this.dir, this.user.uid, this.user.gid);
      for (const p of [this.#spool, this.#logsDir, ...(cert ? [this.#pem] : [])])
        lchownSync(p, this.user.uid, this.user.gid);
      ensureCookie(this.user.home, this.user);
    }
    return Promise.resolve();
  }

  /**
   * Runs the Erlang VM directly (what `ejabberdctl foreground` would exec, minus bash, `su` and the
   * wrapper): the child's pid IS beam.smp, so stopping by pid and reaping need no pid file.
   */
  protected launchSpec(): LaunchSpec {
    const args = [
      '-sname',
      this.#node,
      '+K',
      'true',
      '+P',
      '250000',
      '-env',
      'ERL_CRASH_DUMP_BYTES',
      '0',
      // Distribution on loopback at a fixed port, and no epmd (which would listen on 0.0.0.0).
      '-kernel',
      'inet_dist_use_interface',
      '{127,0,0,1}',
      '-erl_epmd_port',
      String(this.#distPort),
      '-start_epmd',
      'false',
      '-mnesia',
      'dir',
      JSON.stringify(this.#spool),
      '-ejabberd',
      'log_rotate_count',
      '0',
      // No CPU/disk monitors: they spawn port programs (and `df`) at boot and nobody reads them here.
      '-os_mon',
      'start_cpu_sup',
      'false',
      '-os_mon',
      'start_disksup',
      'false',
      ...this.clusterArgs,
      '-s',
      'ejabberd',
      '-noinput',
    ];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: this.user?.home ?? process.env['HOME'] ?? this.dir,
      LANG: 'C.UTF-8',
      EJABBERD_CONFIG_PATH: this.configFile,
      EJABBERD_LOG_PATH: join(this.#logsDir, 'ejabberd.log'),
      EJABBERD_PID_PATH: join(this.#spool, 'ejabberd.pid'),
      ERL_CRASH_DUMP: join(this.#logsDir, 'erl_crash.dump'),
      ERL_DIST_PORT: String(this.#distPort),
      ERL_INETRC: join(this.dir, 'inetrc'),
      ERL_MAX_PORTS: '32000',
      ERL_MAX_ETS_TABLES: '1400',
      ERL_LIBS: erlLibs(),
      // An empty translations dir: building the cache of all *.msg files costs ~230 ms per start,
      // and tests want the untranslated (English) texts anyway.
      EJABBERD_MSGS_PATH: join(this.dir, 'msgs'),
    };
    return { command: 'erl', args, cwd: this.#spool, env };
  }

  /** XEP-0077 in-band registration over one c2s stream: milliseconds per account (ejabberdctl boots a VM each time). */
  protected async addAccounts(accounts: readonly AccountSpec[], _initial: boolean): Promise<void> {
    if (accounts.length === 0) return;
    const users = accounts.map((a) => [a.user, a.password] as const);
    let results: (Error | undefined)[];
    try {
      results = await registerInBand({
        port: this.c2sPort,
        domain: this.domain,
        users,
        timeout: 10_000 + 20 * users.length,
      });
    } catch (err) {
      // Registration stream failed: fall back to ejabberdctl (~300 ms per account) for a few.
      if (accounts.length > 5) throw err;
      for (const a of accounts) await this.#registerWithCtl(a.user, a.password);
      return;
    }
    const failed = results.find((r) => r !== undefined);
    if (failed) throw failed;
  }

  #registerWithCtl(username: string, password: string): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(
        EJABBERDCTL,
        ['--config-dir', this.dir, 'register', username, this.domain, password],
        { timeout: 30_000 },
        (err, stdout, stderr) => {
          if (!err) return resolve();
          const text = `${stdout}${stderr}`;
          reject(
            text.includes('conflict')
              ? new ConflictError(`user ${username}@${this.domain} exists`)
              : new ProtocolError(`ejabberdctl register failed: ${text || err.message}`),
          );
        },
      );
    });
  }
}
