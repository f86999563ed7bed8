/**
 * Finding and installing the servers: Debian/Ubuntu packages, as scripts/install-servers.sh does
 * (the same policy-rc.d trick keeps apt from starting the packaged system services).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

import { ConfigError } from '@xmppbus/core';

import { isRoot } from './system-users.js';
import type { ServerKind } from './types.js';

/** Debian's ejabberdctl: the harness reads ERL_LIBS from it. */
export const EJABBERDCTL = '/usr/sbin/ejabberdctl';

/** The apt packages a server kind needs (setpriv comes with util-linux). */
export const SERVER_PACKAGES: Readonly<Record<ServerKind, readonly string[]>> = {
  prosody: ['prosody', 'util-linux'],
  ejabberd: ['ejabberd', 'util-linux'],
};

/** The command that installs `kind` by hand. */
export function installCommand(kind: ServerKind): string {
  const sudo = isRoot() ? '' : 'sudo ';
  return `${sudo}apt-get install -y --no-install-recommends ${SERVER_PACKAGES[kind].join(' ')}`;
}

/** The server binary is not installed; `installHint` says how to get it. */
export class ServerNotInstalledError extends ConfigError {
  readonly kind: ServerKind;
  readonly installHint: string;
  constructor(kind: ServerKind, missing: string, detail?: string) {
    const hint = `installServer('${kind}') from @xmppbus/server (or \`${installCommand(kind)}\`)`;
    const why = detail ? `; ${detail}` : '';
    super(`${kind} is not installed (${missing} not found${why}): install it with ${hint}`);
    this.kind = kind;
    this.installHint = hint;
  }
}

/** The absolute path of `cmd` in `PATH`, or undefined. */
export function which(cmd: string, path = process.env['PATH'] ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, cmd);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What is missing for `kind` (empty when it can run): a binary name per missing piece. */
export function missingBinaries(kind: ServerKind, path = process.env['PATH'] ?? ''): string[] {
  const missing: string[] = [];
  if (kind === 'prosody') {
    if (!which('prosody', path)) missing.push('prosody');
  } else {
    if (!which('erl', path)) missing.push('erl');
    if (!existsSync(EJABBERDCTL)) missing.push(EJABBERDCTL);
  }
  if (isRoot() && !which('setpriv', path)) missing.push('setpriv');
  return missing;
}

/** Throws ServerNotInstalledError when `kind` cannot run here. */
export function assertInstalled(kind: ServerKind): void {
  const [first] = missingBinaries(kind);
  if (first) throw new ServerNotInstalledError(kind, first);
}

export interface InstallResult {
  /** Packages apt installed; empty when everything was there already. */
  readonly installed: readonly string[];
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: 600_000, maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      reject(new ConfigError(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
    });
  });
}

/**
 * Installs `kind` with apt-get when it is missing (a no-op, without network, when present). As
 * a non-root user it runs `sudo`. No daemon is left running: a policy-rc.d that forbids service
 * starts is in place during the install, and a packaged instance started anyway is stopped.
 * Rejects with ServerNotInstalledError where there is no apt-get.
 */
export async function installServer(kind: ServerKind): Promise<InstallResult> {
  const missing = missingBinaries(kind);
  if (missing.length === 0) return { installed: [] };
  if (!which('apt-get')) throw new ServerNotInstalledError(kind, missing.join(', '), 'no apt-get here');
  const packages = [...SERVER_PACKAGES[kind]];
  // -n: fail at once instead of waiting for a password prompt nobody sees.
  const sudo = isRoot() ? [] : ['sudo', '-n'];
  const exec = (args: string[]): Promise<void> => {
    const [cmd, ...rest] = [...sudo, ...args];
    return run(cmd!, rest, { ...process.env, DEBIAN_FRONTEND: 'noninteractive' });
  };
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  // Exit 101 = "action forbidden by policy": apt does not start the system service.
  if (ownPolicy) {
    if (isRoot()) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    else await exec(['sh', '-c', `printf '#!/bin/sh\\nexit 101\\n' > ${policy} && chmod +x ${policy}`]);
  }
  try {
    await exec(['apt-get', 'update', '-qq']).catch((err: unknown) => {
      throw new ServerNotInstalledError(kind, missing.join(', '), `installing failed: ${(err as Error).message}`);
    });
    await exec(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages]);
  } finally {
    if (ownPolicy) {
      if (isRoot()) unlinkSync(policy);
      else await exec(['rm', '-f', policy]).catch(() => undefined);
    }
  }
  // A system instance started anyway (systemd ignores policy-rc.d): stop exactly that one, by its pid file.
  if (kind === 'prosody' && existsSync('/run/prosody/prosody.pid')) {
    const pid = Number(readFileSync('/run/prosody/prosody.pid', 'utf8').trim());
    if (pid > 0) await exec(['kill', '-TERM', String(pid)]).catch(() => undefined);
  }
  if (which('systemctl') && existsSync('/run/systemd/system')) {
    await exec(['systemctl', 'disable', '--now', kind]).catch(() => undefined);
  }
  const still = missingBinaries(kind);
  if (still.length > 0) throw new ServerNotInstalledError(kind, still.join(', '));
  return { installed: packages };
}
