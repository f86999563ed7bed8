/**
 * @xmppbus/cli — the `xmppbus` command. The bin is `dist/bin.js`; this entry exposes the
 * program for embedding and tests: `run(argv, io, signal)` resolves with the exit code.
 */
export { run, createProgram, VERSION } from './program.js';
export type { Action, Wrap } from './action.js';
export { EXIT, EXIT_CODE_HELP, UsageError, exitCodeOf, errorCodeOf, formatError, errorJson } from './errors.js';
export type { ExitCode } from './errors.js';
export { Output } from './output.js';
export type { Io, OutputOptions } from './output.js';
export { DEFAULT_CONFIG_FILES, resolveConfig } from './config.js';
export type { GlobalOptions } from './config.js';
export { Context } from './context.js';
export type { ConnectOptions } from './context.js';
