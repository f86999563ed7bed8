/**
 * What the CLI reports when a command fails: one line, `error[<code>]: <message>`, and an exit
 * code scripts can branch on. The table below is documented in the README and in `--help`.
 */
import { ConfigError, StanzaError, XmppBusError, type XmppBusErrorOptions } from '@xmppbus/core';

/** The exit codes, documented (README "Exit codes" and `xmppbus --help`). */
export const EXIT = Object.freeze({
  /** Done. */
  ok: 0,
  /** The remote answered with an error, or the operation failed (typed error, e.g. a stanza error, validation). */
  error: 1,
  /** Bad command line, input or configuration. */
  usage: 2,
  /** Could not connect or authenticate (wrong secret, unknown component, server down). */
  connection: 3,
  /** No answer in time. */
  timeout: 4,
  /** The addressed entity is not reachable (service-unavailable, remote-server-*, recipient-unavailable). */
  unavailable: 5,
  /** Interrupted (Ctrl-C) before the command finished. */
  interrupted: 130,
});

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit code table as help text, one row per code. */
export const EXIT_CODE_HELP: readonly (readonly [ExitCode, string])[] = [
  [EXIT.ok, 'success'],
  [EXIT.error, 'the remote answered with an error, or the operation failed'],
  [EXIT.usage, 'bad arguments, input or configuration'],
  [EXIT.connection, 'cannot connect or authenticate'],
  [EXIT.timeout, 'timed out'],
  [EXIT.unavailable, 'the addressed entity is unreachable'],
  [EXIT.interrupted, 'interrupted (Ctrl-C)'],
];

/** A command line or input the CLI cannot use (exit 2). A ConfigError: its code is `ERR_CONFIG`. */
export class UsageError extends ConfigError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super(message, options);
  }
}

/** The exit code of a failure. */
export function exitCodeOf(err: unknown): ExitCode {
  if (!(err instanceof XmppBusError)) return EXIT.error;
  switch (err.code) {
    case 'ERR_CONFIG':
      return EXIT.usage;
    case 'ERR_CONNECTION':
    case 'ERR_AUTH':
    case 'ERR_CONFLICT':
      return EXIT.connection;
    case 'ERR_TIMEOUT':
      return EXIT.timeout;
    case 'ERR_SERVICE_UNAVAILABLE':
      return EXIT.unavailable;
    case 'ERR_ABORTED':
      return EXIT.interrupted;
    default:
      return EXIT.error;
  }
}

/** The code shown in `error[…]`: `usage`, a stanza error's condition, else the error's `ERR_*` code. */
export function errorCodeOf(err: unknown): string {
  if (err instanceof UsageError) return 'usage';
  if (err instanceof StanzaError) return err.condition;
  if (err instanceof XmppBusError) return err.code;
  return 'internal';
}

/** Hints appended to a few errors whose fix is not in the server's words. */
function hintOf(err: unknown): string | undefined {
  // `forbidden` is what an xmppbus service's access policy answers (a server says not-allowed).
  if (err instanceof StanzaError && err.condition === 'forbidden' && err.code === 'ERR_STANZA')
    return "the service's access policy refuses this identity: connect as a component of the service's parent domain, or give it an access rule (see the @xmppbus/cli README)";
  if (err instanceof XmppBusError && err.code === 'ERR_AUTH')
    return 'check the secret (XMPPBUS_PASSWORD, transport.passwordFile or --secret) and the component or account name';
  return undefined;
}

/** The message of an error, on one line (a stanza error's text, else its message). */
function messageOf(err: unknown): string {
  let text: string;
  if (err instanceof StanzaError) text = err.text ?? err.message;
  else if (err instanceof Error) text = err.message;
  else text = String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim() || 'failed';
}

/** `error[<code>]: <message>` (plus a hint when one helps), one line. */
export function formatError(err: unknown): string {
  const hint = hintOf(err);
  const message = messageOf(err);
  return `error[${errorCodeOf(err)}]: ${message}${hint === undefined ? '' : ` — hint: ${hint}`}`;
}

/** The machine-readable form of an error (`--json`). */
export function errorJson(err: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { code: errorCodeOf(err), message: messageOf(err), exit: exitCodeOf(err) };
  if (err instanceof XmppBusError) {
    out['errorCode'] = err.code;
    out['retryable'] = err.retryable;
  }
  if (err instanceof StanzaError) out['type'] = err.type;
  const path = (err as { path?: unknown }).path;
  if (typeof path === 'string') out['path'] = path;
  return out;
}

/** The error and its causes with stacks (`--verbose`). */
export function verboseError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 8; depth++) {
    parts.push(depth === 0 ? stackOf(e) : `caused by: ${stackOf(e)}`);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join('\n');
}

function stackOf(e: unknown): string {
  return e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
}
