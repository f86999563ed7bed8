import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { sleep, TimeoutError } from '@xmppbus/core';

/** 'gone' covers both "no such process" and a zombie (exited, not yet reaped: see servers.md §6.23). */
export function processState(pid: number): 'running' | 'gone' {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 follows the parenthesised command name, which may itself contain spaces/parens.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' ? 'gone' : 'running';
  } catch {
    return 'gone';
  }
}

/** Polls /proc until `pid` is gone; rejects with TimeoutError. */
export async function waitGone(pid: number, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  let delay = 2;
  while (processState(pid) === 'running') {
    if (Date.now() > deadline) throw new TimeoutError(`process ${pid} still running after ${timeout} ms`);
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The file in each server's temp dir that says who started it (for reaping after a crashed run). */
const OWNER_FILE = 'owner.json';
export const DIR_PREFIX = 'xmppbus-';

interface OwnerRecord {
  owner: number;
  pid: number;
}

const live = new Map<string, number>(); // dir -> server pid
let exitHookInstalled = false;

function cmdlineMentions(pid: number, text: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
  } catch {
    return false;
  }
}

/**
 * Records a running server: in memory (killed with SIGKILL if this process exits without stopping
 * it) and in `<dir>/owner.json` (so a later harness run reaps it if this process died hard).
 */
export function trackServer(dir: string, pid: number): void {
  live.set(dir, pid);
  const rec: OwnerRecord = { owner: process.pid, pid };
  writeFileSync(join(dir, OWNER_FILE), JSON.stringify(rec));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const [d, p] of live) {
        if (cmdlineMentions(p, d)) signal(p, 'SIGKILL');
        rmSync(d, { recursive: true, force: true });
      }
    });
  }
}

export function untrackServer(dir: string): void {
  live.delete(dir);
}

let reaped = false;

/**
 * Once per process: kills servers (and removes temp dirs) left behind by harness runs whose
 * owning process no longer exists. A server pid is only signalled if its command line still
 * names its temp dir, so a reused pid is never hit.
 */
export function reapOrphans(): void {
  if (reaped) return;
  reaped = true;
  const base = tmpdir();
  let names: string[];
  try {
    names = readdirSync(base).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(base, name);
    const file = join(dir, OWNER_FILE);
    if (!existsSync(file)) continue;
    try {
      const rec = JSON.parse(readFileSync(file, 'utf8')) as OwnerRecord;
      if (processState(rec.owner) === 'running') continue;
      if (cmdlineMentions(rec.pid, dir)) signal(rec.pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // unreadable or concurrently removed: leave it
    }
  }
}
