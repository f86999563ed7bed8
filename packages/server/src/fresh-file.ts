import { rmSync, writeFileSync } from 'node:fs';

/**
 * Writes `text` to a new file at `path`, replacing what is there. A server started as root
 * writes its config into a directory its system user owns: whatever that user left at `path`
 * (a link to /etc/…) is removed, never written through, and a link raced in between makes the
 * exclusive create fail instead.
 */
export function writeFresh(path: string, text: string, mode = 0o644): void {
  rmSync(path, { force: true });
  writeFileSync(path, text, { flag: 'wx', mode });
}
