/** Managing a detached server from another process, through its state file. */
import { readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, resolve } from 'node:path';

import { componentHandshake } from './handshake.js';
import { DEFAULT_STATE_DIR } from './options.js';
import { waitPortsFree } from './ports.js';
import { DIR_PREFIX, processState, signal, waitGone } from './proc.js';
import { readState, removeState } from './state.js';
import type { ServerState } from './types.js';

export interface ServerStatus {
  /** The absolute state dir that was read. */
  readonly stateDir: string;
  /** The server process is alive. */
  readonly running: boolean;
  /** Running and a component handshake succeeded just now (only probed when `running`). */
  readonly ready: boolean;
  /** The state file's content; undefined when there is none (never started, or stopped). */
  readonly state: ServerState | undefined;
}

export interface StatusOptions {
  /** Probe readiness with a component handshake (default true). */
  probe?: boolean;
  /** Probe timeout, ms (default 3000). */
  timeout?: number;
}

/**
 * True if `pid` is alive AND is the server of `state`, never a reused pid nor a process a
 * hand-edited state file names: the process runs in the server's dir (prosody there, ejabberd
 * in its spool inside it); where its cwd cannot be read, its command line names a file in it.
 */
export function isServerProcess(state: ServerState): boolean {
  const dir = state.dir;
  if (!isAbsolute(dir) || dirname(dir) === dir || processState(state.pid) === 'gone') return false;
  let cwd: string;
  try {
    cwd = readlinkSync(`/proc/${state.pid}/cwd`);
  } catch {
    cwd = '';
  }
  if (cwd !== '') {
    let real = dir;
    try {
      real = realpathSync(dir); // /proc shows the cwd with symlinks resolved
    } catch {
      // gone: the check below fails
    }
    return cwd === real || cwd.startsWith(`${real}/`);
  }
  try {
    return readFileSync(`/proc/${state.pid}/cmdline`, 'utf8').includes(`${dir}/`);
  } catch {
    return false;
  }
}

/**
 * Whether `stopServer` may delete `dir`: only a temp dir the server made for itself
 * (`<tmpdir>/xmppbus-…`), whatever a state file says (it may come from a cloned repo).
 */
function isOwnTempDir(dir: string): boolean {
  return isAbsolute(dir) && dirname(dir) === tmpdir() && basename(dir).startsWith(DIR_PREFIX);
}

/** Is the detached server of `stateDir` (default `./.xmppbus/server`) running, and where? */
export async function serverStatus(
  stateDir: string = DEFAULT_STATE_DIR,
  options: StatusOptions = {},
): Promise<ServerStatus> {
  const dir = resolve(stateDir);
  const state = readState(dir);
  const running = state !== undefined && isServerProcess(state);
  let ready = false;
  if (running && options.probe !== false) {
    try {
      await componentHandshake({
        host: state.endpoints.host,
        port: state.endpoints.componentPort,
        name: `harness-probe.${state.endpoints.domain}`,
        secret: state.componentSecret,
        timeout: options.timeout ?? 3000,
      });
      ready = true;
    } catch {
      ready = false;
    }
  }
  return { stateDir: dir, running, ready, state };
}

export interface StopOptions {
  /** Grace period after SIGTERM before SIGKILL, ms (default 15 000). */
  timeout?: number;
}

export interface StopResult {
  /** True if a running server was stopped; false if none was running (a stale state file is removed). */
  readonly stopped: boolean;
  readonly state: ServerState | undefined;
}

/**
 * Stops the detached server of `stateDir`: SIGTERM to its process group, SIGKILL after `timeout`,
 * then waits until its ports are free. Removes the state file, and the server's dir if it was a
 * temp dir. Idempotent.
 */
export async function stopServer(stateDir: string = DEFAULT_STATE_DIR, options: StopOptions = {}): Promise<StopResult> {
  const dir = resolve(stateDir);
  const state = readState(dir);
  if (!state) return { stopped: false, state };
  const running = isServerProcess(state);
  if (running) {
    const timeout = options.timeout ?? 15_000;
    // A detached server leads its own process group: the group also holds its helpers.
    signal(-state.pid, 'SIGTERM');
    try {
      await waitGone(state.pid, timeout);
    } catch {
      signal(-state.pid, 'SIGKILL');
      await waitGone(state.pid, timeout);
    }
    const e = state.endpoints;
    const ports = [e.c2sPort, e.componentPort, ...(e.componentTlsPort ? [e.componentTlsPort] : [])];
    await waitPortsFree(ports, timeout);
  }
  removeState(dir, state.pid);
  if (state.ephemeral && isOwnTempDir(state.dir)) rmSync(state.dir, { recursive: true, force: true });
  return { stopped: running, state };
}
