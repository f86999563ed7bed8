/**
 * `xmppbus server start|status|stop|config`: a local Prosody or ejabberd for development and CI
 * (@xmppbus/server). `start` serves the component or account of the config (`xmppbus.yaml`,
 * its optional `server:` section) plus the CLI's own components (`cli.<domain>`, `cli-2…`, so
 * that several commands can run at once), prints the endpoints and secrets or writes them to a
 * `.env`, and with `--detach` leaves the server running for `status`/`stop` and other commands.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  installServer,
  serverConfigSnippet,
  serverOptionsFromConfig,
  serverStatus,
  startServer,
  stopServer,
  writeEnvFile,
  type ServerKind,
  type ServerState,
  type StartServerOptions,
} from '@xmppbus/server';
import { loadConfig } from '@xmppbus/bus';
import { CLI_COMPONENTS, configFile, stateDirOf } from '../config.js';
import type { Context } from '../context.js';
import { EXIT, UsageError, type ExitCode } from '../errors.js';
import type { Wrap } from '../action.js';

interface StartFlags {
  ejabberd?: boolean;
  prosody?: boolean;
  detach?: boolean;
  env?: string;
  component?: string[];
  domain?: string;
  install?: boolean;
}

interface SnippetFlags {
  prosody?: boolean;
  ejabberd?: boolean;
  domain?: string;
  component?: string[];
}

const collect = (value: string, prev: string[] | undefined): string[] => [...(prev ?? []), value];

export function registerServer(program: Command, wrap: Wrap): void {
  const server = program.command('server').description('run a local Prosody or ejabberd for development and CI');
  server
    .command('start')
    .description("start a server for the config's components and accounts (and the CLI's); print or save the secrets")
    .option('--ejabberd', 'run ejabberd (default Prosody)')
    .option('--prosody', 'run Prosody (the default)')
    .option('--detach', 'keep it running after this command (then: xmppbus server status|stop)')
    .option('--env <file>', 'write the XMPPBUS_* variables of the config’s entity to this .env file (mode 0600)')
    .option('--component <name>', 'also accept this component (repeatable)', collect)
    .option('--domain <domain>', 'the XMPP domain (default: from the config, else localhost)')
    .option('--no-install', 'fail instead of installing the server with apt-get when it is missing')
    .action(wrap(start));
  server.command('status').description('is the detached server running and ready, and where').action(wrap(status));
  server.command('stop').description('stop the detached server').action(wrap(stop));
  server
    .command('config')
    .description('print a config snippet for your own production server')
    .option('--prosody', 'for Prosody')
    .option('--ejabberd', 'for ejabberd')
    .option('--domain <domain>', 'your XMPP domain (default: from the config)')
    .option('--component <name>', 'a component to declare (repeatable; default: the config’s)', collect)
    .action(wrap(snippet));
  for (const cmd of server.commands) cmd.exitOverride();
}

function kindOf(flags: { ejabberd?: boolean; prosody?: boolean }, what: string): ServerKind | undefined {
  if (flags.ejabberd && flags.prosody) throw new UsageError(`${what}: --prosody or --ejabberd, not both`);
  return flags.ejabberd ? 'ejabberd' : flags.prosody ? 'prosody' : undefined;
}

/** The bus config as written (file < env), without the CLI's own identity. */
async function busConfig(ctx: Context) {
  const file = configFile(ctx.globals, ctx.io);
  return loadConfig(file === undefined ? {} : { file }, { env: ctx.io.env, cwd: ctx.io.cwd });
}

async function start(ctx: Context, flags: StartFlags): Promise<ExitCode> {
  const { config } = await busConfig(ctx);
  const stateDir = stateDirOf(ctx.globals, ctx.io);
  const kind = kindOf(flags, 'server start');
  const overrides: StartServerOptions = {
    ...(kind && { kind }),
    ...(flags.domain && { domain: flags.domain }),
    ...(flags.detach && { detach: true, stateDir }),
  };
  const derived = serverOptionsFromConfig(config, overrides);
  for (const w of derived.warnings) ctx.out.note(`warning: ${w}`);
  const options = derived.options;
  const domain = options.domain ?? 'localhost';
  const names = new Set((options.components ?? []).map((c) => (typeof c === 'string' ? c : c.name).toLowerCase()));
  const extra = [...(flags.component ?? []), ...CLI_COMPONENTS.map((n) => `${n}.${domain}`)];
  options.components = [...(options.components ?? []), ...extra.filter((n) => !names.has(n.toLowerCase()))];
  const serverKind = options.kind ?? 'prosody';
  if (flags.install !== false) {
    const { installed } = await installServer(serverKind);
    if (installed.length > 0) ctx.out.note(`installed ${installed.join(', ')}`);
  }
  ctx.out.note(`starting ${serverKind}…`);
  const server = await startServer(options);
  try {
    const state = server.state();
    if (flags.env !== undefined) {
      const path = resolve(ctx.io.cwd, flags.env);
      writeEnvFile(path, state, derived.entity === undefined ? {} : { entity: derived.entity });
    }
    ctx.out.result(stateJson(state, flags.env === undefined, flags.detach === true, stateDir), () =>
      renderState(ctx, state, { secrets: flags.env === undefined, detached: flags.detach === true, env: flags.env }),
    );
    if (flags.detach) return EXIT.ok;
    ctx.out.note('running until Ctrl-C');
    await waitForInterrupt(ctx.signal);
  } catch (err) {
    await server.stop();
    throw err;
  }
  await server.stop();
  return EXIT.ok;
}

