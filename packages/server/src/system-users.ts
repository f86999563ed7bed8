import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface SystemUser {
  uid: number;
  gid: number;
  home: string;
}

/** Looks a user up in /etc/passwd (the servers' Debian packages create `prosody` and `ejabberd`). */
export function systemUser(name: string): SystemUser | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' };
  }
  return undefined;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * True if `user` may traverse every existing ancestor of `path` (search permission). A server
 * started as root drops to its system user, which cannot enter e.g. `/root` (mode 0700): its
 * config and data must then live elsewhere. Supplementary groups are ignored (conservative).
 */
export function reachableBy(path: string, user: SystemUser): boolean {
  let dir = dirname(resolve(path));
  for (;;) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      st = undefined; // not created yet: its parent decides
    }
    if (st) {
      const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
      if ((st.mode & bit) === 0) return false;
    }
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}
