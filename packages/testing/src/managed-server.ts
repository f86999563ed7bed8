import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConnectionError, TimeoutError } from '@xmppbus/core';

import { componentHandshake } from './handshake.js';
import { freePort, waitPortsFree } from './ports.js';
import { DIR_PREFIX, processState, reapOrphans, signal, sleep, trackServer, untrackServer, waitGone } from './proc.js';
import { issueServerCertificate } from './test-ca.js';
import type { ServerCertificate } from './test-ca.js';
import type { ServerKind, ServerOptions, XmppServer } from './types.js';

export const DEFAULT_COMPONENTS: readonly string[] = Array.from(
  { length: 16 },
  (_, i) => `svc-${String.fromCharCode(97 + i)}.localhost`,
);
/** The name the harness itself uses for readiness probes, so it never collides with a test's component. */
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

/** The per-kind part: config files, how to launch, where the logs are. */
export abstract class ManagedServer implements XmppServer {
  abstract readonly kind: ServerKind;
  readonly host = '127.0.0.1';
  readonly domain = 'localhost';
  readonly pubsubService = 'pubsub.localhost';
  readonly componentSecret = randomBytes(18).toString('base64url');
  readonly components: readonly string[];
  readonly dir: string;
  readonly options: ServerOptions;
  c2sPort = 0;
  componentPort = 0;
  #componentTlsPort = 0;
  #certificate: ServerCertificate | undefined;
  #pid = 0;
  #child: ChildProcess | undefined;
  #childExit: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | undefined;
  /** Log file sizes when the current process was launched: failure checks look only past them. */
  #logMark = new Map<string, number>();

  constructor(kind: ServerKind, options: ServerOptions) {
    reapOrphans();
    this.options = options;
    this.components = [...(options.components ?? DEFAULT_COMPONENTS)];
    this.dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${kind}-`));
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
    this.c2sPort = await freePort();
    this.componentPort = await freePort();
    if (this.options.tls) this.#componentTlsPort = await freePort();
  }
  /** Writes config files and data dirs (fresh state on the first call). */
  protected abstract writeConfig(): Promise<void>;
  /** Spawns the server with stdout/stderr going to `outFd`. */
  protected abstract launch(outFd: number): ChildProcess;
  /** Log files, concatenated by logs(). */
  protected abstract logFiles(): string[];
  /** A log message meaning the server will never get ready (fail fast). */
  protected abstract fatalInLog(log: string): string | undefined;
  /** True once the log shows the server finished its graceful shutdown (stop() may then SIGKILL). */
  protected stoppedInLog(_log: string): boolean {
    return false;
  }
  /** Registers the initial users (after the server is ready). */
  protected abstract registerInitialUsers(users: [string, string][]): Promise<void>;
  abstract registerUser(username: string, password: string): Promise<void>;

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
      if (this.options.tls) {
        // Before writeConfig(), which hands the temp dir over to the server's system user.
        const names = [this.domain, this.pubsubService, ...this.components, PROBE_COMPONENT];
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
      if (this.options.users?.length) await this.registerInitialUsers(this.options.users);
      return this;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #launchAndWait(): Promise<void> {
    this.#logMark = new Map(this.logFiles().map((f) => [f, readText(f).length]));
    const outFd = openSync(join(this.dir, 'server.out'), 'a');
    let child: ChildProcess;
    try {
      child = this.launch(outFd);
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
    // Never keep the test process alive for a forgotten server: the 'exit' hook kills it.
    child.unref();
    if (child.pid === undefined) throw new ConnectionError(`${this.kind} failed to spawn\n${this.#logTail()}`);
    this.#pid = child.pid;
    trackServer(this.dir, child.pid);
    await this.#waitReady(this.options.startTimeout ?? 60_000);
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
          name: PROBE_COMPONENT,
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

  /** Signals the server process and waits until it is gone and our child is reaped. */
  async #terminate(sig: NodeJS.Signals): Promise<void> {
    const pid = this.#pid;
    // The child is unref'd; while we wait for its exit it must keep the event loop alive.
    this.#child?.ref();
    try {
      if (pid && processState(pid) !== 'gone') {
        signal(pid, sig);
        try {
          await waitGone(pid, STOP_TIMEOUT);
        } catch {
          signal(pid, 'SIGKILL');
          await waitGone(pid, STOP_TIMEOUT);
        }
      }
      await this.#childExit;
    } finally {
      this.#child?.unref();
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
          signal(pid, 'SIGTERM');
          // The data is deleted next: once the server reports a finished shutdown, don't wait for the VM.
          const deadline = Date.now() + STOP_TIMEOUT;
          while (processState(pid) !== 'gone' && Date.now() < deadline) {
            if (this.stoppedInLog(this.#freshLogs())) break;
            await sleep(5);
          }
        }
        await this.#terminate('SIGKILL');
      } finally {
        untrackServer(this.dir);
        rmSync(this.dir, { recursive: true, force: true });
      }
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
