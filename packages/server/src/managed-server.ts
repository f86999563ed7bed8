import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { ConfigError, ConnectionError, sleep, TimeoutError } from '@xmppbus/core';

import { componentHandshake } from './handshake.js';
import { assertInstalled, ServerNotInstalledError } from './install.js';
import type { ResolvedOptions } from './options.js';
import { canBind, freePort, waitPortsFree } from './ports.js';
import { DIR_PREFIX, processState, reapOrphans, signal, trackServer, untrackServer, waitGone } from './proc.js';
import { removeState, writeState } from './state.js';
import { isRoot, reachableBy, systemUser } from './system-users.js';
import type { SystemUser } from './system-users.js';
import { issueServerCertificate } from './test-ca.js';
import type { ServerCertificate } from './test-ca.js';
import type { AccountSpec, ServerEndpoints, ServerKind, ServerState, XmppServer } from './types.js';

/** The name the harness itself uses for readiness probes on `localhost`, so it never collides with a test's component. */
export const PROBE_COMPONENT = 'harness-probe.localhost';

const LOG_TAIL = 8000;
const STOP_TIMEOUT = 15_000;
/** Log lines meaning "this start is failing because a port is taken": retry with other ports. */
const PORT_CLASH = /address already in use|eaddrinuse|Failed to open server port/i;

/** Reads a file, '' if it does not exist (yet). */
export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** What a subclass runs; the base class drops privileges and spawns it. */
export interface LaunchSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * Creates `dir` with mode 0700 (it holds secrets: configs, account files), its missing parents
 * with the default mode, so that the server's system user can still reach it.
 */