/** Resolves on Ctrl-C (the server runs in the foreground until then). */
function waitForInterrupt(signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    // The server process is not a handle of ours: without a timer, Node would just exit here.
    const keepAlive = setInterval(() => undefined, 60_000);
    const stop = (): void => {
      clearInterval(keepAlive);
      done();
    };
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  });
}

function stateJson(state: ServerState, secrets: boolean, detached: boolean, stateDir: string): Record<string, unknown> {
  return {
    kind: state.kind,
    pid: state.pid,
    detached,
    ...(detached && { stateDir }),
    endpoints: state.endpoints,
    components: state.components.map((c) => (secrets ? c : { name: c.name })),
    accounts: state.accounts.map((a) => (secrets ? a : { user: a.user })),
    ...(state.caFile && { caFile: state.caFile }),
    logFile: state.logFile,
  };
}

function renderState(
  ctx: Context,
  state: ServerState,
  how: { secrets: boolean; detached: boolean; env?: string | undefined },
): string {
  const { c } = ctx.out;
  const e = state.endpoints;
  const lines = [
    `${c.bold(state.kind)} running (pid ${state.pid})${how.detached ? ', detached' : ''}`,
    `  domain      ${e.domain}`,
    `  c2s         ${e.c2sService}`,
    `  components  ${e.componentService}`,
    `  pub/sub     ${e.pubsubService}`,
    `  log         ${state.logFile}`,
  ];
  for (const comp of state.components)
    lines.push(`  component ${comp.name}${how.secrets ? `  secret ${comp.secret}` : ''}`);
  for (const a of state.accounts)
    lines.push(`  account ${a.user}@${e.domain}${how.secrets ? `  password ${a.password}` : ''}`);
  if (how.env !== undefined) lines.push(c.dim(`secrets written to ${how.env} (node --env-file=${how.env} app.js)`));
  if (how.detached) lines.push(c.dim('stop it with: xmppbus server stop'));
  return lines.join('\n');
}

async function status(ctx: Context): Promise<ExitCode> {
  const s = await serverStatus(stateDirOf(ctx.globals, ctx.io), { timeout: Math.min(ctx.timeout, 10_000) });
  const json = {
    stateDir: s.stateDir,
    running: s.running,
    ready: s.ready,
    ...(s.state && {
      kind: s.state.kind,
      pid: s.state.pid,
      endpoints: s.state.endpoints,
      startedAt: s.state.startedAt,
    }),
  };
  ctx.out.result(json, () => {
    if (!s.state) return `no server (no state in ${s.stateDir})`;
    const e = s.state.endpoints;
    const what = s.running
      ? s.ready
        ? ctx.out.c.green('running, ready')
        : ctx.out.c.yellow('running, not ready')
      : ctx.out.c.red('not running');
    return [
      `${s.state.kind} (pid ${s.state.pid}) ${what}`,
      `  c2s         ${e.c2sService}`,
      `  components  ${e.componentService}`,
      `  pub/sub     ${e.pubsubService}`,
      `  since       ${s.state.startedAt}`,
    ].join('\n');
  });
  return s.running && s.ready ? EXIT.ok : EXIT.unavailable;
}

async function stop(ctx: Context): Promise<void> {
  const r = await stopServer(stateDirOf(ctx.globals, ctx.io));
  ctx.out.result({ stopped: r.stopped, ...(r.state && { kind: r.state.kind, pid: r.state.pid }) }, () =>
    r.stopped ? `stopped ${r.state?.kind ?? 'server'} (pid ${r.state?.pid ?? '?'})` : 'no server was running',
  );
}

async function snippet(ctx: Context, flags: SnippetFlags): Promise<void> {
  const kind = kindOf(flags, 'server config');
  if (kind === undefined) throw new UsageError('server config: give --prosody or --ejabberd');
  const { config } = await busConfig(ctx);
  const derived = serverOptionsFromConfig(config);
  const components =
    flags.component ?? (derived.options.components ?? []).map((c) => (typeof c === 'string' ? c : c.name));
  const domain = flags.domain ?? derived.options.domain ?? 'localhost';
  const text = serverConfigSnippet(kind, { domain, components });
  ctx.out.result({ kind, domain, snippet: text }, () => text);
}
