/**
 * `.env` output for a running server: the `XMPPBUS_*` variables @xmppbus/bus reads (its
 * ENV_BINDINGS), so `node --env-file=.env app.js` with `createBus()` connects as that entity.
 */
import { closeSync, constants, fchmodSync, openSync, writeSync } from 'node:fs';

import { ConfigError } from '@xmppbus/core';

import type { ServerState } from './types.js';

export interface EnvFileOptions {
  /**
   * Who the variables describe: a component name or an account's local part (default: the first
   * component, else the first account). The others are listed in comments.
   */
  entity?: string;
}

/** A value as .env files (Node's --env-file, dotenv) read it: bare when safe, else single-quoted (taken literally). */
function envValue(v: string): string {
  if (/^[\w.:/@+=-]*$/.test(v)) return v;
  if (!/['\n\r]/.test(v)) return `'${v}'`;
  return JSON.stringify(v);
}

/** The `.env` text for `state` (from `server.state()` or `serverStatus().state`). */
export function envFileText(state: ServerState, options: EnvFileOptions = {}): string {
  const e = state.endpoints;
  const want = options.entity?.toLowerCase();
  const component = state.components.find((c) => (want === undefined ? true : c.name === want));
  const account =
    component === undefined
      ? state.accounts.find((a) => (want === undefined ? true : a.user.toLowerCase() === want))
      : undefined;
  if (want !== undefined && !component && !account)
    throw new ConfigError(`no component or account ${options.entity} on this server`);
  const vars: [string, string][] = [];
  if (component) {
    vars.push(
      ['XMPPBUS_TRANSPORT_KIND', 'component'],
      ['XMPPBUS_TRANSPORT_SERVICE', e.componentService],
      ['XMPPBUS_TRANSPORT_DOMAIN', component.name],
      ['XMPPBUS_PASSWORD', component.secret],
    );
  } else if (account) {
    vars.push(
      ['XMPPBUS_TRANSPORT_KIND', 'client'],
      ['XMPPBUS_TRANSPORT_SERVICE', e.c2sService],
      ['XMPPBUS_TRANSPORT_DOMAIN', e.domain],
      ['XMPPBUS_TRANSPORT_USERNAME', account.user],
      ['XMPPBUS_PASSWORD', account.password],
    );
  }
  vars.push(['XMPPBUS_PUBSUB_SERVICE', e.pubsubService]);
  if (state.caFile) vars.push(['XMPPBUS_TRANSPORT_TLS_CA_FILE', state.caFile]);
  const others = [
    ...state.components
      .filter((c) => c !== component)
      .map((c) => `#   component ${c.name}  secret ${envValue(c.secret)}`),
    ...state.accounts
      .filter((a) => a !== account)
      .map((a) => `#   account ${a.user}@${e.domain}  password ${envValue(a.password)}`),
  ];
  const lines = [
    `# xmppbus local ${state.kind} server (pid ${state.pid}), written by @xmppbus/server. Holds secrets: do not commit.`,
    `# c2s ${e.c2sService}   components ${e.componentService}   pub/sub ${e.pubsubService}`,
    ...vars.map(([k, v]) => `${k}=${envValue(v)}`),
    ...(others.length > 0 ? ['# Also on this server:', ...others] : []),
    '',
  ];
  return lines.join('\n');
}

/**
 * Writes `envFileText` to `path` with mode 0600: an existing file is made private before the
 * secrets go in, and a symbolic link is refused (a `.env` link in a cloned repo must not make
 * us overwrite what it points to).
 */
export function writeEnvFile(path: string, state: ServerState, options: EnvFileOptions = {}): void {
  const text = envFileText(state, options);
  const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = constants;
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      throw new ConfigError(`${path} is a symbolic link: not writing secrets through it`, { cause: err });
    throw err;
  }
  try {
    fchmodSync(fd, 0o600); // `mode` applies only when the file is created
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