function privateDir(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true });
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The server's directory: given, `<stateDir>/<kind>` for a detached server, or a fresh temp dir. */
function chooseDir(
  kind: ServerKind,
  o: ResolvedOptions,
  user: SystemUser | undefined,
): { dir: string; ephemeral: boolean } {
  if (o.dataDir !== undefined) {
    if (user && !reachableBy(o.dataDir, user))
      throw new ConfigError(
        `startServer: dataDir ${o.dataDir} is not reachable by the system user ${kind} (a parent directory is not searchable); choose a directory outside it, e.g. under /var/tmp`,
      );
    privateDir(o.dataDir);
    return { dir: o.dataDir, ephemeral: false };
  }
  if (o.detach) {
    const dir = join(o.stateDir, kind);
    // Written, chmodded and handed to the server's user: never through a link (e.g. one committed to a repo).
    if (isSymlink(dir))
      throw new ConfigError(`startServer: ${dir} is a symbolic link; remove it or choose another stateDir`);
    // As root in e.g. /root/app, the server's user cannot read its config there: use a temp dir.
    if (!user || reachableBy(dir, user)) {
      privateDir(dir);
      return { dir, ephemeral: false };
    }
    return { dir: mkdtempSync(join(tmpdir(), `xmppbus-detached-${kind}-`)), ephemeral: true };
  }
  return { dir: mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${kind}-`)), ephemeral: true };
}

/** The per-kind part: config files, how to launch, where the logs are. */
export abstract class ManagedServer implements XmppServer {
  abstract readonly kind: ServerKind;
  readonly host = '127.0.0.1';
  readonly domain: string;
  readonly pubsubService: string;
  readonly componentSecret: string;
  readonly components: readonly string[];
  readonly dir: string;
  readonly options: ResolvedOptions;
  /** The system user the server runs as when we are root. */
  protected readonly user: SystemUser | undefined;
  /** The component name of readiness probes. */
  protected readonly probeName: string;
  readonly #ephemeral: boolean;
  readonly #secrets: ReadonlyMap<string, string>;
  readonly #accounts: AccountSpec[] = [];
  c2sPort = 0;
  componentPort = 0;
  #componentTlsPort = 0;
  #certificate: ServerCertificate | undefined;
  #pid = 0;
  #startedAt = '';
  #child: ChildProcess | undefined;
  #childExit: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | undefined;
  /** Log file sizes when the current process was launched: failure checks look only past them. */
  #logMark = new Map<string, number>();

  constructor(kind: ServerKind, options: ResolvedOptions) {
    assertInstalled(kind);
    this.user = isRoot() ? systemUser(kind) : undefined;
    if (isRoot() && !this.user) throw new ServerNotInstalledError(kind, `system user "${kind}"`);
    reapOrphans();
    this.options = options;
    this.domain = options.domain;
    this.pubsubService = options.pubsubService;
    this.componentSecret = options.componentSecret;
    this.components = options.components.map((c) => c.name);
    this.#secrets = new Map(options.components.map((c) => [c.name, c.secret]));
    this.probeName = `harness-probe.${options.domain}`;
    const { dir, ephemeral } = chooseDir(kind, options, this.user);
    this.dir = dir;
    this.#ephemeral = ephemeral;
  }

  get pid(): number {
    return this.#pid;
  }

  get tlsCa(): string | undefined {
    return this.#certificate?.caPem;
  }

  get componentTlsPort(): number | undefined {
    return this.#componentTlsPort || undefined;
  }

  get endpoints(): ServerEndpoints {
    return {
      host: this.host,
      domain: this.domain,
      pubsubService: this.pubsubService,
      c2sPort: this.c2sPort,
      componentPort: this.componentPort,
      componentTlsPort: this.componentTlsPort,
      c2sService: this.c2sService(),
      componentService: this.componentService(),
    };
  }

  secretOf(component: string): string {
    return this.#secrets.get(component.toLowerCase()) ?? this.componentSecret;
  }

  /** The server's certificate and key files (issued at the first start), when `tls: true`. */
  protected get certificate(): ServerCertificate | undefined {
    return this.#certificate;
  }

  /** Extra ports that must stay fixed across restarts (ejabberd's Erlang distribution port). */
  protected extraPorts(): number[] {
    return [];
  }
  /** Picks all ports (called again with fresh ports when a first start clashed). */
  protected async pickPorts(): Promise<void> {
    const p = this.options.ports;
    this.c2sPort = p.c2s ?? (await freePort());
    this.componentPort = p.component ?? (await freePort());
    if (this.options.tls) this.#componentTlsPort = p.componentTls ?? (await freePort());
  }
  /** Writes config files and data dirs (fresh state on the first call). */
  protected abstract writeConfig(): Promise<void>;
  /** The config file (what a person would edit or read). */
  abstract readonly configFile: string;
  /** What to run. */
  protected abstract launchSpec(): LaunchSpec;
  /** Log files, concatenated by logs(); the main one first. */
  protected abstract logFiles(): string[];
  /** A log message meaning the server will never get ready (fail fast). */
  protected abstract fatalInLog(log: string): string | undefined;
  /** True once the log shows the server finished its graceful shutdown (stop() may then SIGKILL). */
  protected stoppedInLog(_log: string): boolean {
    return false;
  }
  /** The generated config text after the `transformConfig` option. */
  protected transformed(text: string): string {
    return this.options.transformConfig ? this.options.transformConfig(text, this) : text;
  }
  /** Registers accounts (before launch for the initial ones on Prosody; after ready on ejabberd). */
  protected abstract addAccounts(accounts: readonly AccountSpec[], initial: boolean): Promise<void>;

  async registerUsers(accounts: readonly AccountSpec[]): Promise<void> {
    await this.addAccounts(accounts, false);
    this.#accounts.push(...accounts.map((a) => ({ user: a.user, password: a.password })));
  }

  registerUser(username: string, password: string): Promise<void> {
    return this.registerUsers([{ user: username, password }]);
  }

  componentService(): string {
    return `xmpp://${this.host}:${this.componentPort}`;
  }
  c2sService(): string {
    return `xmpp://${this.host}:${this.c2sPort}`;
  }

  logs(): string {
    return this.logFiles()
      .map((f) => readText(f))
      .filter(Boolean)
      .join('\n');
  }

  state(): ServerState {
    return {
      version: 1,
      kind: this.kind,
      pid: this.#pid,
      endpoints: this.endpoints,
      componentSecret: this.componentSecret,
      components: [...this.#secrets].map(([name, secret]) => ({ name, secret })),
      accounts: this.#accounts.map((a) => ({ ...a })),
      dir: this.dir,
      ephemeral: this.#ephemeral,
      configFile: this.configFile,
      logFile: this.logFiles()[1] ?? this.logFiles()[0] ?? '',
      caFile: this.#certificate ? join(this.dir, 'ca.crt') : undefined,
      startedAt: this.#startedAt,
    };
  }

  /** Log text written since the current launch. */
  #freshLogs(): string {
    return this.logFiles()
      .map((f) => readText(f).slice(this.#logMark.get(f) ?? 0))
      .filter(Boolean)
      .join('\n');
  }

  /** First start: fresh ports; on a port clash (parallel harness instances) retry with new ones. */
  async start(): Promise<this> {
    try {
      const p = this.options.ports;
      for (const port of [p.c2s, p.component, p.componentTls]) {
        if (port !== undefined && !(await canBind(port)))
          throw new ConfigError(`startServer: port ${port} on 127.0.0.1 is in use (another server running?)`);
      }
      if (this.options.tls) {
        // Before writeConfig(), which hands the dir over to the server's system user.
        const names = [this.domain, this.pubsubService, ...this.components, this.probeName];
        this.#certificate = await issueServerCertificate(this.dir, [...new Set(names)]);
      }
      for (let attempt = 1; ; attempt++) {
        await this.pickPorts();
        await this.writeConfig();
        try {
          await this.#launchAndWait();
          break;
        } catch (err) {
          if (attempt >= 3 || !PORT_CLASH.test(this.#freshLogs())) throw err;
          await this.#terminate('SIGKILL');
        }
      }
      const initial = this.options.accounts;
      if (initial.length) {
        await this.addAccounts(initial, true);
        this.#accounts.push(...initial);
      }
      this.#startedAt = new Date().toISOString();
      if (this.options.detach) writeState(this.options.stateDir, this.state());
      return this;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Spawns `spec` as the server's system user (when root), detached or tied to this process. */
  #spawn(spec: LaunchSpec, outFd: number): ChildProcess {
    const detached = this.options.detach;
    const stdio: ['ignore', number, number] = ['ignore', outFd, outFd];
    const opts = { cwd: spec.cwd, env: spec.env, stdio, detached };
    if (!this.user) return spawn(spec.command, [...spec.args], opts);
    // Prosody refuses to run as root (and then hangs with its ports open): drop to its user.
    // --pdeathsig takes the server down with us, unless it is meant to outlive us.
    const drop = [`--reuid=${this.kind}`, `--regid=${this.kind}`, '--init-groups'];
    if (!detached) drop.push('--pdeathsig', 'KILL');
    return spawn('setpriv', [...drop, '--', spec.command, ...spec.args], opts);
  }

  async #launchAndWait(): Promise<void> {
    this.#logMark = new Map(this.logFiles().map((f) => [f, readText(f).length]));
    const outFd = openSync(join(this.dir, 'server.out'), 'a');
    let child: ChildProcess;
    try {
      child = this.#spawn(this.launchSpec(), outFd);
    } finally {
      closeSync(outFd);
    }
    this.#child = child;
    this.#childExit = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    // A spawn failure (ENOENT) is reported as 'error'; the exit promise covers it as well.
    child.once('error', () => undefined);
    // Never keep this process alive for a forgotten server: the 'exit' hook kills it (unless detached).
    child.unref();
    if (child.pid === undefined) throw new ConnectionError(`${this.kind} failed to spawn\n${this.#logTail()}`);
    this.#pid = child.pid;
    if (!this.options.detach) trackServer(this.dir, child.pid);
    // Written before it is ready, so a start interrupted now still leaves a server stopServer() finds.
    else writeState(this.options.stateDir, this.state());
    await this.#waitReady(this.options.startTimeout);
  }

  /** Ready = a real XEP-0114 handshake succeeds (an open port proves nothing, servers.md §6.2). */
  async #waitReady(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout;
    let lastErr: unknown;
    for (;;) {
      if (processState(this.#pid) === 'gone') {
        throw new ConnectionError(`${this.kind} exited during startup\n${this.#logTail()}`);
      }
      const fresh = this.#freshLogs();
      const fatal = this.fatalInLog(fresh) ?? PORT_CLASH.exec(fresh)?.[0];
      if (fatal) {
        await this.#terminate('SIGKILL');
        throw new ConnectionError(`${this.kind} refused to start: ${fatal}\n${this.#logTail()}`);
      }
      try {
        await componentHandshake({
          port: this.componentPort,
          name: this.probeName,
          secret: this.componentSecret,
          timeout: 3000,
        });
        return;
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() > deadline) {
        await this.#terminate('SIGKILL');
        throw new TimeoutError(`${this.kind} not ready after ${timeout} ms (${String(lastErr)})\n${this.#logTail()}`, {
          cause: lastErr,
        });
      }
      await sleep(25);
    }
  }

  #logTail(): string {
    const text = this.logs();
    return text.length > LOG_TAIL ? `…${text.slice(-LOG_TAIL)}` : text;
  }

  /** Signals the server (its process group when detached) and waits until it is gone and reaped. */
  async #terminate(sig: NodeJS.Signals): Promise<void> {
    const pid = this.#pid;
    const target = this.options.detach ? -pid : pid;
    // The child is unref'd; while we wait for its exit it must keep the event loop alive.
    this.#child?.ref();
    try {
      if (pid && processState(pid) !== 'gone') {
        signal(target, sig);
        try {
          await waitGone(pid, STOP_TIMEOUT);
        } catch {
          signal(target, 'SIGKILL');
          await waitGone(pid, STOP_TIMEOUT);
        }
      }
      await this.#childExit;
    } finally {
      this.#child?.unref();
    }
  }

  async wait(options: { signal?: AbortSignal } = {}): Promise<'exited' | 'aborted'> {
    const { signal: abort } = options;
    if (abort?.aborted) return 'aborted';
    if (processState(this.#pid) === 'gone') return 'exited';
    const child = this.#child;
    child?.ref();
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        this.#childExit.then(() => 'exited' as const),
        new Promise<'aborted'>((resolve) => {
          onAbort = () => resolve('aborted');
          abort?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort) abort?.removeEventListener('abort', onAbort);
      child?.unref();
    }
  }

  async kill(): Promise<void> {
    await this.#terminate('SIGKILL');
  }

  async restart(): Promise<void> {
    if (this.#stopping) throw new ConnectionError(`${this.kind} was stopped; start a new server instead`);
    await this.#terminate('SIGTERM');
    const ports = [this.c2sPort, this.componentPort, ...this.extraPorts()];
    if (this.#componentTlsPort) ports.push(this.#componentTlsPort);
    for (let attempt = 1; ; attempt++) {
      // Tests reconnect to the same ports, so wait for them instead of picking new ones.
      await waitPortsFree(ports, 30_000);
      try {
        await this.#launchAndWait();
        if (this.options.detach) writeState(this.options.stateDir, this.state());
        return;
      } catch (err) {
        if (attempt >= 5 || !PORT_CLASH.test(this.#freshLogs())) throw err;
        await this.#terminate('SIGKILL');
        await sleep(200);
      }
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      try {
        const pid = this.#pid;
        if (pid && processState(pid) !== 'gone') {
          signal(this.options.detach ? -pid : pid, 'SIGTERM');
          // The data is deleted next: once the server reports a finished shutdown, don't wait for the VM.
          const deadline = Date.now() + STOP_TIMEOUT;
          while (processState(pid) !== 'gone' && Date.now() < deadline) {
            if (this.#ephemeral && this.stoppedInLog(this.#freshLogs())) break;
            await sleep(5);
          }
        }
        await this.#terminate('SIGKILL');
      } finally {
        untrackServer(this.dir);
        if (this.options.detach) removeState(this.options.stateDir, this.#pid);
        if (this.#ephemeral) rmSync(this.dir, { recursive: true, force: true });
      }
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
