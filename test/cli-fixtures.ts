// Helpers of test/cli.test.ts: the real `xmppbus` binary (packages/cli/dist/bin.js, built once)
// run as a child process without a TTY, one-shot or live (tail, listen) with its output awaited.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@xmppbus/testing';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'packages', 'cli', 'dist', 'bin.js');

/** Builds the CLI and what it references (incremental: quick when dist is current). */
export function buildCli(): void {
  const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-b', join(ROOT, 'packages', 'cli')], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc -b packages/cli failed:\n${r.stdout}${r.stderr}`);
}

/** The parent's environment without anything that would change the CLI's config or output. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('XMPPBUS_') && !['NO_COLOR', 'FORCE_COLOR', 'CI'].includes(k)) env[k] = v;
  return env;
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd: string;
  input?: string;
}

const running = new Set<ChildProcess>();

/** Kills what a failed test left running. */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** A running Node process (`node <args>`) with its output so far. */
export class LiveProcess {
  stdout = '';
  stderr = '';
  readonly #child: ChildProcess;
  readonly #exit: Promise<CliRun>;

  constructor(args: readonly string[], cwd: string, options: { env?: Record<string, string>; input?: string } = {}) {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...baseEnv(), ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    running.add(child);
    this.#child = child;
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.#exit = new Promise((done, fail) => {
      child.on('error', fail);
      child.on('close', (code, signal) => {
        running.delete(child);
        done({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
    child.stdin!.end(options.input ?? '');
  }

  /** Resolves once `test` holds for stdout or stderr (fails early if the process ends first). */
  async waitFor(
    what: string,
    test: (out: { stdout: string; stderr: string }) => boolean,
    timeout = 30_000,
  ): Promise<void> {
    let ended = false;
    void this.#exit.then(() => (ended = true));
    await waitFor(() => ended || test(this), { timeout, what });
    if (!test(this)) throw new Error(`xmppbus exited before ${what}: ${this.stderr}`);
  }

  /** Ctrl-C, then the process's end. */
  interrupt(): Promise<CliRun> {
    this.#child.kill('SIGINT');
    return this.#exit;
  }

  exit(): Promise<CliRun> {
    return this.#exit;
  }
}

/** A running `xmppbus` process. */
export class LiveCli extends LiveProcess {
  constructor(args: readonly string[], options: CliOptions) {
    super([BIN, ...args], options.cwd, options);
  }
}

/** Runs `xmppbus <args>` to its end. */
export function xmppbus(args: readonly string[], options: CliOptions): Promise<CliRun> {
  return new LiveCli(args, options).exit();
}

/** The JSON lines of an output. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}
