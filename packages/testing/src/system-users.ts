import { readFileSync } from 'node:fs';

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
