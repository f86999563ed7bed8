/**
 * The `xmppbus` command: global options, one file per command group under `commands/`, the
 * exit-code table in `--help`, and `run()`, which parses, runs and maps every failure to one
 * error line and an exit code.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import type { Action, Wrap } from './action.js';
import { AbortError } from '@xmppbus/core';
import { registerBench } from './commands/bench.js';
import { registerCall } from './commands/call.js';
import { registerDiscover } from './commands/discover.js';
import { registerDlq } from './commands/dlq.js';
import { registerMessaging } from './commands/messaging.js';
import { registerPing } from './commands/ping.js';
import { registerPubSub } from './commands/pubsub.js';
import { registerServer } from './commands/server.js';
import type { GlobalOptions } from './config.js';
import { Context } from './context.js';
import { EXIT, EXIT_CODE_HELP, errorJson, exitCodeOf, formatError, verboseError, type ExitCode } from './errors.js';
import { withEnvFile } from './env-file.js';
import { Output, type Io } from './output.js';

/** The version printed by `--version`: the package's own (from src/ or dist/, ../package.json). */
export const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

const HELP_AFTER = `
Connection and config:
  Read from --config <file>, else XMPPBUS_CONFIG, else ./xmppbus.yaml (the @xmppbus/bus format);
  XMPPBUS_* variables override the file, and --service/--host/--port/--jid/--secret override both.
  The secret comes from XMPPBUS_PASSWORD, XMPPBUS_PASSWORD_FILE, transport.passwordFile or --secret.
  With a local server running (xmppbus server start --detach), commands connect as its CLI
  component (cli.<domain>) unless --jid or XMPPBUS_TRANSPORT_DOMAIN names an identity.

Output:
  --json prints one JSON value per result line on stdout; errors are one line on stderr
  (error[<code>]: <message>, or {"error":{…}} with --json). Colour and progress bars only on a TTY.

Exit codes:
${EXIT_CODE_HELP.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`).join('\n')}

Examples:
  xmppbus server start --detach --env .env
  xmppbus discover orders.localhost
  xmppbus call orders.localhost create '{"sku":"A1","qty":2}'
  xmppbus tail orders --json
`;

/** Builds the program. `wrap` turns command bodies into commander actions. */
export function createProgram(io: Io, wrap: Wrap): Command {
  const program = new Command('xmppbus')
    .description('Call, publish, tail, send and inspect xmppbus services over XMPP')
    .version(VERSION, '-V, --version')
    .option('-c, --config <file>', 'config file (YAML or JSON; default ./xmppbus.yaml)')
    .option('--service <url>', 'server address, xmpp://host:port')
    .option('--host <host>', 'server host (with the configured or default port)')
    .option('--port <port>', 'server port')
    .option('--jid <jid>', 'identity: component domain, or user@domain[/resource] for a client account')
    .option('--secret <secret>', 'component secret or account password (prefer XMPPBUS_PASSWORD)')
    .option('--env-file <file>', 'read XMPPBUS_* (and other) variables from a .env file; the real environment wins')
    .option('--state-dir <dir>', 'state dir of the local server (default .xmppbus/server)')
    .option('-t, --timeout <ms>', 'wait for each network operation, ms (default 10000)')
    .option('--json', 'machine-readable output, one JSON value per line')
    .option('-v, --verbose', 'library logs and full stacks on stderr')
    .addOption(new Option('--no-color', 'no colour, even on a terminal'))
    .showHelpAfterError('(run xmppbus --help for usage)')
    .addHelpText('after', HELP_AFTER)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, 'error[usage]: ')),
    });
  registerCall(program, wrap);
  registerDiscover(program, wrap);
  registerPing(program, wrap);
  registerPubSub(program, wrap);
  registerMessaging(program, wrap);
  registerDlq(program, wrap);
  registerBench(program, wrap);
  registerServer(program, wrap);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/**
 * Runs the CLI on `argv` (without node and script). Resolves with the exit code; never throws.
 * `signal` is the Ctrl-C signal (bin.ts aborts it on SIGINT).
 */
export async function run(argv: readonly string[], io: Io, signal: AbortSignal): Promise<ExitCode> {
  let exit: ExitCode = EXIT.ok;
  let out: Output | undefined;
  let verbose = false;
  const wrap: Wrap =
    <A extends unknown[]>(body: Action<A>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      verbose = globals.verbose === true;
      out = new Output(io, { json: globals.json === true, color: globals.color !== false });
      const env = globals.envFile === undefined ? io.env : withEnvFile(io.env, globals.envFile, io.cwd);
      const ctx = new Context({ io: { ...io, env }, globals, out, signal });
      try {
        exit = (await body(ctx, ...(args.slice(0, -1) as A))) ?? EXIT.ok;
      } finally {
        await ctx.close();
      }
    };
  const program = createProgram(io, wrap);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exit;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end as "errors" with exit code 0 under exitOverride.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const failure = signal.aborted && !(err instanceof Error && 'code' in err) ? new AbortError('interrupted') : err;
    if (out?.json) io.stderr.write(`${JSON.stringify({ error: errorJson(failure) })}\n`);
    else io.stderr.write(`${formatError(failure)}\n`);
    if (verbose) io.stderr.write(`${verboseError(failure)}\n`);
    return exitCodeOf(failure);
  }
}
